//! cli: the `shoal` command line. `shoal agent` runs the daemon; every other
//! command is an HTTP client of a node's API (`--addr`, `SHOAL_ADDR`).
//! Exit codes: 0 success, 1 error with a one-line cause, 2 usage.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::resource::Kind;

/// Writes to stdout; a closed pipe (`shoal get pods | head`) ends the
/// process quietly, as other Unix tools do, instead of panicking.
pub(super) fn emit(args: std::fmt::Arguments<'_>) {
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

mod accounts;
mod attach;
mod autoscale;
mod client;
mod cp;
mod custom;
mod describe;
mod exec;
mod forward;
mod jobs;
mod kubeconfig;
mod logs;
mod nodes;
mod objects;
mod rollout;
mod taint;
#[cfg(test)]
mod tests;
mod tokens;
mod top;

use client::*;
use nodes::*;
use objects::*;
use rollout::*;

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
    /// The cluster CA (PEM, from `shoal ca`) to verify a TLS API against;
    /// a bare HOST:PORT address then means https.
    #[arg(long, global = true, env = "SHOAL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
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
    /// Print the cluster CA certificate (PEM) that clients verify the API's
    /// TLS with; derived from the cluster key, so run it on a node.
    Ca {
        /// The cluster key file (default: DATA_DIR/cluster.key).
        #[arg(long)]
        cluster_key_file: Option<PathBuf>,
        /// The node's data dir, for its generated cluster.key.
        #[arg(long, default_value = "/var/lib/shoal")]
        data_dir: PathBuf,
    },
    /// Create or update the objects of a manifest file (`-` for stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Create a Job from a CronJob's template (`create job NAME --from=cronjob/CRON`).
    Create {
        /// `job`: the only kind made this way.
        kind: String,
        name: String,
        /// `cronjob/NAME`.
        #[arg(long)]
        from: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
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
        /// Delete a StatefulSet's pod whose node is not reachable (its
        /// replacement may then run beside it if the node is not down).
        #[arg(long)]
        force: bool,
        /// What happens to the objects it owns: `background` (deleted
        /// right after it), `foreground` (deleted first: it stays, marked,
        /// until they are gone) or `orphan` (kept, without it as owner).
        #[arg(long, default_value = "background", value_parser = ["background", "orphan", "foreground"])]
        cascade: String,
    },
    /// Print a container's logs, from whichever node runs the pod
    /// (`POD`, `job/NAME`, `deployment/NAME`, or `-l SELECTOR`).
    Logs(logs::LogsArgs),
    /// Run a command in a pod's container, through any node
    /// (`exec POD [-c C] [-i] [-t] -- CMD ARGS...`); exits with its code.
    Exec(exec::ExecArgs),
    /// Attach to a running container's main process, through any node
    /// (`attach POD [-c C] [-i] [-t]`); without a terminal, Ctrl-C detaches
    /// and leaves it running.
    Attach(attach::AttachArgs),
    /// Forward local ports to a pod's (or a Service's ready endpoint's)
    /// ports through any node, until Ctrl-C.
    PortForward(forward::ForwardArgs),
    /// Copy one file into or out of a pod's container, through any node
    /// (`cp POD:PATH LOCAL`, `cp LOCAL POD:PATH`).
    Cp(cp::CpArgs),
    /// Wait until an object's condition holds (`--for=condition=complete job/NAME`);
    /// exits 1 on timeout, as kubectl.
    Wait {
        /// `KIND/NAME`, or `KIND` followed by NAME.
        kind: String,
        name: Option<String>,
        /// `condition=TYPE` or `condition=TYPE=STATUS`.
        #[arg(long = "for", value_parser = jobs::parse_for)]
        for_: jobs::WaitFor,
        /// Give up after this long (`60`, `60s`, `5m`).
        #[arg(long, value_parser = parse_secs, default_value = "30")]
        timeout: u64,
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
    /// Print a kubeconfig for kubectl: this node, plus a context per other
    /// node (`kubectl --context shoal-NODE`); token and CA from the global flags.
    Kubeconfig,
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
    /// API tokens with roles (admin, edit, view, metrics): create, list, revoke.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Secrets at rest: `rotate-key` (a new data key, every Secret re-sealed
    /// in the background), `status`. Admin only.
    Secrets {
        #[command(subcommand)]
        cmd: SecretsCmd,
    },
    /// Raft group status.
    Raft {
        #[command(subcommand)]
        cmd: RaftCmd,
    },
    /// Set the replica count of a deployment, statefulset or replicaset.
    Scale {
        /// `deployment`, `statefulset` or `replicaset` (or `KIND/NAME`).
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
    /// Add or remove node taints, as kubectl: `shoal taint node NAME
    /// KEY[=VALUE]:EFFECT ...` adds (NoSchedule, PreferNoSchedule,
    /// NoExecute), `KEY[:EFFECT]-` removes.
    Taint {
        /// Always `node` (`nodes` and `no` also work).
        kind: String,
        node: String,
        /// The taints to add or remove.
        #[arg(required = true, allow_hyphen_values = true)]
        taints: Vec<String>,
        /// Change the value of a taint the node already has.
        #[arg(long)]
        overwrite: bool,
    },
    /// Make a HorizontalPodAutoscaler for a deployment or statefulset.
    Autoscale {
        /// `deployment` or `statefulset`.
        kind: String,
        name: String,
        /// Fewest replicas (1 when absent).
        #[arg(long)]
        min: Option<u32>,
        /// Most replicas.
        #[arg(long)]
        max: u32,
        /// Target CPU use, percent of requests (80 when absent).
        #[arg(long)]
        cpu_percent: Option<u32>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// CPU and memory of nodes or pods, from the resource metrics API.
    Top {
        #[command(subcommand)]
        cmd: top::TopCmd,
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
    /// Wait until the deployment's, daemonset's or statefulset's rollout finishes, showing its progress.
    Status {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Give up after this many seconds (`0`: wait as long as it takes).
        #[arg(long, value_parser = parse_secs, default_value = "0")]
        timeout: u64,
    },
    /// The deployment's, daemonset's or statefulset's revisions and their change causes.
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

/// `shoal token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token; prints it once (only its hash is stored).
    Create {
        /// The token's name (lower-case, digits, '-', '.'); its audit-log user.
        name: String,
        /// admin (everything), edit (no Secret reads, no nodes, no tokens),
        /// view (read all but Secrets), metrics (/metrics only).
        #[arg(long, value_parser = parse_role)]
        role: crate::resource::types::Role,
        /// Valid for this long (`3600`, `90m`, `24h`); forever when unset.
        #[arg(long, value_parser = parse_secs)]
        ttl: Option<u64>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Every token: name, role, expiry.
    List {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete a token; every node refuses it once the deletion reaches it.
    Revoke { name: String },
}

fn parse_role(s: &str) -> Result<crate::resource::types::Role, String> {
    s.parse()
}

/// `shoal secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Make a new data key active; the old ones are kept until every Secret
    /// is sealed under the new one.
    RotateKey,
    /// The active data key, the keys kept, and Secrets not yet re-sealed.
    Status,
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
    /// Container runtime (chosen automatically when unset).
    #[arg(long, value_enum)]
    pub runtime: Option<crate::runtime::RuntimeKind>,
    /// Pre-shared cluster key file.
    #[arg(long)]
    pub cluster_key_file: Option<PathBuf>,
    /// Key-encryption key for Secrets at rest (64 hex digits, `shoal keygen`);
    /// every node needs the same. Default: derived from the cluster key.
    #[arg(long)]
    pub encryption_key_file: Option<PathBuf>,
    /// DNS listen address for `*.svc.shoal` (default 127.0.0.1:7953).
    #[arg(long)]
    pub dns_addr: Option<String>,
    /// HTTP listen address of the Ingress router (default 0.0.0.0:80, none
    /// with --dev; "" for none).
    #[arg(long)]
    pub ingress_http_addr: Option<String>,
    /// HTTPS listen address of the Ingress router (default 0.0.0.0:443,
    /// none with --dev; "" for none).
    #[arg(long)]
    pub ingress_https_addr: Option<String>,
    /// An extended resource this node offers, NAME=COUNT
    /// (`example.com/dongle=4`); repeatable, added to agent.extended_resources.
    #[arg(long = "extended-resource", value_parser = parse_extended_resource)]
    pub extended_resources: Vec<(String, u64)>,
}

/// `NAME=COUNT` of `--extended-resource`.
fn parse_extended_resource(s: &str) -> Result<(String, u64), String> {
    let (name, count) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=COUNT, such as example.com/dongle=4"))?;
    crate::resource::extended::check_name(name).map_err(|e| e.to_string())?;
    let count = count
        .parse::<u64>()
        .map_err(|_| format!("{s:?}: the count must be a whole number"))?;
    Ok((name.to_string(), count))
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
        for (name, count) in &self.extended_resources {
            cfg.agent.extended_resources.insert(name.clone(), *count);
        }
        if let Some(v) = self.bootstrap_expect {
            cfg.bootstrap_expect = Some(v);
        }
        if let Some(v) = self.runtime {
            cfg.runtime = Some(v);
        }
        if let Some(v) = &self.cluster_key_file {
            cfg.cluster_key_file = Some(v.clone());
        }
        if let Some(v) = &self.encryption_key_file {
            cfg.store.encryption_key_file = Some(v.clone());
        }
        if let Some(v) = &self.dns_addr {
            cfg.discovery.dns_addr = v.clone();
        }
        if let Some(v) = &self.ingress_http_addr {
            cfg.ingress.http_addr = Some(v.clone());
        }
        if let Some(v) = &self.ingress_https_addr {
            cfg.ingress.https_addr = Some(v.clone());
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
    let result = rt.block_on(run(cli));
    // A read of stdin (`exec -i`) may still block a worker: do not wait for it.
    rt.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) if e.downcast_ref::<exec::RemoteExit>().is_some() => {
            e.downcast_ref::<exec::RemoteExit>().map_or(1, |x| x.0)
        }
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
pub(super) struct UsageError(pub(super) String);

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

/// What `shoal secrets` prints.
fn encryption_text(v: &crate::api::EncryptionView) -> String {
    let keys = match &v.keyring {
        None => "no data key yet (made at the first Secret write)".to_string(),
        Some(k) => {
            let ids: Vec<String> = k.key_ids.iter().map(u32::to_string).collect();
            format!(
                "active data key {} (keys kept: {})",
                k.active,
                ids.join(", ")
            )
        }
    };
    let progress = if v.pending == 0 {
        format!("all {} Secrets sealed under the active key", v.secrets)
    } else {
        format!(
            "{} of {} Secrets still to re-seal (in the background)",
            v.pending, v.secrets
        )
    };
    format!(
        "{keys}\n{progress}\nkey-encryption key: {}",
        v.key_encryption_key
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ca = match &cli.ca_file {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading the CA file {}", p.display()))?)
        }
        None => None,
    };
    let client = Client::with_ca(&cli.addr, cli.token.clone(), ca.as_deref())?;
    match cli.command {
        Cmd::Agent(args) => run_agent(args).await,
        Cmd::Keygen => {
            let key = crate::net::generate_cluster_key();
            print!("{}", crate::net::cluster_key_text(&key));
            Ok(())
        }
        Cmd::Ca {
            cluster_key_file,
            data_dir,
        } => {
            let path =
                cluster_key_file.unwrap_or_else(|| data_dir.join(crate::node::GENERATED_KEY_FILE));
            let key = crate::net::load_cluster_key(&path)?;
            let ca = crate::api::tls::ClusterCa::from_psk(&key)?;
            print!("{}", ca.cert_pem());
            Ok(())
        }
        Cmd::Apply { file } => apply(&client, &file).await,
        Cmd::Create {
            kind,
            name,
            from,
            namespace,
        } => {
            if Kind::from_user(&kind) != Some(Kind::Job) {
                return Err(UsageError(format!(
                    "create {kind}: only `create job NAME --from=cronjob/CRON` is supported; use apply for the rest"
                ))
                .into());
            }
            jobs::create_job_from(&client, &ns_or_default(namespace), &name, &from).await
        }
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
        } => describe::describe(&client, &kind, &name, namespace).await,
        Cmd::Delete {
            kind,
            name,
            file,
            namespace,
            force,
            cascade,
        } => match (file, kind, name) {
            (Some(f), None, None) => delete_file(&client, &f).await,
            (None, Some(k), Some(n)) => {
                delete_one(&client, &k, &n, namespace, force, &cascade).await
            }
            _ => bail!("usage: shoal delete KIND NAME, or shoal delete -f FILE"),
        },
        Cmd::Raft {
            cmd: RaftCmd::Status,
        } => raft_status(&client).await,
        Cmd::Secrets { cmd } => {
            let v = match cmd {
                SecretsCmd::RotateKey => client.rotate_data_key().await?,
                SecretsCmd::Status => client.encryption_status().await?,
            };
            outln!("{}", encryption_text(&v));
            Ok(())
        }
        Cmd::Token { cmd } => match cmd {
            TokenCmd::Create {
                name,
                role,
                ttl,
                description,
            } => tokens::create(&client, &name, role, ttl, description).await,
            TokenCmd::List { output } => tokens::list(&client, output).await,
            TokenCmd::Revoke { name } => tokens::revoke(&client, &name).await,
        },
        Cmd::Logs(a) => logs::logs(&client, a).await,
        Cmd::Exec(a) => exec::exec(&client, a).await,
        Cmd::Attach(a) => attach::attach(&client, a).await,
        Cmd::PortForward(a) => forward::port_forward(&client, a).await,
        Cmd::Cp(a) => cp::cp(&client, a).await,
        Cmd::Wait {
            kind,
            name,
            for_,
            timeout,
            namespace,
        } => {
            let ns = ns_or_default(namespace);
            jobs::wait(&client, &kind, name.as_deref(), &ns, &for_, timeout).await
        }
        Cmd::Events {
            namespace,
            all_namespaces,
        } => events(&client, namespace, all_namespaces).await,
        Cmd::Members { output } => members(&client, output).await,
        Cmd::Kubeconfig => {
            kubeconfig::kubeconfig(&client, cli.token.as_deref(), ca.as_deref()).await
        }
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
            let (kind, name) = scale_target(&kind, name.as_deref())?;
            let ns = ns_or_default(namespace);
            autoscale::warn_if_autoscaled(&client, kind, &ns, &name).await;
            scale(&client, kind, &ns, &name, replicas).await
        }
        Cmd::Rollout { cmd } => rollout(&client, cmd).await,
        Cmd::Taint {
            kind,
            node,
            taints,
            overwrite,
        } => {
            if !matches!(kind.as_str(), "node" | "nodes" | "no") {
                bail!("only nodes have taints: shoal taint node NAME KEY[=VALUE]:EFFECT");
            }
            taint::taint(&client, &node, &taints, overwrite).await
        }
        Cmd::Top { cmd } => top::top(&client, cmd).await,
        Cmd::Autoscale {
            kind,
            name,
            min,
            max,
            cpu_percent,
            namespace,
        } => {
            let ns = ns_or_default(namespace);
            autoscale::autoscale(&client, &kind, &name, &ns, min, max, cpu_percent).await
        }
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
