//! The agents under test: starting, signalling and restarting real
//! `shoal agent` processes, finding the leader, listing what each node
//! actually runs, and tearing everything down again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;

use crate::ports::free_ports;

use crate::netns::{self, Netns, hard_kill};
use crate::scenario::{Network, RuntimeKind};

/// Label the agents put on containers naming their node (src/runtime/mod.rs).
const LABEL_NODE: &str = "io.shoal.node";
/// Label naming a container's pod as `namespace/name`.
const LABEL_POD: &str = "io.shoal.pod";
/// Label carrying the pod's uid.
const LABEL_POD_UID: &str = "io.shoal.pod.uid";
/// Label naming the container within its pod.
const LABEL_CONTAINER: &str = "io.shoal.container";

/// Prefix of every node name, so leftovers are recognisable.
pub const NAME_PREFIX: &str = "chaos-n";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment or insert, so
    // the data is consistent even after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fields of `/proc/PID/stat` needed to recognise a process.
struct ProcStat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// A process-runtime container as recorded under `<data-dir>/process/<id>/`.
struct ProcessRecord {
    id: String,
    labels: BTreeMap<String, String>,
    /// The live pid, when the recorded process still runs.
    live_pid: Option<i32>,
}

/// Reads the process runtime's records of one data dir.
fn process_records(data_dir: &Path) -> Vec<ProcessRecord> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("process")) else {
        return out;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let read = |f: &str| -> Option<Value> {
            serde_json::from_slice(&std::fs::read(dir.join(f)).ok()?).ok()
        };
        let (Some(spec), Some(state)) = (read("spec.json"), read("state.json")) else {
            continue;
        };
        let labels = spec["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let finished = !state["exit_code"].is_null() || !state["finished_at"].is_null();
        let live_pid = state["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|_| !finished)
            .filter(|pid| {
                proc_stat(*pid).is_some_and(|st| {
                    !matches!(st.state, 'Z' | 'X' | 'x')
                        && state["start_time"]
                            .as_u64()
                            .is_none_or(|t| t == st.start_time)
                })
            });
        out.push(ProcessRecord {
            id: e.file_name().to_string_lossy().into_owned(),
            labels,
            live_pid,
        });
    }
    out
}

/// Kills every live process a data dir's process runtime recorded, with its group.
fn kill_recorded_processes(data_dir: &Path) -> usize {
    let mut n = 0;
    for r in process_records(data_dir) {
        let Some(pid) = r.live_pid else { continue };
        if pid <= 1 {
            continue;
        }
        let same_group = proc_stat(pid).is_some_and(|s| s.pgrp == pid);
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        if same_group && nix::unistd::getpgrp() != Pid::from_raw(pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        } else {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        n += 1;
    }
    n
}

/// Removes every Docker container labelled with node `name`; how many.
fn remove_docker_containers(name: &str) -> usize {
    let Ok(out) = netns::run(
        "docker",
        &[
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_NODE}={name}"),
        ],
        None,
    ) else {
        return 0;
    };
    let ids: Vec<&str> = out.split_whitespace().collect();
    if ids.is_empty() {
        return 0;
    }
    let mut args = vec!["rm", "-f"];
    args.extend(&ids);
    let _ = netns::run("docker", &args, None);
    ids.len()
}

/// What must be undone at the end, however the run ends: registered as
/// things are created, so a Ctrl-C or a panic half-way still cleans up.
#[derive(Default)]
pub struct Teardown {
    state: Mutex<TeardownState>,
}

#[derive(Default)]
struct TeardownState {
    done: bool,
    netns: bool,
    agents: BTreeSet<i32>,
    data_dirs: Vec<PathBuf>,
    docker_nodes: Vec<String>,
    keep_data: bool,
}

impl Teardown {
    /// A registry that removes data dirs at the end unless `keep_data`.
    pub fn new(keep_data: bool) -> Arc<Teardown> {
        Arc::new(Teardown {
            state: Mutex::new(TeardownState {
                keep_data,
                ..Default::default()
            }),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut TeardownState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Kills agents, their pods, the namespaces and the data dirs; idempotent.
    pub fn run(&self) -> Vec<String> {
        let st = {
            let mut s = lock(&self.state);
            if s.done {
                return Vec::new();
            }
            let taken = std::mem::take(&mut *s);
            s.done = true;
            taken
        };
        let mut did = Vec::new();
        for pid in &st.agents {
            hard_kill(*pid);
        }
        if !st.agents.is_empty() {
            did.push(format!("killed {} agent processes", st.agents.len()));
            // Let the kernel finish the kills before pods are looked at, so
            // no agent starts a pod after its pods were killed.
            std::thread::sleep(Duration::from_millis(200));
        }
        let pods: usize = st
            .data_dirs
            .iter()
            .map(|d| kill_recorded_processes(d))
            .sum();
        let containers: usize = st
            .docker_nodes
            .iter()
            .map(|n| remove_docker_containers(n))
            .sum();
        if pods + containers > 0 {
            did.push(format!(
                "killed {pods} pod processes, removed {containers} containers"
            ));
        }
        if st.netns {
            did.extend(netns::remove_all());
        }
        if !st.keep_data {
            for d in &st.data_dirs {
                if std::fs::remove_dir_all(d).is_ok() {
                    did.push(format!("removed {}", d.display()));
                }
            }
        }
        did
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.run();
    }
}

/// Kills what a crashed earlier run left: harness namespaces and their
/// processes, agents whose data dir is under `root`, pod processes recorded
/// there, and containers of chaos nodes; with `remove_data`, also the runs'
/// data dirs (logs and reports stay). Only called while holding the run
/// lock, so no other run can own them.
pub fn clean_leftovers(root: &Path, remove_data: bool) -> Vec<String> {
    let mut did = netns::remove_all();
    let needle = format!("{}/", root.display());
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_agent = args.iter().any(|a| a == "agent")
                && args
                    .windows(2)
                    .any(|w| w[0] == "--data-dir" && w[1].starts_with(&needle));
            if is_agent {
                hard_kill(pid);
                did.push(format!("killed leftover agent {pid}"));
            }
        }
    }
    if let Ok(runs) = std::fs::read_dir(root) {
        for run in runs.flatten() {
            let Ok(nodes) = std::fs::read_dir(run.path().join("nodes")) else {
                continue;
            };
            for node in nodes.flatten() {
                let n = kill_recorded_processes(&node.path());
                if n > 0 {
                    did.push(format!(
                        "killed {n} leftover pod processes of {}",
                        node.path().display()
                    ));
                }
            }
            let data = run.path().join("nodes");
            if remove_data && std::fs::remove_dir_all(&data).is_ok() {
                did.push(format!("removed {}", data.display()));
            }
        }
    }
    if let Ok(out) = netns::run(
        "docker",
        &[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL_NODE}"),
            "--format",
            &format!("{{{{.Label \"{LABEL_NODE}\"}}}}"),
        ],
        None,
    ) {
        let names: BTreeSet<&str> = out.lines().filter(|l| l.starts_with(NAME_PREFIX)).collect();
        for name in names {
            let n = remove_docker_containers(name);
            did.push(format!("removed {n} leftover containers of {name}"));
        }
    }
    did
}

/// The sum of every series of `name` in a Prometheus text page.
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?.trim();
            (metric == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// Where a node lives and how it is reached.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node name (`chaos-nI`).
    pub name: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its stderr log, appended across restarts.
    pub log: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// The address other nodes and clients reach it at.
    pub ip: String,
    /// p2p listen address.
    pub p2p: String,
    /// API listen address.
    pub api: String,
    /// DNS listen address (loopback only, where nodes share 127.0.0.1).
    pub dns: Option<String>,
    /// Its namespace (netns only).
    pub ns: Option<String>,
    /// Whether its API speaks TLS (it listens beyond loopback in netns).
    pub tls: bool,
}

impl NodeSpec {
    /// `http://API` or `https://API`.
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.api)
    }
}

