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
    /// Print a new cluster key for `--cluster-key-file` (keep it 0600; every node needs it).
    Keygen,
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
    /// The cluster's nodes: readiness, Raft role, requested and allocatable resources.
    Nodes {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Raft group status.
    Raft {
        #[command(subcommand)]
        cmd: RaftCmd,
    },
    /// Set the replica count of a deployment.
    Scale {
        /// `deployment` (or `deployment/NAME`).
        kind: String,
        name: Option<String>,
        #[arg(long)]
        replicas: u32,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Follow, list, undo, pause or resume a deployment's rollouts.
    Rollout {
        #[command(subcommand)]
        cmd: RolloutCmd,
    },
    /// Mark a node unschedulable: new pods go elsewhere, running ones stay.
    Cordon { node: String },
    /// Make a cordoned node schedulable again.
    Uncordon { node: String },
    /// Cordon a node and move its pods elsewhere, keeping deployments available.
    Drain {
        node: String,
        /// Give up after this many seconds (`300`, `90s`, `5m`).
        #[arg(long, value_parser = parse_secs, default_value = "300")]
        timeout: u64,
        /// Also delete pods no controller will recreate.
        #[arg(long)]
        force: bool,
    },
}

/// `shoal rollout` subcommands; each names a deployment as `deployment NAME`
/// or `deployment/NAME`.
#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Wait until the deployment's rollout finishes, showing its progress.
    Status {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Give up after this many seconds (`0`: wait as long as it takes).
        #[arg(long, value_parser = parse_secs, default_value = "0")]
        timeout: u64,
    },
    /// The deployment's revisions and their change causes.
    History {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Go back to the previous revision's pod template, or to --to-revision.
    Undo {
        kind: String,
        name: Option<String>,
        #[arg(long)]
        to_revision: Option<u64>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Stop rolling out template changes until resumed.
    Pause {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Roll out template changes again.
    Resume {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
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
    /// One-node cluster. Alone it also sets data in ./shoal-data and p2p on
    /// 127.0.0.1:7946; with --config the file's data_dir and addresses are
    /// kept. Flags always win over the file.
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
    /// DNS listen address for `*.svc.shoal` (default 127.0.0.1:7953).
    #[arg(long)]
    pub dns_addr: Option<String>,
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
        if let Some(v) = &self.dns_addr {
            cfg.discovery.dns_addr = v.clone();
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
            if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// A command line clap accepts but that does not make sense (a missing
/// NAME); it exits 2 like clap's own usage errors.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Seconds as `90`, `90s`, `5m` or `1h`.
fn parse_secs(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a number of seconds (like 90, 90s, 5m)"))
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
        Cmd::Keygen => {
            let key = crate::net::generate_cluster_key();
            print!("{}", crate::net::cluster_key_text(&key));
            Ok(())
        }
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
        Cmd::Nodes { output } => match output {
            Output::Table => nodes(&client).await,
            _ => get(&client, "nodes", None, None, true, output).await,
        },
        Cmd::Scale {
            kind,
            name,
            replicas,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "scale")?;
            scale(&client, &ns_or_default(namespace), &name, replicas).await
        }
        Cmd::Rollout { cmd } => rollout(&client, cmd).await,
        Cmd::Cordon { node } => cordon(&client, &node, true).await,
        Cmd::Uncordon { node } => cordon(&client, &node, false).await,
        Cmd::Drain {
            node,
            timeout,
            force,
        } => drain(&client, &node, timeout, force).await,
    }
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,libp2p=warn,openraft=warn,hickory_server=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = args.to_config()?;
    // Everything the daemon creates (rocksdb's files, keys, the process
    // runtime's specs with Secret values) is for its owner only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let node = crate::node::Node::start(cfg).await?;
    tracing::info!(name = %node.info.name, api = %node.api_addr, "shoal agent running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut conflict = node.dns_conflict();
    let refused = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        msg = async {
            match conflict.as_mut() {
                // A closed channel means no claim is pending: nothing to wait for.
                Some(rx) => match rx.wait_for(Option::is_some).await {
                    Ok(m) => m.clone(),
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        } => msg,
    };
    if let Some(msg) = refused {
        node.shutdown().await;
        bail!("{msg}");
    }
    tracing::info!("leaving the cluster");
    node.leave().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// An error answer of the API, typed so callers can react to its status
/// (409: reread and retry; 404: gone).
#[derive(Debug)]
struct HttpError {
    status: u16,
    message: String,
    /// Whether a handler answered (with its JSON error), rather than the
    /// router finding no route for the path.
    routed: bool,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

impl std::error::Error for HttpError {}

/// The HTTP status of an API error answer, `None` for other failures.
fn http_status(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<HttpError>().map(|h| h.status)
}

/// Whether the server has no route for the path at all.
fn no_route(e: &anyhow::Error) -> bool {
    e.downcast_ref::<HttpError>()
        .is_some_and(|h| h.status == 404 && !h.routed)
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
        let resp = self.call(method.clone(), path, body).await?;
        let status = resp.status();
        let text = resp.text().await.context("reading the API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let api_error = value.get("error").and_then(Value::as_str);
            let routed = api_error.is_some();
            let mut message = api_error
                .map(str::to_string)
                .unwrap_or_else(|| text.trim().to_string());
            if message.is_empty() {
                // A route the server does not have answers with an empty body.
                message = format!(
                    "{method} {path}: {}",
                    status.canonical_reason().unwrap_or("failed")
                );
            }
            return Err(HttpError {
                status: status.as_u16(),
                message,
                routed,
            }
            .into());
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
        Some(Kind::ReplicaSet) => "replicaset.apps".into(),
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
    let ns = namespace.unwrap_or_else(|| "default".into());
    // Endpoints are derived per node, not stored: their own paths and table.
    let stored = if matches!(kind, "endpoints" | "ep") {
        None
    } else {
        Some(kind_arg(kind)?)
    };
    let path = match (stored, name) {
        (Some(k), None) if all => format!("/v1/{}", k.plural()),
        (Some(k), _) => object_path(k, &ns, name),
        (None, Some(n)) => format!("/v1/namespaces/{ns}/endpoints/{n}"),
        (None, None) if all => "/v1/endpoints".to_string(),
        (None, None) => format!("/v1/namespaces/{ns}/endpoints"),
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
                if all || stored.is_some_and(|k| !k.namespaced()) {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            out!(
                "{}",
                match stored {
                    Some(k) => table(k, &items, all),
                    None => endpoints_table(&items, all),
                }
            );
        }
    }
    Ok(())
}

/// `get endpoints` as a table: each Service's ready endpoints as the
/// answering node reaches them.
fn endpoints_table(items: &[Value], all: bool) -> String {
    let mut rows = vec![Vec::new()];
    if all {
        rows[0].push("NAMESPACE".to_string());
    }
    rows[0].extend(["NAME", "ENDPOINTS"].map(String::from));
    for it in items {
        let mut row = name_cells(it, all);
        let eps: Vec<String> = s(it, &["ports"])
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p.get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .map(|e| {
                format!(
                    "{}:{}",
                    e.get("ip").and_then(Value::as_str).unwrap_or("?"),
                    e.get("port").and_then(Value::as_u64).unwrap_or(0)
                )
            })
            .collect();
        row.push(if eps.is_empty() {
            "<none>".into()
        } else {
            eps.join(",")
        });
        rows.push(row);
    }
    render_rows(&rows)
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
    let Some(then) = crate::resource::time::parse_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    human_duration(now.saturating_sub(then))
}

fn human_duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A table row's first cells: the namespace (when shown) and the name.
fn name_cells(it: &Value, with_ns: bool) -> Vec<String> {
    let cell = |path: &[&str]| s(it, path).as_str().unwrap_or("").to_string();
    let mut row = Vec::new();
    if with_ns {
        row.push(cell(&["metadata", "namespace"]));
    }
    row.push(cell(&["metadata", "name"]));
    row
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
        Kind::Service => &["TYPE", "CLUSTER-IP", "PORT(S)", "SELECTOR", "AGE"],
        Kind::ConfigMap => &["DATA", "AGE"],
        Kind::Secret => &["TYPE", "DATA", "AGE"],
        Kind::Job => &["COMPLETIONS", "AGE"],
        Kind::Namespace => &["STATUS", "AGE"],
        Kind::Node => &["RUNTIME", "CPU", "MEMORY", "PODS", "VERSION", "AGE"],
        Kind::Event => &["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"],
        Kind::ReplicaSet => &["DESIRED", "CURRENT", "READY", "AGE"],
    };
    header.extend_from_slice(extra);
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for it in items {
        let mut row = name_cells(it, with_ns && kind.namespaced());
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
                row.push(
                    s(it, &["spec", "clusterIP"])
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string(),
                );
                let ports: Vec<String> = s(it, &["spec", "ports"])
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let node_port = p
                            .get("nodePort")
                            .and_then(Value::as_u64)
                            .map(|n| format!(":{n}"))
                            .unwrap_or_default();
                        format!(
                            "{}{node_port}/{}",
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
            Kind::ReplicaSet => {
                row.push(n(s(it, &["spec", "replicas"])).to_string());
                row.push(n(s(it, &["status", "replicas"])).to_string());
                row.push(n(s(it, &["status", "readyReplicas"])).to_string());
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
                    // A down member's last published role is stale, not a fact.
                    if matches!(m["state"].as_str(), Some("down" | "left")) {
                        "-".to_string()
                    } else {
                        s(meta, &["raftRole"]).as_str().unwrap_or("?").to_string()
                    },
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
    outln!(
        "cluster: {}",
        v.get("cluster_id")
            .and_then(Value::as_str)
            .unwrap_or("<not yet known>")
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

// ---------------------------------------------------------------- deployments

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Read-modify-write attempts before a busy object's conflicts are reported.
const WRITE_ATTEMPTS: usize = 5;
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

fn ns_or_default(namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| "default".into())
}

/// The deployment named as `deployment NAME` or `deployment/NAME` (any
/// spelling of the kind `get` accepts).
fn deployment_name(kind: &str, name: Option<&str>, verb: &str) -> anyhow::Result<String> {
    let (kind, name) = match (kind.split_once('/'), name) {
        (Some((k, n)), None) => (k, n),
        (Some(_), Some(_)) => {
            return Err(UsageError(format!(
                "there is no need to specify a name after {kind}: use KIND/NAME or KIND NAME"
            ))
            .into());
        }
        (None, Some(n)) => (kind, n),
        (None, None) => {
            return Err(UsageError(format!(
                "a deployment name is required: shoal {verb} deployment NAME"
            ))
            .into());
        }
    };
    match Kind::from_user(kind) {
        Some(Kind::Deployment) if !name.is_empty() => Ok(name.to_string()),
        Some(Kind::Deployment) => Err(UsageError(format!(
            "a deployment name is required: shoal {verb} deployment NAME"
        ))
        .into()),
        Some(k) => bail!("shoal {verb} works on deployments, not {}", k.plural()),
        None => bail!("unknown kind {kind:?}; shoal {verb} works on deployments"),
    }
}

/// Reads an object, lets `change` edit it and writes it back as a
/// compare-and-set on the resourceVersion read, rereading on conflict.
/// `change` returns whether it changed anything; nothing is written when it
/// did not. Returns whether it was written.
async fn read_modify_write<F>(client: &Client, path: &str, mut change: F) -> anyhow::Result<bool>
where
    F: FnMut(&mut Value) -> anyhow::Result<bool>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut obj = client.send(reqwest::Method::GET, path, None).await?;
        if !change(&mut obj)? {
            return Ok(false);
        }
        // Without status the store keeps the stored one, so a controller's
        // status write cannot be undone by this client's stale copy.
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        let body = serde_json::to_vec(&obj)?;
        match client.send(reqwest::Method::PUT, path, Some(body)).await {
            Ok(_) => return Ok(true),
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets `spec.<field>`; whether that changed it.
fn set_spec_field(obj: &mut Value, field: &str, value: Value) -> anyhow::Result<bool> {
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the stored object has no spec"))?;
    if spec.get(field) == Some(&value) {
        return Ok(false);
    }
    spec.insert(field.to_string(), value);
    Ok(true)
}

async fn scale(client: &Client, ns: &str, name: &str, replicas: u32) -> anyhow::Result<()> {
    let path = object_path(Kind::Deployment, ns, Some(name));
    read_modify_write(client, &path, |d| {
        set_spec_field(d, "replicas", json!(replicas))
    })
    .await?;
    outln!("deployment.apps/{name} scaled");
    Ok(())
}

async fn rollout(client: &Client, cmd: RolloutCmd) -> anyhow::Result<()> {
    match cmd {
        RolloutCmd::Status {
            kind,
            name,
            namespace,
            timeout,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout status")?;
            rollout_status(client, &ns_or_default(namespace), &name, timeout).await
        }
        RolloutCmd::History {
            kind,
            name,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout history")?;
            rollout_history(client, &ns_or_default(namespace), &name).await
        }
        RolloutCmd::Undo {
            kind,
            name,
            to_revision,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout undo")?;
            rollout_undo(client, &ns_or_default(namespace), &name, to_revision).await
        }
        RolloutCmd::Pause {
            kind,
            name,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout pause")?;
            set_paused(client, &ns_or_default(namespace), &name, true).await
        }
        RolloutCmd::Resume {
            kind,
            name,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout resume")?;
            set_paused(client, &ns_or_default(namespace), &name, false).await
        }
    }
}

async fn set_paused(client: &Client, ns: &str, name: &str, pause: bool) -> anyhow::Result<()> {
    let path = object_path(Kind::Deployment, ns, Some(name));
    let written = read_modify_write(client, &path, |d| {
        let paused = s(d, &["spec", "paused"]).as_bool() == Some(true);
        if paused == pause {
            return Ok(false);
        }
        let spec = d
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("the stored deployment has no spec"))?;
        if pause {
            spec.insert("paused".into(), Value::Bool(true));
        } else {
            spec.remove("paused");
        }
        Ok(true)
    })
    .await?;
    // kubectl treats a no-op pause or resume as a mistake worth an error.
    match (written, pause) {
        (true, true) => outln!("deployment.apps/{name} paused"),
        (true, false) => outln!("deployment.apps/{name} resumed"),
        (false, true) => bail!("deployments.apps {name:?} is already paused"),
        (false, false) => bail!("deployments.apps {name:?} is not paused"),
    }
    Ok(())
}

/// Where a rollout stands, as `kubectl rollout status` reports it.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Waiting(String),
    Done,
    DeadlineExceeded,
}

fn rollout_progress(d: &Value) -> Progress {
    let name = s(d, &["metadata", "name"]).as_str().unwrap_or("");
    let generation = s(d, &["metadata", "generation"]).as_u64().unwrap_or(1);
    let st = s(d, &["status"]);
    let observed = s(st, &["observedGeneration"]).as_u64().unwrap_or(0);
    if observed < generation {
        return Progress::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let failed = s(st, &["conditions"])
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Progressing")
                && c.get("status").and_then(Value::as_str) == Some("False")
                && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
        });
    if failed {
        return Progress::DeadlineExceeded;
    }
    let want = s(d, &["spec", "replicas"]).as_u64().unwrap_or(1);
    let n = |f: &str| s(st, &[f]).as_u64().unwrap_or(0);
    let (replicas, updated, available) =
        (n("replicas"), n("updatedReplicas"), n("availableReplicas"));
    let waiting = |what: String| {
        Progress::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {what}..."
        ))
    };
    if updated < want {
        waiting(format!(
            "{updated} out of {want} new replicas have been updated"
        ))
    } else if replicas > updated {
        waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ))
    } else if available < updated {
        waiting(format!(
            "{available} of {updated} updated replicas are available"
        ))
    } else if updated > want {
        // Scaling down: the extra pods are on their way out.
        waiting(format!(
            "{} old replicas are pending termination",
            updated - want
        ))
    } else {
        Progress::Done
    }
}

async fn rollout_status(client: &Client, ns: &str, name: &str, timeout: u64) -> anyhow::Result<()> {
    let path = object_path(Kind::Deployment, ns, Some(name));
    let live = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_secs(timeout));
    let mut last = String::new();
    // Ends the live line so whatever is printed next starts on its own.
    let finish_line = |last: &str| {
        if live && !last.is_empty() {
            out!("\n");
        }
    };
    let mut first = true;
    loop {
        match client.send(reqwest::Method::GET, &path, None).await {
            Ok(d) => match rollout_progress(&d) {
                Progress::Done => {
                    finish_line(&last);
                    outln!("deployment {name:?} successfully rolled out");
                    return Ok(());
                }
                Progress::DeadlineExceeded => {
                    finish_line(&last);
                    bail!("deployment {name:?} exceeded its progress deadline");
                }
                Progress::Waiting(msg) => {
                    if msg != last {
                        if live {
                            out!("\r\x1b[2K{msg}");
                        } else {
                            outln!("{msg}");
                        }
                        last = msg;
                    }
                }
            },
            // A missing deployment or a refused request will not fix itself;
            // an election or a restarting node will.
            Err(e) if first || http_status(&e).is_some_and(|c| (400..500).contains(&c)) => {
                finish_line(&last);
                return Err(e);
            }
            Err(_) => {}
        }
        first = false;
        if let Some(dl) = deadline
            && tokio::time::Instant::now() + POLL > dl
        {
            finish_line(&last);
            bail!("timed out after {timeout}s waiting for deployment {name:?} to roll out");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The revision recorded in an object's annotation.
fn revision_of(o: &Value) -> Option<u64> {
    s(o, &["metadata", "annotations", REVISION_ANNOTATION])
        .as_str()
        .and_then(|r| r.parse().ok())
}

/// The ReplicaSets of a deployment with a revision, oldest first.
async fn deployment_history(
    client: &Client,
    ns: &str,
    deployment: &Value,
) -> anyhow::Result<Vec<(u64, Value)>> {
    let uid = s(deployment, &["metadata", "uid"])
        .as_str()
        .ok_or_else(|| anyhow!("the stored deployment has no uid"))?;
    let list = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::ReplicaSet, ns, None),
            None,
        )
        .await?;
    let mut sets: Vec<(u64, Value)> = s(&list, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            s(rs, &["metadata", "ownerReferences"])
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
        })
        .filter_map(|rs| Some((revision_of(rs)?, rs.clone())))
        .collect();
    sets.sort_by_key(|(r, _)| *r);
    Ok(sets)
}

async fn rollout_history(client: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let d = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Deployment, ns, Some(name)),
            None,
        )
        .await?;
    let sets = deployment_history(client, ns, &d).await?;
    if sets.is_empty() {
        outln!("No rollout history found.");
        return Ok(());
    }
    let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".into()]];
    for (rev, rs) in &sets {
        rows.push(vec![
            rev.to_string(),
            s(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION])
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
        ]);
    }
    outln!("deployment.apps/{name}");
    out!("{}", render_rows(&rows));
    Ok(())
}

/// The revision `rollout undo` goes back to: `to` when given, else the
/// newest one older than `current` (the deployment's own revision, or the
/// newest when it has none).
fn rollback_target<'a>(
    history: &'a [(u64, Value)],
    current: Option<u64>,
    to: Option<u64>,
    name: &str,
) -> anyhow::Result<&'a (u64, Value)> {
    match to.filter(|r| *r > 0) {
        Some(r) => history
            .iter()
            .find(|(rev, _)| *rev == r)
            .ok_or_else(|| anyhow!("unable to find specified revision {r} in history")),
        None => {
            let newest = history
                .iter()
                .map(|(r, _)| *r)
                .max()
                .ok_or_else(|| anyhow!("no rollout history found for deployment {name:?}"))?;
            let current = current.unwrap_or(newest);
            history
                .iter()
                .filter(|(r, _)| *r < current)
                .max_by_key(|(r, _)| *r)
                .ok_or_else(|| {
                    anyhow!("deployment {name:?} has no previous revision to roll back to")
                })
        }
    }
}

