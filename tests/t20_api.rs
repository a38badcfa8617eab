//! Bad input at the API: every refusal is a clear 4xx and stores nothing.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;

const TOKEN: &str = "s3cret-token";

async fn dev_node(dir: &std::path::Path) -> (shoal::node::Node, Api) {
    let node = start_node(dir, "dev", |c| {
        c.dev = true;
        c.api.token = Some(TOKEN.into());
        c.api.max_body_bytes = 64 * 1024;
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    let api = Api::new(node.api_addr).with_token(TOKEN);
    (node, api)
}

async fn configmap_count(api: &Api) -> usize {
    let (code, v) = api.get("/v1/configmaps").await;
    assert_eq!(code, 200, "{v}");
    v["items"].as_array().map(Vec::len).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;

    // Missing token: 401 and nothing stored.
    let (code, v) = Api::new(node.api_addr).apply(&configmap("anon", "x")).await;
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    // /healthz stays open for load balancers.
    let (code, _) = Api::new(node.api_addr).get("/healthz").await;
    assert_eq!(code, 200);

    // Malformed YAML.
    let (code, v) = api
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n")
        .await;
    assert!((400..500).contains(&code), "{code} {v}");
    // Unknown kind.
    let (code, v) = api
        .apply("apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n")
        .await;
    assert!((400..500).contains(&code), "{code} {v}");
    assert!(v["error"].as_str().unwrap().contains("Frobnicator"), "{v}");
    // Unknown field, with its path, in the second document: the first is not stored either.
    let two = format!(
        "{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        imagee: busybox\n",
        configmap("ok-one", "1")
    );
    let (code, v) = api.apply(&two).await;
    assert!((400..500).contains(&code), "{code} {v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("spec.template.spec.containers[0].imagee"),
        "{msg}"
    );
    // Oversized body.
    let big = configmap("big", &"x".repeat(100 * 1024));
    let (code, _) = api.apply(&big).await;
    assert_eq!(code, 413);
    assert_eq!(
        configmap_count(&api).await,
        0,
        "nothing stored from refused requests"
    );

    // Compare-and-set: a stale resourceVersion is a 409 that names the object.
    let (code, v) = api.apply(&configmap("cas", "1")).await;
    assert_eq!(code, 200, "{v}");
    let (_, obj) = api.get("/v1/namespaces/default/configmaps/cas").await;
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut updated = obj.clone();
    updated["data"]["value"] = "2".into();
    let (code, v) = api
        .send(
            Method::PUT,
            "/v1/namespaces/default/configmaps/cas",
            Some(serde_json::to_vec(&updated).unwrap()),
        )
        .await;
    assert_eq!(code, 200, "first CAS wins: {v}");
    let mut stale = obj.clone();
    stale["data"]["value"] = "3".into();
    stale["metadata"]["resourceVersion"] = rv.into();
    let (code, v) = api
        .send(
            Method::PUT,
            "/v1/namespaces/default/configmaps/cas",
            Some(serde_json::to_vec(&stale).unwrap()),
        )
        .await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("ConfigMap/default/cas"),
        "{v}"
    );
    let (_, now) = api.get("/v1/namespaces/default/configmaps/cas").await;
    assert_eq!(
        now["data"]["value"], "2",
        "the losing write changed nothing"
    );

    // Applying an unchanged object creates no new revision.
    let (_, before) = api.get("/v1/namespaces/default/configmaps/cas").await;
    let (_, again) = api.apply(&configmap("cas", "2")).await;
    assert_eq!(again["results"][0]["outcome"], "Unchanged", "{again}");
    let (_, after) = api.get("/v1/namespaces/default/configmaps/cas").await;
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );

    // Create of an existing object is a 409; delete of a missing one a 404.
    let (code, _) = api
        .send(
            Method::POST,
            "/v1/namespaces/default/configmaps",
            Some(serde_json::to_vec(&now).unwrap()),
        )
        .await;
    assert_eq!(code, 409);
    let (code, _) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/configmaps/nope",
            None,
        )
        .await;
    assert_eq!(code, 404);

    // A body that names another namespace than its URL is refused, not moved.
    let elsewhere = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default"}});
    let (code, v) = api
        .send(
            Method::POST,
            "/v1/namespaces/other/configmaps",
            Some(serde_json::to_vec(&elsewhere).unwrap()),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("metadata.namespace"),
        "{v}"
    );

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_after_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let (_, v) = api.apply(&configmap("w1", "1")).await;
    let rv = v["results"][0]["resourceVersion"].as_u64().unwrap();
    api.apply(&configmap("w2", "2")).await;
    let resp = api
        .http
        .get(format!(
            "{}/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}",
            api.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_slice(chunk.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["type"], "ADDED");
    assert_eq!(
        line["object"]["metadata"]["name"], "w2",
        "only changes after {rv}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_keeps_scale_and_pause_unless_the_manifest_sets_them() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let manifest = |replicas: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: keep\nspec:\n{replicas}  paused: true\n  selector:\n    matchLabels:\n      app: keep\n  template:\n    metadata:\n      labels:\n        app: keep\n    spec:\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"60\"]\n"
        )
    };
    let (code, v) = api.apply(&manifest("")).await;
    assert_eq!(code, 200, "{v}");
    // `shoal scale` sets replicas on the live object, reading it again
    // when a controller's status write got in between (409), as it does.
    let (code, v) = loop {
        let (_, mut d) = api.get("/v1/namespaces/default/deployments/keep").await;
        d["spec"]["replicas"] = serde_json::json!(5);
        d.as_object_mut().unwrap().remove("status");
        let (code, v) = api
            .send(
                reqwest::Method::PUT,
                "/v1/namespaces/default/deployments/keep",
                Some(serde_json::to_vec(&d).unwrap()),
            )
            .await;
        if code != 409 {
            break (code, v);
        }
    };
    assert_eq!(code, 200, "{v}");
    // Re-applying a manifest without replicas keeps 5.
    let (code, v) = api.apply(&manifest("")).await;
    assert_eq!(code, 200, "{v}");
    let (_, d) = api.get("/v1/namespaces/default/deployments/keep").await;
    assert_eq!(d["spec"]["replicas"], 5, "{d:#}");
    // A manifest that sets replicas wins.
    let (code, v) = api.apply(&manifest("  replicas: 2\n")).await;
    assert_eq!(code, 200, "{v}");
    let (_, d) = api.get("/v1/namespaces/default/deployments/keep").await;
    assert_eq!(d["spec"]["replicas"], 2, "{d:#}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_makes_a_command_conditional_on_an_object_it_does_not_write() {
    use shoal::resource::{Kind, ObjectKey};
    use shoal::store::{Command, Op, Precondition};
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let (code, v) = api.apply(&configmap("guard", "1")).await;
    assert_eq!(code, 200, "{v}");
    let guard = ObjectKey::new(Kind::ConfigMap, "default", "guard");
    let rv = node.store.get(&guard).unwrap().unwrap().resource_version();
    let put = |name: &str| Op::Put {
        key: ObjectKey::new(Kind::ConfigMap, "default", name),
        object: serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": "v"}
        }))
        .unwrap(),
        precondition: Precondition::None,
    };
    // At the version read: the other write goes through, the guard is untouched.
    node.store
        .write(Command {
            ops: vec![
                Op::Check {
                    key: guard.clone(),
                    version: rv,
                },
                put("fresh"),
            ],
        })
        .await
        .expect("check at the current version passes");
    assert_eq!(
        node.store.get(&guard).unwrap().unwrap().resource_version(),
        rv
    );
    // At a stale version: nothing of the command is applied.
    let err = node
        .store
        .write(Command {
            ops: vec![
                Op::Check {
                    key: guard,
                    version: rv - 1,
                },
                put("stale"),
            ],
        })
        .await
        .expect_err("a stale check fails the command");
    assert!(err.to_string().contains("resourceVersion"), "{err}");
    let (code, _) = api.get("/v1/namespaces/default/configmaps/stale").await;
    assert_eq!(code, 404);
    node.shutdown().await;
}

