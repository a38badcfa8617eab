//! The real kubectl (Debian's kubernetes-client) against a three-node
//! cluster through a follower, with a kubeconfig from `shoal kubeconfig`:
//! discovery, apply (create, then a strategic-merge patch), get with -o json
//! and -l, a watch seeing an event, delete, and Kubernetes' error messages.
//! Without kubectl the test fails (CI installs it in .ci/setup).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::cluster::*;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use shoal::node::Node;
use tokio::io::{AsyncBufReadExt, BufReader};

fn kubectl_binary() -> PathBuf {
    let path = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    assert!(
        path.exists(),
        "kubectl not found at {} (set KUBECTL, or install Debian's kubernetes-client: \
         apt-get install kubernetes-client, as .ci/setup does)",
        path.display()
    );
    path
}

struct Kubectl {
    bin: PathBuf,
    config: PathBuf,
    /// kubectl's discovery cache and HOME: this test's own.
    home: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.config)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            self.command(args).stdin(Stdio::null()).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 60 s"))
        .expect("kubectl runs");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.ok,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    /// Runs and requires failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            !o.ok,
            "kubectl {args:?} succeeded:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stderr
    }
}

fn manifest(version: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: host
        command: ["sh", "-c", "echo hello-from-$VERSION; exec sleep 3600"]
        env:
        - name: VERSION
          value: "{version}"
        - name: KEEP
          value: "yes"
        resources:
          requests:
            cpu: 100m
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
"#
    )
}

async fn shoal_kubeconfig(addr: &str, token: &str, ca_file: &Path, out: &Path) -> String {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--addr", addr, "--token", token, "--ca-file"])
        .arg(ca_file)
        .arg("kubeconfig")
        .output()
        .await
        .expect("shoal runs");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "shoal kubeconfig failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(out, &text).expect("write the kubeconfig");
    text
}

const ADMIN: &str = "t99-admin-token";

/// Three nodes as Cluster::start makes them, but as a real deployment
/// runs: the API over TLS with the cluster CA and a token (kubectl sends a
/// token only over https). Returns the nodes, their directories and the CA.
async fn start_tls_cluster() -> (Vec<Node>, Vec<tempfile::TempDir>, String) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let key_file = dirs[0].path().join("cluster.key");
    std::fs::write(
        &key_file,
        shoal::net::cluster_key_text(&libp2p::pnet::PreSharedKey::new([9; 32])),
    )
    .unwrap();
    let ca = shoal::api::tls::ClusterCa::derive(&[9; 32])
        .expect("the CA")
        .cert_pem();
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let seeds: Vec<String> = ports
            .iter()
            .filter(|p| *p != port)
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        nodes.push(
            start_node(dirs[i].path(), &format!("kc{i}"), |c| {
                c.p2p_addr = format!("127.0.0.1:{port}");
                c.join = seeds;
                c.bootstrap_expect = Some(3);
                c.cluster_key_file = Some(key_file.clone());
                c.api.token = Some(ADMIN.into());
                c.api.tls = shoal::api::TlsMode::On;
                c.agent.capacity_cpu = Some("2".into());
                c.agent.capacity_memory = Some("8Gi".into());
                c.agent.reserved_cpu = "0".into();
                c.agent.reserved_memory = "0".into();
                c.agent.resync_ms = 300;
            })
            .await,
        );
    }
    for n in &nodes {
        assert!(
            n.wait_ready(Duration::from_secs(30)).await,
            "{} ready",
            n.info.name
        );
    }
    (nodes, dirs, ca)
}

/// The test helper's client, over TLS with the cluster CA.
fn tls_api(addr: &str, token: &str, ca: &str) -> Api {
    Api {
        base: format!("https://{addr}"),
        http: reqwest::Client::new(),
        token: Some(token.into()),
        client: shoal::client::Client::with_ca(addr, Some(token.into()), Some(ca.as_bytes()))
            .expect("client"),
    }
}

