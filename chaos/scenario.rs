//! Scenario files: what cluster to start, what load to put on it, which
//! faults to inject and for how long. The fault schedule is drawn from the
//! scenario's seed before the run starts, so the same seed gives the same
//! schedule (the leader a `*-leader` fault hits is found at run time).

use std::path::Path;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How the nodes are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// One network namespace per node, joined by a bridge; partitions possible.
    #[default]
    Netns,
    /// Every node on 127.0.0.1 with its own ports; no partitions.
    Loopback,
}

/// The container runtime every agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Pods are host processes.
    #[default]
    Process,
    /// Pods are Docker containers.
    Docker,
}

impl RuntimeKind {
    /// The value of `shoal agent --runtime`.
    pub fn flag(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Docker => "docker",
        }
    }
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL a random node; restart it after the hold time.
    KillRandom,
    /// SIGKILL the Raft leader; restart it after the hold time.
    KillLeader,
    /// SIGSTOP a random node (a hung host); SIGCONT after the hold time.
    PauseRandom,
    /// SIGSTOP the leader; SIGCONT after the hold time.
    PauseLeader,
    /// Cut a random minority off from the rest.
    PartitionMinority,
    /// Cut the leader off from every other node.
    PartitionLeader,
    /// Cut the leader and enough others to make a minority off from the majority.
    PartitionLeaderMinority,
    /// Two halves that cannot reach each other, and one node that reaches both.
    PartitionBridge,
    /// A host replaced: killed with its pods, data dir wiped, back under the same name.
    ReplaceHost,
    /// Every node restarted in turn, each waited for before the next.
    RollingRestart,
    /// A real agent with another cluster key, in a namespace of its own,
    /// joining the members, and a raw TCP client sending garbage to every
    /// member's p2p port.
    IntruderUnkeyed,
    /// The leader's host replaced; its old disk booted elsewhere: a keyed
    /// node removed from the Raft configuration that still believes it
    /// leads its old term (it appends) and is a voter.
    IntruderRemovedLeader,
    /// Like `IntruderRemovedLeader` with a follower: a removed node that
    /// believes it is a voter (it asks for pre-votes).
    IntruderRemovedFollower,
}

impl FaultKind {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillRandom => "kill-random",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::PauseRandom => "pause-random",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionLeaderMinority => "partition-leader-minority",
            FaultKind::PartitionBridge => "partition-bridge",
            FaultKind::ReplaceHost => "replace-host",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::IntruderUnkeyed => "intruder-unkeyed",
            FaultKind::IntruderRemovedLeader => "intruder-removed-leader",
            FaultKind::IntruderRemovedFollower => "intruder-removed-follower",
        }
    }

    /// Whether the fault sets an intruder on the cluster (its window is
    /// checked for term and leader changes, admissions and refusals).
    pub fn is_intruder(self) -> bool {
        matches!(
            self,
            FaultKind::IntruderUnkeyed
                | FaultKind::IntruderRemovedLeader
                | FaultKind::IntruderRemovedFollower
        )
    }

    /// Whether the fault needs per-node network namespaces.
    pub fn needs_netns(self) -> bool {
        matches!(
            self,
            FaultKind::PartitionMinority
                | FaultKind::PartitionLeader
                | FaultKind::PartitionLeaderMinority
                | FaultKind::PartitionBridge
        ) || self.is_intruder()
    }
}

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports; defaults to the file's stem.
    #[serde(default)]
    pub name: String,
    /// One line on what the scenario exercises.
    #[serde(default)]
    pub description: String,
    /// Number of agents.
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// Container runtime of every agent.
    #[serde(default)]
    pub runtime: RuntimeKind,
    /// Network layout.
    #[serde(default)]
    pub network: Network,
    /// How long the workload and the faults run, in seconds.
    pub duration_secs: u64,
    /// Seed of the fault schedule and of the workload's choices.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Extra TOML appended to every agent's config file (e.g. `[raft]` timings).
    #[serde(default)]
    pub agent_config: String,
    /// The load put on the cluster while faults run.
    #[serde(default)]
    pub workload: Workload,
    /// The faults.
    #[serde(default)]
    pub faults: Faults,
    /// Time limits of the checks after healing.
    #[serde(default)]
    pub checks: Checks,
}

