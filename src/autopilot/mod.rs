//! autopilot: keeps Raft membership in step with gossip membership.
//!
//! Getting in: `--dev` initialises a one-node cluster; `--bootstrap-expect N`
//! waits until gossip shows N live nodes none of which is in a cluster yet,
//! and the lowest PeerId among them initialises Raft with all of them; any
//! other node simply gossips and waits for the leader to add it.
//!
//! On the leader, every tick (and on every membership change):
//! - a Raft member that is down and whose name now belongs to a different
//!   live PeerId (a host that came back with an empty data dir) is removed:
//!   no phantom voter; a live member keeps its name, and another identity
//!   under it (an old disk booted again) is not added;
//! - a member that left on purpose is removed at once;
//! - every live member becomes at least a learner;
//! - voters are kept at an odd target: the largest odd number no greater
//!   than the live members and `raft.voters`;
//! - a voter down for longer than `raft.dead_voter_grace_ms` is replaced by
//!   a live, caught-up learner (and kept if there is none: removing it would
//!   not make the quorum any easier to reach);
//! - a learner down for a long while is removed.
//!
//! The loop is level-triggered: it compares what gossip says with what
//! Raft says and makes one change at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use openraft::ChangeMembers;
use tracing::{debug, info, warn};

use crate::membership::{MemberState, MemberView, Membership, RaftRole};
use crate::resource::time::now_secs;
use crate::store::{NodeId, NodeInfo, Store};

const TICK: Duration = Duration::from_millis(500);
/// A learner that far behind the leader's log is not promoted yet.
const CAUGHT_UP_ENTRIES: u64 = 1000;

/// How this node should come into a cluster, and the voter policy.
#[derive(Debug, Clone)]
pub struct AutopilotConfig {
    /// Initialise a one-node cluster.
    pub dev: bool,
    /// Wait for this many nodes before initialising.
    pub bootstrap_expect: Option<usize>,
    /// Most voters kept (odd).
    pub voters: usize,
    /// How long a voter may be down before it is replaced.
    pub dead_voter_grace: Duration,
}

/// Starts the autopilot loop.
pub fn spawn(
    store: Store,
    membership: Membership,
    me: NodeInfo,
    cfg: AutopilotConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store, membership, me, cfg))
}

/// Raft metadata of a member, from its gossip metadata.
pub fn node_info(v: &MemberView) -> Option<NodeInfo> {
    let m = v.meta.as_ref()?;
    Some(NodeInfo {
        name: m.name.clone(),
        peer_id: m.peer_id.clone(),
        p2p_addrs: m.p2p_addrs.clone(),
        api_addr: m.api_addr.clone(),
    })
}

async fn run(store: Store, membership: Membership, me: NodeInfo, cfg: AutopilotConfig) {
    let mut changes = membership.changes();
    let mut last_note = String::new();
    let mut missing_since: HashMap<NodeId, Instant> = HashMap::new();
    loop {
        let view = membership.members();
        let note = match tick(&store, &view, &me, &cfg, &mut missing_since).await {
            Ok(()) => String::new(),
            Err(msg) => msg,
        };
        if !note.is_empty() && note != last_note {
            info!("autopilot: {note}");
        }
        last_note = note;
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            r = changes.changed() => if r.is_err() { return },
        }
    }
}

async fn tick(
    store: &Store,
    view: &[MemberView],
    me: &NodeInfo,
    cfg: &AutopilotConfig,
    missing_since: &mut HashMap<NodeId, Instant>,
) -> Result<(), String> {
    let initialized = store
        .raft()
        .is_initialized()
        .await
        .map_err(|e| e.to_string())?;
    if !initialized {
        return bootstrap(store, view, me, cfg).await;
    }
    if store.leader().map(|(id, _)| id) != Some(store.node_id()) {
        return Ok(());
    }
    lead(store, view, me, cfg, missing_since).await
}

async fn bootstrap(
    store: &Store,
    view: &[MemberView],
    me: &NodeInfo,
    cfg: &AutopilotConfig,
) -> Result<(), String> {
    if cfg.dev {
        info!("--dev: initialising a one-node cluster");
        return store
            .initialize(vec![me.clone()])
            .await
            .map_err(|e| e.to_string());
    }
    let Some(n) = cfg.bootstrap_expect else {
        return Err("waiting for the cluster's leader to add this node".into());
    };
    let up: Vec<&MemberView> = view
        .iter()
        .filter(|v| v.is_up() && v.meta.as_ref().is_some_and(|m| !m.leaving))
        .collect();
    if let Some(member) = up
        .iter()
        .find(|v| !v.is_self && v.meta.as_ref().is_some_and(|m| m.raft_role.in_cluster()))
    {
        return Err(format!(
            "{} is already in a cluster; waiting to be added to it",
            member.name().unwrap_or("a member")
        ));
    }
    if up.len() < n {
        return Err(format!(
            "bootstrap: waiting for {n} nodes, {} seen",
            up.len()
        ));
    }
    let lowest = up.iter().map(|v| v.peer_id.as_str()).min().unwrap_or("");
    if lowest != me.peer_id {
        return Err(format!(
            "bootstrap: {n} nodes seen; the lowest PeerId initialises the cluster"
        ));
    }
    let members: Vec<NodeInfo> = up.iter().filter_map(|v| node_info(v)).collect();
    info!(
        nodes = members.len(),
        "bootstrap: initialising Raft as the lowest PeerId"
    );
    store.initialize(members).await.map_err(|e| e.to_string())
}