async fn make_token(api: &Api, name: &str, role: &str) -> String {
    let (code, v) = api
        .send(
            Method::POST,
            "/v1/tokens",
            Some(serde_json::to_vec(&json!({"name": name, "role": role})).unwrap()),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    // A write through a follower returns once the leader committed it; a
    // linearizable read there waits until the follower has applied it, so
    // the token is known where it is about to be used.
    let (code, list) = api.get("/v1/tokens").await;
    assert_eq!(code, 200, "{list}");
    v["token"].as_str().expect("a token").to_string()
}

/// kubectl with a kubeconfig for `addr` and a new token of `role`, in a
/// directory of its own (returned, to keep it alive).
async fn kubectl_with_token(
    admin: &Api,
    addr: &str,
    ca: &str,
    name: &str,
    role: &str,
) -> (Kubectl, tempfile::TempDir) {
    let token = make_token(admin, name, role).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let config = dir.path().join("kubeconfig");
    shoal_kubeconfig(addr, &token, &ca_file, &config).await;
    let k = Kubectl {
        bin: kubectl_binary(),
        config,
        home: dir.path().to_path_buf(),
    };
    (k, dir)
}

fn names(list: &Value, kind: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_works_through_a_follower() {
    let bin = kubectl_binary();
    let (nodes, _dirs, ca) = start_tls_cluster().await;
    let leader = nodes
        .iter()
        .position(|n| n.store.leader().map(|(id, _)| id) == Some(n.store.node_id()))
        .expect("a leader");
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let addr = nodes[follower].api_addr.to_string();
    let admin = tls_api(&addr, ADMIN, &ca);
    eventually(Duration::from_secs(20), "all Node objects", || {
        let api = admin.clone();
        async move {
            let (_, v) = api.get("/v1/nodes").await;
            v["items"].as_array().map(Vec::len) == Some(3)
        }
    })
    .await;
    // kubectl works with a stored token of the edit role, checked as any
    // bearer token is.
    let token = make_token(&admin, "kubectl", "edit").await;
    let viewer = make_token(&admin, "viewer", "view").await;
    let api = admin.clone();

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let config = dir.path().join("kubeconfig");
    let text = shoal_kubeconfig(&addr, &token, &ca_file, &config).await;
    assert!(
        text.contains(&format!("server: \"https://{addr}\"")),
        "{text}"
    );
    assert!(text.contains("certificate-authority-data"), "{text}");
    assert!(!text.contains("insecure"), "{text}");
    // The other two nodes are contexts of their own.
    assert_eq!(text.matches("cluster: \"shoal-kc").count(), 2, "{text}");
    let k = Kubectl {
        bin,
        config: config.clone(),
        home: dir.path().to_path_buf(),
    };

    // Discovery.
    let res = k.ok(&["api-resources"]).await;
    let deploy = res
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_else(|| panic!("no deployments in:\n{res}"));
    assert!(
        deploy.contains("deploy") && deploy.contains("apps/v1") && deploy.contains("true"),
        "{deploy}"
    );
    assert!(res.lines().any(|l| l.starts_with("nodes ")), "{res}");

    // Apply creates.
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, manifest("1", 2)).unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["apply", "-f", f]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    // Again, unchanged: kubectl computes an empty patch.
    let out = k.ok(&["apply", "-f", f]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    // create of what exists: AlreadyExists.
    let err = k.fails(&["create", "-f", f]).await;
    assert!(
        err.contains(r#"Error from server (AlreadyExists): error when creating"#)
            && err.contains(r#"deployments.apps "web" already exists"#),
        "{err}"
    );

    // The deployment's pods come up (process runtime).
    eventually(Duration::from_secs(60), "two web pods", || {
        let api = api.clone();
        async move {
            let (_, v) = api.get("/v1/namespaces/default/pods").await;
            v["items"].as_array().map(Vec::len) == Some(2)
        }
    })
    .await;

    // Logs, through the Kubernetes path of the pod's log.
    let mut logs = String::new();
    for _ in 0..40 {
        logs = k.ok(&["logs", "deploy/web"]).await;
        if logs.contains("hello-from-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(logs.contains("hello-from-1"), "{logs}");

    let all: Value = serde_json::from_str(&k.ok(&["get", "deploy,svc,pods", "-o", "json"]).await)
        .expect("kubectl prints JSON");
    assert_eq!(all["kind"], "List");
    assert_eq!(names(&all, "Deployment"), ["web"]);
    assert_eq!(names(&all, "Service"), ["web"]);
    assert_eq!(names(&all, "Pod").len(), 2, "{all:#}");
    let svc = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Service")
        .unwrap();
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty()),
        "{svc:#}"
    );
    let d = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{d:#}"
    );

    // Table answers: kubectl prints shoal's columns.
    let out = k.ok(&["get", "deploy", "web"]).await;
    assert!(
        out.starts_with("NAME") && out.contains("UP-TO-DATE"),
        "{out}"
    );
    let out = k.ok(&["get", "pods", "-A"]).await;
    assert!(
        out.starts_with("NAMESPACE") && out.contains("STATUS"),
        "{out}"
    );

    // Label selectors.
    let out = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("pod/web-")).count(),
        2,
        "{out}"
    );
    let o = k.run(&["get", "pods", "-l", "app=nope"]).await;
    assert!(
        o.ok && o.stderr.contains("No resources found"),
        "{}",
        o.stderr
    );
    // A field selector.
    let out = k
        .ok(&[
            "get",
            "svc",
            "--field-selector",
            "metadata.name=web",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "service/web");

    // A watch, then an edit applied: the watch sees the new pods.
    let before: Vec<String> = out_lines(&k.ok(&["get", "pods", "-o", "name"]).await);
    let mut watch = k
        .command(&["get", "pods", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();

    std::fs::write(&file, manifest("2", 3)).unwrap();
    let out = k.ok(&["apply", "-f", f]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("pod/") && !before.contains(&l) {
                return l;
            }
        }
        panic!("the watch ended without a new pod");
    })
    .await
    .expect("kubectl get -w saw a new pod within 60 s");
    assert!(seen.starts_with("pod/web-"), "{seen}");
    let _ = watch.kill().await;

    // The patch merged the container by name: the edit landed, the rest kept.
    let (_, d) = api.get("/v1/namespaces/default/deployments/web").await;
    assert_eq!(d["spec"]["replicas"], 3, "{d:#}");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{d:#}");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "VERSION", "value": "2"}, {"name": "KEEP", "value": "yes"}])
    );
    let replicas = k
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(replicas, "3");

    // A merge patch, and a JSON patch.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels","value":{"patched":"json"}}]"#,
    ])
    .await;
    let out = k
        .ok(&["get", "deploy,svc", "-l", "patched", "-o", "name"])
        .await;
    assert_eq!(out_lines(&out), ["deployment.apps/web", "service/web"]);

    // Errors as Kubernetes words them.
    let err = k.fails(&["get", "deploy", "nope"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): deployments.apps "nope" not found"#),
        "{err}"
    );
    let err = k.fails(&["get", "widgets"]).await;
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );

    // Delete, then the object is gone.
    let out = k.ok(&["delete", "svc", "web"]).await;
    assert!(out.contains(r#"service "web" deleted"#), "{out}");
    let err = k.fails(&["get", "svc", "web"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): services "web" not found"#),
        "{err}"
    );
    let out = k.ok(&["delete", "-f", f, "--ignore-not-found"]).await;
    assert!(out.contains(r#"deployment.apps "web" deleted"#), "{out}");
    assert_eq!(
        api.get("/v1/namespaces/default/deployments/web").await.0,
        404
    );

    // Another node, by its context.
    let others: Vec<String> = (0..3)
        .filter(|i| *i != follower)
        .map(|i| format!("shoal-kc{i}"))
        .collect();
    let other = k
        .ok(&["--context", &others[0], "get", "nodes", "-o", "name"])
        .await;
    let other2 = k
        .ok(&["--context", &others[1], "get", "nodes", "-o", "name"])
        .await;
    assert_eq!(out_lines(&other).len(), 3, "{other}");
    assert_eq!(other, other2);

    // The token is what lets kubectl in, and its role is enforced.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, text.replace(&token, "kubectl.0000")).unwrap();
    let k_bad = Kubectl {
        bin: k.bin.clone(),
        config: bad,
        home: k.home.clone(),
    };
    let err = k_bad.fails(&["get", "pods"]).await;
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    let view = dir.path().join("view");
    std::fs::write(&view, text.replace(&token, &viewer)).unwrap();
    let k_view = Kubectl { config: view, ..k };
    k_view.ok(&["get", "pods"]).await;
    let err = k_view.fails(&["apply", "-f", f]).await;
    assert!(err.contains("Forbidden"), "{err}");

    for n in nodes {
        let (rt, name) = (n.runtime.clone(), n.info.name.clone());
        n.shutdown().await;
        remove_containers_of(&rt, &name).await;
    }
}

fn out_lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// `kubectl drain` finds `pods/eviction` in discovery and evicts through
/// it, so disruption budgets hold; an eviction a budget forbids is a 429
/// `Status` kubectl retries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_drain_evicts_through_the_eviction_subresource() {
    let (nodes, _dirs, ca) = start_tls_cluster().await;
    let addr = nodes[0].api_addr.to_string();
    let admin = tls_api(&addr, ADMIN, &ca);
    let (k, dir) = kubectl_with_token(&admin, &addr, &ca, "drainer", "admin").await;

    let f = dir.path().join("drained.yaml");
    let budgeted = |name: &str, replicas: u32, min: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: host\n        command: [\"sleep\", \"3600\"]\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\nspec:\n  minAvailable: {min}\n  selector:\n    matchLabels:\n      app: {name}\n"
        )
    };
    std::fs::write(
        &f,
        format!(
            "{}---\n{}",
            budgeted("drained", 3, 2),
            budgeted("solo", 1, 1)
        ),
    )
    .unwrap();
    k.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    let running = |app: &'static str| {
        let api = admin.clone();
        async move {
            let (_, list) = api.get("/v1/namespaces/default/pods").await;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["metadata"]["labels"]["app"] == app)
                .filter(|p| p["status"]["phase"] == "Running")
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    eventually(Duration::from_secs(60), "every pod ready", || async {
        running("drained").await.len() == 3 && running("solo").await.len() == 1
    })
    .await;

    // A budget that allows no disruption: 429, a Status kubectl knows.
    let solo = running("solo").await.remove(0).0;
    let (code, v) = admin
        .send(
            Method::POST,
            &format!("/api/v1/namespaces/default/pods/{solo}/eviction"),
            Some(
                json!({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": solo, "namespace": "default"}})
                .to_string()
                .into_bytes(),
            ),
        )
        .await;
    assert_eq!(code, 429, "{v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["reason"], "TooManyRequests", "{v}");
    let solo_node = running("solo").await.remove(0).1;

    // Drain a node that runs a budgeted pod, and not the solo one (whose
    // budget would hold the drain forever, as in Kubernetes).
    let target = running("drained")
        .await
        .into_iter()
        .map(|(_, node)| node)
        .find(|n| *n != solo_node);
    let Some(target) = target else {
        // All three on the solo pod's node: no node to drain without
        // blocking on the solo budget. Spread makes it unlikely; say so.
        panic!("every pod landed on {solo_node}; the scheduler spreads them normally");
    };
    let out = k
        .ok(&["drain", &target, "--ignore-daemonsets", "--timeout=50s"])
        .await;
    eprintln!("kubectl drain: {out}");
    assert!(out.contains("evicted"), "{out}");
    assert!(
        !out.contains(" deleted"),
        "pods are evicted, not deleted: {out}"
    );
    let node = k
        .ok(&[
            "get",
            "node",
            &target,
            "-o",
            "jsonpath={.spec.unschedulable}",
        ])
        .await;
    assert_eq!(node, "true");
    eventually(
        Duration::from_secs(60),
        "three ready again, none on the drained node",
        || async {
            let pods = running("drained").await;
            pods.len() == 3 && pods.iter().all(|(_, n)| *n != target)
        },
    )
    .await;
    k.ok(&["uncordon", &target]).await;

    for n in nodes {
        let (rt, name) = (n.runtime.clone(), n.info.name.clone());
        n.shutdown().await;
        remove_containers_of(&rt, &name).await;
    }
}

/// `kubectl diff`, and `--dry-run=server` on apply, create and delete:
/// decided in full by the server, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_diff_and_server_dry_runs_write_nothing() {
    let (nodes, _dirs, ca) = start_tls_cluster().await;
    let addr = nodes[1].api_addr.to_string();
    let admin = tls_api(&addr, ADMIN, &ca);
    let (k, dir) = kubectl_with_token(&admin, &addr, &ca, "differ", "edit").await;
    let f = dir.path().join("web.yaml");
    let file = f.to_str().unwrap();
    std::fs::write(&f, manifest("v1", 1)).unwrap();
    k.ok(&["apply", "-f", file]).await;
    let live = |what: &'static str| {
        let api = admin.clone();
        async move { api.get(what).await }
    };
    let (_, before) = live("/v1/namespaces/default/deployments/web").await;

    std::fs::write(&f, manifest("v2", 3)).unwrap();
    let d = k.run(&["diff", "-f", file]).await;
    assert!(!d.ok, "kubectl diff exits 1 on a difference: {}", d.stderr);
    assert!(d.stderr.is_empty(), "{}", d.stderr);
    assert!(d.stdout.contains("-  replicas: 1"), "{}", d.stdout);
    assert!(d.stdout.contains("+  replicas: 3"), "{}", d.stdout);
    assert!(d.stdout.contains("+          value: v2"), "{}", d.stdout);

    let out = k.ok(&["apply", "--dry-run=server", "-f", file]).await;
    assert!(out.contains("(server dry run)"), "{out}");
    let out = k
        .ok(&["delete", "deployment", "web", "--dry-run=server"])
        .await;
    assert!(out.contains("(server dry run)"), "{out}");
    let c = dir.path().join("cm.yaml");
    std::fs::write(
        &c,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: never\ndata:\n  k: v\n",
    )
    .unwrap();
    let out = k
        .ok(&["create", "--dry-run=server", "-f", c.to_str().unwrap()])
        .await;
    assert!(
        out.contains("configmap/never created (server dry run)"),
        "{out}"
    );
    // A server dry run still refuses what a write would: the validation ran.
    std::fs::write(
        &c,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata:\n  k: v\n",
    )
    .unwrap();
    k.fails(&["create", "--dry-run=server", "-f", c.to_str().unwrap()])
        .await;

    // Nothing was written.
    let (_, after) = live("/v1/namespaces/default/deployments/web").await;
    // (Its status moves on as its pod starts; its spec and generation not.)
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["spec"]["replicas"], 1, "{after}");
    let (code, _) = live("/v1/namespaces/default/configmaps/never").await;
    assert_eq!(code, 404);
    let (code, v) = admin
        .send(
            Method::DELETE,
            "/apis/apps/v1/namespaces/default/deployments/web?dryRun=Maybe",
            None,
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("dryRun"),
        "{v}"
    );

    for n in nodes {
        let (rt, name) = (n.runtime.clone(), n.info.name.clone());
        n.shutdown().await;
        remove_containers_of(&rt, &name).await;
    }
}
