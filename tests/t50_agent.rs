//! The node agent against real runtimes: the Docker engine (with a busybox
//! image built locally) and the process driver. Each behaviour test runs
//! once per runtime where it applies.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::images::{ensure_busybox_image, require_docker};
use common::*;
use serde_json::Value;
use shoal::node::Node;
use shoal::runtime::{DynRuntime, LABEL_CONTAINER, LABEL_POD_UID};

struct Harness {
    node: Node,
    api: Api,
    runtime: &'static str,
    image: String,
    /// Where process-runtime probes keep their flag files (host paths).
    scratch: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(runtime: &'static str, test: &str) -> Harness {
        let image = if runtime == "docker" {
            ensure_busybox_image()
        } else {
            "host".to_string()
        };
        let dir = tempfile::tempdir().unwrap();
        // Node names are unique per test: the agent removes containers
        // labelled with its node name that no pod of its own explains.
        let name = format!("t50-{runtime}-{test}");
        let node = start_node(dir.path(), &name, |c| {
            c.dev = true;
            c.runtime = Some(match runtime {
                "docker" => shoal::runtime::RuntimeKind::Docker,
                _ => shoal::runtime::RuntimeKind::Process,
            });
            c.agent.restart_backoff_initial_ms = 1000;
            c.agent.restart_backoff_max_ms = 8000;
            c.agent.resync_ms = 300;
        })
        .await;
        assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
        let api = Api::new(node.api_addr);
        Harness {
            node,
            api,
            runtime,
            image,
            scratch: pod_writable_tempdir(),
            _dir: dir,
        }
    }

    /// A path for probe flag files: inside the container for Docker, on the host for processes.
    fn flag(&self, name: &str) -> String {
        if self.runtime == "docker" {
            format!("/tmp/{name}")
        } else {
            self.scratch.path().join(name).display().to_string()
        }
    }

    fn pod(&self, name: &str, script: &str, extra_container: &str, extra_spec: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n{extra_spec}  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", {script:?}]\n{extra_container}",
            node = self.node.info.name,
            image = self.image,
        )
    }

    async fn apply(&self, manifest: &str) {
        let (code, v) = self.api.apply(manifest).await;
        assert_eq!(code, 200, "apply: {v}");
    }

    async fn pod_json(&self, name: &str) -> Value {
        let (code, v) = self
            .api
            .get(&format!(
                "/v1/namespaces/default/pods/{name}?consistent=false"
            ))
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Waits until the pod satisfies `pred`; returns it.
    async fn wait_pod(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.pod_json(name).await;
            if pred(&p) {
                return p;
            }
            if Instant::now() > deadline {
                panic!("pod {name}: timed out after {secs}s waiting for {what}; last: {p:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn containers_of(&self, pod: &Value) -> Vec<shoal::runtime::ContainerInfo> {
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        self.node
            .runtime
            .list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid)]))
            .await
            .expect("list containers")
    }

    /// Deletes the pod and waits up to `secs` until the runtime has none of its containers.
    async fn delete_and_wait_gone(&self, pod: &Value, secs: u64) {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let (code, v) = self
            .api
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/namespaces/default/pods/{name}"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{v}");
        let rt: DynRuntime = self.node.runtime.clone();
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        eventually(
            Duration::from_secs(secs),
            "the deleted pod's containers are gone",
            || {
                let rt = rt.clone();
                let uid = uid.clone();
                async move {
                    rt.list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid)]))
                        .await
                        .map(|l| l.is_empty())
                        .unwrap_or(false)
                }
            },
        )
        .await;
    }

    async fn events_of(&self, pod: &str) -> Vec<Value> {
        let (_, v) = self
            .api
            .get("/v1/namespaces/default/events?consistent=false")
            .await;
        v["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == pod)
            .collect()
    }

    /// Stops the node, then removes what it ran: the containers outlive the
    /// daemon by design, and host processes would outlive the test.
    async fn stop(self) {
        let rt = self.node.runtime.clone();
        let name = self.node.info.name.clone();
        self.node.shutdown().await;
        let mine = BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), name)]);
        for c in rt.list(&mine).await.unwrap_or_default() {
            let _ = rt.remove(&c.id).await;
        }
    }
}

