//! HTTP ingress on every node: `networking.k8s.io/v1` Ingresses routed by
//! host and path to Services, with TLS from `kubernetes.io/tls` Secrets.
//! No controller to install: each node builds the same [`routes::RouteTable`]
//! from its own replica and the discovery endpoint table, and proxies itself.
//!
//! The deciding is pure ([`routes::build`], [`routes::RouteTable::lookup`]);
//! this module's IO is a loop that rebuilds the table (and the endpoint
//! pools, and the certificates) on every change and publishes it through a
//! `watch` channel, and the listeners of [`proxy`]. A request reads the
//! table once when it arrives, so swapping it never disturbs one in flight.

pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::discovery::ServiceTable;
use crate::discovery::lb::{LbSettings, Pool};
use crate::resource::Kind;
use crate::store::Store;
use routes::{BackendKey, RouteTable};

/// Errors starting the ingress.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A listen address does not parse.
    #[error("ingress.{field}: {value:?} is not HOST:PORT")]
    Addr {
        /// `http_addr` or `https_addr`.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// A listener could not be bound.
    #[error("ingress.{field}: cannot listen on {addr}: {source}")]
    Bind {
        /// `http_addr` or `https_addr`.
        field: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration could not be made.
    #[error("ingress TLS: {0}")]
    Tls(String),
    /// A configuration value is out of range.
    #[error("ingress.{field}: {msg}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// `[ingress]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// Plain HTTP listen address: `0.0.0.0:80` when unset (none with
    /// `--dev`), empty for none.
    pub http_addr: Option<String>,
    /// HTTPS listen address: `0.0.0.0:443` when unset (none with `--dev`),
    /// empty for none.
    pub https_addr: Option<String>,
    /// An HTTP/1 connection is closed when the headers of its next request
    /// have not arrived within this many seconds (idle keep-alive included);
    /// HTTP/2 connections are pinged at half of it.
    pub idle_timeout_secs: u64,
    /// Most client connections open at once per listener; more wait in the
    /// kernel's backlog.
    pub max_connections: usize,
    /// Log one line per request (off by default).
    pub access_log: bool,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            http_addr: None,
            https_addr: None,
            idle_timeout_secs: 60,
            max_connections: 16_384,
            access_log: false,
        }
    }
}

impl IngressConfig {
    /// The listen addresses this node uses: an explicit setting, else the
    /// defaults outside `--dev` (where ports 80 and 443 are rarely free).
    /// Also tells whether each was set explicitly (a failure to bind is then
    /// an error rather than a warning).
    pub fn listen(&self, dev: bool) -> Result<[Option<(SocketAddr, bool)>; 2], IngressError> {
        let one = |field: &'static str,
                   v: &Option<String>,
                   default: &str|
         -> Result<Option<(SocketAddr, bool)>, IngressError> {
            match v.as_deref() {
                None if dev => Ok(None),
                None => Ok(default.parse().ok().map(|a| (a, false))),
                Some("") => Ok(None),
                Some(s) => s
                    .parse()
                    .map(|a| Some((a, true)))
                    .map_err(|_| IngressError::Addr {
                        field,
                        value: s.into(),
                    }),
            }
        };
        Ok([
            one("http_addr", &self.http_addr, "0.0.0.0:80")?,
            one("https_addr", &self.https_addr, "0.0.0.0:443")?,
        ])
    }

