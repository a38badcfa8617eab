//! The proxy against real local upstreams (hyper servers in this process).

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::discovery::lb::LbSettings;
use crate::discovery::{Endpoint, PortEntry, ServiceEntry, ServiceTable};
use crate::ingress::routes;
use crate::resource::Object;

#[test]
fn the_host_comes_without_port_in_lower_case() {
    let h = |uri: &str, host: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(v) = host {
            headers.insert(header::HOST, HeaderValue::from_str(v).expect("a header"));
        }
        request_host(&uri.parse().expect("a URI"), &headers)
    };
    assert_eq!(
        h("/", Some("WWW.Example.com:8080")).as_deref(),
        Some("www.example.com")
    );
    assert_eq!(h("/", Some("example.com.")).as_deref(), Some("example.com"));
    assert_eq!(
        h("http://a.test/x", Some("b.test")).as_deref(),
        Some("a.test")
    );
    assert_eq!(h("/", Some("[::1]:80")).as_deref(), Some("::1"));
    assert_eq!(h("/", None), None);
}

#[test]
fn hop_by_hop_headers_are_dropped_with_those_connection_names() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-kept"]);
}

/// An upstream that answers `NAME METHOD PATH` and the forwarding headers,
/// echoes bytes after an upgrade, and sleeps on `/slow`.
async fn upstream(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |mut req: Request<Incoming>| async move {
                        if req.headers().contains_key(header::UPGRADE) {
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                if let Ok(up) = on.await {
                                    let mut io = TokioIo::new(up);
                                    let mut buf = [0u8; 1024];
                                    while let Ok(n) = io.read(&mut buf).await {
                                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                            break;
                                        }
                                    }
                                }
                            });
                            let mut r = Response::new(full(Bytes::new()));
                            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                            r.headers_mut()
                                .insert(header::UPGRADE, HeaderValue::from_static("echo"));
                            r.headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                            return Ok::<_, Infallible>(r);
                        }
                        if req.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                        let hv = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        let line = format!(
                            "{name} {} {} host={} xff={} proto={} fwd={}",
                            req.method(),
                            req.uri(),
                            hv("host"),
                            hv("x-forwarded-for"),
                            hv("x-forwarded-proto"),
                            hv("forwarded"),
                        );
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes().len())
                            .unwrap_or(0);
                        Ok(Response::new(full(Bytes::from(format!(
                            "{line} body={body}"
                        )))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn ingress(ann: Value, spec: Value) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default", "annotations": ann},
        "spec": spec,
    }))
    .expect("an object")
}

fn service(t: &mut ServiceTable, name: &str, eps: &[SocketAddr]) {
    let endpoints = eps
        .iter()
        .map(|a| Endpoint {
            ip: match a.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
            },
            port: a.port(),
            pod: name.into(),
            node: "n".into(),
        })
        .collect();
    t.services.insert(
        ("default".into(), name.into()),
        ServiceEntry {
            name: name.into(),
            namespace: "default".into(),
            cluster_ip: None,
            client_ip_affinity: None,
            ports: vec![PortEntry {
                name: None,
                port: 80,
                node_port: None,
                endpoints,
            }],
        },
    );
}

fn lb() -> LbSettings {
    LbSettings {
        connect_timeout: Duration::from_millis(500),
        connect_attempts: 3,
        eject_after_failures: 1,
        eject_for: Duration::from_secs(30),
    }
}

/// A proxy serving `ing` over `services`; returns its address.
async fn proxy(ing: Object, services: &ServiceTable) -> SocketAddr {
    let routes = routes::build(&[ing], &[], services);
    let mut pools = HashMap::new();
    crate::ingress::sync_pools(&mut pools, &routes, &lb());
    let live = Live::new(routes, pools, Default::default());
    let (_tx, rx) = watch::channel(Arc::new(live));
    // The sender lives as long as the test: leak it rather than thread it.
    std::mem::forget(_tx);
    let server = Arc::new(Server::new(&IngressConfig::default(), rx, Some(8443)));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(serve_http(server, l));
    addr
}

async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(header::HOST, host)
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let resp = client.request(req).await.expect("a response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn rules() -> Value {
    json!({
    "tls": [{"hosts": ["secure.test"], "secretName": "c"}],
    "rules": [
        {"host": "a.test", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "one", "port": {"number": 80}}}},
            {"path": "/two", "pathType": "Prefix", "backend": {"service": {"name": "two", "port": {"number": 80}}}},
            {"path": "/empty", "pathType": "Prefix", "backend": {"service": {"name": "empty", "port": {"number": 80}}}},
            {"path": "/missing", "pathType": "Prefix", "backend": {"service": {"name": "missing", "port": {"number": 80}}}},
        ]}},
        {"host": "secure.test", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "one", "port": {"number": 80}}}},
        ]}},
    ]})
}

