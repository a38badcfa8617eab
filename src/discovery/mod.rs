//! Service discovery: DNS for `NAME.NAMESPACE.svc.shoal` and a TCP load
//! balancer per Service port, both served from this node's replica.
//!
//! Every node derives the same [`ServiceTable`] from its own replica (ready
//! pods only), answers DNS from it, and listens on each Service's cluster IP
//! (and node port) itself, so no traffic depends on another node being up
//! except the endpoint's own.

pub mod claim;
pub mod dns;
pub mod endpoints;
pub mod lb;
pub mod metrics;
pub mod nft;
pub mod table;
pub mod vip;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use claim::Claim;
use dns::Holder;

use crate::membership::Membership;
use crate::resource::Kind;
use crate::store::Store;

pub use table::{Endpoint, PortEntry, ServiceEntry, ServiceTable};

/// Errors starting discovery or reading its settings.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery.{field}: {msg}")]
    Config { field: &'static str, msg: String },
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error(transparent)]
    Nft(#[from] nft::NftError),
}

/// `[discovery]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Serve DNS and load-balance Services on this node.
    pub enabled: bool,
    /// DNS listen address for the host (`--dns-addr`).
    pub dns_addr: String,
    /// DNS address given to containers, port 53: an IP, `auto` (the Docker
    /// bridge gateway when the runtime has one), or empty for none.
    pub container_dns: String,
    /// Cluster domain: names are `NAME.NAMESPACE.svc.DOMAIN`.
    pub domain: String,
    /// TTL of every answer, in seconds.
    pub dns_ttl_secs: u32,
    /// Forward names outside the domain to the host's resolvers; refuse
    /// them when false.
    pub forward: bool,
    /// Where cluster IPs are allocated. Must be the same on every node.
    pub service_cidr: ServiceCidr,
    /// Node ports are allocated from this range, `LOW-HIGH`.
    pub node_port_range: String,
    /// Interface that holds cluster IPs as local /32 addresses.
    pub vip_interface: String,
    /// Upstream connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Endpoints tried per client connection.
    pub connect_attempts: u32,
    /// Consecutive connect failures that eject an endpoint.
    pub eject_after_failures: u32,
    /// How long an ejected endpoint gets no connections, in milliseconds.
    pub eject_ms: u64,
    /// Service data path: `auto` (nftables when root and `nft` works),
    /// `nftables` or `userspace`.
    pub proxy_mode: nft::ProxyMode,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            dns_addr: "127.0.0.1:7953".into(),
            container_dns: "auto".into(),
            domain: "shoal".into(),
            dns_ttl_secs: 5,
            forward: true,
            service_cidr: ServiceCidr(Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 16)),
            node_port_range: "30000-32767".into(),
            vip_interface: "lo".into(),
            connect_timeout_ms: 1000,
            connect_attempts: 3,
            eject_after_failures: 3,
            eject_ms: 10_000,
            proxy_mode: nft::ProxyMode::Auto,
        }
    }
}

/// The range cluster IPs come from, `A.B.C.D/N` with /8 ≤ N ≤ /30, parsed
/// once when the config is read (host bits are cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceCidr(Ipv4Net);

impl std::str::FromStr for ServiceCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<ServiceCidr, String> {
        let net: Ipv4Net = s
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4 network A.B.C.D/N"))?;
        if !(8..=30).contains(&net.prefix_len()) {
            return Err(format!(
                "prefix /{} must be between /8 and /30",
                net.prefix_len()
            ));
        }
        Ok(ServiceCidr(net.trunc()))
    }
}

impl TryFrom<String> for ServiceCidr {
    type Error = String;

    fn try_from(s: String) -> Result<ServiceCidr, String> {
        s.parse()
    }
}

impl From<ServiceCidr> for String {
    fn from(c: ServiceCidr) -> String {
        c.0.to_string()
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ServiceCidr {
    /// Whether `ip` is neither the network's nor its broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        ip != self.0.network() && ip != self.0.broadcast()
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.0.contains(&ip)
    }
}

/// Parses `LOW-HIGH`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not LOW-HIGH"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{lo:?} is not a port"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{hi:?} is not a port"))?;
    if lo == 0 || hi < lo {
        return Err(format!("{s:?} is not a range of ports"));
    }
    Ok((lo, hi))
}