fn namespaced_configmap(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  k: v\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_exist_before_use_and_deleting_one_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    // The built-in namespaces appear at initialisation; the cluster id is
    // shoal-system's uid.
    eventually(Duration::from_secs(10), "built-in namespaces", || async {
        let (_, v) = api.get("/v1/namespaces/shoal-system").await;
        let (_, d) = api.get("/v1/namespaces/default").await;
        v["metadata"]["uid"].is_string() && d["status"]["phase"] == "Active"
    })
    .await;
    let (_, sys) = api.get("/v1/namespaces/shoal-system").await;
    let (_, raft) = api.get("/v1/raft").await;
    assert_eq!(raft["cluster_id"], sys["metadata"]["uid"], "{raft}");

    // A missing namespace is refused with a 404 that names it.
    let (code, v) = api.apply(&namespaced_configmap("team-a", "c1")).await;
    assert_eq!(code, 404, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("\"team-a\" not found"),
        "{v}"
    );
    // Created in the same manifest, it is fine.
    let both = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n{}",
        namespaced_configmap("team-a", "c1")
    );
    let (code, v) = api.apply(&both).await;
    assert_eq!(code, 200, "{v}");

    // Built-in namespaces cannot be deleted.
    let (code, v) = api
        .send(Method::DELETE, "/v1/namespaces/default", None)
        .await;
    assert_eq!(code, 403, "{v}");

    // Deleting a namespace makes it Terminating: nothing new goes in, what
    // it holds is deleted, then it goes.
    let (code, v) = api
        .send(Method::DELETE, "/v1/namespaces/team-a", None)
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api.get("/v1/namespaces/team-a").await;
    if code == 200 {
        assert_eq!(v["status"]["phase"], "Terminating", "{v}");
        assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
        let (code, v) = api.apply(&namespaced_configmap("team-a", "c2")).await;
        assert!(code == 403 || code == 404, "{code} {v}");
    }
    eventually(
        Duration::from_secs(10),
        "team-a emptied and deleted",
        || async {
            let (ns, _) = api.get("/v1/namespaces/team-a").await;
            let (cm, _) = api.get("/v1/namespaces/team-a/configmaps/c1").await;
            ns == 404 && cm == 404
        },
    )
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_described_histograms_and_present_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let (code, _) = api.apply(&configmap("m", "1")).await;
    assert_eq!(code, 200);
    // The agent registers its Node object after the API is up; the
    // cluster gauges count what the replica holds at the scrape.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, v) = api.get("/v1/nodes").await;
        if code == 200 && v["items"].as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dev node never registered its Node: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = api
        .http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for want in [
        "# HELP shoal_store_write_seconds",
        "# TYPE shoal_store_write_seconds histogram",
        "shoal_store_write_seconds_bucket{le=\"0.005\"}",
        "# TYPE shoal_raft_leader_changes_total counter",
        "shoal_build_info{version=\"",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "shoal_cluster_nodes{state=\"ready\"} 1",
        "shoal_agent_pods{phase=\"Running\"}",
        // Registered at zero before any probe ever failed.
        "shoal_agent_probe_failures_total{probe=\"liveness\"} 0",
    ] {
        assert!(text.contains(want), "/metrics lacks {want:?}:\n{text}");
    }
    // No summaries: quantiles cannot be aggregated across nodes.
    assert!(!text.contains("quantile=\""), "{text}");
    // Every family that has samples has HELP.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    node.shutdown().await;
}

