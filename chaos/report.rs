//! The run's report: the JSON document written to `--report` and the human
//! summary printed at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::checks::{RuntimeCheck, WriteCheck};
use crate::cron::CronCheck;
use crate::linearizability::{KeyReport, Verdict};
use crate::record::FaultRecord;
use crate::scenario::{Network, Planned, RuntimeKind, Scenario};
use crate::workload::{DuplicateLog, LeaderLog, RegisterStats, ServiceStats};

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// Figures or the reason it did not hold.
    pub detail: String,
}

/// How long the phases took, in seconds.
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    /// Agents started until the cluster was whole.
    pub startup_secs: Option<f64>,
    /// The Deployment Ready before the faults began.
    pub baseline_ready_secs: Option<f64>,
    /// Workload and faults.
    pub workload_secs: Option<f64>,
    /// Heal started until the cluster was whole again.
    pub heal_secs: Option<f64>,
    /// Heal finished until the Deployment was back at its replicas.
    pub convergence_secs: Option<f64>,
    /// The whole run, teardown included.
    pub total_secs: f64,
}

/// The register part of the report.
#[derive(Debug, Default, Serialize)]
pub struct Registers {
    /// Counts by outcome.
    pub stats: RegisterStats,
    /// The checker's verdict per key.
    pub keys: Vec<KeyReport>,
    /// Every key linearizable.
    pub linearizable: bool,
    /// Where the full history was written.
    pub history_file: Option<String>,
}

/// The leader-per-term part of the report.
#[derive(Debug, Default, Serialize)]
pub struct Leaders {
    /// Terms in which some leader was seen.
    pub terms_observed: usize,
    /// Terms with more than one leader, with their names.
    pub violations: Vec<(u64, Vec<String>)>,
    /// (seconds, term, leader) as first seen.
    pub changes: Vec<(f64, u64, String)>,
    /// `/v1/raft` answers collected.
    pub polls: u64,
    /// Longest stretch without a leader a majority of the nodes follow, in seconds.
    pub longest_leaderless_secs: f64,
    /// All stretches without such a leader together, in seconds.
    pub leaderless_secs: f64,
    /// (start, length) of the longest stretches without a leader.
    pub leaderless_worst: Vec<(f64, f64)>,
    /// (seconds, term) each time the highest term reported rose.
    pub term_rises: Vec<(f64, u64)>,
}

impl From<&LeaderLog> for Leaders {
    fn from(l: &LeaderLog) -> Self {
        Leaders {
            terms_observed: l.per_term.len(),
            violations: l.violations(),
            changes: l.changes.clone(),
            polls: l.polls,
            longest_leaderless_secs: l.longest_leaderless_secs,
            leaderless_secs: l.leaderless_secs,
            leaderless_worst: l.leaderless_worst.clone(),
            term_rises: l.term_rises.clone(),
        }
    }
}

/// Everything a run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Seed used.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Network layout.
    pub network: Network,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// Workload duration.
    pub duration_secs: u64,
    /// Where logs and the report are.
    pub run_dir: String,
    /// Start, Unix seconds.
    pub started_unix: u64,
    /// Phase durations.
    pub timings: Timings,
    /// The schedule drawn from the seed.
    pub plan: Vec<Planned>,
    /// The faults as injected.
    pub faults: Vec<FaultRecord>,
    /// The writers' creates and their read-back.
    pub writes: Option<WriteCheck>,
    /// Ambiguous or rejected creates by reason.
    pub write_reasons: BTreeMap<String, u64>,
    /// Register history verdicts.
    pub registers: Option<Registers>,
    /// Deployment replicas (0: none).
    pub replicas: usize,
    /// Service client counts, when enabled.
    pub service: Option<ServiceStats>,
    /// Runtime versus pod objects.
    pub runtime_check: Option<RuntimeCheck>,
    /// Pods seen on two nodes while the faults ran (informational).
    pub duplicates_during_run: Option<DuplicateLog>,
    /// (seconds, Deployment pods Running and Ready), about once a second.
    pub ready_timeline: Vec<(f64, usize)>,
    /// Leaders per term.
    pub leaders: Option<Leaders>,
    /// Jobs of the CronJob workload per scheduled minute.
    pub cron: Option<CronCheck>,
    /// Every check.
    pub checks: Vec<Check>,
    /// What each node saw when a check failed (members, Raft, reachability).
    pub diagnostics: Vec<String>,
    /// A harness error that stopped the run early.
    pub error: Option<String>,
    /// What the teardown removed.
    pub teardown: Vec<String>,
    /// Every check held and nothing went wrong.
    pub passed: bool,
}

