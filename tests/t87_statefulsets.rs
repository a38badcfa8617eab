//! StatefulSets on a three-node in-process cluster with the Docker engine:
//! ordered start (web-1 never exists before web-0 is Ready), each pod's
//! claim keeping its data across the pod's deletion, the pods' DNS names
//! and SRV records through the headless Service, scale down from the
//! highest ordinal keeping its claim, a rolling update stopped at its
//! partition, `rollout status|history`, `get sts` and `delete sts`;
//! through the `shoal` binary and the API.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use serde_json::Value;

const GI: u64 = 1 << 30;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080}\n";

/// The set `web`, its pods Ready two seconds after they start. With
/// `claims` (Docker) each pod mounts its claim `data-web-N` and writes a
/// fresh uuid to `/data/hello` unless the file is there; the process
/// runtime mounts no volumes, so its pods have none.
fn statefulset(image: &str, replicas: u32, version: &str, partition: u32, claims: bool) -> String {
    let (write, mounts, templates) = if claims {
        (
            "[ -f /data/hello ] || cat /proc/sys/kernel/random/uuid > /data/hello; ",
            "        volumeMounts:\n        - {name: data, mountPath: /data}\n",
            "  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources:\n        requests:\n          storage: 100Mi\n",
        )
    } else {
        ("", "", "")
    };
    format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {{partition: {partition}}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        env:
        - {{name: VERSION, value: \"{version}\"}}
        command: [\"sh\", \"-c\", \"{write}trap 'exit 0' TERM; while true; do sleep 1; done\"]
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          exec: {{command: [\"true\"]}}
          initialDelaySeconds: 2
          periodSeconds: 1
{mounts}{templates}"
    )
}

fn resolver(addr: SocketAddr) -> TokioResolver {
    let mut conn = ConnectionConfig::new(ProtocolConfig::Udp);
    conn.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
    let mut b = TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![ns]),
        TokioRuntimeProvider::default(),
    );
    b.options_mut().cache_size = 0;
    b.options_mut().attempts = 2;
    b.build().expect("resolver")
}

fn dns_addr(c: &Cluster, i: usize) -> SocketAddr {
    c.nodes[i]
        .as_ref()
        .expect("node runs")
        .discovery
        .as_ref()
        .expect("discovery runs")
        .dns_addrs()[0]
}

/// The set's pods not finished, by name.
async fn set_pods(api: &Api) -> Vec<Value> {
    let mut out: Vec<Value> = pods(api)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    out.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string());
    out
}

fn name(p: &Value) -> &str {
    p["metadata"]["name"].as_str().unwrap_or("")
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn hash(p: &Value) -> &str {
    p["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or("")
}

/// Waits until the set's pods are exactly `names`, all Ready; returns them.
/// Every snapshot on the way must keep the ordered start: a pod of ordinal
/// N exists only while every lower ordinal's pod is Ready.
async fn wait_ready(api: &Api, names: &[&str], secs: u64) -> Vec<Value> {
    wait_pods(api, names, secs, true).await
}

/// [`wait_ready`], checking the ordered start only when `ordered`.
async fn wait_pods(api: &Api, names: &[&str], secs: u64, ordered: bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = set_pods(api).await;
        if ordered {
            check_ordered(&got);
        }
        let on: Vec<&str> = got.iter().map(name).collect();
        if on == names && got.iter().all(is_ready) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "never exactly {names:?} Ready: {:#?}",
            got.iter()
                .map(|p| format!("{} ready={}", name(p), is_ready(p)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// In one read of the replica, a pod of ordinal N exists only if the pods
/// of 0..N are there and Ready (the controller wrote it after reading so).
fn check_ordered(pods: &[Value]) {
    let ordinal = |p: &Value| -> u32 {
        name(p)
            .strip_prefix("web-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a pod name that is not web-N: {}", name(p)))
    };
    for p in pods {
        let n = ordinal(p);
        for below in 0..n {
            let ready = pods.iter().any(|q| ordinal(q) == below && is_ready(q));
            // A lower ordinal deleted by the test (or being rolled) may be
            // absent; one that is there must be Ready when it was created
            // first, which a not-Ready lower pod of a newer uid cannot show.
            let present = pods.iter().any(|q| ordinal(q) == below);
            let lower_newer = pods.iter().any(|q| {
                ordinal(q) == below
                    && q["metadata"]["creationTimestamp"].as_str()
                        > p["metadata"]["creationTimestamp"].as_str()
            });
            assert!(
                ready || !present || lower_newer,
                "{} exists while web-{below} is not Ready",
                name(p)
            );
        }
    }
}

/// `cat /data/hello` inside the pod's container.
async fn read_hello(c: &Cluster, p: &Value) -> String {
    let text = run_in(c, p, &["cat", "/data/hello"]).await;
    assert!(!text.is_empty(), "an empty /data/hello in {}", name(p));
    text
}

/// What `cmd` prints inside the pod's container; it must succeed.
async fn run_in(c: &Cluster, p: &Value, cmd: &[&str]) -> String {
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
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let out = n
        .runtime
        .exec(id, &cmd, Duration::from_secs(10))
        .await
        .expect("exec");
    let text = String::from_utf8_lossy(&out.output).trim().to_string();
    assert_eq!(out.exit_code, 0, "{cmd:?}: {text}");
    text
}

async fn claim_names(api: &Api) -> Vec<String> {
    let (_, v) = api
        .get("/v1/namespaces/default/persistentvolumeclaims")
        .await;
    let mut out: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

async fn status(api: &Api) -> Value {
    let (code, v) = api.get("/v1/namespaces/default/statefulsets/web").await;
    assert_eq!(code, 200, "{v}");
    v["status"].clone()
}

/// The A records of `qname` asked of `dns`.
async fn a_records(dns: SocketAddr, qname: &str) -> Vec<Ipv4Addr> {
    match resolver(dns).lookup(qname, RecordType::A).await {
        Ok(a) => a
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn srv_targets(dns: SocketAddr, qname: &str) -> Vec<String> {
    let mut got: Vec<String> = match resolver(dns).lookup(qname, RecordType::SRV).await {
        Ok(srv) => srv
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(s.target.to_ascii()),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statefulset_keeps_names_order_data_and_partition_docker() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    scenario("sts", shoal::runtime::RuntimeKind::Docker, &image).await;
}

/// The same without claims on host processes (which mount no volumes):
/// names, order, DNS, scale down and the partitioned update.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statefulset_keeps_names_order_and_partition_process() {
    scenario("stp", shoal::runtime::RuntimeKind::Process, "host").await;
}

async fn scenario(prefix: &str, runtime: shoal::runtime::RuntimeKind, image: &str) {
    let claims = runtime == shoal::runtime::RuntimeKind::Docker;
    let c = Cluster::start(prefix, &["2", "2", "2"], |c| {
        c.runtime = Some(runtime);
        c.agent.volume_capacity = Some(2 * GI);
    })
    .await;
    let api = c.api();
    let addr = api.base.clone();

    let (code, v) = api.apply(SERVICE).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api.apply(&statefulset(image, 2, "1", 0, claims)).await;
    assert_eq!(code, 200, "{v}");

    // Ordered start: checked on every snapshot while waiting.
    let started = Instant::now();
    let first = wait_ready(&api, &["web-0", "web-1"], 120).await;
    eprintln!("two ordered pods Ready in {:?}", started.elapsed());
    let all_claims: &[&str] = if claims {
        &["data-web-0", "data-web-1", "data-web-2"]
    } else {
        &[]
    };
    assert_eq!(
        claim_names(&api).await,
        all_claims[..all_claims.len().min(2)]
    );
    for p in &first {
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            name(p)
        );
        if claims {
            assert_eq!(
                p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
                format!("data-{}", name(p))
            );
        }
    }
    let (code, out, err) = shoal_cli(&addr, &["get", "sts"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(Duration::from_secs(10), "get sts shows 2/2", || {
        let addr = addr.clone();
        async move {
            let (_, out, _) = shoal_cli(&addr, &["get", "statefulsets"]).await;
            out.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.len() >= 3 && cells[0] == "web" && cells[1] == "2/2"
            })
        }
    })
    .await;
    assert!(out.starts_with("NAME"), "{out}");
    let (code, out, err) = shoal_cli(&addr, &["describe", "sts", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Kind:              StatefulSet")
            && out.contains("readyReplicas: 2")
            && out.contains("create Pod web-1 in StatefulSet web successful"),
        "{out}"
    );

    // Each pod's DNS name, on every node; and SRV lists both.
    for i in 0..3 {
        let dns = dns_addr(&c, i);
        eventually(
            Duration::from_secs(20),
            "web-0's and web-1's names",
            || async move {
                a_records(dns, "web-0.web.default.svc.shoal.").await.len() == 1
                    && a_records(dns, "web-1.web.default.svc.shoal.").await.len() == 1
            },
        )
        .await;
        assert_eq!(
            srv_targets(dns, "_http._tcp.web.default.svc.shoal.").await,
            [
                "web-0.web.default.svc.shoal.",
                "web-1.web.default.svc.shoal."
            ]
        );
    }

    // Inside, the pod's name qualified by the governing Service.
    if claims {
        let hosts = run_in(&c, &first[0], &["cat", "/etc/hosts"]).await;
        assert!(
            hosts.contains("web-0.web.default.svc.shoal"),
            "no fully qualified name in /etc/hosts: {hosts}"
        );
        assert_eq!(
            run_in(&c, &first[0], &["sh", "-c", "hostname"]).await,
            "web-0"
        );
    }

    // web-1 deleted: it comes back under its name with its own data.
    let web1 = &first[1];
    let hello = if claims {
        read_hello(&c, web1).await
    } else {
        String::new()
    };
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/web-1",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let again = {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = wait_ready(&api, &["web-0", "web-1"], 90).await;
            if uid(&got[1]) != uid(web1) {
                break got;
            }
            assert!(Instant::now() < deadline, "web-1 never replaced");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if claims {
        assert_eq!(read_hello(&c, &again[1]).await, hello, "web-1's own data");
        assert_ne!(
            read_hello(&c, &again[0]).await,
            hello,
            "web-0 has a claim of its own"
        );
    }

    // Scale to 3, then down to 1: web-2 and web-1 go, highest first, and
    // their claims stay.
    let (code, _, err) = shoal_cli(&addr, &["scale", "sts/web", "--replicas", "3"]).await;
    assert_eq!(code, 0, "{err}");
    wait_ready(&api, &["web-0", "web-1", "web-2"], 90).await;
    let (code, _, err) =
        shoal_cli(&addr, &["scale", "statefulset", "web", "--replicas", "1"]).await;
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = set_pods(&api).await;
        let on: Vec<&str> = got.iter().map(name).collect();
        assert!(on != ["web-0", "web-2"], "web-1 went before web-2: {on:?}");
        if on == ["web-0"] {
            break;
        }
        assert!(Instant::now() < deadline, "scale down stuck at {on:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(claim_names(&api).await, all_claims);

    // A rolling update with partition 1 over three pods: web-2 and web-1
    // take the new template, web-0 keeps the old one.
    let old = hash(&set_pods(&api).await[0]).to_string();
    let (code, v) = api.apply(&statefulset(image, 3, "2", 1, claims)).await;
    assert_eq!(code, 200, "{v}");
    let (code, out, err) = shoal_cli(
        &addr,
        &["rollout", "status", "sts/web", "--timeout", "120s"],
    )
    .await;
    assert_eq!(code, 0, "rollout status: {out}{err}");
    let got = wait_ready(&api, &["web-0", "web-1", "web-2"], 60).await;
    let hashes: Vec<&str> = got.iter().map(hash).collect();
    assert_eq!(hashes[0], old, "below the partition: {hashes:?}");
    assert_ne!(hashes[1], old, "{hashes:?}");
    assert_eq!(hashes[1], hashes[2], "{hashes:?}");
    let st = status(&api).await;
    assert_eq!(st["currentRevision"], format!("web-{old}"), "{st}");
    assert_eq!(st["updateRevision"], format!("web-{}", hashes[1]), "{st}");
    assert_eq!(st["updatedReplicas"], 2, "{st}");
    let (code, out, err) = shoal_cli(&addr, &["rollout", "history", "sts/web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("statefulset.apps/web\n") && out.lines().count() == 4,
        "two revisions: {out}"
    );
    if claims {
        // web-1 kept its data through the update.
        assert_eq!(read_hello(&c, &got[1]).await, hello);
    }

    // Undo: the updated ordinals go back to the first template.
    let (code, out, err) = shoal_cli(&addr, &["rollout", "undo", "sts/web"]).await;
    assert_eq!(code, 0, "rollout undo: {out}{err}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = wait_ready(&api, &["web-0", "web-1", "web-2"], 60).await;
        if got.iter().all(|p| hash(p) == old) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "undo never finished: {:?}",
            got.iter().map(hash).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting the set removes its pods; the claims stay (Retain).
    let (code, _, err) = shoal_cli(&addr, &["delete", "sts", "web"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(Duration::from_secs(30), "the set's pods gone", || {
        let api = api.clone();
        async move {
            pods(&api)
                .await
                .iter()
                .all(|p| p["metadata"]["labels"]["app"] != "web")
        }
    })
    .await;
    assert_eq!(claim_names(&api).await, all_claims);
    c.stop().await;
}

/// At most one pod per ordinal: a pod on a node that stopped is neither
/// replaced nor deletable without `--force` until node lifecycle marks it
/// lost (its grace is made long here); `delete --force` lets the set
/// start it again on a live node under the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_on_a_lost_node_needs_force_process() {
    let c = Cluster::start("stf", &["2", "2", "2"], |c| {
        c.scheduler.pod_eviction_grace_ms = 600_000;
    })
    .await;
    let mut c = c;
    let api = c.api();
    let addr = api.base.clone();
    let first_node = c.nodes[0].as_ref().expect("node 0").info.name.clone();
    // One cpu each on two-cpu nodes: at least one pod lands beyond node 0,
    // whose API the test uses.
    let manifest = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  serviceName: web\n  replicas: 3\n  podManagementPolicy: Parallel\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: host\n        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n        resources:\n          requests: {cpu: \"1\"}\n";
    let (code, v) = api.apply(manifest).await;
    assert_eq!(code, 200, "{v}");
    let ready = wait_pods(&api, &["web-0", "web-1", "web-2"], 60, false).await;
    let victim = ready
        .iter()
        .find(|p| p["spec"]["nodeName"].as_str() != Some(first_node.as_str()))
        .expect("a pod beyond node 0")
        .clone();
    let node = victim["spec"]["nodeName"]
        .as_str()
        .expect("bound")
        .to_string();
    let i = c
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.info.name == node))
        .expect("its node");
    let dead = c.crash(i).await;
    let rt = dead.runtime.clone();
    dead.shutdown().await;
    let pod = name(&victim).to_string();

    // Once node 0 sees it gone: refused until forced, and never replaced.
    let (members, gone) = (api.clone(), node.clone());
    eventually(Duration::from_secs(30), "the node seen down", move || {
        let (api, gone) = (members.clone(), gone.clone());
        async move {
            let (_, v) = api.get("/v1/members").await;
            v["items"].as_array().into_iter().flatten().any(|m| {
                m["meta"]["name"] == gone.as_str()
                    && m["state"].as_str().is_some_and(|s| {
                        s.eq_ignore_ascii_case("down") || s.eq_ignore_ascii_case("left")
                    })
            })
        }
    })
    .await;
    let (code, _, err) = shoal_cli(&addr, &["delete", "pod", &pod]).await;
    assert_ne!(
        code, 0,
        "{pod} deleted without --force while {node} is down"
    );
    assert!(err.contains("--force"), "{err}");
    assert!(err.contains(&node), "{err}");
    // A file naming it has no --force: refused too.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pod.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  containers:\n  - name: main\n    image: host\n"),
    )
    .expect("write");
    let path = file.display().to_string();
    let (code, _, err) = shoal_cli(&addr, &["delete", "-f", &path]).await;
    assert_ne!(code, 0, "{pod} deleted by file while {node} is down");
    assert!(err.contains("--force"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same: Vec<String> = set_pods(&api)
        .await
        .iter()
        .filter(|p| name(p) == pod)
        .map(uid)
        .collect();
    assert_eq!(
        same,
        [uid(&victim)],
        "{pod} was replaced before it was forced"
    );

    let (code, out, err) = shoal_cli(&addr, &["delete", "pod", &pod, "--force"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let back = set_pods(&api)
            .await
            .into_iter()
            .find(|p| name(p) == pod && uid(p) != uid(&victim));
        if let Some(p) = back.filter(is_ready) {
            assert_ne!(p["spec"]["nodeName"].as_str(), Some(node.as_str()));
            break;
        }
        assert!(Instant::now() < deadline, "{pod} never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    remove_containers_of(&rt, &node).await;
    c.stop().await;
}

/// `persistentVolumeClaimRetentionPolicy` Delete both ways: the claim of a
/// scaled-away ordinal goes once its pod is gone, and the rest with the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_follow_the_retention_policy_docker() {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start("str", &["2", "2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        c.agent.volume_capacity = Some(2 * GI);
    })
    .await;
    let api = c.api();
    let addr = api.base.clone();
    let manifest = |replicas: u32| {
        statefulset(&image, replicas, "1", 0, true).replace(
            "  serviceName: web\n",
            "  serviceName: web\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}\n",
        )
    };
    let (code, v) = api.apply(&manifest(2)).await;
    assert_eq!(code, 200, "{v}");
    wait_ready(&api, &["web-0", "web-1"], 120).await;
    assert_eq!(claim_names(&api).await, ["data-web-0", "data-web-1"]);
    let (code, _, err) = shoal_cli(&addr, &["scale", "sts/web", "--replicas", "1"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(Duration::from_secs(60), "web-1's claim deleted", || {
        let api = api.clone();
        async move { claim_names(&api).await == ["data-web-0"] && set_pods(&api).await.len() == 1 }
    })
    .await;
    let (code, _, err) = shoal_cli(&addr, &["delete", "sts", "web"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(
        Duration::from_secs(60),
        "every claim deleted with the set",
        || {
            let api = api.clone();
            async move {
                let (_, v) = api
                    .get("/v1/namespaces/default/persistentvolumeclaims")
                    .await;
                v["items"].as_array().is_some_and(Vec::is_empty)
            }
        },
    )
    .await;
    c.stop().await;
}

/// The leader killed right after a new template is applied: the new
/// leader finishes the rollout, and no ordinal ever runs on two of the
/// surviving nodes at once (the dead node's own copies are out of reach,
/// see the architecture notes on `disconnected_pods`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_killed_mid_rollout_process() {
    let mut c = Cluster::start("stk", &["2", "2", "2"], |_| {}).await;
    let api = c.api();
    let (code, v) = api.apply(&statefulset("host", 3, "1", 0, false)).await;
    assert_eq!(code, 200, "{v}");
    let v1 = wait_ready(&api, &["web-0", "web-1", "web-2"], 60).await;
    let old = hash(&v1[0]).to_string();
    let (code, v) = api.apply(&statefulset("host", 3, "2", 0, false)).await;
    assert_eq!(code, 200, "{v}");
    let leader = c.leader();
    let dead = c.crash(leader).await;
    let (rt, dead_name) = (dead.runtime.clone(), dead.info.name.clone());
    dead.shutdown().await;
    let api = c.api();
    let live: Vec<(String, shoal::runtime::DynRuntime)> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| (n.info.name.clone(), n.runtime.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Where each ordinal runs now, over the surviving nodes.
        let mut running: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (node, rt) in &live {
            let mine = std::collections::BTreeMap::from([(
                shoal::runtime::LABEL_NODE.to_string(),
                node.clone(),
            )]);
            for ctr in rt.list(&mine).await.unwrap_or_default() {
                if ctr.state == shoal::runtime::ContainerState::Running
                    && let Some(pod) = ctr.labels.get(shoal::runtime::LABEL_POD)
                {
                    running.entry(pod.clone()).or_default().push(node.clone());
                }
            }
        }
        assert!(
            running.values().all(|nodes| nodes.len() <= 1),
            "an ordinal runs twice: {running:?}"
        );
        let got = set_pods(&api).await;
        let on: Vec<&str> = got.iter().map(name).collect();
        let done = on == ["web-0", "web-1", "web-2"]
            && got.iter().all(|p| {
                is_ready(p) && hash(p) != old && p["spec"]["nodeName"] != dead_name.as_str()
            });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout never finished: {:?}",
            got.iter()
                .map(|p| format!("{} {} ready={}", name(p), hash(p), is_ready(p)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    remove_containers_of(&rt, &dead_name).await;
    c.stop().await;
}

/// A deleted pod's replacement on the same node (a claim pins a
/// StatefulSet's pod there; a nodeSelector here, on host processes) starts
/// only once the old container has stopped: its slow shutdown (three
/// seconds after TERM) never overlaps the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replacement_waits_for_its_predecessor_process() {
    let c = Cluster::start("stw", &["2", "2", "2"], |_| {}).await;
    let api = c.api();
    let manifest = statefulset("host", 1, "1", 0, false)
        .replace("trap 'exit 0' TERM", "trap 'sleep 3; exit 0' TERM")
        .replace(
            "      terminationGracePeriodSeconds: 1\n",
            "      nodeSelector: {kubernetes.io/hostname: stw0}\n      terminationGracePeriodSeconds: 10\n",
        );
    assert!(manifest.contains("stw0"), "{manifest}");
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    let first = wait_ready(&api, &["web-0"], 120).await;
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/pods/web-0",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let runtimes: Vec<shoal::runtime::DynRuntime> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| n.runtime.clone())
        .collect();
    let web0 = std::collections::BTreeMap::from([(
        shoal::runtime::LABEL_POD.to_string(),
        "default/web-0".to_string(),
    )]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Runtimes may share one engine: count each container once.
        let mut running = std::collections::BTreeMap::new();
        for rt in &runtimes {
            for ctr in rt.list(&web0).await.unwrap_or_default() {
                if ctr.state == shoal::runtime::ContainerState::Running {
                    let uid = ctr.labels.get(shoal::runtime::LABEL_POD_UID).cloned();
                    running.insert(ctr.id, uid);
                }
            }
        }
        assert!(running.len() <= 1, "two web-0 containers run: {running:?}");
        let back = set_pods(&api)
            .await
            .into_iter()
            .find(|p| name(p) == "web-0" && uid(p) != uid(&first[0]));
        if back.as_ref().is_some_and(is_ready) {
            break;
        }
        assert!(Instant::now() < deadline, "web-0 never came back: {back:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.stop().await;
}

/// `spec.ordinals.start`: pods are named from it, in order; scaling down
/// removes the highest, and moving start down adds the new lowest. The
/// status carries Kubernetes' fields through it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordinals_start_names_and_scales_from_start_process() {
    let c = Cluster::start("sto", &["2", "2", "2"], |_| {}).await;
    let api = c.api();
    let with_start = |replicas: u32, start: u32| {
        statefulset("host", replicas, "1", 0, false).replace(
            &format!("  replicas: {replicas}\n"),
            &format!("  replicas: {replicas}\n  ordinals:\n    start: {start}\n"),
        )
    };
    let m = with_start(2, 3);
    assert!(m.contains("start: 3"), "{m}");
    let (code, v) = api.apply(&m).await;
    assert_eq!(code, 200, "{v}");
    // OrderedReady from start: web-4 never exists before web-3 is Ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = set_pods(&api).await;
        let on: Vec<&str> = got.iter().map(name).collect();
        if on.contains(&"web-4") {
            let w3 = got.iter().find(|p| name(p) == "web-3");
            assert!(
                w3.is_some_and(is_ready),
                "web-4 before web-3 is Ready: {on:?}"
            );
        }
        if on == ["web-3", "web-4"] && got.iter().all(is_ready) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never web-3 and web-4 Ready: {on:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = status(&api).await;
        if st["availableReplicas"] == 2 && st["readyReplicas"] == 2 {
            break st;
        }
        assert!(Instant::now() < deadline, "status never caught up: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(st["replicas"], 2, "{st}");
    assert_eq!(st["updatedReplicas"], 2, "{st}");
    assert_eq!(st["collisionCount"], 0, "{st}");
    assert_eq!(st["currentRevision"], st["updateRevision"], "{st}");
    assert!(st["observedGeneration"].as_u64().is_some(), "{st}");
    // Scaled to one: the highest ordinal goes.
    let (code, v) = api.apply(&with_start(1, 3)).await;
    assert_eq!(code, 200, "{v}");
    wait_ready(&api, &["web-3"], 60).await;
    // Start moved to 2 with two replicas: web-2 joins, web-3 stays.
    let (code, v) = api.apply(&with_start(2, 2)).await;
    assert_eq!(code, 200, "{v}");
    let got = wait_pods(&api, &["web-2", "web-3"], 60, false).await;
    let (code, v) = api.get("/v1/namespaces/default/statefulsets/web").await;
    assert_eq!(code, 200, "{v}");
    let generation = v["metadata"]["generation"].as_u64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&api).await["observedGeneration"].as_u64() != generation {
        assert!(
            Instant::now() < deadline,
            "observedGeneration never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(got.len(), 2);
    c.stop().await;
}
