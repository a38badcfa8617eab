//! The HTTP(S) reverse proxy: hyper servers (HTTP/1.1, and HTTP/2 by ALPN
//! or prior knowledge) in front of a keep-alive pool of HTTP/1.1 upstream
//! connections (hyper-util's client, one pool per connect timeout).
//!
//! Each request reads the live table once, so a rebuild never disturbs it.
//! Bodies up to the route's limit are buffered (as nginx does by default),
//! which is what makes retrying an idempotent request on another endpoint
//! safe after a connect failure; bodies of routes without a limit stream
//! and are never retried. Upgrades (WebSocket) get a fresh upstream
//! connection and are then copied both ways.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use super::routes::{Route, rewrite};
use super::{IngressConfig, Live, metrics};
use crate::discovery::lb::Lease;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A body sent upstream: buffered, or the client's streamed through.
type UpBody = BoxBody<Bytes, BoxError>;
/// A body sent to the client.
type DownBody = BoxBody<Bytes, BoxError>;

/// Most idle upstream connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// Idle upstream connections are closed after this long.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);
/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of request headers (hyper's default buffer is about 400 KiB).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What every connection of both listeners shares.
pub struct Server {
    live: watch::Receiver<Arc<Live>>,
    /// Upstream clients by connect timeout (annotations pick among a few).
    clients: Mutex<HashMap<Duration, Client<HttpConnector, UpBody>>>,
    https_port: Option<u16>,
    idle_timeout: Duration,
    max_connections: usize,
    access_log: bool,
}

impl Server {
    /// A server reading routes from `live`; `https_port` is where plain
    /// HTTP requests for TLS hosts are redirected.
    pub fn new(
        cfg: &IngressConfig,
        live: watch::Receiver<Arc<Live>>,
        https_port: Option<u16>,
    ) -> Server {
        Server {
            live,
            clients: Mutex::new(HashMap::new()),
            https_port,
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs.max(1)),
            max_connections: cfg.max_connections.max(1),
            access_log: cfg.access_log,
        }
    }

    fn client(&self, connect_timeout: Duration) -> Client<HttpConnector, UpBody> {
        let Ok(mut clients) = self.clients.lock() else {
            return new_client(connect_timeout);
        };
        clients
            .entry(connect_timeout)
            .or_insert_with(|| new_client(connect_timeout))
            .clone()
    }

    fn builder(&self) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
        let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper starts this timer whenever it waits for a request head,
        // idle keep-alive included: it is the idle timeout too.
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.idle_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        b.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(self.idle_timeout / 2))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_header_list_size(MAX_HEADER_BYTES as u32);
        b
    }
}

fn new_client(connect_timeout: Duration) -> Client<HttpConnector, UpBody> {
    let mut c = HttpConnector::new();
    c.set_connect_timeout(Some(connect_timeout));
    c.set_nodelay(true);
    c.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(UPSTREAM_IDLE)
        .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
        // A request whose pooled connection closed under it is sent again
        // on another: nothing reached the upstream.
        .retry_canceled_requests(true)
        .set_host(false)
        .build(c)
}

/// Serves plain HTTP on `listener` until the task is aborted.
pub async fn serve_http(server: Arc<Server>, listener: TcpListener) {
    accept_loop(server, listener, |s, stream, peer, local| async move {
        let svc = service(s.clone(), peer, local, false);
        let _ = s
            .builder()
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .await;
    })
    .await
}

/// Serves HTTPS on `listener` until the task is aborted.
pub async fn serve_https(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    accept_loop(server, listener, move |s, stream, peer, local| {
        let acceptor = acceptor.clone();
        async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    debug!(%peer, "TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            let svc = service(s.clone(), peer, local, true);
            let _ = s
                .builder()
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        }
    })
    .await
}

