//! DaemonSets on three-node in-process clusters with the Docker engine: a
//! pod on each node, a nodeSelector, a node joining and a node stopped, a
//! rolling update that keeps all but maxUnavailable nodes serving, OnDelete,
//! and `rollout status|history|undo`; through the `shoal` binary and the API.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use shoal::runtime::RuntimeKind;

/// A DaemonSet of busybox pods printing `version`; `extra` goes under `spec`.
fn daemonset(name: &str, image: &str, version: &str, extra: &str, node_selector: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n{extra}  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n{node_selector}      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        env:\n        - name: VERSION\n          value: \"{version}\"\n        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
    )
}

/// Three nodes on `runtime`, the second labelled `disk: ssd`; and the
/// image their pods run (the process runtime ignores it).
async fn cluster(prefix: &str, runtime: RuntimeKind) -> (Cluster, String) {
    let image = match runtime {
        RuntimeKind::Docker => {
            images::require_docker();
            images::ensure_busybox_image()
        }
        RuntimeKind::Process => "host".to_string(),
    };
    let c = Cluster::start(prefix, &["2", "2", "2"], |c| {
        c.runtime = Some(runtime);
        if c.name.as_deref().is_some_and(|n| n.ends_with('1')) {
            c.agent.labels.insert("disk".into(), "ssd".into());
        }
    })
    .await;
    (c, image)
}

/// One live (not finished) pod of the DaemonSet: (name, node, revision hash, ready).
#[derive(Debug, Clone, PartialEq)]
struct DsPod {
    name: String,
    node: String,
    hash: String,
    ready: bool,
}