/// An agent that is not one of the cluster's nodes (an intruder), in a
/// namespace of its own.
pub struct ExtraSpec<'a> {
    /// Its `--name`.
    pub name: &'a str,
    /// Its namespace.
    pub ns: &'a str,
    /// Its address there (p2p on :7946, API on :7947).
    pub ip: &'a str,
    /// Its data dir.
    pub data_dir: &'a Path,
    /// The cluster key it is given (`None`: none at all).
    pub key_file: Option<&'a Path>,
    /// p2p addresses for `--join`.
    pub join: Vec<String>,
    /// Its stderr log.
    pub log: &'a Path,
}

/// A running extra agent.
pub struct ExtraAgent {
    child: Option<tokio::process::Child>,
    pid: Option<i32>,
    ns: String,
    data_dir: PathBuf,
}

/// What the harness did to a node's process last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Running.
    Running,
    /// SIGSTOPped.
    Paused,
    /// Not running (killed, stopped, or not started yet).
    Down,
}

struct Proc {
    child: Option<tokio::process::Child>,
    pid: Option<i32>,
    state: NodeState,
    /// The pod processes stopped with a paused agent, to continue with it.
    stopped_pods: Vec<i32>,
}

/// One node's view of Raft, from `GET /v1/raft`.
#[derive(Debug, Clone)]
pub struct RaftView {
    /// The node's Raft id.
    pub node_id: u64,
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// The leader it knows, if any.
    pub leader: Option<u64>,
    /// Voters as (id, name).
    pub voters: Vec<(u64, String)>,
    /// Learners as (id, name).
    pub learners: Vec<(u64, String)>,
}

