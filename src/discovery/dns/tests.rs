use super::*;
use crate::discovery::table::{Endpoint, PortEntry};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::str::FromStr;

fn endpoint(ip: [u8; 4], port: u16, pod: &str) -> Endpoint {
    Endpoint {
        ip: ip.into(),
        port,
        pod: pod.to_string(),
        node: "n1".to_string(),
    }
}

fn service(
    namespace: &str,
    name: &str,
    cluster_ip: Option<[u8; 4]>,
    ports: Vec<PortEntry>,
) -> ServiceEntry {
    ServiceEntry {
        name: name.to_string(),
        namespace: namespace.to_string(),
        cluster_ip: cluster_ip.map(Ipv4Addr::from),
        ports,
        client_ip_affinity: None,
    }
}

fn port(name: Option<&str>, port: u16, endpoints: Vec<Endpoint>) -> PortEntry {
    PortEntry {
        name: name.map(str::to_string),
        port,
        node_port: None,
        endpoints,
    }
}

fn table_of(services: Vec<ServiceEntry>) -> ServiceTable {
    ServiceTable {
        services: services
            .into_iter()
            .map(|s| ((s.namespace.clone(), s.name.clone()), s))
            .collect(),
        cluster_id: Some("cluster-under-test".into()),
    }
}

#[tokio::test]
async fn a_server_says_which_cluster_it_serves() {
    let h = serve(Vec::new()).await;
    assert_eq!(
        holder(h.addr, "shoal", Duration::from_secs(2)).await,
        Holder::Cluster("cluster-under-test".into())
    );
    // Another domain's name is not ours to answer: forwarding is off, so
    // the server replies without naming a cluster.
    assert_eq!(
        holder(h.addr, "other", Duration::from_secs(2)).await,
        Holder::Unidentified
    );
    let free = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    assert_eq!(
        holder(free, "shoal", Duration::from_millis(300)).await,
        Holder::Nobody
    );
}

/// `web` has a cluster IP and two named ports, `db` is headless with two
/// pods (db-0 behind both ports), `empty` is headless with no endpoints,
/// `plain` has a single unnamed port.
fn fixture() -> ServiceTable {
    table_of(vec![
        service(
            "default",
            "web",
            Some([10, 96, 0, 10]),
            vec![
                port(
                    Some("http"),
                    80,
                    vec![
                        endpoint([10, 0, 0, 2], 8080, "web-a"),
                        endpoint([10, 0, 0, 3], 8081, "web-b"),
                    ],
                ),
                port(
                    Some("metrics"),
                    9090,
                    vec![endpoint([10, 0, 0, 2], 9090, "web-a")],
                ),
            ],
        ),
        service(
            "default",
            "db",
            None,
            vec![
                port(
                    Some("pg"),
                    5432,
                    vec![
                        endpoint([10, 0, 1, 1], 5432, "db-0"),
                        endpoint([10, 0, 1, 2], 5432, "db-1"),
                    ],
                ),
                port(
                    Some("repl"),
                    5433,
                    vec![endpoint([10, 0, 1, 1], 5433, "db-0")],
                ),
            ],
        ),
        service("default", "empty", None, vec![port(Some("x"), 1, vec![])]),
        service(
            "other",
            "plain",
            Some([10, 96, 0, 20]),
            vec![port(None, 80, vec![endpoint([10, 0, 2, 1], 80, "plain-a")])],
        ),
    ])
}

struct Harness {
    server: DnsServer,
    addr: SocketAddr,
    table: watch::Sender<Arc<ServiceTable>>,
}

async fn serve(upstreams: Vec<SocketAddr>) -> Harness {
    let (table, rx) = watch::channel(Arc::new(fixture()));
    let config = DnsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        domain: "shoal".to_string(),
        ttl_secs: 5,
        upstreams,
    };
    let server = start(config, rx).await.unwrap();
    let addr = server.local_addrs()[0];
    assert_ne!(addr.port(), 0, "local_addrs reports the bound port");
    Harness {
        server,
        addr,
        table,
    }
}

fn resolver(addr: SocketAddr, protocol: ProtocolConfig) -> TokioResolver {
    let mut connection = ConnectionConfig::new(protocol);
    connection.port = addr.port();
    let name_server = NameServerConfig::new(addr.ip(), true, vec![connection]);
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    // No cache, so a table update is seen by the very next lookup.
    options.cache_size = 0;
    options.attempts = 1;
    options.timeout = Duration::from_secs(2);
    builder.build().unwrap()
}

fn query_message(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message
}

