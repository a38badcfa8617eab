//! Resource metrics and the HorizontalPodAutoscaler on a real Docker
//! engine: the metrics API's shape for a busy container and its series in
//! /metrics going with the pod; and a Deployment whose busy-looping pods
//! (busy while a file exists in a hostPath the test controls) is scaled up
//! by an HPA at 50% CPU, then back down once the file is removed.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;
use shoal::runtime::RuntimeKind;

/// One Docker node sampling every second, the autoscaler syncing every second.
async fn cluster(prefix: &str) -> (Cluster, String) {
    images::require_docker();
    let image = images::ensure_busybox_image();
    let c = Cluster::start(prefix, &["8"], |c| {
        c.runtime = Some(RuntimeKind::Docker);
        c.metrics.resolution_ms = 1000;
        c.metrics.autoscaler_sync_ms = 1000;
    })
    .await;
    (c, image)
}

/// A Deployment of busybox pods that burn a core while `dir/on` exists
/// (a stat per loop turn) and sleep otherwise.
fn burner(name: &str, image: &str, dir: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - {{name: load, hostPath: {{path: "{dir}", type: Directory}}}}
      containers:
      - name: burn
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do if [ -e /load/on ]; then :; else sleep 1; fi; done"]
        volumeMounts: [{{name: load, mountPath: /load}}]
        resources: {{requests: {{cpu: 100m, memory: 16Mi}}}}
"#
    )
}

