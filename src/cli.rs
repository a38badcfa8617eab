//! cli: the `shoal` command line. `shoal agent` runs the daemon; every other
//! command is an HTTP client of a node's API (`--addr`, `SHOAL_ADDR`).
//! Exit codes: 0 success, 1 error with a one-line cause, 2 usage.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::config::Config;
use crate::resource::Kind;

/// Writes to stdout; a closed pipe (`shoal get pods | head`) ends the
/// process quietly, as other Unix tools do, instead of panicking.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// shoal: a container orchestrator with no control plane.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about)]
pub struct Cli {
    /// The node API to talk to.
    #[arg(
        long,
        global = true,
        env = "SHOAL_ADDR",
        default_value = "http://127.0.0.1:7947"
    )]
    pub addr: String,
    /// Bearer token for the API (when the cluster sets api.token).
    #[arg(long, global = true, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the node daemon.
    Agent(AgentArgs),
    /// Create or update the objects of a manifest file (`-` for stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// List objects of a kind, or show one.
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// List across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show one object in detail.
    Describe {
        kind: String,
        name: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Delete an object, or every object of a manifest.
    Delete {
        kind: Option<String>,
        name: Option<String>,
        #[arg(short = 'f', long = "filename")]
        file: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Print a container's logs, from whichever node runs the pod.
    Logs {
        pod: String,
        /// Keep streaming new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u64>,
        /// The container, when the pod has several.
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Recent events (container started, killed, probe failed, back-off, OOM).
    Events {
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Events of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Gossip members: address, state (alive/suspect/down/left), incarnation, Raft role.
    Members {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The cluster's nodes: runtime, allocatable CPU and memory.
    Nodes {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Raft group status.
    Raft {
        #[command(subcommand)]
        cmd: RaftCmd,
    },
}

/// `shoal raft` subcommands.
#[derive(Debug, Subcommand)]
pub enum RaftCmd {
    /// Leader, term, voters and learners.
    Status,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// Flags of `shoal agent`; they override the config file.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// TOML config file (see config/shoal.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One-node cluster with data in ./shoal-data unless --data-dir.
    #[arg(long)]
    pub dev: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// p2p listen address (default 0.0.0.0:7946).
    #[arg(long)]
    pub p2p_addr: Option<String>,
    /// Address peers use to reach this node, when it differs from --p2p-addr.
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// API listen address (default 127.0.0.1:7947).
    #[arg(long)]
    pub api_addr: Option<String>,
    /// Seed peer, HOST:PORT or multiaddr; repeatable.
    #[arg(long)]
    pub join: Vec<String>,
    /// Wait for N nodes, then form the cluster.
    #[arg(long)]
    pub bootstrap_expect: Option<usize>,
    #[arg(long, value_parser = ["docker", "process"])]
    pub runtime: Option<String>,
    /// Pre-shared cluster key file.
    #[arg(long)]
    pub cluster_key_file: Option<PathBuf>,
}

impl AgentArgs {
    /// The config file (if any) with these flags applied on top.
    pub fn to_config(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if self.dev {
            cfg.dev = true;
            if self.data_dir.is_none() && self.config.is_none() {
                cfg.data_dir = PathBuf::from("./shoal-data");
            }
        }
        if let Some(v) = &self.name {
            cfg.name = Some(v.clone());
        }
        if let Some(v) = &self.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &self.p2p_addr {
            cfg.p2p_addr = v.clone();
        } else if cfg.dev && self.config.is_none() {
            cfg.p2p_addr = "127.0.0.1:7946".into();
        }
        if let Some(v) = &self.advertise_addr {
            cfg.advertise_addr = Some(v.clone());
        }
        if let Some(v) = &self.api_addr {
            cfg.api_addr = v.clone();
        }
        if !self.join.is_empty() {
            cfg.join = self.join.clone();
        }
        if let Some(v) = self.bootstrap_expect {
            cfg.bootstrap_expect = Some(v);
        }
        if let Some(v) = &self.runtime {
            cfg.runtime = Some(v.clone());
        }
        if let Some(v) = &self.cluster_key_file {
            cfg.cluster_key_file = Some(v.clone());
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.addr, cli.token.clone())?;
    match cli.command {
        Cmd::Agent(args) => run_agent(args).await,
        Cmd::Apply { file } => apply(&client, &file).await,
        Cmd::Get {
            kind,
            name,
            namespace,
            all_namespaces,
            output,
        } => {
            get(
                &client,
                &kind,
                name.as_deref(),
                namespace,
                all_namespaces,
                output,
            )
            .await
        }
        Cmd::Describe {
            kind,
            name,
            namespace,
        } => describe(&client, &kind, &name, namespace).await,
        Cmd::Delete {
            kind,
            name,
            file,
            namespace,
        } => match (file, kind, name) {
            (Some(f), None, None) => delete_file(&client, &f).await,
            (None, Some(k), Some(n)) => delete_one(&client, &k, &n, namespace).await,
            _ => bail!("usage: shoal delete KIND NAME, or shoal delete -f FILE"),
        },
        Cmd::Raft {
            cmd: RaftCmd::Status,
        } => raft_status(&client).await,
        Cmd::Logs {
            pod,
            follow,
            tail,
            container,
            namespace,
        } => {
            let ns = namespace.unwrap_or_else(|| "default".into());
            let mut path = format!("/v1/namespaces/{ns}/pods/{pod}/log?follow={follow}");
            if let Some(t) = tail {
                path.push_str(&format!("&tailLines={t}"));
            }
            if let Some(c) = container {
                path.push_str(&format!("&container={c}"));
            }
            client.stream_to_stdout(&path).await
        }
        Cmd::Events {
            namespace,
            all_namespaces,
        } => events(&client, namespace, all_namespaces).await,
        Cmd::Members { output } => members(&client, output).await,
        Cmd::Nodes { output } => get(&client, "nodes", None, None, true, output).await,
    }
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = args.to_config()?;
    let node = crate::node::Node::start(cfg).await?;
    tracing::info!(name = %node.info.name, api = %node.api_addr, "shoal agent running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("leaving the cluster");
    node.leave().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// A small HTTP client for the API.
struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    fn new(addr: &str, token: Option<String>) -> anyhow::Result<Client> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, http, token })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let resp = self.call(method, path, body).await?;
        let status = resp.status();
        let text = resp.text().await.context("reading the API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| text.trim().to_string());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(value)
    }

    /// Copies a streamed plain-text answer (logs) to stdout as it arrives.
    async fn stream_to_stdout(&self, path: &str) -> anyhow::Result<()> {
        let mut resp = self.call(reqwest::Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        while let Some(chunk) = resp.chunk().await.context("reading the log stream")? {
            let mut out = std::io::stdout().lock();
            if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                // The reader went away (`| head`): that is not an error.
                return Ok(());
            }
        }
        Ok(())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the shoal API at {} (is `shoal agent` running? set --addr or SHOAL_ADDR)", self.base)
            } else if e.is_timeout() {
                anyhow!("the shoal API at {} did not answer in time", self.base)
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })
    }
}

fn read_file_arg(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))
    }
}