/// Accepts connections, at most `max_connections` open at once (the rest
/// wait in the backlog), each without Nagle and served by `conn` in a task
/// of its own.
async fn accept_loop<F, Fut>(server: Arc<Server>, listener: TcpListener, conn: F)
where
    F: Fn(Arc<Server>, tokio::net::TcpStream, SocketAddr, Option<SocketAddr>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(server.max_connections));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("ingress accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let task = conn(server.clone(), stream, peer, local);
        tokio::spawn(async move {
            let _permit = permit;
            task.await;
        });
    }
}

fn service(
    server: Arc<Server>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: bool,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<DownBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<DownBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req| {
        let s = server.clone();
        async move {
            Ok(s.handle(
                req,
                Peer {
                    addr: peer,
                    local,
                    tls,
                },
            )
            .await)
        }
    })
}

/// Who sent a request and on which listener.
#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    local: Option<SocketAddr>,
    tls: bool,
}

/// A short plain-text response (errors, redirects).
fn text(status: StatusCode, body: String) -> Response<DownBody> {
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn full(b: Bytes) -> BoxBody<Bytes, BoxError> {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// The request's host, lower case and without port: the URI's authority
/// (absolute form, HTTP/2) or the Host header.
pub fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let raw = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })?;
    let raw = raw.rsplit_once('@').map_or(raw.as_str(), |(_, h)| h);
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets off; no rule can name it anyway.
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Hop-by-hop headers, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The status classes, the `status` label's values.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`STATUS_CLASSES`] of a status code.
fn status_index(s: StatusCode) -> usize {
    match s.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// One route's metric handles.
pub struct RouteMetrics {
    requests: [::metrics::Counter; 5],
    duration: ::metrics::Histogram,
}

impl RouteMetrics {
    fn new(route: &Route) -> RouteMetrics {
        let labels = [
            ("ingress", route.ingress.clone()),
            ("host", route.host.clone()),
            ("class", route.class.clone()),
        ];
        let requests = STATUS_CLASSES.map(|c| {
            let mut l = labels.to_vec();
            l.push(("status", c.to_string()));
            ::metrics::counter!(metrics::REQUESTS_TOTAL, &l)
        });
        RouteMetrics {
            requests,
            duration: ::metrics::histogram!(metrics::REQUEST_DURATION_SECONDS, &labels),
        }
    }
}

/// A response body that holds the endpoint's lease until it ends, so the
/// balancer's choice counts requests still streaming.
struct Leased {
    inner: Incoming,
    _lease: Lease,
}

impl Body for Leased {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request's body as sent upstream.
enum Outgoing {
    Buffered(Bytes),
    Streamed(Option<Incoming>),
}

impl Outgoing {
    /// The body for one attempt; a streamed body only once.
    fn take(&mut self) -> Option<UpBody> {
        match self {
            Outgoing::Buffered(b) => Some(full(b.clone())),
            Outgoing::Streamed(b) => b.take().map(|b| b.map_err(BoxError::from).boxed()),
        }
    }
}

impl Server {
    async fn handle(&self, mut req: Request<Incoming>, peer: Peer) -> Response<DownBody> {
        let t0 = Instant::now();
        let live = self.live.borrow().clone();
        let Some(host) = request_host(req.uri(), req.headers()) else {
            return text(
                StatusCode::BAD_REQUEST,
                "the request names no host (Host header)\n".into(),
            );
        };
        let path = req.uri().path().to_string();
        let Some(route) = live.routes.lookup(&host, &path).cloned() else {
            ::metrics::counter!(metrics::UNROUTED_REQUESTS_TOTAL).increment(1);
            return text(
                StatusCode::NOT_FOUND,
                "no Ingress rule matches this host and path\n".into(),
            );
        };
        let resp = if !peer.tls && route.ssl_redirect {
            self.redirect(&host, req.uri())
        } else {
            let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
            self.forward(req, &route, &live, peer, &host, upgrade).await
        };
        // A table always has a cell per route; the fallback is for safety.
        let fresh;
        let m = match live.metrics.get(route.id) {
            Some(cell) => cell.get_or_init(|| RouteMetrics::new(&route)),
            None => {
                fresh = RouteMetrics::new(&route);
                &fresh
            }
        };
        m.requests[status_index(resp.status())].increment(1);
        m.duration.record(t0.elapsed().as_secs_f64());
        if self.access_log {
            info!(
                target: "shoal::ingress::access",
                client = %peer.addr, %host, %path, status = resp.status().as_u16(),
                ingress = %route.ingress, service = %route.backend.service_label(),
                ms = t0.elapsed().as_millis() as u64,
                "request"
            );
        }
        resp
    }

    fn redirect(&self, host: &str, uri: &Uri) -> Response<DownBody> {
        let port = match self.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{pq}");
        let mut r = text(StatusCode::PERMANENT_REDIRECT, format!("{location}\n"));
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        route: &Route,
        live: &Live,
        peer: Peer,
        host: &str,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<DownBody> {
        let service = route.backend.service_label();
        let upstream_error = |reason: &'static str| {
            ::metrics::counter!(metrics::UPSTREAM_ERRORS_TOTAL, "service" => service.clone(), "reason" => reason)
                .increment(1);
        };
        let Some(pool) = live.pools.get(&route.backend) else {
            upstream_error("no_endpoint");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Service {service} or its port {:?} does not exist\n",
                    route.backend.port
                ),
            );
        };
        let (parts, body) = req.into_parts();
        let mut outgoing = match route.body_limit {
            Some(limit) => {
                let declared = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|n| n > limit) {
                    return too_large(limit);
                }
                match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
                    .collect()
                    .await
                {
                    Ok(c) => Outgoing::Buffered(c.to_bytes()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        return too_large(limit);
                    }
                    Err(e) => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            format!("reading the request body: {e}\n"),
                        );
                    }
                }
            }
            None => Outgoing::Streamed(Some(body)),
        };
        let retriable = idempotent(&parts.method)
            && matches!(outgoing, Outgoing::Buffered(_))
            && upgrade.is_none();
        let attempts = if retriable { 3 } else { 1 };
        let path = rewrite(route, parts.uri.path());
        let pq = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let client = self.client(route.connect_timeout);
        let mut tried = Vec::new();
        let mut upgrade = upgrade;
        loop {
            let Some(lease) = pool.lease(&tried) else {
                upstream_error("no_endpoint");
                return text(
                    if tried.is_empty() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::BAD_GATEWAY
                    },
                    if tried.is_empty() {
                        format!("Service {service} has no ready endpoint\n")
                    } else {
                        format!("no endpoint of Service {service} could be reached\n")
                    },
                );
            };
            tried.push(lease.addr());
            let Some(body) = outgoing.take() else {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("no endpoint of Service {service} could be reached\n"),
                );
            };
            let up = match upstream_request(
                &parts,
                body,
                lease.addr(),
                &pq,
                peer,
                host,
                upgrade.is_some(),
            ) {
                Ok(r) => r,
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            };
            let sent = if upgrade.is_some() {
                // An upgraded connection must not return to the pool.
                self.send_upgrade(up, lease.addr(), route.connect_timeout, route.read_timeout)
                    .await
            } else {
                match tokio::time::timeout(route.read_timeout, client.request(up)).await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) if e.is_connect() => Err(SendError::Connect(e.to_string())),
                    Ok(Err(e)) => Err(SendError::Other(e.to_string())),
                    Err(_) => Err(SendError::Timeout),
                }
            };
            match sent {
                Ok(mut resp) => {
                    pool.lease_succeeded(&lease);
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_up) = upgrade.take()
                    {
                        let upstream_up = hyper::upgrade::on(&mut resp);
                        tokio::spawn(splice(client_up, upstream_up, lease));
                        let (mut parts, _) = resp.into_parts();
                        parts.headers.remove(header::TRANSFER_ENCODING);
                        return Response::from_parts(parts, full(Bytes::new()));
                    }
                    let (mut parts, body) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let body = Leased {
                        inner: body,
                        _lease: lease,
                    };
                    return Response::from_parts(parts, body.map_err(BoxError::from).boxed());
                }
                Err(SendError::Connect(e)) => {
                    pool.lease_failed(&lease);
                    upstream_error("connect");
                    debug!(%service, upstream = %lease.addr(), "connect failed: {e}");
                    if tried.len() < attempts {
                        continue;
                    }
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!("no endpoint of Service {service} could be reached\n"),
                    );
                }
                Err(SendError::Timeout) => {
                    upstream_error("timeout");
                    return text(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "Service {service} did not answer within {}s\n",
                            route.read_timeout.as_secs()
                        ),
                    );
                }
                Err(SendError::Other(e)) => {
                    upstream_error("other");
                    debug!(%service, upstream = %lease.addr(), "upstream failed: {e}");
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!("Service {service} failed to answer\n"),
                    );
                }
            }
        }
    }

    /// Sends an upgrade request on a connection of its own.
    async fn send_upgrade(
        &self,
        req: Request<UpBody>,
        addr: SocketAddr,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        let stream =
            match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(SendError::Connect(e.to_string())),
                Err(_) => return Err(SendError::Connect("timed out".into())),
            };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        match tokio::time::timeout(read_timeout, sender.send_request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(SendError::Other(e.to_string())),
            Err(_) => Err(SendError::Timeout),
        }
    }
}

