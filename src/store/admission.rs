//! Who may send this node Raft and store RPCs: the nodes of its Raft
//! configuration, by PeerId. The cluster key keeps strangers off the
//! transport; this keeps out keyed nodes that are not (or no longer) members,
//! such as a removed node that still campaigns or appends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::{NodeId, NodeInfo, ShoalRaft, StoreError, node_id_of};

/// How long a vouched-for sender stays admitted without asking again.
const VOUCH_TTL: Duration = Duration::from_secs(30);
/// How long a refused sender is refused without asking again, so a stranger
/// sending RPCs in a loop cannot make this node query its peers in a loop.
const REFUSE_TTL: Duration = Duration::from_secs(2);
/// How long to wait for peers to vouch.
const VOUCH_TIMEOUT: Duration = Duration::from_secs(1);
/// Remembered answers, at most; older ones are dropped first.
const MAX_REMEMBERED: usize = 1024;

/// What this node's own configuration says of a sender.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A node of the latest configuration.
    Member,
    /// This node has no configuration yet: the first append of the leader
    /// that adds it comes from a node it cannot know.
    Uninitialised,
    /// Not in the configuration: admitted only if one of these voters lists
    /// it (this node may lag behind the configuration that added it).
    Unknown(Vec<NodeInfo>),
}

/// The pure part: a sender against this node's latest configuration.
pub(super) fn judge<'a>(
    me: NodeId,
    from: NodeId,
    nodes: impl IntoIterator<Item = (&'a NodeId, &'a NodeInfo)>,
    voters: &[NodeId],
) -> Verdict {
    let nodes: Vec<(&NodeId, &NodeInfo)> = nodes.into_iter().collect();
    if nodes.is_empty() {
        return Verdict::Uninitialised;
    }
    if nodes.iter().any(|(id, _)| **id == from) {
        return Verdict::Member;
    }
    Verdict::Unknown(
        nodes
            .into_iter()
            .filter(|(id, _)| **id != me && voters.contains(id))
            .map(|(_, n)| n.clone())
            .collect(),
    )
}

/// Asks a voter which nodes its configuration holds: the transport's client
/// side, handed in by the store so that this module does not depend on the
/// network module (whose handlers use this one).
pub(super) type MembersOf = std::sync::Arc<
    dyn Fn(NodeInfo) -> futures::future::BoxFuture<'static, Result<Vec<NodeId>, StoreError>>
        + Send
        + Sync,
>;

/// Admits or refuses senders; shared by the Raft and store handlers.
pub(super) struct Admission {
    raft: ShoalRaft,
    me: NodeId,
    members_of: MembersOf,
    remembered: std::sync::Mutex<HashMap<NodeId, (bool, Instant)>>,
}

impl Admission {
    /// Admission against `raft`'s configuration, asking peers with `members_of`.
    pub(super) fn new(raft: ShoalRaft, me: NodeId, members_of: MembersOf) -> Admission {
        Admission {
            raft,
            me,
            members_of,
            remembered: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Whether `from` may send this node Raft or store RPCs.
    pub(super) async fn admits(&self, from: &PeerId) -> bool {
        let id = node_id_of(from);
        let verdict = {
            let rx = self.raft.metrics();
            let m = rx.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<NodeId> = membership.voter_ids().collect();
            judge(self.me, id, membership.nodes(), &voters)
        };
        let voters = match verdict {
            Verdict::Member | Verdict::Uninitialised => return true,
            Verdict::Unknown(voters) => voters,
        };
        if let Some(ok) = self.remembered(id) {
            return ok;
        }
        let asks = voters.iter().map(|v| (self.members_of)(v.clone()));
        let answers = tokio::time::timeout(VOUCH_TIMEOUT, futures::future::join_all(asks))
            .await
            .unwrap_or_default();
        let ok = answers
            .into_iter()
            .any(|a| a.is_ok_and(|members| members.contains(&id)));
        if !ok {
            tracing::warn!(peer = %from, "refused a Raft or store RPC from a node outside the Raft configuration");
            super::metrics::record_refused_rpc();
        }
        self.remember(id, ok);
        ok
    }

    fn remembered(&self, id: NodeId) -> Option<bool> {
        let map = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        let (ok, at) = map.get(&id)?;
        let ttl = if *ok { VOUCH_TTL } else { REFUSE_TTL };
        (at.elapsed() < ttl).then_some(*ok)
    }

    fn remember(&self, id: NodeId, ok: bool) {
        let mut map = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (_, at)| at.elapsed() < VOUCH_TTL);
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
        }
        map.insert(id, (ok, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ..NodeInfo::default()
        }
    }

    #[test]
    fn members_learners_and_a_fresh_node_admit_strangers_do_not() {
        let (a, b, learner) = (info("a"), info("b"), info("l"));
        let nodes = [(1u64, a.clone()), (2, b.clone()), (3, learner)];
        let iter = || nodes.iter().map(|(id, n)| (id, n));
        let voters = [1, 2];
        assert_eq!(judge(1, 2, iter(), &voters), Verdict::Member);
        assert_eq!(
            judge(1, 3, iter(), &voters),
            Verdict::Member,
            "learners too"
        );
        assert_eq!(judge(1, 9, std::iter::empty(), &[]), Verdict::Uninitialised);
        // A stranger: only the other voters may vouch, never this node or a learner.
        assert_eq!(judge(1, 9, iter(), &voters), Verdict::Unknown(vec![b]));
    }
}
