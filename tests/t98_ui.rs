//! The web UI in a real browser: Debian's chromium, headless, driven over
//! WebDriver (chromedriver) against a three-node cluster on Docker whose
//! API needs a token. The page lists the three nodes; "+" takes a
//! Deployment from 2 to 3 replicas and the third pod appears without a
//! reload; a pod's logs stream into the page.
//!
//! With `SHOAL_UI_SCREENSHOTS=DIR` set, a PNG of each view is saved in DIR
//! (the project keeps them in docs/ui).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::remove_containers_of;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use shoal::node::Node;
use shoal::runtime::RuntimeKind;

const TOKEN: &str = "ui-test-admin-token";

/// Debian's browser, or `SHOAL_CHROMIUM`.
fn chromium() -> String {
    std::env::var("SHOAL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Debian's chromium-driver, or `SHOAL_CHROMEDRIVER`.
fn chromedriver() -> String {
    std::env::var("SHOAL_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// Fails (never skips) when the browser is missing, as the Docker tests do
/// without an engine.
fn require_browser() {
    for (bin, pkg) in [
        (chromium(), "chromium"),
        (chromedriver(), "chromium-driver"),
    ] {
        let ok = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{bin} not found or not runnable: the web UI test needs Debian's chromium and \
             chromium-driver (apt-get install -y {pkg}; .ci/setup installs both)"
        );
    }
}

/// chromedriver on a free port in a process group of its own, which is
/// killed on drop with the browser it started (a failed test never reaches
/// the session's close, and chromium outlives its driver), with the
/// browser's profile in its own temporary directory.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            port,
            profile,
        }
    }

    async fn browser(&self) -> Client {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three Docker nodes whose API needs [`TOKEN`].
async fn cluster() -> (Vec<Node>, Vec<tempfile::TempDir>) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let seeds: Vec<String> = ports
            .iter()
            .filter(|p| **p != ports[i])
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        nodes.push(
            start_node(dir.path(), &format!("ui{i}"), |c| {
                c.p2p_addr = format!("127.0.0.1:{}", ports[i]);
                c.join = seeds;
                c.bootstrap_expect = Some(3);
                c.runtime = Some(RuntimeKind::Docker);
                c.api.token = Some(TOKEN.into());
                c.agent.capacity_cpu = Some("2".into());
                c.agent.capacity_memory = Some("4Gi".into());
                c.agent.reserved_cpu = "0".into();
                c.agent.reserved_memory = "0".into();
                c.agent.resync_ms = 300;
                c.metrics.resolution_ms = 1000;
            })
            .await,
        );
    }
    for n in &nodes {
        assert!(
            n.wait_ready(Duration::from_secs(30)).await,
            "{} ready",
            n.info.name
        );
    }
    (nodes, dirs)
}

