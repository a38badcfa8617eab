//! `shoal-chaos`: runs fault scenarios against a cluster of real `shoal agent`
//! processes and checks that nothing acknowledged was lost.
//!
//! `shoal-chaos run chaos/scenarios/NAME.toml` starts the agents (each in its
//! own network namespace, or all on loopback), puts a workload on them,
//! injects the scenario's faults, heals everything and checks the result.
//! Exit status: 0 when every check held, 1 otherwise, 2 on a usage error.
//! See docs/chaos.md.

mod checks;
mod cluster;
mod cron;
mod faults;
mod intruder;
mod linearizability;
mod netns;
#[path = "../tests/common/ports.rs"]
mod ports;
mod record;
mod report;
mod run;
mod scenario;
mod workload;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// Where runs go unless `--run-dir` says otherwise; leftovers are looked for here.
const DEFAULT_ROOT: &str = "/var/tmp/shoal-chaos";

#[derive(Parser)]
#[command(
    name = "shoal-chaos",
    about = "Fault injection against real shoal agents",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a scenario and checks the cluster afterwards.
    Run(RunArgs),
    /// Prints a scenario's fault schedule without running anything.
    Plan(PlanArgs),
    /// Removes what an interrupted run left behind (namespaces, processes,
    /// data dirs; logs and reports stay).
    Clean {
        /// Directory holding the runs.
        #[arg(long, default_value = DEFAULT_ROOT)]
        root: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario file (chaos/scenarios/NAME.toml).
    scenario: PathBuf,
    /// Overrides the scenario's duration, in seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// The agent binary (default: `shoal` next to this executable).
    #[arg(long)]
    shoal: Option<PathBuf>,
    /// Where to write the JSON report (default: report.json in the run dir).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Directory under which the run directory is made.
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Keep the nodes' data dirs (logs and the report are always kept).
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args)]
struct PlanArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Overrides the scenario's duration, in seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => run_cmd(a),
        Cmd::Plan(a) => plan_cmd(a),
        Cmd::Clean { root } => clean_cmd(&root),
    };
    std::process::exit(code);
}

/// The scenario with the command line's overrides; a bad one is reported
/// and is a usage error (exit 2).
fn load(path: &Path, duration: Option<u64>, seed: Option<u64>) -> Result<scenario::Scenario, i32> {
    let load = || -> anyhow::Result<scenario::Scenario> {
        let mut s = scenario::Scenario::load(path)?;
        if let Some(d) = duration {
            s.duration_secs = d;
        }
        if let Some(seed) = seed {
            s.seed = seed;
        }
        s.validate()?;
        Ok(s)
    };
    load().map_err(|e| {
        eprintln!("shoal-chaos: {e:#}");
        2
    })
}

fn plan_cmd(a: PlanArgs) -> i32 {
    let s = match load(&a.scenario, a.duration, a.seed) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for p in s.plan() {
        let order: Vec<String> = p
            .order
            .iter()
            .map(|i| format!("{}{}", cluster::NAME_PREFIX, i + 1))
            .collect();
        println!(
            "{:>7.1}s {:<26} hold {:>5.1}s  order {}",
            p.at_ms as f64 / 1000.0,
            p.kind.name(),
            p.hold_ms as f64 / 1000.0,
            order.join(",")
        );
    }
    0
}

/// Takes the run lock under `root`: one run at a time owns the namespaces
/// and the subnet, and holding it proves leftovers belong to a dead run.
fn take_lock(root: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(root)?;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("another shoal-chaos run holds {}/lock", root.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn clean_cmd(root: &Path) -> i32 {
    let _lock = match take_lock(root) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shoal-chaos: {e:#}");
            return 1;
        }
    };
    let did = cluster::clean_leftovers(root, true);
    if did.is_empty() {
        println!("nothing to clean");
    }
    for d in did {
        println!("{d}");
    }
    0
}

/// The `shoal` binary next to this executable.
fn default_shoal() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("shoal"))
}

fn run_cmd(a: RunArgs) -> i32 {
    let s = match load(&a.scenario, a.duration, a.seed) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(shoal) = a.shoal.clone().or_else(default_shoal) else {
        eprintln!("shoal-chaos: cannot locate the shoal binary; pass --shoal");
        return 2;
    };
    if !shoal.is_file() {
        eprintln!(
            "shoal-chaos: {} not found: build it (cargo build --release --bin shoal) or pass --shoal",
            shoal.display()
        );
        return 2;
    }
    let _lock = match take_lock(&a.root) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shoal-chaos: {e:#}");
            return 1;
        }
    };
    for d in cluster::clean_leftovers(&a.root, false) {
        eprintln!("shoal-chaos: leftover of an earlier run: {d}");
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_dir = a.root.join(format!("{}-{stamp}", s.name));
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        eprintln!("shoal-chaos: {}: {e}", run_dir.display());
        return 1;
    }
    let report_path = a
        .report
        .clone()
        .unwrap_or_else(|| run_dir.join("report.json"));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal-chaos: tokio runtime: {e}");
            return 1;
        }
    };
    let teardown = cluster::Teardown::new(a.keep);
    let opts = run::Options {
        scenario: s,
        shoal,
        run_dir: run_dir.clone(),
    };
    let td = Arc::clone(&teardown);
    let report = rt.block_on(async move {
        tokio::select! {
            r = run::run(&opts, td) => Some(r),
            sig = interrupted() => {
                eprintln!("shoal-chaos: {sig}: cleaning up");
                None
            }
        }
    });
    // Kill the agents before the runtime goes, so no task sees them vanish
    // half-way; the registry is idempotent.
    for d in teardown.run() {
        eprintln!("shoal-chaos: {d}");
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let Some(report) = report else {
        return 1;
    };
    let summary = report.summary();
    print!("{summary}");
    let _ = std::fs::write(run_dir.join("summary.txt"), &summary);
    match serde_json::to_vec_pretty(&report)
        .map_err(anyhow::Error::from)
        .and_then(|j| std::fs::write(&report_path, j).map_err(Into::into))
    {
        Ok(()) => println!("report: {}", report_path.display()),
        Err(e) => {
            eprintln!("shoal-chaos: cannot write {}: {e}", report_path.display());
            return 1;
        }
    }
    if report.passed { 0 } else { 1 }
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP, naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        // Without handlers only Ctrl-C is watched.
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "hung up",
    }
}
