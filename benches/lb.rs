//! The Service load balancer's cost: HTTP requests through a Service's
//! cluster IP against the same requests sent straight to the one endpoint
//! behind it, with the same load generator (wrk), in the same run,
//! alternating direct and balanced rounds.
//!
//! The endpoint is a small keep-alive HTTP server (this binary, run as a
//! host-process pod by a real `shoal agent --dev`). Two shapes: keep-alive
//! (the proxy's data path) and `Connection: close` (a new upstream connect
//! per request).
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/lb`
//! (needs Debian's `wrk`). Env: `SECS` per round (default 10), `ROUNDS`
//! (default 3), `CONNS` (default 32).

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use shoal::client::object_path;
use shoal::resource::Kind;

const BODY: &str = "hello from a shoal pod\n";

/// The endpoint: answers every request on a connection until the client
/// closes it or asks to.
async fn serve(port: u16) {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    support::http_upstream(l, BODY).await;
}

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn wrk(url: &str, secs: u64, conns: u32, close: bool) -> Figures {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = Figures::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            f.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            f.p50_ms = support::wrk_ms(v).unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("99%") {
            f.p99_ms = support::wrk_ms(v).unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            f.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            f.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    assert!(f.rps > 0.0, "wrk printed no figures:\n{text}");
    f
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let port: u16 = args[2].parse().expect("port");
        serve(port).await;
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (secs, rounds, conns) = (env("SECS", 10), env("ROUNDS", 3), env("CONNS", 32) as u32);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = support::free_ports(2);
    let (dns, web) = (p[0], p[1]);
    let config = dir.path().join("shoal.toml");
    // PROXY_MODE=userspace|nftables|auto (default auto: nftables when root).
    let proxy_mode = std::env::var("PROXY_MODE").unwrap_or_else(|_| "auto".into());
    // Cluster IPs on loopback: no interface changes needed for a benchmark.
    std::fs::write(
        &config,
        format!(
            "[discovery]\nservice_cidr = \"127.96.0.0/16\"\ndns_addr = \"127.0.0.1:{dns}\"\ncontainer_dns = \"\"\nproxy_mode = \"{proxy_mode}\"\n"
        ),
    )
    .expect("config");
    let daemon = support::DevDaemon::start(
        "process",
        "lb-bench",
        &dir.path().join("data"),
        Some(&config),
    )
    .await;
    let pid = daemon.pid();
    let api = daemon.api.clone();
    let me = std::env::current_exe().expect("exe");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lb-web\n  labels: {{app: lb-web}}\nspec:\n  containers:\n  - name: web\n    image: host\n    command: [\"{}\", \"serve\", \"{web}\"]\n    ports:\n    - {{name: http, containerPort: {web}}}\n    readinessProbe:\n      tcpSocket: {{port: {web}}}\n      periodSeconds: 1\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: lb-web\nspec:\n  selector: {{app: lb-web}}\n  ports:\n  - {{name: http, port: 80, targetPort: http}}\n",
        me.display()
    );
    if let Err(e) = api
        .send(Method::POST, "/v1/apply", Some(manifest.into_bytes()))
        .await
    {
        panic!("apply: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let vip = loop {
        let ep = api
            .send(Method::GET, "/v1/namespaces/default/endpoints/lb-web", None)
            .await
            .unwrap_or_default();
        if ep["ports"][0]["endpoints"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
        {
            break ep["clusterIP"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "endpoint never ready: {ep}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Give the listener a moment after the table changed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let direct = format!("http://127.0.0.1:{web}/");
    let balanced = format!("http://{vip}:80/");
    println!(
        "wrk -t2 -c{conns} -d{secs}s, {rounds} rounds each, alternating; endpoint {direct}, service {balanced}; proxy_mode {proxy_mode}"
    );
    for close in [false, true] {
        let shape = if close {
            "Connection: close"
        } else {
            "keep-alive"
        };
        let (mut d, mut b) = (Vec::new(), Vec::new());
        let (mut lb_cpu, mut lb_reqs) = (0.0, 0.0);
        for _ in 0..rounds {
            d.push(wrk(&direct, secs, conns, close));
            let before = cpu_secs(pid);
            let f = wrk(&balanced, secs, conns, close);
            lb_cpu += cpu_secs(pid) - before;
            lb_reqs += f.rps * secs as f64;
            b.push(f);
        }
        let med = |v: &[Figures], f: fn(&Figures) -> f64| {
            let mut x: Vec<f64> = v.iter().map(f).collect();
            x.sort_by(|a, b| a.total_cmp(b));
            x[x.len() / 2]
        };
        let (drps, brps) = (med(&d, |f| f.rps), med(&b, |f| f.rps));
        let (dp99, bp99) = (med(&d, |f| f.p99_ms), med(&b, |f| f.p99_ms));
        let (dp50, bp50) = (med(&d, |f| f.p50_ms), med(&b, |f| f.p50_ms));
        let errs: u64 = b.iter().chain(d.iter()).map(|f| f.errors).sum();
        println!("\n{shape} (medians of {rounds} rounds)");
        println!("                 req/s       p50 ms    p99 ms");
        println!("direct        {drps:>10.0}   {dp50:>8.3}  {dp99:>8.3}");
        println!("through LB    {brps:>10.0}   {bp50:>8.3}  {bp99:>8.3}");
        println!(
            "LB/direct throughput {:.1}% (target >= 80%), added p99 {:+.3} ms (target <= 1 ms), errors {errs}",
            100.0 * brps / drps,
            bp99 - dp99
        );
        println!(
            "shoal daemon CPU while balancing: {:.1} us per request ({:.2} cores busy)",
            1e6 * lb_cpu / lb_reqs.max(1.0),
            lb_cpu / (secs * rounds) as f64
        );
    }
    // Host-process pods outlive their agent by design: delete the pod and
    // wait for it to stop before stopping the daemon.
    let path = object_path(Kind::Pod, "default", Some("lb-web"));
    let _ = api.send(Method::DELETE, &path, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", web))
        .await
        .is_ok()
    {
        if Instant::now() > deadline {
            eprintln!("the endpoint pod did not stop; kill `lb serve {web}` by hand");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(daemon);
}
