//! Persistent volume claims on three-node in-process clusters. With the
//! process runtime (placement only: it refuses to mount volumes): a claim
//! binds on its first pod's node and pins the pod's replacement there, a
//! claim that fits nowhere leaves its pod Pending with the reason, deleting
//! a claim in use waits for its pods (pvc-protection), `Delete` deletes the
//! volume and `Retain` keeps it `Released`. With the real Docker engine:
//! the replacement reads what the first pod wrote, `Delete` removes the
//! directory on the node, `Retain` keeps the data.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;
use shoal::config::Config;

const GI: u64 = 1 << 30;

async fn docker_cluster(prefix: &str) -> (Cluster, String) {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start(prefix, &["2", "2", "2"], move |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        c.agent.volume_capacity = Some(2 * GI);
    })
    .await;
    (c, image)
}

/// Process-runtime nodes: pods are placed and claims bound, but no
/// container mounts a volume there.
async fn process_cluster(prefix: &str) -> Cluster {
    Cluster::start(prefix, &["2", "2", "2"], move |c| {
        c.agent.volume_capacity = Some(2 * GI);
    })
    .await
}

fn claim(name: &str, size: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  storageClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: {size}\n"
    )
}

/// A container that writes `/data/hello` once (a fresh random uuid, so a
/// replacement that found no file would write something else) and sleeps.
fn pod_spec(image: &str, claim: &str, indent: &str) -> String {
    let spec = format!(
        "terminationGracePeriodSeconds: 1\ncontainers:\n- name: main\n  image: {image}\n  command: [\"sh\", \"-c\", \"[ -f /data/hello ] || cat /proc/sys/kernel/random/uuid > /data/hello; sleep 3600\"]\n  volumeMounts:\n  - {{name: data, mountPath: /data}}\nvolumes:\n- name: data\n  persistentVolumeClaim: {{claimName: {claim}}}\n"
    );
    spec.lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn deployment(name: &str, image: &str, claim: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n{}",
        pod_spec(image, claim, "      ")
    )
}

fn pod(name: &str, image: &str, claim: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{}",
        pod_spec(image, claim, "  ")
    )
}

const KEEP_CLASS: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: keep\nprovisioner: shoal.io/local\nreclaimPolicy: Retain\n";

async fn apply(api: &Api, manifest: &str) {
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "apply: {v}\n{manifest}");
}

/// A consistent read: writes may have gone through another node.
async fn get(api: &Api, path: &str) -> (u16, Value) {
    api.get(path).await
}

async fn delete(api: &Api, path: &str) {
    let (code, v) = api.send(reqwest::Method::DELETE, path, None).await;
    assert_eq!(code, 200, "DELETE {path}: {v}");
}

/// Waits for `pred` on the object at `path` (404 reads as null).
async fn wait_for(
    api: &Api,
    path: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, v) = get(api, path).await;
        let v = if code == 404 { Value::Null } else { v };
        if pred(&v) {
            return v;
        }
        if Instant::now() > deadline {
            let (_, events) = get(api, "/v1/namespaces/default/events").await;
            panic!(
                "{path}: timed out after {secs}s waiting for {what}; last: {v:#}\nevents: {:#}",
                events["items"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object()))
}

fn bound(p: &Value) -> bool {
    p["spec"]["nodeName"].is_string()
}