impl DiscoveryConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), DiscoveryError> {
        let bad = |field, msg| DiscoveryError::Config { field, msg };
        parse_port_range(&self.node_port_range).map_err(|m| bad("node_port_range", m))?;
        self.dns_addr
            .parse::<SocketAddr>()
            .map_err(|_| bad("dns_addr", format!("{:?} is not HOST:PORT", self.dns_addr)))?;
        if !matches!(self.container_dns.as_str(), "" | "auto")
            && self.container_dns.parse::<IpAddr>().is_err()
        {
            return Err(bad(
                "container_dns",
                format!("{:?} is not an IP, \"auto\" or empty", self.container_dns),
            ));
        }
        if self.domain.is_empty() || self.domain.starts_with('.') || self.domain.ends_with('.') {
            return Err(bad("domain", format!("{:?} is not a domain", self.domain)));
        }
        Ok(())
    }

    /// The balancer's connect and ejection settings (the ingress uses them too).
    pub fn lb_settings(&self) -> lb::LbSettings {
        lb::LbSettings {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.max(1)),
            connect_attempts: self.connect_attempts.max(1),
            eject_after_failures: self.eject_after_failures.max(1),
            eject_for: Duration::from_millis(self.eject_ms),
        }
    }
}

fn spread(seed: &str, n: u32) -> u32 {
    let h = Sha256::digest(seed.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % n.max(1)
}

/// A free cluster IP for `namespace/name`: a hash of the name, then the
/// next free one. The network and broadcast addresses and the first host
/// address (reserved, as Kubernetes does) are never given.
///
/// The cluster id is part of the seed: two clusters on one host add their
/// cluster IPs to the same interface, and the same Service name must not
/// land on the same address in both (their balancers would share it).
pub fn allocate_cluster_ip(
    cidr: &ServiceCidr,
    cluster: &str,
    namespace: &str,
    name: &str,
    used: &HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let net = cidr.0;
    let size = 1u32 << (32 - u32::from(net.prefix_len()));
    let usable = size.checked_sub(3)?;
    let seed = if cluster.is_empty() {
        format!("{namespace}/{name}")
    } else {
        format!("{cluster}/{namespace}/{name}")
    };
    let start = spread(&seed, usable);
    (0..usable)
        .map(|i| Ipv4Addr::from(u32::from(net.network()) + 2 + (start + i) % usable))
        .find(|ip| !used.contains(ip))
}

/// A free node port for `namespace/name/port`, the same way.
pub fn allocate_node_port(range: (u16, u16), seed: &str, used: &HashSet<u16>) -> Option<u16> {
    let n = u32::from(range.1 - range.0) + 1;
    let start = spread(seed, n);
    (0..n)
        .map(|i| range.0 + ((start + i) % n) as u16)
        .find(|p| !used.contains(p))
}

/// Which DNS server this node's containers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerDns {
    /// Not decided yet: another server answers at the address and this
    /// node does not know yet whether it is of its own cluster. Containers
    /// are not started meanwhile, so none starts with the wrong resolver.
    Deciding,
    /// None: containers keep the engine's default resolver.
    Off,
    /// This address, port 53.
    At(IpAddr),
}

/// The running discovery of one node.
pub struct Discovery {
    table: watch::Receiver<Arc<ServiceTable>>,
    container_dns: watch::Receiver<ContainerDns>,
    conflict: watch::Receiver<Option<String>>,
    dns: Vec<dns::DnsServer>,
    dns_addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    kernel: Option<Arc<nft::KernelTable>>,
    served: watch::Receiver<Arc<ServiceTable>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // Here rather than only in the aborted task: an abort completes
        // later, and a stop must leave nothing of this node in the kernel.
        if let Some(k) = &self.kernel {
            k.stop();
        }
    }
}

/// What starting one DNS server needs.
#[derive(Clone)]
struct DnsStarter {
    cfg: DiscoveryConfig,
    upstreams: Vec<SocketAddr>,
    table: watch::Receiver<Arc<ServiceTable>>,
}