fn web(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: tick
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.5; done"]
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// Polls a check against the page until it holds; on timeout fails with
/// what the page showed.
async fn until<F, Fut>(b: &Client, what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() > deadline {
            let text = b
                .execute("return document.body.innerText", vec![])
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            panic!("timed out after {secs} s waiting for: {what}\nthe page showed:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The number of elements matching a CSS selector.
async fn count(b: &Client, css: &str) -> usize {
    b.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn text_of(b: &Client, css: &str) -> String {
    match b.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn screenshot(b: &Client, name: &str) {
    let Ok(dir) = std::env::var("SHOAL_UI_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn show(b: &Client, view: &str) {
    click(b, &format!("#nav a[data-view={view}]"), "nav link").await;
}

/// Clicks the element `css` finds; tries again when the page replaced it
/// between the find and the click (a re-render after a watch event).
async fn click(b: &Client, css: &str, what: &str) {
    let mut last = String::new();
    for _ in 0..20 {
        match b.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {what} ({css}): {last}");
}

/// The highest `tick N` in the log view.
fn last_tick(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_lists_nodes_scales_a_deployment_and_streams_logs() {
    require_browser();
    images::require_docker();
    let image = images::ensure_busybox_image();
    let started = Instant::now();
    let (nodes, _dirs) = cluster().await;
    // Served by a node that is not the first: the UI works from any node.
    let api = Api::new(nodes[2].api_addr).with_token(TOKEN);
    let (code, v) = api.apply(&web(&image)).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(90), "two web pods running", || {
        let api = api.clone();
        async move {
            let (_, v) = api.get("/v1/namespaces/default/pods").await;
            v["items"].as_array().is_some_and(|ps| {
                ps.iter()
                    .filter(|p| p["status"]["phase"] == "Running")
                    .count()
                    == 2
            })
        }
    })
    .await;

    let driver = Driver::start().await;
    let b = driver.browser().await;
    let ui = format!("http://{}/ui", nodes[2].api_addr);
    b.goto(&ui).await.expect("open the UI");

    // The page loads without a token, the API does not answer without one.
    until(&b, "the login prompt", 20, || async {
        text_of(&b, "#banner").await.contains("enter an API token")
    })
    .await;
    b.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(TOKEN)
        .await
        .expect("type the token");
    click(&b, "#login-save", "login button").await;

    // Cluster view: the three nodes, alive, one leader.
    until(&b, "three alive nodes and a leader", 60, || async {
        let mut ok = count(&b, "tr[data-node]").await == 3;
        for i in 0..3 {
            ok &= text_of(&b, &format!("tr[data-node=ui{i}]"))
                .await
                .contains("alive");
            ok &= text_of(&b, &format!("tr[data-node=ui{i}] td.node-status")).await == "Ready";
        }
        ok && text_of(&b, "#leader").await.starts_with("ui")
            && count(&b, "tr[data-node] td.raft-role").await == 3
    })
    .await;
    // Node usage arrives with the metrics (a second sample is needed).
    until(&b, "node usage figures", 30, || async {
        !text_of(&b, "tr[data-node=ui0]").await.contains("– /")
    })
    .await;
    screenshot(&b, "cluster").await;

    // Workloads: web at 2/2 with its two pods; "+" makes it three, live.
    show(&b, "workloads").await;
    let row = "tr[data-kind=Deployment][data-name=web]";
    until(&b, "web ready 2/2 with two pods", 60, || async {
        text_of(&b, &format!("{row} td.ready")).await == "2/2"
            && count(&b, &format!("{row} .pods-of span[data-pod]")).await == 2
    })
    .await;
    // A reload would lose this mark.
    b.execute("window.__sameDocument = 42; return true", vec![])
        .await
        .expect("mark the document");
    click(&b, &format!("{row} .scale-up"), "the + button").await;
    until(&b, "a third web pod on the page, ready 3/3", 90, || async {
        count(&b, &format!("{row} .pods-of span[data-pod]")).await == 3
            && text_of(&b, &format!("{row} td.ready")).await == "3/3"
    })
    .await;
    let same = b
        .execute("return window.__sameDocument === 42", vec![])
        .await
        .expect("read the mark");
    assert_eq!(same, json!(true), "the page reloaded");
    let (_, d) = api.get("/v1/namespaces/default/deployments/web").await;
    assert_eq!(d["spec"]["replicas"], 3, "the + wrote spec.replicas: {d}");
    assert!(
        text_of(&b, "#banner").await.contains("scaled to 3"),
        "the banner says what was done"
    );
    screenshot(&b, "workloads").await;

    // Pods: the three, running, with their nodes.
    show(&b, "pods").await;
    until(&b, "three running web pods", 30, || async {
        let mut running = 0;
        for e in b
            .find_all(Locator::Css("tr[data-pod] td.status"))
            .await
            .unwrap_or_default()
        {
            if e.text().await.unwrap_or_default() == "Running" {
                running += 1;
            }
        }
        running == 3
    })
    .await;
    screenshot(&b, "pods").await;

    // Services with their endpoints.
    show(&b, "services").await;
    until(&b, "the web service with endpoints", 60, || async {
        count(&b, "tr[data-service='default/web'] td.endpoints div").await >= 1
    })
    .await;
    screenshot(&b, "services").await;

    // Events: the scheduler's and the controllers' at least.
    show(&b, "events").await;
    until(&b, "events listed", 30, || async {
        count(&b, "main tbody tr td:nth-child(3)").await >= 1
    })
    .await;
    screenshot(&b, "events").await;

    // Logs of a pod, streaming: the tick count keeps growing on the page.
    show(&b, "pods").await;
    until(&b, "a logs link", 10, || async {
        count(&b, "a.logs-link").await >= 1
    })
    .await;
    click(&b, "a.logs-link", "logs link").await;
    until(&b, "log lines", 30, || async {
        last_tick(&text_of(&b, "#log").await) > 0
    })
    .await;
    let first = last_tick(&text_of(&b, "#log").await);
    until(&b, "more log lines, streamed", 30, || async {
        last_tick(&text_of(&b, "#log").await) >= first + 3
    })
    .await;
    screenshot(&b, "logs").await;

    // The metrics API's labelSelector (the pods view's figures come from
    // the same route).
    let path = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=";
    eventually(
        Duration::from_secs(30),
        "metrics of the three web pods",
        || {
            let api = api.clone();
            async move {
                let (_, v) = api.get(&format!("{path}app%3Dweb")).await;
                v["items"].as_array().map(Vec::len) == Some(3)
            }
        },
    )
    .await;
    let (code, v) = api.get(&format!("{path}app%3Dnone")).await;
    assert_eq!(
        (code, v["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (code, v) = api.get(&format!("{path}app%20in%20(web)")).await;
    assert_eq!(code, 400, "{v}");

    // An HPA on web: the row says so, and "+" warns as `shoal scale` does
    // (the HPA then puts the count back).
    let hpa = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 3
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;
    let (code, v) = api.apply(hpa).await;
    assert_eq!(code, 200, "{v}");
    show(&b, "workloads").await;
    until(&b, "the HPA badge on web", 30, || async {
        count(&b, &format!("{row} .badge.hpa")).await == 1
    })
    .await;
    click(&b, &format!("{row} .scale-up"), "the + button").await;
    until(&b, "the HPA warning", 30, || async {
        text_of(&b, "#banner")
            .await
            .contains("horizontalpodautoscaler/web-hpa manages the replicas of deployment/web")
    })
    .await;
    screenshot(&b, "workloads-hpa").await;

    // The stream the page follows never carries Secrets, whatever the role.
    let (code, v) = api.get("/v1/watch?kinds=pods,secrets").await;
    assert_eq!(code, 400, "{v}");

    let _ = b.close().await;
    drop(driver);
    for n in nodes {
        let (rt, name) = (n.runtime.clone(), n.info.name.clone());
        n.shutdown().await;
        remove_containers_of(&rt, &name).await;
    }
    eprintln!("t98_ui took {:?}", started.elapsed());
}