/// The one pod of a Deployment for which `pred` holds and whose uid is not
/// `except` (replacements may take the same name: the uid tells them apart).
async fn pod_of(api: &Api, app: &str, except: Option<&str>, pred: fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = pods(api).await.into_iter().find(|p| {
            p["metadata"]["labels"]["app"] == app
                && p["metadata"]["uid"].as_str() != except
                && pred(p)
        });
        if let Some(p) = found {
            return p;
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = pods(api)
                .await
                .iter()
                .map(|p| {
                    format!(
                        "{} on {}: {} {}",
                        p["metadata"]["name"],
                        p["spec"]["nodeName"],
                        p["status"]["conditions"],
                        p["status"]["containerStatuses"]
                    )
                })
                .collect();
            panic!("no such pod of {app} (uid other than {except:?}): {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

/// `cat /data/hello` inside the pod's container.
async fn read_hello(c: &Cluster, p: &Value) -> String {
    let node = p["spec"]["nodeName"].as_str().expect("bound");
    let n = c
        .nodes
        .iter()
        .flatten()
        .find(|n| n.info.name == node)
        .expect("the pod's node runs");
    let list = n
        .runtime
        .list(&std::collections::BTreeMap::from([(
            shoal::runtime::LABEL_POD_UID.to_string(),
            uid(p),
        )]))
        .await
        .expect("containers");
    let id = &list.first().expect("a container").id;
    cat_hello(n, id).await
}

/// The directory of a local volume on the node named `node`.
fn volume_dir(c: &Cluster, node: &str, volume: &str) -> PathBuf {
    let i = c
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.info.name == node))
        .expect("a node of the cluster");
    c.dir(i).join("data").join("claims").join(volume)
}

/// The claim's bound volume and that volume's node.
async fn binding(api: &Api, claim: &str) -> (String, String) {
    let pvc = wait_for(
        api,
        &format!("/v1/namespaces/default/persistentvolumeclaims/{claim}"),
        20,
        "Bound",
        |v| v["status"]["phase"] == "Bound",
    )
    .await;
    let volume = pvc["spec"]["volumeName"]
        .as_str()
        .expect("volumeName")
        .to_string();
    let (_, pv) = get(api, &format!("/v1/persistentvolumes/{volume}")).await;
    let node = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"]
        [0]["values"][0]
        .as_str()
        .unwrap_or_else(|| panic!("a pinned volume: {pv:#}"))
        .to_string();
    (volume, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_bind_on_first_use_pin_their_pods_and_wait_for_them() {
    let c = process_cluster("pvp").await;
    let api = c.api();
    apply(&api, &claim("data", "1Gi", None)).await;
    // WaitForFirstConsumer: no pod, no binding.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, pvc) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    assert!(pvc["spec"]["volumeName"].is_null(), "{pvc:#}");
    let (_, class) = get(&api, "/v1/storageclasses/local").await;
    assert_eq!(class["provisioner"], "shoal.io/local", "{class:#}");
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );

    apply(&api, &deployment("web", "host", "data")).await;
    let first = pod_of(&api, "web", None, bound).await;
    let (volume, node) = binding(&api, "data").await;
    assert_eq!(first["spec"]["nodeName"], node.as_str());
    let (_, pvc) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    assert_eq!(
        volume,
        format!("pvc-{}", pvc["metadata"]["uid"].as_str().unwrap_or(""))
    );
    assert_eq!(pvc["spec"]["storageClassName"], "local");
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
    // Re-applying the claim as written keeps its binding.
    apply(&api, &claim("data", "1Gi", None)).await;
    let (_, pvc) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    assert_eq!(pvc["spec"]["volumeName"], volume.as_str(), "{pvc:#}");

    // `get pvc`, `get pv` and `get storageclass` in kubectl's columns.
    let addr = c.nodes[0]
        .as_ref()
        .expect("node 0 runs")
        .api_addr
        .to_string();
    let (code, out, err) = shoal_cli(&addr, &["get", "pvc"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "AGE"
        ],
        "{out}"
    );
    assert!(
        lines[1].contains("Bound") && lines[1].contains(&volume) && lines[1].contains("RWO"),
        "{out}"
    );
    let (code, out, err) = shoal_cli(&addr, &["get", "pv"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("RECLAIM POLICY")
            && out.contains("Delete")
            && out.contains("default/data")
            && out.contains(&node),
        "{out}"
    );
    let (code, out, err) = shoal_cli(&addr, &["get", "storageclass"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("local (default)") && out.contains("WaitForFirstConsumer"),
        "{out}"
    );

    // The replacement of a deleted pod goes to the volume's node.
    let name = first["metadata"]["name"].as_str().unwrap_or("");
    delete(&api, &format!("/v1/namespaces/default/pods/{name}")).await;
    let second = pod_of(&api, "web", Some(&uid(&first)), bound).await;
    assert_eq!(second["spec"]["nodeName"], node.as_str(), "pinned");

    // A claim that fits nowhere (2Gi per node, 1Gi of them taken on one).
    apply(&api, &claim("huge", "3Gi", None)).await;
    apply(&api, &pod("big", "host", "huge")).await;
    let p = wait_for(
        &api,
        "/v1/namespaces/default/pods/big",
        20,
        "Unschedulable",
        |p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
            })
        },
    )
    .await;
    let msg = p["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap_or("");
    assert_eq!(msg, "0/3 nodes: insufficient volume capacity (3)", "{p:#}");
    let (_, huge) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/huge").await;
    assert!(huge["spec"]["volumeName"].is_null(), "not bound: {huge:#}");
    // `shoal delete -f` marks a claim in use too (big, Pending, uses it).
    let (code, v) = api
        .send(
            reqwest::Method::POST,
            "/v1/delete",
            Some(claim("huge", "3Gi", None).into_bytes()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, huge) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/huge").await;
    assert_eq!(code, 200, "kept while a pod names it: {huge:#}\n{v}");
    assert!(
        huge["metadata"]["deletionTimestamp"].is_string(),
        "{huge:#}\n{v}"
    );

    // pvc-protection: the claim waits while a pod uses it.
    delete(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, pvc) = get(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    assert_eq!(code, 200, "still there while used: {pvc:#}");
    assert!(pvc["metadata"]["deletionTimestamp"].is_string(), "{pvc:#}");
    let (_, out, _) = shoal_cli(&addr, &["get", "pvc", "data"]).await;
    assert!(out.contains("Terminating"), "{out}");
    // Its pods go: the claim goes, and its volume (Delete).
    delete(&api, "/v1/namespaces/default/deployments/web").await;
    wait_for(
        &api,
        "/v1/namespaces/default/persistentvolumeclaims/data",
        60,
        "the claim deleted",
        Value::is_null,
    )
    .await;
    wait_for(
        &api,
        &format!("/v1/persistentvolumes/{volume}"),
        30,
        "the volume deleted",
        Value::is_null,
    )
    .await;

    // Retain: the volume outlives its claim, Released.
    apply(&api, KEEP_CLASS).await;
    apply(&api, &claim("kept", "1Gi", Some("keep"))).await;
    apply(&api, &pod("keeper", "host", "kept")).await;
    let (kept, _) = binding(&api, "kept").await;
    delete(&api, "/v1/namespaces/default/pods/keeper").await;
    delete(&api, "/v1/namespaces/default/persistentvolumeclaims/kept").await;
    wait_for(
        &api,
        "/v1/namespaces/default/persistentvolumeclaims/kept",
        60,
        "the claim deleted",
        Value::is_null,
    )
    .await;
    let pv = wait_for(
        &api,
        &format!("/v1/persistentvolumes/{kept}"),
        30,
        "Released",
        |v| v["status"]["phase"] == "Released",
    )
    .await;
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");

    // A pod that names its node binds its claim there.
    apply(&api, &claim("byhand", "1Gi", None)).await;
    let by_hand =
        pod("byhand", "host", "byhand").replacen("spec:\n", "spec:\n  nodeName: pvp2\n", 1);
    apply(&api, &by_hand).await;
    let (_, node) = binding(&api, "byhand").await;
    assert_eq!(node, "pvp2");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claims_data_outlives_its_pods_on_its_node() {
    let (c, image) = docker_cluster("pvd").await;
    let api = c.api();
    apply(&api, &claim("data", "1Gi", None)).await;
    apply(&api, &deployment("web", &image, "data")).await;
    let first = pod_of(&api, "web", None, running).await;
    let written = read_hello(&c, &first).await;
    assert_eq!(written.len(), 36, "the pod wrote a uuid: {written:?}");
    let (volume, node) = binding(&api, "data").await;
    let dir = volume_dir(&c, &node, &volume);
    let on_disk = std::fs::read_to_string(dir.join("hello")).expect("the data is on the node");
    assert_eq!(on_disk.trim(), written);

    // The replacement lands on the same node and reads what the first wrote.
    let name = first["metadata"]["name"].as_str().unwrap_or("");
    delete(&api, &format!("/v1/namespaces/default/pods/{name}")).await;
    let second = pod_of(&api, "web", Some(&uid(&first)), running).await;
    assert_eq!(second["spec"]["nodeName"], node.as_str(), "pinned");
    assert_eq!(
        read_hello(&c, &second).await,
        written,
        "the data outlived the pod"
    );

    // Claim and pods deleted: the volume (Delete) and its directory go.
    delete(&api, "/v1/namespaces/default/persistentvolumeclaims/data").await;
    delete(&api, "/v1/namespaces/default/deployments/web").await;
    wait_for(
        &api,
        &format!("/v1/persistentvolumes/{volume}"),
        90,
        "the volume deleted",
        Value::is_null,
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the volume's directory removed",
        || {
            let gone = !dir.exists();
            async move { gone }
        },
    )
    .await;

    // Retain: the data stays on the node after its claim.
    apply(&api, KEEP_CLASS).await;
    apply(&api, &claim("kept", "1Gi", Some("keep"))).await;
    apply(&api, &pod("keeper", &image, "kept")).await;
    let p = wait_for(
        &api,
        "/v1/namespaces/default/pods/keeper",
        90,
        "running",
        running,
    )
    .await;
    let written = read_hello(&c, &p).await;
    let (kept, node) = binding(&api, "kept").await;
    delete(&api, "/v1/namespaces/default/pods/keeper").await;
    delete(&api, "/v1/namespaces/default/persistentvolumeclaims/kept").await;
    wait_for(
        &api,
        &format!("/v1/persistentvolumes/{kept}"),
        60,
        "Released",
        |v| v["status"]["phase"] == "Released",
    )
    .await;
    // Give the node's sweep time to (wrongly) act, then look at the data.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = volume_dir(&c, &node, &kept);
    let kept_data = std::fs::read_to_string(dir.join("hello")).expect("the data is kept");
    assert_eq!(kept_data.trim(), written);
    c.stop().await;
}

fn restartable(c: &mut Config) {
    c.dev = true;
    c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
    c.agent.volume_capacity = Some(2 * GI);
}

/// The running container of the pod named `name` on `node`, once there is
/// one (after a restart the stored status still says Running before the
/// agent has made the new container).
async fn container_of(node: &shoal::node::Node, api: &Api, name: &str) -> String {
    let p = wait_for(
        api,
        &format!("/v1/namespaces/default/pods/{name}?consistent=false"),
        60,
        "running",
        running,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = node
            .runtime
            .list(&std::collections::BTreeMap::from([(
                shoal::runtime::LABEL_POD_UID.to_string(),
                uid(&p),
            )]))
            .await
            .expect("containers");
        if let Some(c) = list
            .iter()
            .find(|c| matches!(c.state, shoal::runtime::ContainerState::Running))
        {
            return c.id.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no running container of {name}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn cat_hello(node: &shoal::node::Node, id: &str) -> String {
    let cmd = ["cat".to_string(), "/data/hello".to_string()];
    let out = node
        .runtime
        .exec(id, &cmd, Duration::from_secs(10))
        .await
        .expect("exec");
    let text = String::from_utf8_lossy(&out.output).trim().to_string();
    assert_eq!(out.exit_code, 0, "{text}");
    text
}

/// A daemon restart whose containers went with it (as after a host reboot)
/// finds the claim's directory as it was: the pod comes back with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claims_data_survives_a_daemon_restart() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path(), "pvr", restartable).await;
    assert!(node.wait_ready(Duration::from_secs(20)).await);
    let api = Api::new(node.api_addr);
    apply(&api, &claim("data", "1Gi", None)).await;
    apply(&api, &pod("keeper", &image, "data")).await;
    let first = container_of(&node, &api, "keeper").await;
    let written = cat_hello(&node, &first).await;
    assert_eq!(written.len(), 36, "the pod wrote a uuid: {written:?}");
    let (volume, _) = binding(&api, "data").await;

    let (rt, name) = (node.runtime.clone(), node.info.name.clone());
    node.shutdown().await;
    remove_containers_of(&rt, &name).await;
    let on_disk = dir
        .path()
        .join("data")
        .join("claims")
        .join(&volume)
        .join("hello");
    assert_eq!(
        std::fs::read_to_string(&on_disk)
            .expect("kept on disk")
            .trim(),
        written
    );

    let node = restart_node(dir.path(), "pvr", restartable).await;
    assert!(node.wait_ready(Duration::from_secs(20)).await);
    let api = Api::new(node.api_addr);
    let second = container_of(&node, &api, "keeper").await;
    assert_ne!(second, first, "a new container");
    assert_eq!(cat_hello(&node, &second).await, written, "the same data");
    let (rt, name) = (node.runtime.clone(), node.info.name.clone());
    node.shutdown().await;
    remove_containers_of(&rt, &name).await;
}