/// The load put on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Clients creating uniquely named ConfigMaps.
    pub writers: usize,
    /// Pause between two creates of one writer, in milliseconds.
    pub write_interval_ms: u64,
    /// Register keys for the linearizability check.
    pub registers: usize,
    /// Clients reading and writing the registers.
    pub register_clients: usize,
    /// Pause between two register operations of one client, in milliseconds.
    pub register_interval_ms: u64,
    /// Share of register operations that are deletes (0..1); the rest split evenly between reads and writes.
    pub delete_ratio: f64,
    /// Client-side limit of one request, in milliseconds; a request that
    /// runs out is ambiguous, never a failure.
    pub request_timeout_ms: u64,
    /// Replicas of the Deployment (0 for none); keep it below `nodes`.
    pub replicas: usize,
    /// Run a NodePort Service in front of the Deployment and a client through it.
    pub service: bool,
    /// The Service's nodePort.
    pub node_port: u16,
    /// Pause between two requests through the Service, in milliseconds.
    pub service_interval_ms: u64,
    /// Run two CronJobs (every minute; and Forbid with pods that outlive a
    /// minute) and check exactly one Job per scheduled minute, no overlap.
    pub cron: bool,
    /// Replicas of a StatefulSet (Parallel) run beside the Deployment (0
    /// for none); checked: no ordinal ever runs on two nodes at once.
    pub statefulset: usize,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            writers: 4,
            write_interval_ms: 100,
            registers: 3,
            register_clients: 4,
            register_interval_ms: 100,
            delete_ratio: 0.05,
            request_timeout_ms: 5_000,
            replicas: 3,
            service: false,
            node_port: 30080,
            service_interval_ms: 200,
            cron: false,
            statefulset: 0,
        }
    }
}

/// The fault schedule's shape; the schedule itself is drawn from the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Kinds to draw from, each equally likely; empty runs without faults.
    pub kinds: Vec<FaultKind>,
    /// Take the kinds in the order listed, round and round, instead of
    /// drawing them (targets, holds and gaps still come from the seed).
    pub in_order: bool,
    /// When the first fault starts, in seconds after the workload.
    pub first_at_secs: u64,
    /// How long a fault lasts before it is healed, `[min, max]` seconds.
    pub hold_secs: [u64; 2],
    /// Healthy time between two faults, `[min, max]` seconds.
    pub gap_secs: [u64; 2],
    /// A killed node's host died with it: its pods' processes or containers
    /// are killed too (a replaced host always loses them).
    pub host_died: bool,
    /// Rolling restarts stop each node with SIGTERM (a graceful leave) rather than SIGKILL.
    pub graceful_restart: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            kinds: Vec::new(),
            in_order: false,
            first_at_secs: 5,
            hold_secs: [5, 10],
            gap_secs: [5, 10],
            host_died: false,
            graceful_restart: true,
        }
    }
}

/// Time limits of the checks after healing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Every node healthy and every member alive within this, in seconds.
    pub heal_timeout_secs: u64,
    /// The Deployment back at its replicas, Running and Ready, within this.
    pub converge_timeout_secs: u64,
    /// Duplicate and orphaned pod processes gone within this.
    pub settle_timeout_secs: u64,
    /// Search budget of the linearizability checker per key, in seconds.
    pub linearizability_budget_secs: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            heal_timeout_secs: 90,
            converge_timeout_secs: 90,
            settle_timeout_secs: 30,
            linearizability_budget_secs: 30,
        }
    }
}

fn default_nodes() -> usize {
    5
}

fn default_seed() -> u64 {
    1
}

