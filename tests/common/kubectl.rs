//! The real kubectl against a TLS cluster of in-process nodes: its binary
//! (a clear failure when missing), a kubeconfig from `shoal kubeconfig`,
//! and runs with a timeout. (t99 predates this module and keeps its own copy.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use shoal::node::Node;

use super::{Api, free_ports, start_node};

/// kubectl at $KUBECTL or /usr/bin/kubectl; panics with how to get it.
pub fn kubectl_binary() -> PathBuf {
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

pub struct Kubectl {
    pub bin: PathBuf,
    pub config: PathBuf,
    /// kubectl's discovery cache and HOME: this test's own.
    pub home: PathBuf,
}

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
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

    pub async fn run(&self, args: &[&str]) -> Out {
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
    pub async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            o.ok,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    /// Runs and requires failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(
            !o.ok,
            "kubectl {args:?} succeeded:\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stderr
    }
}

/// Writes `shoal kubeconfig`'s output for `addr` to `out`.
pub async fn shoal_kubeconfig(addr: &str, token: &str, ca_file: &Path, out: &Path) -> String {
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

/// Three nodes named `{prefix}{i}` with the API over TLS (kubectl sends a
/// token only over https) and `admin` as the admin token. Returns the
/// nodes, their directories and the cluster CA.
pub async fn start_tls_cluster(
    prefix: &str,
    admin: &str,
) -> (Vec<Node>, Vec<tempfile::TempDir>, String) {
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
            start_node(dirs[i].path(), &format!("{prefix}{i}"), |c| {
                c.p2p_addr = format!("127.0.0.1:{port}");
                c.join = seeds;
                c.bootstrap_expect = Some(3);
                c.cluster_key_file = Some(key_file.clone());
                c.api.token = Some(admin.into());
                c.api.tls = shoal::api::TlsMode::On;
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

/// The index of a node that is not the Raft leader.
pub fn follower(nodes: &[Node]) -> usize {
    let leader = nodes
        .iter()
        .position(|n| n.store.leader().map(|(id, _)| id) == Some(n.store.node_id()))
        .expect("a leader");
    (0..nodes.len()).find(|i| *i != leader).expect("a follower")
}

/// The test helper's client, over TLS with the cluster CA.
pub fn tls_api(addr: &str, token: &str, ca: &str) -> Api {
    Api {
        base: format!("https://{addr}"),
        http: reqwest::Client::new(),
        token: Some(token.into()),
        client: shoal::client::Client::with_ca(addr, Some(token.into()), Some(ca.as_bytes()))
            .expect("client"),
    }
}

/// A stored token of `role`, made through `/v1/tokens`.
pub async fn make_token(api: &Api, name: &str, role: &str) -> String {
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