/// What Kubernetes holds immutable is refused with the field's path, the
/// stored object stays as it was, and a re-applied unchanged file passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields_are_refused_by_apply_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let deployment = |app: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fixed\nspec:\n  paused: true\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"60\"]\n"
        )
    };
    let (code, v) = api.apply(&deployment("one")).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api.apply(&deployment("one")).await;
    assert_eq!(code, 200, "a re-applied file is no change: {v}");
    let (code, v) = api.apply(&deployment("two")).await;
    assert_eq!(code, 422, "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("Deployment/default/fixed")
            && msg.contains("spec.selector: field is immutable"),
        "{msg}"
    );
    let (_, d) = api.get("/v1/namespaces/default/deployments/fixed").await;
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "one", "{d:#}");

    // The same through PUT.
    let mut d = d;
    d["spec"]["selector"]["matchLabels"]["app"] = serde_json::json!("two");
    d["spec"]["template"]["metadata"]["labels"]["app"] = serde_json::json!("two");
    d.as_object_mut().unwrap().remove("status");
    d["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, v) = api
        .send(
            Method::PUT,
            "/v1/namespaces/default/deployments/fixed",
            Some(serde_json::to_vec(&d).unwrap()),
        )
        .await;
    assert_eq!(code, 422, "{v}");

    // A ConfigMap marked immutable keeps its data.
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  k: \"{value}\"\n"
        )
    };
    let (code, v) = api.apply(&cm("1")).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api.apply(&cm("2")).await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("data: the ConfigMap is immutable"),
        "{v}"
    );
    let (_, c) = api.get("/v1/namespaces/default/configmaps/frozen").await;
    assert_eq!(c["data"]["k"], "1", "{c:#}");
    node.shutdown().await;
}

