//! Live ConfigMap updates across a three-node cluster with the real Docker
//! engine: one ConfigMap mounted by a pod on each node, rewritten many
//! times through one node's API; every rewrite must be read inside every
//! pod within 2 s (the issue's bound), and a reader loop spinning in each
//! container must never see a torn or empty file. The one-node version is
//! in t45; this one adds what only several nodes show: each node learns of
//! the write through Raft replication and its own watch, not the writer's.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;
use shoal::runtime::{DynRuntime, LABEL_CONTAINER, LABEL_POD_UID};

/// Bytes per generation: large enough that a non-atomic rewrite would be
/// caught half-written by a reader spinning on it.
const BODY_BYTES: usize = 16 * 1024;

fn body(g: u32) -> String {
    format!("g-{g:04}-{}-end", "x".repeat(BODY_BYTES))
}

fn configmap_gen(g: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live3\ndata:\n  value: \"{}\"\n",
        body(g)
    )
}

/// Every read checked whole (prefix, suffix, length); any other read is
/// recorded in /tmp/torn, and the read count kept in /tmp/reads.
fn reader_script() -> String {
    let len = body(0).len();
    format!(
        "n=0; while true; do v=$(cat /conf/value); case \"$v\" in g-*-end) ;; *) echo \"bad:${{#v}}\" >> /tmp/torn;; esac; \
         if [ ${{#v}} -ne {len} ]; then echo \"len:${{#v}}\" >> /tmp/torn; fi; n=$((n+1)); echo $n > /tmp/reads; done"
    )
}

fn pod_on(name: &str, node: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: conf, configMap: {{name: live3}}}}\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", {reader:?}]\n    volumeMounts:\n    - {{name: conf, mountPath: /conf}}\n",
        reader = reader_script()
    )
}

async fn apply(api: &Api, manifest: &str) {
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "apply: {v}");
}

/// Runs `script` in the container; its exit code and output.
async fn sh(rt: &DynRuntime, id: &str, script: &str) -> (i64, String) {
    let cmd = ["sh".to_string(), "-c".to_string(), script.to_string()];
    let out = rt
        .exec(id, &cmd, Duration::from_secs(10))
        .await
        .expect("exec in the container");
    (
        out.exit_code,
        String::from_utf8_lossy(&out.output).into_owned(),
    )
}

/// Waits until the pod's container runs; its container id.
async fn running_container(api: &Api, rt: &DynRuntime, pod: &str) -> String {
    let path = format!("/v1/namespaces/default/pods/{pod}?consistent=false");
    let deadline = Instant::now() + Duration::from_secs(90);
    let p: Value = loop {
        let (code, p) = api.get(&path).await;
        let up = code == 200
            && p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|cs| {
                    !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
                });
        if up {
            break p;
        }
        if Instant::now() > deadline {
            let (_, evs) = api
                .get("/v1/namespaces/default/events?consistent=false")
                .await;
            panic!("pod {pod} not running after 90s: {p:#}\nevents: {evs:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let mut by_name: BTreeMap<String, String> = rt
        .list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid)]))
        .await
        .expect("list containers")
        .into_iter()
        .map(|c| (c.labels[LABEL_CONTAINER].clone(), c.id))
        .collect();
    by_name.remove("main").expect("the pod's main container")
}

/// Polls one container until its file starts with generation `g`; how
/// long that took from `t0`. Panics past the 2 s bound.
async fn wait_generation(
    rt: DynRuntime,
    id: String,
    node: String,
    g: u32,
    t0: Instant,
) -> Duration {
    let want = format!("g-{g:04}");
    loop {
        let (code, got) = sh(&rt, &id, "head -c 6 /conf/value").await;
        assert_eq!(code, 0, "reading the file on {node}: {got}");
        if got == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "generation {g} not visible in the pod on {node} after {:?} (still {got})",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_configmap_rewrites_reach_pods_on_three_nodes_whole_within_2s() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("t49n", &["2", "2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
    })
    .await;
    let api = c.api();
    apply(&api, &configmap_gen(0)).await;
    let names: Vec<String> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| n.info.name.clone())
        .collect();
    assert_eq!(names.len(), 3);
    for (i, node) in names.iter().enumerate() {
        apply(&api, &pod_on(&format!("live3-{i}"), node, &image)).await;
    }
    // One engine serves every in-process node: any node's runtime execs.
    let rt = c.nodes[0].as_ref().expect("node 0").runtime.clone();
    let mut ids = Vec::new();
    for i in 0..names.len() {
        ids.push(running_container(&api, &rt, &format!("live3-{i}")).await);
    }
    for (id, node) in ids.iter().zip(&names) {
        let (_, got) = sh(&rt, id, "head -c 6 /conf/value").await;
        assert_eq!(got, "g-0000", "initial content in the pod on {node}");
    }

    // Writes go through a node other than the leader half of the time, so
    // both the forwarding path and the local one are exercised.
    let apis: Vec<Api> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| Api::new(n.api_addr))
        .collect();
    let rewrites = 12u32;
    let mut all: Vec<Duration> = Vec::new();
    for g in 1..=rewrites {
        let t0 = Instant::now();
        apply(&apis[g as usize % apis.len()], &configmap_gen(g)).await;
        let waits = ids.iter().zip(&names).map(|(id, node)| {
            tokio::spawn(wait_generation(rt.clone(), id.clone(), node.clone(), g, t0))
        });
        for w in futures::future::join_all(waits).await {
            all.push(w.expect("a poller panicked: see above"));
        }
    }
    all.sort();
    eprintln!(
        "{rewrites} rewrites x {} pods: median {:?}, slowest {:?}",
        names.len(),
        all[all.len() / 2],
        all[all.len() - 1]
    );

    for (id, node) in ids.iter().zip(&names) {
        // The loop rewrites /tmp/reads in place: read until caught whole.
        let (_, reads) = sh(
            &rt,
            id,
            "while true; do r=$(cat /tmp/reads); [ -n \"$r\" ] && break; done; echo $r",
        )
        .await;
        let reads: u64 = reads.trim().parse().expect("read count");
        assert!(reads > 100, "the reader on {node} ran ({reads} reads)");
        let (code, torn) = sh(&rt, id, "cat /tmp/torn").await;
        assert_ne!(
            code, 0,
            "the reader on {node} saw torn or empty files: {torn}"
        );
    }
    c.stop().await;
}
