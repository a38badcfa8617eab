//! The kernel data path for Services: DNAT in an nftables table this node
//! owns, replaced as a whole (one `nft -f -` transaction) whenever the
//! endpoints change, and deleted when discovery stops.
//!
//! Chosen by `discovery.proxy_mode`: `auto` takes it when the daemon is
//! root and `nft` accepts a probe ruleset, else keeps the user-space
//! balancer ([`super::lb`]), which also stays for Services with ClientIP
//! affinity (the kernel path has no per-client memory).
//!
//! `nft -f` rather than netlink from Rust: the text is what the unit tests
//! check, the atomic delete-and-add is one command, and the tool is what an
//! operator reads the table with. A change costs one process (~5 ms).

pub mod ruleset;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Bounds, ServiceTable};

pub use ruleset::{KernelService, ruleset, table_name, teardown};

/// The `nft` binary; found on `PATH`.
const NFT: &str = "nft";

/// The most of nft's output an error keeps.
const MAX_OUTPUT: usize = 4096;

/// Errors driving nftables.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run `{NFT}` (is nftables installed?): {0}")]
    Spawn(std::io::Error),
    #[error("`{NFT} -f -` refused the ruleset: {0}")]
    Refused(String),
    #[error("discovery.proxy_mode = \"nftables\" but the kernel data path is unavailable: {0}")]
    Unavailable(String),
}

/// `discovery.proxy_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// nftables when root and `nft` works, else user space.
    #[default]
    Auto,
    /// DNAT in the kernel; starting fails when it cannot be had.
    Nftables,
    /// The user-space TCP balancer.
    Userspace,
}

/// Runs `nft -f -` (with `-c`, only checks) on `text`; returns its output.
pub fn run_nft(text: &str, check: bool) -> Result<String, NftError> {
    let mut cmd = Command::new(NFT);
    if check {
        cmd.arg("-c");
    }
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(NftError::Spawn)?;
    }
    let mut out = Vec::new();
    // Bounded: nft echoes at most the offending lines, but never trust a
    // child's output to be small.
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(MAX_OUTPUT as u64).read_to_end(&mut out);
    }
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(MAX_OUTPUT as u64).read_to_end(&mut out);
    }
    let status = child.wait().map_err(NftError::Spawn)?;
    let out = String::from_utf8_lossy(&out).into_owned();
    if status.success() {
        Ok(out)
    } else {
        Err(NftError::Refused(format!("{status}: {}", out.trim())))
    }
}

/// Decides the data path once (probing with `table`'s ruleset), logging
/// which and why. `Err` only for an explicit `nftables` that cannot be had.
pub fn choose(mode: ProxyMode, table: &str) -> Result<bool, NftError> {
    let probe = || -> Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the daemon is not root".into());
        }
        run_nft(&ruleset(table, &[]), true)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match mode {
        ProxyMode::Userspace => {
            info!("Service traffic: user-space balancer (discovery.proxy_mode = \"userspace\")");
            Ok(false)
        }
        ProxyMode::Nftables => match probe() {
            Ok(()) => {
                info!("Service traffic: nftables DNAT (discovery.proxy_mode = \"nftables\")");
                Ok(true)
            }
            Err(e) => Err(NftError::Unavailable(e)),
        },
        ProxyMode::Auto => match probe() {
            Ok(()) => {
                info!(
                    "Service traffic: nftables DNAT (proxy_mode auto: root and nft accepts the ruleset)"
                );
                Ok(true)
            }
            Err(e) => {
                info!("Service traffic: user-space balancer (proxy_mode auto: {e})");
                Ok(false)
            }
        },
    }
}

/// Lets the kernel route packets with a 127/8 source out of other
/// interfaces: the host reaching a cluster IP on loopback or
/// `127.0.0.1:NODEPORT` has its packets DNATed to a container or another
/// host, and they are masqueraded only after routing. Host-wide, as
/// kube-proxy sets it; left set at stop, since other daemons on the host
/// (other nodes in tests) may rely on it.
pub fn allow_route_localnet() {
    const PATH: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";
    match std::fs::read_to_string(PATH) {
        Ok(v) if v.trim() == "1" => {}
        _ => match std::fs::write(PATH, "1") {
            Ok(()) => {
                info!("set net.ipv4.conf.all.route_localnet = 1 for loopback Service traffic")
            }
            Err(e) => warn!(
                "cannot set net.ipv4.conf.all.route_localnet ({e}): the host reaching Services through 127.0.0.0/8 addresses will fail for endpoints off loopback"
            ),
        },
    }
}

/// This node's table in the kernel. Replacing it and deleting it are
/// serialised, and once deleted at stop it is never written again (an
/// apply still running when discovery stops cannot bring it back).
pub struct KernelTable {
    name: String,
    stopped: Mutex<bool>,
}

