//! HTTP ingress end to end. On a three-node Docker cluster: host and path
//! routing to two Services through every node's listener, TLS with
//! certificates made here (rcgen) and SNI choosing between two hosts, a
//! renewed certificate served within seconds, a backend made unready
//! dropping out with no failed request, and an Ingress edit applied under
//! a long download that still completes. On a two-node cluster of host
//! processes: a WebSocket-style upgrade echoed through the ingress by a
//! server in this test process (a host-process pod declares the test's
//! listener as its port, so the Service's endpoint is that listener).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Each node's ingress on loopback, on a port the kernel picks.
fn ingress_on_loopback(c: &mut shoal::config::Config) {
    c.ingress.http_addr = Some("127.0.0.1:0".into());
    c.ingress.https_addr = Some("127.0.0.1:0".into());
}

fn http_addr(c: &Cluster, i: usize) -> SocketAddr {
    c.nodes[i]
        .as_ref()
        .and_then(|n| n.ingress.as_ref())
        .and_then(|g| g.http_addr())
        .expect("the ingress listens for HTTP")
}

fn https_addr(c: &Cluster, i: usize) -> SocketAddr {
    c.nodes[i]
        .as_ref()
        .and_then(|n| n.ingress.as_ref())
        .and_then(|g| g.https_addr())
        .expect("the ingress listens for HTTPS")
}

/// A Deployment of busybox httpd pods serving `NAME POD` at `/`, `/bx` and
/// `/b/x` (the ingress passes paths unchanged), a 16 MiB
/// file at `/big`, ready while /www/ready exists; and its Service.
fn web(image: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: web\n        image: {image}\n        command: [\"sh\", \"-c\", \"mkdir -p /www/b && echo {name} $(hostname) > /www/index.html && echo {name} $(hostname) > /www/bx && echo {name} $(hostname) > /www/b/x && dd if=/dev/zero of=/www/big bs=1048576 count=16 2>/dev/null && touch /www/ready && exec httpd -f -p 8080 -h /www\"]\n        ports:\n        - name: http\n          containerPort: 8080\n        readinessProbe:\n          httpGet: {{path: /ready, port: 8080}}\n          periodSeconds: 1\n          failureThreshold: 1\n        resources:\n          requests: {{cpu: 100m}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"
    )
}

/// Routes: `a.test` to web-a, `b.test` to `b_to`, and on `mixed.test`
/// `/b` (by path element) to web-b and the rest to web-a.
fn routes(b_to: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n  - host: a.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {{name: web-a, port: {{number: 80}}}}\n      - path: /big\n        pathType: Exact\n        backend:\n          service: {{name: web-a, port: {{name: http}}}}\n  - host: b.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {{name: {b_to}, port: {{number: 80}}}}\n  - host: mixed.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {{name: web-a, port: {{number: 80}}}}\n      - path: /b\n        pathType: Prefix\n        backend:\n          service: {{name: web-b, port: {{number: 80}}}}\n"
    )
}

/// TLS routes: `sa.test` to web-a and `sb.test` to web-b, each with the
/// certificate of its own Secret.
const SECURE: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: secure\nspec:\n  tls:\n  - hosts: [sa.test]\n    secretName: a-tls\n  - hosts: [sb.test]\n    secretName: b-tls\n  rules:\n  - host: sa.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: web-a, port: {number: 80}}\n  - host: sb.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: web-b, port: {number: 80}}\n";

/// A `kubernetes.io/tls` Secret holding a fresh self-signed certificate
/// for `host`; returns the manifest and the certificate's PEM.
fn tls_secret(name: &str, host: &str) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("a certificate");
    let cert = ck.cert.pem();
    let doc = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert, "tls.key": ck.key_pair.serialize_pem()},
    });
    (doc.to_string(), cert)
}

/// A client that sends `host` to `addr` and trusts only `roots`.
fn client(host: &str, addr: SocketAddr, roots: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    for r in roots {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(r.as_bytes()).expect("PEM"));
    }
    b.build().expect("a client")
}

/// Status and body of GET `http://host:port/path` sent to `addr`.
async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    let url = format!("http://{host}:{}{path}", addr.port());
    let r = client(host, addr, &[])
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.map_err(|e| e.to_string())?))
}

fn docker_exec(pod: &str, cmd: &[&str]) -> bool {
    let id = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label={}=default/{pod}", shoal::runtime::LABEL_POD))
        .output()
        .expect("docker runs");
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!id.is_empty(), "container of {pod}");
    std::process::Command::new("docker")
        .arg("exec")
        .arg(&id)
        .args(cmd)
        .status()
        .expect("docker exec runs")
        .success()
}

