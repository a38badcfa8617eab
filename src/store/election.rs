//! When to campaign: a pre-vote round in front of openraft's elections.
//!
//! openraft 0.9 has no pre-vote. A voter that stops hearing from the leader
//! (it was paused, cut off, or restarted after being removed without seeing
//! its removal) bumps its term on its own; the first time the leader reaches
//! it again, the higher term deposes a healthy leader. The chaos harness saw
//! 2–9 s without a leader from each such return.
//!
//! So openraft's election timer is off (`enable_elect = false`) and this
//! driver decides instead. A voter that has heard nothing from a leader for
//! the leader lease plus a random jitter asks the other voters whether they
//! would vote for it. A voter says yes only if it is not the leader, has not
//! heard from a leader for a whole lease itself, and the asker's log is at
//! least as up to date as its own. Only with a yes from a quorum does the
//! driver start a real openraft election, which then wins without a term
//! race: the same voters have no live lease that would refuse it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use openraft::{LogId, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info};

use super::{NodeId, ShoalRaft};

/// Asks a voter whether it would vote for the sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PreVoteRequest {
    pub(super) last_log_id: Option<LogId<NodeId>>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PreVoteResponse {
    pub(super) granted: bool,
}

/// Election timing, from the store's Raft settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// openraft's leader lease: its election_timeout_max.
    pub(super) lease: Duration,
    /// Width of the random jitter added before a campaign.
    pub(super) jitter: Duration,
    /// Lowest spacing between two campaigns of this node.
    pub(super) retry_min: Duration,
    /// How often the driver looks.
    pub(super) tick: Duration,
}

impl Timing {
    pub(super) fn new(heartbeat_ms: u64, timeout_min_ms: u64, timeout_max_ms: u64) -> Timing {
        Timing {
            lease: Duration::from_millis(timeout_max_ms),
            jitter: Duration::from_millis(timeout_max_ms.saturating_sub(timeout_min_ms)),
            retry_min: Duration::from_millis(timeout_min_ms),
            tick: Duration::from_millis((heartbeat_ms / 2).clamp(10, 100)),
        }
    }

    fn jittered(&self, base: Duration) -> Duration {
        let span = self.jitter.as_millis() as u64;
        let extra = if span == 0 {
            0
        } else {
            rand::random::<u64>() % (span + 1)
        };
        base + Duration::from_millis(extra)
    }
}

/// When this node last heard from a leader it accepted, or gave its vote
/// to a candidate; and when it last promised its pre-vote.
#[derive(Clone)]
pub(super) struct LeaderContact(Arc<Mutex<Contact>>);

struct Contact {
    heard: Instant,
    promised: Option<Instant>,
}

impl LeaderContact {
    pub(super) fn new() -> LeaderContact {
        LeaderContact(Arc::new(Mutex::new(Contact {
            heard: Instant::now(),
            promised: None,
        })))
    }

    /// Records a leader's append or snapshot accepted, or a vote given, just now.
    pub(super) fn touch(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.heard = Instant::now();
        }
    }

    fn quiet_for(&self) -> Duration {
        self.0
            .lock()
            .map(|c| c.heard.elapsed())
            .unwrap_or(Duration::MAX)
    }

    /// Promises this node's pre-vote (to an asker, or to its own campaign)
    /// unless it promised it within `window`.
    ///
    /// Without it, voters that all lost the leader at once each granted
    /// every asker: two candidates could both hold a pre-vote quorum, both
    /// campaign, and the second election deposed the first winner
    /// milliseconds after it won (seen in the chaos run `pause-node`). One
    /// promise per window is Raft's one vote per term, for a round that has
    /// no term.
    fn promise(&self, window: Duration) -> bool {
        let Ok(mut c) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        if !may_promise(c.promised, now, window) {
            return false;
        }
        c.promised = Some(now);
        true
    }
}

fn may_promise(promised: Option<Instant>, now: Instant, window: Duration) -> bool {
    promised.is_none_or(|t| now.saturating_duration_since(t) >= window)
}

