//! The autoscaler's reaction time and the cost of resource metrics.
//!
//! 1. From a step in CPU load (a file appears in a hostPath and the
//!    Deployment's one pod starts burning a core) to the HPA's first
//!    scale-up written to `spec.replicas`, with the default resolution
//!    (5 s) and sync period (5 s) and the default scale-up behavior; p50
//!    and max over `RUNS` (default 10). Between runs the load stops and the
//!    HPA (scale-down window 0 here) brings the Deployment back to one.
//! 2. The CPU cost of collection with `PODS` (default 50) idle containers:
//!    one sampling round as the agent does it (list the node's containers
//!    through the engine, read each one's stats through the Docker runtime,
//!    read /proc for the host), `ROUNDS` (default 200) times in this
//!    process, counting this process's CPU and dockerd's; and, coarser, the
//!    whole daemon's CPU sampling every 5 s against once an hour, `SECS`
//!    (default 60) each (the same daemon restarted with the other config,
//!    adopting the same containers).
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/autoscale`
//! (needs a running dockerd). Env: `RUNS`, `PODS`, `ROUNDS`, `SECS`,
//! `PARTS` (`reaction,cost`, the default, or either); `SHOAL_BIN`.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use shoal::client::{Client, object_path};
use shoal::resource::Kind;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; index 11 and 12 after the command.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

fn config(dir: &Path, resolution_ms: u64) -> std::path::PathBuf {
    let p = dir.join(format!("shoal-{resolution_ms}.toml"));
    std::fs::write(
        &p,
        format!(
            "[discovery]\ndns_addr = \"127.0.0.1:0\"\n[metrics]\nresolution_ms = {resolution_ms}\n"
        ),
    )
    .expect("config");
    p
}

async fn apply(api: &Client, manifest: String) {
    if let Err(e) = api
        .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
        .await
    {
        panic!("apply: {e}");
    }
}

async fn replicas(api: &Client) -> u64 {
    let path = format!(
        "{}?consistent=false",
        object_path(Kind::Deployment, "default", Some("step"))
    );
    match api.send(Method::GET, &path, None).await {
        Ok(v) => v["spec"]["replicas"].as_u64().unwrap_or(0),
        Err(_) => 0,
    }
}

async fn hpa_status(api: &Client) -> Value {
    let path = object_path(Kind::HorizontalPodAutoscaler, "default", Some("step"));
    api.send(Method::GET, &path, None)
        .await
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

/// Waits until the HPA has seen the idle load and keeps one replica.
async fn wait_idle(api: &Client) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let st = hpa_status(api).await;
        let util = st["currentMetrics"][0]["resource"]["current"]["averageUtilization"].as_u64();
        if replicas(api).await == 1 && util.is_some_and(|u| u < 20) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never idle at one replica: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn remove_containers(node: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.shoal.node={node}"),
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
            .output();
    }
}

async fn reaction(image: &str, runs: u64) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = tempfile::tempdir().expect("load dir");
    let cfg = config(dir.path(), 5000);
    let daemon =
        support::DevDaemon::start("docker", "bench-hpa", &dir.path().join("data"), Some(&cfg))
            .await;
    let api = daemon.api.clone();
    let on = load.path().join("on");
    apply(
        &api,
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: step}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: step}}}}
  template:
    metadata: {{labels: {{app: step}}}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{{name: load, hostPath: {{path: "{}", type: Directory}}}}]
      containers:
      - name: burn
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do if [ -e /load/on ]; then :; else sleep 1; fi; done"]
        volumeMounts: [{{name: load, mountPath: /load}}]
        resources: {{requests: {{cpu: 100m}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: step}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: step}}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"#,
            load.path().display()
        ),
    )
    .await;
    let mut out = Vec::new();
    for run in 0..runs {
        wait_idle(&api).await;
        // Start at a random point of the sampling and sync periods.
        tokio::time::sleep(Duration::from_millis(
            (u64::from(std::process::id()) * 7919 + run * 1237) % 5000,
        ))
        .await;
        std::fs::write(&on, b"").expect("load on");
        let t = Instant::now();
        while replicas(&api).await < 2 {
            assert!(t.elapsed() < Duration::from_secs(120), "no scale-up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out.push(t.elapsed());
        eprintln!("run {run}: {:.2} s", t.elapsed().as_secs_f64());
        std::fs::remove_file(&on).expect("load off");
    }
    let _ = api
        .send(
            Method::DELETE,
            &object_path(Kind::HorizontalPodAutoscaler, "default", Some("step")),
            None,
        )
        .await;
    let _ = api
        .send(
            Method::DELETE,
            &object_path(Kind::Deployment, "default", Some("step")),
            None,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(daemon);
    remove_containers("bench-hpa");
    out
}

/// The daemon's CPU share over `secs` seconds.
async fn cpu_share(pid: u32, secs: u64) -> f64 {
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64()
}

/// CPU seconds of one sampling round of `node`'s containers, done here
/// the agent's way: (stats here, stats in dockerd, one engine list, count).
async fn round_cost(node: &str, rounds: u64) -> (f64, f64, f64, usize) {
    use shoal::runtime::Runtime as _;
    let rt = shoal::runtime::docker::DockerRuntime::connect()
        .await
        .expect("docker");
    let labels = std::collections::BTreeMap::from([(
        shoal::runtime::LABEL_NODE.to_string(),
        node.to_string(),
    )]);
    let dockerd = Command::new("pidof")
        .arg("dockerd")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0u32);
    let me = std::process::id();
    // The engine's list, which the agent reuses from its own sync.
    let (l0, e0) = (cpu_secs(me), cpu_secs(dockerd));
    let mut list = Vec::new();
    for _ in 0..rounds {
        list = rt.list(&labels).await.expect("list");
    }
    let r = rounds.max(1) as f64;
    let listing = ((cpu_secs(me) - l0) + (cpu_secs(dockerd) - e0)) / r;
    let running: Vec<String> = list
        .into_iter()
        .filter(|c| c.state == shoal::runtime::ContainerState::Running)
        .map(|c| c.id)
        .collect();
    let (c0, d0) = (cpu_secs(me), cpu_secs(dockerd));
    for _ in 0..rounds {
        for id in &running {
            rt.stats(id).await.expect("stats");
        }
        let _ = std::fs::read_to_string("/proc/stat");
        let _ = std::fs::read_to_string("/proc/meminfo");
    }
    (
        (cpu_secs(me) - c0) / r,
        (cpu_secs(dockerd) - d0) / r,
        listing,
        running.len(),
    )
}

async fn collection_cost(image: &str, pods: u64, secs: u64, rounds: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (fast, off) = (config(dir.path(), 5000), config(dir.path(), 3_600_000));
    let daemon = support::DevDaemon::start("docker", "bench-usage", &data, Some(&off)).await;
    let api = daemon.api.clone();
    apply(
        &api,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: idle}}\nspec:\n  replicas: {pods}\n  selector: {{matchLabels: {{app: idle}}}}\n  template:\n    metadata: {{labels: {{app: idle}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: main, image: {image}, command: [sleep, \"3600\"]}}\n"
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let path = object_path(Kind::Deployment, "default", Some("idle"));
        let ready = api
            .send(Method::GET, &path, None)
            .await
            .map(|v| v["status"]["readyReplicas"].as_u64().unwrap_or(0))
            .unwrap_or(0);
        if ready == pods {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {pods} pods ready"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (mine, engine, listing, n) = round_cost("bench-usage", rounds).await;
    println!("one sampling round of {n} containers, {rounds} rounds");
    println!(
        "CPU per round: {:.2} ms reading stats + {:.2} ms in dockerd; every 5 s that is {:.3}% of a core (target <= 1%)",
        mine * 1e3,
        engine * 1e3,
        (mine + engine) / 5.0 * 100.0
    );
    println!(
        "an engine list of them costs {:.2} ms (here and in dockerd): {:.3}% of a core every 5 s; the agent reuses its sync's list instead",
        listing * 1e3,
        listing / 5.0 * 100.0
    );
    let without = cpu_share(daemon.pid(), secs).await;
    drop(daemon);
    // The same data dir: the restarted daemon adopts the running containers.
    let daemon = support::DevDaemon::start("docker", "bench-usage", &data, Some(&fast)).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let with = cpu_share(daemon.pid(), secs).await;
    let api = daemon.api.clone();
    let _ = api
        .send(
            Method::DELETE,
            &object_path(Kind::Deployment, "default", Some("idle")),
            None,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(daemon);
    remove_containers("bench-usage");
    (without, with)
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (runs, pods, secs) = (env("RUNS", 10), env("PODS", 50), env("SECS", 60));
    let rounds = env("ROUNDS", 200);
    let parts = std::env::var("PARTS").unwrap_or_else(|_| "reaction,cost".into());
    let image = images::ensure_busybox_image();
    if parts.contains("reaction") {
        let mut r = reaction(&image, runs).await;
        r.sort();
        println!(
            "load step to first scale-up write, {runs} runs, defaults (5 s resolution, 5 s sync)"
        );
        println!(
            "p50 {:.2} s, min {:.2} s, max {:.2} s (target p50 <= 10 s)",
            p(&r, 0.5),
            p(&r, 0.0),
            p(&r, 1.0)
        );
    }
    if parts.contains("cost") {
        let (without, with) = collection_cost(&image, pods, secs, rounds).await;
        println!("whole daemon's CPU with {pods} idle containers, {secs} s each");
        println!(
            "sampling hourly {:.2}% of a core, every 5 s {:.2}% of a core: difference {:.2}%",
            without * 100.0,
            with * 100.0,
            (with - without) * 100.0
        );
    }
}