/// A ReplicaSet's pod template as its deployment would hold it: without the
/// label the controller adds.
fn template_without_hash(rs: &Value) -> anyhow::Result<Value> {
    let mut t = s(rs, &["spec", "template"]).clone();
    if !t.is_object() {
        bail!("ReplicaSet has no pod template");
    }
    if let Some(labels) = t
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    Ok(t)
}

async fn rollout_undo(
    client: &Client,
    ns: &str,
    name: &str,
    to: Option<u64>,
) -> anyhow::Result<()> {
    let path = object_path(Kind::Deployment, ns, Some(name));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut d = client.send(reqwest::Method::GET, &path, None).await?;
        if s(&d, &["spec", "paused"]).as_bool() == Some(true) {
            bail!(
                "you cannot roll back a paused deployment; resume it first with 'shoal rollout resume deployment/{name}' and try again"
            );
        }
        let history = deployment_history(client, ns, &d).await?;
        let (rev, rs) = rollback_target(&history, revision_of(&d), to, name)?;
        let template = template_without_hash(rs)?;
        if s(&d, &["spec", "template"]) == &template {
            outln!(
                "deployment.apps/{name} skipped rollback (current template already matches revision {rev})"
            );
            return Ok(());
        }
        set_spec_field(&mut d, "template", template)?;
        // The revived revision keeps its own change cause, as with kubectl.
        let cause = s(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION]).clone();
        let meta = d
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("the stored deployment has no metadata"))?;
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored deployment's annotations are not a map"))?;
        match cause {
            Value::String(c) => {
                annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), Value::String(c));
            }
            _ => {
                annotations.remove(CHANGE_CAUSE_ANNOTATION);
            }
        }
        if let Some(m) = d.as_object_mut() {
            m.remove("status");
        }
        let body = serde_json::to_vec(&d)?;
        match client.send(reqwest::Method::PUT, &path, Some(body)).await {
            Ok(_) => {
                outln!("deployment.apps/{name} rolled back");
                return Ok(());
            }
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------- nodes

/// A Node object by name, and the URL that reads and writes it.
async fn get_node(client: &Client, name: &str) -> anyhow::Result<(String, Value)> {
    let path = object_path(Kind::Node, "", Some(name));
    let err = match client.send(reqwest::Method::GET, &path, None).await {
        Ok(n) => return Ok((path, n)),
        Err(e) => e,
    };
    if !no_route(&err) {
        if http_status(&err) == Some(404) {
            bail!("node {name:?} not found");
        }
        return Err(err);
    }
    // A server without `/v1/{plural}/{name}` still serves cluster-scoped
    // objects under any namespace's URL (their key ignores the namespace).
    let path = format!("/v1/namespaces/default/nodes/{name}");
    match client.send(reqwest::Method::GET, &path, None).await {
        Ok(n) => Ok((path, n)),
        Err(e) if http_status(&e) == Some(404) => bail!("node {name:?} not found"),
        Err(e) => Err(e),
    }
}

/// Sets or clears a node's `spec.unschedulable`; whether that changed it.
async fn set_unschedulable(client: &Client, name: &str, on: bool) -> anyhow::Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (path, mut node) = get_node(client, name).await?;
        let cordoned = s(&node, &["spec", "unschedulable"]).as_bool() == Some(true);
        if cordoned == on {
            return Ok(false);
        }
        let obj = node
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node is not an object"))?;
        obj.remove("status");
        let spec = obj
            .entry("spec")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node's spec is not a map"))?;
        if on {
            spec.insert("unschedulable".into(), Value::Bool(true));
        } else {
            spec.remove("unschedulable");
        }
        let body = serde_json::to_vec(&node)?;
        match client.send(reqwest::Method::PUT, &path, Some(body)).await {
            Ok(_) => return Ok(true),
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("updating node/{name}")),
        }
    }
}

