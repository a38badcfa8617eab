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

#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(unused_imports)] // not every benchmark needs a single port
pub use ports::{free_port, free_ports};

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
    /// SIGTERM first, so the daemon stops cleanly (its nftables table,
    /// on the kernel data path, is deleted only by a clean stop); SIGKILL
    /// after 10 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
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

/// A small keep-alive HTTP/1.1 server for load tests: answers every request
/// on a connection with `body` until the client closes it or asks to.
pub async fn http_upstream(l: tokio::net::TcpListener, body: &'static str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            loop {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            continue;
                        }
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                buf.drain(..end + 4);
                let close = head.contains("connection: close");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n{body}",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                );
                if s.write_all(resp.as_bytes()).await.is_err() || close {
                    return;
                }
            }
        });
    }
}

/// A duration as wrk prints it (`812.00us`, `1.20ms`, `2.01s`), in ms.
pub fn wrk_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}
