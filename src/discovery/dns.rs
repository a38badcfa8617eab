//! Authoritative DNS for Services, forwarding everything else.
//!
//! With `domain = "shoal"` the zone is `svc.shoal.` and holds:
//!
//! ```text
//! svc.shoal.                           SOA  ns.svc.shoal. hostmaster.svc.shoal. ...
//!                                      NS   ns.svc.shoal.
//! NS.svc.shoal.                        (empty non-terminal: one per namespace)
//! NAME.NS.svc.shoal.                   A    cluster IP, or every endpoint IP when headless
//! POD.NAME.NS.svc.shoal.               A    that endpoint's IP
//! _tcp.NAME.NS.svc.shoal.              (empty non-terminal when a port is named)
//! _PORT._tcp.NAME.NS.svc.shoal.        SRV  0 W PORT POD.NAME.NS.svc.shoal. (one per endpoint)
//! ```
//!
//! Every other name under `shoal.` is NXDOMAIN, except `shoal.` itself, an
//! empty non-terminal. Empty non-terminals answer NODATA rather than NXDOMAIN
//! because resolvers following RFC 8020 treat NXDOMAIN as "nothing below
//! either" and would then hide the Services under them. Names outside
//! `shoal.` are forwarded to the configured upstreams.
//!
//! Answers come from the [`ServiceTable`] currently published on the watch
//! channel, read afresh on every query, so there is no zone to reload.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, NS, SOA, SRV, TXT};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use super::table::{Endpoint, ServiceEntry, ServiceTable};

/// How long one upstream gets to answer before the next is tried.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// EDNS payload we advertise upstream: the DNS flag day 2020 value, which
/// avoids IP fragmentation while still sparing most answers a TCP retry.
const UPSTREAM_UDP_PAYLOAD: u16 = 1232;
/// Forwards in flight at once; each holds a socket for up to
/// `FORWARD_TIMEOUT` per upstream, so a flood must not exhaust descriptors.
const MAX_CONCURRENT_FORWARDS: usize = 512;
/// A TCP client idle this long is disconnected.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
const TCP_BACKLOG: i32 = 1024;
/// Warnings about failing upstreams are logged at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Tries at finding a port free for both UDP and TCP when asked for port 0.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;
/// `shutdown` waits this long for in-flight work before abandoning it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of the DNS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Addresses to serve UDP and TCP on; port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Cluster domain, e.g. "shoal"; the zone served is `svc.<domain>.`.
    pub domain: String,
    /// TTL of every record, and the SOA minimum (negative-caching TTL).
    pub ttl_secs: u32,
    /// Servers that names outside the domain are forwarded to, in order;
    /// empty means such queries are REFUSED.
    pub upstreams: Vec<SocketAddr>,
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listen address could not be bound.
    #[error("dns: bind {proto} {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// "udp" or "tcp".
        proto: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The configured domain is not a usable DNS name.
    #[error("dns: invalid domain {domain:?}: {reason}")]
    Domain {
        /// The configured domain.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No listen address was configured.
    #[error("dns: no listen addresses configured")]
    NoListen,
}

/// A running DNS server; dropping it stops serving.
pub struct DnsServer {
    server: Server<Handler>,
    local_addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// The addresses actually bound (one per `listen` entry, same port for UDP and TCP).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }

    /// Stops accepting queries and waits briefly for those in flight.
    pub async fn shutdown(mut self) {
        match tokio::time::timeout(SHUTDOWN_GRACE, self.server.shutdown_gracefully()).await {
            Ok(Ok(())) => debug!("dns server stopped"),
            Ok(Err(error)) => debug!(%error, "dns server stopped with an error"),
            // Dropping `self` aborts whatever is still running.
            Err(_) => warn!("dns server did not stop in time; aborting it"),
        }
    }
}

