//! Volumes made by hand and claim protection on three-node in-process
//! clusters. With the real Docker engine: a `local` PersistentVolume bound
//! by a claim's `volumeName` pins the claim's pod to the volume's node,
//! which reads and writes the author's directory; the claim carries the
//! `kubernetes.io/pvc-protection` finalizer and its deletion waits for its
//! pod; `Retain` keeps the volume `Released` with the data, and a claim of
//! an explicit class binds the volume of that class, which `Delete` then
//! deletes. A `shoal.io/docker` class's parameters reach the engine's
//! volume driver (the `local` driver binding a directory: NFS cannot run on
//! the test machine), its volume is not pinned, and `Delete` removes the
//! engine's volume. With the process runtime (placement only): deleting a
//! namespace marks its protected claim, says so in the namespace's
//! conditions, and finishes once the protection clears.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;

const PROTECTION: &str = "kubernetes.io/pvc-protection";

async fn apply(api: &Api, manifest: &str) {
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "apply: {v}\n{manifest}");
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
        let (code, v) = api.get(path).await;
        let v = if code == 404 { Value::Null } else { v };
        if pred(&v) {
            return v;
        }
        if Instant::now() > deadline {
            let (_, events) = api.get("/v1/namespaces/default/events").await;
            panic!(
                "{path}: timed out after {secs}s waiting for {what}; last: {v:#}\nevents: {:#}",
                events["items"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn protected(v: &Value) -> bool {
    v["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == PROTECTION))
}

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object()))
}

/// A volume made by hand: a `local` directory on `node`, or a `hostPath`
/// when `node` is `None`.
fn hand_volume(name: &str, path: &str, node: Option<&str>, class: &str, policy: &str) -> String {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!("  storageClassName: {class}\n")
    };
    let source = match node {
        Some(n) => format!(
            "  local: {{path: {path:?}}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: kubernetes.io/hostname, operator: In, values: [{n}]}}\n"
        ),
        None => format!("  hostPath: {{path: {path:?}, type: Directory}}\n"),
    };
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: {policy}\n{class}{source}"
    )
}