impl DnsStarter {
    async fn start(&self, listen: SocketAddr) -> Result<dns::DnsServer, dns::DnsError> {
        let config = dns::DnsConfig {
            listen: vec![listen],
            domain: self.cfg.domain.clone(),
            ttl_secs: self.cfg.dns_ttl_secs,
            upstreams: self.upstreams.clone(),
        };
        dns::start(config, self.table.clone()).await
    }
}

/// Keeps a DNS server running until the task is aborted.
async fn hold(server: dns::DnsServer) {
    let _server = server;
    std::future::pending::<()>().await
}

impl Discovery {
    /// Starts the table builder, the load balancer (or the kernel table of
    /// this node and `data_dir`) and DNS on `cfg.dns_addr`
    /// (and `container_dns`:53 when given). A fixed address another server
    /// already answers at is only shared with nodes of this cluster (see
    /// [`claim`]); that is decided in the background when this node does
    /// not know its cluster yet, and a refusal then shows in [`Discovery::conflict`].
    pub async fn start(
        cfg: &DiscoveryConfig,
        store: Store,
        membership: Membership,
        node: String,
        host_ip: Option<Ipv4Addr>,
        container_dns: Option<IpAddr>,
        data_dir: &std::path::Path,
    ) -> Result<Discovery, DiscoveryError> {
        cfg.validate()?;
        let table = nft::table_name(&node, data_dir);
        let kernel = if nft::choose(cfg.proxy_mode, &table)? {
            nft::allow_route_localnet();
            Some(nft::KernelTable::new(table))
        } else {
            None
        };
        ::metrics::gauge!(metrics::KERNEL_PROXY).set(if kernel.is_some() { 1.0 } else { 0.0 });
        let (tx, rx) = watch::channel(Arc::new(ServiceTable::default()));
        let mut tasks = vec![tokio::spawn(build_loop(
            store.clone(),
            membership,
            node,
            host_ip,
            tx,
        ))];
        let (served_tx, served) = watch::channel(Arc::new(ServiceTable::default()));
        tasks.push(tokio::spawn(balance_loop(
            cfg.clone(),
            rx.clone(),
            kernel.clone(),
            served_tx,
        )));
        let host_addr = cfg
            .dns_addr
            .parse::<SocketAddr>()
            .map_err(|_| DiscoveryError::Config {
                field: "dns_addr",
                msg: format!("{:?} is not HOST:PORT", cfg.dns_addr),
            })?;
        let upstreams = if cfg.forward {
            // Never forward to ourselves: a host whose resolv.conf lists the
            // bridge gateway would loop.
            let mut ours = vec![host_addr];
            ours.extend(container_dns.map(|ip| SocketAddr::new(ip, 53)));
            dns::upstreams_from_resolv_conf(std::path::Path::new("/etc/resolv.conf"), &ours)
        } else {
            Vec::new()
        };
        let starter = DnsStarter {
            cfg: cfg.clone(),
            upstreams,
            table: rx.clone(),
        };
        let (conflict_tx, conflict_rx) = watch::channel(None);
        let mut dns_servers = Vec::new();
        let mut dns_addrs = Vec::new();
        if host_addr.port() == 0 || claim::probe(host_addr, &cfg.domain).await == Holder::Nobody {
            let server = starter.start(host_addr).await?;
            dns_addrs.extend(server.local_addrs());
            dns_servers.push(server);
        } else {
            dns_addrs.push(host_addr);
            let (starter, store) = (starter.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                match claim::claim(host_addr, &starter.cfg.domain, &store).await {
                    Claim::Free | Claim::Shared => match starter.start(host_addr).await {
                        Ok(server) => hold(server).await,
                        Err(e) => {
                            let _ = conflict_tx.send(Some(e.to_string()));
                        }
                    },
                    Claim::Taken { holder } => {
                        let msg = format!(
                            "dns_addr {host_addr} is already served by {holder}: two clusters must not \
                             share a DNS address (queries would be split between them); give this \
                             node its own --dns-addr"
                        );
                        error!("{msg}");
                        let _ = conflict_tx.send(Some(msg));
                    }
                }
            }));
        }
        // The containers' server is separate so that failing to bind port 53
        // (taken, or no permission) leaves host DNS working; containers then
        // keep the engine's default resolver.
        let (cdns_tx, cdns_rx) = watch::channel(ContainerDns::Off);
        if let Some(ip) = container_dns {
            let listen = SocketAddr::new(ip, 53);
            if claim::probe(listen, &cfg.domain).await == Holder::Nobody {
                match starter.start(listen).await {
                    Ok(s) => {
                        dns_servers.push(s);
                        cdns_tx.send_replace(ContainerDns::At(ip));
                    }
                    Err(e) => warn!("containers get no cluster DNS: {e}"),
                }
            } else {
                cdns_tx.send_replace(ContainerDns::Deciding);
                tasks.push(tokio::spawn(container_dns_claim(
                    starter, store, listen, cdns_tx,
                )));
            }
        }
        info!(dns = ?dns_addrs, container_dns = ?*cdns_rx.borrow(), "discovery started");
        Ok(Discovery {
            table: rx,
            container_dns: cdns_rx,
            conflict: conflict_rx,
            dns: dns_servers,
            dns_addrs,
            tasks,
            kernel,
            served,
        })
    }

    /// The nftables table this node's Service traffic goes through, when
    /// the kernel data path is on.
    pub fn kernel_table(&self) -> Option<String> {
        self.kernel.as_ref().map(|k| k.name().to_string())
    }

    /// Whether the data path (listeners, or the kernel table) serves the
    /// current table: the table is published before it is applied, so an
    /// endpoint gone from the table may get connections for a moment.
    pub fn data_path_current(&self) -> bool {
        Arc::ptr_eq(&self.served.borrow(), &self.table.borrow())
    }

    /// The current table, updated as Services and pods change.
    pub fn table(&self) -> watch::Receiver<Arc<ServiceTable>> {
        self.table.clone()
    }

    /// The DNS server containers get, as decided so far.
    pub fn container_dns(&self) -> watch::Receiver<ContainerDns> {
        self.container_dns.clone()
    }

    /// Set when this node may not serve its host DNS address (another
    /// cluster serves it): the daemon stops with this message.
    pub fn conflict(&self) -> watch::Receiver<Option<String>> {
        self.conflict.clone()
    }

    /// Where DNS listens (ports resolved; a fixed address still being
    /// claimed is listed as configured).
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = self.dns_addrs.clone();
        for a in self.dns.iter().flat_map(|d| d.local_addrs()) {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        addrs
    }
}