impl RaftView {
    fn parse(v: &Value) -> Option<RaftView> {
        let group = |k: &str| -> Vec<(u64, String)> {
            v[k].as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        e[0].as_u64().unwrap_or(0),
                        e[1]["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        Some(RaftView {
            node_id: v["node_id"].as_u64()?,
            state: v["state"].as_str()?.to_string(),
            term: v["term"].as_u64()?,
            leader: v["leader"].as_u64(),
            voters: group("voters"),
            learners: group("learners"),
        })
    }
}

/// A pod container some node actually runs (a live process or a running container).
#[derive(Debug, Clone, Serialize)]
pub struct RunningContainer {
    /// The node whose runtime holds it.
    pub node: String,
    /// Runtime id.
    pub id: String,
    /// `namespace/name` of its pod, from its label.
    pub pod: String,
    /// Its pod's uid, from its label.
    pub uid: String,
    /// Container name within the pod.
    pub container: String,
}

/// The running cluster.
pub struct Cluster {
    /// Every node, by index.
    pub specs: Vec<NodeSpec>,
    procs: Mutex<Vec<Proc>>,
    /// The namespaces, in netns mode.
    pub net: Option<Netns>,
    shoal: PathBuf,
    /// The runtime every agent uses.
    pub runtime: RuntimeKind,
    /// Plain HTTP to the app's node port (the API goes through `clients`).
    pub app_http: reqwest::Client,
    /// The library's API client of each node, for the harness's reads.
    clients: Vec<shoal::client::Client>,
    teardown: Arc<Teardown>,
    /// Voters the cluster settles at with every node up.
    pub expected_voters: usize,
    /// The cluster key every agent is given (netns addresses are beyond
    /// loopback, where an agent refuses to run without one).
    cluster_key: PathBuf,
    /// The admin token of every agent's API (one beyond loopback is
    /// refused without one), sent by every harness client.
    api_token: String,
    /// The cluster CA (derived from the cluster key) that TLS APIs present.
    ca_pem: String,
}

/// Options for building a cluster.
pub struct ClusterOptions<'a> {
    /// Number of nodes.
    pub nodes: usize,
    /// Network layout.
    pub network: Network,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// The run directory (data dirs, logs, configs go under it).
    pub run_dir: &'a Path,
    /// The `shoal` binary.
    pub shoal: PathBuf,
    /// TOML appended to each agent's config.
    pub agent_config: &'a str,
}

/// Sends an agent's stderr to `log` (appended, after a line naming `who`),
/// with the harness's log filter, in a process group of its own: a Ctrl-C
/// at the terminal reaches only the harness, which then tears the agents
/// down itself.
fn agent_output(cmd: &mut tokio::process::Command, log: &Path, who: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("log file {}", log.display()))?;
    {
        use std::io::Write;
        let _ = writeln!(file, "---- shoal-chaos: starting {who} ----");
    }
    cmd.env("RUST_LOG", "info,libp2p=warn,openraft=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .process_group(0);
    Ok(())
}

impl Cluster {
    /// The library's API client of node `i`, with the nodes' token and,
    /// for a TLS API, the cluster CA; connections give up after `connect`.
    pub fn api_client(&self, i: usize, connect: Duration) -> anyhow::Result<shoal::client::Client> {
        let s = &self.specs[i];
        let ca = s.tls.then_some(self.ca_pem.as_bytes());
        Ok(shoal::client::Client::with_connect_timeout(
            &s.base(),
            Some(self.api_token.clone()),
            ca,
            connect,
        )?)
    }

    /// Node `i`'s API client for the harness's own requests.
    pub fn client(&self, i: usize) -> Option<&shoal::client::Client> {
        self.clients.get(i)
    }

