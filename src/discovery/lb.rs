//! The per-node TCP load balancer: one listener per Service port (on the
//! cluster IP, and on every address for a NodePort), each spreading new
//! connections over the port's ready endpoints by power-of-two-choices on
//! active connections.
//!
//! Endpoint changes swap the pool's list; connections already open keep
//! their upstream socket and finish undisturbed. A failed connect is retried
//! on another endpoint; an endpoint failing `eject_after_failures` times in
//! a row is left out for `eject_ms` (unless nothing else is left).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::table::Endpoint;

/// How the balancer connects and ejects.
#[derive(Debug, Clone)]
pub struct LbSettings {
    /// Longest wait for an upstream connect before trying another.
    pub connect_timeout: Duration,
    /// Endpoints tried per client connection.
    pub connect_attempts: u32,
    /// Consecutive failures that eject an endpoint.
    pub eject_after_failures: u32,
    /// How long an ejected endpoint is left out.
    pub eject_for: Duration,
}

/// One endpoint with the counters the choice uses.
#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    active: AtomicU32,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl Upstream {
    fn new(addr: SocketAddr) -> Arc<Upstream> {
        Arc::new(Upstream {
            addr,
            active: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
        })
    }

    fn ejected(&self, now: Instant) -> bool {
        self.ejected_until
            .lock()
            .map(|g| g.is_some_and(|t| t > now))
            .unwrap_or(false)
    }
}

/// Decrements the endpoint's active count when the connection ends.
struct Active(Arc<Upstream>);

impl Active {
    fn new(u: Arc<Upstream>) -> Active {
        u.active.fetch_add(1, Ordering::Relaxed);
        Active(u)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An endpoint chosen by [`Pool::lease`]; counts as an active connection
/// of that endpoint (for the choice) until dropped.
pub struct Lease {
    active: Active,
}

impl Lease {
    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.active.0.addr
    }
}

/// A pool's metric handles, registered once: looking a labelled metric
/// up on every connection would cost more than the proxying itself.
struct PoolMetrics {
    connections: Counter,
    unserved: Counter,
    upstream_errors: Counter,
    ejections: Counter,
    bytes_up: Counter,
    bytes_down: Counter,
    active: Gauge,
    connect_seconds: Histogram,
}

impl PoolMetrics {
    fn new(service: &str) -> PoolMetrics {
        let s = service.to_string();
        PoolMetrics {
            connections: counter!(crate::discovery::metrics::LB_CONNECTIONS_TOTAL, "service" => s.clone()),
            unserved: counter!(crate::discovery::metrics::LB_UNSERVED_CONNECTIONS_TOTAL, "service" => s.clone()),
            upstream_errors: counter!(crate::discovery::metrics::LB_UPSTREAM_ERRORS_TOTAL, "service" => s.clone()),
            ejections: counter!(crate::discovery::metrics::LB_EJECTIONS_TOTAL, "service" => s.clone()),
            bytes_up: counter!(crate::discovery::metrics::LB_BYTES_TOTAL, "service" => s.clone(), "direction" => "upstream"),
            bytes_down: counter!(crate::discovery::metrics::LB_BYTES_TOTAL, "service" => s.clone(), "direction" => "downstream"),
            active: gauge!(crate::discovery::metrics::LB_ACTIVE_CONNECTIONS, "service" => s.clone()),
            connect_seconds: histogram!(crate::discovery::metrics::LB_UPSTREAM_CONNECT_SECONDS, "service" => s),
        }
    }
}

/// The endpoints behind one listener.
pub struct Pool {
    /// `namespace/name`, the metrics label.
    service: String,
    upstreams: RwLock<Vec<Arc<Upstream>>>,
    settings: LbSettings,
    metrics: PoolMetrics,
}

impl Pool {
    /// An empty pool for `service` (`namespace/name`).
    pub fn new(service: String, settings: LbSettings) -> Arc<Pool> {
        Arc::new(Pool {
            metrics: PoolMetrics::new(&service),
            service,
            upstreams: RwLock::new(Vec::new()),
            settings,
        })
    }