fn kind_arg(s: &str) -> anyhow::Result<Kind> {
    Kind::from_user(s).ok_or_else(|| {
        anyhow!(
            "unknown kind {s:?}; known: {}",
            Kind::ALL
                .iter()
                .map(|k| k.plural())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn object_path(kind: Kind, ns: &str, name: Option<&str>) -> String {
    let base = if kind.namespaced() {
        format!("/v1/namespaces/{ns}/{}", kind.plural())
    } else {
        format!("/v1/{}", kind.plural())
    };
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}

fn display_kind(kind: &str) -> String {
    let k = Kind::from_manifest(kind);
    match k {
        Some(Kind::Deployment) => "deployment.apps".into(),
        Some(Kind::Job) => "job.batch".into(),
        Some(k) => k.as_str().to_ascii_lowercase(),
        None => kind.to_ascii_lowercase(),
    }
}

async fn apply(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/apply", Some(body))
        .await
        .with_context(|| format!("apply {file}"))?;
    for w in resp
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("Warning: {w}");
        }
    }
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let outcome = match r.get("outcome").and_then(Value::as_str).unwrap_or("") {
            "Created" => "created",
            "Updated" => "configured",
            "Unchanged" => "unchanged",
            o => o,
        };
        outln!("{}/{name} {outcome}", display_kind(kind));
    }
    Ok(())
}

async fn get(
    client: &Client,
    kind: &str,
    name: Option<&str>,
    namespace: Option<String>,
    all: bool,
    output: Output,
) -> anyhow::Result<()> {
    let kind = kind_arg(kind)?;
    let ns = namespace.unwrap_or_else(|| "default".into());
    let path = if all && name.is_none() {
        format!("/v1/{}", kind.plural())
    } else {
        object_path(kind, &ns, name)
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let items: Vec<Value> = if name.is_some() {
        vec![resp.clone()]
    } else {
        resp.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match output {
        Output::Json => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Yaml => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            out!(
                "{}",
                serde_saphyr::to_string(&v).map_err(|e| anyhow!("yaml: {e}"))?
            );
        }
        Output::Table => {
            if items.is_empty() {
                if all {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            out!("{}", table(kind, &items, all));
        }
    }
    Ok(())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur
}

fn age(v: &Value) -> String {
    since(v, &["metadata", "creationTimestamp"])
}

/// How long ago the timestamp at `path` was, as kubectl prints it.
fn since(v: &Value, path: &[&str]) -> String {
    let Some(ts) = s(v, path).as_str() else {
        return "<unknown>".into();
    };
    let Some(then) = parse_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    human_duration(now.saturating_sub(then))
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_rfc3339(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn human_duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn table(kind: Kind, items: &[Value], with_ns: bool) -> String {
    let mut header: Vec<&str> = Vec::new();
    if with_ns && kind.namespaced() {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    let extra: &[&str] = match kind {
        Kind::Pod => &["READY", "STATUS", "RESTARTS", "AGE", "NODE"],
        Kind::Deployment => &["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::Service => &["TYPE", "PORT(S)", "SELECTOR", "AGE"],
        Kind::ConfigMap => &["DATA", "AGE"],
        Kind::Secret => &["TYPE", "DATA", "AGE"],
        Kind::Job => &["COMPLETIONS", "AGE"],
        Kind::Namespace => &["STATUS", "AGE"],
        Kind::Node => &["RUNTIME", "CPU", "MEMORY", "PODS", "VERSION", "AGE"],
        Kind::Event => &["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"],
    };
    header.extend_from_slice(extra);
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for it in items {
        let mut row = Vec::new();
        if with_ns && kind.namespaced() {
            row.push(
                s(it, &["metadata", "namespace"])
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        row.push(
            s(it, &["metadata", "name"])
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        match kind {
            Kind::Pod => {
                let containers = s(it, &["spec", "containers"])
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0);
                let statuses = s(it, &["status", "containerStatuses"])
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let ready = statuses
                    .iter()
                    .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
                    .count();
                let restarts: u64 = statuses.iter().map(|c| n(s(c, &["restartCount"]))).sum();
                row.push(format!("{ready}/{containers}"));
                row.push(pod_status_word(it, &statuses));
                row.push(restarts.to_string());
                row.push(age(it));
                row.push(
                    s(it, &["spec", "nodeName"])
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string(),
                );
            }
            Kind::Deployment => {
                let want = s(it, &["spec", "replicas"]).as_u64().unwrap_or(1);
                row.push(format!("{}/{want}", n(s(it, &["status", "readyReplicas"]))));
                row.push(n(s(it, &["status", "updatedReplicas"])).to_string());
                row.push(n(s(it, &["status", "availableReplicas"])).to_string());
                row.push(age(it));
            }
            Kind::Service => {
                row.push(
                    s(it, &["spec", "type"])
                        .as_str()
                        .unwrap_or("ClusterIP")
                        .to_string(),
                );
                let ports: Vec<String> = s(it, &["spec", "ports"])
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.get("port").and_then(Value::as_u64).unwrap_or(0),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                row.push(if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports.join(",")
                });
                let sel: Vec<String> = s(it, &["spec", "selector"])
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                row.push(if sel.is_empty() {
                    "<none>".into()
                } else {
                    sel.join(",")
                });
                row.push(age(it));
            }
            Kind::ConfigMap => {
                let d = s(it, &["data"]).as_object().map(|m| m.len()).unwrap_or(0)
                    + s(it, &["binaryData"])
                        .as_object()
                        .map(|m| m.len())
                        .unwrap_or(0);
                row.push(d.to_string());
                row.push(age(it));
            }
            Kind::Secret => {
                row.push(s(it, &["type"]).as_str().unwrap_or("Opaque").to_string());
                let d = s(it, &["data"]).as_object().map(|m| m.len()).unwrap_or(0)
                    + s(it, &["stringData"])
                        .as_object()
                        .map(|m| m.len())
                        .unwrap_or(0);
                row.push(d.to_string());
                row.push(age(it));
            }
            Kind::Job => {
                let want = s(it, &["spec", "completions"]).as_u64().unwrap_or(1);
                row.push(format!("{}/{want}", n(s(it, &["status", "succeeded"]))));
                row.push(age(it));
            }
            Kind::Node => {
                let info = s(it, &["status", "nodeInfo"]);
                row.push(s(info, &["runtime"]).as_str().unwrap_or("?").to_string());
                let alloc = s(it, &["status", "allocatable"]);
                row.push(s(alloc, &["cpu"]).as_str().unwrap_or("?").to_string());
                row.push(s(alloc, &["memory"]).as_str().unwrap_or("?").to_string());
                row.push(s(alloc, &["pods"]).as_str().unwrap_or("?").to_string());
                row.push(
                    s(info, &["shoalVersion"])
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                );
                row.push(age(it));
            }
            Kind::Event => {
                row.push(since(it, &["lastTimestamp"]));
                row.push(s(it, &["type"]).as_str().unwrap_or("").to_string());
                row.push(s(it, &["reason"]).as_str().unwrap_or("").to_string());
                let obj = s(it, &["involvedObject"]);
                row.push(format!(
                    "{}/{}",
                    s(obj, &["kind"]).as_str().unwrap_or("").to_lowercase(),
                    s(obj, &["name"]).as_str().unwrap_or("")
                ));
                row.push(n(s(it, &["count"])).max(1).to_string());
                row.push(s(it, &["message"]).as_str().unwrap_or("").to_string());
            }
            Kind::Namespace => {
                row.push(
                    s(it, &["status", "phase"])
                        .as_str()
                        .unwrap_or("Active")
                        .to_string(),
                );
                row.push(age(it));
            }
        }
        rows.push(row);
    }
    render_rows(&rows)
}

/// What kubectl prints in a pod's STATUS column: the reason a container is
/// waiting or terminated (CrashLoopBackOff, OOMKilled, ...) when there is
/// one, else the phase.
fn pod_status_word(pod: &Value, statuses: &[Value]) -> String {
    let phase = s(pod, &["status", "phase"]).as_str().unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        return s(pod, &["status", "reason"])
            .as_str()
            .unwrap_or(if phase == "Succeeded" {
                "Completed"
            } else {
                phase
            })
            .to_string();
    }
    for c in statuses {
        for state in ["waiting", "terminated"] {
            if let Some(r) = s(c, &["state", state, "reason"]).as_str() {
                return r.to_string();
            }
        }
    }
    phase.to_string()
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
fn render_rows(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

async fn describe(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: Option<String>,
) -> anyhow::Result<()> {
    let kind = kind_arg(kind)?;
    let ns = namespace.unwrap_or_else(|| "default".into());
    let obj = client
        .send(
            reqwest::Method::GET,
            &object_path(kind, &ns, Some(name)),
            None,
        )
        .await?;
    let meta = s(&obj, &["metadata"]);
    let mut out = String::new();
    out.push_str(&format!(
        "Name:              {}\n",
        meta.get("name").and_then(Value::as_str).unwrap_or("")
    ));
    if kind.namespaced() {
        out.push_str(&format!(
            "Namespace:         {}\n",
            meta.get("namespace").and_then(Value::as_str).unwrap_or("")
        ));
    }
    out.push_str(&format!("Kind:              {}\n", kind));
    let kv = |m: &Value| -> String {
        let pairs: Vec<String> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        if pairs.is_empty() {
            "<none>".into()
        } else {
            pairs.join("\n                   ")
        }
    };
    out.push_str(&format!(
        "Labels:            {}\n",
        kv(s(meta, &["labels"]))
    ));
    out.push_str(&format!(
        "Annotations:       {}\n",
        kv(s(meta, &["annotations"]))
    ));
    out.push_str(&format!(
        "CreationTimestamp: {}\n",
        meta.get("creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("<unknown>")
    ));
    out.push_str(&format!(
        "ResourceVersion:   {}\n",
        meta.get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    ));
    out.push_str(&format!(
        "UID:               {}\n",
        meta.get("uid").and_then(Value::as_str).unwrap_or("")
    ));
    for section in ["spec", "data", "stringData", "status"] {
        if let Some(v) = obj.get(section) {
            let text = if section == "data" && kind == Kind::Secret {
                // Secret values stay out of terminals and scrollback.
                let keys: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, val)| {
                        format!(
                            "  {k}: {} bytes (base64)",
                            val.as_str().map(str::len).unwrap_or(0)
                        )
                    })
                    .collect();
                keys.join("\n") + "\n"
            } else {
                let y = serde_saphyr::to_string(v).map_err(|e| anyhow!("yaml: {e}"))?;
                y.lines().map(|l| format!("  {l}\n")).collect()
            };
            let title = match section {
                "spec" => "Spec",
                "data" => "Data",
                "stringData" => "StringData",
                _ => "Status",
            };
            out.push_str(&format!("{title}:\n{text}"));
        }
    }
    if kind.namespaced() && kind != Kind::Event {
        let list = client
            .send(
                reqwest::Method::GET,
                &object_path(Kind::Event, &ns, None),
                None,
            )
            .await?;
        let mut rows = vec![vec![
            "Type".to_string(),
            "Reason".into(),
            "Age".into(),
            "From".into(),
            "Message".into(),
        ]];
        let mut about: Vec<&Value> = s(&list, &["items"])
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                s(e, &["involvedObject", "kind"]).as_str() == Some(kind.as_str())
                    && s(e, &["involvedObject", "name"]).as_str() == Some(name)
            })
            .collect();
        about.sort_by_key(|e| s(e, &["lastTimestamp"]).as_str().unwrap_or("").to_string());
        for e in about {
            let count = s(e, &["count"]).as_u64().unwrap_or(1);
            let age = since(e, &["lastTimestamp"]);
            rows.push(vec![
                s(e, &["type"]).as_str().unwrap_or("").to_string(),
                s(e, &["reason"]).as_str().unwrap_or("").to_string(),
                if count > 1 {
                    format!("{age} (x{count})")
                } else {
                    age
                },
                s(e, &["source", "host"]).as_str().unwrap_or("").to_string(),
                s(e, &["message"]).as_str().unwrap_or("").to_string(),
            ]);
        }
        if rows.len() == 1 {
            out.push_str("Events:            <none>\n");
        } else {
            out.push_str("Events:\n");
            for line in render_rows(&rows).lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out!("{out}");
    Ok(())
}

/// `/ip4/10.0.0.1/tcp/7946` as `10.0.0.1:7946`; other addresses as they are.
fn host_port(multiaddr: &str) -> String {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "dns" | "dns4", host, "tcp", port, ..] => format!("{host}:{port}"),
        ["", "ip6", host, "tcp", port, ..] => format!("[{host}]:{port}"),
        _ => multiaddr.to_string(),
    }
}

async fn members(client: &Client, output: Output) -> anyhow::Result<()> {
    let resp = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&resp)?),
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(&resp).map_err(|e| anyhow!("yaml: {e}"))?
        ),
        Output::Table => {
            let mut rows = vec![
                ["NAME", "ADDRESS", "STATE", "INCARNATION", "RAFT", "SINCE"]
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>(),
            ];
            for m in s(&resp, &["items"]).as_array().into_iter().flatten() {
                let meta = s(m, &["meta"]);
                let name = s(meta, &["name"]).as_str().unwrap_or("?");
                let name = if m["isSelf"] == true {
                    format!("{name} (this node)")
                } else {
                    name.to_string()
                };
                let since = m["since"].as_u64().unwrap_or(0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                rows.push(vec![
                    name,
                    meta["p2pAddrs"][0]
                        .as_str()
                        .map(host_port)
                        .unwrap_or_else(|| "?".into()),
                    m["state"].as_str().unwrap_or("?").to_string(),
                    m["incarnation"].as_u64().unwrap_or(0).to_string(),
                    s(meta, &["raftRole"]).as_str().unwrap_or("?").to_string(),
                    if since == 0 {
                        "-".into()
                    } else {
                        human_duration(now.saturating_sub(since))
                    },
                ]);
            }
            out!("{}", render_rows(&rows));
        }
    }
    Ok(())
}

async fn events(client: &Client, namespace: Option<String>, all: bool) -> anyhow::Result<()> {
    let path = if all {
        "/v1/events".to_string()
    } else {
        object_path(Kind::Event, namespace.as_deref().unwrap_or("default"), None)
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let mut items: Vec<Value> = s(&resp, &["items"]).as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No events found");
        return Ok(());
    }
    items.sort_by_key(|e| s(e, &["lastTimestamp"]).as_str().unwrap_or("").to_string());
    out!("{}", table(Kind::Event, &items, all));
    Ok(())
}

async fn delete_one(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: Option<String>,
) -> anyhow::Result<()> {
    let kind = kind_arg(kind)?;
    let ns = namespace.unwrap_or_else(|| "default".into());
    client
        .send(
            reqwest::Method::DELETE,
            &object_path(kind, &ns, Some(name)),
            None,
        )
        .await?;
    outln!("{}/{name} deleted", display_kind(kind.as_str()));
    Ok(())
}

async fn delete_file(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/delete", Some(body))
        .await?;
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        outln!("{}/{name} deleted", display_kind(kind));
    }
    let missing: Vec<String> = resp
        .get("notFound")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                display_kind(r.get("kind").and_then(Value::as_str).unwrap_or("")),
                r.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!("not found: {}", missing.join(", "));
    }
    Ok(())
}

async fn raft_status(client: &Client) -> anyhow::Result<()> {
    let v = client.send(reqwest::Method::GET, "/v1/raft", None).await?;
    let leader = v.get("leader").and_then(Value::as_u64);
    let name_of = |id: u64| -> String {
        for group in ["voters", "learners"] {
            for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
                if e.get(0).and_then(Value::as_u64) == Some(id) {
                    let n = e.get(1).cloned().unwrap_or(Value::Null);
                    return n
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                }
            }
        }
        "?".into()
    };
    outln!(
        "node:    {} ({})",
        s(&v, &["node", "name"]).as_str().unwrap_or(""),
        v.get("state").and_then(Value::as_str).unwrap_or("")
    );
    outln!(
        "term:    {}",
        v.get("term").and_then(Value::as_u64).unwrap_or(0)
    );
    match leader {
        Some(id) => outln!("leader:  {} ({id})", name_of(id)),
        None => outln!("leader:  <none>"),
    }
    let idx = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into())
    };
    outln!(
        "log:     last {}  applied {}  purged {}  snapshot {}",
        idx("last_log_index"),
        idx("last_applied"),
        idx("last_purged"),
        idx("snapshot_index")
    );
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ROLE".into(),
        "NODE ID".into(),
        "PEER ID".into(),
        "API".into(),
    ]];
    for (group, role) in [("voters", "voter"), ("learners", "learner")] {
        for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
            let id = e.get(0).and_then(Value::as_u64).unwrap_or(0);
            let n = e.get(1).cloned().unwrap_or(Value::Null);
            let role = if Some(id) == leader {
                "voter (leader)"
            } else {
                role
            };
            rows.push(vec![
                n.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                role.to_string(),
                id.to_string(),
                n.get("peer_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                n.get("api_addr")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ]);
        }
    }
    out!("{}", render_rows(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for secs in [0u64, 951_782_400, 1_798_761_599, 1_800_000_000] {
            assert_eq!(parse_rfc3339(&crate::api::rfc3339(secs)), Some(secs));
        }
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["NAME".to_string(), "AGE".into()],
            vec!["a-long-name".into(), "5s".into()],
        ];
        assert_eq!(render_rows(&rows), "NAME          AGE\na-long-name   5s\n");
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = Cli::try_parse_from(["shoal", "frobnicate"]).expect_err("unknown command");
        assert!(e.use_stderr());
    }
}
