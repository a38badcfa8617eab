//! The placement engine: pure, in memory, no store. [`Placer`] holds the
//! nodes and what is bound to each, and chooses a node for one pod at a time.
//!
//! A placement is a walk over the nodes from a rotating offset that applies
//! the filters (down, cordoned, node selector, node affinity, taints,
//! inter-pod rules ([`interpod`]), volumes, host port, pod count, cpu,
//! memory, ephemeral storage and extended resources ([`other`])) and
//! scores each node that passes, stopping once it has found
//! `max(100, 5% of nodes)` feasible ones, as Kubernetes'
//! `percentageOfNodesToScore` does: at 5,000 nodes a pod costs a few hundred
//! node checks, not 5,000. Only a pod that fits nowhere walks every node,
//! which is also what its reason counts need.

pub mod interpod;
pub mod other;
pub mod preempt;

pub use other::OtherResources;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::claims::{VolumeNodes, VolumeReason};
use crate::resource::ObjectKey;
use crate::resource::types::{NodeAffinity, Taint, TaintEffect, Toleration, untolerated};

/// A node as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFit {
    /// The Node object's name (what `spec.nodeName` names).
    pub name: String,
    /// Allocatable CPU in millicores.
    pub cpu_millis: u64,
    /// Allocatable memory in bytes.
    pub memory_bytes: u64,
    /// Most pods the node runs.
    pub max_pods: u32,
    /// The Node object's labels, matched against `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// Cordoned (`spec.unschedulable`): keeps its pods, takes no new ones.
    pub unschedulable: bool,
    /// `spec.taints`: pods that do not tolerate them stay off (or prefer to).
    pub taints: Vec<Taint>,
    /// Whether membership considers the node up.
    pub alive: bool,
    /// Allocatable ephemeral storage and extended resources.
    pub other: OtherResources,
}

/// What a pod asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNeeds {
    /// The pod.
    pub key: ObjectKey,
    /// Summed CPU requests of its containers, in millicores.
    pub cpu_millis: u64,
    /// Summed memory requests of its containers, in bytes.
    pub memory_bytes: u64,
    /// Labels the node must carry, all of them.
    pub node_selector: BTreeMap<String, String>,
    /// Host ports it publishes; no two pods on a node may share one.
    pub host_ports: Vec<u16>,
    /// The owner (ReplicaSet name) whose pods are spread softly over nodes.
    pub group: Option<String>,
    /// The nodes its persistent volume claims allow (`None`: any).
    pub volume_nodes: Option<VolumeNodes>,
    /// `spec.affinity.nodeAffinity`, shared: it is read for every node scored.
    pub node_affinity: Option<std::sync::Arc<NodeAffinity>>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Its labels, when the pass tracks pods for inter-pod rules.
    pub labels: Option<Arc<BTreeMap<String, String>>>,
    /// Its pod affinity, anti-affinity and spread constraints.
    pub inter: Option<Arc<interpod::InterPod>>,
    /// Its ephemeral storage and extended resource requests.
    pub other: OtherResources,
}

impl PodNeeds {
    /// A pod that asks for nothing and is bound by nothing: the base the
    /// callers fill in.
    pub fn nothing(key: ObjectKey) -> PodNeeds {
        PodNeeds {
            key,
            cpu_millis: 0,
            memory_bytes: 0,
            node_selector: BTreeMap::new(),
            host_ports: Vec::new(),
            group: None,
            volume_nodes: None,
            node_affinity: None,
            tolerations: Vec::new(),
            labels: None,
            inter: None,
            other: OtherResources::default(),
        }
    }
}

/// How the scheduler scores the nodes a pod fits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Most-allocated first: fill nodes up, so whole nodes stay free.
    #[default]
    Pack,
    /// Least-allocated first: balance the load over all nodes.
    Spread,
}

/// Why a pod fits on no node: how many nodes were considered and how many
/// failed each filter (each node counted once, for the first filter it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// Nodes considered.
    pub nodes: usize,
    /// Failing nodes by reason (`insufficient cpu`, `cordoned`, ...).
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes: ", self.nodes)?;
        if self.reasons.is_empty() {
            return f.write_str("no nodes");
        }
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (i, (reason, count)) in reasons.into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason} ({count})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