async fn endpoint_count(api: &Api, name: &str) -> usize {
    let (_, v) = api
        .get(&format!("/v1/namespaces/default/endpoints/{name}"))
        .await;
    v["ports"][0]["endpoints"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_ingress_routes_serves_tls_and_survives_changes() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("ig", &["2", "2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        ingress_on_loopback(c);
    })
    .await;
    let api = c.api();
    for (name, n) in [("web-a", 2), ("web-b", 1)] {
        let (code, v) = api.apply(&web(&image, name, n)).await;
        assert_eq!(code, 200, "{v}");
    }
    let (secret_a, cert_a) = tls_secret("a-tls", "sa.test");
    let (secret_b, cert_b) = tls_secret("b-tls", "sb.test");
    for m in [&secret_a, &secret_b, &routes("web-b"), SECURE] {
        let (code, v) = api.apply(m).await;
        assert_eq!(code, 200, "{v}");
    }
    for (name, n) in [("web-a", 2), ("web-b", 1)] {
        for i in 0..3 {
            let a = Api::new(c.nodes[i].as_ref().expect("up").api_addr);
            eventually(
                Duration::from_secs(120),
                "ready endpoints on every node",
                || {
                    let a = a.clone();
                    async move { endpoint_count(&a, name).await == n }
                },
            )
            .await;
        }
    }

    // Host and path routing through every node's listener.
    for i in 0..3 {
        let addr = http_addr(&c, i);
        eventually(
            Duration::from_secs(20),
            "the ingress routes a.test",
            || async move {
                matches!(get(addr, "a.test", "/").await, Ok((200, b)) if b.starts_with("web-a "))
            },
        )
        .await;
        for (host, path, want) in [
            ("b.test", "/", "web-b "),
            ("mixed.test", "/", "web-a "),
            ("mixed.test", "/b/x", "web-b "),
            ("mixed.test", "/bx", "web-a "),
        ] {
            let (s, b) = get(addr, host, path).await.expect("a response");
            assert_eq!(s, 200, "{host}{path}: {b}");
            assert!(b.starts_with(want), "{host}{path} on node {i}: {b}");
        }
        let (s, _) = get(addr, "nobody.test", "/").await.expect("a response");
        assert_eq!(s, 404);
    }
    // Both replicas of web-a serve through the ingress.
    let mut seen = BTreeMap::new();
    for _ in 0..40 {
        let (_, b) = get(http_addr(&c, 0), "a.test", "/")
            .await
            .expect("a response");
        *seen.entry(b.trim().to_string()).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // TLS: SNI picks each host's certificate on the same listener.
    let tls = https_addr(&c, 1);
    for (host, cert, want) in [
        ("sa.test", &cert_a, "web-a "),
        ("sb.test", &cert_b, "web-b "),
    ] {
        let url = format!("https://{host}:{}/", tls.port());
        let mut body = String::new();
        for _ in 0..100 {
            match client(host, tls, &[cert]).get(&url).send().await {
                Ok(r) => {
                    body = r.text().await.unwrap_or_default();
                    break;
                }
                Err(e) => body = format!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(body.starts_with(want), "{host} over TLS: {body}");
    }
    // Plain HTTP to a TLS host is redirected (ingress-nginx's default).
    let r = client("sa.test", http_addr(&c, 1), &[])
        .get(format!("http://sa.test:{}/x", http_addr(&c, 1).port()))
        .send()
        .await
        .expect("a response");
    assert_eq!(r.status().as_u16(), 308);
    let location = r.headers()["location"].to_str().expect("text").to_string();
    assert_eq!(
        location,
        format!("https://sa.test:{}/x", https_addr(&c, 1).port())
    );

    // A renewed certificate is served within seconds.
    let (renewed, cert_a2) = tls_secret("a-tls", "sa.test");
    let (code, v) = api.apply(&renewed).await;
    assert_eq!(code, 200, "{v}");
    let t0 = Instant::now();
    let url = format!("https://sa.test:{}/", tls.port());
    eventually(Duration::from_secs(10), "the renewed certificate", || {
        let (cert, url) = (cert_a2.clone(), url.clone());
        async move {
            client("sa.test", tls, &[&cert])
                .get(&url)
                .send()
                .await
                .is_ok()
        }
    })
    .await;
    println!("renewed certificate served after {:?}", t0.elapsed());

    // A backend made unready drops out with no failed request.
    let (_, list) = api
        .get("/v1/namespaces/default/pods?consistent=false")
        .await;
    let victim = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["metadata"]["labels"]["app"] == "web-a")
        .and_then(|p| p["metadata"]["name"].as_str())
        .expect("a web-a pod")
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for i in 0..3 {
        let addr = http_addr(&c, i);
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(addr, "a.test", "/").await {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    assert!(docker_exec(&victim, &["sh", "-c", "rm /www/ready"]));
    for i in 0..3 {
        let a = Api::new(c.nodes[i].as_ref().expect("up").api_addr);
        eventually(
            Duration::from_secs(20),
            "the unready replica leaves",
            || {
                let a = a.clone();
                async move { endpoint_count(&a, "web-a").await == 1 }
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("the load task");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 20, "requests were made");
    for i in 0..3 {
        for _ in 0..10 {
            let (_, b) = get(http_addr(&c, i), "a.test", "/")
                .await
                .expect("a response");
            assert!(
                !b.contains(&victim),
                "the unready replica was routed to: {b}"
            );
        }
    }
    assert!(docker_exec(&victim, &["sh", "-c", "touch /www/ready"]));

    // An Ingress edit under a long download: the download completes, and
    // new requests follow the edit.
    let addr = http_addr(&c, 2);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.expect("the first bytes");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let (code, v) = api.apply(&routes("web-a")).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(10), "the edit applies", || async move {
        matches!(get(addr, "b.test", "/").await, Ok((200, b)) if b.starts_with("web-a "))
    })
    .await;
    let mut total = n;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Slowly: the download spans the edit.
        let k = s.read(&mut buf).await.expect("the download continues");
        if k == 0 {
            break;
        }
        total += k;
    }
    assert!(
        total > 16 * 1024 * 1024,
        "the whole body arrived: {total} bytes"
    );

    c.stop().await;
}

/// An HTTP/1.1 server in this process: `/ready` answers 200, an upgrade
/// request gets 101 and its bytes echoed back.
async fn echo_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut byte).await.is_err() || head.len() > 16 * 1024 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !head.contains("upgrade: websocket") {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_is_echoed_through_the_ingress_of_every_node() {
    let c = Cluster::start("iw", &["2", "2"], ingress_on_loopback).await;
    let api = c.api();
    let echo = echo_server().await;
    let port = echo.port();
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ws\n  labels: {{app: ws}}\nspec:\n  nodeName: iw0\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"3600\"]\n    ports:\n    - name: ws\n      containerPort: {port}\n    readinessProbe:\n      httpGet: {{path: /ready, port: {port}}}\n      periodSeconds: 1\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ws\nspec:\n  selector: {{app: ws}}\n  ports:\n  - port: 80\n    targetPort: ws\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ws\nspec:\n  defaultBackend:\n    service: {{name: ws, port: {{number: 80}}}}\n"
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    for i in 0..2 {
        let addr = http_addr(&c, i);
        eventually(Duration::from_secs(60), "the echo Service is routed", || async move {
            matches!(get(addr, "any.test", "/ready").await, Ok((200, b)) if b == "ok")
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            .await
            .expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.expect("the response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        for msg in [&b"hello"[..], b"through the ingress"] {
            s.write_all(msg).await.expect("write");
            let mut back = vec![0u8; msg.len()];
            tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
                .await
                .expect("echo in time")
                .expect("echo");
            assert_eq!(back, msg, "node {i}");
        }
    }

    // The leader fills the status with the nodes' address; get ing shows it.
    eventually(Duration::from_secs(20), "status.loadBalancer", || {
        let api = api.clone();
        async move {
            let (_, v) = api.get("/v1/namespaces/default/ingresses/ws").await;
            v["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
        }
    })
    .await;
    let addr = c.nodes[1].as_ref().expect("up").api_addr.to_string();
    let (code, out, err) = shoal_cli(&addr, &["get", "ing"]).await;
    assert_eq!(code, 0, "{err}");
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row[..5], ["ws", "shoal", "*", "127.0.0.1", "80"], "{out}");

    // An Ingress of another class is not served, and an event says why.
    let other = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: other\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: other.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {name: nosvc, port: {number: 80}}\n";
    let (code, v) = api.apply(other).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "a NotServed event", || {
        let api = api.clone();
        async move {
            let (_, v) = api.get("/v1/namespaces/default/events").await;
            v["items"].as_array().into_iter().flatten().any(|e| {
                e["reason"] == "NotServed"
                    && e["involvedObject"]["name"] == "other"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("\"nginx\""))
            })
        }
    })
    .await;
    let (s, _) = get(http_addr(&c, 0), "other.test", "/ready")
        .await
        .expect("a response");
    assert_eq!(
        s, 200,
        "the default backend of ws answers, not the other Ingress (its Service does not exist)"
    );
    c.stop().await;
}
