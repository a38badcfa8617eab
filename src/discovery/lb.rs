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

use metrics::{counter, gauge, histogram};
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

/// The endpoints behind one listener.
pub struct Pool {
    /// `namespace/name`, the metrics label.
    service: String,
    upstreams: RwLock<Vec<Arc<Upstream>>>,
    settings: LbSettings,
}

impl Pool {
    /// An empty pool for `service` (`namespace/name`).
    pub fn new(service: String, settings: LbSettings) -> Arc<Pool> {
        Arc::new(Pool {
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
            next.push(old.get(&addr).cloned().unwrap_or_else(|| Upstream::new(addr)));
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
        let fresh: Vec<&Arc<Upstream>> =
            ups.iter().filter(|u| !tried.contains(&u.addr)).collect();
        let healthy: Vec<&Arc<Upstream>> =
            fresh.iter().copied().filter(|u| !u.ejected(now)).collect();
        let cands = if healthy.is_empty() { fresh } else { healthy };
        match cands.len() {
            0 => None,
            1 => Some(cands[0].clone()),
            n => {
                let i = (rand::random::<u64>() % n as u64) as usize;
                let mut j = (rand::random::<u64>() % (n as u64 - 1)) as usize;
                if j >= i {
                    j += 1;
                }
                let (a, b) = (cands[i], cands[j]);
                let pick = if b.active.load(Ordering::Relaxed) < a.active.load(Ordering::Relaxed) {
                    b
                } else {
                    a
                };
                Some(pick.clone())
            }
        }
    }

    fn failed(&self, u: &Upstream) {
        let n = u.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.settings.eject_after_failures {
            if let Ok(mut g) = u.ejected_until.lock() {
                *g = Some(Instant::now() + self.settings.eject_for);
            }
            u.failures.store(0, Ordering::Relaxed);
            counter!("shoal_discovery_lb_ejections_total", "service" => self.service.clone())
                .increment(1);
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
        let svc = self.service.clone();
        counter!("shoal_discovery_lb_connections_total", "service" => svc.clone()).increment(1);
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
                    histogram!("shoal_discovery_lb_upstream_connect_seconds", "service" => svc.clone())
                        .record(t0.elapsed().as_secs_f64());
                    self.succeeded(&up);
                    let _ = server.set_nodelay(true);
                    gauge!("shoal_discovery_lb_active_connections", "service" => svc.clone())
                        .increment(1.0);
                    let res = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    gauge!("shoal_discovery_lb_active_connections", "service" => svc.clone())
                        .decrement(1.0);
                    if let Ok((up_bytes, down_bytes)) = res {
                        counter!("shoal_discovery_lb_bytes_total", "service" => svc.clone(), "direction" => "upstream")
                            .increment(up_bytes);
                        counter!("shoal_discovery_lb_bytes_total", "service" => svc, "direction" => "downstream")
                            .increment(down_bytes);
                    }
                    drop(active);
                    return;
                }
                Ok(Err(e)) => {
                    debug!(service = %svc, upstream = %up.addr, "connect failed: {e}");
                }
                Err(_) => {
                    debug!(service = %svc, upstream = %up.addr, "connect timed out");
                }
            }
            counter!("shoal_discovery_lb_upstream_errors_total", "service" => svc.clone())
                .increment(1);
            self.failed(&up);
        }
        counter!("shoal_discovery_lb_unserved_connections_total", "service" => svc).increment(1);
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
        gauge!("shoal_discovery_lb_listeners").set(self.listeners.len() as f64);
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
        assert_eq!(seen.get(""), None, "a refused connect must be retried elsewhere: {seen:?}");
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
        assert_eq!(pool.upstreams.read().unwrap()[0].active.load(Ordering::Relaxed), 5);
    }
}
