//! The netns network: one namespace per node (`shoal-chaos-nI`, address
//! 10.77.0.I/24 on `eth0`), each joined by a veth pair to a bridge that
//! lives in a namespace of its own (`shoal-chaos-hub`), and one more veth
//! from the hub to the host (`shoal-chaos0`, 10.77.0.254) so the harness
//! reaches every node's API without routing.
//!
//! The bridge is kept out of the host on purpose: with Docker running, the
//! host's FORWARD policy is DROP and bridged frames pass through it
//! (br_netfilter), so a host bridge would need host firewall rules, which
//! a crashed run could leave behind. Partitions are iptables DROP rules
//! inside the node namespaces; they vanish with the namespaces.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// SIGCONT then SIGKILL, so a stopped process dies too. Never pid 1 or ourselves.
pub fn hard_kill(pid: i32) {
    if pid <= 1 || pid == std::process::id() as i32 {
        return;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Prefix of every namespace this harness creates.
pub const NS_PREFIX: &str = "shoal-chaos-";
/// The hub namespace holding the bridge.
const HUB: &str = "shoal-chaos-hub";
/// The host end of the veth to the hub.
pub const HOST_IF: &str = "shoal-chaos0";
/// The first three octets of every address.
const SUBNET: &str = "10.77.0";
/// The host's address on the nodes' subnet.
pub const HOST_IP: &str = "10.77.0.254";

/// Longest wait for one `ip` or `iptables` command.
const CMD_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs a command to completion (bounded), failing on a non-zero exit.
pub fn run(prog: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {prog} (is it installed?)"))?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        use std::io::Write;
        pipe.write_all(input.as_bytes())
            .with_context(|| format!("{prog}: writing its input"))?;
    }
    let deadline = std::time::Instant::now() + CMD_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{prog} {} did not finish within {CMD_TIMEOUT:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args, None).map(|_| ())
}

/// The namespace of node `i` (0-based).
pub fn ns_name(i: usize) -> String {
    format!("{NS_PREFIX}n{}", i + 1)
}

/// The address of node `i` (0-based).
pub fn node_ip(i: usize) -> String {
    format!("{SUBNET}.{}", i + 1)
}

/// The namespace of intruder `k` (1-based): not a node of the cluster.
pub fn intruder_ns(k: usize) -> String {
    format!("{NS_PREFIX}x{k}")
}

/// The address of intruder `k` (1-based), on the nodes' subnet.
pub fn intruder_ip(k: usize) -> String {
    format!("{SUBNET}.{}", 200 + k)
}

/// Makes namespace `ns` with `eth0` at `addr`/24, its veth peer `port`
/// joined to the hub's bridge.
fn attach(ns: &str, addr: &str, port: &str) -> anyhow::Result<()> {
    let tmp = format!("sc-tmp-{port}");
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", &tmp, "netns", ns, "type", "veth", "peer", "name", port, "netns", HUB,
    ])?;
    ip(&["-n", ns, "link", "set", &tmp, "name", "eth0"])?;
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["-n", HUB, "link", "set", port, "master", "br0"])?;
    ip(&["-n", HUB, "link", "set", port, "up"])?;
    Ok(())
}

/// Namespaces whose name starts with the harness's prefix.
pub fn leftover_namespaces() -> Vec<String> {
    run("ip", &["netns", "list"], None)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Pids of every process in namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns], None)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills every process of every harness namespace, then deletes the
/// namespaces and the host veth. Safe to call when nothing is there.
pub fn remove_all() -> Vec<String> {
    let mut removed = Vec::new();
    let namespaces = leftover_namespaces();
    for ns in &namespaces {
        for pid in pids_in(ns) {
            hard_kill(pid);
        }
    }
    // Deleting a namespace frees its devices asynchronously; removing the
    // host end explicitly makes it gone before the next run looks.
    if ip(&["link", "show", HOST_IF]).is_ok() {
        let _ = ip(&["link", "del", HOST_IF]);
        removed.push(format!("link {HOST_IF}"));
    }
    for ns in namespaces {
        if ip(&["netns", "del", &ns]).is_ok() {
            removed.push(format!("netns {ns}"));
        }
    }
    removed
}

