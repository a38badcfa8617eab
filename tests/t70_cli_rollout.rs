//! The rollout and node commands of the `shoal` binary against one
//! in-process node: scale, pause/resume, rollout history/undo/status,
//! cordon/uncordon, drain and nodes.
//!
//! ReplicaSets and deployment status, which the deployment controller
//! writes, are written here straight into the store, so every assertion
//! holds whether or not a controller runs alongside.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use shoal::node::Node;
use shoal::resource::{Kind, ObjectKey};
use shoal::store::{Command, Op, Precondition};

/// Exit code, stdout and stderr of `shoal --addr ADDR ARGS...`.
async fn shoal(node: &Node, args: &[&str]) -> (i32, String, String) {
    shoal_cli(&node.api_addr.to_string(), args).await
}

/// Like [`shoal`], asserting success; returns stdout.
async fn shoal_ok(node: &Node, args: &[&str]) -> String {
    let (code, out, err) = shoal(node, args).await;
    assert_eq!(
        code, 0,
        "shoal {args:?} failed\nstdout: {out}\nstderr: {err}"
    );
    out
}

async fn dev_node(dir: &std::path::Path, name: &str) -> (Node, Api) {
    let node = start_node(dir, name, |c| {
        c.dev = true;
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(15)).await, "node ready");
    let api = Api::new(node.api_addr);
    (node, api)
}

fn deployment(name: &str, replicas: u32, version: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{extra_meta}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"{version}\"]\n"
    )
}

async fn get_ok(api: &Api, path: &str) -> Value {
    let (code, v) = api.get(path).await;
    assert_eq!(code, 200, "GET {path}: {v}");
    v
}

/// A ReplicaSet as the deployment controller writes it, owned by `d`.
fn replicaset(d: &Value, hash: &str, revision: u64, sleep: &str, cause: Option<&str>) -> Value {
    let name = d["metadata"]["name"].as_str().unwrap();
    let mut annotations = json!({"deployment.kubernetes.io/revision": revision.to_string()});
    if let Some(c) = cause {
        annotations["kubernetes.io/change-cause"] = json!(c);
    }
    let labels = json!({"app": name, "pod-template-hash": hash});
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "namespace": "default",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
                "uid": d["metadata"]["uid"],
                "controller": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [
                    {"name": "main", "image": "host", "command": ["sleep", sleep]},
                ]},
            },
        },
    })
}

async fn store_put(node: &Node, kind: Kind, name: &str, obj: &Value) {
    node.store
        .write(Command {
            ops: vec![Op::Put {
                key: ObjectKey::new(kind, "default", name),
                object: serde_json::to_vec(obj).unwrap(),
                precondition: Precondition::None,
            }],
        })
        .await
        .expect("store write");
}