/// Binds every listen address and starts answering from `table`.
pub async fn start(
    config: DnsConfig,
    table: watch::Receiver<Arc<ServiceTable>>,
) -> Result<DnsServer, DnsError> {
    let zone = Zone::new(&config.domain, config.ttl_secs)?;
    if config.listen.is_empty() {
        return Err(DnsError::NoListen);
    }

    // Bind everything before serving anything, so a failure leaves nothing
    // half-started behind.
    let mut bound = Vec::with_capacity(config.listen.len());
    for &addr in &config.listen {
        match bind_pair(addr) {
            Ok(pair) => bound.push(pair),
            Err(error) => {
                warn!(%error, "dns server cannot bind");
                return Err(error);
            }
        }
    }

    let handler = Handler {
        zone,
        table,
        upstreams: config.upstreams,
        forward_permits: Semaphore::new(MAX_CONCURRENT_FORWARDS),
        forward_warnings: WarnLimiter::default(),
    };
    let mut server = Server::new(handler);
    let mut local_addrs = Vec::with_capacity(bound.len());
    for (udp, tcp, addr) in bound {
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        local_addrs.push(addr);
    }
    info!(listen = ?local_addrs, domain = %config.domain, "dns server started");
    Ok(DnsServer {
        server,
        local_addrs,
    })
}

/// Nameservers listed in a resolv.conf, on port 53, minus `exclude` (our own
/// listen addresses, so we never forward to ourselves).
pub fn upstreams_from_resolv_conf(path: &Path, exclude: &[SocketAddr]) -> Vec<SocketAddr> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read resolv.conf; no dns upstreams");
            return Vec::new();
        }
    };
    let mut upstreams = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_nameserver) else {
            debug!(line, "ignoring unparseable nameserver line");
            continue;
        };
        if is_ourselves(addr, exclude) || upstreams.contains(&addr) {
            continue;
        }
        upstreams.push(addr);
    }
    upstreams
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    let (ip, scope) = match word.split_once('%') {
        Some((ip, scope)) => (ip, Some(scope)),
        None => (word, None),
    };
    match (ip.parse::<IpAddr>().ok()?, scope) {
        (ip, None) => Some(SocketAddr::new(ip, 53)),
        // A link-local address is only usable with its interface; only a
        // numeric scope can be expressed without resolving interface names.
        (IpAddr::V6(ip), Some(scope)) => {
            let scope = scope.parse().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
        }
        (IpAddr::V4(_), Some(_)) => None,
    }
}

fn is_ourselves(addr: SocketAddr, exclude: &[SocketAddr]) -> bool {
    exclude.iter().any(|ours| {
        // Listening on the wildcard also answers on loopback, so a loopback
        // nameserver on the same port would be us.
        *ours == addr
            || (ours.ip().is_unspecified()
                && ours.port() == addr.port()
                && ours.is_ipv4() == addr.is_ipv4()
                && addr.ip().is_loopback())
    })
}

/// The label under the cluster domain whose TXT record names the cluster.
pub const CLUSTER_LABEL: &str = "_cluster";

/// Who already answers DNS at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No reply: the address is free (or its server is down).
    Nobody,
    /// A shoal node of this cluster id.
    Cluster(String),
    /// A server that does not say which cluster it serves: another DNS
    /// server, or a shoal node that does not know its cluster id yet.
    Unidentified,
}

/// Asks `addr` which shoal cluster it serves (TXT `_cluster.DOMAIN.`),
/// waiting at most `wait` for a reply.
pub async fn holder(addr: SocketAddr, domain: &str, wait: Duration) -> Holder {
    let name = format!("{CLUSTER_LABEL}.{}.", domain.trim_end_matches('.'));
    let Ok(name) = Name::from_ascii(&name) else {
        return Holder::Unidentified;
    };
    let mut query = Message::query();
    query.add_query(Query::query(name, RecordType::TXT));
    match tokio::time::timeout(wait, exchange_udp(addr, &query)).await {
        Ok(Ok(reply)) => reply
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::TXT(txt) => txt
                    .txt_data
                    .first()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .map_or(Holder::Unidentified, Holder::Cluster),
        _ => Holder::Nobody,
    }
}

/// Binds UDP and TCP on the same address.
///
/// For port 0 the port is picked for TCP, whose ephemeral choice avoids
/// ports in use even with the reuse options; UDP's does not (two UDP
/// sockets with `SO_REUSEADDR` may be handed the same port), so UDP then
/// binds that port without the options, failing rather than silently
/// sharing it, and a clash is retried. Sharing an ephemeral port is never
/// wanted anyway: nobody else knows it.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let bind_error = |proto| {
        move |source| DnsError::Bind {
            addr,
            proto,
            source,
        }
    };
    if addr.port() != 0 {
        let udp = bind_udp(addr, true).map_err(bind_error("udp"))?;
        let tcp = bind_tcp(addr).map_err(bind_error("tcp"))?;
        return Ok((udp, tcp, addr));
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let tcp = bind_tcp(addr).map_err(bind_error("tcp"))?;
        let actual = tcp.local_addr().map_err(bind_error("tcp"))?;
        match bind_udp(actual, false) {
            Ok(udp) => return Ok((udp, tcp, actual)),
            Err(error)
                if error.kind() == io::ErrorKind::AddrInUse
                    && attempts < EPHEMERAL_BIND_ATTEMPTS => {}
            Err(source) => return Err(bind_error("udp")(source)),
        }
    }
}

