//! The records a run keeps of each fault and each intruder's window:
//! plain data that the fault runner and the intruders fill in, and the
//! checks and the report read.

use std::collections::BTreeMap;

use serde::Serialize;

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// When it was injected, in seconds since the workload started.
    pub at_secs: f64,
    /// Its kind.
    pub kind: &'static str,
    /// The nodes it hit.
    pub targets: Vec<String>,
    /// When it was healed (node restarted, resumed, partition lifted).
    pub healed_at_secs: Option<f64>,
    /// Anything worth knowing: the term the leader had, sides of a partition, errors.
    pub note: String,
    /// For faults that take the leader away: seconds until another node led a later term.
    pub failover_secs: Option<f64>,
    /// Fewest Deployment pods Running and Ready seen from this fault until the next.
    pub min_ready: Option<usize>,
    /// Seconds from injection until every replica was Running and Ready
    /// again, when some were lost (`None` if none was, or they never came back
    /// before the next fault).
    pub ready_again_after_secs: Option<f64>,
    /// An intruder's window and what came of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intruder: Option<IntruderRecord>,
}

impl FaultRecord {
    /// A fault of `kind` injected at `at_secs`, nothing else known yet.
    pub fn new(at_secs: f64, kind: &'static str) -> FaultRecord {
        FaultRecord {
            at_secs,
            kind,
            targets: Vec::new(),
            healed_at_secs: None,
            note: String::new(),
            failover_secs: None,
            min_ready: None,
            ready_again_after_secs: None,
            intruder: None,
        }
    }
}

/// What the raw TCP client did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ProbeStats {
    /// Connections tried.
    pub attempts: u64,
    /// Connections the member accepted at the TCP level.
    pub connected: u64,
    /// Connections the member closed after the garbage (EOF or reset).
    pub closed_by_member: u64,
    /// Most bytes one connection got back (a member's pnet nonce at most
    /// is expected: nothing it can read).
    pub max_bytes_back: u64,
}

/// One intruder's window and what came of it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IntruderRecord {
    /// Its name (`chaos-intruder`, or the removed node's old name).
    pub name: String,
    /// Its PeerId, when known.
    pub peer_id: Option<String>,
    /// Its Raft id (a removed node's old one).
    pub node_id: Option<u64>,
    /// (start, end) in seconds: from its start until it was killed.
    pub window: Option<(f64, f64)>,
    /// The leader's term when the window opened and after it closed.
    pub term_before: Option<u64>,
    /// See `term_before`.
    pub term_after: Option<u64>,
    /// The leader when the window opened and after it closed.
    pub leader_before: Option<String>,
    /// See `leader_before`.
    pub leader_after: Option<String>,
    /// Incoming connections the members refused during the window.
    pub refused_connections: f64,
    /// Raft and store RPCs the members refused during the window.
    pub refused_rpcs: f64,
    /// The raw TCP client (unkeyed only).
    pub probes: Option<ProbeStats>,
    /// Writes sent through the intruder's own API, by answer.
    pub writes: BTreeMap<String, u64>,
    /// Of those, answered 2xx by the intruder (it is not the cluster).
    pub writes_acknowledged: u64,
    /// Every time a member listed it as a member or in its configuration.
    pub admitted: Vec<String>,
    /// What the intruder itself reported (its Raft state, its members).
    pub own_view: Vec<String>,
    /// How an agent given no key at all ended (unkeyed only).
    pub keyless_start: Option<String>,
    /// Whether that agent refused to start, as it must.
    pub keyless_refused: Option<bool>,
}