fn claim(name: &str, class: &str, volume: Option<&str>) -> String {
    let volume = volume
        .map(|v| format!("  volumeName: {v}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n  storageClassName: {class:?}\n{volume}  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 500Mi\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_made_by_hand_binds_pins_and_is_reclaimed_by_its_policy() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("t44s", &["2", "2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
    })
    .await;
    let api = c.api();
    let dir = pod_writable_tempdir();
    let seed = format!("seed-{}", std::process::id());
    std::fs::write(dir.path().join("seed"), &seed).expect("seed the author's directory");
    let path = dir.path().to_string_lossy().into_owned();

    apply(
        &api,
        &hand_volume("t44-hand", &path, Some("t44s1"), "", "Retain"),
    )
    .await;
    wait_for(
        &api,
        "/v1/persistentvolumes/t44-hand",
        20,
        "Available",
        |v| v["status"]["phase"] == "Available",
    )
    .await;
    apply(&api, &claim("hand", "", Some("t44-hand"))).await;
    let pvc_path = "/v1/namespaces/default/persistentvolumeclaims/hand";
    let pvc = wait_for(&api, pvc_path, 20, "Bound and protected", |v| {
        v["status"]["phase"] == "Bound" && protected(v)
    })
    .await;
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi", "{pvc:#}");
    let (_, pv) = api.get("/v1/persistentvolumes/t44-hand").await;
    assert_eq!(pv["status"]["phase"], "Bound", "{pv:#}");
    assert_eq!(pv["spec"]["claimRef"]["name"], "hand");
    assert_eq!(pv["spec"]["claimRef"]["uid"], pvc["metadata"]["uid"]);

    // The pod goes to the volume's node and uses the author's directory.
    apply(
        &api,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: user\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"cat /data/seed > /data/copy; sleep 3600\"]\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: hand}}\n"
        ),
    )
    .await;
    let pod_path = "/v1/namespaces/default/pods/user";
    let p = wait_for(&api, pod_path, 90, "running", running).await;
    assert_eq!(
        p["spec"]["nodeName"], "t44s1",
        "pinned by the volume's affinity"
    );
    eventually(
        Duration::from_secs(20),
        "the pod's copy of the seed",
        || {
            let copy = std::fs::read_to_string(dir.path().join("copy")).unwrap_or_default();
            let want = seed.clone();
            async move { copy == want }
        },
    )
    .await;

    // pvc-protection: deleting the claim marks it while the pod runs.
    delete(&api, pvc_path).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, pvc) = api.get(pvc_path).await;
    assert_eq!(code, 200, "kept while its pod runs: {pvc:#}");
    assert!(pvc["metadata"]["deletionTimestamp"].is_string(), "{pvc:#}");
    assert!(protected(&pvc), "the finalizer stays while in use: {pvc:#}");
    delete(&api, pod_path).await;
    wait_for(&api, pvc_path, 60, "the claim gone", Value::is_null).await;
    // Retain: the volume is Released and the author's data stays.
    let pv = wait_for(
        &api,
        "/v1/persistentvolumes/t44-hand",
        30,
        "Released",
        |v| v["status"]["phase"] == "Released",
    )
    .await;
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy")).expect("the data is kept"),
        seed
    );
    // A Released volume is not bound again by a new claim naming it.
    apply(&api, &claim("again", "", Some("t44-hand"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = api
        .get("/v1/namespaces/default/persistentvolumeclaims/again")
        .await;
    assert_ne!(again["status"]["phase"], "Bound", "{again:#}");

    // A claim of an explicit class binds the volume of that class (the
    // other one is Released); Delete removes the volume with the claim.
    let other = pod_writable_tempdir();
    let other_path = other.path().to_string_lossy().into_owned();
    apply(
        &api,
        &hand_volume("t44-manual", &other_path, None, "manual", "Delete"),
    )
    .await;
    apply(&api, &claim("bykind", "manual", None)).await;
    let bykind_path = "/v1/namespaces/default/persistentvolumeclaims/bykind";
    let pvc = wait_for(&api, bykind_path, 20, "Bound", |v| {
        v["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(pvc["spec"]["volumeName"], "t44-manual", "{pvc:#}");
    delete(&api, bykind_path).await;
    wait_for(&api, bykind_path, 30, "the claim gone", Value::is_null).await;
    wait_for(
        &api,
        "/v1/persistentvolumes/t44-manual",
        30,
        "the volume deleted (Delete)",
        Value::is_null,
    )
    .await;
    c.stop().await;
}

/// Reads the namespace watch stream until `name` is deleted; every
/// MODIFIED object of it seen on the way.
async fn watch_namespace_until_deleted(mut resp: reqwest::Response, name: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("namespace {name} not deleted in 90s: {seen:#?}"))
            .expect("the watch stream reads")
            .unwrap_or_else(|| panic!("the watch stream ended: {seen:#?}"));
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if ev["object"]["metadata"]["name"] != name {
                continue;
            }
            if ev["type"] == "DELETED" {
                return seen;
            }
            seen.push(ev["object"].clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_namespace_waits_for_its_claims_protection() {
    let c = Cluster::start("t44n", &["2", "2", "2"], |c| {
        c.agent.volume_capacity = Some(1 << 30);
    })
    .await;
    let api = c.api();
    apply(
        &api,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: vault\n",
    )
    .await;
    apply(
        &api,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: vault\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 100Mi\n",
    )
    .await;
    apply(
        &api,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: user\n  namespace: vault\nspec:\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"3600\"]\n    volumeMounts:\n    - {name: data, mountPath: /data}\n  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: data}\n",
    )
    .await;
    let pvc_path = "/v1/namespaces/vault/persistentvolumeclaims/data";
    let pvc = wait_for(&api, pvc_path, 30, "Bound and protected", |v| {
        v["status"]["phase"] == "Bound" && protected(v)
    })
    .await;
    let volume = pvc["spec"]["volumeName"]
        .as_str()
        .expect("bound")
        .to_string();

    let resp = api
        .client
        .call(
            reqwest::Method::GET,
            "/v1/namespaces?watch=true",
            None,
            None,
        )
        .await
        .expect("the watch starts");
    assert_eq!(resp.status(), 200);
    delete(&api, "/v1/namespaces/vault").await;
    let seen = watch_namespace_until_deleted(resp, "vault").await;
    let said = seen.iter().any(|ns| {
        ns["status"]["phase"] == "Terminating"
            && ns["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "NamespaceFinalizersRemaining"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(PROTECTION))
                })
            })
    });
    assert!(said, "the namespace said what it waited for: {seen:#?}");
    let (code, _) = api.get(pvc_path).await;
    assert_eq!(code, 404, "the claim went before its namespace");
    wait_for(
        &api,
        &format!("/v1/persistentvolumes/{volume}"),
        30,
        "the claim's volume deleted (class local: Delete)",
        Value::is_null,
    )
    .await;
    c.stop().await;
}

fn docker_volume_inspect(name: &str) -> Option<Value> {
    let out = std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .expect("the docker CLI runs");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("docker volume inspect JSON");
    v.get(0).cloned()
}

/// NFS cannot be served or mounted on this test machine (its kernel has no
/// nfs filesystem), so the class is tested with the `local` driver's bind
/// options: the same path through the engine (`type`/`o`/`device` passed to
/// the driver, the engine mounting the volume when the container starts),
/// with the author's directory as the device so the test can look at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_docker_class_passes_its_parameters_to_the_engines_volume_driver() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("t44d", &["2", "2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
    })
    .await;
    let api = c.api();
    let (code, v) = api
        .apply("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: nope\nprovisioner: shoal.io/docker\nvolumeBindingMode: WaitForFirstConsumer\n")
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("volumeBindingMode"), "{v}");

    let dir = pod_writable_tempdir();
    let device = dir.path().to_string_lossy().into_owned();
    apply(
        &api,
        &format!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: bound-dir\nprovisioner: shoal.io/docker\nreclaimPolicy: Delete\nparameters:\n  type: none\n  o: bind\n  device: {device:?}\n"
        ),
    )
    .await;
    apply(&api, &claim("shared", "bound-dir", None)).await;
    let pvc_path = "/v1/namespaces/default/persistentvolumeclaims/shared";
    let pvc = wait_for(&api, pvc_path, 20, "Bound and protected", |v| {
        v["status"]["phase"] == "Bound" && protected(v)
    })
    .await;
    let pv_name = pvc["spec"]["volumeName"]
        .as_str()
        .expect("bound")
        .to_string();
    let (_, pv) = api.get(&format!("/v1/persistentvolumes/{pv_name}")).await;
    assert_eq!(pv["spec"]["csi"]["driver"], "shoal.io/docker", "{pv:#}");
    assert_eq!(
        pv["spec"]["csi"]["volumeAttributes"]["device"],
        device.as_str()
    );
    assert!(pv["spec"]["nodeAffinity"].is_null(), "not pinned: {pv:#}");
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .expect("a volume handle")
        .to_string();

    apply(
        &api,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: writer\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"cat /proc/sys/kernel/random/uuid > /data/hello; sleep 3600\"]\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: shared}}\n"
        ),
    )
    .await;
    let pod_path = "/v1/namespaces/default/pods/writer";
    wait_for(&api, pod_path, 90, "running", running).await;
    // The driver bound the class's device: what the pod wrote is there.
    eventually(
        Duration::from_secs(20),
        "the pod's file in the device",
        || {
            let got = std::fs::read_to_string(dir.path().join("hello")).unwrap_or_default();
            async move { got.trim().len() == 36 }
        },
    )
    .await;
    let vol = docker_volume_inspect(&handle).expect("the engine made the volume");
    assert_eq!(vol["Driver"], "local", "{vol:#}");
    assert_eq!(vol["Options"]["type"], "none", "{vol:#}");
    assert_eq!(vol["Options"]["o"], "bind", "{vol:#}");
    assert_eq!(vol["Options"]["device"], device.as_str(), "{vol:#}");
    assert_eq!(
        vol["Labels"]["shoal.io/persistent-volume"],
        pv_name.as_str()
    );

    // Delete: claim, volume object and the engine's volume go with the pod.
    delete(&api, pvc_path).await;
    delete(&api, pod_path).await;
    wait_for(&api, pvc_path, 60, "the claim gone", Value::is_null).await;
    wait_for(
        &api,
        &format!("/v1/persistentvolumes/{pv_name}"),
        30,
        "the volume deleted (Delete)",
        Value::is_null,
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the engine's volume removed",
        || {
            let gone = docker_volume_inspect(&handle).is_none();
            async move { gone }
        },
    )
    .await;
    assert!(
        dir.path().join("hello").exists(),
        "the bound device is the author's: its data stays"
    );
    c.stop().await;
}
