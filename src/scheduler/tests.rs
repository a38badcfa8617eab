use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn object(v: Value) -> Object {
    serde_json::from_value(v).expect("a valid object")
}

fn node_json(name: &str, cpu: &str, memory: &str, pods: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}},
    })
}

fn pod_json(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "main",
            "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": memory}},
        }]},
    })
}

#[test]
fn node_fit_reads_allocatable_labels_and_cordon() {
    let mut v = node_json("n1", "1900m", "8000Ki", "110");
    let fit = node_fit(&object(v.clone()), true).expect("a node");
    assert_eq!(fit.name, "n1");
    assert_eq!(fit.cpu_millis, 1900);
    assert_eq!(fit.memory_bytes, 8000 * 1024);
    assert_eq!(fit.max_pods, 110);
    assert_eq!(fit.labels["kubernetes.io/hostname"], "n1");
    assert!(fit.alive && !fit.unschedulable);
    v["spec"]["unschedulable"] = json!(true);
    v["status"]["allocatable"]["cpu"] = json!(4);
    v["status"]["allocatable"]["memory"] = json!("lots");
    let fit = node_fit(&object(v.clone()), false).expect("a node");
    assert!(fit.unschedulable && !fit.alive);
    assert_eq!(fit.cpu_millis, 4000, "a bare number is a quantity too");
    assert_eq!(fit.memory_bytes, 0, "a malformed quantity fits nothing");
    v["status"] = json!({});
    assert_eq!(node_fit(&object(v), true), None, "not reported yet");
    assert_eq!(node_fit(&object(pod_json("p", "1", "1Gi")), true), None);
}

#[test]
fn init_containers_count_as_kubernetes_counts_them() {
    let pod = |init: Value, app: Value| {
        let needs = pod_needs(&object(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"initContainers": init, "containers": app},
        })))
        .expect("a pod");
        (needs.cpu_millis, needs.memory_bytes >> 20, needs.host_ports)
    };
    let c = |cpu: &str, mem: &str| json!({"name": "x", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": mem}}});
    let sidecar = |cpu: &str, mem: &str| {
        let mut v = c(cpu, mem);
        v["restartPolicy"] = json!("Always");
        v
    };
    // A big init container runs alone: its CPU is the peak, the app's memory is.
    assert_eq!(
        pod(json!([c("2", "10Mi")]), json!([c("500m", "100Mi")])),
        (2000, 100, vec![])
    );
    // Init containers run one at a time: the largest, not the sum.
    assert_eq!(
        pod(
            json!([c("1", "1Mi"), c("1500m", "1Mi")]),
            json!([c("100m", "1Mi")])
        ),
        (1500, 1, vec![])
    );
    // A sidecar runs beside later init containers and beside the app.
    let mut with_port = sidecar("300m", "20Mi");
    with_port["ports"] = json!([{"containerPort": 9, "hostPort": 9090}]);
    assert_eq!(
        pod(
            json!([with_port, c("1", "1Mi")]),
            json!([c("500m", "100Mi")])
        ),
        (1300, 120, vec![9090])
    );
    // A sidecar before nothing else still counts beside the app.
    assert_eq!(
        pod(json!([sidecar("250m", "8Mi")]), json!([c("250m", "8Mi")])),
        (500, 16, vec![])
    );
}

#[test]
fn pod_needs_sums_containers_and_falls_back_to_limits() {
    let v = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-me", "uid": "u0"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1", "controller": true},
            ],
        },
        "spec": {
            "nodeSelector": {"disk": "ssd"},
            "containers": [
                {"name": "a", "image": "i",
                 "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]},
                {"name": "b", "image": "i", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "c", "image": "i"},
            ],
        },
    });
    let needs = pod_needs(&object(v)).expect("a pod");
    assert_eq!(needs.key, ObjectKey::new(Kind::Pod, "shop", "web-1"));
    assert_eq!(needs.cpu_millis, 750);
    assert_eq!(needs.memory_bytes, (64 << 20) + (1 << 30));
    assert_eq!(needs.host_ports, vec![8080]);
    // In the host's network a container port takes the host's port.
    let host = pod_needs(&object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h"},
        "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "i",
                 "ports": [{"containerPort": 9100}, {"containerPort": 81, "hostPort": 81}]}]},
    })))
    .expect("a pod");
    assert_eq!(host.host_ports, vec![9100, 81]);
    assert_eq!(
        needs.node_selector,
        BTreeMap::from([("disk".to_string(), "ssd".to_string())])
    );
    assert_eq!(needs.group.as_deref(), Some("web-abc"));

    let none = pod_needs(&object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "i"}]},
    })))
    .expect("a pod");
    assert_eq!(
        (none.cpu_millis, none.memory_bytes, none.group),
        (0, 0, None)
    );
    assert_eq!(none.key.namespace, "default");
    assert_eq!(pod_needs(&object(pod_json("bad", "lots", "1Gi"))), None);
    assert_eq!(pod_needs(&object(node_json("n", "1", "1Gi", "1"))), None);
}