impl KernelTable {
    /// The table named `name` (see [`table_name`]).
    pub fn new(name: String) -> Arc<KernelTable> {
        Arc::new(KernelTable {
            name,
            stopped: Mutex::new(false),
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the table with one serving `services` (blocking: a child
    /// process). Does nothing after [`KernelTable::stop`].
    pub fn apply(&self, services: &[KernelService]) -> Result<(), NftError> {
        let Ok(stopped) = self.stopped.lock() else {
            return Ok(());
        };
        if *stopped {
            return Ok(());
        }
        let text = ruleset(&self.name, services);
        let t0 = Instant::now();
        let res = run_nft(&text, false).map(|_| ());
        ::metrics::histogram!(super::metrics::NFT_APPLY_SECONDS).record(t0.elapsed().as_secs_f64());
        let result = if res.is_ok() { "ok" } else { "error" };
        ::metrics::counter!(super::metrics::NFT_APPLIES_TOTAL, "result" => result).increment(1);
        ::metrics::gauge!(super::metrics::NFT_RULESET_BYTES).set(text.len() as f64);
        res
    }

    /// Deletes the table for good (blocking).
    pub fn stop(&self) {
        let mut stopped = match self.stopped.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *stopped {
            return;
        }
        *stopped = true;
        match run_nft(&teardown(&self.name), false) {
            Ok(_) => info!(table = %self.name, "nftables table deleted"),
            Err(e) => warn!(table = %self.name, "cannot delete the nftables table: {e}"),
        }
    }
}

impl Drop for KernelTable {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the kernel path serves: every Service port with a cluster IP or a
/// node port in range, except those with ClientIP affinity (left to the
/// balancer). Endpoints sorted and deduplicated, so equal tables give
/// equal rulesets.
pub(super) fn kernel_services(t: &ServiceTable, bounds: &Bounds) -> Vec<KernelService> {
    let mut out = Vec::new();
    for s in t
        .services
        .values()
        .filter(|s| s.client_ip_affinity.is_none())
    {
        for p in &s.ports {
            let cluster_ip = s.cluster_ip.filter(|ip| bounds.cluster_ip(*ip));
            let node_port = p.node_port.filter(|np| bounds.node_port(*np));
            if cluster_ip.is_none() && node_port.is_none() {
                continue;
            }
            let mut endpoints: Vec<std::net::SocketAddrV4> = p
                .endpoints
                .iter()
                .map(|e| std::net::SocketAddrV4::new(e.ip, e.port))
                .collect();
            endpoints.sort();
            endpoints.dedup();
            out.push(KernelService {
                label: format!("{}/{}:{}", s.namespace, s.name, p.port),
                cluster_ip,
                port: p.port,
                node_port,
                endpoints,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::super::{DiscoveryConfig, Endpoint, PortEntry, ServiceEntry, wanted};
    use super::*;

    /// The kernel path serves in-range addresses only, leaves ClientIP
    /// affinity to the balancer (whose listeners then hold just those), and
    /// sorts endpoints so that equal tables give equal rulesets.
    #[test]
    fn kernel_services_split_with_the_balancer() {
        let ep = |ip: [u8; 4], port: u16| Endpoint {
            ip: ip.into(),
            port,
            pod: "p".into(),
            node: "n".into(),
        };
        let entry = |name: &str, ip: &str, affinity: bool| ServiceEntry {
            name: name.into(),
            namespace: "default".into(),
            cluster_ip: Some(ip.parse().unwrap()),
            client_ip_affinity: affinity.then(|| Duration::from_secs(60)),
            ports: vec![PortEntry {
                name: None,
                port: 80,
                node_port: Some(30080),
                endpoints: vec![ep([10, 0, 0, 2], 8080), ep([10, 0, 0, 1], 8080)],
            }],
        };
        let mut table = ServiceTable::default();
        for e in [
            entry("plain", "10.96.0.10", false),
            entry("sticky", "10.96.0.11", true),
            entry("outside", "8.8.8.8", false),
        ] {
            table
                .services
                .insert((e.namespace.clone(), e.name.clone()), e);
        }
        let bounds = Bounds::of(&DiscoveryConfig::default());
        let k = kernel_services(&table, &bounds);
        let labels: Vec<(&str, Option<Ipv4Addr>)> =
            k.iter().map(|s| (s.label.as_str(), s.cluster_ip)).collect();
        assert_eq!(
            labels,
            vec![
                ("default/outside:80", None),
                ("default/plain:80", Some(Ipv4Addr::new(10, 96, 0, 10))),
            ]
        );
        assert_eq!(
            k[1].endpoints,
            vec![
                "10.0.0.1:8080".parse::<std::net::SocketAddrV4>().unwrap(),
                "10.0.0.2:8080".parse().unwrap()
            ]
        );
        let listeners: Vec<SocketAddr> = wanted(&table, &bounds, true).into_keys().collect();
        assert_eq!(
            listeners,
            vec![
                "0.0.0.0:30080".parse::<SocketAddr>().unwrap(),
                "10.96.0.11:80".parse().unwrap()
            ]
        );
        let e = toml::from_str::<DiscoveryConfig>("proxy_mode = \"kernel\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy_mode") || e.contains("kernel"), "{e}");
        let cfg: DiscoveryConfig = toml::from_str("proxy_mode = \"nftables\"\n").unwrap();
        assert_eq!(cfg.proxy_mode, ProxyMode::Nftables);
    }
}