    /// Replaces the endpoint list, keeping the counters (and ejections) of
    /// endpoints that stay.
    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        let Ok(mut ups) = self.upstreams.write() else {
            return;
        };
        let old: HashMap<SocketAddr, Arc<Upstream>> =
            ups.iter().map(|u| (u.addr, u.clone())).collect();
        let mut next: Vec<Arc<Upstream>> = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let addr = SocketAddr::from((e.ip, e.port));
            if next.iter().any(|u| u.addr == addr) {
                continue;
            }
            next.push(
                old.get(&addr)
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(addr)),
            );
        }
        *ups = next;
    }

    /// Current endpoint addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.upstreams
            .read()
            .map(|u| u.iter().map(|u| u.addr).collect())
            .unwrap_or_default()
    }

    /// Power of two choices over endpoints not yet tried and not ejected;
    /// ejected ones only when nothing else is left, since a maybe-broken
    /// endpoint beats a certain refusal.
    fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Upstream>> {
        let ups = self.upstreams.read().ok()?;
        let now = Instant::now();
        let fresh = |u: &&Arc<Upstream>| !tried.contains(&u.addr);
        let healthy = |u: &&Arc<Upstream>| fresh(u) && !u.ejected(now);
        let n_healthy = ups.iter().filter(healthy).count();
        let choose = |n: usize, ok: &dyn Fn(&&Arc<Upstream>) -> bool| -> Option<Arc<Upstream>> {
            let nth = |i: usize| ups.iter().filter(|u| ok(u)).nth(i);
            match n {
                0 => None,
                1 => nth(0).cloned(),
                n => {
                    let i = (rand::random::<u64>() % n as u64) as usize;
                    let mut j = (rand::random::<u64>() % (n as u64 - 1)) as usize;
                    if j >= i {
                        j += 1;
                    }
                    let (a, b) = (nth(i)?, nth(j)?);
                    let less_busy =
                        b.active.load(Ordering::Relaxed) < a.active.load(Ordering::Relaxed);
                    Some(if less_busy { b } else { a }.clone())
                }
            }
        };
        if n_healthy > 0 {
            choose(n_healthy, &healthy)
        } else {
            choose(ups.iter().filter(fresh).count(), &fresh)
        }
    }

    /// Chooses an endpoint as the balancer would, for a caller that makes
    /// its own connection (the HTTP ingress); `tried` are left out. The
    /// endpoint counts as busy until the lease is dropped.
    pub fn lease(&self, tried: &[SocketAddr]) -> Option<Lease> {
        let up = self.pick(tried)?;
        Some(Lease {
            active: Active::new(up),
        })
    }

    /// Records that connecting to a leased endpoint failed: repeated
    /// failures eject it, as for the balancer's own connections.
    pub fn lease_failed(&self, lease: &Lease) {
        self.metrics.upstream_errors.increment(1);
        self.failed(&lease.active.0);
    }

    /// Records that a leased endpoint answered: its failure count resets.
    pub fn lease_succeeded(&self, lease: &Lease) {
        self.succeeded(&lease.active.0);
    }

    fn failed(&self, u: &Upstream) {
        let n = u.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.settings.eject_after_failures {
            if let Ok(mut g) = u.ejected_until.lock() {
                *g = Some(Instant::now() + self.settings.eject_for);
            }
            u.failures.store(0, Ordering::Relaxed);
            self.metrics.ejections.increment(1);
            warn!(service = %self.service, upstream = %u.addr, "endpoint ejected after repeated connect failures");
        }
    }

    fn succeeded(&self, u: &Upstream) {
        u.failures.store(0, Ordering::Relaxed);
        if let Ok(mut g) = u.ejected_until.lock() {
            *g = None;
        }
    }

    /// Proxies one client connection to an endpoint, trying others on
    /// connect failure.
    async fn serve(self: Arc<Self>, mut client: TcpStream) {
        let m = &self.metrics;
        m.connections.increment(1);
        let mut tried = Vec::new();
        for _ in 0..self.settings.connect_attempts.max(1) {
            let Some(up) = self.pick(&tried) else { break };
            tried.push(up.addr);
            let active = Active::new(up.clone());
            let t0 = Instant::now();
            let connected =
                tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(up.addr))
                    .await;
            match connected {
                Ok(Ok(mut server)) => {
                    m.connect_seconds.record(t0.elapsed().as_secs_f64());
                    self.succeeded(&up);
                    let _ = server.set_nodelay(true);
                    m.active.increment(1.0);
                    let res = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    m.active.decrement(1.0);
                    if let Ok((up_bytes, down_bytes)) = res {
                        m.bytes_up.increment(up_bytes);
                        m.bytes_down.increment(down_bytes);
                    }
                    drop(active);
                    return;
                }
                Ok(Err(e)) => {
                    debug!(service = %self.service, upstream = %up.addr, "connect failed: {e}");
                }
                Err(_) => {
                    debug!(service = %self.service, upstream = %up.addr, "connect timed out");
                }
            }
            m.upstream_errors.increment(1);
            self.failed(&up);
        }
        m.unserved.increment(1);
        // Dropping the client closes it: nothing could take the connection.
    }
}

/// Binds a listener others on this host may share (several test nodes on
/// one host all serve the same cluster IP; the kernel spreads connections).
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.set_reuseport(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

struct Listener {
    pool: Arc<Pool>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Stops accepting; connections already accepted run in their own
        // tasks and finish.
        self.task.abort();
    }
}