#[test]
fn terminal_phases() {
    let mut v = pod_json("p", "1", "1Gi");
    assert!(!is_terminal(&object(v.clone())));
    for (phase, terminal) in [
        ("Pending", false),
        ("Running", false),
        ("Succeeded", true),
        ("Failed", true),
    ] {
        v["status"] = json!({"phase": phase});
        assert_eq!(is_terminal(&object(v.clone())), terminal, "{phase}");
    }
}

#[test]
fn unschedulable_writes_only_on_a_new_message() {
    let mut v = pod_json("p", "1", "1Gi");
    v["metadata"]["uid"] = json!("uid-1");
    let key = ObjectKey::new(Kind::Pod, "default", "p");
    let w = unschedulable(
        &object(v.clone()),
        key.clone(),
        "m1",
        "T1",
        Some("h"),
        "p.1".into(),
    )
    .expect("first time writes");
    assert_eq!(w.ops.len(), 2);
    let Op::SetStatus { status, uid, .. } = &w.ops[0] else {
        panic!("status first: {:?}", w.ops[0]);
    };
    assert_eq!(uid.as_deref(), Some("uid-1"));
    let status: Value = serde_json::from_slice(status).expect("json");
    assert_eq!(status["phase"], "Pending");
    assert_eq!(
        status["conditions"][0],
        json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
               "message": "m1", "lastTransitionTime": "T1"})
    );
    let Op::Put {
        key: ekey,
        object: ev,
        ..
    } = &w.ops[1]
    else {
        panic!("then the event: {:?}", w.ops[1]);
    };
    assert_eq!(ekey, &ObjectKey::new(Kind::Event, "default", "p.1"));
    let ev: Value = serde_json::from_slice(ev).expect("json");
    assert_eq!(ev["reason"], "FailedScheduling");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["involvedObject"]["uid"], "uid-1");
    assert_eq!(
        ev["source"],
        json!({"component": "shoal-scheduler", "host": "h"})
    );

    v["status"] = status;
    let stored = object(v.clone());
    assert!(
        unschedulable(&stored, key.clone(), "m1", "T2", None, "p.2".into()).is_none(),
        "the same message writes nothing"
    );
    let w = unschedulable(&stored, key.clone(), "m2", "T2", None, "p.3".into())
        .expect("a new message writes");
    assert_eq!(w.ops.len(), 2);
    let Op::SetStatus { status, .. } = &w.ops[0] else {
        panic!("status");
    };
    let status: Value = serde_json::from_slice(status).expect("json");
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"], "T1",
        "still False since T1"
    );
    assert_eq!(status["conditions"].as_array().map(Vec::len), Some(1));

    // Same message but the phase was lost: fix the status, no second event.
    v["status"]["phase"] = json!("Unknown");
    let w = unschedulable(&object(v), key, "m1", "T3", None, "p.4".into()).expect("status");
    assert_eq!(w.ops.len(), 1);
    assert!(w.event.is_none());
}

#[test]
fn binding_sets_node_name_and_flips_pod_scheduled() {
    let mut v = pod_json("p", "1", "1Gi");
    v["metadata"]["resourceVersion"] = json!("42");
    v["status"] = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m", "lastTransitionTime": "T0"}
    ]});
    let key = ObjectKey::new(Kind::Pod, "default", "p");
    let w = binding(object(v), key.clone(), "n7", "T1", Vec::new()).expect("a binding");
    assert!(w.binds);
    let Op::Put {
        key: k,
        object,
        precondition,
    } = &w.ops[0]
    else {
        panic!("a put");
    };
    assert_eq!((k, precondition), (&key, &Precondition::Version(42)));
    let o: Value = serde_json::from_slice(object).expect("json");
    assert_eq!(o["spec"]["nodeName"], "n7");
    assert_eq!(
        o["status"]["conditions"][0],
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": "T1"})
    );
}

#[allow(dead_code)]
fn the_pass_future_is_send(store: &Store) {
    fn send<T: Send>(_: T) {}
    send(schedule_pending(store, &|_| true, Strategy::Pack, 1));
}

