//! node: starts and stops the components of one daemon (net, store,
//! autopilot, api) in order. Used by `shoal agent` and by in-process tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::agent::{self, logs::LogService};
use crate::autopilot::{self, AutopilotConfig};
use crate::config::{Config, ConfigError};
use crate::discovery::Discovery;
use crate::membership::{Membership, Meta};
use crate::net::{self, Net, NetConfig, NetError};
use crate::runtime::{
    DynRuntime, RuntimeError, RuntimeKind, docker::DockerRuntime, process::ProcessRuntime,
};
use crate::store::{NodeInfo, Store, StoreError};

/// Errors while starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("discovery: {0}")]
    Discovery(#[from] crate::discovery::DiscoveryError),
    #[error("ingress: {0}")]
    Ingress(#[from] crate::ingress::IngressError),
    #[error(
        "p2p listens on {addr}, beyond loopback, and this node has no cluster key: anyone who \
         reaches that port could join the cluster and read every Secret. Give the cluster's \
         key with --cluster-key-file FILE (the first node of a cluster, started without \
         --join, writes one to DATA_DIR/{GENERATED_KEY_FILE}; `shoal keygen > FILE` makes \
         one for nodes that bootstrap together), or listen on 127.0.0.1 for a single-host cluster"
    )]
    NoClusterKey { addr: String },
    #[error(
        "the API listens on {addr}, beyond loopback, and has no token: anyone who reaches it \
         could read every Secret and run anything. Set api.token (or api.token_file) in the \
         config, then make tokens with roles with `shoal token create`; or listen on 127.0.0.1"
    )]
    ApiWithoutToken { addr: String },
    #[error(
        "TLS on the API ({addr}) derives its certificates from the cluster key, and this node \
         has none: give --cluster-key-file FILE (`shoal keygen > FILE`), or set api.tls = \"off\" \
         and keep the API on loopback"
    )]
    TlsWithoutKey { addr: String },
    #[error("TLS on the API: {0}")]
    Tls(#[from] crate::api::tls::TlsError),
    #[error("audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen for the API on {addr}: {source}")]
    Api {
        addr: String,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    /// This node's identity as the cluster sees it.
    pub info: NodeInfo,
    /// The address the API actually listens on.
    pub api_addr: SocketAddr,
    /// The store handle.
    pub store: Store,
    /// The container runtime the agent drives.
    pub runtime: DynRuntime,
    /// Gossip membership.
    pub membership: Membership,
    /// DNS and the Service load balancer, unless disabled.
    pub discovery: Option<Arc<Discovery>>,
    /// The HTTP ingress, when a listener is configured (and discovery on).
    pub ingress: Option<Arc<crate::ingress::Ingress>>,
    net: Net,
    tasks: Vec<JoinHandle<()>>,
    agent: Arc<agent::Ctx>,
    /// Set by a leave that others saw: this node's pods are replaced
    /// elsewhere, so its containers are removed at shutdown.
    left: std::sync::atomic::AtomicBool,
}

/// The longest a leaving node spends stopping its containers: enough for
/// Kubernetes' default 30 s grace, within systemd's stop timeout (see
/// config/shoal.service).
const LEAVE_STOP_BUDGET: Duration = Duration::from_secs(30);

impl Node {
    /// Starts every component; returns once the API listens.
    pub async fn start(mut cfg: Config) -> Result<Node, NodeError> {
        cfg.validate()?;
        let name = cfg.node_name();
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| NodeError::DataDir {
            path: cfg.data_dir.display().to_string(),
            source,
        })?;
        secure_data_dir(&cfg.data_dir).map_err(|source| NodeError::DataDir {
            path: cfg.data_dir.display().to_string(),
            source,
        })?;
        // Absolute from here on: the data dir's paths reach the Docker
        // engine as bind-mount sources (volumes), and the engine takes a
        // relative path for a named volume (`--data-dir ./shoal-data`).
        cfg.data_dir =
            std::fs::canonicalize(&cfg.data_dir).map_err(|source| NodeError::DataDir {
                path: cfg.data_dir.display().to_string(),
                source,
            })?;
        let listen = net::parse_addr(&cfg.p2p_addr).await?;
        let psk = cluster_key(&cfg, &listen)?;
        let psk_bytes = psk.as_ref().and_then(crate::api::tls::psk_bytes);
        let ca = match psk.as_ref() {
            Some(k) => Some(crate::api::tls::ClusterCa::from_psk(k)?),
            None => None,
        };
        let net = Net::start(NetConfig {
            data_dir: cfg.data_dir.clone(),
            listen: listen.clone(),
            psk,
        })
        .await?;
        info!(name, peer_id = %net.peer_id(), "node identity");
        let api_listener =
            tokio::net::TcpListener::bind(&cfg.api_addr)
                .await
                .map_err(|source| NodeError::Api {
                    addr: cfg.api_addr.clone(),
                    source,
                })?;
        let api_addr = api_listener.local_addr().map_err(|source| NodeError::Api {
            addr: cfg.api_addr.clone(),
            source,
        })?;
        if !api_addr.ip().is_loopback() && cfg.api.token.is_none() {
            return Err(NodeError::ApiWithoutToken {
                addr: api_addr.to_string(),
            });
        }
        let api_tls = match cfg.api.tls {
            crate::api::TlsMode::On => true,
            crate::api::TlsMode::Off => {
                if !api_addr.ip().is_loopback() {
                    warn!(api = %api_addr, "api.tls = \"off\" on an address beyond loopback: \
                          tokens and Secrets cross the network in clear");
                }
                false
            }
            crate::api::TlsMode::Auto => !api_addr.ip().is_loopback(),
        };
        let api_tls = match (api_tls, &ca) {
            (false, _) => None,
            (true, None) => {
                return Err(NodeError::TlsWithoutKey {
                    addr: api_addr.to_string(),
                });
            }
            (true, Some(ca)) => {
                let (names, ips) = serving_names(&cfg, &api_addr);
                Some(ca.serving_config(&names, &ips)?)
            }
        };
        let p2p_addrs = match &cfg.advertise_addr {
            Some(a) => vec![net::parse_addr(a).await?.to_string()],
            None => advertised(&net, &listen, cfg.discovery.service_cidr),
        };
        info!(p2p_bound = %listen, advertised = ?p2p_addrs, "p2p addresses");
        let info = NodeInfo {
            name,
            peer_id: net.peer_id().to_base58(),
            p2p_addrs,
            api_addr: api_addr.to_string(),
        };
        let mut store_cfg = cfg.store_config();
        store_cfg.kek = encryption_key(&cfg, psk_bytes.as_ref())?;
        if store_cfg.kek.is_well_known() {
            warn!(
                "Secrets are sealed under a well-known key: this cluster has neither \
                 store.encryption_key_file nor a cluster key, so their values are kept out of \
                 plain sight on disk but not protected"
            );
        } else {
            info!(kek = store_cfg.kek.source(), "Secrets are sealed at rest");
        }
        let store_cfg_kek_well_known = store_cfg.kek.is_well_known();
        let store = Store::open(&cfg.data_dir.join("raft"), net.clone(), store_cfg).await?;
        // A wrong key must stop the node before it serves anything.
        if let Err(e) = store.check_encryption_key() {
            store.shutdown().await;
            // The swarm's handlers hold the store (and its RocksDB lock)
            // until the swarm stops: a restart in this process would
            // find the data dir locked.
            net.shutdown().await;
            return Err(e.into());
        }
        if !store_cfg_kek_well_known {
            let store = store.clone();
            tokio::spawn(async move {
                // Until the write lands: Raft may not have a leader yet.
                for _ in 0..60 {
                    match store.rewrap_keyring().await {
                        Ok(true) => {
                            warn!(
                                "this cluster's Secrets were sealed under the well-known key \
                                 (it had no cluster key); their data keys are now wrapped \
                                 under this node's key"
                            );
                            return;
                        }
                        Ok(false) => return,
                        Err(e) => debug!("re-wrapping the keyring, will retry: {e}"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        let mut seeds = Vec::new();
        for j in &cfg.join {
            seeds.push(net::parse_addr(j).await?);
        }
        let runtime = open_runtime(&cfg).await?;
        let (cpu_millis, memory_bytes) = agent::registration::capacity(&cfg.agent);
        let membership = Membership::start(
            net.clone(),
            Meta {
                name: info.name.clone(),
                p2p_addrs: info.p2p_addrs.clone(),
                api_addr: info.api_addr.clone(),
                cpu_millis,
                memory_bytes,
                labels: cfg.agent.labels.clone(),
                shoal_version: env!("CARGO_PKG_VERSION").to_string(),
                raft_role: crate::membership::RaftRole::None,
                runtime: runtime.name().to_string(),
                ..Meta::default()
            },
            cfg.membership.clone(),
        );
        membership.join(seeds);
        let mut tasks = vec![
            autopilot::spawn(
                store.clone(),
                membership.clone(),
                info.clone(),
                AutopilotConfig {
                    dev: cfg.dev,
                    bootstrap_expect: cfg.bootstrap_expect,
                    voters: cfg.raft.voters,
                    dead_voter_grace: Duration::from_millis(cfg.raft.dead_voter_grace_ms),
                },
            ),
            autopilot::spawn_role_publisher(store.clone(), membership.clone()),
            crate::controller::spawn(store.clone(), membership.clone(), cfg.scheduler.clone()),
        ];
        let host_ip = host_ip(&info);
        let discovery = if cfg.discovery.enabled {
            let container_dns = match cfg.discovery.container_dns.as_str() {
                "" => None,
                "auto" => runtime.host_address_for_containers().await,
                ip => ip.parse().ok(),
            };
            Some(Arc::new(
                Discovery::start(
                    &cfg.discovery,
                    store.clone(),
                    membership.clone(),
                    info.name.clone(),
                    host_ip.parse().ok(),
                    container_dns,
                    &cfg.data_dir,
                )
                .await?,
            ))
        } else {
            None
        };
        let ingress = match &discovery {
            Some(d) => crate::ingress::Ingress::start(
                &cfg.ingress,
                cfg.dev,
                store.clone(),
                d.table(),
                cfg.discovery.lb_settings(),
            )
            .await?
            .map(Arc::new),
            None => None,
        };
        let cluster_dns = discovery
            .as_ref()
            .map(|d| (d.container_dns(), cfg.discovery.domain.clone()));
        let ctx = agent::Ctx::new(
            store.clone(),
            runtime.clone(),
            info.name.clone(),
            host_ip,
            cfg.agent.clone(),
            match cfg.scheduler.disconnected_pods {
                crate::controller::DisconnectedPods::Keep => None,
                crate::controller::DisconnectedPods::Stop => Some(Duration::from_millis(
                    cfg.scheduler.disconnected_stop_after_ms,
                )),
            },
            cluster_dns,
            cfg.data_dir.join("volumes"),
        );
        // Containers reach the API at the host's address; loopback is
        // their own, so an API on loopback only is not given to them.
        let _ = ctx.api.set(agent::serviceaccount::ApiEndpoint {
            host: match api_addr.ip() {
                ip if ip.is_loopback() => None,
                ip if ip.is_unspecified() => Some(ctx.host_ip.clone()),
                ip => Some(ip.to_string()),
            },
            port: api_addr.port(),
            ca_pem: match (&api_tls, &ca) {
                (Some(_), Some(ca)) => Some(ca.cert_pem()),
                _ => None,
            },
        });
        tasks.push(agent::spawn(ctx.clone(), info.clone()));
        let logs = LogService::start(
            store.clone(),
            net.clone(),
            runtime.clone(),
            info.name.clone(),
        );
        let exec = crate::agent::exec::ExecService::start(
            store.clone(),
            net.clone(),
            runtime.clone(),
            info.name.clone(),
        );
        let usage =
            crate::agent::usage::UsageService::start(ctx.clone(), net.clone(), cfg.metrics.clone());
        tasks.push(crate::controller::hpa::spawn(
            store.clone(),
            Arc::new(ClusterUsage {
                usage: usage.clone(),
                membership: membership.clone(),
            }),
            Duration::from_millis(cfg.metrics.autoscaler_sync_ms.max(500)),
        ));
        let mut api_state = crate::api::ApiState::new(store.clone(), info.clone(), &cfg.api);
        let audit_path = match cfg.api.audit_log.as_deref() {
            None => Some(cfg.data_dir.join("audit").join("audit.log")),
            Some("") => None,
            Some(p) => Some(std::path::PathBuf::from(p)),
        };
        if let Some(path) = audit_path {
            let audit = crate::api::audit::Audit::start(
                path.clone(),
                cfg.api.audit_max_bytes,
                cfg.api.audit_max_files,
            )
            .map_err(|source| NodeError::Audit {
                path: path.display().to_string(),
                source,
            })?;
            api_state = api_state.with_audit(audit);
        }
        let api_state = api_state
            .with_logs(logs)
            .with_exec(exec)
            .with_usage(usage)
            .with_membership(membership.clone())
            .with_services(cfg.discovery.clone(), discovery.as_ref().map(|d| d.table()));
        let scheme = if api_tls.is_some() { "https" } else { "http" };
        tasks.push(tokio::spawn(crate::api::serve(
            api_listener,
            api_tls,
            api_state,
        )));
        info!(api = %api_addr, "API listening on {scheme}://{api_addr}");
        Ok(Node {
            info,
            api_addr,
            store,
            runtime,
            membership,
            discovery,
            ingress,
            net,
            tasks,
            agent: ctx,
            left: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The node's swarm (for fault injection in tests and the chaos harness).
    pub fn net_handle(&self) -> &Net {
        &self.net
    }

    /// Set when this node may not serve its DNS address (another cluster
    /// serves it); the daemon then stops with that message.
    pub fn dns_conflict(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        self.discovery.as_ref().map(|d| d.conflict())
    }

    /// Waits until this node is a member of a cluster with a leader.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.store.is_member() && self.store.leader().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Leaves the cluster on purpose (SIGTERM): tells every member, waits
    /// (a few seconds at most) until the leader has taken this node out of
    /// the voters, handing over leadership if it is the leader, then
    /// announces the departure through gossip. Call [`Node::shutdown`] next.
    pub async fn leave(&self) {
        let others = self
            .membership
            .members()
            .iter()
            .any(|m| !m.is_self && m.is_up());
        if !others {
            return;
        }
        self.membership.announce_leaving().await;
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            let role = autopilot::raft_role(&self.store);
            if !role.votes() {
                break;
            }
            // Once removed, this node gets no more replication and so never
            // sees its own removal (found by the chaos harness: every leave
            // waited out the whole deadline).
            if matches!(self.store.leader_keeps_me().await, Ok(false)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.membership.leave().await;
    }

    /// Stops every task and the Raft node and releases the data dir. After
    /// a leave, this node's containers are stopped (each with its pod's
    /// grace, within [`LEAVE_STOP_BUDGET`]) and removed: the cluster
    /// replaces its pods elsewhere, and they would otherwise run on as
    /// duplicates, or stay behind exited. Without a leave (the last node,
    /// or a crash) they keep running and are adopted at the next start.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if self.left.load(std::sync::atomic::Ordering::SeqCst) {
            agent::remove_all(&self.agent, LEAVE_STOP_BUDGET).await;
        }
        self.membership.shutdown();
        self.store.shutdown().await;
        self.net.shutdown().await;
        drop(self.store);
    }
}

/// The names and addresses the API's serving certificate is for: the
/// node's name, the host name, `localhost`, `api.tls_names`, and the
/// address it listens on (every host address when that is unspecified).
fn serving_names(cfg: &Config, api: &SocketAddr) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let mut names = vec![cfg.node_name()];
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str()
    {
        names.push(h.to_string());
    }
    names.push("localhost".into());
    names.extend(cfg.api.tls_names.iter().cloned());
    names.dedup();
    let mut ips: Vec<std::net::IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    if api.ip().is_unspecified() {
        ips.extend(
            net::host_ipv4_addrs()
                .into_iter()
                .map(|(_, ip)| std::net::IpAddr::V4(ip)),
        );
    } else {
        ips.push(api.ip());
    }
    ips.sort();
    ips.dedup();
    (names, ips)
}

/// Where a node that founds a cluster keeps the key it generated.
pub const GENERATED_KEY_FILE: &str = "cluster.key";

/// The cluster key: the file given; else the one this data dir generated
/// earlier; else none on loopback (only this host's processes reach it);
/// else a new one when this node founds a cluster (no seeds to join), which
/// it prints once for the other nodes. A node that would listen beyond
/// loopback to join a cluster without a key refuses to start.
fn cluster_key(
    cfg: &Config,
    listen: &libp2p::Multiaddr,
) -> Result<Option<libp2p::pnet::PreSharedKey>, NodeError> {
    if let Some(p) = &cfg.cluster_key_file {
        return Ok(Some(net::load_cluster_key(p)?));
    }
    let own = cfg.data_dir.join(GENERATED_KEY_FILE);
    if own.exists() {
        return Ok(Some(net::load_cluster_key(&own)?));
    }
    if net::is_loopback(listen) {
        warn!(
            "this cluster has no cluster key: p2p listens on loopback, so only this host's \
             processes can join it; give --cluster-key-file before listening anywhere else"
        );
        return Ok(None);
    }
    if !cfg.join.is_empty() || cfg.bootstrap_expect.is_some_and(|n| n > 1) {
        return Err(NodeError::NoClusterKey {
            addr: cfg.p2p_addr.clone(),
        });
    }
    let key = net::generate_cluster_key();
    net::write_private(&own, net::cluster_key_text(&key).as_bytes()).map_err(|source| {
        NodeError::DataDir {
            path: own.display().to_string(),
            source,
        }
    })?;
    let advertise = cfg.advertise_addr.as_deref().unwrap_or(&cfg.p2p_addr);
    warn!(
        key_file = %own.display(),
        "generated this cluster's key; other nodes need a copy of it to join: \
         shoal agent --join {advertise} --cluster-key-file <copy of {}>",
        own.display()
    );
    Ok(Some(key))
}

/// The key-encryption key for Secrets at rest: `store.encryption_key_file`
/// when set (it can live apart from the data dir, which holds the cluster
/// key a node generated); else derived from the cluster key every node
/// already has, so a cluster seals its Secrets with no further setup; else
/// (a loopback cluster with no key at all) the well-known key.
fn encryption_key(
    cfg: &Config,
    cluster_key: Option<&[u8; 32]>,
) -> Result<crate::store::sealing::Kek, NodeError> {
    use crate::store::sealing::Kek;
    if let Some(p) = &cfg.store.encryption_key_file {
        return Kek::load(p).map_err(|e| NodeError::Store(e.into()));
    }
    Ok(match cluster_key {
        Some(k) => Kek::from_cluster_key(k),
        None => Kek::well_known(),
    })
}

/// Makes the data dir private (0700) and every file under it 0600, also for
/// a data dir an older version created world-readable: it holds the node's
/// key, the cluster key and the whole replica, Secrets included.
fn secure_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(mode & 0o700),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The runtime asked for, or Docker when an engine answers and the process
/// driver otherwise; the choice is logged and published in the Node object.
async fn open_runtime(cfg: &Config) -> Result<DynRuntime, NodeError> {
    let process = || -> Result<DynRuntime, NodeError> {
        let opts =
            cfg.agent
                .process_options(&cfg.data_dir)
                .map_err(|msg| RuntimeError::Engine {
                    op: "open process runtime",
                    msg,
                })?;
        let rt = ProcessRuntime::new(cfg.data_dir.join("process"), opts)?;
        Ok(Arc::new(rt))
    };
    let pull = Duration::from_secs(cfg.agent.image_pull_timeout_secs);
    let logs = cfg.agent.log_limits();
    let privileged = cfg.agent.allow_privileged;
    match cfg.runtime {
        Some(RuntimeKind::Process) => process(),
        Some(RuntimeKind::Docker) => Ok(Arc::new(
            DockerRuntime::connect()
                .await?
                .with_pull_timeout(pull)
                .with_log_limits(logs)
                .with_allow_privileged(privileged),
        )),
        None => match DockerRuntime::connect().await {
            Ok(d) => {
                info!("using the docker runtime");
                Ok(Arc::new(
                    d.with_pull_timeout(pull)
                        .with_log_limits(logs)
                        .with_allow_privileged(privileged),
                ))
            }
            Err(e) => {
                info!("no Docker engine ({e}); using the process runtime");
                process()
            }
        },
    }
}

/// The IP other hosts reach this one at: the first published IPv4 address.
fn host_ip(info: &NodeInfo) -> String {
    info.p2p_addrs
        .iter()
        .find_map(|a| {
            let rest = a.strip_prefix("/ip4/")?;
            Some(rest.split('/').next()?.to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The addresses to publish. A specific listen address is published as
/// bound. A wildcard one stands for every address of the host, of which
/// only those other hosts can reach are published, sorted so that a
/// restart publishes the same set (see [`reachable_addrs`]).
fn advertised(
    net: &Net,
    listen: &libp2p::Multiaddr,
    service_cidr: crate::discovery::ServiceCidr,
) -> Vec<String> {
    let bound = net.listen_addrs();
    if !net::is_wildcard(listen) {
        return bound.into_iter().map(|a| a.to_string()).collect();
    }
    let Some(port) = bound.iter().find_map(net::tcp_port) else {
        return Vec::new();
    };
    reachable_addrs(&net::host_ipv4_addrs(), Some(&service_cidr))
        .into_iter()
        .map(|ip| format!("/ip4/{ip}/tcp/{port}"))
        .collect()
}

/// Interfaces that belong to containers or virtual machines on this host,
/// by the prefixes their creators give them.
const LOCAL_BRIDGES: &[&str] = &[
    "docker", "br-", "veth", "cni", "virbr", "flannel", "cali", "vxlan", "podman", "lxc",
];

/// Of the host's addresses, those another host can reach: not loopback
/// (unless there is nothing else), not a Service cluster IP (shoal adds
/// those to `lo` itself, so they come and go), not a container bridge.
fn reachable_addrs(
    addrs: &[(String, std::net::Ipv4Addr)],
    service_cidr: Option<&crate::discovery::ServiceCidr>,
) -> Vec<std::net::Ipv4Addr> {
    let usable = |ip: &std::net::Ipv4Addr| {
        !ip.is_unspecified() && !service_cidr.is_some_and(|c| c.contains(*ip))
    };
    let mut out: Vec<std::net::Ipv4Addr> = addrs
        .iter()
        .filter(|(name, ip)| {
            !ip.is_loopback() && usable(ip) && !LOCAL_BRIDGES.iter().any(|b| name.starts_with(b))
        })
        .map(|(_, ip)| *ip)
        .collect();
    if out.is_empty() {
        out = addrs
            .iter()
            .map(|(_, ip)| *ip)
            .filter(|ip| ip.is_loopback() && usable(ip))
            .collect();
    }
    out.sort();
    out.dedup();
    out
}

/// The autoscaler's view of usage: the pods every member that is up reports.
struct ClusterUsage {
    usage: Arc<crate::agent::usage::UsageService>,
    membership: Membership,
}

impl crate::controller::hpa::UsageSource for ClusterUsage {
    fn pods(&self) -> futures::future::BoxFuture<'_, Vec<crate::resource::usage::PodSample>> {
        Box::pin(async move {
            let nodes: Vec<String> = self
                .membership
                .members()
                .iter()
                .filter(|m| m.is_up())
                .filter_map(|m| m.name().map(str::to_string))
                .collect();
            let samples = self.usage.fetch_all(&nodes).await;
            samples.into_iter().flat_map(|n| n.pods).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data dir, node.key and the Raft files were world-readable.
    #[test]
    fn an_existing_data_dir_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("raft")).expect("mkdir");
        std::fs::write(dir.join("node.key"), b"k").expect("write");
        std::fs::write(dir.join("raft/CURRENT"), b"x").expect("write");
        for (p, m) in [
            (dir.clone(), 0o755),
            (dir.join("raft"), 0o755),
            (dir.join("node.key"), 0o644),
            (dir.join("raft/CURRENT"), 0o664),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        secure_data_dir(&dir).expect("secure");
        let mode = |p: std::path::PathBuf| {
            std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
        };
        assert_eq!(mode(dir.clone()), 0o700);
        assert_eq!(mode(dir.join("raft")), 0o700);
        assert_eq!(mode(dir.join("node.key")), 0o600);
        assert_eq!(mode(dir.join("raft/CURRENT")), 0o600);
    }

    #[test]
    fn a_wildcard_advertises_reachable_host_addresses_in_a_stable_order() {
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().expect("ip");
        let host = |pairs: &[(&str, &str)]| -> Vec<(String, std::net::Ipv4Addr)> {
            pairs.iter().map(|(n, a)| (n.to_string(), ip(a))).collect()
        };
        let cidr = "10.96.0.0/16"
            .parse::<crate::discovery::ServiceCidr>()
            .expect("cidr");
        let addrs = host(&[
            ("lo", "127.0.0.1"),
            ("lo", "10.96.0.10"), // a cluster IP shoal itself added
            ("eth1", "192.168.1.20"),
            ("docker0", "172.17.0.1"),
            ("br-5f2a", "172.18.0.1"),
            ("veth12", "169.254.3.3"),
            ("eth0", "10.0.0.5"),
        ]);
        assert_eq!(
            reachable_addrs(&addrs, Some(&cidr)),
            vec![ip("10.0.0.5"), ip("192.168.1.20")]
        );
        // Ten more Services later: the same set, so no membership change.
        let mut more = addrs.clone();
        more.extend((11..21).map(|i| ("lo".to_string(), ip(&format!("10.96.0.{i}")))));
        more.reverse();
        assert_eq!(
            reachable_addrs(&more, Some(&cidr)),
            reachable_addrs(&addrs, Some(&cidr))
        );
        // A host with nothing but loopback advertises loopback, minus cluster IPs.
        let lonely = host(&[("lo", "127.0.0.1"), ("lo", "127.96.0.4")]);
        let test_cidr = "127.96.0.0/16"
            .parse::<crate::discovery::ServiceCidr>()
            .expect("cidr");
        assert_eq!(
            reachable_addrs(&lonely, Some(&test_cidr)),
            vec![ip("127.0.0.1")]
        );
    }
}
