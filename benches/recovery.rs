//! Recovery after a node dies: a three-node cluster of real `shoal agent`
//! processes on the Docker runtime runs a Deployment of 10 replicas; the
//! node holding most of them is SIGKILLed, and the time until 10 replicas
//! are Running and Ready again is measured. Repeated RUNS times (default
//! 10); the killed node is restarted between runs.
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/recovery`
//! (needs dockerd and Debian's busybox-static). Env: `RUNS`; `SHOAL_BIN`.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use shoal::client::{Client, object_path};
use shoal::resource::status::{PodPhase, PodReadiness};
use shoal::resource::{Kind, Object};

struct Agents {
    children: Vec<Option<Child>>,
    dirs: Vec<tempfile::TempDir>,
    p2p: Vec<u16>,
    api: Vec<u16>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The containers outlive their agents: remove what the benchmark ran.
        for i in 0..self.children.len() {
            let out = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=io.shoal.node=rec{i}"),
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let ids: Vec<&str> = out.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .stdout(Stdio::null())
                    .status();
            }
        }
    }
}

impl Agents {
    fn spawn(&self, i: usize) -> Child {
        let mut cmd = Command::new(support::shoal_bin());
        cmd.args(["agent", "--runtime", "docker", "--name", &format!("rec{i}")])
            // No ingress listeners on 0.0.0.0:80/443 from a test agent.
            .args(["--ingress-http-addr", "", "--ingress-https-addr", ""])
            .args(["--dns-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.dirs[i].path())
            .args(["--p2p-addr", &format!("127.0.0.1:{}", self.p2p[i])])
            .args(["--api-addr", &format!("127.0.0.1:{}", self.api[i])])
            .args(["--bootstrap-expect", "3"]);
        for (j, p) in self.p2p.iter().enumerate() {
            if j != i {
                cmd.args(["--join", &format!("127.0.0.1:{p}")]);
            }
        }
        let log = std::fs::File::create(self.dirs[i].path().join("agent.log")).expect("log file");
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn shoal")
    }

    /// The library's API client for agent `i`.
    fn api(&self, i: usize) -> Client {
        Client::new(&format!("127.0.0.1:{}", self.api[i]), None).expect("an API client")
    }
}

/// `path` read from one node without going through the leader, or `None`.
async fn local_get(api: &Client, path: &str) -> Option<Value> {
    let path = format!("{path}?consistent=false");
    api.send_within(Method::GET, &path, None, Some(Duration::from_secs(5)))
        .await
        .ok()
}

/// Ready replicas of the deployment per node, from one node's view.
async fn ready_per_node(api: &Client) -> Option<BTreeMap<String, usize>> {
    let v = local_get(api, &object_path(Kind::Pod, "default", None)).await?;
    let pods: Vec<Object> = serde_json::from_value(v.get("items")?.clone()).ok()?;
    let mut m = BTreeMap::new();
    for p in pods {
        if p.metadata.labels.get("app").map(String::as_str) != Some("rec") {
            continue;
        }
        let st = p.status_or_default::<PodReadiness>();
        let ready = st.condition("Ready").is_some_and(|c| c.is_true());
        if st.phase == Some(PodPhase::Running) && ready {
            let node = p.body.get("spec").and_then(|s| s.get("nodeName"));
            *m.entry(node.and_then(Value::as_str).unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    Some(m)
}

async fn wait_ready_total(
    api: &Client,
    want: usize,
    excluding: Option<&str>,
    limit: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(m) = ready_per_node(api).await {
            let n: usize = m
                .iter()
                .filter(|(node, _)| Some(node.as_str()) != excluding)
                .map(|(_, c)| c)
                .sum();
            if n >= want {
                return Some(t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let image = images::ensure_busybox_image();
    let ports = support::free_ports(6);
    let mut agents = Agents {
        children: Vec::new(),
        dirs: (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect(),
        p2p: ports[..3].to_vec(),
        api: ports[3..].to_vec(),
    };
    for i in 0..3 {
        let c = agents.spawn(i);
        agents.children.push(Some(c));
    }
    let first = agents.api(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(local_get(&first, "/v1/nodes").await, Some(v) if v["items"].as_array().map(Vec::len) == Some(3))
    {
        assert!(Instant::now() < deadline, "cluster never formed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rec\nspec:\n  replicas: 10\n  selector:\n    matchLabels:\n      app: rec\n  template:\n    metadata:\n      labels:\n        app: rec\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sleep\", \"3600\"]\n        resources:\n          requests:\n            cpu: 10m\n"
    );
    if let Err(e) = first
        .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
        .await
    {
        panic!("apply failed: {e}");
    }
    let mut times = Vec::new();
    for run in 0..runs {
        let alive: Vec<usize> = (0..3).filter(|i| agents.children[*i].is_some()).collect();
        let api = agents.api(alive[0]);
        wait_ready_total(&api, 10, None, Duration::from_secs(120))
            .await
            .expect("10 ready replicas before the kill");
        // Let every node settle (all alive, replicas spread) before killing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let per_node = ready_per_node(&api).await.unwrap_or_default();
        let (victim_name, held) = per_node
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, v)| (k.clone(), *v))
            .expect("a node with replicas");
        let victim: usize = victim_name
            .trim_start_matches("rec")
            .parse()
            .expect("node index");
        let observer = (0..3).find(|i| *i != victim).expect("observer");
        if let Some(mut c) = agents.children[victim].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let t = Instant::now();
        let got = wait_ready_total(
            &agents.api(observer),
            10,
            Some(&victim_name),
            Duration::from_secs(120),
        )
        .await;
        match got {
            Some(_) => {
                let d = t.elapsed();
                println!(
                    "run {run}: killed {victim_name} (held {held}), 10 ready again after {:.2} s",
                    d.as_secs_f64()
                );
                times.push(d);
            }
            None => println!("run {run}: killed {victim_name}: not recovered within 120 s"),
        }
        let c = agents.spawn(victim);
        agents.children[victim] = Some(c);
    }
    times.sort();
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return f64::NAN;
        }
        times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64()
    };
    println!();
    println!(
        "recovery of 10 replicas after SIGKILL of the node holding most ({} runs)",
        times.len()
    );
    println!(
        "  p50 {:.2} s   p99 {:.2} s   max {:.2} s   (target <= 8 s)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  anchors: Kubernetes defaults about 350 s (50 s node grace + 300 s toleration); Swarm about 15 s to mark the node down"
    );
}
