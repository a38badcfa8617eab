//! The API's credentials: tokens with roles, their revocation and expiry,
//! the audit log, per-client stream caps, TLS with the cluster CA, and the
//! refusal to serve beyond loopback without a token.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-bootstrap-token";

async fn dev_node(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut shoal::config::Config),
) -> (shoal::node::Node, Api) {
    let node = start_node(dir, "dev", |c| {
        c.dev = true;
        c.api.token = Some(ADMIN.into());
        tweak(c);
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    let api = Api::new(node.api_addr).with_token(ADMIN);
    (node, api)
}

async fn make_token(api: &Api, name: &str, role: &str, ttl: Option<u64>) -> String {
    let mut body = json!({"name": name, "role": role});
    if let Some(t) = ttl {
        body["ttlSeconds"] = json!(t);
    }
    let (code, v) = api
        .send(
            Method::POST,
            "/v1/tokens",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    v["token"].as_str().expect("token in answer").to_string()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: shoal/busybox:latest\n";
const SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_allow_what_they_must_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (node, admin) = dev_node(dir.path(), |_| {}).await;
    let addr = node.api_addr;
    assert_eq!(admin.apply(SECRET).await.0, 200);

    let edit = Api::new(addr).with_token(&make_token(&admin, "ci", "edit", None).await);
    let view = Api::new(addr).with_token(&make_token(&admin, "dash", "view", None).await);
    let scrape = Api::new(addr).with_token(&make_token(&admin, "prom", "metrics", None).await);

    // A token is shown once and stored only as a hash.
    let (code, v) = admin.get("/v1/tokens/ci").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"]["role"], "edit");
    assert_eq!(v["spec"]["secretSha256"].as_str().unwrap().len(), 64);
    assert!(
        !v.to_string()
            .contains(edit.token.as_ref().unwrap().rsplit_once('.').unwrap().1)
    );

    // edit: workloads yes, Secrets write-only, no nodes, no tokens.
    let (code, v) = edit.apply(DEPLOYMENT).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        edit.get("/v1/namespaces/default/deployments/web").await.0,
        200
    );
    let (code, v) = edit.get("/v1/namespaces/default/secrets/db").await;
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("role edit"), "{v}");
    assert_eq!(edit.get("/v1/secrets").await.0, 403);
    assert_eq!(
        edit.get("/v1/namespaces/default/secrets?watch=true")
            .await
            .0,
        403
    );
    assert_eq!(edit.apply(SECRET).await.0, 200, "edit may write a Secret");
    eventually(Duration::from_secs(10), "the node registers", || {
        let edit = edit.clone();
        async move { edit.get("/v1/nodes/dev").await.0 == 200 }
    })
    .await;
    let (_, node_obj) = edit.get("/v1/nodes/dev").await;
    let (code, v) = edit
        .send(
            Method::PUT,
            "/v1/nodes/dev",
            Some(serde_json::to_vec(&node_obj).unwrap()),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    assert_eq!(edit.get("/v1/tokens").await.0, 403);
    let (code, _) = edit
        .send(
            Method::POST,
            "/v1/tokens",
            Some(br#"{"name":"x","role":"admin"}"#.to_vec()),
        )
        .await;
    assert_eq!(code, 403, "edit cannot mint an admin token");

    // view: reads (not Secrets), no writes.
    assert_eq!(view.get("/v1/namespaces/default/deployments").await.0, 200);
    assert_eq!(view.get("/v1/namespaces/default/configmaps").await.0, 200);
    assert_eq!(view.get("/v1/namespaces/default/secrets/db").await.0, 403);
    assert_eq!(view.apply(&configmap("v", "1")).await.0, 403);
    let (code, _) = view
        .send(
            Method::DELETE,
            "/v1/namespaces/default/deployments/web",
            None,
        )
        .await;
    assert_eq!(code, 403);

    // metrics: /metrics only.
    assert_eq!(scrape.get("/metrics").await.0, 200);
    assert_eq!(scrape.get("/v1/namespaces/default/pods").await.0, 403);
    assert_eq!(scrape.get("/v1/raft").await.0, 403);

    // A wrong secret for a real name, and an unknown name: 401.
    let forged = format!("ci.{}", "0".repeat(64));
    assert_eq!(
        Api::new(addr).with_token(&forged).get("/v1/raft").await.0,
        401
    );
    assert_eq!(Api::new(addr).get("/v1/raft").await.0, 401);

    // Revoked: refused from then on.
    let (code, v) = admin.send(Method::DELETE, "/v1/tokens/dash", None).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(5),
        "the revoked token is refused",
        || {
            let view = view.clone();
            async move { view.get("/v1/namespaces/default/pods").await.0 == 401 }
        },
    )
    .await;

    // Expired: refused with a message that says so.
    let short = Api::new(addr).with_token(&make_token(&admin, "short", "view", Some(1)).await);
    assert_eq!(short.get("/v1/raft").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, v) = short.get("/v1/raft").await;
    assert_eq!(code, 401);
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");

    // Tokens cannot be applied as manifests, even by an admin.
    let (code, v) = admin
        .apply("apiVersion: shoal.io/v1\nkind: Token\nmetadata:\n  name: t\nspec:\n  role: admin\n  secretSha256: aa\n")
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("shoal token create"),
        "{v}"
    );

    // The audit log names who wrote what, refusals included.
    let audit = dir.path().join("data").join("audit").join("audit.log");
    eventually(Duration::from_secs(5), "audit records are written", || {
        let audit = audit.clone();
        async move {
            let text = std::fs::read_to_string(&audit).unwrap_or_default();
            text.contains("\"user\":\"ci\"") && text.contains("\"status\":403")
        }
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let applied = lines
        .iter()
        .find(|l| l["user"] == "ci" && l["path"] == "/v1/apply" && l["status"] == 200)
        .expect("the edit token's apply is audited");
    assert_eq!(applied["role"], "edit");
    assert_eq!(applied["objects"][0], "Deployment/default/web");
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "dash" && l["status"] == 403 && l["method"] == "POST")
    );
    assert!(!text.contains("GET"), "reads are not audited");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777,
        0o600
    );
    node.shutdown().await;
}

