//! Extended resources and ephemeral storage end to end on an in-process
//! cluster with the process runtime: a node declaring
//! `example.com/dongle = 1` publishes it, takes the one pod asking for it,
//! and a second such pod stays Pending with the reason until room appears.
//! Then, with the Docker engine, pods writing past their
//! `ephemeral-storage` limit (into an emptyDir, into the writable layer)
//! are evicted while one within its limit keeps running.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::images::ensure_busybox_image;
use common::*;
use serde_json::Value;

fn dongle_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sleep\", \"3600\"]\n    resources:\n      limits:\n        example.com/dongle: 1\n        ephemeral-storage: 10Mi\n"
    )
}

async fn pod(api: &Api, name: &str) -> Value {
    api.get(&format!("/v1/namespaces/default/pods/{name}"))
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extended_resources_are_scheduled_as_counts() {
    let c = Cluster::start("xr", &["2", "2"], |c| {
        if c.name.as_deref() == Some("xr0") {
            c.agent
                .extended_resources
                .insert("example.com/dongle".into(), 1);
        }
    })
    .await;
    let api = c.api();

    // The node publishes what its config declares, and its disk.
    let (_, n0) = api.get("/v1/nodes/xr0").await;
    assert_eq!(
        n0["status"]["capacity"]["example.com/dongle"], "1",
        "{n0:#}"
    );
    assert_eq!(
        n0["status"]["allocatable"]["example.com/dongle"], "1",
        "{n0:#}"
    );
    let disk = n0["status"]["allocatable"]["ephemeral-storage"]
        .as_str()
        .and_then(|q| shoal::resource::types::parse_memory_bytes(q).ok())
        .unwrap_or(0);
    assert!(disk > 10 << 20, "ephemeral-storage allocatable: {n0:#}");
    let (_, n1) = api.get("/v1/nodes/xr1").await;
    assert!(
        n1["status"]["allocatable"]
            .get("example.com/dongle")
            .is_none(),
        "{n1:#}"
    );

    let (code, v) = api.apply(&dongle_pod("d1")).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "d1 running on xr0", || {
        let api = api.clone();
        async move {
            let p = pod(&api, "d1").await;
            p["spec"]["nodeName"] == "xr0" && p["status"]["phase"] == "Running"
        }
    })
    .await;

    let (code, v) = api.apply(&dongle_pod("d2")).await;
    assert_eq!(code, 200, "{v}");
    let want = "0/2 nodes: insufficient example.com/dongle (2)";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = pod(&api, "d2").await;
        let cond = p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned());
        if let Some(cond) = cond {
            assert_eq!(cond["reason"], "Unschedulable", "{p:#}");
            assert_eq!(cond["message"], want, "{p:#}");
            assert!(p["spec"]["nodeName"].is_null(), "{p:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "d2 has no PodScheduled condition: {p:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(Duration::from_secs(20), "a FailedScheduling event", || {
        let api = api.clone();
        async move {
            let (_, ev) = api.get("/v1/namespaces/default/events").await;
            ev["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| {
                    e["reason"] == "FailedScheduling"
                        && e["involvedObject"]["name"] == "d2"
                        && e["message"].as_str().is_some_and(|m| m.contains(want))
                })
            })
        }
    })
    .await;

    // The dongle freed, the waiting pod takes it.
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/d1",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(30), "d2 placed on xr0", || {
        let api = api.clone();
        async move { pod(&api, "d2").await["spec"]["nodeName"] == "xr0" }
    })
    .await;
    c.stop().await;
}

fn filler(name: &str, image: &str, target: &str, mib: u32, limit: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"dd if=/dev/zero of={target}/f bs=1048576 count={mib} && sleep 3600\"]\n    resources:\n      limits:\n        ephemeral-storage: {limit}\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n  volumes:\n  - {{name: data, emptyDir: {{}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_over_their_ephemeral_storage_limit_are_evicted() {
    let image = ensure_busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), "t83-evict", |c| {
        c.dev = true;
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        c.agent.resync_ms = 300;
        c.agent.ephemeral_check_secs = 1;
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
    let api = Api::new(node.api_addr);
    for (name, target, mib, limit) in [
        ("volume", "/data", 20, "5Mi"),
        ("layer", "/tmp", 20, "5Mi"),
        ("quiet", "/data", 1, "50Mi"),
    ] {
        let (code, v) = api.apply(&filler(name, &image, target, mib, limit)).await;
        assert_eq!(code, 200, "{v}");
    }
    for name in ["volume", "layer"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = pod(&api, name).await;
            if p["status"]["phase"] == "Failed" {
                assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
                let msg = p["status"]["message"].as_str().unwrap_or_default();
                assert!(
                    msg.starts_with("Pod ephemeral local storage usage (")
                        && msg.ends_with("exceeds the total limit of containers 5Mi."),
                    "{name}: {msg}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{name} never evicted: {p:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eventually(Duration::from_secs(20), "an Evicted event", || {
            let api = api.clone();
            async move {
                let (_, ev) = api.get("/v1/namespaces/default/events").await;
                ev["items"].as_array().is_some_and(|items| {
                    items.iter().any(|e| {
                        e["reason"] == "Evicted"
                            && e["type"] == "Warning"
                            && e["involvedObject"]["name"] == name
                    })
                })
            }
        })
        .await;
        eventually(
            Duration::from_secs(30),
            "the evicted pod's container stopped",
            || {
                let api = api.clone();
                async move {
                    let p = pod(&api, name).await;
                    !p["status"]["containerStatuses"][0]["state"]["terminated"].is_null()
                }
            },
        )
        .await;
    }
    // Within its limit: running, and still so after a few more checks.
    eventually(Duration::from_secs(20), "quiet running", || {
        let api = api.clone();
        async move { pod(&api, "quiet").await["status"]["phase"] == "Running" }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pod(&api, "quiet").await;
    assert_eq!(p["status"]["phase"], "Running", "{p:#}");
    let rt = node.runtime.clone();
    node.shutdown().await;
    remove_containers_of(&rt, "t83-evict").await;
}