/// The pre-vote rule, on the answering side.
pub(super) fn answer(
    raft: &ShoalRaft,
    contact: &LeaderContact,
    timing: &Timing,
    req: &PreVoteRequest,
) -> PreVoteResponse {
    let leading = raft.metrics().borrow().state == ServerState::Leader;
    let mine = raft.data_metrics().borrow().last_log;
    let granted = grants(
        leading,
        contact.quiet_for(),
        timing.lease,
        req.last_log_id,
        mine,
    ) && contact.promise(timing.retry_min);
    PreVoteResponse { granted }
}

fn grants(
    leading: bool,
    quiet: Duration,
    lease: Duration,
    theirs: Option<LogId<NodeId>>,
    mine: Option<LogId<NodeId>>,
) -> bool {
    !leading && quiet >= lease && theirs >= mine
}

/// Whether the granting voters (this node included) form a quorum of every
/// configuration; two during a joint membership change.
fn is_quorum(configs: &[std::collections::BTreeSet<NodeId>], granted: &[NodeId]) -> bool {
    !configs.is_empty()
        && configs.iter().all(|c| {
            let yes = c.iter().filter(|id| granted.contains(id)).count();
            yes * 2 > c.len()
        })
}

/// Asks one voter for a pre-vote: the transport's client side, handed in
/// by the store so that this module does not depend on the network module
/// (which serves the other side with [`answer`]).
pub(super) type AskPreVote = std::sync::Arc<
    dyn Fn(
            super::NodeInfo,
            PreVoteRequest,
        ) -> futures::future::BoxFuture<'static, Option<PreVoteResponse>>
        + Send
        + Sync,
>;