#[tokio::test]
async fn requests_are_routed_with_forwarding_headers_and_errors_name_the_service() {
    let recorder = crate::api::metrics::recorder().expect("the process's recorder");
    let (one, two) = (upstream("one").await, upstream("two").await);
    let mut t = ServiceTable::default();
    service(&mut t, "one", &[one]);
    service(&mut t, "two", &[two]);
    service(&mut t, "empty", &[]);
    let addr = proxy(
        ingress(json!({"shoal.io/proxy-body-size": "1k"}), rules()),
        &t,
    )
    .await;
    let (s, _, b) = send(addr, "GET", "a.test", "/x?q=1", vec![]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b.starts_with("one GET /x?q=1 host=a.test xff=127.0.0.1 proto=http"),
        "{b}"
    );
    assert!(
        b.contains("fwd=for=127.0.0.1;host=a.test;proto=http"),
        "{b}"
    );
    let (_, _, b) = send(addr, "GET", "A.TEST:80", "/two/y", vec![]).await;
    assert!(b.starts_with("two GET /two/y host=A.TEST:80"), "{b}");
    let (s, _, b) = send(addr, "POST", "a.test", "/two", vec![7; 1000]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.ends_with("body=1000"), "{b}");
    let (s, _, b) = send(addr, "POST", "a.test", "/two", vec![7; 1025]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let (s, _, b) = send(addr, "GET", "a.test", "/empty", vec![]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.contains("default/empty has no ready endpoint"), "{b}");
    let (s, _, b) = send(addr, "GET", "a.test", "/missing", vec![]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.contains("default/missing"), "{b}");
    let (s, _, _) = send(addr, "GET", "b.test", "/", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, h, _) = send(addr, "GET", "secure.test", "/p?x=1", vec![]).await;
    assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        h.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        Some("https://secure.test:8443/p?x=1")
    );
    // Labelled by the rule's host, not the Host header ("A.TEST:80" above).
    let text = recorder.render();
    for want in [
        r#"shoal_ingress_requests_total{ingress="default/web",host="a.test",class="shoal",status="2xx"}"#,
        r#"shoal_ingress_requests_total{ingress="default/web",host="a.test",class="shoal",status="4xx"}"#,
        r#"shoal_ingress_requests_total{ingress="default/web",host="secure.test",class="shoal",status="3xx"} 1"#,
        r#"shoal_ingress_upstream_errors_total{service="default/empty",reason="no_endpoint"}"#,
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert!(!text.contains("A.TEST"), "a label from a request header");
}

#[tokio::test]
async fn an_idempotent_request_is_retried_past_a_dead_endpoint_and_it_is_ejected() {
    let live = upstream("live").await;
    // A port nothing listens on: bind, note it, close.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let mut t = ServiceTable::default();
    service(&mut t, "one", &[dead, live]);
    let addr = proxy(ingress(json!({}), rules()), &t).await;
    for _ in 0..10 {
        let (s, _, b) = send(addr, "GET", "a.test", "/", vec![]).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(b.starts_with("live "), "{b}");
    }
    // A POST is not retried, but the dead endpoint is ejected by now.
    let (s, _, b) = send(addr, "POST", "a.test", "/", vec![1]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // With only the dead endpoint left, the client hears 502.
    let mut t = ServiceTable::default();
    service(&mut t, "one", &[dead]);
    let addr = proxy(ingress(json!({}), rules()), &t).await;
    let (s, _, b) = send(addr, "GET", "a.test", "/", vec![]).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(b.contains("default/one"), "{b}");
}

#[tokio::test]
async fn a_slow_upstream_gets_504_and_rewrite_target_changes_the_path() {
    let one = upstream("one").await;
    let mut t = ServiceTable::default();
    service(&mut t, "two", &[one]);
    service(&mut t, "one", &[one]);
    let addr = proxy(
        ingress(
            json!({"shoal.io/proxy-read-timeout": "1", "shoal.io/rewrite-target": "/"}),
            rules(),
        ),
        &t,
    )
    .await;
    let (_, _, b) = send(addr, "GET", "a.test", "/two/inner?k=v", vec![]).await;
    assert!(b.starts_with("one GET /inner?k=v"), "{b}");
    let t0 = Instant::now();
    let (s, _, b) = send(addr, "GET", "a.test", "/slow", vec![]).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    assert!(t0.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn an_upgrade_is_passed_through_and_echoed() {
    let one = upstream("one").await;
    let mut t = ServiceTable::default();
    service(&mut t, "one", &[one]);
    let addr = proxy(ingress(json!({}), rules()), &t).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("read the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [&b"hello"[..], b"again"] {
        s.write_all(msg).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.expect("echo");
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn https_picks_the_certificate_by_sni_and_speaks_h2_by_alpn() {
    let one = upstream("one").await;
    let mut t = ServiceTable::default();
    service(&mut t, "one", &[one]);
    let routes = routes::build(&[ingress(json!({}), rules())], &[], &t);
    let mut pools = HashMap::new();
    crate::ingress::sync_pools(&mut pools, &routes, &lb());
    let ck = rcgen::generate_simple_self_signed(vec!["secure.test".to_string()]).expect("a cert");
    let key = crate::ingress::tls::certified_key(
        ck.cert.pem().as_bytes(),
        ck.key_pair.serialize_pem().as_bytes(),
    )
    .expect("a key");
    let certs =
        crate::ingress::tls::Certs::from_hosts([("secure.test".to_string(), Arc::new(key))]);
    let (tx, rx) = watch::channel(Arc::new(Live::new(routes, pools, certs)));
    let server = Arc::new(Server::new(&IngressConfig::default(), rx.clone(), None));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let tls = crate::ingress::tls::server_config(rx).expect("a TLS config");
    tokio::spawn(serve_https(server, l, tls));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("a root");
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let connect = |sni: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from(sni).expect("a name");
            connector.connect(name, tcp).await
        }
    };
    // A name with no certificate gets no handshake.
    assert!(connect("other.test").await.is_err());
    let io = connect("secure.test").await.expect("a handshake");
    assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("https://secure.test/x")
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let resp = send.send_request(req).await.expect("a response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("one GET /x host=secure.test xff=127.0.0.1 proto=https"),
        "{body}"
    );
    drop(tx);
}