async fn set_status(node: &Node, api: &Api, deployment: &str, status: Value) {
    let d = get_ok(
        api,
        &format!("/v1/namespaces/default/deployments/{deployment}"),
    )
    .await;
    node.store
        .write(Command {
            ops: vec![Op::SetStatus {
                key: ObjectKey::new(Kind::Deployment, "default", deployment),
                uid: d["metadata"]["uid"].as_str().map(str::to_string),
                status: serde_json::to_vec(&status).unwrap(),
            }],
        })
        .await
        .expect("status write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_pause_history_and_undo() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path(), "t70-deploy").await;
    let path = "/v1/namespaces/default/deployments/web";
    let cause = "  annotations:\n    kubernetes.io/change-cause: second\n";
    // Paused, a controller leaves its ReplicaSets alone until this test has
    // written the history it checks.
    let paused = deployment("web", 1, "3", cause)
        .replace("spec:\n  replicas", "spec:\n  paused: true\n  replicas");
    let (code, v) = api.apply(&paused).await;
    assert_eq!(code, 200, "{v}");

    // scale
    let out = shoal_ok(&node, &["scale", "deployment", "web", "--replicas", "2"]).await;
    assert_eq!(out, "deployment.apps/web scaled\n");
    assert_eq!(get_ok(&api, path).await["spec"]["replicas"], 2);
    shoal_ok(&node, &["scale", "deploy/web", "--replicas", "1"]).await;
    assert_eq!(get_ok(&api, path).await["spec"]["replicas"], 1);
    let (code, _, err) = shoal(&node, &["scale", "deployment", "nope", "--replicas", "1"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = shoal(&node, &["scale", "pod", "web", "--replicas", "1"]).await;
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = shoal(&node, &["scale", "deployment", "--replicas", "1"]).await;
    assert_eq!(code, 2, "a missing name is a usage error");

    // Two revisions: 1 (sleep 2, no change cause) and 2 (the current template).
    let d = get_ok(&api, path).await;
    let rs1 = replicaset(&d, "aaaaaaaaaa", 1, "2", None);
    let rs2 = replicaset(&d, "bbbbbbbbbb", 2, "3", Some("second"));
    store_put(&node, Kind::ReplicaSet, "web-aaaaaaaaaa", &rs1).await;
    store_put(&node, Kind::ReplicaSet, "web-bbbbbbbbbb", &rs2).await;

    // pause / resume
    assert_eq!(get_ok(&api, path).await["spec"]["paused"], true);
    let (code, _, err) = shoal(&node, &["rollout", "pause", "deployment", "web"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: deployments.apps \"web\" is already paused\n");
    let (code, _, err) = shoal(&node, &["rollout", "undo", "deployment", "web"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("resume it first"), "{err}");
    let out = shoal_ok(&node, &["rollout", "resume", "deployments", "web"]).await;
    assert_eq!(out, "deployment.apps/web resumed\n");
    assert!(get_ok(&api, path).await["spec"].get("paused").is_none());
    let (code, _, err) = shoal(&node, &["rollout", "resume", "deployment", "web"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: deployments.apps \"web\" is not paused\n");
    let out = shoal_ok(&node, &["rollout", "pause", "deployment", "web"]).await;
    assert_eq!(out, "deployment.apps/web paused\n");
    assert_eq!(get_ok(&api, path).await["spec"]["paused"], true);
    shoal_ok(&node, &["rollout", "resume", "deployment", "web"]).await;

    let out = shoal_ok(&node, &["rollout", "history", "deployment", "web"]).await;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["deployment.apps/web"], "{out}");
    assert_eq!(lines[1], ["REVISION", "CHANGE-CAUSE"], "{out}");
    assert_eq!(lines[2], ["1", "<none>"], "{out}");
    assert_eq!(lines[3], ["2", "second"], "{out}");
    // A controller, once resumed, adds the current template as revision 3.
    assert!(lines.len() <= 5, "{out}");

    let out = shoal_ok(
        &node,
        &["rollout", "undo", "deployment/web", "--to-revision", "2"],
    )
    .await;
    assert_eq!(
        out,
        "deployment.apps/web skipped rollback (current template already matches revision 2)\n"
    );

    let (code, out, err) = shoal(
        &node,
        &["rollout", "undo", "deployment", "web", "--to-revision", "9"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "error: unable to find specified revision 9 in history\n"
    );

    let before = get_ok(&api, path).await;
    let out = shoal_ok(
        &node,
        &["rollout", "undo", "deployment", "web", "--to-revision", "1"],
    )
    .await;
    assert_eq!(out, "deployment.apps/web rolled back\n");
    let after = get_ok(&api, path).await;
    let template = &after["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["command"],
        json!(["sleep", "2"])
    );
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    assert!(
        after["metadata"]["annotations"]
            .get("kubernetes.io/change-cause")
            .is_none(),
        "revision 1 had no change cause: {after}"
    );
    assert_eq!(after["spec"]["replicas"], before["spec"]["replicas"]);
    assert!(
        after["metadata"]["generation"].as_u64() > before["metadata"]["generation"].as_u64(),
        "the template change is a new generation"
    );

    // A deployment without older revisions has nothing to go back to.
    let (code, v) = api.apply(&deployment("lonely", 1, "3", "")).await;
    assert_eq!(code, 200, "{v}");
    let (code, _, err) = shoal(&node, &["rollout", "undo", "deployment", "lonely"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no rollout history found for deployment \"lonely\"")
            || err.contains("no previous revision"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path(), "t70-status").await;

    // Zero replicas: complete as soon as the status is observed.
    let (code, v) = api.apply(&deployment("zero", 0, "3", "")).await;
    assert_eq!(code, 200, "{v}");
    set_status(
        &node,
        &api,
        "zero",
        json!({"observedGeneration": 1, "replicas": 0, "updatedReplicas": 0, "availableReplicas": 0}),
    )
    .await;
    let out = shoal_ok(
        &node,
        &["rollout", "status", "deployment", "zero", "--timeout", "20"],
    )
    .await;
    assert_eq!(
        out.lines().last(),
        Some("deployment \"zero\" successfully rolled out"),
        "{out}"
    );

    // A container that exits at once never becomes available.
    let stuck = deployment("stuck", 1, "3", "").replace("[\"sleep\", \"3\"]", "[\"false\"]");
    let (code, v) = api.apply(&stuck).await;
    assert_eq!(code, 200, "{v}");
    let started = std::time::Instant::now();
    let (code, out, err) = shoal(
        &node,
        &["rollout", "status", "deployment", "stuck", "--timeout", "2"],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("timed out after 2s"), "{err}");
    assert!(
        out.lines().all(|l| l.starts_with("Waiting for deployment")),
        "one line per change when stdout is not a terminal: {out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A failed rollout ends at once with the kubectl message.
    let (code, v) = api.apply(&deployment("late", 2, "3", "")).await;
    assert_eq!(code, 200, "{v}");
    set_status(
        &node,
        &api,
        "late",
        json!({
            "observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            ],
        }),
    )
    .await;
    let (code, _, err) = shoal(
        &node,
        &["rollout", "status", "deploy", "late", "--timeout", "20"],
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: deployment \"late\" exceeded its progress deadline\n"
    );

    let (code, _, err) = shoal(&node, &["rollout", "status", "deployment", "missing"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_drain_and_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let name = "t70-nodes";
    let (node, api) = dev_node(dir.path(), name).await;
    let node_spec = |api: Api| async move {
        let (_, list) = api.get("/v1/nodes").await;
        list["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|n| n["metadata"]["name"] == name)
                    .cloned()
            })
            .map(|n| n["spec"].clone())
    };
    eventually(
        Duration::from_secs(10),
        "the agent publishes its Node",
        || {
            let api = api.clone();
            async move { node_spec(api).await.is_some() }
        },
    )
    .await;

    // An unmanaged pod bound here, asking for some CPU and memory.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\nspec:\n  nodeName: {name}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"60\"]\n    resources:\n      requests: {{cpu: 250m, memory: 64Mi}}\n"
    );
    let (code, v) = api.apply(&pod).await;
    assert_eq!(code, 200, "{v}");

    let out = shoal_ok(&node, &["nodes"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "STATUS", "ROLES", "CPU", "MEMORY", "PODS", "RUNTIME", "AGE"
        ]
    );
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "Ready", "{out}");
    assert_eq!(row[2], "leader", "{out}");
    assert!(
        row[3].starts_with("250m/") && row[3].ends_with('m'),
        "{out}"
    );
    assert!(row[4].starts_with("64Mi/"), "{out}");
    assert!(row[5].starts_with("1/"), "{out}");
    assert_eq!(row[6], "process", "{out}");
    let json_out = shoal_ok(&node, &["nodes", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(list["kind"], "List");

    // cordon / uncordon
    let out = shoal_ok(&node, &["cordon", name]).await;
    assert_eq!(out, format!("node/{name} cordoned\n"));
    assert_eq!(node_spec(api.clone()).await.unwrap()["unschedulable"], true);
    let out = shoal_ok(&node, &["cordon", name]).await;
    assert_eq!(out, format!("node/{name} already cordoned\n"));
    let out = shoal_ok(&node, &["nodes"]).await;
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    let out = shoal_ok(&node, &["uncordon", name]).await;
    assert_eq!(out, format!("node/{name} uncordoned\n"));
    assert!(
        node_spec(api.clone())
            .await
            .unwrap()
            .get("unschedulable")
            .is_none()
    );
    let (code, _, err) = shoal(&node, &["cordon", "no-such-node"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: node \"no-such-node\" not found\n");

    // drain: the unmanaged pod stops it, unless forced.
    let (code, out, err) = shoal(&node, &["drain", name, "--timeout", "10"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "error: cannot delete Pods not managed by a controller (use --force to override): default/lonely\n"
    );
    let (code, _) = api.get("/v1/namespaces/default/pods/lonely").await;
    assert_eq!(code, 200, "the pod stays");
    assert_eq!(node_spec(api.clone()).await.unwrap()["unschedulable"], true);

    let (code, out, err) = shoal(&node, &["drain", name, "--force", "--timeout", "20"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "node/{name} already cordoned\nevicting pod default/lonely\npod/lonely evicted\nnode/{name} drained\n"
        )
    );
    assert!(
        err.contains("default/lonely"),
        "a warning names the pod: {err}"
    );
    let (code, _) = api.get("/v1/namespaces/default/pods/lonely").await;
    assert_eq!(code, 404);
    let out = shoal_ok(&node, &["nodes"]).await;
    assert!(out.contains("0m/") && out.contains(" 0/"), "{out}");
    shoal_ok(&node, &["uncordon", name]).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_keep_pods_off_and_no_execute_evicts() {
    let dir = tempfile::tempdir().unwrap();
    let name = "t70-taints";
    let (node, api) = dev_node(dir.path(), name).await;
    eventually(
        Duration::from_secs(10),
        "the agent publishes its Node",
        || {
            let api = api.clone();
            async move { api.get(&format!("/v1/nodes/{name}")).await.0 == 200 }
        },
    )
    .await;
    let out = shoal_ok(&node, &["taint", "node", name, "dedicated=db:NoSchedule"]).await;
    assert_eq!(out, format!("node/{name} tainted\n"));
    let (_, n) = api.get(&format!("/v1/nodes/{name}")).await;
    assert_eq!(
        n["spec"]["taints"],
        serde_json::json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    );
    let (code, _, err) = shoal(&node, &["taint", "node", name, "dedicated=web:NoSchedule"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--overwrite"), "{err}");

    let pod = |pod: &str, tolerations: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  terminationGracePeriodSeconds: 1\n  tolerations: {tolerations}\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"60\"]\n"
        )
    };
    let (code, v) = api.apply(&pod("plain", "[]")).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api
        .apply(&pod(
            "tolerant",
            "[{key: dedicated, operator: Exists, effect: NoSchedule}]",
        ))
        .await;
    assert_eq!(code, 200, "{v}");
    let pod_json = |p: &'static str| {
        let api = api.clone();
        async move { api.get(&format!("/v1/namespaces/default/pods/{p}")).await.1 }
    };
    eventually(Duration::from_secs(20), "the tolerant pod runs", || async {
        pod_json("tolerant").await["status"]["phase"] == "Running"
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the plain pod is told why it waits",
        || async {
            let p = pod_json("plain").await;
            p["spec"]["nodeName"].is_null()
                && serde_json::to_string(&p["status"])
                    .unwrap()
                    .contains("untolerated taint")
        },
    )
    .await;

    // NoExecute: a pod that does not tolerate it leaves.
    shoal_ok(&node, &["taint", "node", name, "maint:NoExecute"]).await;
    eventually(
        Duration::from_secs(20),
        "the tolerant pod is evicted",
        || async {
            let p = pod_json("tolerant").await;
            p["status"]["phase"] == "Failed" && p["status"]["reason"] == "DeletionByTaintManager"
        },
    )
    .await;

    // Without its taints, the node takes the waiting pod.
    shoal_ok(
        &node,
        &["taint", "node", name, "dedicated-", "maint:NoExecute-"],
    )
    .await;
    let (_, n) = api.get(&format!("/v1/nodes/{name}")).await;
    assert!(n["spec"].get("taints").is_none(), "{n}");
    eventually(
        Duration::from_secs(20),
        "the plain pod is scheduled",
        || async { pod_json("plain").await["spec"]["nodeName"] == name },
    )
    .await;
    node.shutdown().await;
}
