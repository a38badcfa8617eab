//! Helpers shared by the integration tests: in-process nodes on loopback and
//! a small HTTP client for their APIs.
#![allow(dead_code)]

pub mod cluster;
pub mod images;
pub mod kubectl;
pub mod ports;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shoal::config::Config;
use shoal::node::Node;

// Not every test binary that includes this module picks ports.
#[allow(unused_imports)]
pub use ports::{free_port, free_ports};

/// Lets other users through `dir` (tempdir makes it 0700): process pods
/// run as `nobody` and their working directories are below it.
pub fn open_to_pods(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .expect("chmod the test dir");
}

/// A temporary directory process pods (running as `nobody`) may write to,
/// for host paths a test shares with them.
pub fn pod_writable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod the shared dir");
    dir
}

/// Starts a node with test settings; `tweak` adjusts the config first.
/// Its data dir is `dir/data`, its process pods' directories `dir/pods`.
pub async fn start_node(dir: &Path, name: &str, tweak: impl FnOnce(&mut Config)) -> Node {
    open_to_pods(dir);
    let mut cfg = Config::for_test(dir, name);
    tweak(&mut cfg);
    Node::start(cfg).await.expect("node starts")
}

/// The first advertised p2p address of a node, as HOST:PORT.
pub fn p2p_host_port(node: &Node) -> String {
    let ma = node
        .info
        .p2p_addrs
        .first()
        .expect("node advertises an address");
    // /ip4/127.0.0.1/tcp/PORT
    let parts: Vec<&str> = ma.split('/').collect();
    format!("{}:{}", parts[2], parts[4])
}

/// Starts a node, retrying for a few seconds while its fixed port is still
/// held (a node just stopped in this process, or another test raced for it).
pub async fn restart_node(dir: &Path, name: &str, tweak: impl Fn(&mut Config)) -> Node {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    open_to_pods(dir);
    loop {
        let mut cfg = Config::for_test(dir, name);
        tweak(&mut cfg);
        match Node::start(cfg).await {
            Ok(n) => return n,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("restart of {name} failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("node {name} does not restart: {e}"),
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// HTTP helper bound to one node's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    /// For the few tests that need a bare request (raw bodies, headers).
    pub http: reqwest::Client,
    pub token: Option<String>,
    /// The library's client, which every request of [`Api::send`] goes through.
    pub client: shoal::client::Client,
}

impl Api {
    pub fn new(addr: impl std::fmt::Display) -> Api {
        let base = format!("http://{addr}");
        Api {
            client: shoal::client::Client::new(&base, None).expect("client"),
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            token: None,
        }
    }

    pub fn with_token(mut self, t: &str) -> Api {
        self.token = Some(t.to_string());
        self.client = shoal::client::Client::new(&self.base, self.token.clone()).expect("client");
        self
    }

    /// Status and JSON body (a body that is not JSON as a string), whatever the status.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let resp = self
            .client
            .call(method, path, body, Some(Duration::from_secs(20)))
            .await
            .expect("request reaches the API");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn apply(&self, manifest: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/v1/apply",
            Some(manifest.as_bytes().to_vec()),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
}

/// A small ConfigMap manifest with one key.
pub fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// A real `shoal agent --dev` process on loopback ports, its output
/// discarded; its data dir is `dir/data` (and its process pods' `dir/data-pods`).
pub fn spawn_dev_agent(
    dir: &Path,
    name: &str,
    runtime: &str,
    api_port: u16,
    p2p_port: u16,
) -> DevAgent {
    open_to_pods(dir);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["agent", "--dev", "--runtime", runtime, "--name", name])
        // Each is its own cluster: none may share another's DNS address.
        .args(["--dns-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--api-addr", &format!("127.0.0.1:{api_port}")])
        .args(["--p2p-addr", &format!("127.0.0.1:{p2p_port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn shoal agent");
    DevAgent(child)
}

/// A spawned `shoal agent`, killed and reaped when dropped: a test that
/// fails half-way leaves no daemon running (one did, for two hours).
pub struct DevAgent(std::process::Child);

impl std::ops::Deref for DevAgent {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for DevAgent {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for DevAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the node's `/healthz` answers 200 (generously: CI runs
/// many daemons at once on two cores).
pub async fn wait_healthy(api: &Api) {
    eventually(
        Duration::from_secs(60),
        "the agent reports healthy",
        || async {
            match api.http.get(format!("{}/healthz", api.base)).send().await {
                Ok(r) => r.status() == 200,
                Err(_) => false,
            }
        },
    )
    .await;
}

/// Exit code, stdout and stderr of the `shoal` binary run as
/// `shoal --addr ADDR ARGS...` (with no address or token from the
/// environment).
pub async fn shoal_cli(addr: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("SHOAL_ADDR")
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_CA_FILE")
        .output()
        .await
        .expect("the shoal binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
