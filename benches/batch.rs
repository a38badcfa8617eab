//! Batch workloads (issue 17), on a three-node cluster of real `shoal
//! agent` processes:
//!
//! - `job`: a Job of COMPLETIONS (default 1000) completions with
//!   parallelism PARALLELISM (default 50), each pod `true`; wall time from
//!   apply to the Complete condition and pods/s, on the process runtime and
//!   on Docker, against FLOOR (default COMPLETIONS) sequential
//!   `docker run --rm` of the same image and command (the floor).
//! - `cron`: a `* * * * *` CronJob over MINUTES (default 5) minute
//!   boundaries; for each, the delay from the scheduled minute to its Job's
//!   pod seen Running (polled every 20 ms from one node), p50/p99 (target
//!   p99 <= 1 s). On RUNTIME (default process).
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/batch`
//! (Docker parts need dockerd and Debian's busybox-static). Env: `PARTS`
//! (default `job,cron`), `RUNTIMES` (default `process,docker`, for `job`),
//! the counts above, `TIMEOUT_SECS` (default 1800, per wait); `SHOAL_BIN`.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::Value;
use shoal::client::{Client, object_path};
use shoal::resource::status::{JobStatus, PodPhase, PodReadiness};
use shoal::resource::{Kind, Object};

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Three agents started together; killed, and their containers removed, on drop.
struct Agents {
    children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
    api: Vec<u16>,
    prefix: String,
}

impl Agents {
    async fn start(runtime: &str, prefix: &str) -> Agents {
        let p2p = support::free_ports(3);
        let api = support::free_ports(3);
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut children = Vec::new();
        for i in 0..3 {
            let mut cmd = Command::new(support::shoal_bin());
            cmd.args([
                "agent",
                "--runtime",
                runtime,
                "--name",
                &format!("{prefix}{i}"),
            ])
            .args(["--ingress-http-addr", "", "--ingress-https-addr", ""])
            .args(["--dns-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dirs[i].path())
            .args(["--p2p-addr", &format!("127.0.0.1:{}", p2p[i])])
            .args(["--api-addr", &format!("127.0.0.1:{}", api[i])])
            .args(["--bootstrap-expect", "3"]);
            for (j, p) in p2p.iter().enumerate() {
                if j != i {
                    cmd.args(["--join", &format!("127.0.0.1:{p}")]);
                }
            }
            let log = std::fs::File::create(dirs[i].path().join("agent.log")).expect("log file");
            children.push(
                cmd.env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("spawn shoal"),
            );
        }
        let a = Agents {
            children,
            _dirs: dirs,
            api,
            prefix: prefix.to_string(),
        };
        // Ready once a write goes through (a leader is elected).
        let deadline = Instant::now() + Duration::from_secs(90);
        let probe =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-ready\ndata: {a: b}\n";
        while a
            .api(0)
            .send(Method::POST, "/v1/apply", Some(probe.as_bytes().to_vec()))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the cluster never took a write");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        a
    }

    fn api(&self, i: usize) -> Client {
        Client::new(&format!("127.0.0.1:{}", self.api[i]), None).expect("an API client")
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..self.children.len() {
            let out = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=io.shoal.node={}{i}", self.prefix),
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

async fn apply(api: &Client, manifest: String) {
    if let Err(e) = api
        .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
        .await
    {
        panic!("apply failed: {e}");
    }
}

/// A local read (no round trip through the leader), or `None`.
async fn local_get(api: &Client, path: &str) -> Option<Value> {
    let path = format!("{path}?consistent=false");
    api.send_within(Method::GET, &path, None, Some(Duration::from_secs(5)))
        .await
        .ok()
}

fn job_manifest(name: &str, image: &str, completions: u64, parallelism: u64) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  completions: {completions}\n  parallelism: {parallelism}\n  backoffLimit: 100\n  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sh\", \"-c\", \"true\"]\n"
    )
}

/// Apply to Complete for one runtime: (seconds, succeeded, failed, finished);
/// past TIMEOUT_SECS, what it reached by then, unfinished.
async fn job_run(
    runtime: &str,
    image: &str,
    completions: u64,
    parallelism: u64,
) -> (f64, u32, u32, bool) {
    let prefix = if runtime == "docker" { "bjd" } else { "bjp" };
    let agents = Agents::start(runtime, prefix).await;
    let api = agents.api(0);
    let limit = Duration::from_secs(env("TIMEOUT_SECS", 1800));
    let t = Instant::now();
    apply(&api, job_manifest("bench", image, completions, parallelism)).await;
    let path = object_path(Kind::Job, "default", Some("bench"));
    let mut last = JobStatus::default();
    loop {
        if let Some(v) = local_get(&api, &path).await
            && let Ok(o) = serde_json::from_value::<Object>(v)
            && let Ok(st) = o.status::<JobStatus>()
        {
            if st.is("Complete") || st.is("Failed") {
                return (t.elapsed().as_secs_f64(), st.succeeded, st.failed, true);
            }
            last = st;
        }
        if t.elapsed() >= limit {
            eprintln!("the Job did not finish within {limit:?} on {runtime}");
            return (
                t.elapsed().as_secs_f64(),
                last.succeeded,
                last.failed,
                false,
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` sequential `docker run --rm` of the Job's image and command.
fn docker_floor(image: &str, n: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        let ok = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                image,
                "sh",
                "-c",
                "true",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "docker run failed");
    }
    t.elapsed().as_secs_f64()
}