/// Filter outcomes, in the order the filters run; a node counts for the first.
const REASONS: [&str; 16] = [
    "node down",
    "cordoned",
    "node selector mismatch",
    "node affinity mismatch",
    "untolerated taint",
    "pod affinity mismatch",
    "pod anti-affinity conflict",
    "existing pods' anti-affinity",
    "topology spread constraint",
    "volume node affinity conflict",
    "insufficient volume capacity",
    "host port conflict",
    "too many pods",
    "insufficient cpu",
    "insufficient memory",
    "insufficient ephemeral-storage",
];
const DOWN: usize = 0;
const CORDONED: usize = 1;
const SELECTOR: usize = 2;
const AFFINITY: usize = 3;
const TAINT: usize = 4;
const POD_AFFINITY: usize = 5;
const POD_ANTI_AFFINITY: usize = 6;
const EXISTING_ANTI_AFFINITY: usize = 7;
const SPREAD: usize = 8;
const VOLUME_AFFINITY: usize = 9;
const VOLUME_CAPACITY: usize = 10;
const HOST_PORT: usize = 11;
const PODS: usize = 12;
const CPU: usize = 13;
const MEMORY: usize = 14;
const EPHEMERAL: usize = 15;

/// Fewest feasible nodes a placement scores before it stops looking
/// (Kubernetes' `minFeasibleNodesToFind`).
const MIN_FEASIBLE_TO_SCORE: usize = 100;
/// Share of the nodes, in percent, a placement scores in a large cluster.
const PERCENT_TO_SCORE: usize = 5;

/// Score taken off a node per pod of the same group it already holds.
/// A node's allocation score lies in [0, 2]; between two equal nodes the one
/// holding the group's pods differs by at most the pods' own share, which is
/// at most 1 whenever two of them fit on one node. A penalty above 1 thus
/// spreads replicas over equal nodes, while a node markedly emptier (Spread)
/// or fuller (Pack) may still win when it is the better fit overall.
const GROUP_PENALTY: f64 = 1.5;
/// Weight of the pod-count share in the score: small, it only separates
/// nodes that cpu and memory leave tied (pods that request nothing).
const POD_COUNT_WEIGHT: f64 = 0.05;
/// Score a node earns for meeting all of a pod's preferred node affinity
/// (in proportion to the weight it meets): above the allocation score's
/// range and the group penalty, so a preference wins unless resources or
/// spreading differ a lot, as Kubernetes weighs NodeAffinity twice.
const AFFINITY_WEIGHT: f64 = 3.0;
/// Score taken off a node per PreferNoSchedule taint the pod does not tolerate.
const SOFT_TAINT_PENALTY: f64 = 1.0;
/// The effects that keep a pod off a node it does not tolerate.
const HARD_TAINTS: [TaintEffect; 2] = [TaintEffect::NoSchedule, TaintEffect::NoExecute];

/// Per-node state the hot loop reads, one cache line per node.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Slot {
    cpu_alloc: u64,
    cpu_used: u64,
    mem_alloc: u64,
    mem_used: u64,
    /// 1 / allocatable, 0 when nothing is allocatable: scoring multiplies.
    cpu_inv: f64,
    mem_inv: f64,
    /// Only a tie-breaker's weight rides on it: f32 keeps the slot in 64 bytes.
    pods_inv: f32,
    max_pods: u32,
    pods_used: u32,
    /// `Some(DOWN)` or `Some(CORDONED)` when the node takes no pods at all.
    gate: Option<u8>,
    /// Whether any bound pod holds a host port here (skips the port check).
    has_ports: bool,
    /// Whether the node has taints (skips the toleration check).
    has_taints: bool,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// Cluster state for placement: the nodes and what is already bound to each.
#[derive(Debug)]
pub struct Placer {
    strategy: Strategy,
    names: Vec<String>,
    index: HashMap<String, usize>,
    slots: Vec<Slot>,
    labels: Vec<BTreeMap<String, String>>,
    taints: Vec<Vec<Taint>>,
    ports: Vec<Vec<u16>>,
    groups: HashMap<String, usize>,
    /// Per group, the nodes holding its pods and how many: about as many
    /// entries as replicas, where a (group, node) hash map would be one
    /// cache miss per node scored.
    group_nodes: Vec<Vec<(u32, u32)>>,
    /// Per node, the placed pod's group's pods there; filled from
    /// `group_nodes` for one placement and cleared after it.
    same_group: Vec<u32>,
    next_start: usize,
    to_score: usize,
    /// Whether any node has taints.
    any_taints: bool,
    /// The pods placed so far, kept only when some pod has inter-pod rules.
    tracked: Option<interpod::Tracked>,
    /// Per node, allocatable ephemeral storage and extended resources.
    other_alloc: Vec<OtherResources>,
    /// Per node, what bound pods request of them.
    other_used: Vec<OtherResources>,
}