fn cstatus(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn ready(p: &Value) -> Option<bool> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}

async fn runs_and_is_removed(runtime: &'static str) {
    let h = Harness::start(runtime, "run").await;
    h.apply(&h.pod("web", "echo hello from web; sleep 3600", "", ""))
        .await;
    let p = h
        .wait_pod("web", 60, "Running", |p| {
            phase(p) == "Running" && cstatus(p)["state"]["running"].is_object()
        })
        .await;
    let id = cstatus(&p)["containerID"].as_str().unwrap().to_string();
    assert!(id.starts_with(&format!("{runtime}://")), "{id}");
    assert_eq!(
        ready(&p),
        Some(true),
        "no readiness probe: ready once running"
    );
    assert!(p["status"]["hostIP"].is_string());
    let cs = h.containers_of(&p).await;
    assert_eq!(cs.len(), 1, "{cs:?}");
    // Logs come back through the API.
    let resp = h
        .api
        .http
        .get(format!("{}/v1/namespaces/default/pods/web/log", h.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("hello from web"), "{text:?}");
    let evs = h.events_of("web").await;
    assert!(evs.iter().any(|e| e["reason"] == "Started"), "{evs:?}");

    h.delete_and_wait_gone(&p, 15).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pod_runs_and_deleted_pod_is_removed() {
    require_docker();
    runs_and_is_removed("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pod_runs_and_deleted_pod_is_removed() {
    runs_and_is_removed("process").await;
}

async fn crash_loop(runtime: &'static str) {
    let h = Harness::start(runtime, "crash").await;
    h.apply(&h.pod("crash", "echo dying; exit 1", "", "")).await;
    // Record when each restart shows up: the gaps must grow (1 s, 2 s, 4 s).
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    let mut saw_backoff = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.last().map(|s| s.0).unwrap_or(0) < 4 {
        assert!(Instant::now() < deadline, "restarts seen: {seen:?}");
        let p = h.pod_json("crash").await;
        let n = cstatus(&p)["restartCount"].as_u64().unwrap_or(0);
        if cstatus(&p)["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            saw_backoff = true;
            assert_eq!(
                cstatus(&p)["lastState"]["terminated"]["exitCode"],
                1,
                "{p:#}"
            );
        }
        if seen.last().map(|s| s.0) != Some(n) {
            seen.push((n, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_backoff, "CrashLoopBackOff was never reported");
    let gap = |a: u64| {
        let t = |n: u64| seen.iter().find(|s| s.0 == n).map(|s| s.1);
        match (t(a), t(a + 1)) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        }
    };
    let (g1, g3) = (gap(1).expect("restart 1→2"), gap(3).expect("restart 3→4"));
    assert!(
        g3 > g1 + Duration::from_millis(1500),
        "back-off does not grow: {g1:?} then {g3:?} ({seen:?})"
    );
    assert_eq!(phase(&h.pod_json("crash").await), "Running");
    let evs = h.events_of("crash").await;
    let backoff = evs
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .expect("a BackOff event");
    assert!(backoff["count"].as_u64().unwrap_or(0) >= 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_crash_loop_backs_off() {
    require_docker();
    crash_loop("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_crash_loop_backs_off() {
    crash_loop("process").await;
}

async fn liveness_restarts(runtime: &'static str) {
    let h = Harness::start(runtime, "live").await;
    let flag = h.flag("alive");
    let probe = format!(
        "    livenessProbe:\n      exec:\n        command: [\"cat\", {flag:?}]\n      periodSeconds: 1\n      failureThreshold: 2\n"
    );
    // Healthy for 3 s, then the flag goes away and stays away.
    let script = format!("touch {flag}; sleep 3; rm -f {flag}; sleep 3600");
    h.apply(&h.pod("live", &script, &probe, "")).await;
    let p = h
        .wait_pod("live", 60, "a liveness restart", |p| {
            cstatus(p)["restartCount"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    assert!(cstatus(&p)["lastState"]["terminated"].is_object(), "{p:#}");
    let evs = h.events_of("live").await;
    assert!(
        evs.iter().any(|e| e["reason"] == "Unhealthy"
            && e["message"].as_str().unwrap_or("").contains("Liveness")),
        "{evs:#?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_failing_liveness_restarts() {
    require_docker();
    liveness_restarts("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_failing_liveness_restarts() {
    liveness_restarts("process").await;
}

async fn readiness_flips(runtime: &'static str) {
    let h = Harness::start(runtime, "ready").await;
    let flag = h.flag("ready");
    let probe = format!(
        "    readinessProbe:\n      exec:\n        command: [\"cat\", {flag:?}]\n      periodSeconds: 1\n      failureThreshold: 1\n"
    );
    h.apply(&h.pod("ready", &format!("touch {flag}; sleep 3600"), &probe, ""))
        .await;
    let p = h
        .wait_pod("ready", 60, "Ready", |p| ready(p) == Some(true))
        .await;
    let id = h.containers_of(&p).await[0].id.clone();
    // Through sh: the image links only a few applets, but its shell runs them all.
    let rm = vec!["sh".to_string(), "-c".into(), format!("rm -f {flag}")];
    let out = h
        .node
        .runtime
        .exec(&id, &rm, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    h.wait_pod("ready", 20, "not Ready", |p| ready(p) == Some(false))
        .await;
    let touch = vec!["sh".to_string(), "-c".into(), format!("touch {flag}")];
    h.node
        .runtime
        .exec(&id, &touch, Duration::from_secs(5))
        .await
        .unwrap();
    let p = h
        .wait_pod("ready", 20, "Ready again", |p| ready(p) == Some(true))
        .await;
    assert_eq!(
        cstatus(&p)["restartCount"],
        0,
        "readiness never restarts: {p:#} {:#?}",
        h.events_of("ready").await
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_readiness_flips_ready() {
    require_docker();
    readiness_flips("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_readiness_flips_ready() {
    readiness_flips("process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_memory_hog_is_oom_killed() {
    require_docker();
    let h = Harness::start("docker", "oom").await;
    let limits = "    resources:\n      limits:\n        memory: 32Mi\n";
    // A shell variable holds the whole 100 MB: far past a 32 MiB limit.
    h.apply(&h.pod(
        "hog",
        "x=$(yes | head -c 100000000)",
        limits,
        "  restartPolicy: Never\n",
    ))
    .await;
    let p = h
        .wait_pod("hog", 60, "OOMKilled", |p| {
            cstatus(p)["state"]["terminated"]["reason"] == "OOMKilled"
        })
        .await;
    assert_eq!(phase(&p), "Failed", "{p:#}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h
        .events_of("hog")
        .await
        .iter()
        .any(|e| e["reason"] == "OOMKilled")
    {
        assert!(Instant::now() < deadline, "no OOMKilled event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_missing_image_is_image_pull_failed() {
    require_docker();
    let mut h = Harness::start("docker", "pull").await;
    h.image = "registry.invalid/none/such:1".into();
    h.apply(&h.pod("nopull", "true", "", "")).await;
    let p = h
        .wait_pod("nopull", 90, "ImagePullFailed", |p| {
            cstatus(p)["state"]["waiting"]["reason"] == "ImagePullFailed"
        })
        .await;
    assert_eq!(phase(&p), "Pending");
    let msg = cstatus(&p)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(msg.contains("registry.invalid"), "{msg}");
    h.stop().await;
}

// ---------------------------------------------------------------- adoption

async fn adopts_after_sigkill(runtime: &'static str) {
    let image = if runtime == "docker" {
        ensure_busybox_image()
    } else {
        "host".into()
    };
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let mut child = spawn_dev_agent(
        dir.path(),
        &format!("t50-adopt-{runtime}"),
        runtime,
        p[0],
        p[1],
    );
    let api = Api::new(format!("127.0.0.1:{}", p[0]));
    wait_healthy(&api).await;
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: keep\nspec:\n  nodeName: t50-adopt-{runtime}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    let running = |v: &Value| cstatus(v)["state"]["running"].is_object();
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let (_, v) = api
            .get("/v1/namespaces/default/pods/keep?consistent=false")
            .await;
        if running(&v) {
            break v;
        }
        assert!(Instant::now() < deadline, "the pod never ran: {v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = cstatus(&before)["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    let started = cstatus(&before)["state"]["running"]["startedAt"].clone();

    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let mut child = spawn_dev_agent(
        dir.path(),
        &format!("t50-adopt-{runtime}"),
        runtime,
        p[0],
        p[1],
    );
    wait_healthy(&api).await;
    // Give the restarted agent several passes to do anything it would do.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, after) = api.get("/v1/namespaces/default/pods/keep").await;
    assert_eq!(
        cstatus(&after)["containerID"].as_str(),
        Some(id.as_str()),
        "{after:#}"
    );
    assert_eq!(cstatus(&after)["restartCount"], 0, "{after:#}");
    assert_eq!(cstatus(&after)["state"]["running"]["startedAt"], started);
    assert!(running(&after));

    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/keep",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let raw_id = id.split("://").nth(1).unwrap().to_string();
    if runtime == "docker" {
        let rt: DynRuntime = std::sync::Arc::new(
            shoal::runtime::docker::DockerRuntime::connect()
                .await
                .unwrap(),
        );
        eventually(Duration::from_secs(20), "the container is removed", || {
            let rt = rt.clone();
            let raw_id = raw_id.clone();
            async move { rt.inspect(&raw_id).await.is_err() }
        })
        .await;
    } else {
        // On disk: a second process runtime opened on the agent's data dir
        // would answer from its own memory of exited containers, which only
        // the agent's instance keeps current.
        let state = dir.path().join("data/process").join(&raw_id);
        eventually(Duration::from_secs(20), "the container is removed", || {
            let gone = !state.exists();
            async move { gone }
        })
        .await;
    }
    child.kill().ok();
    child.wait().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restarted_agent_adopts_its_container() {
    require_docker();
    adopts_after_sigkill("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_restarted_agent_adopts_its_process() {
    adopts_after_sigkill("process").await;
}

// ---------------------------------------------------------------- init containers

/// The pod's `volumes` and a container's `volumeMounts` lines that put the
/// harness's scratch directory at the same path in a Docker container
/// (host processes see it anyway).
fn shared_dir(h: &Harness) -> (String, String) {
    let dir = h.scratch.path().display().to_string();
    if h.runtime == "docker" {
        (
            format!("  volumes:\n  - name: shared\n    hostPath: {{path: {dir}}}\n"),
            format!("    volumeMounts:\n    - {{name: shared, mountPath: {dir}}}\n"),
        )
    } else {
        (String::new(), String::new())
    }
}

/// A pod whose containers share `dir` (a host directory, mounted at the
/// same path in Docker containers): init containers and a sidecar, then
/// the app container.
fn init_pod(h: &Harness, name: &str, policy: &str, init: &[(&str, &str)], app: &str) -> String {
    let dir = h.scratch.path().display().to_string();
    let (volumes, mounts) = shared_dir(h);
    let container = |name: &str, script: &str| {
        let sidecar = name.starts_with("sidecar");
        format!(
            "  - name: {name}\n    image: {image}\n{restart}    command: [\"sh\", \"-c\", {script:?}]\n{mounts}",
            image = h.image,
            restart = if sidecar {
                "    restartPolicy: Always\n"
            } else {
                ""
            },
            script = script.replace("DIR", &dir),
        )
    };
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n{volumes}  initContainers:\n",
        node = h.node.info.name,
    );
    for (n, script) in init {
        out += &container(n, script);
    }
    out += "  containers:\n";
    out += &container("main", app);
    out
}

fn get_pod_row(h: &Harness, name: &str) -> String {
    let (ok, out) = cli(&h.api, &["get", "pods", name]);
    assert!(ok, "{out}");
    out.lines().nth(1).unwrap_or_default().to_string()
}

async fn init_containers_run_in_order(runtime: &'static str) {
    let h = Harness::start(runtime, "init").await;
    h.apply(&init_pod(
        &h,
        "ordered",
        "Always",
        &[
            (
                "sidecar-proxy",
                "echo proxy >> DIR/order; trap 'echo proxy-stop >> DIR/order; exit 0' TERM; while true; do sleep 0.1; done",
            ),
            (
                "first",
                "echo first >> DIR/order; while [ ! -f DIR/go ]; do sleep 0.2; done",
            ),
            ("second", "echo second >> DIR/order"),
        ],
        "echo main >> DIR/order; cat DIR/order; trap 'echo main-stop >> DIR/order; exit 0' TERM; while true; do sleep 0.1; done",
    ))
    .await;
    // Held at the second init container (the first is index 1 after the
    // sidecar): Pending, Init:1/3, the app not created.
    let p = h
        .wait_pod("ordered", 60, "the first init container running", |p| {
            p["status"]["initContainerStatuses"][1]["state"]["running"].is_object()
        })
        .await;
    assert_eq!(phase(&p), "Pending", "{p:#}");
    assert!(
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object(),
        "the sidecar runs: {p:#}"
    );
    assert_eq!(
        cstatus(&p)["state"]["waiting"]["reason"],
        "PodInitializing",
        "{p:#}"
    );
    let row = get_pod_row(&h, "ordered");
    assert!(row.contains(" 1/2 ") && row.contains("Init:1/3"), "{row}");
    let names: Vec<String> = h
        .containers_of(&p)
        .await
        .into_iter()
        .filter_map(|c| c.labels.get(LABEL_CONTAINER).cloned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n == "main"), "{names:?}");

    std::fs::write(h.scratch.path().join("go"), "").unwrap();
    let p = h
        .wait_pod("ordered", 60, "Running and Ready", |p| {
            phase(p) == "Running" && ready(p) == Some(true)
        })
        .await;
    let init = &p["status"]["initContainerStatuses"];
    assert!(init[0]["state"]["running"].is_object(), "{p:#}");
    for i in [1, 2] {
        assert_eq!(init[i]["state"]["terminated"]["exitCode"], 0, "{p:#}");
        assert_eq!(init[i]["state"]["terminated"]["reason"], "Completed");
    }
    let order = std::fs::read_to_string(h.scratch.path().join("order")).unwrap();
    assert_eq!(order, "proxy\nfirst\nsecond\nmain\n");
    let row = get_pod_row(&h, "ordered");
    assert!(row.contains(" 2/2 ") && row.contains("Running"), "{row}");

    // Deleted, the pod's app container goes first and its sidecar after.
    let (code, v) = h
        .api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/ordered",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = h
            .containers_of(&p)
            .await
            .into_iter()
            .filter_map(|c| c.labels.get(LABEL_CONTAINER).cloned())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "containers left: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each wrote when it got its SIGTERM: the app first, the sidecar after.
    // (Watching the runtime's list for the moment between the two missed
    // it now and then: the agent stops the sidecar within milliseconds.)
    let order = std::fs::read_to_string(h.scratch.path().join("order")).unwrap();
    assert!(
        order.ends_with("main\nmain-stop\nproxy-stop\n"),
        "the sidecar was not stopped after the app container: {order:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_init_containers_run_in_order_beside_a_sidecar() {
    require_docker();
    init_containers_run_in_order("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_init_containers_run_in_order_beside_a_sidecar() {
    init_containers_run_in_order("process").await;
}

async fn init_failures_and_finished_sidecars(runtime: &'static str) {
    let h = Harness::start(runtime, "initfail").await;
    // Never: a failed init container fails the pod; the app never runs.
    h.apply(&init_pod(
        &h,
        "broken",
        "Never",
        &[("setup", "exit 3")],
        "echo ran >> DIR/broken-ran; exec sleep 3600",
    ))
    .await;
    // Always: the init container is retried, with back-off.
    h.apply(&init_pod(
        &h,
        "retried",
        "Always",
        &[("setup", "exit 4")],
        "exec sleep 3600",
    ))
    .await;
    // A job-like pod: when its app container has finished, the pod has
    // succeeded and its sidecar is stopped.
    h.apply(&init_pod(
        &h,
        "batch",
        "Never",
        &[("sidecar-log", "exec sleep 3600")],
        "echo done",
    ))
    .await;

    let p = h
        .wait_pod("broken", 60, "Failed", |p| phase(p) == "Failed")
        .await;
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 3,
        "{p:#}"
    );
    assert!(get_pod_row(&h, "broken").contains("Init:Error"));
    let p = h
        .wait_pod("retried", 60, "a retried init container", |p| {
            p["status"]["initContainerStatuses"][0]["restartCount"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        })
        .await;
    assert_eq!(phase(&p), "Pending", "{p:#}");
    let p = h
        .wait_pod("batch", 60, "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let batch = h.containers_of(&p).await;
    eventually(Duration::from_secs(20), "the sidecar stopped", || {
        let h = &h;
        let p = p.clone();
        async move {
            h.containers_of(&p)
                .await
                .iter()
                .all(|c| !matches!(c.state, shoal::runtime::ContainerState::Running))
        }
    })
    .await;
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert!(
        !h.scratch.path().join("broken-ran").exists(),
        "the app of a pod whose init failed ran"
    );
    let p = h.pod_json("retried").await;
    assert!(
        h.containers_of(&p)
            .await
            .iter()
            .all(|c| c.labels.get(LABEL_CONTAINER).map(String::as_str) != Some("main")),
        "the app of a pod still initialising was created"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_init_failures_and_finished_sidecars() {
    require_docker();
    init_failures_and_finished_sidecars("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_init_failures_and_finished_sidecars() {
    init_failures_and_finished_sidecars("process").await;
}

// ---------------------------------------------------------------- lifecycle hooks

async fn hooks_run(runtime: &'static str) {
    let h = Harness::start(runtime, "hooks").await;
    let dir = h.scratch.path().display().to_string();
    let (volumes, mounts) = shared_dir(&h);
    let hooks = format!(
        "{mounts}    lifecycle:\n      postStart: {{exec: {{command: [sh, -c, 'echo started >> {dir}/post']}}}}\n      preStop: {{exec: {{command: [sh, -c, 'echo stopping >> {dir}/pre; sleep 1']}}}}\n"
    );
    h.apply(&h.pod("hooked", "exec sleep 3600", &hooks, &volumes))
        .await;
    // A failing postStart hook kills the container, which restarts.
    let failing = format!(
        "{mounts}    lifecycle:\n      postStart: {{exec: {{command: [sh, -c, 'exit 7']}}}}\n"
    );
    h.apply(&h.pod("badhook", "exec sleep 3600", &failing, &volumes))
        .await;

    let p = h
        .wait_pod("hooked", 60, "Running", |p| {
            cstatus(p)["state"]["running"].is_object()
        })
        .await;
    eventually(Duration::from_secs(20), "the postStart hook ran", || {
        let f = h.scratch.path().join("post");
        async move { std::fs::read_to_string(f).is_ok_and(|s| s == "started\n") }
    })
    .await;
    h.wait_pod("badhook", 60, "a restart after the failed hook", |p| {
        cstatus(p)["restartCount"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let evs = h.events_of("badhook").await;
    assert!(
        evs.iter().any(|e| e["reason"] == "FailedPostStartHook"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("exited with 7"))),
        "{evs:#?}"
    );

    // Deleting the pod runs preStop before the container is stopped.
    assert!(!h.scratch.path().join("pre").exists());
    h.delete_and_wait_gone(&p, 30).await;
    assert_eq!(
        std::fs::read_to_string(h.scratch.path().join("pre")).unwrap_or_default(),
        "stopping\n",
        "the preStop hook ran once"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_lifecycle_hooks_run() {
    require_docker();
    hooks_run("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_lifecycle_hooks_run() {
    hooks_run("process").await;
}

// ---------------------------------------------------------------- deadline, host name

async fn deadline_and_hostname(runtime: &'static str) {
    let h = Harness::start(runtime, "deadline").await;
    h.apply(&h.pod(
        "limited",
        "exec sleep 3600",
        "",
        "  activeDeadlineSeconds: 2\n",
    ))
    .await;
    let p = h
        .wait_pod("limited", 60, "Failed by its deadline", |p| {
            phase(p) == "Failed"
        })
        .await;
    assert_eq!(p["status"]["reason"], "DeadlineExceeded", "{p:#}");
    let evs = h.events_of("limited").await;
    assert!(
        evs.iter().any(|e| e["reason"] == "DeadlineExceeded"),
        "{evs:#?}"
    );
    eventually(Duration::from_secs(20), "its container stopped", || {
        let h = &h;
        let p = p.clone();
        async move {
            h.containers_of(&p)
                .await
                .iter()
                .all(|c| c.state != shoal::runtime::ContainerState::Running)
        }
    })
    .await;
    let row = get_pod_row(&h, "limited");
    assert!(row.contains("DeadlineExceeded"), "{row}");

    h.apply(&h.pod(
        "named",
        "hostname; exec sleep 3600",
        "",
        "  hostname: primary\n",
    ))
    .await;
    if runtime == "docker" {
        h.wait_pod("named", 60, "Running", |p| phase(p) == "Running")
            .await;
        eventually(Duration::from_secs(20), "the host name in the logs", || {
            let api = h.api.clone();
            async move {
                let url = format!("{}/v1/namespaces/default/pods/named/log", api.base);
                let text = match api.http.get(url).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                text.trim() == "primary"
            }
        })
        .await;
    } else {
        let p = h
            .wait_pod("named", 60, "refused", |p| {
                cstatus(p)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
            })
            .await;
        let msg = cstatus(&p)["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(msg.contains("spec.hostname"), "{msg}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_active_deadline_and_hostname() {
    require_docker();
    deadline_and_hostname("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_active_deadline_and_hostname() {
    deadline_and_hostname("process").await;
}

// ---------------------------------------------------------------- two nodes

fn cli(api: &Api, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--addr", &api.base])
        .args(args)
        .output()
        .expect("run the shoal CLI");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_status_and_nodes_across_nodes() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tweak = |c: &mut shoal::config::Config| {
        c.agent.resync_ms = 300;
    };
    let a = start_node(d0.path(), "t50-two-a", |c| {
        c.dev = true;
        tweak(c);
    })
    .await;
    assert!(a.wait_ready(Duration::from_secs(20)).await);
    let seed = p2p_host_port(&a);
    let b = start_node(d1.path(), "t50-two-b", |c| {
        c.join = vec![seed];
        tweak(c);
    })
    .await;
    assert!(b.wait_ready(Duration::from_secs(20)).await, "b joins");
    let api = Api::new(a.api_addr);
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  nodeName: t50-two-b\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sh\", \"-c\", \"i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done\"]\n";
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "{v}");
    // b's agent runs it and reports through Raft (b is a follower: its writes go to a).
    let deadline = Instant::now() + Duration::from_secs(30);
    let pod = loop {
        let (_, p) = api.get("/v1/namespaces/default/pods/talker").await;
        if phase(&p) == "Running" {
            break p;
        }
        assert!(Instant::now() < deadline, "never Running: {p:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Nothing changes, so nothing is written: the resourceVersion stays put.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, p1) = api.get("/v1/namespaces/default/pods/talker").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, p2) = api.get("/v1/namespaces/default/pods/talker").await;
    assert_eq!(
        p1["metadata"]["resourceVersion"], p2["metadata"]["resourceVersion"],
        "a steady pod must not be rewritten"
    );
    assert!(pod["status"]["hostIP"].is_string());

    // Logs at a, of a pod on b: fetched over libp2p.
    let (code, text) = {
        let r = api
            .http
            .get(format!(
                "{}/v1/namespaces/default/pods/talker/log?tailLines=2",
                api.base
            ))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(code, 200, "{text}");
    assert_eq!(text.lines().count(), 2, "{text:?}");
    assert!(text.lines().all(|l| l.starts_with("line ")), "{text:?}");
    // Follow: new lines keep arriving through the remote session.
    let mut resp = api
        .http
        .get(format!(
            "{}/v1/namespaces/default/pods/talker/log?follow=true&tailLines=1",
            api.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lines().count() < 15 {
        assert!(Instant::now() < deadline, "follow stalled after {seen:?}");
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("follow ended: {other:?} after {seen:?}"),
        }
    }
    let numbers: Vec<u64> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    drop(resp);

    // Both nodes published themselves.
    let (_, nodes) = api.get("/v1/nodes").await;
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"t50-two-a") && names.contains(&"t50-two-b"),
        "{names:?}"
    );
    for n in nodes["items"].as_array().unwrap() {
        assert_eq!(n["status"]["nodeInfo"]["runtime"], "process");
        assert!(n["status"]["allocatable"]["cpu"].is_string(), "{n:#}");
    }

    // The CLI over the same paths.
    let (ok, out) = cli(&api, &["logs", "talker", "--tail", "1"]);
    assert!(ok && out.starts_with("line "), "{out}");
    let (ok, out) = cli(&api, &["nodes"]);
    assert!(
        ok && out.contains("t50-two-b") && out.contains("process"),
        "{out}"
    );
    let (ok, out) = cli(&api, &["events"]);
    assert!(
        ok && out.contains("Started") && out.contains("pod/talker"),
        "{out}"
    );
    let (ok, out) = cli(&api, &["describe", "pod", "talker"]);
    assert!(
        ok && out.contains("Events:") && out.contains("Started container main"),
        "{out}"
    );
    let (ok, out) = cli(&api, &["logs", "nosuch"]);
    assert!(!ok && out.contains("not found"), "{out}");

    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/talker",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let rt = b.runtime.clone();
    eventually(Duration::from_secs(15), "b removes the process", || {
        let rt = rt.clone();
        async move {
            let mine = BTreeMap::from([(
                shoal::runtime::LABEL_NODE.to_string(),
                "t50-two-b".to_string(),
            )]);
            rt.list(&mine).await.map(|l| l.is_empty()).unwrap_or(false)
        }
    })
    .await;
    b.shutdown().await;
    a.shutdown().await;
}

/// Two clusters on one engine, each with a node of the same name: neither
/// agent touches the other cluster's containers (they were once owned by
/// node name alone, and each agent removed the other's as orphans).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_two_clusters_with_one_node_name_keep_their_own_containers() {
    require_docker();
    let a = Harness::start("docker", "twin").await;
    a.apply(&a.pod("mine", "sleep 3600", "", "")).await;
    let p = a
        .wait_pod("mine", 60, "Running", |p| phase(p) == "Running")
        .await;
    let cs = a.containers_of(&p).await;
    assert_eq!(cs.len(), 1, "{cs:?}");
    let cluster_a = a.node.store.cluster_id().expect("cluster id known");
    assert_eq!(
        cs[0].labels.get(shoal::runtime::LABEL_CLUSTER),
        Some(&cluster_a),
        "containers carry their cluster's id"
    );
    let b = Harness::start("docker", "twin").await;
    assert_eq!(a.node.info.name, b.node.info.name);
    let cluster_b = b.node.store.cluster_id();
    assert_ne!(
        cluster_b.as_ref(),
        Some(&cluster_a),
        "each cluster has its own id"
    );
    // Give b's agent many passes (resync every 300 ms) to misbehave.
    eventually(
        Duration::from_secs(20),
        "b's agent knows its cluster",
        || async { b.node.store.cluster_id().is_some() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = a.containers_of(&p).await;
    assert_eq!(
        still.len(),
        1,
        "cluster a's container survives b: {still:?}"
    );
    assert_eq!(still[0].state, shoal::runtime::ContainerState::Running);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_termination_messages_reach_the_status() {
    require_docker();
    let h = Harness::start("docker", "tmsg").await;
    let never = "  restartPolicy: Never\n";
    h.apply(&h.pod(
        "said",
        "printf 'disk full' > /dev/termination-log; exit 3",
        "",
        never,
    ))
    .await;
    // Its own path, written by a user that is not root.
    h.apply(&h.pod(
        "custom",
        "printf bye > /tmp/why",
        "    terminationMessagePath: /tmp/why\n    securityContext:\n      runAsUser: 1000\n",
        never,
    ))
    .await;
    h.apply(&h.pod(
        "fallback",
        "echo first; echo 'last words'; exit 1",
        "    terminationMessagePolicy: FallbackToLogsOnError\n",
        never,
    ))
    .await;
    let terminated = |p: &Value| cstatus(p)["state"]["terminated"].clone();
    let said = h
        .wait_pod("said", 60, "said terminated", |p| terminated(p).is_object())
        .await;
    assert_eq!(terminated(&said)["exitCode"], 3, "{said:#}");
    assert_eq!(terminated(&said)["message"], "disk full", "{said:#}");
    let custom = h
        .wait_pod("custom", 60, "custom terminated", |p| {
            terminated(p).is_object()
        })
        .await;
    assert_eq!(terminated(&custom)["message"], "bye", "{custom:#}");
    let fallback = h
        .wait_pod("fallback", 60, "fallback terminated", |p| {
            terminated(p).is_object()
        })
        .await;
    assert_eq!(
        terminated(&fallback)["message"],
        "first\nlast words\n",
        "{fallback:#}"
    );
    h.stop().await;
}
