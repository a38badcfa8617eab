//! A pod's namespace fields on the real Docker engine: `hostNetwork`,
//! `hostPID` and `hostIPC` run in the host's namespaces on a node with
//! `agent.allow_privileged` and are refused with an event on one without;
//! `shareProcessNamespace` puts a pod's containers in one PID namespace
//! on any node. And the pod's `imagePullSecrets` on the way to a pull.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::images::{ensure_busybox_image, require_docker};
use common::*;
use serde_json::Value;
use shoal::node::Node;
use tokio::io::AsyncReadExt;

struct Harness {
    node: Node,
    api: Api,
    image: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(test: &str, allow_privileged: bool) -> Harness {
        require_docker();
        Harness::on(shoal::runtime::RuntimeKind::Docker, test, allow_privileged).await
    }

    async fn on(
        runtime: shoal::runtime::RuntimeKind,
        test: &str,
        allow_privileged: bool,
    ) -> Harness {
        let image = match runtime {
            shoal::runtime::RuntimeKind::Docker => ensure_busybox_image(),
            shoal::runtime::RuntimeKind::Process => "host".to_string(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // Unique per test: an agent removes containers labelled with its
        // node name that none of its pods explains.
        let node = start_node(dir.path(), &format!("t51-{test}"), |c| {
            c.dev = true;
            c.runtime = Some(runtime);
            c.agent.allow_privileged = allow_privileged;
            c.agent.resync_ms = 300;
        })
        .await;
        assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
        let api = Api::new(node.api_addr);
        Harness {
            node,
            api,
            image,
            _dir: dir,
        }
    }

    /// A pod on this node: `spec` lines (indented two spaces) before its
    /// containers, each `(name, script)`.
    async fn apply_pod(&self, name: &str, spec: &str, containers: &[(&str, &str)]) {
        let mut m = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n{spec}  containers:\n",
            node = self.node.info.name,
        );
        for (c, script) in containers {
            m.push_str(&format!(
                "  - name: {c}\n    image: {image}\n    command: [\"sh\", \"-c\", {script:?}]\n",
                image = self.image
            ));
        }
        let (code, v) = self.api.apply(&m).await;
        assert_eq!(code, 200, "apply: {v}");
    }

    async fn wait_pod(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, p) = self
                .api
                .get(&format!(
                    "/v1/namespaces/default/pods/{name}?consistent=false"
                ))
                .await;
            assert_eq!(code, 200, "{p}");
            if pred(&p) {
                return p;
            }
            if Instant::now() > deadline {
                panic!("pod {name}: timed out waiting for {what}; last: {p:#}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the container's log holds `want`; returns the log.
    async fn wait_log(&self, pod: &str, container: &str, want: &str) -> String {
        let url = format!(
            "{}/v1/namespaces/default/pods/{pod}/log?container={container}",
            self.api.base
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = match self.api.http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(want) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{pod}/{container}: no {want:?} in its log: {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

    /// Stops the node and removes its containers, which outlive it by design.
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

/// This process's namespace of `kind` (`net:[4026531833]`): the test runs
/// in the host's namespaces, where the engine's host mode puts containers.
fn own_namespace(kind: &str) -> String {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("cannot read this process's {kind} namespace: {e}"));
    link.display().to_string()
}

fn state_of<'a>(p: &'a Value, container: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .map(|c| &c["state"])
        .unwrap_or(&Value::Null)
}

/// Prints the container's host name and namespaces, then answers `hello` on `port`.
fn namespaces_then_listen(port: u16) -> String {
    format!(
        "echo host=$(hostname); for n in net pid ipc; do echo ns-$n=$(readlink /proc/self/ns/$n); done; \
         while true; do echo hello | nc -l -p {port}; done"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_namespaces_on_a_node_that_allows_them() {
    let h = Harness::start("host-allowed", true).await;
    let port = free_port();
    h.apply_pod(
        "hostnet",
        "  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  dnsPolicy: ClusterFirstWithHostNet\n",
        &[("main", &namespaces_then_listen(port))],
    )
    .await;
    let p = h
        .wait_pod("hostnet", "Running", |p| {
            state_of(p, "main")["running"].is_object()
        })
        .await;
    assert_eq!(
        p["status"]["podIP"], p["status"]["hostIP"],
        "a pod in the host's network has the node's address: {p:#}"
    );
    let log = h.wait_log("hostnet", "main", "ns-ipc=").await;
    for kind in ["net", "pid", "ipc"] {
        let want = format!("ns-{kind}={}", own_namespace(kind));
        assert!(log.contains(&want), "{want} in {log:?}");
    }
    // The node's host name, as Kubernetes gives a host-network pod.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    assert!(log.contains(&format!("host={}", host.trim())), "{log:?}");
    // Nothing is published: the container's port is the host's own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let got = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        match tokio::time::timeout(Duration::from_secs(3), got).await {
            Ok(Ok(text)) if text.contains("hello") => break text,
            other if Instant::now() > deadline => {
                panic!("nothing answered on 127.0.0.1:{port}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(answer.trim(), "hello");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_namespaces_are_refused_on_a_node_that_does_not_allow_them() {
    refused_without_leave(Harness::start("host-refused", false).await).await;
}

/// A host process is in the host's namespaces anyway, but the node's
/// policy is the same whatever its runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_host_namespaces_are_refused_on_a_node_that_does_not_allow_them() {
    let kind = shoal::runtime::RuntimeKind::Process;
    refused_without_leave(Harness::on(kind, "process-refused", false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_host_network_runs_with_the_nodes_leave() {
    let kind = shoal::runtime::RuntimeKind::Process;
    let h = Harness::on(kind, "process-allowed", true).await;
    h.apply_pod(
        "hostnet",
        "  hostNetwork: true\n  shareProcessNamespace: true\n",
        &[("main", "exec sleep 3600")],
    )
    .await;
    let p = h
        .wait_pod("hostnet", "Running", |p| {
            state_of(p, "main")["running"].is_object()
        })
        .await;
    assert_eq!(p["status"]["podIP"], p["status"]["hostIP"], "{p:#}");
    h.stop().await;
}

async fn refused_without_leave(h: Harness) {
    h.apply_pod(
        "hostnet",
        "  hostNetwork: true\n",
        &[("main", "exec sleep 3600")],
    )
    .await;
    let want = "hostNetwork: true is not allowed on this node (agent.allow_privileged is false)";
    let p = h
        .wait_pod("hostnet", "refused", |p| {
            state_of(p, "main")["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    let msg = state_of(&p, "main")["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains(want), "{msg}");
    let evs = h.events_of("hostnet").await;
    assert!(
        evs.iter()
            .any(|e| e["reason"] == "Failed"
                && e["message"].as_str().is_some_and(|m| m.contains(want))),
        "a Failed event saying why: {evs:#?}"
    );
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let made = h
        .node
        .runtime
        .list(&BTreeMap::from([(
            shoal::runtime::LABEL_POD_UID.to_string(),
            uid,
        )]))
        .await
        .expect("list");
    assert!(made.is_empty(), "no container was made: {made:?}");
    h.stop().await;
}

/// Looks for the other container's `sleep 3601` for a few seconds.
const LOOK: &str = "for i in $(seq 1 20); do if ps | grep -v grep | grep -q 'sleep 3601'; then echo SEEN; exec sleep 3600; fi; sleep 0.5; done; echo NOT-SEEN; exec sleep 3600";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_share_process_namespace_needs_no_privilege() {
    let h = Harness::start("share-pid", false).await;
    let containers = [("holder", "exec sleep 3601"), ("looker", LOOK)];
    h.apply_pod("shared", "  shareProcessNamespace: true\n", &containers)
        .await;
    // Without it, each container has its own: the control that the look can fail.
    h.apply_pod("apart", "", &containers).await;
    let log = h.wait_log("shared", "looker", "SEEN").await;
    assert!(!log.contains("NOT-SEEN"), "{log:?}");
    let log = h.wait_log("apart", "looker", "NOT-SEEN").await;
    assert!(log.contains("NOT-SEEN"), "{log:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_image_pull_secrets_are_read_before_a_pull() {
    let h = Harness::start("pull-secrets", false).await;
    // A Secret that does not exist is passed over, as the kubelet does:
    // the local image needs no login.
    h.apply_pod(
        "missing",
        "  imagePullSecrets: [{name: not-there}]\n",
        &[("main", "exec sleep 3600")],
    )
    .await;
    h.wait_pod("missing", "Running", |p| {
        state_of(p, "main")["running"].is_object()
    })
    .await;
    // One that is not a registry login is named, never silently skipped.
    let (code, v) = h
        .api
        .apply("apiVersion: v1\nkind: Secret\nmetadata: {name: opaque}\ntype: Opaque\ndata: {a: YQ==}\n")
        .await;
    assert_eq!(code, 200, "{v}");
    h.apply_pod(
        "wrong",
        "  imagePullSecrets: [{name: opaque}]\n",
        &[("main", "exec sleep 3600")],
    )
    .await;
    let p = h
        .wait_pod("wrong", "refused", |p| {
            state_of(p, "main")["waiting"]["reason"] == "ImagePullFailed"
        })
        .await;
    let msg = state_of(&p, "main")["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.contains("imagePullSecret \"opaque\" is of type \"Opaque\""),
        "{msg}"
    );
    h.stop().await;
}
