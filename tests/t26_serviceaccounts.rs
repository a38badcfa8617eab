//! ServiceAccounts against the real Docker engine on one node whose API
//! requires a token: every namespace gets `default`; a pod reads its
//! account's token from `/var/run/secrets/kubernetes.io/serviceaccount/`
//! and calls the API with it (view: reads yes, writes 403); deleting the
//! account revokes the token (401) and takes its Secret; automount off
//! leaves no mount; a pod naming a missing account waits with the reason
//! and starts once the account is applied.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::images::ensure_busybox_image;
use common::*;
use reqwest::Method;
use serde_json::Value;
use shoal::node::Node;
use shoal::runtime::{LABEL_CONTAINER, LABEL_POD_UID};

const ADMIN: &str = "admin-bootstrap-token";
const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

struct Harness {
    node: Node,
    api: Api,
    image: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let image = ensure_busybox_image();
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start_node(dir.path(), "t26", |c| {
            c.dev = true;
            c.api.token = Some(ADMIN.into());
            c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        })
        .await;
        assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
        let api = Api::new(node.api_addr).with_token(ADMIN);
        Harness {
            node,
            api,
            image,
            _dir: dir,
        }
    }

    async fn apply(&self, manifest: &str) {
        let (code, v) = self.api.apply(manifest).await;
        assert_eq!(code, 200, "apply: {v}\n{manifest}");
    }

    fn pod(&self, name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"sleep 3600\"]\n",
            self.image
        )
    }

    async fn wait_pod(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, p) = self
                .api
                .get(&format!(
                    "/v1/namespaces/default/pods/{name}?consistent=false"
                ))
                .await;
            if pred(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pod {name}: timed out waiting for {what}; last: {p:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn running(&self, name: &str) -> Value {
        self.wait_pod(name, "running", |p| {
            p["status"]["containerStatuses"][0]["state"]["running"].is_object()
        })
        .await
    }

    async fn container(&self, pod: &Value) -> String {
        let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
        self.node
            .runtime
            .list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid)]))
            .await
            .expect("list containers")
            .into_iter()
            .find(|c| c.labels[LABEL_CONTAINER] == "main")
            .expect("the main container")
            .id
    }

    async fn sh(&self, id: &str, script: &str) -> (i64, String) {
        let cmd = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let out = self
            .node
            .runtime
            .exec(id, &cmd, Duration::from_secs(10))
            .await
            .expect("exec");
        (
            out.exit_code,
            String::from_utf8_lossy(&out.output).into_owned(),
        )
    }

    async fn stop(self) {
        let rt = self.node.runtime.clone();
        let name = self.node.info.name.clone();
        self.node.shutdown().await;
        let mine = BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), name)]);
        for c in rt.list(&mine).await.unwrap_or_default() {
            let _ = rt.remove(&c.id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_a_pod_calls_the_api_as_its_service_account() {
    let h = Harness::start().await;
    let api = h.api.clone();

    // Every namespace has a default account, a new one too.
    h.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
        .await;
    for ns in ["default", "shop"] {
        let path = format!("/v1/namespaces/{ns}/serviceaccounts/default");
        eventually(Duration::from_secs(20), "a default ServiceAccount", || {
            let api = api.clone();
            let path = path.clone();
            async move { api.get(&path).await.0 == 200 }
        })
        .await;
    }
    // Deleted, it comes back (with a new uid).
    let path = "/v1/namespaces/shop/serviceaccounts/default";
    let old_uid = api.get(path).await.1["metadata"]["uid"].clone();
    let (code, v) = api.send(Method::DELETE, path, None).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "default made again", || {
        let api = api.clone();
        let old = old_uid.clone();
        async move {
            let (code, v) = api.get(path).await;
            code == 200 && v["metadata"]["uid"] != old
        }
    })
    .await;

    // An account and a pod using it, in one apply.
    h.apply(&format!(
        "{}---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: reader\n",
        h.pod("reader-pod", "  serviceAccountName: reader\n")
    ))
    .await;
    let p = h.running("reader-pod").await;
    let id = h.container(&p).await;
    let (code, token) = h.sh(&id, &format!("cat {DIR}/token")).await;
    assert_eq!(code, 0, "{token}");
    assert!(
        token.starts_with("serviceaccount.default.reader."),
        "{token}"
    );
    let (code, ns) = h.sh(&id, &format!("cat {DIR}/namespace")).await;
    assert_eq!((code, ns.as_str()), (0, "default"));
    // Read-only, and no CA on a plain-HTTP API.
    let (code, out) = h.sh(&id, &format!("touch {DIR}/x")).await;
    assert_ne!(code, 0, "the token's directory is read-only: {out}");
    let (code, _) = h.sh(&id, &format!("test -e {DIR}/ca.crt")).await;
    assert_ne!(code, 0, "no ca.crt without TLS");
    // The API listens on loopback only: nothing a container could reach.
    let (_, env) = h.sh(&id, "env").await;
    assert!(!env.contains("KUBERNETES_SERVICE_HOST"), "{env}");

    // The token works, as view.
    let as_pod = Api::new(h.node.api_addr).with_token(&token);
    let (code, v) = as_pod.get("/v1/namespaces/default/pods").await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = as_pod
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n")
        .await;
    assert_eq!(code, 403, "{v}");
    let (code, v) = api.get("/v1/namespaces/default/secrets/reader-token").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        v["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "reader"
    );

    // Deleting the account revokes the token and takes its Secret.
    let (code, v) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/serviceaccounts/reader",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "the token revoked", || {
        let as_pod = as_pod.clone();
        async move { as_pod.get("/v1/namespaces/default/pods").await.0 == 401 }
    })
    .await;
    eventually(Duration::from_secs(20), "the token Secret gone", || {
        let api = api.clone();
        async move {
            api.get("/v1/namespaces/default/secrets/reader-token")
                .await
                .0
                == 404
        }
    })
    .await;

    // Automount off: no mount at all.
    h.apply(&h.pod("quiet", "  automountServiceAccountToken: false\n"))
        .await;
    let p = h.running("quiet").await;
    let id = h.container(&p).await;
    let (code, out) = h.sh(&id, &format!("test -e {DIR}")).await;
    assert_ne!(code, 0, "no token directory with automount off: {out}");

    // A missing account holds the pod, naming it, until it is applied.
    h.apply(&h.pod("later", "  serviceAccountName: ghost\n"))
        .await;
    let p = h
        .wait_pod("later", "CreateContainerConfigError", |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        })
        .await;
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("serviceaccount \"ghost\" not found"), "{msg}");
    let (_, evs) = api.get("/v1/namespaces/default/events").await;
    assert!(
        evs["items"].as_array().into_iter().flatten().any(|e| {
            e["involvedObject"]["name"] == "later"
                && e["message"].as_str().is_some_and(|m| m.contains("ghost"))
        }),
        "{evs:#}"
    );
    h.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ghost\n")
        .await;
    let p = h.running("later").await;
    let id = h.container(&p).await;
    let (code, token) = h.sh(&id, &format!("cat {DIR}/token")).await;
    assert_eq!(code, 0, "{token}");
    assert!(
        token.starts_with("serviceaccount.default.ghost."),
        "{token}"
    );

    // A user's Secret under the token's name is neither replaced nor
    // mounted as the token: the pod waits, saying why, until it goes.
    h.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: taken-token\nstringData:\n  token: mine\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: taken\n---\n{}",
        h.pod("taken-pod", "  serviceAccountName: taken\n")
    ))
    .await;
    let p = h
        .wait_pod("taken-pod", "waiting for its token", |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("token of serviceaccount \"taken\" is not made yet"))
        })
        .await;
    assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_null());
    let (code, v) = api
        .send(
            Method::DELETE,
            "/v1/namespaces/default/secrets/taken-token",
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let p = h.running("taken-pod").await;
    let id = h.container(&p).await;
    let (code, token) = h.sh(&id, &format!("cat {DIR}/token")).await;
    assert_eq!(code, 0, "{token}");
    assert!(
        token.starts_with("serviceaccount.default.taken."),
        "{token}"
    );
    h.stop().await;
}