async fn exists(api: &Api, kind_path: &str, name: &str) -> bool {
    let (code, _) = api
        .get(&format!("/v1/namespaces/default/{kind_path}/{name}"))
        .await;
    code == 200
}

/// Deletes Deployment `name` through the Kubernetes path with
/// DeleteOptions' `propagationPolicy`, as kubectl --cascade sends it.
async fn kube_delete_deployment(api: &Api, name: &str, policy: &str) {
    let resp = api
        .http
        .delete(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/{name}",
            api.base
        ))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"{policy}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

/// ConfigMap `parent`, and ConfigMap `kid` naming it as its owner.
async fn parent_and_child(api: &Api, parent: &str, kid: &str) {
    let (code, v) = api.apply(&configmap(parent, "1")).await;
    assert_eq!(code, 200, "{v}");
    let (_, p) = api
        .get(&format!("/v1/namespaces/default/configmaps/{parent}"))
        .await;
    let uid = p["metadata"]["uid"].as_str().expect("uid");
    let child = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {kid}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {parent}, uid: {uid}}}\ndata: {{k: v}}\n"
    );
    let (code, v) = api.apply(&child).await;
    assert_eq!(code, 200, "{v}");
}

/// A foreground delete (kubectl --cascade=foreground) keeps the owner,
/// marked, until its ReplicaSet and pods are gone, and the controllers make
/// no new ones meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletes_hold_the_owner_until_dependents_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fg\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: fg\n  template:\n    metadata:\n      labels:\n        app: fg\n    spec:\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"60\"]\n";
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "{v}");
    let count = |path: &'static str| {
        let api = api.clone();
        async move {
            let (_, list) = api.get(path).await;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["metadata"]["labels"]["app"] == "fg")
                .count()
        }
    };
    eventually(
        Duration::from_secs(20),
        "a ReplicaSet and two pods",
        || async {
            count("/v1/namespaces/default/replicasets").await == 1
                && count("/v1/namespaces/default/pods").await == 2
        },
    )
    .await;

    kube_delete_deployment(&api, "fg", "Foreground").await;
    let (code, d) = api.get("/v1/namespaces/default/deployments/fg").await;
    assert_eq!(code, 200, "the owner stays, marked: {d}");
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(
        d["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"]),
        "{d}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut pods_seen = 2;
    loop {
        let sets = count("/v1/namespaces/default/replicasets").await;
        let pods = count("/v1/namespaces/default/pods").await;
        assert!(
            pods <= pods_seen,
            "no pod is made for an owner being deleted ({pods} after {pods_seen})"
        );
        pods_seen = pods;
        if !exists(&api, "deployments", "fg").await {
            // Read after the owner went: its dependents went first.
            assert_eq!(count("/v1/namespaces/default/replicasets").await, 0);
            assert_eq!(count("/v1/namespaces/default/pods").await, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner is still there after 40 s: {sets} ReplicaSets, {pods} pods left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Through /v1 (shoal delete --cascade=foreground), on a user-set owner
    // reference: the child goes, then the parent.
    parent_and_child(&api, "fg-parent", "fg-kid").await;
    let (code, v) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/configmaps/fg-parent?propagationPolicy=Foreground",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(20),
        "child, then parent, gone",
        || async {
            let kid = api.get("/v1/namespaces/default/configmaps/fg-kid").await.0;
            let parent = api
                .get("/v1/namespaces/default/configmaps/fg-parent")
                .await
                .0;
            assert!(
                !(parent == 404 && kid == 200),
                "the parent went before its child"
            );
            kid == 404 && parent == 404
        },
    )
    .await;
    node.shutdown().await;
}

/// Owner references users and operators write are garbage-collected once
/// every owner is gone, and finalizers hold a delete until they are
/// removed (through shoal's apply or a Kubernetes merge patch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_references_and_finalizers_from_users() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let (code, v) = api.apply(&configmap("owner", "1")).await;
    assert_eq!(code, 200, "{v}");
    let (_, owner) = api.get("/v1/namespaces/default/configmaps/owner").await;
    let uid = owner["metadata"]["uid"].as_str().expect("uid").to_string();
    let owned = |name: &str, uid: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}\ndata: {{k: v}}\n"
        )
    };
    for (name, u) in [("child", uid.as_str()), ("stray", "no-such-uid")] {
        let (code, v) = api.apply(&owned(name, u)).await;
        assert_eq!(code, 200, "{v}");
    }
    eventually(Duration::from_secs(15), "the stray child collected", || {
        let api = api.clone();
        async move { !exists(&api, "configmaps", "stray").await }
    })
    .await;
    assert!(exists(&api, "configmaps", "child").await, "its owner lives");

    // A finalizer holds the delete: marked, not gone.
    let held = |fin: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: {fin}\ndata: {{k: v}}\n"
        )
    };
    let (code, v) = api.apply(&held("[example.com/hold]")).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/configmaps/held",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, v) = api.get("/v1/namespaces/default/configmaps/held").await;
    assert_eq!(code, 200, "held by its finalizer: {v}");
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    // A re-apply that leaves the list out keeps it (and the deletion).
    let (code, v) = api
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\ndata: {k: v2}\n")
        .await;
    assert_eq!(code, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(exists(&api, "configmaps", "held").await);
    // Through the Kubernetes API, as an operator lets go.
    let resp = api
        .http
        .patch(format!(
            "{}/api/v1/namespaces/default/configmaps/held",
            api.base
        ))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"metadata":{"finalizers":null}}"#)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap_or_default()
    );
    eventually(
        Duration::from_secs(15),
        "the released object deleted",
        || {
            let api = api.clone();
            async move { !exists(&api, "configmaps", "held").await }
        },
    )
    .await;
    // `finalizers: []` through shoal's apply lets go too.
    let (code, v) = api.apply(&held("[example.com/hold]")).await;
    assert_eq!(code, 200, "{v}");
    api.send(
        Method::DELETE,
        "/v1/namespaces/default/configmaps/held",
        None,
    )
    .await;
    let (code, v) = api.apply(&held("[]")).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(15),
        "deleted once the list is empty",
        || {
            let api = api.clone();
            async move { !exists(&api, "configmaps", "held").await }
        },
    )
    .await;

    // The owner goes: so does its child.
    api.send(
        Method::DELETE,
        "/v1/namespaces/default/configmaps/owner",
        None,
    )
    .await;
    eventually(Duration::from_secs(15), "the child collected", || {
        let api = api.clone();
        async move { !exists(&api, "configmaps", "child").await }
    })
    .await;
    node.shutdown().await;
}