    /// Sets up the network and writes configs; no agent runs yet.
    pub fn prepare(opts: ClusterOptions<'_>, teardown: Arc<Teardown>) -> anyhow::Result<Cluster> {
        let n = opts.nodes;
        let mut cfg: toml::Table = toml::from_str(opts.agent_config).context("agent_config")?;
        let api_token = hex::encode(rand::random::<[u8; 16]>());
        match cfg
            .entry("api")
            .or_insert_with(|| toml::Value::Table(Default::default()))
        {
            toml::Value::Table(api) => {
                api.insert("token".into(), toml::Value::String(api_token.clone()));
            }
            _ => anyhow::bail!("agent_config: api is not a table"),
        }
        let help = std::process::Command::new(&opts.shoal)
            .args(["agent", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .with_context(|| format!("cannot run {}", opts.shoal.display()))?;
        // No ingress listeners on every address of the host from a chaos
        // node (an agent binary older than the ingress has no such section).
        if help.contains("--ingress-http-addr") && !cfg.contains_key("ingress") {
            let mut ingress = toml::Table::new();
            ingress.insert("http_addr".into(), toml::Value::String(String::new()));
            ingress.insert("https_addr".into(), toml::Value::String(String::new()));
            cfg.insert("ingress".into(), toml::Value::Table(ingress));
        }
        let agent_config = toml::to_string(&cfg).context("agent_config")?;
        let max_voters = cfg
            .get("raft")
            .and_then(|r| r.get("voters"))
            .and_then(|v| v.as_integer())
            .unwrap_or(5) as usize;
        let mut expected_voters = n.min(max_voters);
        if expected_voters.is_multiple_of(2) {
            expected_voters -= 1;
        }
        // DNS is only given its own port where nodes share an address, and
        // only when this agent binary has the flag (discovery is recent).
        let has_dns_flag = help.contains("--dns-addr");
        let ports = match opts.network {
            Network::Loopback => free_ports(3 * n),
            Network::Netns => Vec::new(),
        };
        let cluster_key = opts.run_dir.join("cluster.key");
        let key = shoal::net::generate_cluster_key();
        shoal::net::write_private(&cluster_key, shoal::net::cluster_key_text(&key).as_bytes())
            .with_context(|| format!("cannot write {}", cluster_key.display()))?;
        let ca_pem = shoal::api::tls::ClusterCa::from_psk(&key)?.cert_pem();
        let mut specs = Vec::new();
        for i in 0..n {
            let name = format!("{NAME_PREFIX}{}", i + 1);
            let data_dir = opts.run_dir.join("nodes").join(&name);
            std::fs::create_dir_all(&data_dir)?;
            let config = opts.run_dir.join(format!("{name}.toml"));
            std::fs::write(&config, &agent_config)?;
            let log = opts.run_dir.join("logs").join(format!("{name}.log"));
            std::fs::create_dir_all(log.parent().unwrap_or(opts.run_dir))?;
            let spec = match opts.network {
                Network::Netns => {
                    let ip = netns::node_ip(i);
                    NodeSpec {
                        name,
                        data_dir,
                        log,
                        config,
                        p2p: format!("{ip}:7946"),
                        api: format!("{ip}:7947"),
                        dns: None,
                        ns: Some(netns::ns_name(i)),
                        ip,
                        tls: true,
                    }
                }
                Network::Loopback => NodeSpec {
                    name,
                    data_dir,
                    log,
                    config,
                    ip: "127.0.0.1".into(),
                    p2p: format!("127.0.0.1:{}", ports[3 * i]),
                    api: format!("127.0.0.1:{}", ports[3 * i + 1]),
                    dns: has_dns_flag.then(|| format!("127.0.0.1:{}", ports[3 * i + 2])),
                    ns: None,
                    tls: false,
                },
            };
            teardown.with(|t| {
                t.data_dirs.push(spec.data_dir.clone());
                if opts.runtime == RuntimeKind::Docker {
                    t.docker_nodes.push(spec.name.clone());
                }
            });
            specs.push(spec);
        }
        let net = match opts.network {
            Network::Netns => {
                teardown.with(|t| t.netns = true);
                Some(Netns::setup(n)?)
            }
            Network::Loopback => None,
        };
        // Plain HTTP for the app's node port (not the API).
        let app_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build()?;
        let clients = specs
            .iter()
            .map(|s| {
                let ca = s.tls.then_some(ca_pem.as_bytes());
                shoal::client::Client::with_connect_timeout(
                    &s.base(),
                    Some(api_token.clone()),
                    ca,
                    Duration::from_secs(1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cluster {
            api_token,
            ca_pem,
            clients,
            procs: Mutex::new(
                (0..n)
                    .map(|_| Proc {
                        child: None,
                        pid: None,
                        state: NodeState::Down,
                        stopped_pods: Vec::new(),
                    })
                    .collect(),
            ),
            specs,
            net,
            shoal: opts.shoal,
            runtime: opts.runtime,
            app_http,
            teardown,
            expected_voters,
            cluster_key,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// What the harness last did to node `i`.
    pub fn state(&self, i: usize) -> NodeState {
        lock(&self.procs)[i].state
    }

    /// Nodes whose process exists (running or paused): what a client may
    /// still send requests to, not knowing the host hangs.
    pub fn reachable(&self) -> Vec<usize> {
        lock(&self.procs)
            .iter()
            .enumerate()
            .filter(|(_, p)| p.state != NodeState::Down)
            .map(|(i, _)| i)
            .collect()
    }

    /// Starts node `i`'s agent (it must be down).
    pub fn start(&self, i: usize) -> anyhow::Result<()> {
        let s = &self.specs[i];
        let mut cmd = match &s.ns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.shoal);
                c
            }
            None => tokio::process::Command::new(&self.shoal),
        };
        cmd.args(["agent", "--runtime", self.runtime.flag(), "--name", &s.name])
            .arg("--config")
            .arg(&s.config)
            .arg("--data-dir")
            .arg(&s.data_dir)
            .args(["--p2p-addr", &s.p2p, "--api-addr", &s.api])
            .arg("--cluster-key-file")
            .arg(&self.cluster_key)
            .args(["--bootstrap-expect", &self.len().to_string()]);
        for (j, other) in self.specs.iter().enumerate() {
            if j != i {
                cmd.args(["--join", &other.p2p]);
            }
        }
        if let Some(d) = &s.dns {
            cmd.args(["--dns-addr", d]);
        }
        agent_output(&mut cmd, &s.log, &s.name)?;
        let mut procs = lock(&self.procs);
        if procs[i].state != NodeState::Down {
            bail!("{} is already running", s.name);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.shoal.display()))?;
        let pid = child.id().map(|p| p as i32);
        if let Some(pid) = pid {
            self.teardown.with(|t| t.agents.insert(pid));
        }
        procs[i] = Proc {
            child: Some(child),
            pid,
            state: NodeState::Running,
            stopped_pods: Vec::new(),
        };
        Ok(())
    }

    /// Starts an agent that is not a node of the cluster (an intruder),
    /// with the nodes' config (API token included), in namespace `x.ns`.
    /// Teardown kills it and its pods and removes its data dir.
    pub fn start_extra(&self, x: &ExtraSpec<'_>) -> anyhow::Result<ExtraAgent> {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", x.ns])
            .arg(&self.shoal)
            .args(["agent", "--runtime", self.runtime.flag(), "--name", x.name])
            .arg("--config")
            .arg(&self.specs[0].config)
            .arg("--data-dir")
            .arg(x.data_dir)
            .args([
                "--p2p-addr",
                &format!("{}:7946", x.ip),
                "--api-addr",
                &format!("{}:7947", x.ip),
            ]);
        if let Some(k) = x.key_file {
            cmd.arg("--cluster-key-file").arg(k);
        }
        for j in &x.join {
            cmd.args(["--join", j]);
        }
        agent_output(&mut cmd, x.log, &format!("intruder {}", x.name))?;
        self.teardown
            .with(|t| t.data_dirs.push(x.data_dir.to_path_buf()));
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.shoal.display()))?;
        let pid = child.id().map(|p| p as i32);
        if let Some(pid) = pid {
            self.teardown.with(|t| t.agents.insert(pid));
        }
        Ok(ExtraAgent {
            child: Some(child),
            pid,
            ns: x.ns.to_string(),
            data_dir: x.data_dir.to_path_buf(),
        })
    }

    /// Whether an extra agent has exited by itself, with its status.
    pub fn extra_exited(&self, a: &mut ExtraAgent) -> Option<std::process::ExitStatus> {
        a.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILLs an extra agent and every process of its namespace (its pods).
    pub async fn stop_extra(&self, mut a: ExtraAgent) {
        if let Some(pid) = a.pid {
            hard_kill(pid);
        }
        self.reap(a.child.take(), a.pid, Duration::from_secs(5))
            .await;
        kill_recorded_processes(&a.data_dir);
        for pid in netns::pids_in(&a.ns) {
            hard_kill(pid);
        }
    }

    /// Creates intruder `k`'s namespace (netns mode only).
    pub fn add_intruder_ns(&self, k: usize) -> anyhow::Result<()> {
        match &self.net {
            Some(net) => net.add_intruder(k),
            None => bail!("intruders need network = \"netns\""),
        }
    }

    /// The cluster key file every node is given.
    pub fn cluster_key_file(&self) -> &Path {
        &self.cluster_key
    }

    /// An API client of a node outside the cluster at `base` whose API
    /// presents a certificate of `ca_pem` (its own key's CA), with the
    /// nodes' token.
    pub fn foreign_client(
        &self,
        base: &str,
        ca_pem: &str,
    ) -> anyhow::Result<shoal::client::Client> {
        Ok(shoal::client::Client::with_ca(
            base,
            Some(self.api_token.clone()),
            Some(ca_pem.as_bytes()),
        )?)
    }

    /// The cluster CA, as the nodes' TLS APIs present it.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The sum of every series of metric `name` on node `i`'s `/metrics`
    /// (0 when the node has not counted any yet); `None` if it does not answer.
    pub async fn metric_sum(&self, i: usize, name: &str) -> Option<f64> {
        let r = self
            .clients
            .get(i)?
            .call(
                reqwest::Method::GET,
                "/metrics",
                None,
                Some(Duration::from_secs(3)),
            )
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        Some(sum_metric(&r.text().await.ok()?, name))
    }

    /// Node `i`'s own PeerId, from its member list.
    pub async fn peer_id(&self, i: usize) -> Option<String> {
        let v = self
            .get_json(i, "/v1/members", Duration::from_secs(2))
            .await?;
        v["items"]
            .as_array()?
            .iter()
            .find(|m| m["isSelf"] == true)?["peerId"]
            .as_str()
            .map(str::to_string)
    }

    /// Node `i`'s member list as (name, PeerId, state); `None` without an answer.
    pub async fn members_of(&self, i: usize) -> Option<Vec<(String, String, String)>> {
        let v = self
            .get_json(i, "/v1/members", Duration::from_secs(2))
            .await?;
        Some(
            v["items"]
                .as_array()?
                .iter()
                .map(|m| {
                    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
                    (s(&m["meta"]["name"]), s(&m["peerId"]), s(&m["state"]))
                })
                .collect(),
        )
    }

    /// Copies node `i`'s data dir (the node must be down) to `to`.
    pub fn copy_data_dir(&self, i: usize, to: &Path) -> anyhow::Result<()> {
        let from = &self.specs[i].data_dir;
        netns::run(
            "cp",
            &["-a", &from.display().to_string(), &to.display().to_string()],
            None,
        )
        .with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            self.start(i)?;
        }
        Ok(())
    }

    fn signal(&self, i: usize, sig: Signal) -> anyhow::Result<()> {
        let pid = lock(&self.procs)[i]
            .pid
            .with_context(|| format!("{} has no process", self.specs[i].name))?;
        kill(Pid::from_raw(pid), sig)
            .with_context(|| format!("{sig} to {}", self.specs[i].name))?;
        Ok(())
    }

    /// Takes node `i`'s process out of the table, marking the node down.
    fn take(&self, i: usize) -> (Option<tokio::process::Child>, Option<i32>) {
        let mut procs = lock(&self.procs);
        let p = &mut procs[i];
        p.state = NodeState::Down;
        (p.child.take(), p.pid.take())
    }

    async fn reap(&self, child: Option<tokio::process::Child>, pid: Option<i32>, limit: Duration) {
        if let Some(mut c) = child
            && tokio::time::timeout(limit, c.wait()).await.is_err()
            && let Some(pid) = pid
        {
            hard_kill(pid);
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
        if let Some(pid) = pid {
            self.teardown.with(|t| t.agents.remove(&pid));
        }
    }

    /// SIGKILLs node `i`; with `host_died` its pods die with it.
    pub async fn kill(&self, i: usize, host_died: bool) -> anyhow::Result<()> {
        // Pods stopped with a paused agent run on: only the agent dies here.
        self.continue_pods(i);
        let (child, pid) = self.take(i);
        let pid = pid.with_context(|| format!("{} is not running", self.specs[i].name))?;
        hard_kill(pid);
        self.reap(child, Some(pid), Duration::from_secs(10)).await;
        if host_died {
            self.kill_pods(i);
        }
        Ok(())
    }

    /// SIGTERMs node `i` (a graceful leave), waiting up to 30 s before SIGKILL.
    pub async fn terminate(&self, i: usize) -> anyhow::Result<()> {
        if self.state(i) == NodeState::Paused {
            self.continue_pods(i);
            self.signal(i, Signal::SIGCONT)?;
        }
        self.signal(i, Signal::SIGTERM)?;
        let (child, pid) = self.take(i);
        self.reap(child, pid, Duration::from_secs(30)).await;
        Ok(())
    }

    /// SIGSTOPs node `i`'s agent and, with the process runtime, its pods:
    /// a hung host. (Docker containers keep running: they are not in the
    /// node's namespace.)
    pub fn pause(&self, i: usize) -> anyhow::Result<()> {
        self.signal(i, Signal::SIGSTOP)?;
        let agent = lock(&self.procs)[i].pid;
        let pods: Vec<i32> = self
            .pod_pids(i)
            .into_iter()
            .filter(|p| Some(*p) != agent && *p > 1)
            .filter(|p| kill(Pid::from_raw(*p), Signal::SIGSTOP).is_ok())
            .collect();
        let mut procs = lock(&self.procs);
        procs[i].state = NodeState::Paused;
        procs[i].stopped_pods = pods;
        Ok(())
    }

    /// SIGCONTs node `i`: its pods first, so the agent finds them running.
    pub fn resume(&self, i: usize) -> anyhow::Result<()> {
        self.continue_pods(i);
        self.signal(i, Signal::SIGCONT)?;
        lock(&self.procs)[i].state = NodeState::Running;
        Ok(())
    }

    fn continue_pods(&self, i: usize) {
        let pods = std::mem::take(&mut lock(&self.procs)[i].stopped_pods);
        for p in pods {
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
        }
    }

    /// The pod processes of node `i`: everything in its namespace, or what
    /// its process runtime recorded when it has none.
    fn pod_pids(&self, i: usize) -> Vec<i32> {
        let s = &self.specs[i];
        match &s.ns {
            Some(ns) => netns::pids_in(ns),
            None => process_records(&s.data_dir)
                .into_iter()
                .filter_map(|r| r.live_pid)
                .collect(),
        }
    }

    /// Kills every pod process or container of node `i` (its host died).
    pub fn kill_pods(&self, i: usize) -> usize {
        let s = &self.specs[i];
        let mut n = kill_recorded_processes(&s.data_dir);
        if let Some(ns) = &s.ns {
            // Anything else still in the namespace was started by the agent.
            for pid in netns::pids_in(ns) {
                hard_kill(pid);
                n += 1;
            }
        }
        if self.runtime == RuntimeKind::Docker {
            n += remove_docker_containers(&s.name);
        }
        n
    }

    /// Empties node `i`'s data dir (the node must be down): a new disk.
    pub fn wipe(&self, i: usize) -> anyhow::Result<()> {
        let dir = &self.specs[i].data_dir;
        std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
        std::fs::create_dir_all(dir)?;
        Ok(())
    }

    /// Installs a partition (pairs of nodes that cannot talk); empty heals.
    pub fn set_partition(&self, blocked: &BTreeSet<(usize, usize)>) -> anyhow::Result<()> {
        match &self.net {
            Some(net) => net.set_partition(blocked),
            None if blocked.is_empty() => Ok(()),
            None => bail!("loopback nodes cannot be partitioned"),
        }
    }

    /// GET a JSON document from node `i`'s API, `None` on any failure.
    pub async fn get_json(&self, i: usize, path: &str, timeout: Duration) -> Option<Value> {
        self.clients
            .get(i)?
            .send_within(reqwest::Method::GET, path, None, Some(timeout))
            .await
            .ok()
    }

    /// Node `i`'s Raft view, `None` when it does not answer within 1 s.
    pub async fn raft(&self, i: usize) -> Option<RaftView> {
        let v = self.get_json(i, "/v1/raft", Duration::from_secs(1)).await?;
        RaftView::parse(&v)
    }

    /// Every reachable node's Raft view, asked concurrently.
    pub async fn raft_all(&self) -> Vec<(usize, Option<RaftView>)> {
        let nodes = self.reachable();
        let views = futures::future::join_all(nodes.iter().map(|i| self.raft(*i))).await;
        nodes.into_iter().zip(views).collect()
    }

    /// The leader with the highest term among the nodes that call themselves leader.
    pub async fn leader(&self) -> Option<(usize, u64)> {
        self.leader_among(&self.reachable()).await
    }

    /// Like `leader`, asking only `nodes` (so a hung node does not slow the look down).
    pub async fn leader_among(&self, nodes: &[usize]) -> Option<(usize, u64)> {
        let views = futures::future::join_all(nodes.iter().map(|i| self.raft(*i))).await;
        nodes
            .iter()
            .zip(views)
            .filter_map(|(i, v)| v.filter(|v| v.state == "Leader").map(|v| (*i, v.term)))
            .max_by_key(|(_, t)| *t)
    }

    /// Waits (up to `limit`) for a leader.
    pub async fn wait_leader(&self, limit: Duration) -> Option<(usize, u64)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.leader().await {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether node `i` answers `/healthz` with 200.
    pub async fn healthy(&self, i: usize) -> bool {
        let Some(c) = self.clients.get(i) else {
            return false;
        };
        matches!(
            c.call(
                reqwest::Method::GET,
                "/healthz",
                None,
                Some(Duration::from_secs(1)),
            )
            .await,
            Ok(r) if r.status() == 200
        )
    }

    /// Names node `i` reports as `alive` members.
    async fn alive_members(&self, i: usize) -> BTreeSet<String> {
        let Some(v) = self
            .get_json(i, "/v1/members", Duration::from_secs(2))
            .await
        else {
            return BTreeSet::new();
        };
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["state"] == "alive")
            .filter_map(|m| m["meta"]["name"].as_str().map(str::to_string))
            .collect()
    }

    /// Why the cluster is not whole yet (`None` when it is): every node
    /// running, healthy, seeing every other alive, and a leader with the
    /// full voter set whose names are all current members.
    pub async fn not_whole(&self) -> Option<String> {
        let names: BTreeSet<String> = self.specs.iter().map(|s| s.name.clone()).collect();
        for i in 0..self.len() {
            if self.state(i) != NodeState::Running {
                return Some(format!("{} is {:?}", self.specs[i].name, self.state(i)));
            }
            if !self.healthy(i).await {
                return Some(format!("{} is not healthy", self.specs[i].name));
            }
            let alive = self.alive_members(i).await;
            if let Some(missing) = names.difference(&alive).next() {
                return Some(format!(
                    "{} does not see {missing} alive",
                    self.specs[i].name
                ));
            }
        }
        let Some((l, _)) = self.leader().await else {
            return Some("no leader".into());
        };
        let Some(view) = self.raft(l).await else {
            return Some("the leader does not answer".into());
        };
        if view.voters.len() != self.expected_voters {
            return Some(format!(
                "{} voters, {} expected",
                view.voters.len(),
                self.expected_voters
            ));
        }
        let members = view.voters.len() + view.learners.len();
        if members != self.len() {
            return Some(format!(
                "{members} Raft members (voters and learners), {} expected",
                self.len()
            ));
        }
        None
    }

    /// What every node sees, for a failed check: its members and their
    /// states, its Raft role, and (netns) the partition rules left in its
    /// namespace and which other nodes' p2p ports it can open a TCP
    /// connection to. A failure in CI leaves only the printed report, so
    /// this is what tells a broken network from a broken daemon.
    pub async fn diagnose(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            let name = &self.specs[i].name;
            if self.state(i) != NodeState::Running {
                out.push(format!("{name}: {:?}", self.state(i)));
                continue;
            }
            let members = match self
                .get_json(i, "/v1/members", Duration::from_secs(2))
                .await
            {
                Some(v) => v["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["isSelf"] != true)
                    .map(|m| {
                        let who = m["meta"]["name"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| {
                                format!("peer {}", m["peerId"].as_str().unwrap_or("?"))
                            });
                        format!(
                            "{who} {} (incarnation {})",
                            m["state"].as_str().unwrap_or("?"),
                            m["incarnation"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "no answer from /v1/members".into(),
            };
            out.push(format!("{name} members: {members}"));
            let raft = match self.raft(i).await {
                Some(r) => format!(
                    "{} of term {}, leader {:?}, {} voters, {} learners",
                    r.state,
                    r.term,
                    r.leader,
                    r.voters.len(),
                    r.learners.len()
                ),
                None => "no answer from /v1/raft".into(),
            };
            out.push(format!("{name} raft: {raft}"));
            if let Some(ns) = &self.specs[i].ns {
                let drops = netns::run("ip", &["netns", "exec", ns, "iptables-save"], None)
                    .map(|t| {
                        t.lines()
                            .filter(|l| l.contains("-j DROP"))
                            .count()
                            .to_string()
                    })
                    .unwrap_or_else(|e| format!("unknown ({e})"));
                let mut unreachable = Vec::new();
                for (j, other) in self.specs.iter().enumerate() {
                    let Some(port) = other.p2p.rsplit(':').next() else {
                        continue;
                    };
                    if j == i {
                        continue;
                    }
                    let probe = format!("</dev/tcp/{}/{port}", other.ip);
                    let ok = netns::run(
                        "ip",
                        &["netns", "exec", ns, "timeout", "1", "bash", "-c", &probe],
                        None,
                    )
                    .is_ok();
                    if !ok {
                        unreachable.push(other.name.clone());
                    }
                }
                out.push(format!(
                    "{name} network: {drops} DROP rules; p2p port unreachable: {}",
                    if unreachable.is_empty() {
                        "none".to_string()
                    } else {
                        unreachable.join(", ")
                    }
                ));
            }
            let log = std::fs::read_to_string(&self.specs[i].log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .filter(|l| !l.contains("AppendEntries"))
                .rev()
                .take(3)
                .collect();
            for l in tail.into_iter().rev() {
                out.push(format!(
                    "{name} log: {}",
                    l.chars().take(240).collect::<String>()
                ));
            }
        }
        out
    }

    /// Waits until the cluster is whole; the time it took, or why not.
    pub async fn wait_whole(&self, limit: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        let mut why = String::from("not checked");
        while t.elapsed() < limit {
            match self.not_whole().await {
                None => return Ok(t.elapsed()),
                Some(w) => why = w,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(why)
    }

    /// The pod containers node `i` runs right now.
    pub fn running_containers(&self, i: usize) -> Vec<RunningContainer> {
        let s = &self.specs[i];
        match self.runtime {
            RuntimeKind::Process => process_records(&s.data_dir)
                .into_iter()
                .filter(|r| r.live_pid.is_some())
                .map(|r| RunningContainer {
                    node: s.name.clone(),
                    id: r.id,
                    pod: r.labels.get(LABEL_POD).cloned().unwrap_or_default(),
                    uid: r.labels.get(LABEL_POD_UID).cloned().unwrap_or_default(),
                    container: r.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default(),
                })
                .collect(),
            RuntimeKind::Docker => {
                let format = format!(
                    "{{{{.ID}}}}\t{{{{.Label \"{LABEL_POD}\"}}}}\t{{{{.Label \"{LABEL_POD_UID}\"}}}}\t{{{{.Label \"{LABEL_CONTAINER}\"}}}}"
                );
                let out = netns::run(
                    "docker",
                    &[
                        "ps",
                        "--filter",
                        &format!("label={LABEL_NODE}={}", s.name),
                        "--format",
                        &format,
                    ],
                    None,
                )
                .unwrap_or_default();
                out.lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split('\t').collect();
                        Some(RunningContainer {
                            node: s.name.clone(),
                            id: f.first()?.to_string(),
                            pod: f.get(1)?.to_string(),
                            uid: f.get(2)?.to_string(),
                            container: f.get(3)?.to_string(),
                        })
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_series_are_summed_by_name() {
        let page = "# TYPE shoal_store_refused_rpcs_total counter\n\
                    shoal_store_refused_rpcs_total 3\n\
                    shoal_net_refused_connections_total{kind=\"a\"} 2\n\
                    shoal_net_refused_connections_total{kind=\"b\"} 5\n\
                    shoal_net_refused_connections_total_other 100\n";
        assert_eq!(sum_metric(page, "shoal_store_refused_rpcs_total"), 3.0);
        assert_eq!(sum_metric(page, "shoal_net_refused_connections_total"), 7.0);
        assert_eq!(sum_metric(page, "shoal_absent_total"), 0.0);
    }
}
