//! Write throughput and latency: a 3-node shoal cluster against a 3-member
//! etcd cluster, both on loopback in the same run, driven by the same load
//! generator at 16 and 64 concurrent clients.
//!
//! Run: `cargo build --release && cargo run --release --example store_writes`
//! (needs Debian's `etcd-server`). Env: `BENCH_SECONDS` (default 10) per
//! measurement; `SHOAL_BIN` to use another `shoal` binary.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;

struct Cluster {
    children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The cluster handle and the HTTP base URL of each member.
fn cluster(
    children: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
    http_ports: &[u16],
) -> (Cluster, Vec<String>) {
    let urls = http_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    (
        Cluster {
            children,
            _dirs: dirs,
        },
        urls,
    )
}

fn start_shoal() -> (Cluster, Vec<String>) {
    let ports = support::free_ports(6);
    let (p2p, api) = ports.split_at(3);
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(support::shoal_bin());
        cmd.args([
            "agent",
            "--name",
            &format!("s{i}"),
            "--bootstrap-expect",
            "3",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--p2p-addr", &format!("127.0.0.1:{}", p2p[i])])
        .args(["--api-addr", &format!("127.0.0.1:{}", api[i])])
        .args(["--ingress-http-addr", "", "--ingress-https-addr", ""]);
        for (j, p) in p2p.iter().enumerate() {
            if j != i {
                cmd.args(["--join", &format!("127.0.0.1:{p}")]);
            }
        }
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(cmd.spawn().expect("spawn shoal"));
        dirs.push(dir);
    }
    cluster(children, dirs, api)
}

fn start_etcd() -> (Cluster, Vec<String>) {
    let ports = support::free_ports(6);
    let (peer, client) = ports.split_at(3);
    let initial: Vec<String> = (0..3)
        .map(|i| format!("e{i}=http://127.0.0.1:{}", peer[i]))
        .collect();
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", client[i]),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", client[i]),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", peer[i]),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", peer[i]),
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd (apt-get install etcd-server)");
        children.push(child);
        dirs.push(dir);
    }
    cluster(children, dirs, client)
}

async fn wait_ok(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never became healthy");
}

#[derive(Clone, Copy)]
enum Target {
    Shoal,
    Etcd,
}

fn configmap_json(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name },
        "data": { "payload": "x".repeat(64) },
    }))
    .expect("json")
}

struct Result {
    writes: usize,
    errors: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

async fn run_load(target: Target, urls: &[String], clients: usize, secs: u64, tag: &str) -> Result {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let urls = Arc::new(urls.to_vec());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let urls = urls.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lats = Vec::new();
            let mut errors = 0usize;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let base = &urls[(c + i as usize) % urls.len()];
                let name = format!("{tag}-{c}-{i}");
                let body = configmap_json(&name);
                let req = match target {
                    Target::Shoal => http
                        .post(format!("{base}/v1/namespaces/default/configmaps"))
                        .body(body),
                    Target::Etcd => {
                        let b64 = base64::engine::general_purpose::STANDARD;
                        let put = serde_json::json!({ "key": b64.encode(&name), "value": b64.encode(&body) });
                        http.post(format!("{base}/v3/kv/put")).json(&put)
                    }
                };
                let t = Instant::now();
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lats.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                i += 1;
            }
            (lats, errors)
        }));
    }
    let mut lats = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        lats.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    lats.sort();
    let pct = |p: f64| {
        lats.get(((lats.len() as f64 * p) as usize).min(lats.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        writes: lats.len(),
        errors,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if !Path::new("/usr/bin/etcd").exists()
        && Command::new("etcd").arg("--version").output().is_err()
    {
        eprintln!("store_writes: etcd is not installed (apt-get install etcd-server)");
        std::process::exit(1);
    }
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let (_shoal, shoal_urls) = start_shoal();
        let (_etcd, etcd_urls) = start_etcd();
        for u in &shoal_urls {
            wait_ok(&http, &format!("{u}/healthz")).await;
        }
        for u in &etcd_urls {
            wait_ok(&http, &format!("{u}/health")).await;
        }
        println!("store_writes: 3-node shoal vs 3-member etcd on loopback, {secs}s per run, 64-byte payload ConfigMap");
        println!(
            "{:<8} {:>8} {:>12} {:>10} {:>10} {:>8}",
            "system", "clients", "writes/s", "p50 ms", "p99 ms", "errors"
        );
        for clients in [16usize, 64] {
            // Warm both up briefly so connection setup is not measured.
            run_load(Target::Shoal, &shoal_urls, clients, 1, &format!("warm{clients}")).await;
            run_load(Target::Etcd, &etcd_urls, clients, 1, &format!("warm{clients}")).await;
            let s = run_load(Target::Shoal, &shoal_urls, clients, secs, &format!("c{clients}")).await;
            let e = run_load(Target::Etcd, &etcd_urls, clients, secs, &format!("c{clients}")).await;
            for (name, r) in [("shoal", &s), ("etcd", &e)] {
                println!(
                    "{:<8} {:>8} {:>12.0} {:>10.2} {:>10.2} {:>8}",
                    name,
                    clients,
                    r.writes as f64 / r.secs,
                    ms(r.p50),
                    ms(r.p99),
                    r.errors
                );
            }
            let (st, et) = (s.writes as f64 / s.secs, e.writes as f64 / e.secs);
            println!(
                "ratio    {:>8} {:>12.2} {:>10.2} {:>10.2}   (shoal / etcd; target: throughput >= 1, p99 <= 1)",
                clients,
                st / et,
                ms(s.p50) / ms(e.p50),
                ms(s.p99) / ms(e.p99)
            );
        }
    });
}