/// `propagationPolicy` of a delete: Orphan keeps the dependents (a
/// Deployment's ReplicaSet, a ConfigMap's children), without the owner in
/// their ownerReferences; Background, the default, collects them;
/// Foreground is refused, naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_orphan_or_collect_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let (node, api) = dev_node(dir.path()).await;
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"60\"]\n"
        )
    };
    let replicasets = |app: &'static str| {
        let api = api.clone();
        async move {
            let (_, list) = api.get("/v1/namespaces/default/replicasets").await;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["metadata"]["labels"]["app"] == app)
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    for name in ["kept", "gone"] {
        let (code, v) = api.apply(&deployment(name)).await;
        assert_eq!(code, 200, "{v}");
    }
    for app in ["kept", "gone"] {
        eventually(Duration::from_secs(15), "the ReplicaSet made", || async {
            replicasets(app).await.len() == 1
        })
        .await;
    }

    // Orphan, through the Kubernetes API's DeleteOptions as kubectl
    // --cascade=orphan sends them.
    kube_delete_deployment(&api, "kept", "Orphan").await;
    let (code, _) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/deployments/gone",
            None,
        )
        .await;
    assert_eq!(code, 200);
    eventually(
        Duration::from_secs(15),
        "the background delete collects",
        || async { replicasets("gone").await.is_empty() },
    )
    .await;
    // Longer than a walk of the collector (every 2 s): the orphan stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let kept = replicasets("kept").await;
    assert_eq!(kept.len(), 1, "the orphaned ReplicaSet stays");
    assert_eq!(
        kept[0]["metadata"].get("ownerReferences"),
        None,
        "without its owner: {:#}",
        kept[0]
    );
    assert!(!exists(&api, "deployments", "kept").await);

    // Through /v1, on user-set owner references.
    parent_and_child(&api, "parent", "kid").await;
    let (code, v) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/configmaps/parent?propagationPolicy=Orphan",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["results"].as_array().map(Vec::len),
        Some(1),
        "only the deleted object is reported: {v}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, kid) = api.get("/v1/namespaces/default/configmaps/kid").await;
    assert_eq!(code, 200, "orphaned, kept: {kid}");
    assert_eq!(kid["metadata"].get("ownerReferences"), None, "{kid}");
    node.shutdown().await;
}