/// Sends raw bytes over UDP and returns the reply, if one comes soon.
async fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    socket.send(bytes).await.unwrap();
    let mut buf = vec![0; 65535];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// One query over UDP, bypassing resolver logic so rcode, flags and the
/// authority section can be checked as sent.
async fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let query = query_message(name, rtype);
    let reply = udp_raw(addr, &query.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .expect("no reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, query.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

fn a_addrs(records: &[Record]) -> Vec<Ipv4Addr> {
    let mut ips: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn assert_negative(reply: &Message, code: ResponseCode) {
    assert_eq!(reply.metadata.response_code, code);
    assert!(reply.metadata.authoritative);
    assert!(reply.answers.is_empty(), "{:?}", reply.answers);
    let [soa] = reply.authorities.as_slice() else {
        panic!("want exactly the SOA in authority: {:?}", reply.authorities);
    };
    assert_eq!(soa.name, Name::from_str("svc.shoal.").unwrap());
    assert_eq!(soa.ttl, 5);
    let RData::SOA(data) = &soa.data else {
        panic!("not an SOA: {soa:?}");
    };
    assert_eq!(data.mname, Name::from_str("ns.svc.shoal.").unwrap());
    assert_eq!(data.minimum, 5);
}

#[tokio::test]
async fn a_answers_cluster_ip() {
    let h = serve(vec![]).await;
    let lookup = resolver(h.addr, ProtocolConfig::Udp)
        .lookup("web.default.svc.shoal.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(
        a_addrs(lookup.answers()),
        vec![Ipv4Addr::new(10, 96, 0, 10)]
    );

    // Case-insensitive, authoritative, TTL from the config.
    let reply = ask(h.addr, "WEB.Default.SVC.shoal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(a_addrs(&reply.answers), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    assert_eq!(reply.answers[0].ttl, 5);
}

#[tokio::test]
async fn srv_lists_endpoints_with_additional_a_records() {
    let h = serve(vec![]).await;
    let lookup = resolver(h.addr, ProtocolConfig::Udp)
        .lookup("_http._tcp.web.default.svc.shoal.", RecordType::SRV)
        .await
        .unwrap();
    let mut srvs: Vec<SRV> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    srvs.sort_by_key(|s| s.port);
    assert_eq!(srvs.len(), 2, "{srvs:?}");
    assert_eq!(srvs[0].port, 8080);
    assert_eq!(
        srvs[0].target,
        Name::from_str("web-a.web.default.svc.shoal.").unwrap()
    );
    assert_eq!(srvs[1].port, 8081);
    assert_eq!(
        srvs[1].target,
        Name::from_str("web-b.web.default.svc.shoal.").unwrap()
    );
    assert!(srvs.iter().all(|s| s.priority == 0));
    assert_eq!(srvs[0].weight, srvs[1].weight);

    let reply = ask(h.addr, "_HTTP._TCP.web.default.svc.shoal.", RecordType::SRV).await;
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.answers.len(), 2);
    let mut additional: Vec<(String, Ipv4Addr)> = reply
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_string(), a.0)),
            _ => None,
        })
        .collect();
    additional.sort();
    assert_eq!(
        additional,
        vec![
            (
                "web-a.web.default.svc.shoal.".to_string(),
                Ipv4Addr::new(10, 0, 0, 2)
            ),
            (
                "web-b.web.default.svc.shoal.".to_string(),
                Ipv4Addr::new(10, 0, 0, 3)
            ),
        ]
    );
}

#[tokio::test]
async fn unknown_names_are_nxdomain_with_soa() {
    let h = serve(vec![]).await;
    for (name, rtype) in [
        ("nope.default.svc.shoal.", RecordType::A),
        ("web.nope.svc.shoal.", RecordType::A),
        ("_http._udp.web.default.svc.shoal.", RecordType::SRV),
        ("_nope._tcp.web.default.svc.shoal.", RecordType::SRV),
        // Unnamed ports have no SRV, and so no `_tcp` either.
        ("_tcp.plain.other.svc.shoal.", RecordType::A),
        ("nope.web.default.svc.shoal.", RecordType::A),
        ("a.b.c.d.e.svc.shoal.", RecordType::A),
        ("nope.shoal.", RecordType::A),
    ] {
        let reply = ask(h.addr, name, rtype).await;
        assert_negative(&reply, ResponseCode::NXDomain);
    }
}