async fn job_part() {
    let completions = env("COMPLETIONS", 1000);
    let parallelism = env("PARALLELISM", 50);
    let floor_n = env("FLOOR", completions);
    let runtimes = std::env::var("RUNTIMES").unwrap_or_else(|_| "process,docker".into());
    println!(
        "Job: {completions} completions, parallelism {parallelism}, three nodes, pod command `true`"
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "run", "wall s", "pods/s", "succeeded", "failed"
    );
    let mut image = None;
    for rt in runtimes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let img = match rt {
            "docker" => image
                .get_or_insert_with(images::ensure_busybox_image)
                .clone(),
            _ => "host".to_string(),
        };
        let (secs, ok, failed, finished) = job_run(rt, &img, completions, parallelism).await;
        println!(
            "{:<28} {:>10.2} {:>10.1} {:>10} {:>8}",
            format!(
                "shoal Job ({rt}){}",
                if finished { "" } else { " UNFINISHED" }
            ),
            secs,
            f64::from(ok) / secs,
            ok,
            failed
        );
    }
    if runtimes.contains("docker") && floor_n > 0 {
        let img = image
            .get_or_insert_with(images::ensure_busybox_image)
            .clone();
        let secs = docker_floor(&img, floor_n);
        println!(
            "{:<28} {:>10.2} {:>10.1} {:>10} {:>8}",
            format!("{floor_n} x docker run --rm"),
            secs,
            floor_n as f64 / secs,
            floor_n,
            0
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn cron_part() {
    let minutes = env("MINUTES", 5);
    let runtime = std::env::var("RUNTIME").unwrap_or_else(|_| "process".into());
    let image = if runtime == "docker" {
        images::ensure_busybox_image()
    } else {
        "host".to_string()
    };
    let agents = Agents::start(&runtime, "bcr").await;
    let api = agents.api(1);
    apply(
        &api,
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"* * * * *\"\n  successfulJobsHistoryLimit: 100\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          terminationGracePeriodSeconds: 1\n          containers:\n          - name: main\n            image: {image}\n            command: [\"sh\", \"-c\", \"sleep 5\"]\n"
        ),
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // Minutes that start after the CronJob exists; the first may be close.
    let first = now / 60 + 1;
    let wanted: Vec<u64> = (first..first + minutes).collect();
    let end = Instant::now() + Duration::from_secs((minutes + 1) * 60 + 30);
    let mut seen: BTreeMap<u64, f64> = BTreeMap::new();
    let pods_path = object_path(Kind::Pod, "default", None);
    println!(
        "CronJob `* * * * *` on {runtime}: {minutes} minute boundaries, pod polled every 20 ms"
    );
    while seen.len() < wanted.len() && Instant::now() < end {
        if let Some(v) = local_get(&api, &pods_path).await
            && let Ok(pods) = serde_json::from_value::<Vec<Object>>(v["items"].clone())
        {
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            for p in &pods {
                let Some(minute) = p
                    .metadata
                    .labels
                    .get("job-name")
                    .and_then(|j| j.strip_prefix("tick-"))
                    .and_then(|m| m.parse::<u64>().ok())
                else {
                    continue;
                };
                let running =
                    p.status_or_default::<PodReadiness>().phase == Some(PodPhase::Running);
                if running && wanted.contains(&minute) && !seen.contains_key(&minute) {
                    let delay = at - (minute * 60) as f64;
                    println!("  minute {minute}: pod Running {delay:.3} s after it");
                    seen.insert(minute, delay);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut d: Vec<f64> = seen.values().copied().collect();
    d.sort_by(f64::total_cmp);
    println!(
        "cron minute -> pod Running: n={} (of {}), p50 {:.3} s, p99 {:.3} s (target p99 <= 1 s)",
        d.len(),
        wanted.len(),
        percentile(&d, 0.5),
        percentile(&d, 0.99)
    );
    drop(agents);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = std::env::var("PARTS").unwrap_or_else(|_| "job,cron".into());
    for part in parts.split(',').map(str::trim) {
        match part {
            "job" => job_part().await,
            "cron" => cron_part().await,
            "" => {}
            other => {
                eprintln!("unknown part {other:?}: job or cron");
                std::process::exit(2);
            }
        }
    }
}