/// What one listener should serve.
pub struct Want {
    /// `namespace/name`.
    pub service: String,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// Every listener of this node.
#[derive(Default)]
pub struct Balancer {
    listeners: BTreeMap<SocketAddr, Listener>,
}

impl Balancer {
    /// Makes the listeners match `want`: new ones bound, gone ones closed,
    /// endpoint lists swapped. Returns the addresses that failed to bind,
    /// with the error, so the caller can retry them later.
    pub fn reconcile(
        &mut self,
        want: BTreeMap<SocketAddr, Want>,
        settings: &LbSettings,
    ) -> Vec<(SocketAddr, std::io::Error)> {
        self.listeners.retain(|addr, _| want.contains_key(addr));
        let mut failed = Vec::new();
        for (addr, w) in want {
            if let Some(l) = self.listeners.get(&addr)
                && l.pool.service == w.service
            {
                l.pool.set_endpoints(&w.endpoints);
                continue;
            }
            self.listeners.remove(&addr);
            let listener = match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    failed.push((addr, e));
                    continue;
                }
            };
            let pool = Pool::new(w.service, settings.clone());
            pool.set_endpoints(&w.endpoints);
            let p = pool.clone();
            let task = tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((client, _)) => {
                            let _ = client.set_nodelay(true);
                            tokio::spawn(p.clone().serve(client));
                        }
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            warn!(%addr, "accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            debug!(%addr, service = %pool.service, "listening");
            self.listeners.insert(addr, Listener { pool, task });
        }
        gauge!(crate::discovery::metrics::LB_LISTENERS).set(self.listeners.len() as f64);
        failed
    }

    /// Addresses listened on, with their endpoints.
    pub fn snapshot(&self) -> Vec<(SocketAddr, String, Vec<SocketAddr>)> {
        self.listeners
            .iter()
            .map(|(a, l)| (*a, l.pool.service.clone(), l.pool.addrs()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings() -> LbSettings {
        LbSettings {
            connect_timeout: Duration::from_millis(500),
            connect_attempts: 3,
            eject_after_failures: 2,
            eject_for: Duration::from_secs(30),
        }
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::LOCALHOST,
            port,
            pod: format!("p{port}"),
            node: "n".into(),
        }
    }

    /// An upstream that answers every connection with its own name.
    async fn named_upstream(name: &'static str) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                });
            }
        });
        port
    }

    async fn ask(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn spreads_retries_refused_and_ejects() {
        let a = named_upstream("a").await;
        let b = named_upstream("b").await;
        let dead = free_port();
        let lport = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], lport).into();
        let mut bal = Balancer::default();
        let want = |eps: Vec<Endpoint>| {
            BTreeMap::from([(
                addr,
                Want {
                    service: "default/web".into(),
                    endpoints: eps,
                },
            )])
        };
        let failed = bal.reconcile(want(vec![ep(a), ep(b), ep(dead)]), &settings());
        assert!(failed.is_empty());
        let mut seen = BTreeMap::new();
        for _ in 0..60 {
            *seen.entry(ask(addr).await).or_insert(0) += 1;
        }
        assert_eq!(
            seen.get(""),
            None,
            "a refused connect must be retried elsewhere: {seen:?}"
        );
        assert!(seen["a"] >= 10 && seen["b"] >= 10, "spread: {seen:?}");
        // The dead endpoint was ejected after two refusals.
        let pool = &bal.listeners[&addr].pool;
        let dead_up = pool
            .upstreams
            .read()
            .unwrap()
            .iter()
            .find(|u| u.addr.port() == dead)
            .cloned()
            .unwrap();
        assert!(dead_up.ejected(Instant::now()));

        // Endpoint change: only b remains.
        bal.reconcile(want(vec![ep(b)]), &settings());
        for _ in 0..5 {
            assert_eq!(ask(addr).await, "b");
        }
        // Listener removed: connections are refused.
        bal.reconcile(BTreeMap::new(), &settings());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn open_connections_survive_endpoint_changes() {
        // An echo upstream.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let other = named_upstream("other").await;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let want = |port: u16| {
            BTreeMap::from([(
                addr,
                Want {
                    service: "default/echo".into(),
                    endpoints: vec![ep(port)],
                },
            )])
        };
        let mut bal = Balancer::default();
        assert!(bal.reconcile(want(echo), &settings()).is_empty());
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 5];
        conn.write_all(b"one..").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"one..");
        // The echo endpoint leaves: new connections go to the other one,
        // the open one keeps talking to echo.
        bal.reconcile(want(other), &settings());
        assert_eq!(ask(addr).await, "other");
        conn.write_all(b"two..").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"two..");
    }

    #[tokio::test]
    async fn least_connections_avoids_the_busy_endpoint() {
        let pool = Pool::new("default/x".into(), settings());
        pool.set_endpoints(&[ep(1), ep(2)]);
        let busy = pool.upstreams.read().unwrap()[0].clone();
        let _held: Vec<Active> = (0..5).map(|_| Active::new(busy.clone())).collect();
        for _ in 0..20 {
            assert_eq!(pool.pick(&[]).unwrap().addr.port(), 2);
        }
        // Counters survive an endpoint list update.
        pool.set_endpoints(&[ep(1), ep(2), ep(3)]);
        assert_eq!(
            pool.upstreams.read().unwrap()[0]
                .active
                .load(Ordering::Relaxed),
            5
        );
    }
}