/// The largest odd number no greater than `n` (at least 1).
pub fn odd_target(live: usize, max: usize) -> usize {
    let t = live.min(max).max(1);
    if t.is_multiple_of(2) { t - 1 } else { t }
}

/// How a Raft member looks through gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    Leaving,
    Down(Duration),
}

/// What the leader sees when it decides: Raft's membership and progress
/// and gossip's view. `lead` gathers it; [`plan`] decides on it alone.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The leader's own Raft id.
    pub my_id: NodeId,
    /// The leader's own PeerId.
    pub my_peer: &'a str,
    /// Raft's voters.
    pub voters: BTreeSet<NodeId>,
    /// Every Raft member (voters and learners) with its metadata.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Gossip's members, the leader included.
    pub view: &'a [MemberView],
    /// Raft members gossip does not know: how long since the leader noticed.
    pub unknown_for: HashMap<NodeId, Duration>,
    /// Now, in seconds since the epoch (gossip's `since` is in those).
    pub now_secs: u64,
    /// The leader's last log index.
    pub last_index: u64,
    /// Each member's log index as replicated by the leader.
    pub matched: HashMap<NodeId, u64>,
}

/// The one membership change a tick makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A live member that is not in Raft yet joins as a learner.
    AddLearner { id: NodeId, info: NodeInfo },
    /// A member's addresses changed: record them.
    UpdateNode {
        id: NodeId,
        was: NodeInfo,
        info: NodeInfo,
    },
    /// A member goes, for the reason given.
    Remove {
        id: NodeId,
        node: NodeInfo,
        voter: bool,
        why: &'static str,
    },
    /// The leader is leaving: it takes itself out of the voters and steps
    /// down once that is committed.
    LeaveVoters { id: NodeId },
    /// The voters become `to` (`target`: the odd size aimed at).
    SetVoters {
        from: BTreeSet<NodeId>,
        to: BTreeSet<NodeId>,
        target: usize,
    },
}