fn new_socket(addr: SocketAddr, ty: Type, reuse: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    if reuse {
        // Several daemons on one host share the bridge gateway's port 53.
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // Lets `[::]:53` and `0.0.0.0:53` be listed side by side.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr, reuse: bool) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, reuse)?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, true)?;
    socket.listen(TCP_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// The fixed parts of the zone.
struct Zone {
    /// Labels of the cluster domain, lowercase, e.g. `["shoal"]`.
    domain_labels: Vec<Vec<u8>>,
    /// `svc.<domain>.`
    origin: Name,
    ttl: u32,
    soa: Record,
    ns: Record,
}

/// What the zone says about a name.
#[derive(Debug)]
enum Lookup {
    /// Not under the cluster domain.
    Outside,
    /// The name exists; no answers means NODATA.
    Found {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    NxDomain,
}

impl Lookup {
    fn nodata() -> Self {
        Self::Found {
            answers: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn answers(answers: Vec<Record>) -> Self {
        Self::Found {
            answers,
            additionals: Vec::new(),
        }
    }
}

impl Zone {
    fn new(domain: &str, ttl: u32) -> Result<Self, DnsError> {
        let invalid = |reason: String| DnsError::Domain {
            domain: domain.to_string(),
            reason,
        };
        let trimmed = domain.trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(invalid("empty".to_string()));
        }
        let mut domain_name = Name::from_ascii(trimmed)
            .map_err(|e| invalid(e.to_string()))?
            .to_lowercase();
        domain_name.set_fqdn(true);
        let child = |label: &str, parent: &Name| {
            Name::from_labels([label])
                .and_then(|n| n.append_domain(parent))
                .map_err(|e| invalid(e.to_string()))
        };
        let origin = child("svc", &domain_name)?;
        let mname = child("ns", &origin)?;
        let rname = child("hostmaster", &origin)?;
        // Nothing transfers this zone, so refresh/retry/expire only need to
        // be plausible; minimum is the negative-caching TTL (RFC 2308).
        let soa = SOA::new(mname.clone(), rname, 1, 3600, 600, 86400, ttl);
        Ok(Self {
            domain_labels: domain_name.iter().map(<[u8]>::to_vec).collect(),
            soa: Record::from_rdata(origin.clone(), ttl, RData::SOA(soa)),
            ns: Record::from_rdata(origin.clone(), ttl, RData::NS(NS(mname))),
            origin,
            ttl,
        })
    }

    /// Answers `qname` (lowercased) from `table`; `owner` is the name as the
    /// client spelled it, echoed as the owner of answers.
    fn lookup(
        &self,
        table: &ServiceTable,
        qname: &LowerName,
        owner: &Name,
        qtype: RecordType,
    ) -> Lookup {
        let labels: Vec<&[u8]> = qname.iter().collect();
        let Some(split) = labels.len().checked_sub(self.domain_labels.len()) else {
            return Lookup::Outside;
        };
        let (relative, suffix) = labels.split_at(split);
        if !suffix
            .iter()
            .zip(&self.domain_labels)
            .all(|(a, b)| *a == b.as_slice())
        {
            return Lookup::Outside;
        }
        let Some((&svc, relative)) = relative.split_last() else {
            return Lookup::nodata();
        };
        if svc == CLUSTER_LABEL.as_bytes() && relative.is_empty() {
            // Who serves this zone: lets a node about to share this
            // address tell whether it is its own cluster (see `holder`).
            return match &table.cluster_id {
                Some(id) if qtype == RecordType::TXT || qtype == RecordType::ANY => {
                    Lookup::answers(vec![Record::from_rdata(
                        owner.clone(),
                        0,
                        RData::TXT(TXT::new(vec![id.clone()])),
                    )])
                }
                _ => Lookup::nodata(),
            };
        }
        if svc != b"svc" {
            return Lookup::NxDomain;
        }
        let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;

        let mut strs = Vec::with_capacity(relative.len());
        for label in relative {
            match std::str::from_utf8(label) {
                Ok(s) => strs.push(s),
                Err(_) => return Lookup::NxDomain,
            }
        }
        match strs.as_slice() {
            [] => {
                let mut answers = Vec::new();
                if wants(RecordType::SOA) {
                    answers.push(self.soa.clone());
                }
                if wants(RecordType::NS) {
                    answers.push(self.ns.clone());
                }
                Lookup::answers(answers)
            }
            [ns] => {
                let exists = table
                    .services
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((namespace, _), _)| namespace == ns);
                if exists {
                    Lookup::nodata()
                } else {
                    Lookup::NxDomain
                }
            }
            [name, ns] => match table.get(ns, name) {
                Some(service) if wants(RecordType::A) => {
                    Lookup::answers(self.service_a(service, owner))
                }
                Some(_) => Lookup::nodata(),
                None => Lookup::NxDomain,
            },
            [label, name, ns] => {
                let Some(service) = table.get(ns, name) else {
                    return Lookup::NxDomain;
                };
                if *label == "_tcp" {
                    return if service.ports.iter().any(|p| p.name.is_some()) {
                        Lookup::nodata()
                    } else {
                        Lookup::NxDomain
                    };
                }
                let ips: BTreeSet<Ipv4Addr> = service
                    .ports
                    .iter()
                    .flat_map(|p| &p.endpoints)
                    .filter(|e| e.pod.eq_ignore_ascii_case(label))
                    .map(|e| e.ip)
                    .collect();
                if ips.is_empty() {
                    Lookup::NxDomain
                } else if wants(RecordType::A) {
                    Lookup::answers(ips.into_iter().map(|ip| self.a(owner, ip)).collect())
                } else {
                    Lookup::nodata()
                }
            }
            [port, proto, name, ns] => {
                let Some(service) = table.get(ns, name) else {
                    return Lookup::NxDomain;
                };
                let Some(port) = port.strip_prefix('_') else {
                    return Lookup::NxDomain;
                };
                if *proto != "_tcp" {
                    return Lookup::NxDomain;
                }
                let entry = service.ports.iter().find(|p| {
                    p.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(port))
                });
                match entry {
                    None => Lookup::NxDomain,
                    Some(_) if !wants(RecordType::SRV) => Lookup::nodata(),
                    Some(entry) => self.srv(service, &entry.endpoints, owner),
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    fn a(&self, owner: &Name, ip: Ipv4Addr) -> Record {
        Record::from_rdata(owner.clone(), self.ttl, RData::A(A(ip)))
    }

    fn service_a(&self, service: &ServiceEntry, owner: &Name) -> Vec<Record> {
        match service.cluster_ip {
            Some(ip) => vec![self.a(owner, ip)],
            None => service
                .ports
                .iter()
                .flat_map(|p| &p.endpoints)
                .map(|e| e.ip)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|ip| self.a(owner, ip))
                .collect(),
        }
    }

    fn srv(&self, service: &ServiceEntry, endpoints: &[Endpoint], owner: &Name) -> Lookup {
        // Equal weights, as percentages the way CoreDNS does it.
        let weight = u16::try_from(100 / endpoints.len().max(1))
            .unwrap_or(1)
            .max(1);
        let mut answers = Vec::with_capacity(endpoints.len());
        let mut targets = BTreeMap::new();
        for endpoint in endpoints {
            let target = Name::from_labels([
                endpoint.pod.as_str(),
                service.name.as_str(),
                service.namespace.as_str(),
            ])
            .and_then(|n| n.append_domain(&self.origin));
            let target = match target {
                Ok(target) => target,
                Err(error) => {
                    debug!(pod = %endpoint.pod, %error, "pod name is not a usable SRV target");
                    continue;
                }
            };
            let srv = SRV::new(0, weight, endpoint.port, target.clone());
            answers.push(Record::from_rdata(owner.clone(), self.ttl, RData::SRV(srv)));
            targets.entry(target).or_insert(endpoint.ip);
        }
        let additionals = targets
            .into_iter()
            .map(|(target, ip)| self.a(&target, ip))
            .collect();
        Lookup::Found {
            answers,
            additionals,
        }
    }
}

/// How a query was answered, for the metric's `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answer,
    NoData,
    NxDomain,
    Forwarded,
    Refused,
    ServFail,
    FormErr,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::NoData => "nodata",
            Self::NxDomain => "nxdomain",
            Self::Forwarded => "forwarded",
            Self::Refused => "refused",
            Self::ServFail => "servfail",
            Self::FormErr => "formerr",
        }
    }
}

/// Lets one warning through per `WARN_INTERVAL`, so a dead upstream does not
/// flood the log with one line per query.
#[derive(Default)]
struct WarnLimiter {
    last: Mutex<Option<Instant>>,
}

impl WarnLimiter {
    fn allow(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WARN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

struct Handler {
    zone: Zone,
    table: watch::Receiver<Arc<ServiceTable>>,
    upstreams: Vec<SocketAddr>,
    forward_permits: Semaphore,
    forward_warnings: WarnLimiter,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let (info, outcome) = self.respond(request, response_handle).await;
        ::metrics::counter!(crate::discovery::metrics::DNS_QUERIES_TOTAL, "result" => outcome.as_str())
            .increment(1);
        ::metrics::histogram!(crate::discovery::metrics::DNS_REQUEST_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        match request.queries.queries().first() {
            Some(query) => debug!(
                src = %request.src(),
                name = %query.name(),
                qtype = %query.query_type(),
                result = outcome.as_str(),
                "dns query"
            ),
            None => debug!(src = %request.src(), result = outcome.as_str(), "dns query"),
        }
        info
    }
}

impl Handler {
    async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> (ResponseInfo, Outcome) {
        if questions_point_into_header(request.queries.as_bytes()) {
            // Every answer echoes the question bytes as received, and the
            // answer's header differs from the query's: a name compressed
            // into the header would decode as garbage. No real resolver
            // writes one, so the message is dropped, as malformed.
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::FormErr;
            let info = ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            });
            return (info, Outcome::FormErr);
        }
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns.set_version(0);
            edns.set_dnssec_ok(req.flags().dnssec_ok);
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = !self.upstreams.is_empty();

        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            metadata.response_code = ResponseCode::BADVERS;
            return (
                send(&mut handle, request, edns.as_ref(), metadata).await,
                Outcome::FormErr,
            );
        }
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query,
            Ok(_) => {
                // UPDATE, NOTIFY and the like: nothing here accepts them.
                metadata.response_code = ResponseCode::Refused;
                return (
                    send(&mut handle, request, edns.as_ref(), metadata).await,
                    Outcome::Refused,
                );
            }
            Err(_) => {
                // Not exactly one question.
                metadata.response_code = ResponseCode::FormErr;
                return (
                    send(&mut handle, request, edns.as_ref(), metadata).await,
                    Outcome::FormErr,
                );
            }
        };
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // There are no secondaries, and upstreams are not ours to transfer.
            metadata.response_code = ResponseCode::Refused;
            return (
                send(&mut handle, request, edns.as_ref(), metadata).await,
                Outcome::Refused,
            );
        }

        let lookup = {
            // A clone of the Arc, so the watch's lock is released at once
            // rather than held while the answer is built.
            let table = Arc::clone(&self.table.borrow());
            self.zone
                .lookup(&table, query.name(), query.original().name(), qtype)
        };

        let (answers, additionals, outcome) = match lookup {
            Lookup::Outside => {
                return self
                    .forward(request, query.original(), edns.as_ref(), metadata, handle)
                    .await;
            }
            _ if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) => {
                metadata.response_code = ResponseCode::Refused;
                return (
                    send(&mut handle, request, edns.as_ref(), metadata).await,
                    Outcome::Refused,
                );
            }
            Lookup::NxDomain => {
                metadata.response_code = ResponseCode::NXDomain;
                (Vec::new(), Vec::new(), Outcome::NxDomain)
            }
            Lookup::Found {
                answers,
                additionals,
            } if answers.is_empty() => (Vec::new(), additionals, Outcome::NoData),
            Lookup::Found {
                answers,
                additionals,
            } => (answers, additionals, Outcome::Answer),
        };
        metadata.authoritative = true;
        let soa = match outcome {
            Outcome::Answer => None,
            _ => Some(&self.zone.soa),
        };
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            soa,
            additionals.iter(),
        );
        (deliver(&mut handle, request, response).await, outcome)
    }

    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        query: &Query,
        edns: Option<&Edns>,
        mut metadata: Metadata,
        mut handle: R,
    ) -> (ResponseInfo, Outcome) {
        if self.upstreams.is_empty() {
            metadata.response_code = ResponseCode::Refused;
            return (
                send(&mut handle, request, edns, metadata).await,
                Outcome::Refused,
            );
        }
        let Ok(_permit) = self.forward_permits.try_acquire() else {
            if self.forward_warnings.allow() {
                warn!("too many dns queries being forwarded; answering SERVFAIL");
            }
            metadata.response_code = ResponseCode::ServFail;
            return (
                send(&mut handle, request, edns, metadata).await,
                Outcome::ServFail,
            );
        };

        let dnssec_ok = edns.is_some_and(|e| e.flags().dnssec_ok);
        let tcp_client = request.protocol() == Protocol::Tcp;
        for &upstream in &self.upstreams {
            let error =
                match forward_to(upstream, query, &request.metadata, dnssec_ok, tcp_client).await {
                    Ok(reply) if upstream_failed(reply.metadata.response_code) => {
                        format!("answered {}", reply.metadata.response_code)
                    }
                    Ok(reply) => {
                        metadata.response_code = reply.metadata.response_code;
                        metadata.authoritative = reply.metadata.authoritative;
                        metadata.authentic_data = reply.metadata.authentic_data;
                        metadata.truncation = reply.metadata.truncation;
                        let response = MessageResponseBuilder::new(&request.queries, edns).build(
                            metadata,
                            reply.answers.iter(),
                            reply.authorities.iter(),
                            std::iter::empty(),
                            reply.additionals.iter(),
                        );
                        return (
                            deliver(&mut handle, request, response).await,
                            Outcome::Forwarded,
                        );
                    }
                    Err(error) => error.to_string(),
                };
            if self.forward_warnings.allow() {
                warn!(%upstream, name = %query.name(), error, "dns upstream failed");
            } else {
                debug!(%upstream, name = %query.name(), error, "dns upstream failed");
            }
        }
        metadata.response_code = ResponseCode::ServFail;
        (
            send(&mut handle, request, edns, metadata).await,
            Outcome::ServFail,
        )
    }
}