/// Settles the containers' DNS address when another server already answers
/// at the bridge address: shared with this cluster's own nodes, else an
/// address of this cluster's own.
async fn container_dns_claim(
    starter: DnsStarter,
    store: Store,
    listen: SocketAddr,
    tx: watch::Sender<ContainerDns>,
) {
    let domain = starter.cfg.domain.clone();
    let at = match claim::claim(listen, &domain, &store).await {
        Claim::Free | Claim::Shared => Some(listen.ip()),
        Claim::Taken { holder } => {
            warn!(
                "container DNS address {listen} is served by {holder}; this cluster's containers get an address of their own"
            );
            claim::own_container_address(&store, &domain, &starter.cfg.vip_interface).await
        }
    };
    let Some(ip) = at else {
        tx.send_replace(ContainerDns::Off);
        return;
    };
    match starter.start(SocketAddr::new(ip, 53)).await {
        Ok(server) => {
            info!(%ip, "containers' DNS serving");
            tx.send_replace(ContainerDns::At(ip));
            hold(server).await;
        }
        Err(e) => {
            warn!("containers get no cluster DNS: {e}");
            tx.send_replace(ContainerDns::Off);
        }
    }
}

/// The DNS settings a container of a pod in `namespace` gets.
pub fn container_resolver(
    dns: IpAddr,
    domain: &str,
    namespace: &str,
) -> (Vec<String>, Vec<String>) {
    (
        vec![dns.to_string()],
        vec![format!("{namespace}.svc.{domain}"), format!("svc.{domain}")],
    )
}