    /// Checks values serde cannot.
    pub fn validate(&self, dev: bool) -> Result<(), IngressError> {
        self.listen(dev)?;
        if self.idle_timeout_secs == 0 {
            return Err(IngressError::Config {
                field: "idle_timeout_secs",
                msg: "must be at least 1".into(),
            });
        }
        if self.max_connections == 0 {
            return Err(IngressError::Config {
                field: "max_connections",
                msg: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// What a request is served from: the routes, a pool per backend (shared
/// with earlier versions so ejections and load survive a rebuild), and the
/// certificates.
pub struct Live {
    /// The route table.
    pub routes: RouteTable,
    /// Endpoint pools by backend.
    pub pools: HashMap<BackendKey, Arc<Pool>>,
    /// Certificates by host, for the TLS listener.
    pub certs: tls::Certs,
    /// Metric handles by route id, registered on a route's first request:
    /// looking labelled metrics up on every request costs more than they do.
    pub metrics: Vec<std::sync::OnceLock<proxy::RouteMetrics>>,
}

impl Live {
    /// What requests are served from, with room for each route's metrics.
    pub fn new(
        routes: RouteTable,
        pools: HashMap<BackendKey, Arc<Pool>>,
        certs: tls::Certs,
    ) -> Live {
        let metrics = (0..routes.route_count)
            .map(|_| Default::default())
            .collect();
        Live {
            routes,
            pools,
            certs,
            metrics,
        }
    }

    fn empty() -> Live {
        Live {
            routes: RouteTable::default(),
            pools: HashMap::new(),
            certs: tls::Certs::default(),
            metrics: Vec::new(),
        }
    }
}

/// The running ingress of one node.
pub struct Ingress {
    live: watch::Receiver<Arc<Live>>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Ingress {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Ingress {
    /// Binds the listeners and starts the table builder. `None` when
    /// neither listener is configured.
    pub async fn start(
        cfg: &IngressConfig,
        dev: bool,
        store: Store,
        services: watch::Receiver<Arc<ServiceTable>>,
        lb: LbSettings,
    ) -> Result<Option<Ingress>, IngressError> {
        cfg.validate(dev)?;
        let [http, https] = cfg.listen(dev)?;
        let mut bound = [None, None];
        for (i, (field, want)) in [("http_addr", http), ("https_addr", https)]
            .into_iter()
            .enumerate()
        {
            let Some((addr, explicit)) = want else {
                continue;
            };
            match bind(addr) {
                Ok(l) => bound[i] = Some(l),
                Err(source) if explicit => {
                    return Err(IngressError::Bind {
                        field,
                        addr,
                        source,
                    });
                }
                Err(e) => {
                    // The default on a host where 80/443 are taken or need
                    // privileges: the node still runs, without that listener.
                    warn!(%addr, "ingress.{field} (default) not served: {e}; set it to another address or to \"\" to silence this");
                }
            }
        }
        let [http_l, https_l] = bound;
        if http_l.is_none() && https_l.is_none() {
            return Ok(None);
        }
        let (tx, rx) = watch::channel(Arc::new(Live::empty()));
        let mut tasks = vec![tokio::spawn(build_loop(store, services, lb, tx))];
        let local =
            |l: &Option<tokio::net::TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let (http, https) = (local(&http_l), local(&https_l));
        let server = Arc::new(proxy::Server::new(cfg, rx.clone(), https.map(|a| a.port())));
        if let Some(l) = http_l {
            tasks.push(tokio::spawn(proxy::serve_http(server.clone(), l)));
        }
        if let Some(l) = https_l {
            let tls = tls::server_config(rx.clone())?;
            tasks.push(tokio::spawn(proxy::serve_https(server.clone(), l, tls)));
        }
        info!(?http, ?https, "ingress listening");
        Ok(Some(Ingress {
            live: rx,
            http,
            https,
            tasks,
        }))
    }

    /// Where plain HTTP is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// Where HTTPS is served.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// The table requests are served from now.
    pub fn live(&self) -> watch::Receiver<Arc<Live>> {
        self.live.clone()
    }
}

/// Binds a listener of this node alone: unlike the Service balancer's, no
/// SO_REUSEPORT, so a second node (or another cluster's) on the host gets
/// "address in use" instead of silently sharing the port.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // Lets a restarted node bind while old connections sit in TIME_WAIT.
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// Makes `pools` hold one pool per backend of `routes` with its current
/// endpoints, keeping the pools (and their ejections) of backends that stay.
pub fn sync_pools(
    pools: &mut HashMap<BackendKey, Arc<Pool>>,
    routes: &RouteTable,
    lb: &LbSettings,
) {
    pools.retain(|k, _| routes.endpoints.contains_key(k));
    for (k, eps) in &routes.endpoints {
        pools
            .entry(k.clone())
            .or_insert_with(|| Pool::new(k.service_label(), lb.clone()))
            .set_endpoints(eps);
    }
}

/// Rebuilds what requests are served from whenever Ingresses, classes,
/// Secrets or the endpoint table change, and every few seconds besides
/// (level-triggered: a missed event costs at most that long).
async fn build_loop(
    store: Store,
    mut services: watch::Receiver<Arc<ServiceTable>>,
    lb: LbSettings,
    tx: watch::Sender<Arc<Live>>,
) {
    let mut watch = None;
    let mut pools: HashMap<BackendKey, Arc<Pool>> = HashMap::new();
    let mut certs = tls::CertCache::default();
    let mut logged_ignored: Vec<routes::Ignored> = Vec::new();
    loop {
        if watch.is_none() {
            watch = store.watch(None, None, None).ok();
        }
        let ingresses = store.list(Kind::Ingress, None).map(|(o, _)| o);
        let classes = store.list(Kind::IngressClass, None).map(|(o, _)| o);
        if let (Ok(ingresses), Ok(classes)) = (ingresses, classes) {
            let table = services.borrow_and_update().clone();
            let routes = routes::build(&ingresses, &classes, &table);
            for ig in &routes.ignored {
                if !logged_ignored.contains(ig) {
                    info!(ingress = %ig.ingress, "not served: {}", ig.reason);
                }
            }
            logged_ignored = routes.ignored.clone();
            sync_pools(&mut pools, &routes, &lb);
            let certs = certs.refresh(&routes, &store);
            ::metrics::gauge!(metrics::ROUTES).set(routes.endpoints.len() as f64);
            ::metrics::gauge!(metrics::IGNORED).set(routes.ignored.len() as f64);
            ::metrics::gauge!(metrics::CERTIFICATES).set(certs.len() as f64);
            tx.send_replace(Arc::new(Live::new(routes, pools.clone(), certs)));
        }
        let tick = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(tick);
        loop {
            let relevant = tokio::select! {
                _ = &mut tick => break,
                r = services.changed() => {
                    if r.is_err() {
                        // Discovery stopped: the node is shutting down.
                        return;
                    }
                    true
                }
                ev = async {
                    match watch.as_mut() {
                        Some(w) => w.next().await,
                        None => std::future::pending().await,
                    }
                } => match ev {
                    Ok(ev) => matches!(
                        ev.object.kind(),
                        Some(Kind::Ingress | Kind::IngressClass | Kind::Secret)
                    ),
                    Err(_) => {
                        watch = None;
                        true
                    }
                },
            };
            if relevant {
                // Coalesce a burst (an apply of many objects).
                tokio::time::sleep(Duration::from_millis(20)).await;
                break;
            }
        }
    }
}