#[tokio::test]
async fn existing_names_with_other_types_are_nodata() {
    let h = serve(vec![]).await;
    for (name, rtype) in [
        ("web.default.svc.shoal.", RecordType::AAAA),
        ("web.default.svc.shoal.", RecordType::TXT),
        ("web-a.web.default.svc.shoal.", RecordType::AAAA),
        ("_http._tcp.web.default.svc.shoal.", RecordType::A),
        // Empty non-terminals exist too (RFC 8020).
        ("default.svc.shoal.", RecordType::A),
        ("_tcp.web.default.svc.shoal.", RecordType::SRV),
        ("shoal.", RecordType::A),
        ("svc.shoal.", RecordType::A),
    ] {
        let reply = ask(h.addr, name, rtype).await;
        assert_negative(&reply, ResponseCode::NoError);
    }
}

#[tokio::test]
async fn apex_answers_soa_and_ns() {
    let h = serve(vec![]).await;
    let reply = ask(h.addr, "svc.shoal.", RecordType::SOA).await;
    assert!(reply.metadata.authoritative);
    let [soa] = reply.answers.as_slice() else {
        panic!("{:?}", reply.answers);
    };
    assert!(matches!(&soa.data, RData::SOA(s) if s.minimum == 5));

    let reply = ask(h.addr, "svc.shoal.", RecordType::NS).await;
    let [ns] = reply.answers.as_slice() else {
        panic!("{:?}", reply.answers);
    };
    assert!(matches!(&ns.data, RData::NS(n) if n.0 == Name::from_str("ns.svc.shoal.").unwrap()));
}

#[tokio::test]
async fn headless_a_answers_every_endpoint() {
    let h = serve(vec![]).await;
    let lookup = resolver(h.addr, ProtocolConfig::Udp)
        .lookup("db.default.svc.shoal.", RecordType::A)
        .await
        .unwrap();
    // db-0 is behind both ports but appears once.
    assert_eq!(
        a_addrs(lookup.answers()),
        vec![Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 1, 2)]
    );

    let reply = ask(h.addr, "empty.default.svc.shoal.", RecordType::A).await;
    assert_negative(&reply, ResponseCode::NoError);
}