impl Placer {
    /// A placer over these nodes (a repeated name keeps its first entry),
    /// nothing bound yet.
    pub fn new(nodes: Vec<NodeFit>, strategy: Strategy) -> Placer {
        let mut p = Placer {
            strategy,
            names: Vec::with_capacity(nodes.len()),
            index: HashMap::with_capacity(nodes.len()),
            slots: Vec::with_capacity(nodes.len()),
            labels: Vec::with_capacity(nodes.len()),
            taints: Vec::with_capacity(nodes.len()),
            ports: Vec::with_capacity(nodes.len()),
            groups: HashMap::new(),
            group_nodes: Vec::new(),
            same_group: Vec::new(),
            next_start: 0,
            to_score: 0,
            any_taints: false,
            tracked: None,
            other_alloc: Vec::with_capacity(nodes.len()),
            other_used: Vec::with_capacity(nodes.len()),
        };
        let inv = |v: u64| if v == 0 { 0.0 } else { 1.0 / v as f64 };
        let inv32 = |v: u32| if v == 0 { 0.0 } else { 1.0 / v as f32 };
        for n in nodes {
            if p.index.contains_key(&n.name) {
                continue;
            }
            p.index.insert(n.name.clone(), p.names.len());
            p.slots.push(Slot {
                cpu_alloc: n.cpu_millis,
                mem_alloc: n.memory_bytes,
                cpu_inv: inv(n.cpu_millis),
                mem_inv: inv(n.memory_bytes),
                pods_inv: inv32(n.max_pods),
                max_pods: n.max_pods,
                gate: if !n.alive {
                    Some(DOWN as u8)
                } else if n.unschedulable {
                    Some(CORDONED as u8)
                } else {
                    None
                },
                has_taints: !n.taints.is_empty(),
                ..Slot::default()
            });
            p.names.push(n.name);
            p.labels.push(n.labels);
            p.taints.push(n.taints);
            p.ports.push(Vec::new());
            p.other_alloc.push(n.other);
            p.other_used.push(OtherResources::default());
        }
        p.same_group = vec![0; p.names.len()];
        p.any_taints = p.slots.iter().any(|s| s.has_taints);
        p.to_score = MIN_FEASIBLE_TO_SCORE.max(p.names.len() * PERCENT_TO_SCORE / 100);
        p
    }

    /// Keeps every pod accounted from now on (namespace, labels, node), as
    /// pod affinity, anti-affinity and spread constraints need; call it
    /// before accounting any pod, when some pod of the pass has such rules.
    pub fn track_pods(&mut self) {
        self.tracked.get_or_insert_with(Default::default);
    }

    /// Accounts a pod already bound to `node` (and not terminal). A node
    /// this placer does not know is ignored: its pods cannot crowd anything.
    pub fn add_bound(&mut self, node: &str, pod: &PodNeeds) {
        if let Some(&i) = self.index.get(node) {
            self.account(i, pod);
        }
    }

    /// Takes back what [`Placer::add_bound`] or [`Placer::place`] accounted
    /// (the pod was deleted or finished), so the room is free again.
    pub fn remove_bound(&mut self, node: &str, pod: &PodNeeds) {
        let Some(&i) = self.index.get(node) else {
            return;
        };
        if let Some(t) = &mut self.tracked {
            t.remove(&pod.key);
        }
        let s = &mut self.slots[i];
        s.cpu_used = s.cpu_used.saturating_sub(pod.cpu_millis);
        s.mem_used = s.mem_used.saturating_sub(pod.memory_bytes);
        s.pods_used = s.pods_used.saturating_sub(1);
        let ports = &mut self.ports[i];
        for p in &pod.host_ports {
            if let Some(at) = ports.iter().position(|q| q == p) {
                ports.swap_remove(at);
            }
        }
        s.has_ports = !ports.is_empty();
        self.account_other(i, pod, false);
        if let Some(&g) = pod.group.as_ref().and_then(|g| self.groups.get(g)) {
            let list = &mut self.group_nodes[g];
            if let Some(at) = list.iter().position(|(n, _)| *n as usize == i) {
                list[at].1 -= 1;
                if list[at].1 == 0 {
                    list.swap_remove(at);
                }
            }
        }
    }

    /// Chooses a node for `pod`, accounts the pod on it and returns its name;
    /// or says why no node fits.
    pub fn place(&mut self, pod: &PodNeeds) -> Result<String, Unschedulable> {
        // Affinity and taints are checked in a loop of their own: most pods
        // have neither, and most clusters no taints, and even two
        // predictable branches per node cost the plain loop an eighth of
        // its throughput (inlined checks cost a third).
        let rules = self.inter_rules(pod);
        if pod.node_affinity.is_some()
            || self.any_taints
            || rules.is_some()
            || !pod.other.is_empty()
        {
            self.place_with::<true>(pod, rules.as_ref())
        } else {
            self.place_with::<false>(pod, None)
        }
    }

