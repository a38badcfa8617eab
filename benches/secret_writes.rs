//! The cost of sealing Secrets at rest: writes/s and latency of Secrets
//! (sealed with AES-256-GCM before they are proposed) against ConfigMaps
//! of the same size (stored as they are), on one 3-node shoal cluster in
//! the same run, the two kinds interleaved round by round so that drift in
//! the machine's load falls on both alike. Target: ≤ 5 % added latency.
//!
//! Run: `cargo build --release --bins --examples && cargo run --release
//! --example secret_writes`. Env: `BENCH_SECONDS` (default 10) per round,
//! `ROUNDS` (default 2) per kind, `CLIENTS` (default 16), `VALUE_BYTES`
//! (default 1024), `SHOAL_BIN`.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Cluster {
    children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
    apis: Vec<shoal::client::Client>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_cluster(n: usize) -> Cluster {
    let ports = support::free_ports(2 * n);
    let (p2p, api) = ports.split_at(n);
    let mut c = Cluster {
        children: Vec::new(),
        _dirs: Vec::new(),
        apis: Vec::new(),
    };
    for i in 0..n {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(support::shoal_bin());
        cmd.args(["agent", "--name", &format!("seal{i}")])
            .args(["--bootstrap-expect", &n.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--p2p-addr", &format!("127.0.0.1:{}", p2p[i])])
            .args(["--api-addr", &format!("127.0.0.1:{}", api[i])])
            .args(["--dns-addr", "127.0.0.1:0"])
            .args(["--ingress-http-addr", "", "--ingress-https-addr", ""]);
        for (j, p) in p2p.iter().enumerate() {
            if j != i {
                cmd.args(["--join", &format!("127.0.0.1:{p}")]);
            }
        }
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.children.push(cmd.spawn().expect("spawn shoal"));
        c._dirs.push(dir);
        c.apis.push(
            shoal::client::Client::new(&format!("127.0.0.1:{}", api[i]), None)
                .expect("an API client"),
        );
    }
    c
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::ConfigMap => "/v1/namespaces/default/configmaps",
            Kind::Secret => "/v1/namespaces/default/secrets",
        }
    }

    /// An object of this kind whose one value is `bytes` long once decoded.
    fn body(self, name: &str, bytes: usize) -> Vec<u8> {
        let value = "x".repeat(bytes);
        let v = match self {
            Kind::ConfigMap => serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name}, "data": {"payload": value},
            }),
            Kind::Secret => serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name}, "stringData": {"payload": value},
            }),
        };
        serde_json::to_vec(&v).expect("json")
    }
}

#[derive(Default)]
struct Tally {
    lats: Vec<Duration>,
    errors: usize,
    secs: f64,
}

async fn round(
    c: &Cluster,
    kind: Kind,
    clients: usize,
    secs: u64,
    bytes: usize,
    tag: &str,
) -> Tally {
    let apis = Arc::new(c.apis.clone());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..clients {
        let apis = apis.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let api = &apis[(w + i) % apis.len()];
                let body = kind.body(&format!("{tag}-{w}-{i}"), bytes);
                let t0 = Instant::now();
                let r = api
                    .call(
                        reqwest::Method::POST,
                        kind.path(),
                        Some(body),
                        Some(Duration::from_secs(10)),
                    )
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        t.lats.push(t0.elapsed());
                    }
                    _ => t.errors += 1,
                }
                i += 1;
            }
            t
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.lats.extend(t.lats);
            all.errors += t.errors;
        }
    }
    all.secs = start.elapsed().as_secs_f64();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs = env("BENCH_SECONDS", 10) as u64;
    let rounds = env("ROUNDS", 2);
    let clients = env("CLIENTS", 16);
    let bytes = env("VALUE_BYTES", 1024);
    let c = start_cluster(3);
    for api in &c.apis {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !support::healthy(api).await {
            assert!(Instant::now() < deadline, "shoal never became healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Warm up both paths (the first Secret write also makes the data key).
    round(&c, Kind::Secret, 2, 2, bytes, "warm-s").await;
    round(&c, Kind::ConfigMap, 2, 2, bytes, "warm-c").await;

    let mut totals = [Tally::default(), Tally::default()];
    for r in 0..rounds {
        for (i, kind) in [Kind::ConfigMap, Kind::Secret].into_iter().enumerate() {
            let t = round(&c, kind, clients, secs, bytes, &format!("r{r}-{i}")).await;
            totals[i].lats.extend(t.lats);
            totals[i].errors += t.errors;
            totals[i].secs += t.secs;
        }
    }
    println!(
        "Writes of one {bytes} B value, 3 nodes, {clients} clients, {rounds} x {secs} s per kind, interleaved:"
    );
    println!(
        "{:<22} {:>10} {:>9} {:>9} {:>7}",
        "kind", "writes/s", "p50 ms", "p99 ms", "errors"
    );
    let mut p50 = [0.0; 2];
    for (i, name) in ["ConfigMap (plain)", "Secret (sealed)"]
        .into_iter()
        .enumerate()
    {
        let t = &mut totals[i];
        t.lats.sort();
        p50[i] = pct(&t.lats, 0.5);
        println!(
            "{:<22} {:>10.0} {:>9.2} {:>9.2} {:>7}",
            name,
            t.lats.len() as f64 / t.secs.max(f64::EPSILON),
            p50[i],
            pct(&t.lats, 0.99),
            t.errors
        );
    }
    println!(
        "sealing adds {:+.1} % to the median write latency",
        (p50[1] / p50[0] - 1.0) * 100.0
    );
}