/// Nodes gossip shows down or gone, unless another member by the same name
/// (the node restarted) is up.
fn unreachable_nodes(membership: &Membership) -> BTreeSet<String> {
    let members = membership.members();
    let up: BTreeSet<&str> = members
        .iter()
        .filter(|m| m.is_up())
        .filter_map(|m| m.name())
        .collect();
    members
        .iter()
        .filter(|m| !m.is_up())
        .filter_map(|m| m.name())
        .filter(|n| !up.contains(n))
        .map(str::to_string)
        .collect()
}

/// Rebuilds the table whenever a Service, a Pod or the membership changes
/// (and every few seconds regardless: level-triggered, so a missed event
/// costs latency, never correctness).
async fn build_loop(
    store: Store,
    membership: Membership,
    node: String,
    host_ip: Option<Ipv4Addr>,
    tx: watch::Sender<Arc<ServiceTable>>,
) {
    let mut watch = None;
    let mut members = membership.changes();
    loop {
        if watch.is_none() {
            watch = store.watch(None, None, None).ok();
        }
        let unreachable = unreachable_nodes(&membership);
        let services = store.list(Kind::Service, None).map(|(o, _)| o);
        let pods = store.list_shared(Kind::Pod, None).map(|(o, _)| o);
        if let (Ok(services), Ok(pods)) = (services, pods) {
            let local = endpoints::Local {
                node: &node,
                host_ip,
                unreachable: &unreachable,
            };
            let mut t = endpoints::build(&services, &pods, local);
            t.cluster_id = store.cluster_id();
            let n: usize = t
                .services
                .values()
                .flat_map(|s| s.ports.iter())
                .map(|p| p.endpoints.len())
                .sum();
            ::metrics::gauge!(metrics::SERVICES).set(t.services.len() as f64);
            ::metrics::gauge!(metrics::ENDPOINTS).set(n as f64);
            tx.send_if_modified(|cur| {
                if **cur == t {
                    false
                } else {
                    *cur = Arc::new(t);
                    true
                }
            });
        }
        let tick = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(tick);
        loop {
            let relevant = tokio::select! {
                _ = &mut tick => break,
                _ = async {
                    // Closed at shutdown: wait on the other arms instead of spinning.
                    if members.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => true,
                ev = async {
                    match watch.as_mut() {
                        Some(w) => w.next().await,
                        None => std::future::pending().await,
                    }
                } => match ev {
                    Ok(ev) => matches!(
                        ev.object.kind(),
                        Some(Kind::Service | Kind::Pod | Kind::Namespace)
                    ),
                    Err(_) => {
                        watch = None;
                        true
                    }
                },
            };
            if relevant {
                // Coalesce a burst (a rollout writes many pods at once).
                tokio::time::sleep(Duration::from_millis(20)).await;
                break;
            }
        }
    }
}

/// What a node may serve: cluster IPs only inside `discovery.service_cidr`
/// and node ports only inside `discovery.node_port_range`. The API refuses
/// others; this also holds for objects stored before it did, so no Service
/// can make a node take over an address (8.8.8.8, 169.254.169.254) or open
/// a listener on every interface (0.0.0.0).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    cidr: ServiceCidr,
    node_ports: Option<(u16, u16)>,
}

impl Bounds {
    fn of(cfg: &DiscoveryConfig) -> Bounds {
        Bounds {
            cidr: cfg.service_cidr,
            node_ports: parse_port_range(&cfg.node_port_range).ok(),
        }
    }

    fn cluster_ip(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(ip) && !ip.is_unspecified()
    }

    fn node_port(&self, port: u16) -> bool {
        self.node_ports
            .is_some_and(|(lo, hi)| (lo..=hi).contains(&port))
    }
}

