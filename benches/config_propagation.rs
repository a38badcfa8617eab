//! Time from a ConfigMap write to its new content in the mounted file of a
//! pod on every node of three: a 3-node shoal cluster (real processes,
//! Docker runtime), one pod per node mounting the ConfigMap, N rewrites of
//! it through the nodes' APIs in turn. Each rewrite is timed from the
//! start of the write until the file the pod's container sees holds the
//! new generation on all three nodes (p50/p99 of the slowest node, and of
//! every node-observation). Target: p99 ≤ 2 s; the kubelet's default sync
//! takes up to 60–90 s.
//!
//! The file is read on the host, in the pod's volume directory under the
//! node's data dir (`volumes/<pod uid>/<volume>/`): the container has a bind
//! mount of that very directory, so it sees the same bytes at the same
//! moment, and polling through `docker exec` would time the exec instead.
//!
//! Run: `cargo build --release --bins --examples && cargo run --release
//! --example config_propagation` (needs a running dockerd and Debian's
//! busybox-static). Env: `REWRITES` (default 100), `SHOAL_BIN`.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    dir: tempfile::TempDir,
    api: shoal::client::Client,
    name: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_cluster(n: usize) -> Vec<Node> {
    let ports = support::free_ports(2 * n);
    let (p2p, api) = ports.split_at(n);
    (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().expect("tempdir");
            let name = format!("cfgbench{i}");
            let mut cmd = Command::new(support::shoal_bin());
            cmd.args(["agent", "--name", &name, "--runtime", "docker"])
                .args(["--bootstrap-expect", &n.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
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
            let child = cmd.spawn().expect("spawn shoal");
            let api = shoal::client::Client::new(&format!("127.0.0.1:{}", api[i]), None)
                .expect("an API client");
            Node {
                child,
                dir,
                api,
                name,
            }
        })
        .collect()
}

/// Bytes per generation: a realistic config file, and enough that a
/// non-atomic write would be visible as a short read.
const BODY_BYTES: usize = 4096;

fn configmap(g: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-config\ndata:\n  value: \"g-{g:06}-{}\"\n",
        "x".repeat(BODY_BYTES)
    )
}

async fn apply(api: &shoal::client::Client, manifest: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api
            .call(
                reqwest::Method::POST,
                "/v1/apply",
                Some(manifest.as_bytes().to_vec()),
                Some(Duration::from_secs(10)),
            )
            .await;
        match r {
            Ok(r) if r.status().is_success() => return,
            other => {
                assert!(Instant::now() < deadline, "apply failed: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn get_json(api: &shoal::client::Client, path: &str) -> Option<serde_json::Value> {
    let r = api
        .call(
            reqwest::Method::GET,
            path,
            None,
            Some(Duration::from_secs(10)),
        )
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The mounted file of the running pod `name` on `node`, once running.
async fn mounted_file(api: &shoal::client::Client, node: &Node, name: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let path = format!("/v1/namespaces/default/pods/{name}?consistent=false");
        if let Some(p) = get_json(api, &path).await {
            let running = p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()));
            let uid = p["metadata"]["uid"].as_str().unwrap_or("");
            let file = node
                .dir
                .path()
                .join("data/volumes")
                .join(uid)
                .join("conf/value");
            if running && file.exists() {
                return file;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} not running on {} after 120 s",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn generation_of(file: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(file).ok()?;
    let g = s.strip_prefix("g-")?.get(..6)?.parse().ok()?;
    // A file of another length is a torn read: never counted as arrived.
    (s.len() == 2 + 6 + 1 + BODY_BYTES).then_some(g)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rewrites: u32 = std::env::var("REWRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let image = images::ensure_busybox_image();
    let nodes = start_cluster(3);
    for n in &nodes {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !support::healthy(&n.api).await {
            assert!(Instant::now() < deadline, "{} never became healthy", n.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let api = &nodes[0].api;
    apply(api, &configmap(0)).await;
    let mut files = Vec::new();
    for n in &nodes {
        let pod = format!("reader-{}", n.name);
        apply(
            api,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: conf, configMap: {{name: bench-config}}}}\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    volumeMounts:\n    - {{name: conf, mountPath: /conf}}\n",
                node = n.name
            ),
        )
        .await;
        files.push(mounted_file(api, n, &pod).await);
    }

    let mut slowest = Vec::new();
    let mut each = Vec::new();
    let mut missed = 0u32;
    for g in 1..=rewrites {
        let writer = &nodes[g as usize % nodes.len()].api;
        let t0 = Instant::now();
        apply(writer, &configmap(g)).await;
        let mut arrived: Vec<Option<Duration>> = vec![None; files.len()];
        let deadline = t0 + Duration::from_secs(30);
        while arrived.iter().any(Option::is_none) && Instant::now() < deadline {
            for (i, f) in files.iter().enumerate() {
                if arrived[i].is_none() && generation_of(f) == Some(g) {
                    arrived[i] = Some(t0.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if arrived.iter().any(Option::is_none) {
            missed += 1;
            continue;
        }
        let times: Vec<Duration> = arrived.into_iter().flatten().collect();
        slowest.push(times.iter().copied().max().unwrap_or_default());
        each.extend(times);
    }
    slowest.sort();
    each.sort();
    println!("ConfigMap write to mounted file, 3 nodes, {rewrites} rewrites of {BODY_BYTES} B:");
    if slowest.is_empty() {
        println!("  no rewrite reached every node within 30 s");
    } else {
        println!(
            "  all 3 nodes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            pct(&slowest, 0.5).as_secs_f64() * 1e3,
            pct(&slowest, 0.99).as_secs_f64() * 1e3,
            slowest[slowest.len() - 1].as_secs_f64() * 1e3
        );
        println!(
            "  each node:   p50 {:.0} ms, p99 {:.0} ms",
            pct(&each, 0.5).as_secs_f64() * 1e3,
            pct(&each, 0.99).as_secs_f64() * 1e3
        );
    }
    println!("  rewrites not seen on every node within 30 s: {missed}");

    // The pods' containers outlive their agents by design: stop the
    // agents (so none starts them again), then remove them.
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    drop(nodes);
    for name in names {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label={}={name}", shoal::runtime::LABEL_NODE))
            .output();
        if let Ok(o) = out {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}
