//! Scheduler, Deployments and node lifecycle on in-process clusters with the
//! process runtime: packing, unschedulable reasons, rolling updates within
//! their limits, a halted rollout and its undo, a lost node's replicas
//! replaced, and a leader lost in mid-rollout.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{Value, json};

fn node_of(p: &Value) -> Option<&str> {
    p["spec"]["nodeName"].as_str()
}

fn terminal(p: &Value) -> bool {
    matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn pod(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"3600\"]\n    resources:\n      requests:\n        cpu: {cpu}\n"
    )
}

fn deployment(name: &str, replicas: u32, env: &str, probe: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n{extra_spec}  selector:\n    matchLabels:\n      app: {name}\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 1\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"3600\"]\n        env:\n        - name: VERSION\n          value: \"{env}\"\n        resources:\n          requests:\n            cpu: 100m\n{probe}"
    )
}

async fn wait_rolled_out(api: &Api, name: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, d) = api
            .get(&format!("/v1/namespaces/default/deployments/{name}"))
            .await;
        let st = &d["status"];
        let want = d["spec"]["replicas"].as_u64().unwrap_or(1);
        if st["observedGeneration"] == d["metadata"]["generation"]
            && st["updatedReplicas"] == want
            && st["replicas"] == want
            && st["availableReplicas"] == want
        {
            return d;
        }
        if Instant::now() >= deadline {
            // The pods say why (waiting reasons, events) where the
            // Deployment's status only counts them.
            let pods: Vec<String> = pods(api)
                .await
                .iter()
                .map(|p| {
                    format!(
                        "{} on {}: {} {}",
                        p["metadata"]["name"],
                        p["spec"]["nodeName"],
                        p["status"]["phase"],
                        p["status"]["containerStatuses"]
                    )
                })
                .collect();
            let (_, events) = api.get("/v1/namespaces/default/events").await;
            panic!(
                "deployment {name} never rolled out: {:#}\npods:\n{}\nevents: {:#}",
                d["status"],
                pods.join("\n"),
                events["items"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_are_packed_and_unschedulable_ones_wait_for_room() {
    let c = Cluster::start("pk", &["1", "2", "4"], |_| {}).await;
    let api = c.api();
    for i in 0..6 {
        let (code, v) = api.apply(&pod(&format!("p{i}"), "500m")).await;
        assert_eq!(code, 200, "{v}");
    }
    eventually(Duration::from_secs(20), "six pods bound", || {
        let api = api.clone();
        async move {
            pods(&api)
                .await
                .iter()
                .filter(|p| node_of(p).is_some())
                .count()
                == 6
        }
    })
    .await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods(&api).await {
        *per_node
            .entry(node_of(&p).unwrap().to_string())
            .or_default() += 1;
    }
    // Most-allocated: the 1-core node fills first, then the 2-core one.
    assert_eq!(per_node.get("pk0"), Some(&2), "{per_node:?}");
    assert_eq!(per_node.get("pk1"), Some(&4), "{per_node:?}");
    assert_eq!(per_node.get("pk2"), None, "{per_node:?}");

    // Too big for any node: Pending with the reason.
    let (code, v) = api.apply(&pod("big", "5")).await;
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = api.get("/v1/namespaces/default/pods/big").await;
        let cond = p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned());
        if let Some(cond) = cond {
            assert_eq!(cond["status"], "False");
            assert_eq!(cond["reason"], "Unschedulable");
            assert_eq!(cond["message"], "0/3 nodes: insufficient cpu (3)", "{p:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unschedulable condition: {p:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A pod that needs 4 cores waits until the 4-core node is empty again.
    let (code, _) = api.apply(&pod("p6", "500m")).await;
    assert_eq!(code, 200);
    eventually(Duration::from_secs(20), "p6 on the big node", || {
        let api = api.clone();
        async move {
            let (_, p) = api.get("/v1/namespaces/default/pods/p6").await;
            node_of(&p) == Some("pk2")
        }
    })
    .await;
    let (code, _) = api.apply(&pod("four", "4")).await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, p) = api.get("/v1/namespaces/default/pods/four").await;
    assert_eq!(node_of(&p), None, "must wait: {p:#}");
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/p6",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(20),
        "four placed once room appears",
        || {
            let api = api.clone();
            async move {
                let (_, p) = api.get("/v1/namespaces/default/pods/four").await;
                node_of(&p) == Some("pk2")
            }
        },
    )
    .await;
    c.stop().await;
}

/// Samples the deployment's pods until `done` holds, checking the rolling
/// update's limits at every sample.
async fn sample_limits(
    api: &Api,
    app: &str,
    replicas: usize,
    secs: u64,
    mut done: impl FnMut(&[Value]) -> bool,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut samples = 0;
    loop {
        let all: Vec<Value> = pods(api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app && !terminal(p))
            .collect();
        let ready = all.iter().filter(|p| is_ready(p)).count();
        assert!(
            all.len() <= replicas + 1,
            "{} pods exceed replicas + maxSurge",
            all.len()
        );
        assert!(
            ready + 1 >= replicas,
            "only {ready} ready: below replicas - maxUnavailable"
        );
        samples += 1;
        if done(&all) {
            return samples;
        }
        assert!(Instant::now() < deadline, "rollout did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_keeps_limits_halts_on_bad_template_and_undoes() {
    let c = Cluster::start("ru", &["2", "2", "2"], |_| {}).await;
    let api = c.api();
    let (code, v) = api.apply(&deployment("web", 4, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    let d = wait_rolled_out(&api, "web", 60).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    // Replicas of one deployment spread over the nodes.
    let nodes: HashSet<String> = pods(&api)
        .await
        .iter()
        .filter_map(|p| node_of(p).map(str::to_string))
        .collect();
    assert_eq!(nodes.len(), 3, "replicas should spread: {nodes:?}");

    // A new template rolls within maxSurge 1 / maxUnavailable 1.
    let (code, v) = api.apply(&deployment("web", 4, "two", "", "")).await;
    assert_eq!(code, 200, "{v}");
    let samples = sample_limits(&api, "web", 4, 60, |all| {
        all.len() == 4
            && all
                .iter()
                .all(|p| is_ready(p) && p["spec"]["containers"][0]["env"][0]["value"] == "two")
    })
    .await;
    assert!(samples > 5, "too few samples ({samples}) to mean anything");
    let d = wait_rolled_out(&api, "web", 30).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // A template that never becomes ready: the rollout halts, old pods keep serving.
    let never = "        readinessProbe:\n          exec:\n            command: [\"false\"]\n          periodSeconds: 1\n          failureThreshold: 1\n";
    let (code, v) = api
        .apply(&deployment(
            "web",
            4,
            "three",
            never,
            "  progressDeadlineSeconds: 5\n",
        ))
        .await;
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, d) = api.get("/v1/namespaces/default/deployments/web").await;
        let all: Vec<Value> = pods(&api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "web" && !terminal(p))
            .collect();
        let ready_old = all
            .iter()
            .filter(|p| is_ready(p) && p["spec"]["containers"][0]["env"][0]["value"] == "two")
            .count();
        assert!(
            ready_old >= 3,
            "old pods must keep serving: {ready_old} ready"
        );
        assert!(all.len() <= 5);
        let failed = d["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
        if failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout never marked failed: {:#}",
            d["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Undo: back to revision 2's template, which becomes revision 4.
    let (_, rsl) = api.get("/v1/namespaces/default/replicasets").await;
    let rev2 = rsl["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rs| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2")
        .expect("revision 2")
        .clone();
    let (_, mut d) = api.get("/v1/namespaces/default/deployments/web").await;
    let mut template = rev2["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    d["spec"]["template"] = template;
    d.as_object_mut().unwrap().remove("status");
    let (code, v) = api
        .send(
            reqwest::Method::PUT,
            "/v1/namespaces/default/deployments/web",
            Some(serde_json::to_vec(&d).unwrap()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let d = wait_rolled_out(&api, "web", 60).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    let all: Vec<Value> = pods(&api)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web" && !terminal(p))
        .collect();
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "two")
    );
    // Deleting the deployment deletes its ReplicaSets and their pods.
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/deployments/web",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(20),
        "ReplicaSets and pods collected",
        || {
            let api = api.clone();
            async move {
                let (_, rs) = api.get("/v1/namespaces/default/replicasets").await;
                rs["items"].as_array().is_some_and(Vec::is_empty) && pods(&api).await.is_empty()
            }
        },
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_node_replicas_are_replaced_and_a_lost_leader_finishes_the_rollout() {
    let mut c = Cluster::start("ln", &["4", "4", "4"], |_| {}).await;
    let api_node = c.leader();
    let api = Api::new(c.nodes[api_node].as_ref().unwrap().api_addr);
    let (code, v) = api.apply(&deployment("app", 6, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "app", 60).await;

    // Crash a node that is not the leader: its replicas come back elsewhere.
    let victim = (0..3).find(|i| *i != api_node).unwrap();
    let vname = format!("ln{victim}");
    let dead = c.crash(victim).await;
    let dead_rt = dead.runtime.clone();
    dead.shutdown().await;
    let t = Instant::now();
    eventually(
        Duration::from_secs(30),
        "six ready replicas on live nodes",
        || {
            let api = api.clone();
            let vname = vname.clone();
            async move {
                let live: Vec<Value> = pods(&api)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "app" && !terminal(p))
                    .collect();
                live.len() == 6
                    && live
                        .iter()
                        .all(|p| is_ready(p) && node_of(p) != Some(vname.as_str()))
            }
        },
    )
    .await;
    eprintln!("replicas replaced after {:?}", t.elapsed());
    remove_containers_of(&dead_rt, &vname).await;

    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_lost_in_mid_rollout_finishes_it_without_extra_pods() {
    let mut c = Cluster::start("ml", &["4", "4", "4"], |_| {}).await;
    let leader = c.leader();
    let other = (0..3).find(|i| *i != leader).unwrap();
    let api = Api::new(c.nodes[other].as_ref().unwrap().api_addr);
    let (code, v) = api.apply(&deployment("app", 6, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "app", 60).await;
    let (code, v) = api.apply(&deployment("app", 6, "two", "", "")).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "the rollout has begun", || {
        let api = api.clone();
        async move {
            pods(&api)
                .await
                .iter()
                .any(|p| p["spec"]["containers"][0]["env"][0]["value"] == "two")
        }
    })
    .await;
    let lname = format!("ml{leader}");
    let dead = c.crash(leader).await;
    let dead_rt = dead.runtime.clone();
    dead.shutdown().await;
    // The new leader finishes the rollout; the dead node's pods are replaced.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live: Vec<Value> = pods(&api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "app" && !terminal(p))
            .collect();
        let on_live_nodes = live
            .iter()
            .filter(|p| node_of(p) != Some(lname.as_str()))
            .count();
        assert!(
            on_live_nodes <= 7,
            "{on_live_nodes} pods: more than replicas + maxSurge"
        );
        if live.len() == 6
            && live.iter().all(|p| {
                is_ready(p)
                    && node_of(p) != Some(lname.as_str())
                    && p["spec"]["containers"][0]["env"][0]["value"] == "two"
            })
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout never finished under the new leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_rolled_out(&api, "app", 30).await;
    // Stays at six: nothing extra appears afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live = pods(&api)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "app" && !terminal(p))
        .count();
    assert_eq!(live, 6);
    remove_containers_of(&dead_rt, &lname).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_deployment_rolls_on_two_nodes() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("dk", &["2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker)
    })
    .await;
    let api = c.api();
    let manifest = |v: &str| {
        deployment("dweb", 3, v, "", "").replace("image: host", &format!("image: {image}"))
    };
    let (code, v) = api.apply(&manifest("one")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "dweb", 90).await;
    let (code, v) = api.apply(&manifest("two")).await;
    assert_eq!(code, 200, "{v}");
    sample_limits(&api, "dweb", 3, 90, |all| {
        all.len() == 3
            && all
                .iter()
                .all(|p| is_ready(p) && p["spec"]["containers"][0]["env"][0]["value"] == "two")
    })
    .await;
    wait_rolled_out(&api, "dweb", 30).await;
    // The engine runs exactly the three new containers (old ones removed).
    let rt = c.nodes[0].as_ref().unwrap().runtime.clone();
    eventually(Duration::from_secs(20), "three running containers", || {
        let rt = rt.clone();
        async move {
            let mut n = 0;
            for node in ["dk0", "dk1"] {
                let mine =
                    BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), node.to_string())]);
                n += rt
                    .list(&mine)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| c.state == shoal::runtime::ContainerState::Running)
                    .count();
            }
            n == 3
        }
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_node_stops_its_pods_when_told_to() {
    let c = Cluster::start("dc", &["2", "2", "2"], |c| {
        c.scheduler.disconnected_pods = shoal::controller::DisconnectedPods::Stop;
        c.scheduler.disconnected_stop_after_ms = 2000;
    })
    .await;
    let api = c.api();
    let (code, v) = api.apply(&deployment("cut", 3, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "cut", 60).await;
    // Isolate a node that is not the leader.
    let leader = c.leader();
    let lonely = (0..3).find(|i| *i != leader).unwrap();
    let node = c.nodes[lonely].as_ref().unwrap();
    let others: HashSet<libp2p::PeerId> = c
        .nodes
        .iter()
        .flatten()
        .filter(|n| n.info.name != node.info.name)
        .map(|n| n.info.peer_id.parse().unwrap())
        .collect();
    let mine = BTreeMap::from([(
        shoal::runtime::LABEL_NODE.to_string(),
        node.info.name.clone(),
    )]);
    let running = |rt: shoal::runtime::DynRuntime, mine: BTreeMap<String, String>| async move {
        rt.list(&mine)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|c| c.state == shoal::runtime::ContainerState::Running)
            .count()
    };
    assert!(
        running(node.runtime.clone(), mine.clone()).await > 0,
        "the node runs replicas"
    );
    node.net_handle().set_blocked(others).await;
    let lonely_peer: libp2p::PeerId = node.info.peer_id.parse().unwrap();
    for n in c
        .nodes
        .iter()
        .flatten()
        .filter(|n| n.info.name != node.info.name)
    {
        n.net_handle()
            .set_blocked(HashSet::from([lonely_peer]))
            .await;
    }
    // Read from the majority's side from now on.
    let api = Api::new(c.nodes[leader].as_ref().unwrap().api_addr);
    let rt = node.runtime.clone();
    eventually(
        Duration::from_secs(30),
        "the cut-off node stops its pods",
        || {
            let rt = rt.clone();
            let mine = mine.clone();
            async move { running(rt, mine).await == 0 }
        },
    )
    .await;
    // The majority replaced them meanwhile.
    eventually(
        Duration::from_secs(30),
        "three ready replicas elsewhere",
        || {
            let api = api.clone();
            let name = node.info.name.clone();
            async move {
                let live: Vec<Value> = pods(&api)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "cut" && !terminal(p))
                    .collect();
                live.len() == 3
                    && live
                        .iter()
                        .all(|p| is_ready(p) && node_of(p) != Some(name.as_str()))
            }
        },
    )
    .await;
    c.stop().await;
}

/// A node that leaves (SIGTERM) removes its containers: the cluster
/// replaces its pods elsewhere, and they must not run on as duplicates or
/// stay behind exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_node_removes_its_containers_and_its_pods_move() {
    let mut c = Cluster::start("lv", &["2", "2", "2"], |_| {}).await;
    let api = c.api();
    let (code, v) = api.apply(&deployment("lv", 2, "1", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "lv", 60).await;
    let host = pods(&api)
        .await
        .iter()
        .find_map(|p| node_of(p).map(str::to_string))
        .expect("a pod is bound");
    let i = c
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.info.name == host))
        .unwrap();
    let node = c.nodes[i].take().unwrap();
    let rt = node.runtime.clone();
    let mine = BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), host.clone())]);
    assert!(!rt.list(&mine).await.unwrap().is_empty());
    let started = Instant::now();
    node.leave().await;
    node.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "leave and shutdown took {:?}",
        started.elapsed()
    );
    let left = rt.list(&mine).await.unwrap();
    assert!(left.is_empty(), "containers left behind: {left:?}");
    let api = c.api();
    eventually(
        Duration::from_secs(60),
        "replicas moved off the left node",
        || {
            let api = api.clone();
            let host = host.clone();
            async move {
                let ps = pods(&api).await;
                let live: Vec<&Value> = ps.iter().filter(|p| !terminal(p)).collect();
                live.len() == 2
                    && live
                        .iter()
                        .all(|p| node_of(p).is_some_and(|n| n != host) && is_ready(p))
            }
        },
    )
    .await;
    c.stop().await;
}

/// Exit code, stdout and stderr of the `shoal` binary against `api`.
async fn shoal_at(api: &Api, args: &[&str]) -> (i32, String, String) {
    shoal_cli(api.base.trim_start_matches("http://"), args).await
}

async fn evict(api: &Api, name: &str, body: Value) -> (u16, Value) {
    api.send(
        reqwest::Method::POST,
        &format!("/v1/namespaces/default/pods/{name}/eviction"),
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evictions_keep_a_deployment_within_its_budget_and_drain_uses_them() {
    let c = Cluster::start("ev", &["4", "4"], |_| {}).await;
    let api = c.api();
    // Two replicas, maxUnavailable 1: one may be away at a time.
    let (code, v) = api.apply(&deployment("web", 2, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "web", 60).await;
    let web = |api: Api| async move {
        pods(&api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "web" && !terminal(p))
            .collect::<Vec<Value>>()
    };
    let before = web(api.clone()).await;
    assert_eq!(before.len(), 2);
    let name = |p: &Value| p["metadata"]["name"].as_str().unwrap().to_string();
    let (a, b) = (name(&before[0]), name(&before[1]));

    // Refused before anything is deleted: a body that is not an Eviction,
    // a uid that is not the pod's, a pod that does not exist.
    let (code, v) = evict(&api, &a, json!({"kind": "Pod"})).await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = evict(
        &api,
        &a,
        json!({"kind": "Eviction", "deleteOptions": {"preconditions": {"uid": "not-it"}}}),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = evict(&api, "no-such-pod", json!({})).await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(web(api.clone()).await.len(), 2);

    // With every node cordoned no replacement can start, so the budget
    // stays spent after the first eviction.
    for n in ["ev0", "ev1"] {
        let (code, out, err) = shoal_at(&api, &["cordon", n]).await;
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, v) = evict(&api, &a, json!({"kind": "Eviction"})).await;
    assert_eq!(code, 201, "{v}");
    match api.client.evict("default", &b, None).await {
        Err(e) => {
            assert_eq!(e.status(), Some(429), "{e}");
            assert!(
                e.to_string()
                    .contains("deployment default/web has 1 available replicas and must keep 1"),
                "{e}"
            );
        }
        Ok(()) => panic!("evicted {b} although its Deployment had no replica to spare"),
    }
    let (code, _) = api.get(&format!("/v1/namespaces/default/pods/{b}")).await;
    assert_eq!(code, 200, "a refused eviction deletes nothing");

    // Room again: the replacement starts, and then the second may go.
    let (code, out, err) = shoal_at(&api, &["uncordon", "ev1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        Duration::from_secs(30),
        "the second eviction is allowed once the replacement is ready",
        || {
            let api = api.clone();
            let b = b.clone();
            async move { api.client.evict("default", &b, None).await.is_ok() }
        },
    )
    .await;

    // drain: every pod of a node leaves through the same endpoint, one at
    // a time as the budget allows, and the Deployment is whole elsewhere.
    let (code, out, err) = shoal_at(&api, &["uncordon", "ev0"]).await;
    assert_eq!(code, 0, "{out}{err}");
    wait_rolled_out(&api, "web", 60).await;
    let on = |node: &'static str| {
        let api = api.clone();
        async move {
            web(api)
                .await
                .iter()
                .filter(|p| node_of(p) == Some(node))
                .count()
        }
    };
    // The replacements started on ev1 while ev0 was cordoned.
    let (from, to) = if on("ev1").await > 0 {
        ("ev1", "ev0")
    } else {
        ("ev0", "ev1")
    };
    assert!(on(from).await > 0);
    let (code, out, err) = shoal_at(&api, &["drain", from, "--timeout", "60"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("evicted\n"), "{out}");
    assert!(out.ends_with(&format!("node/{from} drained\n")), "{out}");
    eventually(
        Duration::from_secs(30),
        "two ready replicas, none on the drained node",
        || {
            let api = api.clone();
            async move {
                let live = web(api).await;
                live.len() == 2 && live.iter().all(|p| is_ready(p) && node_of(p) == Some(to))
            }
        },
    )
    .await;
    c.stop().await;
}

fn replica_set(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      tier: {name}\n  template:\n    metadata:\n      labels:\n        tier: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"3600\"]\n        resources:\n          requests:\n            cpu: 100m\n"
    )
}

/// Live (not terminal) pods whose controlling owner is the ReplicaSet `rs`.
async fn pods_of_set(api: &Api, rs: &str) -> Vec<Value> {
    pods(api)
        .await
        .into_iter()
        .filter(|p| !terminal(p))
        .filter(|p| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["kind"] == "ReplicaSet" && r["name"] == rs)
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_replicaset_keeps_its_count_and_a_deployments_sets_stay_the_controllers() {
    let c = Cluster::start("urs", &["2", "2"], |_| {}).await;
    let api = c.api();
    let (code, v) = api.apply(&replica_set("frontend", 2)).await;
    assert_eq!(code, 200, "{v}");
    let running = |n: usize| {
        let api = api.clone();
        async move {
            let ps = pods_of_set(&api, "frontend").await;
            ps.len() == n && ps.iter().all(|p| p["status"]["phase"] == "Running")
        }
    };
    eventually(Duration::from_secs(60), "2 frontend pods running", || {
        running(2)
    })
    .await;

    let (code, out, err) = shoal_at(&api, &["scale", "rs/frontend", "--replicas", "3"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replicaset.apps/frontend scaled"), "{out}");
    eventually(Duration::from_secs(60), "3 frontend pods running", || {
        running(3)
    })
    .await;

    // A Deployment's ReplicaSet is its controller's: a user's write of one
    // by name is refused, and scale names the Deployment to change.
    let (code, v) = api.apply(&deployment("web", 1, "1", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "web", 60).await;
    let (_, sets) = api.get("/v1/namespaces/default/replicasets").await;
    let owned = sets["items"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["metadata"]["ownerReferences"][0]["name"] == "web")
        })
        .and_then(|s| s["metadata"]["name"].as_str())
        .expect("web's ReplicaSet")
        .to_string();
    let (code, v) = api
        .apply(&replica_set(&owned, 5).replace(&format!("tier: {owned}"), "app: web"))
        .await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v.to_string().contains("controlled by Deployment web"),
        "{v}"
    );
    let (code, out, err) =
        shoal_at(&api, &["scale", "replicaset", &owned, "--replicas", "5"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("Deployment web"), "{err}");
    let (_, d) = api
        .get(&format!("/v1/namespaces/default/replicasets/{owned}"))
        .await;
    assert_eq!(d["spec"]["replicas"], 1, "untouched: {d}");

    // Deleting the user's ReplicaSet deletes its pods, and only those.
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/replicasets/frontend",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(60), "frontend pods gone", || {
        let api = api.clone();
        async move { pods_of_set(&api, "frontend").await.is_empty() }
    })
    .await;
    assert_eq!(pods_of_set(&api, &owned).await.len(), 1);
    c.stop().await;
}

fn budget(name: &str, app: &str, field: &str) -> String {
    format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\nspec:\n  {field}\n  selector:\n    matchLabels:\n      app: {app}\n"
    )
}

/// The status the leader wrote on a budget, once it says `allowed`.
async fn wait_budget_allows(api: &Api, name: &str, allowed: u64) -> Value {
    let path = format!("/v1/namespaces/default/poddisruptionbudgets/{name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, v) = api.get(&path).await;
        assert_eq!(code, 200, "{v}");
        if v["status"]["disruptionsAllowed"].as_u64() == Some(allowed)
            && v["status"]["currentHealthy"].as_u64().is_some()
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "budget {name} never allowed {allowed}: {}",
            v["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disruption_budget_holds_a_drain_until_it_is_relaxed() {
    let c = Cluster::start("pdb", &["4", "4"], |_| {}).await;
    let api = c.api();
    // Three replicas, every one of them on node pdb0 (pdb1 cordoned), and a
    // budget that keeps all three: the Deployment's own strategy would let
    // one go, the budget wins.
    let (code, out, err) = shoal_at(&api, &["cordon", "pdb1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, v) = api.apply(&deployment("db", 3, "one", "", "")).await;
    assert_eq!(code, 200, "{v}");
    wait_rolled_out(&api, "db", 60).await;
    let (code, v) = api.apply(&budget("db-pdb", "db", "minAvailable: 3")).await;
    assert_eq!(code, 200, "{v}");
    let st = wait_budget_allows(&api, "db-pdb", 0).await;
    assert_eq!(
        (
            &st["status"]["expectedPods"],
            &st["status"]["currentHealthy"],
            &st["status"]["desiredHealthy"]
        ),
        (&json!(3), &json!(3), &json!(3)),
        "{}",
        st["status"]
    );
    let (code, out, err) = shoal_at(&api, &["get", "pdb"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("MIN AVAILABLE") && out.contains("db-pdb") && out.contains("N/A"),
        "{out}"
    );

    // A drain of pdb0 with room on pdb1 still cannot take a pod: the budget
    // wants three healthy and a replacement only starts after an eviction.
    let (code, out, err) = shoal_at(&api, &["uncordon", "pdb1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = shoal_at(&api, &["drain", "pdb0", "--timeout", "4"]).await;
    assert_ne!(code, 0, "the drain finished against the budget: {out}");
    assert!(
        err.contains("violate the pod's disruption budget")
            && err.contains("db-pdb needs 3 healthy pods and has 3 currently"),
        "{err}"
    );
    assert!(
        err.contains("timed out after 4s draining node/pdb0"),
        "{err}"
    );
    let live = pods(&api)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "db" && !terminal(p))
        .count();
    assert_eq!(live, 3, "a refused eviction deletes nothing");

    // A second budget over the same pods makes evictions an error, as in
    // Kubernetes, rather than picking one.
    let (code, v) = api
        .apply(&budget("db-pdb2", "db", "maxUnavailable: 1"))
        .await;
    assert_eq!(code, 200, "{v}");
    let one = pods(&api)
        .await
        .into_iter()
        .find(|p| p["metadata"]["labels"]["app"] == "db" && !terminal(p))
        .expect("a db pod");
    let (code, v) = evict(&api, one["metadata"]["name"].as_str().unwrap(), json!({})).await;
    assert_eq!(code, 500, "{v}");
    assert!(
        v.to_string().contains("more than one PodDisruptionBudget"),
        "{v}"
    );
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/poddisruptionbudgets/db-pdb2",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");

    // Relaxed to two: the drain moves the pods one at a time.
    let (code, v) = api.apply(&budget("db-pdb", "db", "minAvailable: 2")).await;
    assert_eq!(code, 200, "{v}");
    wait_budget_allows(&api, "db-pdb", 1).await;
    let (code, out, err) = shoal_at(&api, &["drain", "pdb0", "--timeout", "90"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("node/pdb0 drained\n"), "{out}");
    eventually(
        Duration::from_secs(30),
        "three ready db pods, all on pdb1",
        || {
            let api = api.clone();
            async move {
                let live: Vec<Value> = pods(&api)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "db" && !terminal(p))
                    .collect();
                live.len() == 3
                    && live
                        .iter()
                        .all(|p| is_ready(p) && node_of(p) == Some("pdb1"))
            }
        },
    )
    .await;
    c.stop().await;
}

fn placed_deployment(name: &str, replicas: u32, placement: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n{placement}      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"3600\"]\n        resources:\n          requests: {{cpu: 100m}}\n"
    )
}

/// Nodes of the live pods labelled `app`.
async fn nodes_of_app(api: &Api, app: &str) -> Vec<Option<String>> {
    pods(api)
        .await
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app && !terminal(p))
        .map(|p| node_of(p).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_affinity_anti_affinity_and_spread_place_by_zone_and_host() {
    // Zones: a (aff0, aff1), b (aff2), c (aff3).
    let c = Cluster::start("aff", &["4", "4", "4", "4"], |c| {
        let zone = match c.name.as_deref() {
            Some("aff0" | "aff1") => "a",
            Some("aff2") => "b",
            _ => "c",
        };
        c.agent
            .labels
            .insert("topology.kubernetes.io/zone".into(), zone.into());
    })
    .await;
    let api = c.api();
    let zone = |n: &str| match n {
        "aff0" | "aff1" => "a",
        "aff2" => "b",
        _ => "c",
    };

    // One web replica per host, and a fifth has nowhere to go.
    let anti = "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector: {matchLabels: {app: web}}\n            topologyKey: kubernetes.io/hostname\n";
    let (code, v) = api.apply(&placed_deployment("web", 4, anti)).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(30),
        "four web pods on four hosts",
        || {
            let api = api.clone();
            async move {
                let nodes = nodes_of_app(&api, "web").await;
                let distinct: HashSet<&Option<String>> = nodes.iter().collect();
                nodes.len() == 4 && nodes.iter().all(Option::is_some) && distinct.len() == 4
            }
        },
    )
    .await;
    let (code, out, err) = shoal_at(&api, &["scale", "deployment", "web", "--replicas", "5"]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        Duration::from_secs(30),
        "the fifth web pod pending, saying why",
        || {
            let api = api.clone();
            async move {
                pods(&api).await.iter().any(|p| {
                    p["metadata"]["labels"]["app"] == "web"
                        && node_of(p).is_none()
                        && p["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c["type"] == "PodScheduled"
                                    && c["message"].as_str().is_some_and(|m| {
                                        m.contains("pod anti-affinity conflict (4)")
                                    })
                            })
                        })
                })
            }
        },
    )
    .await;

    // Six api replicas spread over three zones: two in each, though zone a
    // has two hosts.
    let spread = "      topologySpreadConstraints:\n      - maxSkew: 1\n        topologyKey: topology.kubernetes.io/zone\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector: {matchLabels: {app: api}}\n";
    let (code, v) = api.apply(&placed_deployment("api", 6, spread)).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(30), "api pods two per zone", || {
        let api = api.clone();
        async move {
            let nodes = nodes_of_app(&api, "api").await;
            let mut per_zone = BTreeMap::new();
            for n in nodes.iter().flatten() {
                *per_zone.entry(zone(n)).or_insert(0) += 1;
            }
            nodes.len() == 6 && per_zone == BTreeMap::from([("a", 2), ("b", 2), ("c", 2)])
        }
    })
    .await;

    // A client that must share a zone with the cache follows it to zone b.
    let cache = "      nodeSelector: {topology.kubernetes.io/zone: b}\n";
    let (code, v) = api.apply(&placed_deployment("cache", 1, cache)).await;
    assert_eq!(code, 200, "{v}");
    let near = "      affinity:\n        podAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector: {matchLabels: {app: cache}}\n            topologyKey: topology.kubernetes.io/zone\n";
    eventually(Duration::from_secs(30), "the cache placed", || {
        let api = api.clone();
        async move { nodes_of_app(&api, "cache").await == [Some("aff2".to_string())] }
    })
    .await;
    let (code, v) = api.apply(&placed_deployment("client", 3, near)).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(30),
        "every client in the cache's zone",
        || {
            let api = api.clone();
            async move {
                let nodes = nodes_of_app(&api, "client").await;
                nodes.len() == 3 && nodes.iter().all(|n| n.as_deref() == Some("aff2"))
            }
        },
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_ranges_default_and_bound_every_new_pod() {
    let c = Cluster::start("lr", &["4"], |_| {}).await;
    let api = c.api();
    let (code, v) = api
        .apply(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bounds}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 300m, memory: 128Mi}\n    defaultRequest: {cpu: 150m}\n    max: {cpu: '1'}\n",
        )
        .await;
    assert_eq!(code, 200, "{v}");
    // A Deployment that says nothing of resources: its pods get the defaults.
    let plain = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: plain}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: plain}}\n  template:\n    metadata: {labels: {app: plain}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: main, image: host, command: [sleep, '3600']}\n";
    let (code, v) = api.apply(plain).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(30),
        "two pods with the defaults",
        || {
            let api = api.clone();
            async move {
                let ps: Vec<Value> = pods(&api)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "plain")
                    .collect();
                ps.len() == 2
                    && ps.iter().all(|p| {
                        let r = &p["spec"]["containers"][0]["resources"];
                        r["requests"]["cpu"] == "150m"
                            && r["limits"]["cpu"] == "300m"
                            && r["limits"]["memory"] == "128Mi"
                            && r["requests"]["memory"] == "128Mi"
                    })
            }
        },
    )
    .await;
    // A user's pod over the bound is refused, in Kubernetes' words.
    let big = "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - {name: main, image: host, command: [sleep, '3600'], resources: {limits: {cpu: '2'}}}\n";
    let (code, v) = api.apply(big).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string().contains(
            "pods \\\"big\\\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{v}"
    );
    // A Deployment over it makes no pod, and its ReplicaSet says why.
    let greedy = plain.replace("plain", "greedy").replace(
        "command: [sleep, '3600']}",
        "command: [sleep, '3600'], resources: {limits: {cpu: '2'}}}",
    );
    let (code, v) = api.apply(&greedy).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(30),
        "a FailedCreate event on the ReplicaSet",
        || {
            let api = api.clone();
            async move {
                let (_, ev) = api.get("/v1/namespaces/default/events").await;
                ev["items"].as_array().is_some_and(|items| {
                    items.iter().any(|e| {
                        e["reason"] == "FailedCreate"
                            && e["involvedObject"]["kind"] == "ReplicaSet"
                            && e["message"].as_str().is_some_and(|m| {
                                m.contains("maximum cpu usage per Container is 1, but limit is 2")
                            })
                    })
                })
            }
        },
    )
    .await;
    assert!(
        !pods(&api)
            .await
            .iter()
            .any(|p| p["metadata"]["labels"]["app"] == "greedy"),
        "no pod over the bound"
    );
    // So do a Job, a DaemonSet and a StatefulSet, each on its own object.
    let greedy_pod = "    spec:\n      restartPolicy: RESTART\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: main, image: host, command: [sleep, '3600'], resources: {limits: {cpu: '2'}}}\n";
    let workloads = [
        (
            "Job",
            format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: greedy-job}}\nspec:\n  template:\n{}",
                greedy_pod.replace("RESTART", "Never")
            ),
        ),
        (
            "DaemonSet",
            format!(
                "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: greedy-ds}}\nspec:\n  selector: {{matchLabels: {{app: greedy-ds}}}}\n  template:\n    metadata: {{labels: {{app: greedy-ds}}}}\n{}",
                greedy_pod.replace("RESTART", "Always")
            ),
        ),
        (
            "StatefulSet",
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: greedy-ss}}\nspec:\n  serviceName: greedy-ss\n  selector: {{matchLabels: {{app: greedy-ss}}}}\n  template:\n    metadata: {{labels: {{app: greedy-ss}}}}\n{}",
                greedy_pod.replace("RESTART", "Always")
            ),
        ),
    ];
    for (kind, manifest) in &workloads {
        let (code, v) = api.apply(manifest).await;
        assert_eq!(code, 200, "{kind}: {v}");
    }
    for (kind, _) in workloads {
        eventually(
            Duration::from_secs(30),
            &format!("a FailedCreate event on the {kind}"),
            || {
                let api = api.clone();
                async move {
                    let (_, ev) = api.get("/v1/namespaces/default/events").await;
                    ev["items"].as_array().is_some_and(|items| {
                        items.iter().any(|e| {
                            e["reason"] == "FailedCreate"
                                && e["type"] == "Warning"
                                && e["involvedObject"]["kind"] == kind
                                && e["message"].as_str().is_some_and(|m| {
                                    m.contains(
                                        "maximum cpu usage per Container is 1, but limit is 2",
                                    )
                                })
                        })
                    })
                }
            },
        )
        .await;
    }
    let (code, out, err) = shoal_at(&api, &["get", "limitranges"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bounds"), "{out}");
    c.stop().await;
}

fn priority_class(name: &str, value: i32, extra: &str) -> String {
    format!(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\nvalue: {value}\n{extra}"
    )
}

fn classed_pod(name: &str, class: &str, cpu: &str) -> String {
    pod(name, cpu).replace("spec:\n", &format!("spec:\n  priorityClassName: {class}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_higher_priority_pod_preempts_the_fewest_lower_ones() {
    let c = Cluster::start("pr", &["2"], |_| {}).await;
    let api = c.api();
    for class in [
        priority_class("low", 10, ""),
        priority_class("high", 1000, "description: serves users\n"),
        priority_class("polite", 2000, "preemptionPolicy: Never\n"),
    ] {
        let (code, v) = api.apply(&class).await;
        assert_eq!(code, 200, "{v}");
    }
    let (code, v) = api.apply(&priority_class("system-mine", 5, "")).await;
    assert_eq!(code, 422, "the system- prefix is reserved: {v}");
    // Four 500m pods fill the 2-core node.
    let filler = deployment("filler", 4, "1", "", "").replace(
        "      terminationGracePeriodSeconds: 1\n",
        "      terminationGracePeriodSeconds: 1\n      priorityClassName: low\n",
    );
    let filler = filler.replace("cpu: 100m", "cpu: 500m");
    let (code, v) = api.apply(&filler).await;
    assert_eq!(code, 200, "{v}");
    let bound_fillers = |api: Api| async move {
        pods(&api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "filler" && node_of(p).is_some())
            .collect::<Vec<Value>>()
    };
    eventually(Duration::from_secs(30), "four fillers bound", || {
        let api = api.clone();
        async move { bound_fillers(api).await.len() == 4 }
    })
    .await;
    let fillers = bound_fillers(api.clone()).await;
    assert!(
        fillers.iter().all(|p| p["spec"]["priority"] == 10),
        "admission set the class's value: {fillers:#?}"
    );

    // Unknown classes and foreign values are refused at creation.
    let (code, v) = api.apply(&classed_pod("lost", "nope", "100m")).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string()
            .contains("no PriorityClass with name nope was found"),
        "{v}"
    );

    // A class that never preempts waits, however high.
    let (code, v) = api.apply(&classed_pod("polite", "polite", "1")).await;
    assert_eq!(code, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, p) = api.get("/v1/namespaces/default/pods/polite").await;
    assert_eq!(node_of(&p), None, "a Never pod evicts nobody: {p:#}");
    assert_eq!(bound_fillers(api.clone()).await.len(), 4);

    // One that may preempt evicts two 500m fillers, no more, and runs.
    let (code, v) = api.apply(&classed_pod("urgent", "high", "1")).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(30), "urgent bound", || {
        let api = api.clone();
        async move {
            let (_, p) = api.get("/v1/namespaces/default/pods/urgent").await;
            node_of(&p) == Some("pr0")
        }
    })
    .await;
    let (_, p) = api.get("/v1/namespaces/default/pods/urgent").await;
    assert_eq!(p["spec"]["priority"], 1000, "{p:#}");
    let (_, ev) = api.get("/v1/namespaces/default/events").await;
    let preempted: Vec<&Value> = ev["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "Preempted")
        .collect();
    assert_eq!(preempted.len(), 2, "{preempted:#?}");
    assert!(
        preempted.iter().all(|e| e["message"]
            .as_str()
            .is_some_and(|m| m == "Preempted by default/urgent on node pr0")),
        "{preempted:#?}"
    );
    // The ReplicaSet makes its two pods again; they wait, and the polite
    // pod still waits too: nothing evicts for them.
    eventually(
        Duration::from_secs(30),
        "two fillers replaced, pending",
        || {
            let api = api.clone();
            async move {
                let all: Vec<Value> = pods(&api)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "filler")
                    .collect();
                all.len() == 4 && all.iter().filter(|p| node_of(p).is_some()).count() == 2
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bound_fillers(api.clone()).await.len(),
        2,
        "no further eviction"
    );
    let (_, p) = api.get("/v1/namespaces/default/pods/polite").await;
    assert_eq!(node_of(&p), None, "{p:#}");
    let (code, out, err) = shoal_at(&api, &["get", "priorityclasses"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("polite") && l.contains("2000") && l.ends_with("Never")),
        "{out}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_quota_caps_every_new_pod_and_room_comes_back() {
    let c = Cluster::start("rq", &["4"], |_| {}).await;
    let api = c.api();
    let (code, v) = api
        .apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute}\nspec:\n  hard: {pods: '3', requests.cpu: '1'}\n")
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "the quota counted", || {
        let api = api.clone();
        async move {
            let (_, q) = api
                .get("/v1/namespaces/default/resourcequotas/compute")
                .await;
            q["status"]["used"]["pods"] == "0"
        }
    })
    .await;
    // Four 300m replicas: three fit (900m of 1), the fourth is refused.
    let capped = deployment("capped", 4, "1", "", "").replace("cpu: 100m", "cpu: 300m");
    let (code, v) = api.apply(&capped).await;
    assert_eq!(code, 200, "{v}");
    let capped_pods = |api: Api| async move {
        pods(&api)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "capped")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ev) = api.get("/v1/namespaces/default/events").await;
        let failed: Vec<Value> = ev["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "FailedCreate")
            .cloned()
            .collect();
        if failed.iter().any(|e| {
            e["message"].as_str().is_some_and(|m| {
                m.contains("exceeded quota: compute, requested: pods=1,requests.cpu=300m, used: pods=3,requests.cpu=900m, limited: pods=3,requests.cpu=1")
            })
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no FailedCreate naming the quota: {failed:#?}; pods: {}",
            capped_pods(api.clone()).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        capped_pods(api.clone()).await,
        3,
        "never more than the quota"
    );
    // A user's pod is refused in Kubernetes' words, by count or by what it
    // leaves unsaid.
    let (code, v) = api.apply(&pod("extra", "100m")).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string().contains(
            "pods \\\"extra\\\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=3, limited: pods=3"
        ),
        "{v}"
    );
    let silent = "apiVersion: v1\nkind: Pod\nmetadata: {name: silent}\nspec:\n  containers:\n  - {name: main, image: host, command: [sleep, '3600']}\n";
    let (code, v) = api.apply(silent).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v.to_string()
            .contains("failed quota: compute: must specify requests.cpu for: main"),
        "{v}"
    );
    // Scaled down, the recount gives the room back.
    let (code, v) = api
        .apply(&capped.replace("replicas: 4", "replicas: 2"))
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(30), "room for one more pod", || {
        let api = api.clone();
        async move {
            let (code, _) = api.apply(&pod("extra", "100m")).await;
            code == 200
        }
    })
    .await;
    let (_, q) = api
        .get("/v1/namespaces/default/resourcequotas/compute")
        .await;
    assert_eq!(q["status"]["used"]["pods"], "3", "{q:#}");
    assert_eq!(q["status"]["used"]["requests.cpu"], "700m", "{q:#}");
    let (code, out, err) = shoal_at(&api, &["get", "quota"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pods: 3/3"), "{out}");
    c.stop().await;
}
