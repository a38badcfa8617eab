//! Pod start latency: from `POST /v1/apply` of a Pod bound to the node until
//! the API reports it Running, over 50 pods, against bare `docker run -d` of
//! the same image and command (the floor), interleaved in the same run.
//! Also the daemon's resident memory idle and with 50 pods.
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/pod_start`
//! (needs a running dockerd and Debian's busybox-static). Env: `PODS`
//! (default 50); `SHOAL_BIN` to use another `shoal` binary.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use shoal::client::{Client, object_path};
use shoal::resource::status::{PodPhase, PodReadiness};
use shoal::resource::{Kind, Object};

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64()
}

fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn wait_running(api: &Client, name: &str) {
    // A local read, as a user polling `get pod` would see it.
    let path = format!(
        "{}?consistent=false",
        object_path(Kind::Pod, "default", Some(name))
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(v) = api.send(Method::GET, &path, None).await
            && let Ok(pod) = serde_json::from_value::<Object>(v)
            && pod.status_or_default::<PodReadiness>().phase == Some(PodPhase::Running)
        {
            return;
        }
        assert!(Instant::now() < deadline, "pod {name} never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pods: usize = std::env::var("PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let image = images::ensure_busybox_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = support::DevDaemon::start("docker", "bench-node", dir.path(), None).await;
    let pid = daemon.pid();
    let api = daemon.api.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_mib(pid);

    let mut shoal = Vec::new();
    let mut floor = Vec::new();
    for i in 0..pods {
        let name = format!("bench-floor-{i}");
        let t = Instant::now();
        assert!(
            docker(&["run", "-d", "--name", &name, &image, "sleep", "3600"]),
            "docker run failed"
        );
        floor.push(t.elapsed());

        let pod = format!("bench-{i}");
        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  nodeName: bench-node\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
        );
        let t = Instant::now();
        if let Err(e) = api
            .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
            .await
        {
            panic!("apply {pod}: {e}");
        }
        wait_running(&api, &pod).await;
        shoal.push(t.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = rss_mib(pid);

    for i in 0..pods {
        docker(&["rm", "-f", &format!("bench-floor-{i}")]);
        let path = object_path(Kind::Pod, "default", Some(&format!("bench-{i}")));
        let _ = api.send(Method::DELETE, &path, None).await;
    }
    // Let the agent remove its containers before the daemon goes away.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", "label=io.shoal.node=bench-node"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        if out.iter().all(|b| b.is_ascii_whitespace()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(daemon);

    shoal.sort();
    floor.sort();
    let (s50, s99) = (percentile(&shoal, 0.5), percentile(&shoal, 0.99));
    let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
    println!("pod start, {pods} pods, one at a time (seconds)");
    println!("{:<28} {:>8} {:>8}", "", "p50", "p99");
    println!("{:<28} {:>8.3} {:>8.3}", "shoal apply -> Running", s50, s99);
    println!("{:<28} {:>8.3} {:>8.3}", "docker run -d (floor)", f50, f99);
    println!("ratio p50 {:.2} (target <= 1.3)", s50 / f50);
    println!(
        "shoal resident memory: idle {idle:.1} MiB, with {pods} pods {busy:.1} MiB (target idle < 40 MiB)"
    );
}