/// Opens a watch and returns the response once its headers arrived.
async fn open_watch(api: &Api, path: &str) -> reqwest::Response {
    api.client
        .call(Method::GET, path, None, None)
        .await
        .expect("request reaches the API")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_watch() {
    let dir = tempfile::tempdir().unwrap();
    let (node, admin) = dev_node(dir.path(), |c| c.api.max_watches_per_client = 2).await;
    let other =
        Api::new(node.api_addr).with_token(&make_token(&admin, "other", "view", None).await);
    let path = "/v1/namespaces/default/configmaps?watch=true";
    let w1 = open_watch(&admin, path).await;
    let w2 = open_watch(&admin, path).await;
    assert_eq!((w1.status().as_u16(), w2.status().as_u16()), (200, 200));
    let w3 = open_watch(&admin, path).await;
    assert_eq!(w3.status().as_u16(), 429);
    let text = w3.text().await.unwrap();
    assert!(text.contains("max_watches_per_client"), "{text}");
    // Another client has its own allowance.
    let o = open_watch(&other, path).await;
    assert_eq!(o.status().as_u16(), 200);
    // A closed watch frees its slot.
    drop(w1);
    eventually(
        Duration::from_secs(5),
        "the closed watch's slot is free",
        || {
            let admin = admin.clone();
            async move { open_watch(&admin, path).await.status().as_u16() == 200 }
        },
    )
    .await;
    drop((w2, o));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_cluster_ca_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cluster.key");
    std::fs::write(&key_file, shoal::net::cluster_key_text(&libp2p_key(3))).unwrap();
    let (node, _) = {
        let node = start_node(dir.path(), "dev", |c| {
            c.dev = true;
            c.api.token = Some(ADMIN.into());
            c.api.tls = shoal::api::TlsMode::On;
            c.cluster_key_file = Some(key_file.clone());
        })
        .await;
        assert!(node.wait_ready(Duration::from_secs(10)).await);
        (node, ())
    };
    let addr = node.api_addr.to_string();
    let right = shoal::api::tls::ClusterCa::derive(&[3; 32])
        .unwrap()
        .cert_pem();
    let wrong = shoal::api::tls::ClusterCa::derive(&[4; 32])
        .unwrap()
        .cert_pem();

    let ok =
        shoal::client::Client::with_ca(&addr, Some(ADMIN.into()), Some(right.as_bytes())).unwrap();
    let v = ok
        .send(Method::GET, "/v1/raft", None)
        .await
        .expect("TLS with the cluster CA works");
    assert!(v["node"]["name"] == "dev", "{v}");

    let bad =
        shoal::client::Client::with_ca(&addr, Some(ADMIN.into()), Some(wrong.as_bytes())).unwrap();
    let e = bad
        .send(Method::GET, "/v1/raft", None)
        .await
        .expect_err("a wrong CA is refused");
    assert!(e.to_string().contains("certificate"), "{e}");

    let plain = shoal::client::Client::new(&addr, Some(ADMIN.into())).unwrap();
    assert!(
        plain.send(Method::GET, "/v1/raft", None).await.is_err(),
        "no plain HTTP"
    );

    // The CLI: `shoal ca` prints the same CA, and --ca-file uses it.
    let (code, out, err) = shoal_cli(
        &addr,
        &["ca", "--cluster-key-file", key_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, right);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &out).unwrap();
    let (code, out, err) = shoal_cli(
        &addr,
        &[
            "--ca-file",
            ca_file.to_str().unwrap(),
            "--token",
            ADMIN,
            "raft",
            "status",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("leader"), "{out}");
    node.shutdown().await;
}

fn libp2p_key(byte: u8) -> libp2p::pnet::PreSharedKey {
    libp2p::pnet::PreSharedKey::new([byte; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_api_beyond_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = shoal::config::Config::for_test(dir.path(), "open");
    cfg.dev = true;
    cfg.api_addr = "0.0.0.0:0".into();
    let e = match shoal::node::Node::start(cfg).await {
        Ok(_) => panic!("a node with an open API and no token must not start"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("api.token"), "{e}");
}