/// The token an account's Secret holds, read as admin.
async fn secret_token(api: &Api, account: &str) -> Option<String> {
    let (code, v) = api
        .get(&format!("/v1/namespaces/default/secrets/{account}-token"))
        .await;
    if code != 200 {
        return None;
    }
    let b64 = v["data"]["token"].as_str()?;
    let bytes = shoal::resource::types::decode_base64(b64).ok()?;
    String::from_utf8(bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_annotated_edit_may_write_and_a_role_change_reissues_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path(), "t26-edit", |c| {
        c.dev = true;
        c.api.token = Some(ADMIN.into());
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
    let api = Api::new(node.api_addr).with_token(ADMIN);
    let account = |role: &str| {
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ci\n  annotations:\n    shoal.io/role: {role}\n"
        )
    };
    let (code, v) = api.apply(&account("admin")).await;
    assert_eq!(code, 422, "admin is refused: {v}");
    assert!(v.to_string().contains("shoal.io/role"), "{v}");

    let (code, v) = api.apply(&account("edit")).await;
    assert_eq!(code, 200, "{v}");
    let mut token = None;
    for _ in 0..200 {
        token = secret_token(&api, "ci").await;
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let edit_token = token.expect("the account's token Secret");
    let as_ci = Api::new(node.api_addr).with_token(&edit_token);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n";
    let (code, v) = as_ci.apply(cm).await;
    assert_eq!(code, 200, "edit may write: {v}");
    // Still no Secrets for edit.
    let (code, _) = as_ci.get("/v1/namespaces/default/secrets/ci-token").await;
    assert_eq!(code, 403);

    // Back to view: a new token; the old one is refused.
    let (code, v) = api.apply(&account("view")).await;
    assert_eq!(code, 200, "{v}");
    eventually(Duration::from_secs(20), "the edit token replaced", || {
        let as_ci = as_ci.clone();
        async move { as_ci.get("/v1/namespaces/default/pods").await.0 == 401 }
    })
    .await;
    let view_token = secret_token(&api, "ci").await.expect("a new token");
    assert_ne!(view_token, edit_token);
    let as_ci = Api::new(node.api_addr).with_token(&view_token);
    assert_eq!(as_ci.get("/v1/namespaces/default/pods").await.0, 200);
    assert_eq!(as_ci.apply(cm).await.0, 403);
    node.shutdown().await;
}