/// The listeners the table asks for, within what this node may serve.
/// With the kernel path on, only Services with ClientIP affinity, which
/// the kernel path leaves to the balancer.
fn wanted(t: &ServiceTable, bounds: &Bounds, kernel: bool) -> BTreeMap<SocketAddr, lb::Want> {
    let mut want = BTreeMap::new();
    for s in t
        .services
        .values()
        .filter(|s| !kernel || s.client_ip_affinity.is_some())
    {
        let service = format!("{}/{}", s.namespace, s.name);
        for p in &s.ports {
            if let Some(ip) = s.cluster_ip.filter(|ip| bounds.cluster_ip(*ip)) {
                want.insert(
                    SocketAddr::from((ip, p.port)),
                    lb::Want {
                        service: service.clone(),
                        endpoints: p.endpoints.clone(),
                        affinity: s.client_ip_affinity,
                    },
                );
            }
            if let Some(np) = p.node_port.filter(|np| bounds.node_port(*np)) {
                want.insert(
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, np)),
                    lb::Want {
                        service: service.clone(),
                        endpoints: p.endpoints.clone(),
                        affinity: s.client_ip_affinity,
                    },
                );
            }
        }
    }
    want
}

/// Shortest time between two replacements of the kernel table: a burst
/// of endpoint changes costs a few `nft` runs, not one per change (the
/// watch keeps only the newest table).
const KERNEL_APPLY_GAP: Duration = Duration::from_millis(50);

