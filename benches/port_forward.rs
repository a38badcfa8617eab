//! `shoal port-forward`'s cost: one large transfer (throughput) and small
//! request/response round trips (latency) through a forward opened on the
//! pod's own node and on another node, against a direct connection to the
//! pod's port, in the same run, alternating.
//!
//! A two-node cluster of real `shoal agent` processes (process runtime, so
//! no image is needed); the pod is this binary in `serve` mode, pinned to
//! node 0. Each forward is a real `shoal port-forward` process: what a user
//! measures, CLI relay included.
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/port_forward`.
//! Env: `MIB` per transfer (default 256), `ROUNDS` (default 3), `PINGS` per
//! round (default 2000), `CONNECTS` per round (default 200).

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use shoal::client::{Client, object_path};
use shoal::resource::Kind;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of one echo message.
const PING: usize = 64;

/// The pod: `D` + a u64 length sends that many bytes and closes; `E` echoes
/// [`PING`]-byte messages until the peer closes.
async fn serve(port: u16) {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut op = [0u8; 1];
            if s.read_exact(&mut op).await.is_err() {
                return;
            }
            match op[0] {
                b'D' => {
                    let mut len = [0u8; 8];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_be_bytes(len);
                    let chunk = vec![0x5au8; 256 * 1024];
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    let _ = s.shutdown().await;
                }
                b'E' => {
                    let mut m = [0u8; PING];
                    while s.read_exact(&mut m).await.is_ok() {
                        if s.write_all(&m).await.is_err() {
                            return;
                        }
                    }
                }
                _ => {}
            }
        });
    }
}

/// Downloads `bytes` over one connection to `port`; MiB/s.
async fn transfer(port: u16, bytes: u64) -> f64 {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect for the transfer");
    let mut req = vec![b'D'];
    req.extend_from_slice(&bytes.to_be_bytes());
    s.write_all(&req).await.expect("send the request");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => panic!("transfer read after {got} bytes: {e}"),
        }
    }
    assert_eq!(got, bytes, "the transfer came back short");
    bytes as f64 / (1024.0 * 1024.0) / start.elapsed().as_secs_f64()
}

/// `n` sequential echoes over one connection; each round trip in µs.
async fn pings(port: u16, n: usize) -> Vec<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect for pings");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(b"E").await.expect("echo mode");
    let msg = [0x42u8; PING];
    let mut back = [0u8; PING];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).await.expect("ping");
        s.read_exact(&mut back).await.expect("pong");
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out
}

/// `n` sequential new connections, each carrying one echo: connect to the
/// answer, in µs (through a forward this includes opening its stream).
async fn connects(port: u16, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&[0x42u8; PING]);
        s.write_all(&msg).await.expect("ping");
        let mut back = [0u8; PING];
        s.read_exact(&mut back).await.expect("pong");
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One `shoal agent` of the two; killed on drop.
struct Agent {
    child: Child,
    api: Client,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent(name: &str, p2p: u16, api: u16, peer: u16) -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("agent.log"))
        .expect("agent log");
    let child = Command::new(support::shoal_bin())
        .args(["agent", "--runtime", "process", "--name", name])
        // No ingress listeners on 0.0.0.0:80/443 from a test agent.
        .args(["--ingress-http-addr", "", "--ingress-https-addr", ""])
        .args(["--dns-addr", "127.0.0.1:0", "--bootstrap-expect", "2"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--p2p-addr", &format!("127.0.0.1:{p2p}")])
        .args(["--api-addr", &format!("127.0.0.1:{api}")])
        .args(["--join", &format!("127.0.0.1:{peer}")])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("agent log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn shoal agent");
    let api = Client::new(&format!("127.0.0.1:{api}"), None).expect("API client");
    Agent { child, api, dir }
}

/// A `shoal port-forward` process through `api_addr`; killed on drop.
struct Forward {
    _child: tokio::process::Child,
    port: u16,
}

async fn forward(api_addr: &str, pod: &str, remote: u16) -> Forward {
    let mut child = tokio::process::Command::new(support::shoal_bin())
        .args([
            "--addr",
            api_addr,
            "port-forward",
            pod,
            &format!(":{remote}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn shoal port-forward");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(out).read_line(&mut line),
    )
    .await
    .expect("port-forward says where it listens within 30 s")
    .expect("read port-forward's output");
    // "Forwarding from 127.0.0.1:PORT -> REMOTE (pod/NAME)"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output {line:?}"));
    Forward {
        _child: child,
        port,
    }
}

async fn wait_for(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(args[2].parse().expect("port")).await;
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mib, rounds) = (env("MIB", 256), env("ROUNDS", 3) as usize);
    let (npings, nconnects) = (env("PINGS", 2000) as usize, env("CONNECTS", 200) as usize);
    let p = support::free_ports(5);
    let (p2p, apis, web) = ([p[0], p[1]], [p[2], p[3]], p[4]);
    let nodes = [
        agent("pf0", p2p[0], apis[0], p2p[1]),
        agent("pf1", p2p[1], apis[1], p2p[0]),
    ];
    let dump = |nodes: &[Agent]| {
        for (i, a) in nodes.iter().enumerate() {
            let log = std::fs::read_to_string(a.dir.path().join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "---- pf{i}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    };
    let api = nodes[0].api.clone();
    let formed = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let ok = match api.list(Kind::Node, None).await {
                Ok(n) => n.len() == 2 && support::healthy(&nodes[1].api).await,
                Err(_) => false,
            };
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    if formed.is_err() {
        dump(&nodes);
        panic!("the two agents did not form a cluster within 90 s");
    }
    let me = std::env::current_exe().expect("exe");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pf-echo\nspec:\n  nodeName: pf0\n  containers:\n  - name: echo\n    image: host\n    command: [\"{}\", \"serve\", \"{web}\"]\n    readinessProbe:\n      tcpSocket: {{port: {web}}}\n      periodSeconds: 1\n",
        me.display()
    );
    if let Err(e) = api
        .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
        .await
    {
        panic!("apply: {e}");
    }
    let path = object_path(Kind::Pod, "default", Some("pf-echo"));
    wait_for("the pod is ready", 60, async || {
        let p = api.send(Method::GET, &path, None).await.unwrap_or_default();
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
    .await;
    let own = forward(&format!("127.0.0.1:{}", apis[0]), "pod/pf-echo", web).await;
    let other = forward(&format!("127.0.0.1:{}", apis[1]), "pod/pf-echo", web).await;
    let routes = [
        ("direct to the pod's port", web),
        ("forward via the pod's node", own.port),
        ("forward via the other node", other.port),
    ];
    println!(
        "two process-runtime agents on loopback; {rounds} rounds, alternating routes; \
         transfer {mib} MiB on one connection, {npings} echoes of {PING} B on one connection, \
         {nconnects} new connections each carrying one echo"
    );
    let mut tput = vec![Vec::new(); routes.len()];
    let mut rtt = vec![Vec::new(); routes.len()];
    let mut conn = vec![Vec::new(); routes.len()];
    for _ in 0..rounds {
        for (i, (_, port)) in routes.iter().enumerate() {
            tput[i].push(transfer(*port, mib * 1024 * 1024).await);
            rtt[i].extend(pings(*port, npings).await);
            conn[i].extend(connects(*port, nconnects).await);
        }
    }
    println!(
        "\n{:<28} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "route", "MiB/s", "rtt p50", "rtt p99", "connect p50", "connect p99"
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "", "(median)", "us", "us", "us", "us"
    );
    let direct_rate = pct(&mut tput[0].clone(), 0.5);
    for (i, (name, _)) in routes.iter().enumerate() {
        let rate = pct(&mut tput[i], 0.5);
        println!(
            "{name:<28} {rate:>10.0} {:>10.0} {:>10.0} {:>12.0} {:>12.0}   ({:.2}x direct throughput)",
            pct(&mut rtt[i], 0.5),
            pct(&mut rtt[i], 0.99),
            pct(&mut conn[i], 0.5),
            pct(&mut conn[i], 0.99),
            rate / direct_rate
        );
    }
    drop((own, other));
    // Host-process pods outlive their agent by design: delete the pod and
    // wait for it to stop before stopping the agents.
    let _ = api.send(Method::DELETE, &path, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", web)).await.is_ok() {
        if Instant::now() > deadline {
            eprintln!("the pod did not stop; kill `port_forward serve {web}` by hand");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