async fn cordon(client: &Client, name: &str, on: bool) -> anyhow::Result<()> {
    let changed = set_unschedulable(client, name, on).await?;
    let word = if on { "cordoned" } else { "uncordoned" };
    if changed {
        outln!("node/{name} {word}");
    } else {
        outln!("node/{name} already {word}");
    }
    Ok(())
}

fn is_terminal_pod(p: &Value) -> bool {
    matches!(
        s(p, &["status", "phase"]).as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn is_ready_pod(p: &Value) -> bool {
    s(p, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// The ownerReference marked `controller: true`, if any.
fn controller_ref(o: &Value) -> Option<&Value> {
    s(o, &["metadata", "ownerReferences"])
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

fn pod_id(p: &Value) -> String {
    format!(
        "{}/{}",
        s(p, &["metadata", "namespace"])
            .as_str()
            .unwrap_or("default"),
        s(p, &["metadata", "name"]).as_str().unwrap_or("")
    )
}

/// The most pods of a deployment that may be unavailable at once, as its
/// strategy says (and as the deployment controller resolves it).
fn max_unavailable(d: &Value) -> i64 {
    use crate::resource::types::IntOrString;
    let replicas = s(d, &["spec", "replicas"]).as_u64().unwrap_or(1);
    let replicas = u32::try_from(replicas).unwrap_or(u32::MAX);
    let strategy = s(d, &["spec", "strategy"]);
    if s(strategy, &["type"]).as_str() == Some("Recreate") {
        return i64::from(replicas);
    }
    let field = |f: &str, round_up: bool| {
        let v = s(strategy, &["rollingUpdate", f]);
        let v = if v.is_null() { json!("25%") } else { v.clone() };
        serde_json::from_value::<IntOrString>(v)
            .ok()
            .and_then(|v| v.scaled_value(replicas, round_up))
    };
    let surge = field("maxSurge", true).unwrap_or(1);
    let unavailable = field("maxUnavailable", false).unwrap_or(0);
    // Both zero would stall every rollout; Kubernetes then allows one.
    if surge == 0 && unavailable == 0 {
        1
    } else {
        i64::from(unavailable)
    }
}

/// Deletes a pod bound to `node` unless it was replaced in the meantime
/// (the same name reused for a pod elsewhere); gone already is fine.
async fn delete_pod(client: &Client, node: &str, pod: &Value) -> anyhow::Result<()> {
    let ns = s(pod, &["metadata", "namespace"])
        .as_str()
        .unwrap_or("default");
    let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
    let path = object_path(Kind::Pod, ns, Some(name));
    let mut rv = s(pod, &["metadata", "resourceVersion"])
        .as_str()
        .unwrap_or("")
        .to_string();
    for attempt in 1..=WRITE_ATTEMPTS {
        let q = if rv.is_empty() {
            String::new()
        } else {
            format!("?resourceVersion={rv}")
        };
        match client
            .send(reqwest::Method::DELETE, &format!("{path}{q}"), None)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if http_status(&e) == Some(404) => return Ok(()),
            // The agent updated its status meanwhile: check it is the same pod.
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                let Some(cur) = pod_still_on(client, node, pod).await? else {
                    return Ok(());
                };
                rv = s(&cur, &["metadata", "resourceVersion"])
                    .as_str()
                    .unwrap_or("")
                    .to_string();
            }
            Err(e) => return Err(e).with_context(|| format!("deleting pod {ns}/{name}")),
        }
    }
    bail!("pod {ns}/{name} keeps changing; could not delete it")
}

/// How many of a deployment's pods are available. The lower of its status
/// (which lags behind an eviction until the controller notices) and a count
/// of its ready pods (which ignores minReadySeconds), so neither lag lets
/// an eviction go below what the strategy allows.
async fn available_now(client: &Client, ns: &str, d: &Value) -> anyhow::Result<i64> {
    let from_status = s(d, &["status", "availableReplicas"]).as_i64().unwrap_or(0);
    let uid = s(d, &["metadata", "uid"]).as_str().unwrap_or("");
    let sets = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::ReplicaSet, ns, None),
            None,
        )
        .await?;
    let set_uids: std::collections::HashSet<&str> = s(&sets, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            controller_ref(rs)
                .and_then(|r| r.get("uid"))
                .and_then(Value::as_str)
                == Some(uid)
        })
        .filter_map(|rs| s(rs, &["metadata", "uid"]).as_str())
        .collect();
    let pods = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Pod, ns, None),
            None,
        )
        .await?;
    let ready = s(&pods, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            controller_ref(p)
                .and_then(|r| r.get("uid"))
                .and_then(Value::as_str)
                .is_some_and(|u| set_uids.contains(u))
        })
        .filter(|p| !is_terminal_pod(p) && is_ready_pod(p))
        .count();
    Ok(from_status.min(i64::try_from(ready).unwrap_or(i64::MAX)))
}