impl Report {
    /// An empty report for a scenario.
    pub fn new(s: &Scenario, run_dir: &std::path::Path) -> Report {
        Report {
            scenario: s.name.clone(),
            description: s.description.clone(),
            seed: s.seed,
            nodes: s.nodes,
            network: s.network,
            runtime: s.runtime,
            duration_secs: s.duration_secs,
            run_dir: run_dir.display().to_string(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            timings: Timings::default(),
            plan: Vec::new(),
            faults: Vec::new(),
            writes: None,
            write_reasons: BTreeMap::new(),
            registers: None,
            replicas: s.workload.replicas,
            service: None,
            runtime_check: None,
            duplicates_during_run: None,
            cron: None,
            ready_timeline: Vec::new(),
            leaders: None,
            checks: Vec::new(),
            diagnostics: Vec::new(),
            error: None,
            teardown: Vec::new(),
            passed: false,
        }
    }

    /// Records a check.
    pub fn check(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
    }

    /// Sets `passed`: no harness error and every check held (and there were checks).
    pub fn settle(&mut self) {
        self.passed =
            self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.ok);
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "shoal-chaos {}: seed {}, {} nodes, {} runtime, {} network, {} s of faults",
            self.scenario,
            self.seed,
            self.nodes,
            format!("{:?}", self.runtime).to_lowercase(),
            format!("{:?}", self.network).to_lowercase(),
            self.duration_secs
        );
        let t = &self.timings;
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
        let _ = writeln!(
            s,
            "timings: startup {}, baseline ready {}, heal {}, convergence {}, total {:.0} s",
            f(t.startup_secs),
            f(t.baseline_ready_secs),
            f(t.heal_secs),
            f(t.convergence_secs),
            t.total_secs
        );
        let _ = writeln!(s, "faults: {} injected", self.faults.len());
        for r in &self.faults {
            let healed = r
                .healed_at_secs
                .map_or("not healed".to_string(), |h| format!("healed at {h:.1}s"));
            let _ = writeln!(
                s,
                "  {:>6.1}s {:<26} {:<10} {healed}{}",
                r.at_secs,
                r.kind,
                r.targets.join(","),
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.note)
                }
            );
            if self.replicas > 0 {
                let again = match (r.min_ready, r.ready_again_after_secs) {
                    (Some(m), _) if m >= self.replicas => "no replica lost".to_string(),
                    (Some(m), Some(t)) => {
                        format!(
                            "ready replicas fell to {m}, all back {t:.1} s after the fault began"
                        )
                    }
                    (Some(m), None) => {
                        format!("ready replicas fell to {m}, not all back before the next fault")
                    }
                    (None, _) => "readiness not sampled".to_string(),
                };
                let _ = writeln!(s, "           {again}");
            }
            if let Some(x) = &r.intruder {
                let writes: Vec<String> =
                    x.writes.iter().map(|(k, v)| format!("{v}× {k}")).collect();
                let _ = writeln!(
                    s,
                    "           intruder {}: writes through it {} ({} acknowledged by it); admitted {} times",
                    x.name,
                    if writes.is_empty() {
                        "none".to_string()
                    } else {
                        writes.join(", ")
                    },
                    x.writes_acknowledged,
                    x.admitted.len()
                );
                for v in x.own_view.iter().take(3) {
                    let _ = writeln!(s, "           it saw {v}");
                }
            }
        }
        if let Some(w) = &self.writes {
            let _ = writeln!(
                s,
                "writes: {} acknowledged, {} ambiguous ({} present afterwards), {} refused (never sent)",
                w.acknowledged, w.ambiguous, w.ambiguous_present, w.refused
            );
            if !self.write_reasons.is_empty() {
                let reasons: Vec<String> = self
                    .write_reasons
                    .iter()
                    .map(|(k, v)| format!("{v}× {k}"))
                    .collect();
                let _ = writeln!(s, "  ambiguous/rejected: {}", reasons.join("; "));
            }
            let _ = writeln!(s, "lost: {}", w.lost);
            for (node, n) in &w.lost_per_node {
                let _ = writeln!(s, "  {node}: {n} acknowledged writes missing");
            }
            if !w.lost_names.is_empty() {
                let _ = writeln!(s, "  e.g. {}", w.lost_names.join(", "));
            }
            for u in &w.unreadable {
                let _ = writeln!(s, "  unreadable: {u}");
            }
        } else {
            let _ = writeln!(s, "lost: unknown (not checked)");
        }
        if let Some(r) = &self.registers {
            let st = &r.stats;
            let _ = writeln!(
                s,
                "registers: {} reads, {} writes, {} deletes acknowledged, {} unknown, {} refused; linearizable: {}",
                st.reads_ok,
                st.writes_ok,
                st.deletes_ok,
                st.unknown,
                st.refused,
                if r.linearizable { "yes" } else { "NO" }
            );
            for k in &r.keys {
                let v = match &k.verdict {
                    Verdict::Linearizable => "linearizable".to_string(),
                    Verdict::NotLinearizable { detail, .. } => {
                        format!("NOT linearizable: {}", first_lines(detail, 12))
                    }
                    Verdict::Unknown { reason } => format!("undecided: {reason}"),
                };
                let _ = writeln!(s, "  {}: {} ops, {v}", k.key, k.ops);
            }
        }
        if let Some(svc) = &self.service {
            let _ = writeln!(
                s,
                "service: {} ok, {} failed, longest outage {:.1} s",
                svc.ok, svc.failed, svc.longest_outage_secs
            );
        }
        if let Some(c) = &self.cron {
            let jobs: Vec<String> = c.jobs.iter().map(|(k, v)| format!("{v} of {k}")).collect();
            let _ = writeln!(
                s,
                "cronjobs: {} Jobs seen over minutes {}..={} ({} lists, {} unanswered); {} minutes missing, {} doubled, {} Forbid overlaps",
                jobs.join(", "),
                c.window.0,
                c.window.1,
                c.polls.0,
                c.polls.1,
                c.missing.len(),
                c.doubled.len(),
                c.overlaps.len()
            );
            for x in c.doubled.iter().chain(c.overlaps.iter()).take(10) {
                let _ = writeln!(s, "  {x}");
            }
        }
        if let Some(rc) = &self.runtime_check {
            let _ = writeln!(
                s,
                "runtime: {} pod containers running; {} duplicates, {} orphans, {} ghosts",
                rc.containers,
                rc.duplicates.len(),
                rc.orphans.len(),
                rc.ghosts.len()
            );
            for l in rc
                .duplicates
                .iter()
                .chain(&rc.orphans)
                .chain(&rc.ghosts)
                .take(10)
            {
                let _ = writeln!(s, "  {l}");
            }
        }
        if let Some(d) = &self.duplicates_during_run {
            let _ = writeln!(
                s,
                "during the run: a pod ran on two nodes in {} of {} looks (at most {} at once); at most {} Deployment containers ran at once",
                d.samples_with_duplicates, d.samples, d.max_at_once, d.max_deployment_copies
            );
            for e in d.examples.iter().take(3) {
                let _ = writeln!(s, "  {e}");
            }
        }
        if let Some(l) = &self.leaders {
            let _ = writeln!(
                s,
                "leaders: {} terms observed in {} polls, {} with more than one leader",
                l.terms_observed,
                l.polls,
                l.violations.len()
            );
            let worst: Vec<String> = l
                .leaderless_worst
                .iter()
                .map(|(at, len)| format!("{len:.1} s at {at:.1}s"))
                .collect();
            let _ = writeln!(
                s,
                "  without a leader a majority follows: {:.1} s in all; longest {}",
                l.leaderless_secs,
                if worst.is_empty() {
                    "-".to_string()
                } else {
                    worst.join(", ")
                }
            );
            for (term, names) in &l.violations {
                let _ = writeln!(s, "  term {term}: {}", names.join(", "));
            }
        }
        let _ = writeln!(s, "checks:");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if !self.diagnostics.is_empty() {
            let _ = writeln!(s, "diagnostics:");
            for d in &self.diagnostics {
                let _ = writeln!(s, "  {d}");
            }
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "error: {e}");
        }
        let _ = writeln!(s, "run dir: {}", self.run_dir);
        let _ = writeln!(s, "result: {}", if self.passed { "PASS" } else { "FAIL" });
        s
    }
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().take(n).collect();
    lines.join("\n      ")
}