/// Keeps listeners (or the kernel table) and cluster-IP addresses in step
/// with the table; binds and applies that failed are retried every few
/// seconds.
async fn balance_loop(
    cfg: DiscoveryConfig,
    mut rx: watch::Receiver<Arc<ServiceTable>>,
    kernel: Option<Arc<nft::KernelTable>>,
    served: watch::Sender<Arc<ServiceTable>>,
) {
    let mut applied: Option<Vec<nft::KernelService>> = None;
    let settings = cfg.lb_settings();
    let mut balancer = lb::Balancer::default();
    let mut vips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut warned: HashSet<SocketAddr> = HashSet::new();
    let bounds = Bounds::of(&cfg);
    loop {
        let table = rx.borrow_and_update().clone();
        let want_vips: BTreeSet<Ipv4Addr> = table
            .services
            .values()
            .filter_map(|s| s.cluster_ip)
            .filter(|ip| bounds.cluster_ip(*ip))
            .collect();
        for ip in want_vips.difference(&vips.clone()) {
            match vip::add(*ip, &cfg.vip_interface).await {
                Ok(()) => {
                    vips.insert(*ip);
                }
                Err(e) => warn!("cluster IP {ip} not served on this node: {e}"),
            }
        }
        for ip in vips.clone().difference(&want_vips) {
            if let Err(e) = vip::remove(*ip, &cfg.vip_interface).await {
                warn!("{e}");
            }
            vips.remove(ip);
        }
        let mut kernel_failed = false;
        if let Some(k) = &kernel {
            let want = nft::kernel_services(&table, &bounds);
            if applied.as_ref() != Some(&want) {
                let (k2, w2) = (k.clone(), want.clone());
                match tokio::task::spawn_blocking(move || k2.apply(&w2)).await {
                    Ok(Ok(())) => applied = Some(want),
                    Ok(Err(e)) => {
                        kernel_failed = true;
                        warn!(table = %k.name(), "Service rules not applied: {e}");
                    }
                    Err(e) => {
                        kernel_failed = true;
                        warn!(table = %k.name(), "Service rules not applied: {e}");
                    }
                }
                tokio::time::sleep(KERNEL_APPLY_GAP).await;
            }
        }
        let failed = balancer.reconcile(wanted(&table, &bounds, kernel.is_some()), &settings);
        ::metrics::gauge!(metrics::LB_BIND_FAILURES).set(failed.len() as f64);
        for (addr, e) in &failed {
            if warned.insert(*addr) {
                warn!(%addr, "load balancer cannot listen: {e}");
            }
        }
        warned.retain(|a| failed.iter().any(|(f, _)| f == a));
        let retry = !failed.is_empty() || kernel_failed;
        if !kernel_failed {
            served.send_replace(table.clone());
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)), if retry => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clusterIP: 8.8.8.8` made every node add 8.8.8.8 to `lo` and listen
    /// there; `0.0.0.0` opened a listener on every interface.
    #[test]
    fn only_cluster_ips_and_node_ports_in_their_ranges_are_served() {
        let entry = |name: &str, ip: &str, node_port: Option<u16>| ServiceEntry {
            name: name.into(),
            namespace: "default".into(),
            cluster_ip: Some(ip.parse().unwrap()),
            client_ip_affinity: None,
            ports: vec![PortEntry {
                name: None,
                port: 80,
                node_port,
                endpoints: Vec::new(),
            }],
        };
        let mut table = ServiceTable::default();
        for e in [
            entry("ok", "10.96.0.10", Some(30080)),
            entry("dns", "8.8.8.8", None),
            entry("meta", "169.254.169.254", None),
            entry("all", "0.0.0.0", Some(22)),
        ] {
            table
                .services
                .insert((e.namespace.clone(), e.name.clone()), e);
        }
        let bounds = Bounds::of(&DiscoveryConfig::default());
        let got: Vec<SocketAddr> = wanted(&table, &bounds, false).into_keys().collect();
        assert_eq!(
            got,
            vec![
                "0.0.0.0:30080".parse::<SocketAddr>().unwrap(),
                "10.96.0.10:80".parse().unwrap()
            ]
        );
        let cidr = "10.96.0.0/16".parse::<ServiceCidr>().unwrap();
        assert!(!cidr.is_host("10.96.0.0".parse().unwrap()));
        assert!(!cidr.is_host("10.96.255.255".parse().unwrap()));
        assert!(cidr.is_host("10.96.0.10".parse().unwrap()));
    }

    #[test]
    fn allocation_is_stable_and_skips_used_and_reserved() {
        let cidr = "10.96.0.0/30".parse::<ServiceCidr>().unwrap();
        // A /30 has one usable address after the reserved ones.
        let ip = allocate_cluster_ip(&cidr, "", "default", "web", &HashSet::new()).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 96, 0, 2));
        assert_eq!(
            allocate_cluster_ip(&cidr, "", "default", "web", &HashSet::from([ip])),
            None
        );
        let big = "10.96.7.9/16".parse::<ServiceCidr>().unwrap();
        let a = allocate_cluster_ip(&big, "", "default", "web", &HashSet::new()).unwrap();
        assert!(big.contains(a));
        assert_eq!(
            a,
            allocate_cluster_ip(&big, "", "default", "web", &HashSet::new()).unwrap()
        );
        let b = allocate_cluster_ip(&big, "", "default", "web", &HashSet::from([a])).unwrap();
        assert_ne!(a, b);
        // Two clusters on one host give the same Service different addresses.
        let one = allocate_cluster_ip(&big, "cluster-one", "default", "web", &HashSet::new());
        let two = allocate_cluster_ip(&big, "cluster-two", "default", "web", &HashSet::new());
        assert_ne!(one, two);
        assert!("10.0.0.0/31".parse::<ServiceCidr>().is_err());
        assert!("10.0.0.0".parse::<ServiceCidr>().is_err());
    }

    #[test]
    fn node_ports_come_from_the_range() {
        let r = parse_port_range("30000-30001").unwrap();
        let a = allocate_node_port(r, "x", &HashSet::new()).unwrap();
        let b = allocate_node_port(r, "x", &HashSet::from([a])).unwrap();
        assert_ne!(a, b);
        assert_eq!(allocate_node_port(r, "x", &HashSet::from([a, b])), None);
        assert!(parse_port_range("9-1").is_err());
    }

    #[test]
    fn config_errors_name_the_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            discovery: DiscoveryConfig,
        }
        let e = toml::from_str::<File>("[discovery]\nservice_cidr = \"10.96.0.0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("service_cidr"), "{e}");
        assert!(e.contains("10.96.0.0"), "{e}");
        let cfg: File = toml::from_str("[discovery]\nservice_cidr = \"10.97.3.4/20\"\n").unwrap();
        assert_eq!(cfg.discovery.service_cidr.to_string(), "10.97.0.0/20");
        let cfg = DiscoveryConfig {
            dns_addr: "nowhere".into(),
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("discovery.dns_addr"), "{e}");
        assert!(DiscoveryConfig::default().validate().is_ok());
    }
}