/// Evicts one deployment's pods from the node, one at a time, each only
/// while the deployment stays within its maxUnavailable and after the
/// previous one's replacement is available. Returns the pods it did not
/// get to before the deadline.
async fn evict_deployment_pods(
    client: &Client,
    node: &str,
    ns: &str,
    deployment: &str,
    pods: &[Value],
    deadline: tokio::time::Instant,
) -> anyhow::Result<Vec<String>> {
    let dpath = object_path(Kind::Deployment, ns, Some(deployment));
    for (i, pod) in pods.iter().enumerate() {
        let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
        outln!("evicting pod {}", pod_id(pod));
        let mut told = false;
        let before = loop {
            // Reread: the pod may have turned ready, or gone, while we waited.
            let Some(pod) = pod_still_on(client, node, pod).await? else {
                break None;
            };
            let d = match client.send(reqwest::Method::GET, &dpath, None).await {
                Ok(d) => d,
                // Nobody will replace the pod, so there is nothing to keep available.
                Err(e) if http_status(&e) == Some(404) => {
                    delete_pod(client, node, &pod).await?;
                    break None;
                }
                Err(e) => return Err(e),
            };
            let available = available_now(client, ns, &d).await?;
            let want = s(&d, &["spec", "replicas"]).as_i64().unwrap_or(1);
            // A maxUnavailable that rounds down to 0 (25% of fewer than 4
            // replicas) would block a drain forever: nothing adds a pod
            // before one leaves. Allow one, as kubectl's drain does without
            // a disruption budget.
            let floor = want - max_unavailable(&d).max(1);
            // A pod that is not ready takes nothing away by leaving.
            if !is_ready_pod(&pod) || available > floor {
                delete_pod(client, node, &pod).await?;
                // A scale-down meanwhile must not leave us waiting for pods
                // that will never come.
                break Some(available.min(want));
            }
            // Said once: a drain that waits silently looks hung.
            if !told {
                eprintln!(
                    "waiting to evict pod {}: deployment {deployment:?} has {available} available replicas and must keep {floor} (replicas {want} minus maxUnavailable {})",
                    pod_id(&pod),
                    want - floor
                );
                told = true;
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok(pods[i..].iter().map(pod_id).collect());
            }
            tokio::time::sleep(POLL).await;
        };
        outln!("pod/{name} evicted");
        let (Some(before), true) = (before, i + 1 < pods.len()) else {
            continue;
        };
        loop {
            let d = match client.send(reqwest::Method::GET, &dpath, None).await {
                Ok(d) => d,
                Err(e) if http_status(&e) == Some(404) => break,
                Err(e) => return Err(e),
            };
            let want = s(&d, &["spec", "replicas"]).as_i64().unwrap_or(1);
            if available_now(client, ns, &d).await? >= before.min(want) {
                break;
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok(pods[i + 1..].iter().map(pod_id).collect());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(Vec::new())
}

/// The pod as stored now, if it is still the same pod on this node (a
/// replacement may reuse its name elsewhere).
async fn pod_still_on(client: &Client, node: &str, pod: &Value) -> anyhow::Result<Option<Value>> {
    let ns = s(pod, &["metadata", "namespace"])
        .as_str()
        .unwrap_or("default");
    let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
    let cur = match client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Pod, ns, Some(name)),
            None,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if http_status(&e) == Some(404) => return Ok(None),
        Err(e) => return Err(e),
    };
    let same = s(&cur, &["metadata", "uid"]) == s(pod, &["metadata", "uid"])
        && s(&cur, &["spec", "nodeName"]).as_str() == Some(node);
    Ok(same.then_some(cur))
}

async fn drain(client: &Client, node: &str, timeout: u64, force: bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    cordon(client, node, true).await?;
    let list = client.send(reqwest::Method::GET, "/v1/pods", None).await?;
    let mine: Vec<Value> = s(&list, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| s(p, &["spec", "nodeName"]).as_str() == Some(node))
        .cloned()
        .collect();

    let mut plain: Vec<Value> = Vec::new();
    let mut unmanaged: Vec<Value> = Vec::new();
    let mut by_deployment: std::collections::BTreeMap<(String, String), Vec<Value>> =
        std::collections::BTreeMap::new();
    for p in mine {
        if is_terminal_pod(&p) {
            plain.push(p);
            continue;
        }
        let Some(owner) = controller_ref(&p) else {
            unmanaged.push(p);
            continue;
        };
        let ns = s(&p, &["metadata", "namespace"])
            .as_str()
            .unwrap_or("default")
            .to_string();
        let mut deployment = None;
        if owner.get("kind").and_then(Value::as_str) == Some("ReplicaSet") {
            let rs_name = owner.get("name").and_then(Value::as_str).unwrap_or("");
            match client
                .send(
                    reqwest::Method::GET,
                    &object_path(Kind::ReplicaSet, &ns, Some(rs_name)),
                    None,
                )
                .await
            {
                Ok(rs) => {
                    deployment = controller_ref(&rs)
                        .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Deployment"))
                        .and_then(|r| r.get("name").and_then(Value::as_str))
                        .map(str::to_string);
                }
                Err(e) if http_status(&e) == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        match deployment {
            Some(d) => by_deployment.entry((ns, d)).or_default().push(p),
            None => plain.push(p),
        }
    }

    if !unmanaged.is_empty() {
        let ids: Vec<String> = unmanaged.iter().map(pod_id).collect();
        if !force {
            bail!(
                "cannot delete Pods not managed by a controller (use --force to override): {}",
                ids.join(", ")
            );
        }
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            ids.join(", ")
        );
        plain.extend(unmanaged);
    }

    for p in &plain {
        outln!("evicting pod {}", pod_id(p));
        delete_pod(client, node, p).await?;
        outln!(
            "pod/{} evicted",
            s(p, &["metadata", "name"]).as_str().unwrap_or("")
        );
    }

    // Deployments are independent of each other: evict from all at once.
    let results = futures::future::join_all(
        by_deployment
            .iter()
            .map(|((ns, d), pods)| evict_deployment_pods(client, node, ns, d, pods, deadline)),
    )
    .await;
    let mut left = Vec::new();
    for r in results {
        left.extend(r?);
    }
    if !left.is_empty() {
        bail!(
            "timed out after {timeout}s draining node/{node}; pods left: {}",
            left.join(", ")
        );
    }
    outln!("node/{node} drained");
    Ok(())
}

/// Memory as kubectl-style human units: `512Mi`, `23.3Gi`.
fn human_memory(bytes: u64) -> String {
    const MI: f64 = 1024.0 * 1024.0;
    const GI: f64 = MI * 1024.0;
    let b = bytes as f64;
    if b >= GI {
        let g = format!("{:.1}", b / GI);
        format!("{}Gi", g.strip_suffix(".0").unwrap_or(&g))
    } else {
        format!("{}Mi", (b / MI).round() as u64)
    }
}

/// CPU millicores and memory bytes a pod asks for: container requests,
/// falling back to limits, as the scheduler counts them.
fn pod_requests(p: &Value) -> (u64, u64) {
    use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};
    let mut cpu = 0;
    let mut mem = 0;
    for c in s(p, &["spec", "containers"])
        .as_array()
        .into_iter()
        .flatten()
    {
        let q = |res: &str| {
            s(c, &["resources", "requests", res])
                .as_str()
                .or_else(|| s(c, &["resources", "limits", res]).as_str())
        };
        cpu += q("cpu").and_then(|v| parse_cpu_millis(v).ok()).unwrap_or(0);
        mem += q("memory")
            .and_then(|v| parse_memory_bytes(v).ok())
            .unwrap_or(0);
    }
    (cpu, mem)
}

/// The STATUS column: gossip's view of the node, and whether it is cordoned.
fn node_status(node: &Value, member: Option<&Value>) -> String {
    let state = match member.and_then(|m| m.get("state")).and_then(Value::as_str) {
        Some("alive") => "Ready",
        Some("suspect") => "Suspect",
        _ => "NotReady",
    };
    if s(node, &["spec", "unschedulable"]).as_bool() == Some(true) {
        format!("{state},SchedulingDisabled")
    } else {
        state.to_string()
    }
}

/// The member gossip knows by this name; a host that came back under a
/// new identity is listed twice, and the liveliest entry is the one to show.
fn member_named<'a>(members: &'a [Value], name: &str) -> Option<&'a Value> {
    let rank = |m: &Value| match m.get("state").and_then(Value::as_str) {
        Some("alive") => 0,
        Some("suspect") => 1,
        _ => 2,
    };
    members
        .iter()
        .filter(|m| s(m, &["meta", "name"]).as_str() == Some(name))
        .min_by_key(|m| rank(m))
}