/// Decides the next membership change, if any: the steps of the module
/// comment, in order, the first that has something to do winning.
pub fn plan(o: &Observed<'_>, cfg: &AutopilotConfig) -> Option<Action> {
    let by_peer: HashMap<&str, &MemberView> =
        o.view.iter().map(|v| (v.peer_id.as_str(), v)).collect();
    let health = |id: &NodeId, n: &NodeInfo| -> Health {
        match by_peer.get(n.peer_id.as_str()) {
            Some(v) if v.meta.as_ref().is_some_and(|m| m.leaving) => Health::Leaving,
            Some(v) if v.state == MemberState::Left => Health::Leaving,
            Some(v) if v.is_up() => Health::Up,
            Some(v) => Health::Down(Duration::from_secs(o.now_secs.saturating_sub(v.since))),
            None => Health::Down(o.unknown_for.get(id).copied().unwrap_or_default()),
        }
    };

    // 1. A name now held by another live PeerId: the old identity is gone for good.
    // 2. Members that left on purpose go at once.
    for (id, n) in &o.nodes {
        if *id == o.my_id {
            continue;
        }
        // Only a member that is gone is replaced: a live one keeps its name
        // against an old identity booted again from an old disk (that
        // evicted the new host from the voters, then added and removed the
        // old identity twice a second).
        let replaced = health(id, n) != Health::Up
            && o.view
                .iter()
                .any(|v| v.is_up() && v.name() == Some(n.name.as_str()) && v.peer_id != n.peer_id);
        if replaced || health(id, n) == Health::Leaving {
            return Some(Action::Remove {
                id: *id,
                node: n.clone(),
                voter: o.voters.contains(id),
                why: if replaced {
                    "its name came back under a new identity (empty data dir)"
                } else {
                    "it left"
                },
            });
        }
    }
    // The leader itself leaving: hand over by removing itself from the voters.
    let me_leaving = by_peer
        .get(o.my_peer)
        .and_then(|v| v.meta.as_ref())
        .is_some_and(|m| m.leaving);
    if me_leaving && o.voters.contains(&o.my_id) && o.voters.len() > 1 {
        return Some(Action::LeaveVoters { id: o.my_id });
    }

    // 3. Every live member is at least a learner.
    for v in o.view.iter().filter(|v| v.is_up()) {
        let Some(info) = node_info(v) else { continue };
        if v.meta.as_ref().is_some_and(|m| m.leaving) {
            continue;
        }
        let id = info.node_id();
        // A second identity under the name of a member (live, or step 1
        // would have removed it) stays out until that member is gone.
        let name_taken = o
            .nodes
            .values()
            .any(|m| m.name == info.name && m.peer_id != info.peer_id);
        match o.nodes.get(&id) {
            None if name_taken => {}
            None => return Some(Action::AddLearner { id, info }),
            // Same identity, new addresses (a restart on another address, a
            // DHCP change): record them once. add_learner leaves a known
            // node's info as it was, so retrying it looped forever, writing
            // two entries a second.
            Some(stored) if *stored != info => {
                return Some(Action::UpdateNode {
                    id,
                    was: stored.clone(),
                    info,
                });
            }
            Some(_) => {}
        }
    }

    // 4. Voters at the odd target, dead voters replaced after the grace.
    let live_members = o
        .view
        .iter()
        .filter(|v| v.is_up() && !v.meta.as_ref().is_some_and(|m| m.leaving))
        .count();
    let target = odd_target(live_members, cfg.voters);
    let caught_up = |id: &NodeId| {
        o.matched
            .get(id)
            .is_some_and(|i| i + CAUGHT_UP_ENTRIES >= o.last_index)
    };
    let mut live_voters = BTreeSet::new();
    let mut waiting = BTreeSet::new();
    let mut dead = BTreeSet::new();
    for id in &o.voters {
        let Some(n) = o.nodes.get(id) else { continue };
        match health(id, n) {
            Health::Up => {
                live_voters.insert(*id);
            }
            Health::Down(d) if d < cfg.dead_voter_grace => {
                waiting.insert(*id);
            }
            _ => {
                dead.insert(*id);
            }
        }
    }
    let mut candidates: Vec<(String, NodeId)> = o
        .nodes
        .iter()
        .filter(|(id, n)| !o.voters.contains(id) && health(id, n) == Health::Up && caught_up(id))
        .map(|(id, n)| (n.name.clone(), *id))
        .collect();
    candidates.sort();
    let max = odd_target(usize::MAX, cfg.voters);
    let mut desired = live_voters;
    desired.extend(waiting.iter().copied());
    // More voters than configured (the setting shrank): demote, never ourselves.
    while desired.len() > max {
        let Some(extra) = desired.iter().rev().find(|id| **id != o.my_id).copied() else {
            break;
        };
        desired.remove(&extra);
    }
    // Deaths never shrink the voter set; growth and replacement aim at an odd size.
    let current = o.voters.len().min(max);
    let mut want = target.max(current);
    if want.is_multiple_of(2) {
        want -= 1;
    }
    let mut candidates = candidates.into_iter();
    while desired.len() < want {
        let Some((_, id)) = candidates.next() else {
            break;
        };
        desired.insert(id);
    }
    // A dead voter goes only when someone took its place: with nobody to
    // promote, removing it would not make a quorum any easier to reach.
    for d in &dead {
        if desired.len() < current {
            desired.insert(*d);
        }
    }
    if desired != o.voters && !desired.is_empty() {
        return Some(Action::SetVoters {
            from: o.voters.clone(),
            to: desired,
            target,
        });
    }

    // 5. Learners down for long are dropped (a node that comes back is re-added).
    let learner_grace = (cfg.dead_voter_grace * 6).max(Duration::from_secs(60));
    for (id, n) in &o.nodes {
        if o.voters.contains(id) || *id == o.my_id {
            continue;
        }
        if let Health::Down(d) = health(id, n)
            && d >= learner_grace
        {
            return Some(Action::Remove {
                id: *id,
                node: n.clone(),
                voter: false,
                why: "it has been down for long",
            });
        }
    }
    None
}