fn load_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    open_to_pods(d.path());
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_api_has_metrics_servers_shape_and_series_go_with_the_pod() {
    let (c, image) = cluster("mx").await;
    let api = c.api();
    let dir = load_dir();
    std::fs::write(dir.path().join("on"), b"").expect("load on");
    let (code, v) = api
        .apply(&burner("hot", &image, &dir.path().display().to_string(), 1))
        .await;
    assert_eq!(code, 200, "{v}");

    // The busy pod shows up using most of a core.
    let deadline = Instant::now() + Duration::from_secs(90);
    let pod = loop {
        let (code, v) = api
            .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
            .await;
        assert_eq!(code, 200, "{v}");
        let busy = v["items"].as_array().and_then(|items| {
            items.iter().find(|p| {
                let cpu = p["containers"][0]["usage"]["cpu"].as_str().unwrap_or("0n");
                cpu.trim_end_matches('n').parse::<u64>().unwrap_or(0) > 300_000_000
            })
        });
        if let Some(p) = busy {
            assert_eq!(v["kind"], "PodMetricsList");
            assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
            assert_eq!(v["metadata"], serde_json::json!({}));
            break p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no busy pod in the metrics API: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    assert_eq!(pod["kind"], "PodMetrics", "{pod:#}");
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert_eq!(pod["metadata"]["labels"]["app"], "hot");
    assert!(
        pod["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        pod["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{pod:#}"
    );
    assert!(
        pod["window"].as_str().is_some_and(|w| w.ends_with('s')),
        "{pod:#}"
    );
    let c0 = &pod["containers"][0];
    assert_eq!(c0["name"], "burn");
    let mem = c0["usage"]["memory"].as_str().expect("memory");
    assert!(mem.ends_with("Ki") && mem != "0Ki", "{pod:#}");

    // The same through every path and the typed client.
    let (code, one) = api
        .get(&format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{name}"
        ))
        .await;
    assert_eq!(
        (code, &one["metadata"]["name"]),
        (200, &Value::from(name.clone())),
        "{one:#}"
    );
    let all = api.client.pod_metrics(None).await.expect("all pods");
    assert!(all.iter().any(|p| p.metadata.name == name));
    let nodes = api.client.node_metrics().await.expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].metadata.name, "mx0");
    assert!(
        nodes[0].usage.cpu_millis() > 0 && nodes[0].usage.memory_bytes() > 0,
        "{nodes:?}"
    );
    let (code, n) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/mx0").await;
    assert_eq!(
        (code, &n["kind"]),
        (200, &Value::from("NodeMetrics")),
        "{n:#}"
    );
    let (code, _) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/nope").await;
    assert_eq!(code, 404);

    // `shoal top` prints it as kubectl.
    let (rc, out, err) = shoal_cli(&api.base, &["top", "pods", "--containers"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.starts_with("POD ") && out.contains(&name) && out.contains("burn"),
        "{out}"
    );
    let (rc, out, err) = shoal_cli(&api.base, &["top", "nodes"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.starts_with("NAME ") && out.contains("CPU%") && out.contains("mx0"),
        "{out}"
    );

    // Prometheus has the pod's series; they go when the pod goes.
    let series = format!(
        "shoal_container_cpu_seconds_total{{namespace=\"default\",pod=\"{name}\",container=\"burn\""
    );
    let (_, text) = api.get("/metrics").await;
    let text = text.as_str().unwrap_or("").to_string();
    assert!(text.contains(&series), "no {series} in /metrics");
    assert!(text.contains("shoal_container_memory_working_set_bytes{namespace=\"default\""));
    std::fs::remove_file(dir.path().join("on")).expect("load off");
    let (code, v) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/deployments/hot",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(60), "the pod's series gone", || {
        let api = api.clone();
        let series = series.clone();
        async move {
            let (_, text) = api.get("/metrics").await;
            !text.as_str().unwrap_or("").contains(&series)
        }
    })
    .await;
    c.stop().await;
}

/// The Deployment's `spec.replicas` now.
async fn replicas(api: &Api, name: &str) -> u64 {
    let (_, d) = api
        .get(&format!("/v1/namespaces/default/deployments/{name}"))
        .await;
    d["spec"]["replicas"].as_u64().unwrap_or(0)
}

/// Polls the replica count until `done` holds, recording every change
/// with the seconds since `t0`; panics with the record on time-out.
async fn watch_replicas(
    api: &Api,
    name: &str,
    t0: Instant,
    record: &mut Vec<(u64, u64)>,
    secs: u64,
    what: &str,
    done: impl Fn(u64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = replicas(api, name).await;
        if record.last().map(|x| x.1) != Some(r) {
            record.push((t0.elapsed().as_secs(), r));
        }
        if done(r) {
            return;
        }
        if Instant::now() > deadline {
            let (_, hpa) = api
                .get(&format!(
                    "/v1/namespaces/default/horizontalpodautoscalers/{name}"
                ))
                .await;
            panic!(
                "timed out waiting for {what}; replicas over time (s, n): {record:?}; hpa status: {:#}",
                hpa["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_hpa_scales_a_busy_deployment_up_and_back_down() {
    let (c, image) = cluster("as").await;
    let api = c.api();
    let dir = load_dir();
    let d = dir.path().display().to_string();
    let (code, v) = api.apply(&burner("burn", &image, &d, 1)).await;
    assert_eq!(code, 200, "{v}");
    let hpa = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 5
      policies: [{type: Percent, value: 100, periodSeconds: 5}]
";
    let (code, v) = api.apply(hpa).await;
    assert_eq!(code, 200, "{v}");
    // Idle: the HPA reports a utilization near zero and keeps one replica.
    eventually(Duration::from_secs(60), "idle utilization reported", || {
        let api = api.clone();
        async move {
            let (_, h) = api
                .get("/v1/namespaces/default/horizontalpodautoscalers/burn")
                .await;
            h["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                .as_u64()
                .is_some_and(|u| u < 50)
        }
    })
    .await;
    let t0 = Instant::now();
    let mut record = vec![(0, replicas(&api, "burn").await)];
    assert_eq!(record[0].1, 1);

    // Load: one pod burning a core is ~1000% of its 100m request.
    std::fs::write(dir.path().join("on"), b"").expect("load on");
    watch_replicas(&api, "burn", t0, &mut record, 60, "a scale-up", |r| r >= 2).await;
    let up_after = t0.elapsed();
    let (_, h) = api
        .get("/v1/namespaces/default/horizontalpodautoscalers/burn")
        .await;
    let st = &h["status"];
    assert!(st["lastScaleTime"].as_str().is_some(), "{st:#}");
    let conds = st["conditions"].as_array().cloned().unwrap_or_default();
    let cond = |t: &str| {
        conds
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(cond("AbleToScale")["status"], "True", "{st:#}");
    assert_eq!(
        cond("ScalingActive")["reason"],
        "ValidMetricFound",
        "{st:#}"
    );
    let (rc, out, err) = shoal_cli(&api.base, &["get", "hpa"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("Deployment/burn") && out.contains("/50%") && out.contains("REFERENCE"),
        "{out}"
    );
    // `shoal scale` warns that the HPA owns the count.
    let (rc, _, err) = shoal_cli(
        &api.base,
        &["scale", "deployment", "burn", "--replicas", "3"],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains("horizontalpodautoscaler/burn"), "{err}");
    let (_, events) = api.get("/v1/namespaces/default/events").await;
    let rescales: Vec<&Value> = events["items"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|e| e["reason"] == "SuccessfulRescale")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        rescales
            .iter()
            .any(|e| e["involvedObject"]["kind"] == "HorizontalPodAutoscaler")
            && rescales
                .iter()
                .any(|e| e["involvedObject"]["kind"] == "Deployment"),
        "SuccessfulRescale on the HPA and the Deployment: {events:#}"
    );

    // Load stops: back to one after the 5 s window.
    std::fs::remove_file(dir.path().join("on")).expect("load off");
    watch_replicas(&api, "burn", t0, &mut record, 90, "the scale-down", |r| {
        r == 1
    })
    .await;
    assert!(
        up_after < Duration::from_secs(45),
        "scale-up took {up_after:?}; replicas over time (s, n): {record:?}"
    );
    let (_, h) = api
        .get("/v1/namespaces/default/horizontalpodautoscalers/burn")
        .await;
    assert_eq!(
        h["status"]["desiredReplicas"], 1,
        "{:#} {record:?}",
        h["status"]
    );
    eprintln!("replicas over time (s, n): {record:?}; first scale-up after {up_after:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_hpa_without_requests_reports_failed_get_resource_metric() {
    let (c, image) = cluster("nr").await;
    let api = c.api();
    let dir = load_dir();
    let d = dir.path().display().to_string();
    let m = burner("bare", &image, &d, 1).replace(
        "        resources: {requests: {cpu: 100m, memory: 16Mi}}\n",
        "",
    );
    let (code, v) = api.apply(&m).await;
    assert_eq!(code, 200, "{v}");
    let (rc, out, err) = shoal_cli(
        &api.base,
        &[
            "autoscale",
            "deployment",
            "bare",
            "--cpu-percent",
            "50",
            "--min",
            "1",
            "--max",
            "3",
        ],
    )
    .await;
    assert_eq!(rc, 0, "{out}{err}");
    eventually(Duration::from_secs(60), "ScalingActive False", || {
        let api = api.clone();
        async move {
            let (_, h) = api
                .get("/v1/namespaces/default/horizontalpodautoscalers/bare")
                .await;
            h["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "ScalingActive"
                        && c["status"] == "False"
                        && c["reason"] == "FailedGetResourceMetric"
                        && c["message"].as_str().is_some_and(|m| {
                            m.contains("missing request for cpu in container burn")
                        })
                })
            })
        }
    })
    .await;
    assert_eq!(replicas(&api, "bare").await, 1);
    c.stop().await;
}

/// Usage crosses nodes over libp2p (the process runtime here, reading
/// /proc): a pod on one node is seen through the other node's API, and
/// when its node dies its figures disappear rather than freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_is_fetched_from_the_pods_node_and_goes_with_a_dead_node() {
    let mut c = Cluster::start("ux", &["2", "2"], |c| c.metrics.resolution_ms = 1000).await;
    // Ask node 0 about a pod bound to node 1.
    let api0 = Api::new(c.nodes[0].as_ref().expect("node 0").api_addr);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: spin, labels: {app: spin}}\nspec:\n  nodeName: ux1\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do :; done\"]\n";
    let (code, v) = api0.apply(pod).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(60), "the remote pod's usage", || {
        let api0 = api0.clone();
        async move {
            let (_, v) = api0
                .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/spin")
                .await;
            v["containers"][0]["usage"]["cpu"]
                .as_str()
                .and_then(|c| c.trim_end_matches('n').parse::<u64>().ok())
                .is_some_and(|n| n > 200_000_000)
        }
    })
    .await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(30), "both nodes' usage", || {
        let api0 = api0.clone();
        async move {
            let (_, v) = api0.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
            names(&v) == ["ux0", "ux1"]
        }
    })
    .await;
    // Node 1 stops: its pod's figures and its own go with it.
    let dead = c.crash(1).await;
    let rt = dead.runtime.clone();
    dead.shutdown().await;
    eventually(
        Duration::from_secs(30),
        "the dead node's usage gone",
        || {
            let api0 = api0.clone();
            async move {
                let (_, nodes) = api0.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
                let (code, _) = api0
                    .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/spin")
                    .await;
                names(&nodes) == ["ux0"] && code == 404
            }
        },
    )
    .await;
    remove_containers_of(&rt, "ux1").await;
    c.stop().await;
}