    /// The inter-pod rules that apply to `pod` now, when pods are tracked.
    fn inter_rules(&mut self, pod: &PodNeeds) -> Option<interpod::Rules> {
        let tracked = self.tracked.as_mut()?;
        let empty = BTreeMap::new();
        let view = interpod::NodeView {
            names: &self.names,
            labels: &self.labels,
            taints: &self.taints,
        };
        let placing = interpod::PlacementPod {
            namespace: &pod.key.namespace,
            labels: pod.labels.as_deref().unwrap_or(&empty),
            rules: pod.inter.as_deref(),
            node_selector: &pod.node_selector,
            node_affinity: pod.node_affinity.as_deref(),
            tolerations: &pod.tolerations,
        };
        tracked.rules_for(&placing, &view)
    }

    fn place_with<const CONSTRAINED: bool>(
        &mut self,
        pod: &PodNeeds,
        rules: Option<&interpod::Rules>,
    ) -> Result<String, Unschedulable> {
        let n = self.slots.len();
        if n == 0 {
            return Err(Unschedulable {
                nodes: 0,
                reasons: BTreeMap::new(),
            });
        }
        // Looked up once per pod, not per node; a group with no pods yet
        // cannot penalise anything, so its first pod skips the marking.
        let group = pod
            .group
            .as_ref()
            .and_then(|g| self.groups.get(g).copied())
            .filter(|g| !self.group_nodes[*g].is_empty());
        if let Some(g) = group {
            for &(node, count) in &self.group_nodes[g] {
                self.same_group[node as usize] = count;
            }
        }
        let mut failed = [0usize; REASONS.len()];
        // One count per extended resource the pod requests, in name order.
        let mut failed_other = vec![
            0usize;
            if CONSTRAINED {
                pod.other.extended.len()
            } else {
                0
            }
        ];
        let mut feasible = 0usize;
        let mut best: Option<(usize, f64)> = None;
        let start = self.next_start;
        let mut walked = n;
        for step in 0..n {
            let i = if start + step < n {
                start + step
            } else {
                start + step - n
            };
            if let Some(reason) = self.filter(i, pod) {
                failed[reason] += 1;
                continue;
            }
            if CONSTRAINED && let Some(reason) = self.constraints(i, pod, rules) {
                match reason.checked_sub(REASONS.len()) {
                    None => failed[reason] += 1,
                    Some(k) => failed_other[k] += 1,
                }
                continue;
            }
            let mut score = self.score(i, pod) - GROUP_PENALTY * f64::from(self.same_group[i]);
            if CONSTRAINED {
                score += self.preferences(i, pod);
                if let Some(r) = rules {
                    score += r.score(i);
                }
            }
            // Strictly greater: among equals the first walked wins, and the
            // rotating start makes that a different node for the next pod.
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i, score));
            }
            feasible += 1;
            if feasible >= self.to_score {
                walked = step + 1;
                break;
            }
        }
        if let Some(g) = group {
            for &(node, _) in &self.group_nodes[g] {
                self.same_group[node as usize] = 0;
            }
        }
        // As Kubernetes does: the next pod starts where this one stopped, so
        // the sampled nodes rotate through the whole cluster.
        self.next_start = (start + walked) % n;
        match best {
            Some((i, _)) => {
                self.account(i, pod);
                Ok(self.names[i].clone())
            }
            None => Err(Unschedulable {
                nodes: n,
                reasons: REASONS
                    .iter()
                    .zip(failed)
                    .filter(|(_, c)| *c > 0)
                    .map(|(r, c)| (r.to_string(), c))
                    .chain(
                        failed_other
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| **c > 0)
                            .map(|(k, c)| (other::reason_text(pod, other::extended_reason(k)), *c)),
                    )
                    .collect(),
            }),
        }
    }

    /// The first filter node `i` fails for `pod`, if any.
    #[inline(always)]
    fn filter(&self, i: usize, pod: &PodNeeds) -> Option<usize> {
        let s = &self.slots[i];
        if let Some(g) = s.gate {
            return Some(usize::from(g));
        }
        if !pod.node_selector.is_empty() {
            let labels = &self.labels[i];
            if !pod
                .node_selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
            {
                return Some(SELECTOR);
            }
        }
        if let Some(v) = &pod.volume_nodes
            && !v.allowed.contains(&self.names[i])
        {
            return Some(match v.reason {
                VolumeReason::Affinity => VOLUME_AFFINITY,
                VolumeReason::Capacity => VOLUME_CAPACITY,
            });
        }
        if s.has_ports && pod.host_ports.iter().any(|p| self.ports[i].contains(p)) {
            return Some(HOST_PORT);
        }
        if s.pods_used >= s.max_pods {
            return Some(PODS);
        }
        if pod.cpu_millis > s.cpu_alloc.saturating_sub(s.cpu_used) {
            return Some(CPU);
        }
        if pod.memory_bytes > s.mem_alloc.saturating_sub(s.mem_used) {
            return Some(MEMORY);
        }
        None
    }

    /// Whether node `i` fails the pod's required node affinity, has a
    /// taint the pod does not tolerate, breaks an inter-pod rule or lacks
    /// ephemeral storage or an extended resource; the reason if so (past
    /// [`REASONS`] for an extended resource, see [`other::extended_reason`]).
    #[inline(never)]
    fn constraints(
        &self,
        i: usize,
        pod: &PodNeeds,
        rules: Option<&interpod::Rules>,
    ) -> Option<usize> {
        if let Some(a) = &pod.node_affinity
            && !a.required_matches(&self.names[i], &self.labels[i])
        {
            return Some(AFFINITY);
        }
        if self.slots[i].has_taints
            && untolerated(&self.taints[i], &pod.tolerations, &HARD_TAINTS).is_some()
        {
            return Some(TAINT);
        }
        if let Some(reason) = rules.and_then(|r| r.refuses(i)) {
            return Some(match reason {
                interpod::Reason::Affinity => POD_AFFINITY,
                interpod::Reason::AntiAffinity => POD_ANTI_AFFINITY,
                interpod::Reason::ExistingAntiAffinity => EXISTING_ANTI_AFFINITY,
                interpod::Reason::Spread => SPREAD,
            });
        }
        if pod.other.is_empty() {
            return None;
        }
        self.other_lacks(i, pod)
    }

    /// What node `i` earns or loses by the pod's preferences: its preferred
    /// node affinity, and PreferNoSchedule taints it does not tolerate.
    #[inline(never)]
    fn preferences(&self, i: usize, pod: &PodNeeds) -> f64 {
        let mut extra = 0.0;
        if let Some(a) = &pod.node_affinity {
            extra += AFFINITY_WEIGHT * a.preference(&self.names[i], &self.labels[i]);
        }
        if self.slots[i].has_taints {
            let soft = self.taints[i]
                .iter()
                .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
                .filter(|t| !pod.tolerations.iter().any(|tol| tol.tolerates(t)))
                .count();
            extra -= SOFT_TAINT_PENALTY * soft as f64;
        }
        extra
    }

    /// Node `i`'s score for `pod` (higher is better), before group spreading.
    #[inline(always)]
    fn score(&self, i: usize, pod: &PodNeeds) -> f64 {
        let s = &self.slots[i];
        let cpu = (s.cpu_used + pod.cpu_millis) as f64 * s.cpu_inv;
        let mem = (s.mem_used + pod.memory_bytes) as f64 * s.mem_inv;
        let pods = f64::from((s.pods_used + 1) as f32 * s.pods_inv);
        let load = cpu + mem + POD_COUNT_WEIGHT * pods;
        match self.strategy {
            Strategy::Pack => load,
            Strategy::Spread => -load,
        }
    }

    fn account(&mut self, i: usize, pod: &PodNeeds) {
        self.account_other(i, pod, true);
        if let Some(t) = &mut self.tracked {
            let labels = pod.labels.clone().unwrap_or_default();
            t.add(
                &pod.key,
                u32::try_from(i).unwrap_or(u32::MAX),
                labels,
                pod.inter.as_ref(),
            );
        }
        let s = &mut self.slots[i];
        s.cpu_used = s.cpu_used.saturating_add(pod.cpu_millis);
        s.mem_used = s.mem_used.saturating_add(pod.memory_bytes);
        s.pods_used = s.pods_used.saturating_add(1);
        if !pod.host_ports.is_empty() {
            self.ports[i].extend_from_slice(&pod.host_ports);
            s.has_ports = true;
        }
        if let Some(name) = &pod.group {
            let g = match self.groups.get(name) {
                Some(g) => *g,
                None => {
                    self.groups.insert(name.clone(), self.group_nodes.len());
                    self.group_nodes.push(Vec::new());
                    self.group_nodes.len() - 1
                }
            };
            let list = &mut self.group_nodes[g];
            match list.iter_mut().find(|(n, _)| *n as usize == i) {
                Some((_, c)) => *c += 1,
                None => list.push((i as u32, 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests;