#[tokio::test]
async fn pod_a_answers_its_endpoint() {
    let h = serve(vec![]).await;
    let resolver = resolver(h.addr, ProtocolConfig::Udp);
    let lookup = resolver
        .lookup("db-1.db.default.svc.shoal.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(a_addrs(lookup.answers()), vec![Ipv4Addr::new(10, 0, 1, 2)]);
    let lookup = resolver
        .lookup("web-b.web.default.svc.shoal.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(a_addrs(lookup.answers()), vec![Ipv4Addr::new(10, 0, 0, 3)]);
}

#[tokio::test]
async fn table_update_is_visible_on_next_query() {
    let h = serve(vec![]).await;
    let reply = ask(h.addr, "new.default.svc.shoal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);

    let mut table = fixture();
    let new = service("default", "new", Some([10, 96, 0, 99]), vec![]);
    table
        .services
        .insert(("default".to_string(), "new".to_string()), new);
    h.table.send(Arc::new(table)).unwrap();

    let reply = ask(h.addr, "new.default.svc.shoal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&reply.answers), vec![Ipv4Addr::new(10, 96, 0, 99)]);
}

/// A port nothing listens on: UDP to it fails fast with ICMP unreachable.
/// A UDP port that refuses at once, for the life of the returned socket.
/// The port stays bound so that no other test's socket can take it (a
/// freed port is soon handed out again, and a silent holder would turn a
/// quick refusal into a 2 s timeout); the socket is connected to a peer
/// that never sends, so the kernel matches no socket for the resolver's
/// datagrams and answers them with port unreachable.
async fn dead_port() -> (SocketAddr, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect("127.0.0.1:9").await.unwrap();
    (socket.local_addr().unwrap(), socket)
}

const FAKE_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// An upstream answering every A query with `FAKE_ANSWER`. Over UDP it
/// sets TC and sends no answer when `truncate_udp`; over TCP (same port)
/// it always answers in full.
async fn fake_upstream(truncate_udp: bool) -> SocketAddr {
    fn reply_to(bytes: &[u8], truncate: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(bytes).ok()?;
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.recursion_available = true;
        reply.metadata.truncation = truncate;
        let q = query.queries.first()?.clone();
        if !truncate {
            reply.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A(FAKE_ANSWER)),
            ));
        }
        reply.add_query(q);
        reply.to_vec().ok()
    }

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            if let Some(reply) = reply_to(&buf[..n], truncate_udp) {
                let _ = udp.send_to(&reply, from).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let Ok(len) = stream.read_u16().await else {
                continue;
            };
            let mut buf = vec![0; usize::from(len)];
            if stream.read_exact(&mut buf).await.is_err() {
                continue;
            }
            if let Some(reply) = reply_to(&buf, false) {
                let len = u16::try_from(reply.len()).unwrap();
                let _ = stream.write_all(&len.to_be_bytes()).await;
                let _ = stream.write_all(&reply).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn outside_names_are_forwarded_in_order() {
    let upstream = fake_upstream(false).await;
    // The first upstream is dead, so this also covers moving on.
    let (dead, _held) = dead_port().await;
    let h = serve(vec![dead, upstream]).await;
    let reply = ask(h.addr, "Example.COM.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.authoritative);
    assert_eq!(a_addrs(&reply.answers), vec![FAKE_ANSWER]);
    assert_eq!(
        reply.queries[0].name().to_string(),
        "Example.COM.",
        "the client's question is echoed"
    );

    let lookup = resolver(h.addr, ProtocolConfig::Udp)
        .lookup("example.org.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(a_addrs(lookup.answers()), vec![FAKE_ANSWER]);
}

#[tokio::test]
async fn servfail_when_every_upstream_fails() {
    let (dead, _held) = dead_port().await;
    let h = serve(vec![dead]).await;
    let reply = ask(h.addr, "example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn refused_without_upstreams() {
    let h = serve(vec![]).await;
    let reply = ask(h.addr, "example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(reply.answers.is_empty());
}

#[tokio::test]
async fn tcp_queries_are_answered() {
    let upstream = fake_upstream(true).await;
    let h = serve(vec![upstream]).await;
    let resolver = resolver(h.addr, ProtocolConfig::Tcp);
    let lookup = resolver
        .lookup("_pg._tcp.db.default.svc.shoal.", RecordType::SRV)
        .await
        .unwrap();
    assert_eq!(lookup.answers().len(), 2);
    assert_eq!(
        a_addrs(lookup.additionals()),
        vec![Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 1, 2)]
    );

    // The upstream truncates over UDP, so this answer came over TCP.
    let lookup = resolver
        .lookup("example.com.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(a_addrs(lookup.answers()), vec![FAKE_ANSWER]);

    // While a UDP client gets the truncated answer, to retry over TCP.
    let reply = ask(h.addr, "example.com.", RecordType::A).await;
    assert!(reply.metadata.truncation);
    assert!(reply.answers.is_empty());
}

#[tokio::test]
async fn garbage_does_not_kill_the_server() {
    let h = serve(vec![]).await;
    let short = [0xffu8, 0x00, 0x13];
    let noise: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    // A plausible header claiming a question that is not there.
    let headless = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let mut reply_to_headless = None;
    for bytes in [&short[..], &noise, &headless] {
        let reply = udp_raw(h.addr, bytes, Duration::from_millis(200)).await;
        if bytes == headless {
            reply_to_headless = reply;
        }
    }
    let reply = Message::from_vec(&reply_to_headless.expect("FORMERR expected")).unwrap();
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // Two questions parse but are not a query we answer.
    let mut two = query_message("web.default.svc.shoal.", RecordType::A);
    two.add_query(Query::query(
        Name::from_str("db.default.svc.shoal.").unwrap(),
        RecordType::A,
    ));
    let reply = udp_raw(h.addr, &two.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .expect("no reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let reply = ask(h.addr, "web.default.svc.shoal.", RecordType::A).await;
    assert_eq!(a_addrs(&reply.answers), vec![Ipv4Addr::new(10, 96, 0, 10)]);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let h = serve(vec![]).await;
    let addr = h.addr;
    TcpStream::connect(addr).await.unwrap();
    h.server.shutdown().await;
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn dropping_stops_serving() {
    let h = serve(vec![]).await;
    let addr = h.addr;
    drop(h);
    // Dropping aborts the server's tasks, which the runtime completes
    // on its next turns, so allow it a moment.
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("{addr} still accepts connections after the server was dropped");
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let (_tx, rx) = watch::channel(Arc::new(ServiceTable::default()));
    // TEST-NET-1 is not assigned to any local interface.
    let addr: SocketAddr = "192.0.2.1:0".parse().unwrap();
    let config = DnsConfig {
        listen: vec![addr],
        domain: "shoal".to_string(),
        ttl_secs: 5,
        upstreams: vec![],
    };
    let error = start(config, rx).await.unwrap_err();
    assert!(
        matches!(&error, DnsError::Bind { addr: a, .. } if *a == addr),
        "{error:?}"
    );
    assert!(error.to_string().contains("192.0.2.1:0"), "{error}");
}

#[tokio::test]
async fn daemons_share_a_fixed_port() {
    // A port free for both protocols right now.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(std::net::UdpSocket::bind(addr).unwrap());
    drop(probe);

    let mut servers = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = watch::channel(Arc::new(fixture()));
        let config = DnsConfig {
            listen: vec![addr],
            domain: "shoal".to_string(),
            ttl_secs: 5,
            upstreams: vec![],
        };
        let server = start(config, rx).await.unwrap();
        assert_eq!(server.local_addrs(), vec![addr]);
        servers.push((server, tx));
    }
    let reply = ask(addr, "web.default.svc.shoal.", RecordType::A).await;
    assert_eq!(a_addrs(&reply.answers), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    let lookup = resolver(addr, ProtocolConfig::Tcp)
        .lookup("web.default.svc.shoal.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(
        a_addrs(lookup.answers()),
        vec![Ipv4Addr::new(10, 96, 0, 10)]
    );
}

#[test]
fn resolv_conf_nameservers_minus_ourselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(
        &path,
        "# comment\n\
             search default.svc.shoal svc.shoal\n\
             nameserver 10.0.0.53\n\
             nameserver   172.17.0.1  \n\
             ; nameserver 10.9.9.9\n\
             nameserver 2001:db8::1\n\
             nameserver fe80::1%2\n\
             nameserver fe80::1%eth0\n\
             nameserver not-an-ip\n\
             nameserver 10.0.0.53\n\
             nameserver 127.0.0.1\n\
             options ndots:5\n",
    )
    .unwrap();
    let ours: SocketAddr = "172.17.0.1:53".parse().unwrap();
    let upstreams = upstreams_from_resolv_conf(&path, &[ours]);
    assert_eq!(
        upstreams,
        vec![
            "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
            "127.0.0.1:53".parse().unwrap(),
        ]
    );

    // Listening on the wildcard also means loopback is us.
    let wildcard: SocketAddr = "0.0.0.0:53".parse().unwrap();
    let upstreams = upstreams_from_resolv_conf(&path, &[wildcard]);
    assert!(!upstreams.contains(&"127.0.0.1:53".parse().unwrap()));
    assert!(upstreams.contains(&"172.17.0.1:53".parse().unwrap()));

    assert!(upstreams_from_resolv_conf(&dir.path().join("missing"), &[]).is_empty());
}

#[test]
fn invalid_domain_is_rejected() {
    assert!(matches!(Zone::new("", 5), Err(DnsError::Domain { .. })));
    assert!(matches!(Zone::new(".", 5), Err(DnsError::Domain { .. })));
    let zone = Zone::new("Cluster.Local.", 5).unwrap();
    assert_eq!(zone.origin, Name::from_str("svc.cluster.local.").unwrap());
}

/// A fuzzer-found message with three questions (so FORMERR) whose names
/// point at each other: the answer must still be a DNS message.
#[test]
fn formerr_for_several_questions_is_a_dns_message() {
    let raw: &[u8] = &[
        0, 8, 3, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 61, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        20, 2, 2, 2, 2, 2, 2, 2, 2, 150, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 66, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 77, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 192, 2, 2, 2, 2, 2, 2, 2, 2, 48, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 75, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    // hickory accepts it: the third name's pointer goes backwards, to
    // offset 2, which is inside the header.
    assert!(
        Request::from_bytes(
            raw.to_vec(),
            "127.0.0.1:5353".parse().unwrap(),
            Protocol::Udp
        )
        .is_ok()
    );
    assert_eq!(answer_raw("shoal", Arc::new(fixture()), raw), None);

    // The same question compressed against an earlier question is answered.
    let mut query = Message::query();
    query.metadata.id = 9;
    query.add_query(Query::query(
        Name::from_str("web.default.svc.shoal.").unwrap(),
        RecordType::A,
    ));
    let mut bytes = query.to_vec().unwrap();
    bytes.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    bytes[5] = 2;
    let reply = answer_raw("shoal", Arc::new(fixture()), &bytes).expect("an answer");
    let parsed = Message::from_vec(&reply).expect("the answer is a DNS message");
    assert_eq!(parsed.metadata.id, 9);
    assert_eq!(parsed.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn pointers_into_the_header_are_found() {
    // root name, then a name "a" + pointer to 12, then a pointer to 11.
    let ok = [0, 0, 1, 0, 1, 1, b'a', 0xC0, 12, 0, 1, 0, 1];
    assert!(!questions_point_into_header(&ok));
    let bad = [0, 0, 1, 0, 1, 0xC0, 11, 0, 1, 0, 1];
    assert!(questions_point_into_header(&bad));
    assert!(!questions_point_into_header(&[]));
    assert!(!questions_point_into_header(&[5, b'a']));
}
