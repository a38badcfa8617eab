//! What the benchmarks that run real `shoal` processes share: finding the
//! binary and free loopback ports. Included with `#[path]`, as the tests
//! include `tests/common`.

use std::path::{Path, PathBuf};

/// The `shoal` binary built beside the example (target/PROFILE/shoal);
/// `SHOAL_BIN` overrides. Exits with a hint when it is missing.
pub fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("shoal"))
        .expect("target dir");
    if !bin.exists() {
        eprintln!(
            "{} not found; run `cargo build --release --bins --examples` first",
            bin.display()
        );
        std::process::exit(1);
    }
    bin
}

/// `n` distinct free loopback ports (bound together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// A `shoal agent --dev` started by a benchmark; killed when dropped.
pub struct DevDaemon {
    child: std::process::Child,
    /// The library's API client, talking to this daemon.
    pub api: shoal::client::Client,
}

impl DevDaemon {
    /// Starts a one-node cluster on free loopback ports with `runtime`, data
    /// in `data_dir` and, when given, a config file; returns once `/healthz`
    /// answers 200 (panics after 60 s).
    pub async fn start(
        runtime: &str,
        name: &str,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> DevDaemon {
        let p = free_ports(2);
        let mut cmd = std::process::Command::new(shoal_bin());
        cmd.args(["agent", "--dev", "--runtime", runtime, "--name", name])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", &format!("127.0.0.1:{}", p[0])])
            .args(["--p2p-addr", &format!("127.0.0.1:{}", p[1])])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match config {
            Some(c) => {
                cmd.arg("--config").arg(c);
            }
            // Without a config, an address of its own: a daemon of another
            // cluster may not share one.
            None => {
                cmd.args(["--dns-addr", "127.0.0.1:0"]);
            }
        }
        let child = cmd.spawn().expect("spawn shoal");
        let api = shoal::client::Client::new(&format!("127.0.0.1:{}", p[0]), None)
            .expect("an API client");
        let d = DevDaemon { child, api };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !healthy(&d.api).await {
            assert!(
                std::time::Instant::now() < deadline,
                "shoal never became healthy"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        d
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DevDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the node behind `api` answers `/healthz` with 200.
pub async fn healthy(api: &shoal::client::Client) -> bool {
    api.send_within(
        reqwest::Method::GET,
        "/healthz",
        None,
        Some(std::time::Duration::from_secs(2)),
    )
    .await
    .is_ok()
}