enum SendError {
    Connect(String),
    Timeout,
    Other(String),
}

fn too_large(limit: u64) -> Response<DownBody> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {limit} bytes (shoal.io/proxy-body-size)\n"),
    )
}

/// Copies both ways between the client's and the upstream's upgraded
/// connections until either side closes; the lease is held meanwhile.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    lease: Lease,
) {
    let (c, u) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return,
    };
    let mut c = TokioIo::new(c);
    let mut u = TokioIo::new(u);
    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
    drop(lease);
}

/// The request as sent to an endpoint: HTTP/1.1 to `addr`, hop-by-hop
/// headers dropped, the original Host kept, and the client's address, host
/// and scheme in X-Forwarded-* and Forwarded. A client's own
/// X-Forwarded-For is replaced, not appended to (ingress-nginx's default):
/// clients are not trusted to say who they are.
fn upstream_request(
    parts: &hyper::http::request::Parts,
    body: UpBody,
    addr: SocketAddr,
    path_and_query: &str,
    peer: Peer,
    host: &str,
    upgrade: bool,
) -> Result<Request<UpBody>, String> {
    let uri: Uri = format!("http://{addr}{path_and_query}")
        .parse()
        .map_err(|e| format!("the request path does not make a URI: {e}"))?;
    let mut headers = parts.headers.clone();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut headers);
    if upgrade && let Some(v) = upgrade_value {
        headers.insert(header::UPGRADE, v);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // HTTP/2 clients send the host as :authority; upstreams want Host.
    if !headers.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        headers.insert(header::HOST, v);
    }
    let proto = if peer.tls { "https" } else { "http" };
    let ip = peer.addr.ip().to_string();
    let set = |h: &mut HeaderMap, name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set(&mut headers, "x-forwarded-for", &ip);
    set(&mut headers, "x-real-ip", &ip);
    set(&mut headers, "x-forwarded-proto", proto);
    set(&mut headers, "x-forwarded-host", host);
    if let Some(l) = peer.local {
        set(&mut headers, "x-forwarded-port", &l.port().to_string());
    }
    let for_ = if peer.addr.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.clone()
    };
    set(
        &mut headers,
        "forwarded",
        &format!("for={for_};host={host};proto={proto}"),
    );
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Ok(req)
}

#[cfg(test)]
mod tests;
