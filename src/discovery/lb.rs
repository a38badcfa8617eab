//! The per-node TCP load balancer: one listener per Service port (on the
//! cluster IP, and on every address for a NodePort), each spreading new
//! connections over the port's ready endpoints by power-of-two-choices on
//! active connections.
//!
//! Endpoint changes swap the pool's list; connections already open keep
//! their upstream socket and finish undisturbed. With `sessionAffinity:
//! ClientIP` a pool remembers, per client address, the endpoint it last
//! used (for the Service's timeout since that client's last connection,
//! at most [`MAX_SESSIONS`] clients) and sends the client there while that
//! endpoint is in the list and not ejected, as kube-proxy does per node. A failed connect is retried
//! on another endpoint; an endpoint failing `eject_after_failures` times in
//! a row is left out for `eject_ms` (unless nothing else is left).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
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

/// Clients one pool remembers for ClientIP affinity: past these, the
/// longest idle are forgotten (an eighth at a time), so a scan of many
/// client addresses cannot grow a node's memory.
pub const MAX_SESSIONS: usize = 65_536;

/// ClientIP affinity of one pool: client address -> (endpoint, last use).
#[derive(Debug, Default)]
struct Sessions {
    timeout: Option<Duration>,
    by_client: HashMap<IpAddr, (SocketAddr, Instant)>,
}

impl Sessions {
    /// The endpoint `client` should go back to, if it is still fresh.
    fn lookup(&self, client: IpAddr, now: Instant) -> Option<SocketAddr> {
        let timeout = self.timeout?;
        let (addr, at) = self.by_client.get(&client)?;
        (now.saturating_duration_since(*at) < timeout).then_some(*addr)
    }

    fn record(&mut self, client: IpAddr, addr: SocketAddr, now: Instant) {
        let Some(timeout) = self.timeout else {
            return;
        };
        if self.by_client.len() >= MAX_SESSIONS && !self.by_client.contains_key(&client) {
            self.by_client
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < timeout);
            if self.by_client.len() >= MAX_SESSIONS {
                let mut ages: Vec<Instant> = self.by_client.values().map(|(_, at)| *at).collect();
                let cut = ages.len() / 8;
                ages.select_nth_unstable(cut);
                let cutoff = ages[cut];
                self.by_client.retain(|_, (_, at)| *at > cutoff);
            }
        }
        self.by_client.insert(client, (addr, now));
    }
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
    sessions: Mutex<Sessions>,
}

impl Pool {
    /// An empty pool for `service` (`namespace/name`).
    pub fn new(service: String, settings: LbSettings) -> Arc<Pool> {
        Arc::new(Pool {
            metrics: PoolMetrics::new(&service),
            service,
            upstreams: RwLock::new(Vec::new()),
            settings,
            sessions: Mutex::new(Sessions::default()),
        })
    }

    /// Sets the ClientIP affinity timeout (`None`: no affinity, and the
    /// remembered clients are forgotten).
    pub fn set_affinity(&self, timeout: Option<Duration>) {
        if let Ok(mut s) = self.sessions.lock()
            && s.timeout != timeout
        {
            s.timeout = timeout;
            s.by_client.clear();
        }
    }

    /// The endpoint `client` is bound to by affinity, when it is still in
    /// the list and not ejected.
    fn sticky(&self, client: IpAddr) -> Option<Arc<Upstream>> {
        let now = Instant::now();
        let addr = self.sessions.lock().ok()?.lookup(client, now)?;
        let ups = self.upstreams.read().ok()?;
        ups.iter()
            .find(|u| u.addr == addr && !u.ejected(now))
            .cloned()
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
        let peer = client.peer_addr().ok().map(|a| a.ip());
        let mut sticky = peer.and_then(|ip| self.sticky(ip));
        let mut tried = Vec::new();
        for _ in 0..self.settings.connect_attempts.max(1) {
            let Some(up) = sticky.take().or_else(|| self.pick(&tried)) else {
                break;
            };
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
                    if let (Some(ip), Ok(mut s)) = (peer, self.sessions.lock()) {
                        s.record(ip, up.addr, Instant::now());
                    }
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
    /// ClientIP affinity timeout, if the Service asks for it.
    pub affinity: Option<Duration>,
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
                l.pool.set_affinity(w.affinity);
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
            pool.set_affinity(w.affinity);
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
                    affinity: None,
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
                    affinity: None,
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

    /// One connection from source address `from` (a loopback address).
    async fn ask_from(from: [u8; 4], addr: SocketAddr) -> String {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((from, 0))).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn client_ip_affinity_keeps_each_client_on_its_endpoint() {
        let ups = [
            named_upstream("a").await,
            named_upstream("b").await,
            named_upstream("c").await,
        ];
        let lport = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], lport).into();
        let mut bal = Balancer::default();
        let want = |affinity| {
            BTreeMap::from([(
                addr,
                Want {
                    service: "default/sticky".into(),
                    endpoints: ups.iter().map(|p| ep(*p)).collect(),
                    affinity,
                },
            )])
        };
        assert!(
            bal.reconcile(want(Some(Duration::from_secs(60))), &settings())
                .is_empty()
        );
        let mut firsts = std::collections::BTreeSet::new();
        for client in 2..10u8 {
            let from = [127, 0, 0, client];
            let first = ask_from(from, addr).await;
            for _ in 0..5 {
                assert_eq!(ask_from(from, addr).await, first, "client {from:?} moved");
            }
            firsts.insert(first);
        }
        assert!(firsts.len() > 1, "every client on one endpoint: {firsts:?}");
        // Its endpoint gone, a client moves and stays on the new one.
        let pool = bal.listeners[&addr].pool.clone();
        let home = ask_from([127, 0, 0, 2], addr).await;
        let rest: Vec<Endpoint> = ups
            .iter()
            .zip(["a", "b", "c"])
            .filter(|(_, n)| *n != home)
            .map(|(p, _)| ep(*p))
            .collect();
        pool.set_endpoints(&rest);
        let moved = ask_from([127, 0, 0, 2], addr).await;
        assert_ne!(moved, home);
        for _ in 0..5 {
            assert_eq!(ask_from([127, 0, 0, 2], addr).await, moved);
        }
        // Without affinity, one client is spread again.
        assert!(bal.reconcile(want(None), &settings()).is_empty());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..30 {
            seen.insert(ask_from([127, 0, 0, 2], addr).await);
        }
        assert!(seen.len() > 1, "{seen:?}");
    }

    #[test]
    fn sessions_expire_and_stay_bounded() {
        let mut s = Sessions {
            timeout: Some(Duration::from_secs(10)),
            ..Sessions::default()
        };
        let t0 = Instant::now();
        let up: SocketAddr = ([10, 0, 0, 1], 80).into();
        let client = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        s.record(client(1), up, t0);
        assert_eq!(s.lookup(client(1), t0 + Duration::from_secs(9)), Some(up));
        assert_eq!(s.lookup(client(1), t0 + Duration::from_secs(10)), None);
        for i in 0..(MAX_SESSIONS as u32 + 10) {
            s.record(client(i), up, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(s.by_client.len() <= MAX_SESSIONS, "{}", s.by_client.len());
        // The newest clients are the ones kept.
        let last = client(MAX_SESSIONS as u32 + 9);
        assert!(s.lookup(last, t0 + Duration::from_secs(1)).is_some());
        assert!(s.lookup(client(2), t0 + Duration::from_secs(1)).is_none());
    }
}