/// The namespaces of one run.
#[derive(Debug)]
pub struct Netns {
    nodes: usize,
}

impl Netns {
    /// Creates the hub, the node namespaces and their links; on failure
    /// removes what it made.
    pub fn setup(nodes: usize) -> anyhow::Result<Netns> {
        if nodes > 250 {
            bail!("at most 250 nodes fit the subnet");
        }
        let net = Netns { nodes };
        if let Err(e) = net.build() {
            remove_all();
            return Err(e);
        }
        Ok(net)
    }

    fn build(&self) -> anyhow::Result<()> {
        if ip(&["link", "show", HOST_IF]).is_ok() {
            bail!(
                "{HOST_IF} already exists: another run is in progress, or run `shoal-chaos clean`"
            );
        }
        ip(&["netns", "add", HUB])?;
        ip(&["-n", HUB, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", HUB, "link", "set", "br0", "up"])?;
        ip(&[
            "link", "add", HOST_IF, "type", "veth", "peer", "name", "host", "netns", HUB,
        ])?;
        ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", HOST_IF])?;
        ip(&["link", "set", HOST_IF, "up"])?;
        ip(&["-n", HUB, "link", "set", "host", "master", "br0"])?;
        ip(&["-n", HUB, "link", "set", "host", "up"])?;
        for i in 0..self.nodes {
            attach(&ns_name(i), &node_ip(i), &format!("n{}", i + 1))?;
        }
        Ok(())
    }

    /// Creates intruder `k`'s namespace (`shoal-chaos-xK`, address
    /// [`intruder_ip`]) on the same bridge, unless it exists already. It is
    /// in no partition rule: every node reaches it.
    pub fn add_intruder(&self, k: usize) -> anyhow::Result<()> {
        let ns = intruder_ns(k);
        if leftover_namespaces().contains(&ns) {
            return Ok(());
        }
        attach(&ns, &intruder_ip(k), &format!("x{k}"))
    }

    /// Makes the filter table of every node drop traffic to and from the
    /// nodes it must not reach: `blocked` holds unordered pairs. Replaces
    /// whatever partition was in place; an empty set heals everything.
    pub fn set_partition(&self, blocked: &BTreeSet<(usize, usize)>) -> anyhow::Result<()> {
        for i in 0..self.nodes {
            let mut rules = String::from(
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
            );
            for j in 0..self.nodes {
                if i != j && (blocked.contains(&(i, j)) || blocked.contains(&(j, i))) {
                    let peer = node_ip(j);
                    rules.push_str(&format!("-A INPUT -s {peer}/32 -j DROP\n"));
                    rules.push_str(&format!("-A OUTPUT -d {peer}/32 -j DROP\n"));
                }
            }
            rules.push_str("COMMIT\n");
            // iptables-restore swaps the whole table at once, so a node is
            // never half cut.
            run(
                "ip",
                &["netns", "exec", &ns_name(i), "iptables-restore"],
                Some(&rules),
            )
            .with_context(|| format!("partition rules in {}", ns_name(i)))?;
        }
        Ok(())
    }
}

/// Every unordered pair of nodes on different sides: `sides[k]` lists the
/// nodes of side k; a node on no side (a bridge) reaches everyone.
pub fn cut_between(sides: &[Vec<usize>]) -> BTreeSet<(usize, usize)> {
    let mut out = BTreeSet::new();
    for (a, side_a) in sides.iter().enumerate() {
        for side_b in &sides[a + 1..] {
            for &i in side_a {
                for &j in side_b {
                    out.insert((i.min(j), i.max(j)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_node_reaches_both_sides() {
        let cut = cut_between(&[vec![0, 1], vec![3, 4]]);
        assert!(cut.contains(&(0, 3)) && cut.contains(&(1, 4)));
        assert!(!cut.iter().any(|(a, b)| *a == 2 || *b == 2));
        assert_eq!(cut.len(), 4);
    }
}