async fn nodes(client: &Client) -> anyhow::Result<()> {
    let list = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Node, "", None),
            None,
        )
        .await?;
    let items: Vec<Value> = s(&list, &["items"]).as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    // Without gossip every node would read NotReady; say Unknown instead.
    let members: Option<Vec<Value>> = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await
        .ok()
        .map(|m| s(&m, &["items"]).as_array().cloned().unwrap_or_default());
    let pods = client.send(reqwest::Method::GET, "/v1/pods", None).await?;
    let mut used: std::collections::HashMap<&str, (u64, u64, u64)> =
        std::collections::HashMap::new();
    for p in s(&pods, &["items"]).as_array().into_iter().flatten() {
        let Some(n) = s(p, &["spec", "nodeName"]).as_str() else {
            continue;
        };
        if is_terminal_pod(p) {
            continue;
        }
        let (cpu, mem) = pod_requests(p);
        let e = used.entry(n).or_default();
        e.0 += cpu;
        e.1 += mem;
        e.2 += 1;
    }
    let mut rows = vec![
        [
            "NAME", "STATUS", "ROLES", "CPU", "MEMORY", "PODS", "RUNTIME", "AGE",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>(),
    ];
    for n in &items {
        use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};
        let name = s(n, &["metadata", "name"]).as_str().unwrap_or("");
        let member = members.as_deref().and_then(|m| member_named(m, name));
        let status = match &members {
            Some(_) => node_status(n, member),
            None => node_status(n, None).replacen("NotReady", "Unknown", 1),
        };
        let role = member
            .and_then(|m| s(m, &["meta", "raftRole"]).as_str())
            .filter(|r| matches!(*r, "leader" | "voter" | "learner"))
            .unwrap_or("<none>");
        let alloc = s(n, &["status", "allocatable"]);
        let (cpu, mem, count) = used.get(name).copied().unwrap_or_default();
        let alloc_cpu = s(alloc, &["cpu"])
            .as_str()
            .and_then(|v| parse_cpu_millis(v).ok())
            .map(|m| format!("{m}m"))
            .unwrap_or_else(|| "?".into());
        let alloc_mem = s(alloc, &["memory"])
            .as_str()
            .and_then(|v| parse_memory_bytes(v).ok())
            .map(human_memory)
            .unwrap_or_else(|| "?".into());
        rows.push(vec![
            name.to_string(),
            status,
            role.to_string(),
            format!("{cpu}m/{alloc_cpu}"),
            format!("{}/{alloc_mem}", human_memory(mem)),
            format!("{count}/{}", s(alloc, &["pods"]).as_str().unwrap_or("?")),
            s(n, &["status", "nodeInfo", "runtime"])
                .as_str()
                .unwrap_or("?")
                .to_string(),
            age(n),
        ]);
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
            assert_eq!(
                crate::resource::time::parse_rfc3339(&crate::resource::time::rfc3339(secs)),
                Some(secs)
            );
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
        let e = Cli::try_parse_from(["shoal", "scale", "deployment", "web"])
            .expect_err("--replicas is required");
        assert!(e.use_stderr());
        let e = deployment_name("deployment", None, "scale").expect_err("no name");
        assert!(e.downcast_ref::<UsageError>().is_some());
    }

    #[test]
    fn rollout_commands_parse() {
        let cli = Cli::try_parse_from([
            "shoal",
            "rollout",
            "undo",
            "deploy/web",
            "--to-revision",
            "3",
            "-n",
            "prod",
        ])
        .expect("parses");
        match cli.command {
            Cmd::Rollout {
                cmd:
                    RolloutCmd::Undo {
                        kind,
                        name,
                        to_revision,
                        namespace,
                    },
            } => {
                assert_eq!(
                    deployment_name(&kind, name.as_deref(), "x").ok(),
                    Some("web".into())
                );
                assert_eq!(to_revision, Some(3));
                assert_eq!(namespace.as_deref(), Some("prod"));
            }
            c => panic!("parsed as {c:?}"),
        }
        let cli = Cli::try_parse_from(["shoal", "drain", "n1", "--timeout", "2m", "--force"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Cmd::Drain {
                timeout: 120,
                force: true,
                ..
            }
        ));
    }

    #[test]
    fn deployment_names() {
        for (kind, name) in [
            ("deployment", Some("web")),
            ("deploy", Some("web")),
            ("deployments", Some("web")),
            ("deployment/web", None),
            ("deploy/web", None),
        ] {
            assert_eq!(
                deployment_name(kind, name, "x").ok(),
                Some("web".into()),
                "{kind}"
            );
        }
        let e = deployment_name("pod", Some("web"), "scale").expect_err("pods are not scaled");
        assert!(e.to_string().contains("deployments"), "{e}");
        assert!(deployment_name("deployment/web", Some("web"), "x").is_err());
        assert!(deployment_name("deployment/", None, "x").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("90"), Ok(90));
        assert_eq!(parse_secs("90s"), Ok(90));
        assert_eq!(parse_secs("5m"), Ok(300));
        assert_eq!(parse_secs("1h"), Ok(3600));
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("-1").is_err());
    }

    fn deployment(replicas: u64, generation: u64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas},
            "status": status,
        })
    }

    #[test]
    fn rollout_progress_follows_kubectl() {
        let wait = |m: &str| {
            Progress::Waiting(format!(
                "Waiting for deployment \"web\" rollout to finish: {m}..."
            ))
        };
        let d = deployment(3, 2, json!({"observedGeneration": 1}));
        assert_eq!(
            rollout_progress(&d),
            Progress::Waiting("Waiting for deployment spec update to be observed...".into())
        );
        let d = deployment(
            3,
            2,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1}),
        );
        assert_eq!(
            rollout_progress(&d),
            wait("1 out of 3 new replicas have been updated")
        );
        let d = deployment(
            3,
            2,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            rollout_progress(&d),
            wait("1 old replicas are pending termination")
        );
        let d = deployment(
            3,
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            rollout_progress(&d),
            wait("2 of 3 updated replicas are available")
        );
        let d = deployment(
            2,
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            rollout_progress(&d),
            wait("1 old replicas are pending termination")
        );
        let d = deployment(
            3,
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(rollout_progress(&d), Progress::Done);
        let d = deployment(0, 1, json!({"observedGeneration": 1}));
        assert_eq!(rollout_progress(&d), Progress::Done);
        let d = deployment(
            3,
            2,
            json!({
                "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
                ],
            }),
        );
        assert_eq!(rollout_progress(&d), Progress::DeadlineExceeded);
    }

    fn rs(rev: u64, image: &str) -> (u64, Value) {
        (
            rev,
            json!({
                "metadata": {"annotations": {REVISION_ANNOTATION: rev.to_string()}},
                "spec": {"template": {
                    "metadata": {"labels": {"app": "web", TEMPLATE_HASH_LABEL: format!("h{rev}")}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                }},
            }),
        )
    }

    #[test]
    fn rollback_targets() {
        let h = vec![rs(1, "a"), rs(2, "b"), rs(4, "c")];
        let pick = |cur, to| rollback_target(&h, cur, to, "web").map(|(r, _)| *r);
        assert_eq!(pick(Some(4), None).ok(), Some(2));
        assert_eq!(pick(None, None).ok(), Some(2));
        assert_eq!(pick(Some(2), None).ok(), Some(1));
        assert_eq!(pick(Some(4), Some(1)).ok(), Some(1));
        assert_eq!(pick(Some(4), Some(0)).ok(), Some(2));
        let e = pick(Some(4), Some(3)).expect_err("no revision 3");
        assert_eq!(
            e.to_string(),
            "unable to find specified revision 3 in history"
        );
        let e = pick(Some(1), None).expect_err("nothing older");
        assert!(e.to_string().contains("no previous revision"), "{e}");
        let e = rollback_target(&[], None, None, "web").expect_err("no history");
        assert_eq!(
            e.to_string(),
            "no rollout history found for deployment \"web\""
        );
    }

    #[test]
    fn rollback_template_drops_the_hash_label() {
        let t = template_without_hash(&rs(2, "b").1).expect("template");
        assert_eq!(t["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(t["spec"]["containers"][0]["image"], "b");
        assert!(template_without_hash(&json!({"spec": {}})).is_err());
    }

    #[test]
    fn max_unavailable_as_the_controller_resolves_it() {
        let d = |replicas: u64, strategy: Value| json!({"spec": {"replicas": replicas, "strategy": strategy}});
        assert_eq!(max_unavailable(&d(4, json!(null))), 1);
        assert_eq!(max_unavailable(&d(1, json!(null))), 0);
        assert_eq!(
            max_unavailable(&d(10, json!({"rollingUpdate": {"maxUnavailable": "33%"}}))),
            3
        );
        assert_eq!(
            max_unavailable(&d(10, json!({"rollingUpdate": {"maxUnavailable": 2}}))),
            2
        );
        assert_eq!(
            max_unavailable(&d(
                3,
                json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
            )),
            1
        );
        assert_eq!(max_unavailable(&d(3, json!({"type": "Recreate"}))), 3);
        assert_eq!(max_unavailable(&json!({"spec": {}})), 0);
    }

    #[test]
    fn node_columns() {
        assert_eq!(human_memory(0), "0Mi");
        assert_eq!(human_memory(512 * 1024 * 1024), "512Mi");
        assert_eq!(human_memory(2 * 1024 * 1024 * 1024), "2Gi");
        assert_eq!(human_memory(24_421_940 * 1024), "23.3Gi");
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "no-resources"},
        ]}});
        assert_eq!(pod_requests(&pod), (1250, (64 + 1024) * 1024 * 1024));

        let members = vec![
            json!({"state": "down", "meta": {"name": "a", "raftRole": "voter"}}),
            json!({"state": "alive", "meta": {"name": "a", "raftRole": "leader"}}),
            json!({"state": "suspect", "meta": {"name": "b"}}),
        ];
        let a = member_named(&members, "a");
        assert_eq!(a.map(|m| &m["meta"]["raftRole"]), Some(&json!("leader")));
        let plain = json!({"spec": {}});
        let cordoned = json!({"spec": {"unschedulable": true}});
        assert_eq!(node_status(&plain, a), "Ready");
        assert_eq!(node_status(&cordoned, a), "Ready,SchedulingDisabled");
        assert_eq!(node_status(&plain, member_named(&members, "b")), "Suspect");
        assert_eq!(node_status(&plain, member_named(&members, "c")), "NotReady");
    }

    #[test]
    fn controller_owner_and_pod_state() {
        let p = json!({
            "metadata": {"ownerReferences": [
                {"kind": "Other", "name": "x", "uid": "1"},
                {"kind": "ReplicaSet", "name": "web-1", "uid": "2", "controller": true},
            ]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        });
        assert_eq!(
            controller_ref(&p).map(|r| &r["name"]),
            Some(&json!("web-1"))
        );
        assert!(is_ready_pod(&p) && !is_terminal_pod(&p));
        assert!(controller_ref(&json!({"metadata": {}})).is_none());
        assert!(is_terminal_pod(&json!({"status": {"phase": "Succeeded"}})));
    }
}