/// One fault of the schedule, before its targets are resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Start, in milliseconds after the workload started.
    pub at_ms: u64,
    /// What to do.
    pub kind: FaultKind,
    /// How long it lasts, in milliseconds.
    pub hold_ms: u64,
    /// A seeded permutation of node indices the targets are taken from, in
    /// order (skipping the leader where the fault picks it separately).
    pub order: Vec<usize>,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).with_context(|| format!("scenario {}", path.display()))?;
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(3..=50).contains(&self.nodes) {
            bail!("nodes must be between 3 and 50, not {}", self.nodes);
        }
        if self.duration_secs == 0 {
            bail!("duration_secs must be positive");
        }
        let f = &self.faults;
        if f.hold_secs[0] > f.hold_secs[1] || f.gap_secs[0] > f.gap_secs[1] {
            bail!("faults: hold_secs and gap_secs are [min, max] with min <= max");
        }
        if self.network == Network::Loopback
            && let Some(k) = f.kinds.iter().find(|k| k.needs_netns())
        {
            bail!(
                "fault {} needs network = \"netns\" (loopback nodes cannot be partitioned)",
                k.name()
            );
        }
        let w = &self.workload;
        if w.replicas >= self.nodes {
            bail!(
                "workload.replicas ({}) must be below nodes ({}): each replica takes hostPort 8080, one per node, and a node must be free to take over",
                w.replicas,
                self.nodes
            );
        }
        if w.service && self.network != Network::Netns {
            bail!(
                "workload.service needs network = \"netns\": every replica listens on port 8080, which loopback nodes share"
            );
        }
        if w.service && self.runtime == RuntimeKind::Docker {
            bail!(
                "workload.service needs runtime = \"process\": Docker publishes host ports outside the nodes' namespaces"
            );
        }
        if f.kinds.iter().any(|k| k.is_intruder()) && self.runtime != RuntimeKind::Process {
            bail!(
                "intruder faults need runtime = \"process\": a removed node's old data dir would restart its containers in the one shared dockerd"
            );
        }
        if w.service && w.replicas == 0 {
            bail!("workload.service needs replicas > 0");
        }
        if w.statefulset > 0 && w.replicas == 0 {
            bail!("workload.statefulset needs replicas > 0 (it is applied with the Deployment)");
        }
        if !(0.0..=1.0).contains(&w.delete_ratio) {
            bail!("workload.delete_ratio must be within 0..1");
        }
        if w.request_timeout_ms < 100 {
            bail!("workload.request_timeout_ms must be at least 100");
        }
        Ok(())
    }

    /// The fault schedule for `duration_secs`, drawn from the seed: faults
    /// follow each other, each healed before the next, and none starts that
    /// could not be healed before the end.
    pub fn plan(&self) -> Vec<Planned> {
        let f = &self.faults;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        if f.kinds.is_empty() {
            return out;
        }
        let end_ms = self.duration_secs * 1000;
        let mut at_ms = f.first_at_secs * 1000;
        // Bounded: every round advances by at least one second.
        for round in 0..10_000 {
            let drawn = rng.random_range(0..f.kinds.len());
            let kind = f.kinds[if f.in_order {
                round % f.kinds.len()
            } else {
                drawn
            }];
            let hold_ms = rng.random_range(f.hold_secs[0] * 1000..=f.hold_secs[1] * 1000);
            let gap_ms = rng.random_range(f.gap_secs[0] * 1000..=f.gap_secs[1] * 1000);
            let mut order: Vec<usize> = (0..self.nodes).collect();
            order.shuffle(&mut rng);
            // A rolling restart holds every node in turn, so its length is
            // a guess: hold per node plus time to rejoin.
            let span = match kind {
                FaultKind::RollingRestart => (hold_ms + 10_000) * self.nodes as u64,
                // The host is replaced and rejoins before the window opens.
                FaultKind::IntruderRemovedLeader | FaultKind::IntruderRemovedFollower => {
                    hold_ms + 15_000
                }
                // The keyless agent's refusal comes first.
                FaultKind::IntruderUnkeyed => hold_ms + 2_000,
                _ => hold_ms,
            };
            if at_ms + span > end_ms {
                break;
            }
            out.push(Planned {
                at_ms,
                kind,
                hold_ms,
                order,
            });
            at_ms += span + gap_ms.max(1000);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(kinds: &str) -> Scenario {
        toml::from_str(&format!(
            "duration_secs = 120\nseed = 7\n[faults]\nkinds = [{kinds}]\n"
        ))
        .expect("parses")
    }

    #[test]
    fn same_seed_same_plan() {
        let s = scenario("\"kill-random\", \"pause-leader\"");
        let a = serde_json::to_string(&s.plan()).unwrap();
        let b = serde_json::to_string(&s.plan()).unwrap();
        assert_eq!(a, b);
        assert!(!s.plan().is_empty());
        let mut other = s.clone();
        other.seed = 8;
        assert_ne!(a, serde_json::to_string(&other.plan()).unwrap());
    }

    #[test]
    fn in_order_cycles_through_the_kinds() {
        let mut s = scenario("\"intruder-unkeyed\", \"intruder-removed-leader\"");
        s.faults.in_order = true;
        s.duration_secs = 600;
        let kinds: Vec<FaultKind> = s.plan().iter().map(|p| p.kind).collect();
        assert!(kinds.len() >= 4, "{kinds:?}");
        for (i, k) in kinds.iter().enumerate() {
            assert_eq!(*k, s.faults.kinds[i % 2]);
        }
    }

    #[test]
    fn plan_ends_before_duration() {
        let s = scenario("\"kill-leader\"");
        for p in s.plan() {
            assert!(p.at_ms + p.hold_ms <= 120_000);
        }
    }

    #[test]
    fn partitions_need_netns() {
        let mut s = scenario("\"partition-leader\"");
        s.network = Network::Loopback;
        assert!(s.validate().is_err());
        let mut s = scenario("\"intruder-unkeyed\"");
        assert!(s.validate().is_ok());
        s.network = Network::Loopback;
        assert!(
            s.validate().is_err(),
            "intruders live in namespaces of their own"
        );
    }

    #[test]
    fn shipped_scenarios_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("chaos/scenarios") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(!s.plan().is_empty(), "{} plans no fault", path.display());
                n += 1;
            }
        }
        assert!(n >= 8, "only {n} scenarios");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<Scenario>("duration_secs = 1\nnodez = 3\n").is_err());
    }
}
