//! The HTTP ingress against Debian's nginx as a reverse proxy to the same
//! upstream, with the same load generator (wrk), in one run, alternating
//! rounds. Two shapes: keep-alive (the proxy's data path, pooled upstream
//! connections on both) and `Connection: close` (a new client connection
//! per request). Prints requests/s, p99 and the proxy's CPU per request
//! side by side.
//!
//! The upstream is a small keep-alive HTTP server on its own thread. shoal's
//! ingress runs in this process on a runtime of its own (one worker thread,
//! named so its CPU time can be read from /proc); nginx runs one worker.
//! Both are given the same one core's worth of threads.
//!
//! Run: `cargo build --release --examples && target/release/examples/ingress`
//! (needs Debian's `nginx` and `wrk`). Env: `SECS` per round (default 10),
//! `ROUNDS` (default 3), `CONNS` (default 32). A debug build's figures say
//! nothing about shoal (unoptimised hyper is several times slower).

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shoal::discovery::lb::LbSettings;
use shoal::discovery::{Endpoint, PortEntry, ServiceEntry, ServiceTable};
use shoal::ingress::{IngressConfig, Live, proxy, routes, sync_pools};
use shoal::resource::Object;

const BODY: &str = "hello from the upstream\n";
const HOST: &str = "bench.test";
/// The ingress's worker threads are named so: their CPU time is the proxy's.
const THREAD: &str = "shoal-ingress";

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    rps: f64,
    p99_ms: f64,
    errors: u64,
    cpu_us_per_req: f64,
}

/// User + system CPU seconds in a /proc stat line.
fn stat_secs(stat: &str) -> f64 {
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of this process's ingress threads.
fn ingress_cpu() -> f64 {
    let mut total = 0.0;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.trim() == THREAD {
            total += stat_secs(&std::fs::read_to_string(p.join("stat")).unwrap_or_default());
        }
    }
    total
}

/// CPU seconds of every nginx process (master and worker).
fn nginx_cpu() -> f64 {
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.trim() == "nginx" {
            total += stat_secs(&std::fs::read_to_string(p.join("stat")).unwrap_or_default());
        }
    }
    total
}

fn wrk(port: u16, secs: u64, conns: u32, close: bool, cpu: &dyn Fn() -> f64) -> Figures {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    cmd.args(["-H", &format!("Host: {HOST}")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let before = cpu();
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let used = cpu() - before;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = Figures::default();
    let mut total = 0u64;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            f.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("99%") {
            f.p99_ms = support::wrk_ms(v).unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            f.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            f.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some((n, _)) = t.split_once(" requests in ") {
            total = n.trim().parse().unwrap_or(0);
        }
    }
    assert!(f.rps > 0.0, "wrk printed no figures:\n{text}");
    if total > 0 {
        f.cpu_us_per_req = used * 1e6 / total as f64;
    }
    f
}

/// Starts nginx (one worker, keep-alive pool to the upstream) on `port`.
fn nginx(dir: &std::path::Path, port: u16, upstream: u16) -> Child {
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  upstream backend {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n  server {{\n    listen 127.0.0.1:{port} reuseport;\n    server_name {HOST};\n    location / {{\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $remote_addr;\n      proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .spawn()
        .expect("run nginx (apt-get install nginx)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "nginx did not listen on {port}; see {}/error.log",
        dir.display()
    );
}

/// Starts shoal's ingress on `port`, routing `HOST` to the upstream.
fn shoal_ingress(port: u16, upstream: u16) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(THREAD)
        .enable_all()
        .build()
        .expect("a runtime");
    let ing: Object = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "up", "port": {"number": 80}}}}]}}]},
    }))
    .expect("an Ingress");
    let mut services = ServiceTable::default();
    services.services.insert(
        ("default".into(), "up".into()),
        ServiceEntry {
            name: "up".into(),
            namespace: "default".into(),
            cluster_ip: None,
            client_ip_affinity: None,
            ports: vec![PortEntry {
                name: None,
                port: 80,
                node_port: None,
                endpoints: vec![Endpoint {
                    ip: std::net::Ipv4Addr::LOCALHOST,
                    port: upstream,
                    pod: "up".into(),
                    node: "bench".into(),
                }],
            }],
        },
    );
    let table = routes::build(&[ing], &[], &services);
    let mut pools = HashMap::new();
    let lb = LbSettings {
        connect_timeout: Duration::from_secs(1),
        connect_attempts: 3,
        eject_after_failures: 3,
        eject_for: Duration::from_secs(10),
    };
    rt.block_on(async {
        sync_pools(&mut pools, &table, &lb);
        let live = Live::new(table, pools, Default::default());
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(live));
        // The table never changes in a benchmark: keep the sender alive.
        std::mem::forget(tx);
        let server = Arc::new(proxy::Server::new(&IngressConfig::default(), rx, None));
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the ingress");
        tokio::spawn(proxy::serve_http(server, l));
    });
    rt
}

fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (secs, rounds, conns) = (env("SECS", 10), env("ROUNDS", 3), env("CONNS", 32) as u32);
    let up_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("upstream")
        .enable_all()
        .build()
        .expect("a runtime");
    let up_port = support::free_port();
    up_rt.block_on(async {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", up_port))
            .await
            .expect("bind the upstream");
        tokio::spawn(support::http_upstream(l, BODY));
    });
    let (shoal_port, nginx_port) = (support::free_port(), support::free_port());
    let _ingress = shoal_ingress(shoal_port, up_port);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nginx_child = nginx(dir.path(), nginx_port, up_port);

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ingress vs nginx: {rounds} rounds of {secs}s, {conns} connections, wrk -t2, {cpus} CPUs"
    );
    println!(
        "{:<14} {:<7} {:>10} {:>9} {:>10} {:>7}",
        "shape", "proxy", "req/s", "p99 ms", "cpu us/req", "errors"
    );
    for (shape, close) in [("keep-alive", false), ("new-conn", true)] {
        let mut sums: HashMap<&str, (f64, f64, f64, u64)> = HashMap::new();
        for _ in 0..rounds {
            for (name, port, cpu) in [
                ("shoal", shoal_port, &ingress_cpu as &dyn Fn() -> f64),
                ("nginx", nginx_port, &nginx_cpu as &dyn Fn() -> f64),
            ] {
                let f = wrk(port, secs, conns, close, cpu);
                println!(
                    "{shape:<14} {name:<7} {:>10.0} {:>9.2} {:>10.1} {:>7}",
                    f.rps, f.p99_ms, f.cpu_us_per_req, f.errors
                );
                let e = sums.entry(name).or_default();
                e.0 += f.rps;
                e.1 += f.p99_ms;
                e.2 += f.cpu_us_per_req;
                e.3 += f.errors;
            }
        }
        let r = rounds as f64;
        for name in ["shoal", "nginx"] {
            let (rps, p99, cpu, err) = sums.get(name).copied().unwrap_or_default();
            println!(
                "{:<14} {name:<7} {:>10.0} {:>9.2} {:>10.1} {:>7}",
                format!("{shape} mean"),
                rps / r,
                p99 / r,
                cpu / r,
                err
            );
        }
        let s = sums.get("shoal").copied().unwrap_or_default();
        let n = sums.get("nginx").copied().unwrap_or_default();
        if n.0 > 0.0 {
            println!("{shape}: shoal/nginx throughput {:.2}x", s.0 / n.0);
        }
    }
    // SIGTERM to the master stops its worker too; SIGKILL would orphan it.
    let pid = nix::unistd::Pid::from_raw(nginx_child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = nginx_child.wait();
}
