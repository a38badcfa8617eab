//! Gossip membership (SWIM, foca over libp2p) figures, three parts:
//!
//! - `detect`: five real `shoal agent` processes on loopback with default
//!   settings; KILLS times a random node is SIGKILLed and every survivor's
//!   `GET /v1/members` is polled every 20 ms until all of them report it
//!   `down`; then the node is restarted (same data dir and ports) and the
//!   cluster is left to settle before the next kill. Prints p50/p99/max of
//!   the detection time against memberlist's and Docker Swarm's.
//! - `falsepos`: the same five agents with busy-loop processes eating every
//!   core (two per core) for FALSEPOS_SECONDS, every node's member list
//!   polled every 250 ms; counts members wrongly reported `down` (target 0)
//!   and `suspect` observations.
//! - `join`: (a) a fifth agent joining a settled four-node cluster through
//!   one seed, five times, each a new member; (b) 50 in-process members
//!   (net + membership only) joining through member 0, then a 51st.
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/membership [detect|falsepos|join|all]`
//! (`all`, the default, is detect + join; falsepos is long and runs only on
//! request). Env: `KILLS` (20), `SEED` (kill order; from the clock if unset),
//! `FALSEPOS_SECONDS` (600), `SHOAL_BIN` to use another `shoal` binary.

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use libp2p::Multiaddr;
use reqwest::Method;
use serde::Deserialize;
use shoal::client::Client;
use shoal::membership::{MemberState, Membership, MembershipConfig, Meta};
use shoal::net::{Net, NetConfig};

const NODES: usize = 5;

// ---------------------------------------------------------------- helpers

/// One member as `GET /v1/members` shows it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    peer_id: String,
    state: String,
    #[serde(default)]
    incarnation: u64,
    #[serde(default)]
    is_self: bool,
    meta: Option<MemberMeta>,
}

#[derive(Debug, Clone, Deserialize)]
struct MemberMeta {
    name: String,
}

#[derive(Deserialize)]
struct MemberList {
    items: Vec<Member>,
}

impl Member {
    fn name(&self) -> Option<&str> {
        self.meta.as_ref().map(|m| m.name.as_str())
    }
}

/// What one node reports about the member with `peer` (or, failing that, `name`).
fn state_of<'a>(view: &'a [Member], peer: &str, name: &str) -> Option<&'a Member> {
    view.iter()
        .find(|m| m.peer_id == peer)
        .or_else(|| view.iter().find(|m| m.name() == Some(name)))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile of sorted seconds (p99 of 20 samples is the max).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A small LCG: the kill order, reproducible from SEED.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

// ------------------------------------------------------ agent processes

/// One `shoal agent` process with its own temp dir (data dir + log file).
struct Agent {
    name: String,
    dir: tempfile::TempDir,
    p2p: u16,
    api: u16,
    expect: Option<usize>,
    join: Vec<u16>,
    child: Option<Child>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Agent {
    fn new(
        name: String,
        p2p: u16,
        api: u16,
        expect: Option<usize>,
        join: Vec<u16>,
    ) -> Result<Agent> {
        Ok(Agent {
            name,
            dir: tempfile::tempdir().context("temp dir")?,
            p2p,
            api,
            expect,
            join,
            child: None,
        })
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// The library's API client for this agent.
    fn client(&self) -> Result<Client> {
        Client::new(&format!("127.0.0.1:{}", self.api), None).context("API client")
    }

    /// Starts (or restarts, with the same data dir and ports) the agent.
    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .context("agent log")?;
        let mut cmd = Command::new(support::shoal_bin());
        cmd.args(["agent", "--runtime", "process", "--name", &self.name])
            // No ingress listeners on 0.0.0.0:80/443 from a test agent.
            .args(["--ingress-http-addr", "", "--ingress-https-addr", ""])
            .args(["--dns-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--p2p-addr", &format!("127.0.0.1:{}", self.p2p)])
            .args(["--api-addr", &format!("127.0.0.1:{}", self.api)]);
        if let Some(n) = self.expect {
            cmd.args(["--bootstrap-expect", &n.to_string()]);
        }
        for p in &self.join {
            cmd.args(["--join", &format!("127.0.0.1:{p}")]);
        }
        cmd.env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().context("agent log")?))
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", support::shoal_bin().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs the agent; returns the instant the signal was sent.
    fn kill(&mut self) -> Instant {
        let mut at = Instant::now();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            at = Instant::now();
            let _ = c.wait();
        }
        at
    }

    /// Fails if the process has exited on its own.
    fn check_running(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child
            && let Ok(Some(status)) = c.try_wait()
        {
            self.child = None;
            bail!("agent {} exited on its own ({status})", self.name);
        }
        Ok(())
    }

    fn tail_log(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The agents of one measurement and how long one API request may take;
/// killing the agents on drop.
struct Cluster {
    nodes: Vec<Agent>,
    timeout: Duration,
}

impl Cluster {
    /// `n` agents named `{prefix}0..`, each joining all the others, all
    /// waiting for `n` before forming the cluster.
    fn start(n: usize, prefix: &str, timeout: Duration) -> Result<Cluster> {
        let ports = support::free_ports(2 * n);
        let (p2p, api) = ports.split_at(n);
        let mut nodes = Vec::new();
        for i in 0..n {
            let join = (0..n).filter(|&j| j != i).map(|j| p2p[j]).collect();
            nodes.push(Agent::new(
                format!("{prefix}{i}"),
                p2p[i],
                api[i],
                Some(n),
                join,
            )?);
        }
        let mut c = Cluster { nodes, timeout };
        for a in &mut c.nodes {
            a.spawn()?;
        }
        Ok(c)
    }

    fn clients(&self, idx: &[usize]) -> Result<Vec<Client>> {
        idx.iter().map(|&i| self.nodes[i].client()).collect()
    }

    fn check_running(&mut self, idx: &[usize]) -> Result<()> {
        for &i in idx {
            self.nodes[i].check_running()?;
        }
        Ok(())
    }

    /// Prints the end of every agent's log (on failure).
    fn dump_logs(&self) {
        for a in &self.nodes {
            eprintln!(
                "---- {} ({}), last lines of {}:\n{}",
                a.name,
                if a.child.is_some() {
                    "running"
                } else {
                    "stopped"
                },
                a.log().display(),
                a.tail_log(15)
            );
        }
    }

    /// Waits until every node in `idx` answers, sees every other one alive
    /// with its metadata, and `/healthz` says 200. Returns each node's PeerId.
    async fn wait_settled(
        &mut self,
        idx: &[usize],
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let apis = self.clients(idx)?;
        loop {
            self.check_running(idx)?;
            let views = snapshot(&apis, self.timeout).await;
            let health =
                futures::future::join_all(apis.iter().map(|a| healthy(a, self.timeout))).await;
            let ids: Option<Vec<String>> = views
                .iter()
                .map(|v| {
                    v.as_ref()
                        .and_then(|v| v.iter().find(|m| m.is_self).map(|m| m.peer_id.clone()))
                })
                .collect();
            let last = if let Some(ids) = ids {
                let mut seen = Vec::new();
                for v in views.iter().flatten() {
                    let n = ids
                        .iter()
                        .filter(|id| {
                            v.iter().any(|m| {
                                &&m.peer_id == id && m.state == "alive" && m.meta.is_some()
                            })
                        })
                        .count();
                    seen.push(n);
                }
                if seen.iter().all(|&n| n == idx.len()) && health.iter().all(|&h| h) {
                    return Ok(ids);
                }
                format!(
                    "members seen alive with metadata per node: {seen:?} of {}; healthz: {health:?}",
                    idx.len()
                )
            } else {
                let up: Vec<bool> = views.iter().map(Option::is_some).collect();
                format!("/v1/members answering: {up:?}")
            };
            if Instant::now() > deadline {
                bail!("{what}: not settled after {timeout:?} ({last})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn members(api: &Client, timeout: Duration) -> Result<Vec<Member>> {
    let v = api
        .send_within(Method::GET, "/v1/members", None, Some(timeout))
        .await
        .with_context(|| format!("{}/v1/members", api.base()))?;
    Ok(serde_json::from_value::<MemberList>(v)?.items)
}

async fn healthy(api: &Client, timeout: Duration) -> bool {
    api.send_within(Method::GET, "/healthz", None, Some(timeout))
        .await
        .is_ok()
}

/// Every node's member list, fetched concurrently (`None` where it failed).
async fn snapshot(apis: &[Client], timeout: Duration) -> Vec<Option<Vec<Member>>> {
    futures::future::join_all(
        apis.iter()
            .map(|a| async move { members(a, timeout).await.ok() }),
    )
    .await
}

/// Passes `r` through; on failure prints the agents' logs first.
fn with_logs<T>(c: &Cluster, r: Result<T>) -> Result<T> {
    if r.is_err() {
        c.dump_logs();
    }
    r
}

// ------------------------------------------------------------- detect

struct Kill {
    node: String,
    first_suspect: Option<f64>,
    first_down: f64,
    all_down: f64,
    rejoin: f64,
}

async fn detect() -> Result<()> {
    let kills = env_num("KILLS", 20) as usize;
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let mut rng = Lcg(seed);
    let load_before = loadavg();
    let mut c = Cluster::start(NODES, "b", Duration::from_secs(2))?;
    let r = detect_runs(&mut c, kills, &mut rng).await;
    let results = with_logs(&c, r)?;
    drop(c);

    let all_down: Vec<f64> = sorted(&results.iter().map(|k| k.all_down).collect::<Vec<_>>());
    let first_down = sorted(&results.iter().map(|k| k.first_down).collect::<Vec<_>>());
    let suspect = sorted(
        &results
            .iter()
            .filter_map(|k| k.first_suspect)
            .collect::<Vec<_>>(),
    );
    let rejoin = sorted(&results.iter().map(|k| k.rejoin).collect::<Vec<_>>());
    let per_node: BTreeMap<&str, usize> = results.iter().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k.node.as_str()).or_default() += 1;
        m
    });
    println!();
    println!(
        "membership detect: {NODES} shoal agents on loopback, default gossip settings, {} SIGKILLs (seed {seed})",
        results.len()
    );
    println!(
        "kills per node: {per_node:?}; load average before {load_before}, after {}",
        loadavg()
    );
    println!("seconds from SIGKILL (survivors polled every 20 ms)");
    println!("{:<44} {:>8} {:>8} {:>8}", "", "p50", "p99", "max");
    let row = |label: &str, s: &[f64]| {
        println!(
            "{:<44} {:>8.3} {:>8.3} {:>8.3}",
            label,
            percentile(s, 0.5),
            percentile(s, 0.99),
            s.last().copied().unwrap_or(f64::NAN)
        );
    };
    row("shoal: every survivor reports it down", &all_down);
    row("  first survivor reports it suspect", &suspect);
    row("  first survivor reports it down", &first_down);
    row("  restart -> all 5 alive, healthz 200 (*)", &rejoin);
    println!(
        "{:<44} {:>8}",
        "HashiCorp memberlist (LAN defaults)", "~5 s and more"
    );
    println!("{:<44} {:>8}", "Docker Swarm", "~15 s");
    println!("(*) polled every 20 ms, so the figure includes up to 20 ms plus the poll itself");
    let p99 = percentile(&all_down, 0.99);
    println!(
        "target: p99 <= 3 s: {} (p99 {p99:.3} s over {} kills; p99 of {} samples is the max)",
        if p99 <= 3.0 { "met" } else { "NOT met" },
        all_down.len(),
        all_down.len()
    );
    Ok(())
}

async fn detect_runs(c: &mut Cluster, kills: usize, rng: &mut Lcg) -> Result<Vec<Kill>> {
    let all: Vec<usize> = (0..NODES).collect();
    let t = Instant::now();
    let ids = c
        .wait_settled(&all, Duration::from_secs(120), "initial 5-node cluster")
        .await?;
    let names: Vec<String> = c.nodes.iter().map(|a| a.name.clone()).collect();
    eprintln!(
        "detect: cluster of {NODES} settled in {:.1} s; {kills} kills",
        t.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..kills {
        // A second or two of quiet, at a random phase of the probe rounds.
        tokio::time::sleep(Duration::from_millis(1000 + rng.next() % 1000)).await;
        let v = (rng.next() % NODES as u64) as usize;
        let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != v).collect();
        let apis = c.clients(&survivors)?;
        let t0 = c.nodes[v].kill();
        let mut first_suspect = None;
        let mut first_down = None;
        let all_down = loop {
            tick.tick().await;
            let views = snapshot(&apis, c.timeout).await;
            let at = t0.elapsed().as_secs_f64();
            let states: Vec<&str> = views
                .iter()
                .map(|view| match view {
                    Some(view) => state_of(view, &ids[v], &names[v])
                        .map(|m| m.state.as_str())
                        .unwrap_or("absent"),
                    None => "no answer",
                })
                .collect();
            if first_suspect.is_none() && states.iter().any(|s| *s == "suspect" || *s == "down") {
                first_suspect = Some(at);
            }
            if first_down.is_none() && states.contains(&"down") {
                first_down = Some(at);
            }
            if states.iter().all(|s| *s == "down") {
                break at;
            }
            if at > 30.0 {
                bail!(
                    "kill {}: {} still not reported down by every survivor after 30 s: {states:?}",
                    k + 1,
                    names[v]
                );
            }
        };
        // Restart only now: the new process is a new SWIM identity of the same PeerId.
        c.nodes[v].spawn()?;
        let t1 = Instant::now();
        let after = c
            .wait_settled(
                &all,
                Duration::from_secs(90),
                &format!("after restarting {}", names[v]),
            )
            .await?;
        if after[v] != ids[v] {
            eprintln!(
                "note: {} came back with another PeerId ({} -> {})",
                names[v], ids[v], after[v]
            );
        }
        let kill = Kill {
            node: names[v].clone(),
            first_suspect,
            first_down: first_down.unwrap_or(all_down),
            all_down,
            rejoin: t1.elapsed().as_secs_f64(),
        };
        eprintln!(
            "kill {:>2}: {}  first suspect {:>6}  first down {:.3} s  all down {:.3} s  back {:.2} s",
            k + 1,
            kill.node,
            kill.first_suspect
                .map(|s| format!("{s:.3} s"))
                .unwrap_or_else(|| "-".into()),
            kill.first_down,
            kill.all_down,
            kill.rejoin
        );
        out.push(kill);
    }
    Ok(out)
}

// ----------------------------------------------------------- falsepos

/// Busy-loop processes, killed on drop.
struct Burners(Vec<Child>);

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Burners {
    fn start(n: usize) -> Result<Burners> {
        let mut b = Burners(Vec::new());
        for _ in 0..n {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning a CPU burner (sh)")?;
            b.0.push(child);
        }
        Ok(b)
    }
}

#[derive(Default)]
struct FalsePos {
    secs: f64,
    rounds: u64,
    down_obs: u64,
    down_pairs: BTreeSet<(String, String)>,
    suspect_obs: u64,
    suspect_pairs: BTreeSet<(String, String)>,
    other_obs: u64,
    max_incarnation: u64,
    failed_polls: u64,
    slowest_poll: f64,
    load: String,
}

async fn falsepos() -> Result<()> {
    let secs = env_num("FALSEPOS_SECONDS", 600);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let burners = 2 * cores;
    let mut c = Cluster::start(NODES, "b", Duration::from_secs(5))?;
    let r = falsepos_run(&mut c, secs, burners).await;
    let f = with_logs(&c, r)?;
    drop(c);
    println!();
    println!(
        "membership falsepos: {NODES} shoal agents on loopback, default gossip settings, \
         {burners} busy-loop processes on {cores} cores, every node polled every 250 ms"
    );
    let line = |label: &str, value: String| println!("{label:<52} {value}");
    line(
        "duration",
        format!("{:.1} s ({} polling rounds)", f.secs, f.rounds),
    );
    line(
        "(observer, member) pairs ever reported down",
        format!("{}   (target 0)", f.down_pairs.len()),
    );
    line("observations of a member down", f.down_obs.to_string());
    line(
        "observations of a member suspect",
        format!(
            "{} (in {} distinct pairs)",
            f.suspect_obs,
            f.suspect_pairs.len()
        ),
    );
    line(
        "observations in another non-alive state",
        f.other_obs.to_string(),
    );
    line("highest incarnation seen", f.max_incarnation.to_string());
    line(
        "polls that failed (2 s timeout)",
        format!(
            "{} (slowest answer {:.3} s)",
            f.failed_polls, f.slowest_poll
        ),
    );
    line("load average at the end of the load", f.load);
    if !f.down_pairs.is_empty() {
        line("pairs reported down", format!("{:?}", f.down_pairs));
    }
    if !f.suspect_pairs.is_empty() {
        line("pairs reported suspect", format!("{:?}", f.suspect_pairs));
    }
    println!(
        "target: zero members wrongly declared down: {}",
        if f.down_pairs.is_empty() {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

async fn falsepos_run(c: &mut Cluster, secs: u64, burners: usize) -> Result<FalsePos> {
    let all: Vec<usize> = (0..NODES).collect();
    let t = Instant::now();
    c.wait_settled(&all, Duration::from_secs(120), "initial 5-node cluster")
        .await?;
    eprintln!(
        "falsepos: cluster settled in {:.1} s; {secs} s under {burners} CPU burners",
        t.elapsed().as_secs_f64()
    );
    let names: Vec<String> = c.nodes.iter().map(|a| a.name.clone()).collect();
    let apis = c.clients(&all)?;
    let burn = Burners::start(burners)?;
    let mut f = FalsePos::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_report = start + Duration::from_secs(60);
    while Instant::now() < end {
        tick.tick().await;
        c.check_running(&all)?;
        let polls = futures::future::join_all(apis.iter().map(|a| async move {
            let t = Instant::now();
            let r = members(a, Duration::from_secs(2)).await.ok();
            (r, t.elapsed().as_secs_f64())
        }))
        .await;
        f.rounds += 1;
        for (i, (view, took)) in polls.into_iter().enumerate() {
            f.slowest_poll = f.slowest_poll.max(took);
            let Some(view) = view else {
                f.failed_polls += 1;
                continue;
            };
            for m in view.iter().filter(|m| !m.is_self) {
                f.max_incarnation = f.max_incarnation.max(m.incarnation);
                let who = m
                    .name()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.peer_id.clone());
                match m.state.as_str() {
                    "alive" => {}
                    "down" => {
                        f.down_obs += 1;
                        if f.down_pairs.insert((names[i].clone(), who.clone())) {
                            eprintln!(
                                "falsepos: at {:.1} s {} reports {who} DOWN",
                                start.elapsed().as_secs_f64(),
                                names[i]
                            );
                        }
                    }
                    "suspect" => {
                        f.suspect_obs += 1;
                        f.suspect_pairs.insert((names[i].clone(), who));
                    }
                    _ => f.other_obs += 1,
                }
            }
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(60);
            eprintln!(
                "falsepos: {:.0} s: {} down / {} suspect observations, load {}",
                start.elapsed().as_secs_f64(),
                f.down_obs,
                f.suspect_obs,
                loadavg()
            );
        }
    }
    f.secs = start.elapsed().as_secs_f64();
    f.load = loadavg();
    drop(burn);
    Ok(f)
}

// --------------------------------------------------------------- join

struct JoinRun {
    name: String,
    all_see_it: f64,
    it_sees_all: f64,
    down_after_kill: f64,
}

async fn join() -> Result<()> {
    let load_before = loadavg();
    let mut c = Cluster::start(4, "b", Duration::from_secs(2))?;
    let r = join_processes(&mut c, 5).await;
    let runs = with_logs(&c, r)?;
    drop(c);
    let load_mid = loadavg();
    let (total, alive_at, meta_at, started, newcomer) = join_in_process(50).await?;

    println!();
    println!(
        "membership join, default gossip settings; load average before {load_before}, after (a) {load_mid}, after (b) {}",
        loadavg()
    );
    println!(
        "(a) a 5th shoal agent joins a settled 4-node cluster through one seed (a new member each time)"
    );
    println!(
        "{:<5} {:<9} {:>26} {:>22} {:>22}",
        "run", "newcomer", "spawn -> all 5 see it (s)", "it sees all 4 (s)", "SIGKILL -> down (s)"
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "{:<5} {:<9} {:>26.3} {:>22.3} {:>22.3}",
            i + 1,
            r.name,
            r.all_see_it,
            r.it_sees_all,
            r.down_after_kill
        );
    }
    let med =
        |f: fn(&JoinRun) -> f64| percentile(&sorted(&runs.iter().map(f).collect::<Vec<_>>()), 0.5);
    println!(
        "{:<5} {:<9} {:>26.3} {:>22.3} {:>22.3}",
        "median",
        "",
        med(|r| r.all_see_it),
        med(|r| r.it_sees_all),
        med(|r| r.down_after_kill)
    );
    println!(
        "    (\"see\" = state alive with its metadata; the time includes the agent's own start-up)"
    );
    println!(
        "(b) {total} in-process members (net + membership only, one tokio runtime), each joining through member 0"
    );
    println!(
        "{:<60} {:>8.3} s",
        format!("first started -> all {total} know all {total} alive"),
        alive_at
    );
    println!(
        "{:<60} {:>8.3} s",
        "  ... and have everyone's metadata", meta_at
    );
    println!(
        "{:<60} {:>8.3} s",
        format!("  (member {} started at)", total - 1),
        started
    );
    println!(
        "{:<60} {:>8.3} s",
        format!(
            "member {} started -> all {} report it alive",
            total + 1,
            total + 1
        ),
        newcomer.0
    );
    println!("{:<60} {:>8.3} s", "  ... with its metadata", newcomer.1);
    println!(
        "{:<60} {:>8.3} s",
        format!("  ... it knows all {total} alive with metadata"),
        newcomer.2
    );
    Ok(())
}

/// (a): `reps` times, a new agent joins the four through one of them.
async fn join_processes(c: &mut Cluster, reps: usize) -> Result<Vec<JoinRun>> {
    let four: Vec<usize> = (0..c.nodes.len()).collect();
    let t = Instant::now();
    c.wait_settled(&four, Duration::from_secs(120), "initial 4-node cluster")
        .await?;
    eprintln!(
        "join: 4-node cluster settled in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for rep in 0..reps {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let name = format!("n{}", rep + 1);
        let ports = support::free_ports(2);
        let seed = c.nodes[rep % four.len()].p2p;
        c.nodes.push(Agent::new(
            name.clone(),
            ports[0],
            ports[1],
            None,
            vec![seed],
        )?);
        let me = c.nodes.len() - 1;
        let olds = c.clients(&four)?;
        let mine = c.nodes[me].client()?;
        c.nodes[me].spawn()?;
        let t0 = Instant::now();
        let mut all_see_it = None;
        let mut it_sees_all = None;
        let mut peer = None;
        while all_see_it.is_none() || it_sees_all.is_none() {
            tick.tick().await;
            c.nodes[me].check_running()?;
            let (views, own) = tokio::join!(snapshot(&olds, c.timeout), members(&mine, c.timeout));
            let at = t0.elapsed().as_secs_f64();
            if let Ok(own) = &own {
                peer = own.iter().find(|m| m.is_self).map(|m| m.peer_id.clone());
                let n = own
                    .iter()
                    .filter(|m| !m.is_self && m.state == "alive" && m.meta.is_some())
                    .count();
                if it_sees_all.is_none() && n >= four.len() {
                    it_sees_all = Some(at);
                }
            }
            let seen = views
                .iter()
                .filter(|v| {
                    v.as_ref().is_some_and(|v| {
                        v.iter()
                            .any(|m| m.name() == Some(name.as_str()) && m.state == "alive")
                    })
                })
                .count();
            if all_see_it.is_none() && own.is_ok() && seen == four.len() {
                all_see_it = Some(at);
            }
            if at > 60.0 {
                bail!(
                    "join {name}: after 60 s {seen}/4 old members see it alive with metadata; its own view answers: {}",
                    own.is_ok()
                );
            }
        }
        // Take it out again and wait until the four report it down.
        let peer = peer.ok_or_else(|| anyhow!("{name}: no self entry"))?;
        let t1 = c.nodes[me].kill();
        let down = loop {
            tick.tick().await;
            let views = snapshot(&olds, c.timeout).await;
            let at = t1.elapsed().as_secs_f64();
            let states: Vec<String> = views
                .iter()
                .map(|v| match v {
                    Some(v) => state_of(v, &peer, &name)
                        .map(|m| m.state.clone())
                        .unwrap_or_else(|| "absent".into()),
                    None => "no answer".into(),
                })
                .collect();
            if states.iter().all(|s| s == "down") {
                break at;
            }
            if at > 30.0 {
                bail!(
                    "join {name}: not reported down by every old member 30 s after SIGKILL: {states:?}"
                );
            }
        };
        let r = JoinRun {
            name,
            all_see_it: all_see_it.unwrap_or(f64::NAN),
            it_sees_all: it_sees_all.unwrap_or(f64::NAN),
            down_after_kill: down,
        };
        eprintln!(
            "join {}: all see it {:.3} s, it sees all {:.3} s, down after kill {:.3} s",
            r.name, r.all_see_it, r.it_sees_all, r.down_after_kill
        );
        out.push(r);
        c.wait_settled(
            &four,
            Duration::from_secs(60),
            "the four after the newcomer left",
        )
        .await?;
    }
    Ok(out)
}

/// The soft open-file limit, from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

struct InProc {
    net: Net,
    m: Membership,
    _dir: tempfile::TempDir,
}

async fn start_member(i: usize, seed: Option<&Multiaddr>) -> Result<(InProc, Multiaddr)> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let net = Net::start(NetConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "/ip4/127.0.0.1/tcp/0".parse().context("listen address")?,
        psk: None,
    })
    .await
    .with_context(|| format!("member m{i}: net"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let addr = loop {
        if let Some(a) = net.listen_addrs().into_iter().next() {
            break a;
        }
        if Instant::now() > deadline {
            bail!("member m{i}: no listen address after 5 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let m = Membership::start(
        net.clone(),
        Meta {
            name: format!("m{i}"),
            p2p_addrs: vec![addr.to_string()],
            ..Default::default()
        },
        MembershipConfig::default(),
    );
    if let Some(s) = seed {
        m.join(vec![s.clone()]);
    }
    Ok((InProc { net, m, _dir: dir }, addr))
}

/// How many of `nodes` see every other one of `ids` alive: (alive, alive with metadata).
fn census(nodes: &[InProc], ids: &HashSet<String>) -> (usize, usize) {
    let mut alive = 0;
    let mut meta = 0;
    for n in nodes {
        let view = n.m.members();
        let others = view
            .iter()
            .filter(|v| !v.is_self && v.state == MemberState::Alive && ids.contains(&v.peer_id));
        let a = others.clone().count();
        let w = others.filter(|v| v.meta.is_some()).count();
        alive += usize::from(a + 1 >= ids.len());
        meta += usize::from(w + 1 >= ids.len());
    }
    (alive, meta)
}

/// (b): `n` in-process members, then one more. Returns (n, all alive at,
/// all metadata at, last started at, (newcomer alive, with meta, it knows all)).
async fn join_in_process(n: usize) -> Result<(usize, f64, f64, f64, (f64, f64, f64))> {
    match open_file_limit() {
        Some(l) if l < 8192 => eprintln!(
            "warning: the open-file limit is {l}; {n} members need about {} descriptors. \
             Raise it with `ulimit -n 8192` (this example cannot: nix's `resource` feature is not enabled)",
            n * n
        ),
        Some(_) => {}
        None => eprintln!("warning: cannot read the open-file limit"),
    }
    let t0 = Instant::now();
    let mut nodes: Vec<InProc> = Vec::new();
    let mut ids = HashSet::new();
    let mut seed = None;
    for i in 0..n {
        let (node, addr) = start_member(i, seed.as_ref()).await?;
        if i == 0 {
            seed = Some(addr);
        }
        ids.insert(node.net.peer_id().to_base58());
        nodes.push(node);
    }
    let started = t0.elapsed().as_secs_f64();
    let (mut alive_at, mut meta_at) = (None, None);
    let timeout = 180.0;
    while alive_at.is_none() || meta_at.is_none() {
        let (a, w) = census(&nodes, &ids);
        let at = t0.elapsed().as_secs_f64();
        if a == n && alive_at.is_none() {
            alive_at = Some(at);
        }
        if w == n && meta_at.is_none() {
            meta_at = Some(at);
        }
        if at > timeout {
            bail!(
                "{n} in-process members: after {timeout} s only {a}/{n} see all others alive ({w} with metadata)"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "join: {n} in-process members: all alive at {:.3} s, with metadata at {:.3} s",
        alive_at.unwrap_or(f64::NAN),
        meta_at.unwrap_or(f64::NAN)
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let t1 = Instant::now();
    let (node, _) = start_member(n, seed.as_ref()).await?;
    let new_id = node.net.peer_id().to_base58();
    ids.insert(new_id.clone());
    nodes.push(node);
    let (mut alive, mut meta, mut knows) = (None, None, None);
    while alive.is_none() || meta.is_none() || knows.is_none() {
        let at = t1.elapsed().as_secs_f64();
        let mut a = 0;
        let mut w = 0;
        for node in &nodes {
            if let Some(v) = node.m.members().into_iter().find(|v| v.peer_id == new_id)
                && v.state == MemberState::Alive
            {
                a += 1;
                w += usize::from(v.meta.is_some());
            }
        }
        if a == nodes.len() && alive.is_none() {
            alive = Some(at);
        }
        if w == nodes.len() && meta.is_none() {
            meta = Some(at);
        }
        if knows.is_none() && census(&nodes[n..], &ids).1 == 1 {
            knows = Some(at);
        }
        if at > timeout {
            bail!(
                "member m{n}: after {timeout} s {a}/{} report it alive ({w} with metadata)",
                nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in &nodes {
        node.net.shutdown().await;
    }
    let nan = f64::NAN;
    Ok((
        n,
        alive_at.unwrap_or(nan),
        meta_at.unwrap_or(nan),
        started,
        (
            alive.unwrap_or(nan),
            meta.unwrap_or(nan),
            knows.unwrap_or(nan),
        ),
    ))
}

// --------------------------------------------------------------- main

async fn run(part: &str) -> Result<()> {
    match part {
        "detect" => detect().await,
        "falsepos" => falsepos().await,
        "join" => join().await,
        "all" => {
            detect().await?;
            join().await
        }
        other => bail!("unknown part {other:?}: expected detect, falsepos, join or all"),
    }
}

fn main() -> ExitCode {
    let part = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("membership: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        tokio::select! {
            r = run(&part) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("membership: {e:#}");
            ExitCode::FAILURE
        }
    }
}