async fn put(store: &Store, objects: Vec<Value>) {
    let ops = objects
        .into_iter()
        .map(|v| {
            let o = object(v);
            Op::Put {
                key: o.key().expect("a key"),
                object: serde_json::to_vec(&o).expect("json"),
                precondition: Precondition::None,
            }
        })
        .collect();
    store.write(Command { ops }).await.expect("write");
}

fn failed_events(store: &Store) -> Vec<Object> {
    let (events, _) = store.list(Kind::Event, None).expect("list");
    events
        .into_iter()
        .filter(|e| e.body.get("reason") == Some(&json!("FailedScheduling")))
        .collect()
}

fn get_pod(store: &Store, name: &str) -> Object {
    store
        .get(&ObjectKey::new(Kind::Pod, "default", name))
        .expect("get")
        .expect("exists")
}

/// A one-node cluster of just the swarm and the store: a full node would
/// also run the controller manager, whose own scheduler pass (with
/// membership's view, in which the test's nodes are down) would race this
/// test's passes.
async fn bare_store(dir: &std::path::Path) -> (crate::net::Net, Store) {
    let (net, store, me) = crate::store::testing::open(dir, "sched").await;
    crate::store::testing::lead_alone(&store, me).await;
    (net, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_binds_marks_and_stays_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (net, store) = bare_store(dir.path()).await;
    // A node object for a host that membership says is down.
    put(&store, vec![node_json("sched", "64", "64Gi", "110")]).await;
    let alive = |n: &str| n != "sched";

    put(
        &store,
        vec![
            node_json("a", "2", "4Gi", "110"),
            node_json("b", "1", "4Gi", "110"),
            pod_json("p1", "500m", "1Gi"),
            pod_json("p2", "500m", "1Gi"),
            pod_json("big", "3", "1Gi"),
        ],
    )
    .await;
    let r = schedule_pending(&store, &alive, Strategy::Pack, 2)
        .await
        .expect("pass");
    assert_eq!(
        r,
        PassReport {
            placed: 2,
            unschedulable: 1,
            conflicts: 0,
            preempted: 0,
        }
    );
    for p in ["p1", "p2"] {
        assert_eq!(
            bound_node(&get_pod(&store, p)),
            Some("b"),
            "Pack fills b first"
        );
    }
    let big = get_pod(&store, "big");
    let message = "0/3 nodes: insufficient cpu (2), node down (1)";
    assert_eq!(big.body["status"]["phase"], "Pending");
    assert_eq!(big.body["status"]["conditions"][0]["message"], message);
    let events = failed_events(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body["message"], message);
    assert_eq!(events[0].body["source"]["host"], "sched");

    // Nothing changed: nothing is written.
    let r = schedule_pending(&store, &alive, Strategy::Pack, 2)
        .await
        .expect("pass");
    assert_eq!((r.placed, r.unschedulable), (0, 1));
    assert_eq!(
        get_pod(&store, "big").resource_version(),
        big.resource_version(),
        "an unchanged situation writes nothing"
    );
    assert_eq!(failed_events(&store).len(), 1);

    // Room appears: the pod is bound and its condition flips.
    put(&store, vec![node_json("c", "4", "8Gi", "110")]).await;
    let r = schedule_pending(&store, &alive, Strategy::Pack, 2)
        .await
        .expect("pass");
    assert_eq!((r.placed, r.unschedulable), (1, 0));
    let big = get_pod(&store, "big");
    assert_eq!(bound_node(&big), Some("c"));
    assert_eq!(big.body["status"]["conditions"][0]["status"], "True");
    assert_eq!(failed_events(&store).len(), 1);

    // A stale binding is refused; the rest of its batch is written.
    put(
        &store,
        vec![pod_json("p3", "100m", "1Mi"), pod_json("p4", "100m", "1Mi")],
    )
    .await;
    let p3 = get_pod(&store, "p3");
    let p4 = get_pod(&store, "p4");
    let mut stale = p3.clone();
    stale.metadata.resource_version = Some((p3.resource_version() - 1).to_string());
    let items = vec![
        binding(stale, p3.key().expect("key"), "a", "T", Vec::new()).expect("binding"),
        binding(p4.clone(), p4.key().expect("key"), "a", "T", Vec::new()).expect("binding"),
    ];
    let w = write_batch(store.clone(), items).await.expect("write");
    assert_eq!((w.placed, w.conflicts), (1, 1));
    assert_eq!(bound_node(&get_pod(&store, "p3")), None);
    assert_eq!(bound_node(&get_pod(&store, "p4")), Some("a"));
    store.shutdown().await;
    net.shutdown().await;
}