/// Runs until the Raft node shuts down.
pub(super) async fn drive(
    raft: ShoalRaft,
    me: NodeId,
    contact: LeaderContact,
    timing: Timing,
    ask: AskPreVote,
) {
    let mut quiet_needed = timing.jittered(timing.lease);
    let mut last_try: Option<Instant> = None;
    // Re-drawn after every round: nodes whose rounds collided would
    // otherwise retry in lockstep, exactly `retry_min` apart, forever.
    let mut retry_after = timing.jittered(timing.retry_min);
    loop {
        tokio::time::sleep(timing.tick).await;
        // Cheap looks first: this runs every tick on every node, and almost
        // always ends here while a leader is heard from.
        let (leading, voter, alone) = {
            let rx = raft.metrics();
            let m = rx.borrow();
            if m.running_state.is_err() {
                return;
            }
            let membership = m.membership_config.membership();
            (
                m.state == ServerState::Leader,
                membership.voter_ids().any(|id| id == me),
                membership.voter_ids().nth(1).is_none(),
            )
        };
        if leading {
            contact.touch();
            continue;
        }
        // A lone voter (a dev node) has nobody to hear from or ask.
        if !voter
            || (!alone && contact.quiet_for() < quiet_needed)
            || last_try.is_some_and(|t| t.elapsed() < retry_after)
        {
            continue;
        }
        // A node that just promised its pre-vote to another candidate lets
        // that one campaign; a lone voter has nobody to promise to.
        if !alone && !contact.promise(timing.retry_min) {
            last_try = Some(Instant::now());
            retry_after = timing.jittered(timing.retry_min);
            continue;
        }
        let (configs, voters) = {
            let rx = raft.metrics();
            let m = rx.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<(NodeId, super::NodeInfo)> = membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
                .collect();
            (membership.get_joint_config().clone(), voters)
        };
        last_try = Some(Instant::now());
        retry_after = timing.jittered(timing.retry_min);
        quiet_needed = timing.jittered(timing.lease);

        let req = PreVoteRequest {
            last_log_id: raft.data_metrics().borrow().last_log,
        };
        let vote_before = raft.metrics().borrow().vote;
        let mut asks: futures::stream::FuturesUnordered<_> = voters
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, info)| {
                let (id, req) = (*id, req.clone());
                let ask = ask(info.clone(), req);
                async move {
                    match tokio::time::timeout(timing.retry_min, ask).await {
                        Ok(Some(r)) if r.granted => Some(id),
                        _ => None,
                    }
                }
            })
            .collect();
        // Stop at a quorum: a hung or cut-off voter would otherwise hold the
        // round for the whole timeout (1 s longer failovers when the
        // leader hangs than when it dies).
        let mut granted = vec![me];
        while !is_quorum(&configs, &granted) {
            match asks.next().await {
                Some(Some(id)) => granted.push(id),
                Some(None) => {}
                None => break,
            }
        }
        if !is_quorum(&configs, &granted) {
            ::metrics::counter!(crate::store::metrics::RAFT_PREVOTES_TOTAL, "result" => "denied")
                .increment(1);
            debug!(granted = granted.len(), "pre-vote denied; not campaigning");
            continue;
        }
        ::metrics::counter!(crate::store::metrics::RAFT_PREVOTES_TOTAL, "result" => "granted")
            .increment(1);
        // While the pre-vote was out, a leader may have been heard from, or
        // this node may have voted for another candidate's campaign; a
        // campaign of its own now would only split or depose that one.
        if (!alone && contact.quiet_for() < timing.lease)
            || raft.metrics().borrow().vote != vote_before
        {
            debug!("another campaign began during the pre-vote; not campaigning");
            continue;
        }
        info!(
            granted = granted.len(),
            voters = voters.len(),
            "pre-vote granted; campaigning"
        );
        if raft.trigger().elect().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::CommittedLeaderId;

    use super::*;

    fn log(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    #[test]
    fn a_voter_grants_only_without_a_leader_and_with_an_older_or_equal_log() {
        let lease = Duration::from_secs(2);
        let long = Duration::from_secs(3);
        assert!(grants(false, long, lease, log(2, 10), log(2, 10)));
        assert!(grants(false, long, lease, log(3, 5), log(2, 10)));
        assert!(grants(false, long, lease, log(1, 1), None));
        // The leader itself, and a follower that heard from one within the lease.
        assert!(!grants(true, long, lease, log(2, 10), log(2, 10)));
        assert!(!grants(
            false,
            Duration::from_millis(500),
            lease,
            log(2, 10),
            None
        ));
        // The asker is behind: by index in the same term, or by term.
        assert!(!grants(false, long, lease, log(2, 9), log(2, 10)));
        assert!(!grants(false, long, lease, log(1, 20), log(2, 10)));
        assert!(!grants(false, long, lease, None, log(1, 1)));
    }

    #[test]
    fn quorum_needs_a_majority_of_every_configuration() {
        let c = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<_>>();
        let five = vec![c(&[1, 2, 3, 4, 5])];
        assert!(is_quorum(&five, &[1, 2, 3]));
        assert!(!is_quorum(&five, &[1, 2]));
        assert!(!is_quorum(&five, &[1, 6, 7]));
        let single = vec![c(&[1])];
        assert!(is_quorum(&single, &[1]));
        // Joint: old {1,2,3}, new {3,4,5}.
        let joint = vec![c(&[1, 2, 3]), c(&[3, 4, 5])];
        assert!(is_quorum(&joint, &[1, 2, 3, 4]));
        assert!(!is_quorum(&joint, &[1, 2, 4]));
        assert!(!is_quorum(&[], &[1]));
    }

    #[test]
    fn a_pre_vote_is_promised_once_per_window() {
        let window = Duration::from_millis(1000);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(may_promise(None, t0, window), "the first asker gets it");
        assert!(
            !may_promise(Some(t0), t0, window),
            "a second asker does not"
        );
        assert!(!may_promise(Some(t0), ms(999), window));
        assert!(
            may_promise(Some(t0), ms(1000), window),
            "after the window, the next one does"
        );

        let contact = LeaderContact::new();
        assert!(contact.promise(window));
        // Hearing from a leader does not release a promise.
        contact.touch();
        assert!(!contact.promise(window));
    }

    #[test]
    fn jitter_stays_within_the_election_timeout_range() {
        let t = Timing::new(250, 1000, 2000);
        assert_eq!(t.lease, Duration::from_millis(2000));
        for _ in 0..200 {
            let d = t.jittered(t.lease);
            assert!(d >= Duration::from_millis(2000) && d <= Duration::from_millis(3000));
        }
        assert_eq!(t.tick, Duration::from_millis(100));
        assert_eq!(
            Timing::new(10, 20, 20).jittered(Duration::ZERO),
            Duration::ZERO
        );
    }
}