/// Gathers what the leader sees, asks [`plan`], and makes the change.
async fn lead(
    store: &Store,
    view: &[MemberView],
    me: &NodeInfo,
    cfg: &AutopilotConfig,
    missing_since: &mut HashMap<NodeId, Instant>,
) -> Result<(), String> {
    let metrics = store.metrics();
    let membership = metrics.membership_config.membership().clone();
    let nodes: BTreeMap<NodeId, NodeInfo> =
        membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    // Members gossip has never heard of are timed from when we noticed.
    let known: HashSet<&str> = view.iter().map(|v| v.peer_id.as_str()).collect();
    for (id, n) in &nodes {
        if known.contains(n.peer_id.as_str()) {
            missing_since.remove(id);
        } else {
            missing_since.entry(*id).or_insert_with(Instant::now);
        }
    }
    missing_since.retain(|id, _| nodes.contains_key(id));
    let observed = Observed {
        my_id: store.node_id(),
        my_peer: &me.peer_id,
        voters: membership.voter_ids().collect(),
        nodes,
        view,
        unknown_for: missing_since
            .iter()
            .map(|(id, t)| (*id, t.elapsed()))
            .collect(),
        now_secs: now_secs(),
        last_index: metrics.last_log_index.unwrap_or(0),
        matched: metrics
            .replication
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, l)| l.map(|l| (id, l.index)))
            .collect(),
    };
    let Some(action) = plan(&observed, cfg) else {
        return Ok(());
    };
    execute(store, action, &observed.nodes).await
}

/// Makes one planned change through Raft, logging and counting it.
async fn execute(
    store: &Store,
    action: Action,
    nodes: &BTreeMap<NodeId, NodeInfo>,
) -> Result<(), String> {
    match action {
        Action::AddLearner { id, info } => {
            info!(node = %info, "adding as learner");
            ::metrics::counter!(metrics::ACTIONS_TOTAL, "action" => "add_learner").increment(1);
            store
                .raft()
                .add_learner(id, info, false)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Action::UpdateNode { id, was, info } => {
            info!(node = %info, was = ?was.p2p_addrs, now = ?info.p2p_addrs, "updating a member's addresses");
            ::metrics::counter!(metrics::ACTIONS_TOTAL, "action" => "update_node").increment(1);
            change(
                store,
                ChangeMembers::SetNodes(BTreeMap::from([(id, info)])),
                true,
            )
            .await
        }
        Action::Remove {
            id,
            node,
            voter,
            why,
        } => remove(store, id, &node, voter, why).await,
        Action::LeaveVoters { id } => {
            info!("leaving: removing this node from the voters so another can lead");
            change(
                store,
                ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                true,
            )
            .await
        }
        Action::SetVoters { from, to, target } => {
            let names = |s: &BTreeSet<NodeId>| -> Vec<String> {
                s.iter()
                    .map(|id| {
                        nodes
                            .get(id)
                            .map(|n| n.name.clone())
                            .unwrap_or(id.to_string())
                    })
                    .collect()
            };
            info!(from = ?names(&from), to = ?names(&to), target, "changing voters");
            ::metrics::counter!(metrics::ACTIONS_TOTAL, "action" => "change_voters").increment(1);
            change(store, ChangeMembers::ReplaceAllVoters(to), true).await
        }
    }
}

async fn remove(
    store: &Store,
    id: NodeId,
    n: &NodeInfo,
    voter: bool,
    why: &str,
) -> Result<(), String> {
    info!(node = %n, "removing from the cluster: {why}");
    ::metrics::counter!(metrics::ACTIONS_TOTAL, "action" => "remove").increment(1);
    if voter {
        change(
            store,
            ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            false,
        )
        .await
    } else {
        change(
            store,
            ChangeMembers::RemoveNodes(BTreeSet::from([id])),
            false,
        )
        .await
    }
}

async fn change(
    store: &Store,
    c: ChangeMembers<NodeId, NodeInfo>,
    retain: bool,
) -> Result<(), String> {
    match store.raft().change_membership(c, retain).await {
        Ok(_) => Ok(()),
        Err(e) => {
            debug!("membership change not made (retried next tick): {e}");
            Err(format!("membership change pending: {e}"))
        }
    }
}

/// This node's Raft role as gossip publishes it.
pub fn raft_role(store: &Store) -> RaftRole {
    let m = store.metrics();
    let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
    let in_cluster = m
        .membership_config
        .membership()
        .get_node(&store.node_id())
        .is_some();
    if m.current_leader == Some(store.node_id()) {
        RaftRole::Leader
    } else if voters.contains(&store.node_id()) {
        RaftRole::Voter
    } else if in_cluster {
        RaftRole::Learner
    } else {
        RaftRole::None
    }
}

/// Keeps this node's gossip metadata's Raft role current.
pub fn spawn_role_publisher(store: Store, membership: Membership) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = store.raft().metrics();
        loop {
            let role = raft_role(&store);
            membership.update_meta(|m| {
                if m.raft_role != role {
                    m.raft_role = role;
                }
            });
            tokio::select! {
                r = metrics.changed() => if r.is_err() { warn!("raft metrics ended"); return },
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    })
}

pub mod metrics;
#[cfg(test)]
mod tests;
