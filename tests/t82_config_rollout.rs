//! Rollouts when configuration changes, with the real Docker engine on an
//! in-process two-node cluster: a ConfigMap (or Secret) change rolls the
//! Deployments whose pods read it, at their own pace and as a new revision;
//! `rollout undo` still works; `shoal.io/restart-on-config-change: "false"`
//! opts out.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;

fn deployment(image: &str, name: &str, mode: &str, opt_out: bool) -> String {
    let annotations = if opt_out {
        "  annotations:\n    shoal.io/restart-on-config-change: \"false\"\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{annotations}spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sh\", \"-c\", \"echo VALUE=$VALUE TOKEN=$TOKEN MODE=$MODE; sleep 3600\"]\n        env:\n        - name: MODE\n          value: \"{mode}\"\n        - name: VALUE\n          valueFrom:\n            configMapKeyRef:\n              name: appcfg\n              key: value\n        envFrom:\n        - secretRef:\n            name: apptoken\n"
    )
}

fn token(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: apptoken\nstringData:\n  TOKEN: \"{value}\"\n"
    )
}

fn live(p: &Value, app: &str) -> bool {
    p["metadata"]["labels"]["app"] == app
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        && p["metadata"].get("deletionTimestamp").is_none()
}

async fn log_of(api: &Api, pod: &str) -> String {
    let (_, v) = api
        .get(&format!("/v1/namespaces/default/pods/{pod}/log"))
        .await;
    v.as_str().unwrap_or_default().to_string()
}

/// Waits until `app` runs exactly two ready pods, each printing `want`,
/// while never running more than three (maxSurge 1) nor fewer than two
/// ready (maxUnavailable 0) in the meantime. Returns their names.
async fn rolled_to(api: &Api, app: &str, want: &str) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all: Vec<Value> = pods(api)
            .await
            .into_iter()
            .filter(|p| live(p, app))
            .collect();
        assert!(
            all.len() <= 3,
            "{app}: {} pods, over replicas + maxSurge",
            all.len()
        );
        let ready = all.iter().filter(|p| is_ready(p)).count();
        let mut done = all.len() == 2 && ready == 2;
        let mut names = BTreeSet::new();
        for p in &all {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            done = done && log_of(api, &name).await.contains(want);
            names.insert(name);
        }
        if done {
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "{app} never rolled to {want:?}: {:?}",
            all.iter()
                .map(|p| (p["metadata"]["name"].clone(), is_ready(p)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn revision(api: &Api, name: &str) -> String {
    let (_, d) = api
        .get(&format!("/v1/namespaces/default/deployments/{name}"))
        .await;
    d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_change_rolls_the_deployments_that_read_it() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("cf", &["2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker)
    })
    .await;
    let api = c.api();
    let addr = api.base.clone();
    for m in [
        configmap("appcfg", "one"),
        token("tok-1"),
        deployment(&image, "web", "a", false),
        deployment(&image, "pinned", "a", true),
    ] {
        let (code, v) = api.apply(&m).await;
        assert_eq!(code, 200, "{v}");
    }
    rolled_to(&api, "web", "VALUE=one TOKEN=tok-1 MODE=a").await;
    let pinned = rolled_to(&api, "pinned", "VALUE=one TOKEN=tok-1 MODE=a").await;
    assert_eq!(revision(&api, "web").await, "1");

    // The ConfigMap changes: web rolls (a new revision), pinned does not.
    let (code, v) = api.apply(&configmap("appcfg", "two")).await;
    assert_eq!(code, 200, "{v}");
    rolled_to(&api, "web", "VALUE=two TOKEN=tok-1 MODE=a").await;
    assert_eq!(revision(&api, "web").await, "2");
    // The Secret changes: another revision.
    let (code, v) = api.apply(&token("tok-2")).await;
    assert_eq!(code, 200, "{v}");
    let rev3 = rolled_to(&api, "web", "VALUE=two TOKEN=tok-2 MODE=a").await;
    assert_eq!(revision(&api, "web").await, "3");
    // Re-applying the same values changes nothing.
    let (code, v) = api.apply(&token("tok-2")).await;
    assert_eq!(code, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now: BTreeSet<String> = pods(&api)
        .await
        .iter()
        .filter(|p| live(p, "web"))
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(now, rev3, "an unchanged Secret rolled the pods");
    let pinned_now: BTreeSet<String> = pods(&api)
        .await
        .iter()
        .filter(|p| live(p, "pinned"))
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(pinned_now, pinned, "the opted-out deployment was rolled");
    assert_eq!(revision(&api, "pinned").await, "1");

    // A template change, then `rollout undo` back to before it: the pods
    // read the configuration as it is now.
    let (code, v) = api.apply(&deployment(&image, "web", "b", false)).await;
    assert_eq!(code, 200, "{v}");
    rolled_to(&api, "web", "VALUE=two TOKEN=tok-2 MODE=b").await;
    assert_eq!(revision(&api, "web").await, "4");
    let (code, out, err) = shoal_cli(&addr, &["rollout", "undo", "deployment", "web"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rolled back"), "{out}");
    rolled_to(&api, "web", "VALUE=two TOKEN=tok-2 MODE=a").await;
    assert_eq!(revision(&api, "web").await, "5", "revision 3 revived as 5");
    // Undo to a revision that differs only in configuration says so.
    let (code, out, err) = shoal_cli(
        &addr,
        &["rollout", "undo", "deployment", "web", "--to-revision", "2"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("skipped rollback") && out.contains("change them back"),
        "{out}"
    );
    // Changing the configuration back (in one write) brings the old
    // ReplicaSet back.
    let both = format!("{}---\n{}", configmap("appcfg", "one"), token("tok-1"));
    let (code, v) = api.apply(&both).await;
    assert_eq!(code, 200, "{v}");
    rolled_to(&api, "web", "VALUE=one TOKEN=tok-1 MODE=a").await;
    assert_eq!(revision(&api, "web").await, "6");
    let (_, sets) = api.get("/v1/namespaces/default/replicasets").await;
    let web_sets = sets["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| rs["metadata"]["name"].as_str().unwrap().starts_with("web-"))
        .count();
    assert_eq!(web_sets, 4, "revision 1's ReplicaSet was reused: {sets}");
    c.stop().await;
}