/// Answers one raw UDP message as the server does — decoded by
/// hickory, dropped if it is a response, else handed to the handler of the
/// zone `domain` serving `table` with no upstreams — and returns the bytes
/// sent back (`None` when nothing is). For the fuzz targets.
pub(crate) fn answer_raw(domain: &str, table: Arc<ServiceTable>, raw: &[u8]) -> Option<Vec<u8>> {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

    #[async_trait::async_trait]
    impl ResponseHandler for Capture {
        async fn send_response<'a>(
            &mut self,
            response: hickory_server::zone_handler::MessageResponse<
                '_,
                'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
            >,
        ) -> Result<ResponseInfo, hickory_server::net::NetError> {
            // Sized as hickory's UDP path does: the client's EDNS payload, or 512.
            let max = response.edns().map_or(512, |e| e.max_payload());
            let mut bytes = Vec::with_capacity(512);
            let mut encoder = hickory_server::proto::serialize::binary::BinEncoder::new(&mut bytes);
            encoder.set_max_size(max);
            let info = response
                .destructive_emit(&mut encoder)
                .map_err(hickory_server::net::NetError::from)?;
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
            Ok(info)
        }
    }

    let request = Request::from_bytes(
        raw.to_vec(),
        SocketAddr::from(([127, 0, 0, 1], 5353)),
        Protocol::Udp,
    )
    .ok()?;
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let handler = Handler {
        zone: Zone::new(domain, 5).ok()?,
        table: watch::channel(table).1,
        upstreams: Vec::new(),
        forward_permits: Semaphore::new(MAX_CONCURRENT_FORWARDS),
        forward_warnings: WarnLimiter::default(),
    };
    let capture = Capture::default();
    futures::executor::block_on(
        handler.handle_request::<_, hickory_server::net::runtime::TokioTime>(
            &request,
            capture.clone(),
        ),
    );
    capture
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// Sends a response with no records, e.g. an error.
async fn send<R: ResponseHandler>(
    handle: &mut R,
    request: &Request,
    edns: Option<&Edns>,
    metadata: Metadata,
) -> ResponseInfo {
    let response = MessageResponseBuilder::new(&request.queries, edns).build_no_records(metadata);
    deliver(handle, request, response).await
}

async fn deliver<'a, R: ResponseHandler>(
    handle: &mut R,
    request: &Request,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            debug!(src = %request.src(), %error, "cannot send dns response");
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

mod forward;
mod wire;
use forward::*;
use wire::questions_point_into_header;

#[cfg(test)]
mod tests;