async fn ds_pods(api: &Api, ds: &str) -> Vec<DsPod> {
    let mut out: Vec<DsPod> = pods(api)
        .await
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == ds)
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .map(|p| DsPod {
            name: p["metadata"]["name"].as_str().unwrap_or("").into(),
            node: p["spec"]["nodeName"].as_str().unwrap_or("").into(),
            hash: p["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .unwrap_or("")
                .into(),
            ready: is_ready(p),
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// Waits until the DaemonSet runs exactly one ready pod on each of `nodes`
/// and none elsewhere; returns them.
async fn wait_one_per_node(api: &Api, ds: &str, nodes: &[&str], secs: u64) -> Vec<DsPod> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = ds_pods(api, ds).await;
        let on: Vec<&str> = got.iter().map(|p| p.node.as_str()).collect();
        if on == nodes && got.iter().all(|p| p.ready) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "daemonset {ds} never had one ready pod on each of {nodes:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DaemonSet's row of `shoal get ds`, split on whitespace.
async fn get_row(addr: &str, ds: &str) -> Vec<String> {
    let (code, out, err) = shoal_cli(addr, &["get", "ds"]).await;
    assert_eq!(code, 0, "get ds: {err}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|h| h
                .contains("DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR")),
        "header: {out}"
    );
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(ds))
        .unwrap_or_else(|| panic!("no row for {ds}: {out}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Waits until the DaemonSet's row reads `cells` from DESIRED to NODE
/// SELECTOR: its status is written in the pass after its pods change.
async fn wait_row(addr: &str, ds: &str, cells: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = get_row(addr, ds).await;
        if row.len() > cells.len() && row[1..=cells.len()] == *cells {
            return;
        }
        assert!(Instant::now() < deadline, "{ds}: {row:?}, not {cells:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemonset_follows_the_nodes_docker() {
    follows_the_nodes("dsn", RuntimeKind::Docker).await;
}

/// The same on host processes: the controller does not depend on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemonset_follows_the_nodes_process() {
    follows_the_nodes("dpn", RuntimeKind::Process).await;
}

async fn follows_the_nodes(prefix: &str, runtime: RuntimeKind) {
    let (mut c, image) = cluster(prefix, runtime).await;
    let n = |i: usize| format!("{prefix}{i}");
    let api = c.api();
    let addr = api.base.clone();
    // A cordoned node still gets its daemon pod, as in Kubernetes.
    let (code, _, err) = shoal_cli(&addr, &["cordon", &n(2)]).await;
    assert_eq!(code, 0, "cordon: {err}");
    let (code, v) = api.apply(&daemonset("agent", &image, "1", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_one_per_node(&api, "agent", &[&n(0), &n(1), &n(2)], 90).await;
    wait_row(&addr, "agent", &["3", "3", "3", "3", "3", "<none>"]).await;
    // Draining the cordoned node leaves its daemon pod alone: evicted, it
    // would come straight back.
    let before = ds_pods(&api, "agent").await;
    let (code, out, err) = shoal_cli(&addr, &["drain", &n(2), "--timeout", "30"]).await;
    assert_eq!(code, 0, "drain: {out}{err}");
    assert!(
        err.contains("ignoring DaemonSet-managed Pods") && err.contains(&before[2].name),
        "{err}"
    );
    assert_eq!(
        ds_pods(&api, "agent").await,
        before,
        "drain moved daemon pods"
    );

    // A nodeSelector keeps it to the labelled node.
    let (code, v) = api
        .apply(&daemonset(
            "ssd",
            &image,
            "1",
            "",
            "      nodeSelector:\n        disk: ssd\n",
        ))
        .await;
    assert_eq!(code, 200, "{v}");
    wait_one_per_node(&api, "ssd", &[&n(1)], 60).await;
    wait_row(&addr, "ssd", &["1", "1", "1", "1", "1", "disk=ssd"]).await;

    // A node that joins gets the daemon pod (and not the ssd one).
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = p2p_host_port(c.nodes[0].as_ref().expect("node 0"));
    let fourth = start_node(dir.path(), &n(3), |cfg| {
        cfg.join = vec![seed];
        cfg.runtime = Some(runtime);
        cfg.agent.capacity_cpu = Some("2".into());
        cfg.agent.capacity_memory = Some("8Gi".into());
        cfg.agent.reserved_cpu = "0".into();
        cfg.agent.reserved_memory = "0".into();
        cfg.agent.resync_ms = 300;
    })
    .await;
    assert!(
        fourth.wait_ready(Duration::from_secs(30)).await,
        "node 3 joins"
    );
    c.nodes.push(Some(fourth));
    wait_one_per_node(&api, "agent", &[&n(0), &n(1), &n(2), &n(3)], 90).await;
    wait_one_per_node(&api, "ssd", &[&n(1)], 10).await;

    // Stopped, it loses it: the pod is failed with its node, then deleted
    // and not replaced while the node is gone.
    let gone = c.crash(3).await;
    let rt = gone.runtime.clone();
    gone.shutdown().await;
    wait_one_per_node(&api, "agent", &[&n(0), &n(1), &n(2)], 60).await;
    remove_containers_of(&rt, &n(3)).await;
    eventually(Duration::from_secs(20), "desired back to 3", || {
        let addr = addr.clone();
        async move { get_row(&addr, "agent").await[1] == "3" }
    })
    .await;

    // A pod that fits on no node (2 cpus each) is not placed; the
    // DaemonSet gets a Warning event saying why.
    let big = daemonset("big", &image, "1", "", "").replace(
        "        env:\n",
        "        resources:\n          requests:\n            cpu: \"3\"\n        env:\n",
    );
    let (code, v) = api.apply(&big).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(30), "a FailedPlacement event", || {
        let addr = addr.clone();
        async move {
            let (_, out, _) = shoal_cli(&addr, &["describe", "ds", "big"]).await;
            out.contains("FailedPlacement") && out.contains("insufficient cpu")
        }
    })
    .await;
    assert!(ds_pods(&api, "big").await.is_empty(), "a pod was placed");
    wait_row(&addr, "big", &["3", "0", "0", "0", "0", "<none>"]).await;

    // `describe` shows the status; deleting the DaemonSet deletes its pods.
    let (code, out, err) = shoal_cli(&addr, &["describe", "ds", "agent"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("desiredNumberScheduled: 3"), "{out}");
    let (code, _, err) = shoal_cli(&addr, &["delete", "ds", "agent"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(Duration::from_secs(30), "the agent pods deleted", || {
        let api = api.clone();
        async move { ds_pods(&api, "agent").await.is_empty() }
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_surge_on_delete_and_undo_docker() {
    updates("dsr", RuntimeKind::Docker).await;
}

/// The same on host processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_surge_on_delete_and_undo_process() {
    updates("dpr", RuntimeKind::Process).await;
}

/// Waits for every pod of the DaemonSet to leave template `old`, asserting
/// all along that at least `serving` nodes have a ready pod.
async fn watch_rollout(api: &Api, ds: &str, old: &str, serving: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut fewest = usize::MAX;
    loop {
        let got = ds_pods(api, ds).await;
        let mut ready_nodes: BTreeMap<&str, bool> = BTreeMap::new();
        for p in &got {
            *ready_nodes.entry(p.node.as_str()).or_default() |= p.ready;
        }
        let now = ready_nodes.values().filter(|r| **r).count();
        fewest = fewest.min(now);
        assert!(
            now >= serving,
            "fewer than {serving} nodes serving: {got:?}"
        );
        if got.len() == 3 && got.iter().all(|p| p.ready && p.hash != old) {
            return fewest;
        }
        assert!(Instant::now() < deadline, "rollout never finished: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn updates(prefix: &str, runtime: RuntimeKind) {
    let (c, image) = cluster(prefix, runtime).await;
    let api = c.api();
    let addr = api.base.clone();
    let names: Vec<String> = (0..3).map(|i| format!("{prefix}{i}")).collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let rolling =
        "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 1\n";
    let (code, v) = api.apply(&daemonset("web", &image, "1", rolling, "")).await;
    assert_eq!(code, 200, "{v}");
    let v1 = wait_one_per_node(&api, "web", &nodes, 90).await;
    let h1 = v1[0].hash.clone();

    // A new template replaces every pod, never more than one node without
    // a ready pod.
    let (code, v) = api.apply(&daemonset("web", &image, "2", rolling, "")).await;
    assert_eq!(code, 200, "{v}");
    let fewest = watch_rollout(&api, "web", &h1, 2).await;
    eprintln!("fewest serving nodes during the rollout: {fewest}");
    let (code, out, err) =
        shoal_cli(&addr, &["rollout", "status", "ds/web", "--timeout", "60"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("daemon set \"web\" successfully rolled out"),
        "{out}"
    );
    let (code, out, err) = shoal_cli(&addr, &["rollout", "history", "daemonset/web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("daemonset.apps/web"), "{out}");
    let revs: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["1", "2"], "{out}");

    // Undo goes back to the first template, which becomes revision 3.
    let (code, out, err) = shoal_cli(&addr, &["rollout", "undo", "ds/web"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("daemonset.apps/web rolled back"), "{out}");
    eventually(Duration::from_secs(120), "pods back on revision 1", || {
        let api = api.clone();
        let h1 = h1.clone();
        async move {
            let got = ds_pods(&api, "web").await;
            got.len() == 3 && got.iter().all(|p| p.ready && p.hash == h1)
        }
    })
    .await;
    let (_, v) = api.get("/v1/namespaces/default/daemonsets/web").await;
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "1",
        "{v}"
    );
    let (code, out, _) = shoal_cli(&addr, &["rollout", "history", "ds/web"]).await;
    assert_eq!(code, 0);
    let revs: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["2", "3"], "{out}");

    // maxSurge 1, maxUnavailable 0: each node's new pod starts before its
    // old one goes, so every node keeps serving.
    let surge = "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";
    let (code, v) = api.apply(&daemonset("web", &image, "3", surge, "")).await;
    assert_eq!(code, 200, "{v}");
    watch_rollout(&api, "web", &h1, 3).await;

    // OnDelete: a new template waits until a pod is deleted.
    let on_delete = "  updateStrategy:\n    type: OnDelete\n";
    let (code, v) = api
        .apply(&daemonset("od", &image, "1", on_delete, ""))
        .await;
    assert_eq!(code, 200, "{v}");
    let before = wait_one_per_node(&api, "od", &nodes, 90).await;
    let (code, v) = api
        .apply(&daemonset("od", &image, "2", on_delete, ""))
        .await;
    assert_eq!(code, 200, "{v}");
    // The controller has seen the new generation before we look.
    eventually(Duration::from_secs(20), "od generation 2 observed", || {
        let api = api.clone();
        async move {
            let (_, v) = api.get("/v1/namespaces/default/daemonsets/od").await;
            v["status"]["observedGeneration"] == 2
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ds_pods(&api, "od").await,
        before,
        "OnDelete replaced pods by itself"
    );
    let victim = &before[1];
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/namespaces/default/pods/{}", victim.name),
            None,
        )
        .await;
    assert!(code == 200, "{code} {v}");
    // The list may still show the deleted pod for a moment: wait for its
    // node's pod to change, then for one ready pod per node.
    eventually(Duration::from_secs(60), "the deleted pod replaced", || {
        let api = api.clone();
        let victim = victim.clone();
        async move {
            ds_pods(&api, "od")
                .await
                .iter()
                .any(|p| p.node == victim.node && p.name != victim.name && p.ready)
        }
    })
    .await;
    let after = wait_one_per_node(&api, "od", &nodes, 60).await;
    assert_ne!(
        after[1].hash, before[1].hash,
        "the deleted pod's replacement is new"
    );
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_killed_mid_rollout_never_doubles_a_node_docker() {
    leader_killed_mid_rollout("dsk", RuntimeKind::Docker).await;
}

/// The same on host processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_killed_mid_rollout_never_doubles_a_node_process() {
    leader_killed_mid_rollout("dpk", RuntimeKind::Process).await;
}

/// The leader dies right after a new template is applied: the new leader
/// finishes the rollout on the nodes left, and no node ever runs two of
/// the DaemonSet's pods (maxSurge 0).
async fn leader_killed_mid_rollout(prefix: &str, runtime: RuntimeKind) {
    let (mut c, image) = cluster(prefix, runtime).await;
    let leader = c.leader();
    let survivor = (0..3).find(|i| *i != leader).expect("a follower");
    let api = Api::new(c.nodes[survivor].as_ref().expect("survivor").api_addr);
    let names: Vec<String> = (0..3).map(|i| format!("{prefix}{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let (code, v) = api.apply(&daemonset("web", &image, "1", "", "")).await;
    assert_eq!(code, 200, "{v}");
    let v1 = wait_one_per_node(&api, "web", &all, 90).await;
    let (code, v) = api.apply(&daemonset("web", &image, "2", "", "")).await;
    assert_eq!(code, 200, "{v}");
    let dead = c.crash(leader).await;
    let rt = dead.runtime.clone();
    dead.shutdown().await;
    let left: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| *n != names[leader])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A moment without a leader answers 503; the next poll asks again.
        let got = ds_pods(&api, "web").await;
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for p in got.iter().filter(|p| p.node != names[leader]) {
            *per_node.entry(p.node.as_str()).or_default() += 1;
        }
        assert!(
            per_node.values().all(|n| *n <= 1),
            "a node runs two pods: {got:?}"
        );
        let on: Vec<&str> = got.iter().map(|p| p.node.as_str()).collect();
        if on == left && got.iter().all(|p| p.ready && p.hash != v1[0].hash) {
            break;
        }
        assert!(Instant::now() < deadline, "rollout never finished: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    remove_containers_of(&rt, &names[leader]).await;
    c.stop().await;
}
