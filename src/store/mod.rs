//! store: the cluster's desired state, replicated by openraft with its log and
//! state machine in rocksdb.
//!
//! Every node holds a replica. Writes go through [`Store::write`], which
//! proposes at the local Raft node when it leads and forwards to the leader
//! over libp2p otherwise. Reads come from the local replica; [`Store::barrier`]
//! makes them linearizable through the leader's read index. Watches are served
//! from the local replica's recent-event ring.

mod admission;
mod batch;
mod cache;
mod compact;
mod db;
mod election;
mod engine;
mod log;
pub mod metrics;
mod network;
mod proposer;
mod rules;
pub mod sealing;
mod state_machine;
mod watch;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use openraft::error::RaftError;
use openraft::{Raft, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::net::{Channel, Net};
use crate::resource::{Kind, Object, ObjectKey};
use proposer::{LocalWrite, Proposer};

pub(crate) use network::decode_peer_body;
pub use state_machine::{Op, OpOutcome, Outcome, Precondition, TxnError};
pub use watch::{EventType, WatchEvent, WatchStream};

/// A Raft node's id: the first eight bytes of the SHA-256 of its PeerId.
pub type NodeId = u64;

/// What Raft membership records about a node: enough to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Human name (`--name`, default the host name).
    pub name: String,
    /// libp2p PeerId, base58.
    pub peer_id: String,
    /// p2p listen addresses (multiaddrs).
    pub p2p_addrs: Vec<String>,
    /// The HTTP API address.
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.peer_id)
    }
}

impl NodeInfo {
    /// The PeerId, if the stored string parses.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer_id.parse().ok()
    }

    /// The p2p addresses that parse as multiaddrs.
    pub fn multiaddrs(&self) -> Vec<Multiaddr> {
        self.p2p_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// The Raft node id derived from the PeerId.
    pub fn node_id(&self) -> NodeId {
        node_id_of_str(&self.peer_id)
    }
}

/// The Raft node id of a PeerId.
pub fn node_id_of(peer: &PeerId) -> NodeId {
    node_id_of_str(&peer.to_base58())
}

fn node_id_of_str(peer: &str) -> NodeId {
    let digest = Sha256::digest(peer.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// A replicated command: operations applied all together or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The operations, applied in order against the state after the previous ones.
    pub ops: Vec<Op>,
}

/// Largest command a write may carry (its objects' bytes): a quarter of the
/// p2p frame limit, so that every entry replicates in one frame.
pub const MAX_COMMAND_BYTES: usize = crate::net::MAX_FRAME_BYTES / 4;
/// Largest Raft entry the proposer builds from queued commands.
const MAX_ENTRY_BYTES: usize = crate::net::MAX_FRAME_BYTES / 2;

impl Command {
    /// The bytes this command carries: keys, objects and statuses.
    pub fn size_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Put { key, object, .. } => key.name.len() + key.namespace.len() + object.len(),
                Op::Delete { key, .. } | Op::Check { key, .. } => {
                    key.name.len() + key.namespace.len()
                }
                Op::SetStatus { key, uid, status } => {
                    key.name.len()
                        + key.namespace.len()
                        + uid.as_ref().map_or(0, String::len)
                        + status.len()
                }
                Op::SetQuota { .. } => 8,
            })
            // Each op's tags and lengths, so that a million empty ops count too.
            .fold(0usize, |acc, n| acc.saturating_add(n).saturating_add(16))
    }
}

/// What applying a [`Command`] produced.
pub type CommandResult = Result<Vec<OpOutcome>, TxnError>;

/// One Raft entry: commands proposed together, applied one after another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal(pub Vec<Command>);

openraft::declare_raft_types!(
    /// shoal's Raft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Vec<CommandResult>,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle with shoal's types.
pub type ShoalRaft = Raft<TypeConfig>;

/// Errors from the store's public API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Txn(#[from] TxnError),
    #[error("no Raft leader is known yet; retry shortly")]
    NoLeader,
    #[error("this node is not a member of a cluster yet")]
    NotMember,
    #[error("the cluster did not answer in time ({0})")]
    Timeout(String),
    #[error("forwarding to the leader failed: {0}")]
    Forward(String),
    #[error("local storage: {0}")]
    Storage(String),
    #[error(
        "the requested revision {requested} is older than the oldest kept ({oldest}); list again"
    )]
    Gone { requested: u64, oldest: u64 },
    #[error("raft: {0}")]
    Raft(String),
    #[error("this node already serves {limit} watches; close some or watch another node")]
    TooManyWatches { limit: usize },
    #[error("secrets encryption: {0}")]
    Encryption(String),
}

impl StoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::NoLeader
                | StoreError::NotMember
                | StoreError::Timeout(_)
                | StoreError::Forward(_)
        )
    }
}

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot (for followers slightly behind).
    pub keep_logs_behind_snapshot: u64,
    /// Raft heartbeat interval.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max_ms: u64,
    /// Watch events kept in memory for watchers that resume from a revision.
    pub watch_history: usize,
    /// ...and at most this many bytes of them (as JSON).
    pub watch_history_bytes: usize,
    /// The store quota: writes that would take the objects' bytes past it
    /// are refused (when this node leads, it replicates this value).
    pub quota_bytes: u64,
    /// Snapshot and purge the log once the entries since the last snapshot
    /// hold this many bytes, however few they are.
    pub compact_log_bytes: u64,
    /// The key-encryption key that opens the cluster's data keys (Secrets at rest).
    pub kek: sealing::Kek,
}

/// The store quota by default, as etcd's `--quota-backend-bytes`.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The smallest quota a node accepts: room for a few of the largest commands.
pub const MIN_QUOTA_BYTES: u64 = 64 * 1024 * 1024;
/// The log bytes that trigger a snapshot and purge by default.
pub const DEFAULT_COMPACT_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest byte threshold for compaction a node accepts.
pub const MIN_COMPACT_LOG_BYTES: u64 = 1024 * 1024;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            snapshot_every: 10_000,
            keep_logs_behind_snapshot: 1_000,
            heartbeat_ms: 250,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            watch_history: 10_000,
            watch_history_bytes: 64 * 1024 * 1024,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            compact_log_bytes: DEFAULT_COMPACT_LOG_BYTES,
            kek: sealing::Kek::default(),
        }
    }
}

/// The leader, term and members as this node sees them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    /// This node.
    pub node_id: NodeId,
    /// This node's role: Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// The leader's id, when known.
    pub leader: Option<NodeId>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied: Option<u64>,
    /// Index up to which the log has been purged behind a snapshot.
    pub last_purged: Option<u64>,
    /// Index of the latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Voters with their info.
    pub voters: Vec<(NodeId, NodeInfo)>,
    /// Learners with their info.
    pub learners: Vec<(NodeId, NodeInfo)>,
    /// The cluster's id, once the leader has written it (see [`Store::cluster_id`]).
    pub cluster_id: Option<String>,
}

/// The local replica and the way to write to the cluster.
#[derive(Clone)]
pub struct Store {
    raft: ShoalRaft,
    node_id: NodeId,
    reader: state_machine::Reader,
    net: Net,
    proposer: Proposer,
    forwarder: network::Forwarder,
    engine: Arc<engine::Engine>,
    usage: Arc<state_machine::Usage>,
    log_sizes: Arc<log::LogSizes>,
    sealer: Arc<sealing::Sealer>,
}

impl Store {
    /// Opens (or creates) the rocksdb at `dir`, starts the Raft node and registers
    /// its handlers on `net`.
    pub async fn open(dir: &Path, net: Net, cfg: StoreConfig) -> Result<Store, StoreError> {
        let db = db::open_db(dir).map_err(|e| StoreError::Storage(e.to_string()))?;
        let (syncer_done, syncer_stopped) = tokio::sync::oneshot::channel();
        let engine = Arc::new(engine::Engine::new(
            db.clone(),
            dir.to_path_buf(),
            syncer_stopped,
        ));
        let log_store = log::LogStore::new(db.clone(), Some(syncer_done), engine.raft_users());
        let log_sizes = log_store.sizes();
        let sm = state_machine::StateMachine::open(
            db,
            cfg.watch_history,
            cfg.watch_history_bytes,
            engine.raft_users(),
        )
        .map_err(|e| StoreError::Storage(e.to_string()))?;
        let reader = sm.reader();
        let usage = sm.usage();
        let node_id = node_id_of(&net.peer_id());
        let raft_config = openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            max_in_snapshot_log_to_keep: cfg.keep_logs_behind_snapshot,
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            max_payload_entries: 1000,
            // Elections go through the pre-vote driver in election.rs.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Raft(e.to_string()))?;
        let factory = network::RaftNet::new(net.clone());
        let raft = Raft::new(node_id, Arc::new(raft_config), factory, log_store, sm)
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        let store = Store {
            proposer: Proposer::spawn(raft.clone(), usage.clone(), cfg.quota_bytes),
            usage,
            log_sizes,
            forwarder: network::Forwarder::spawn(net.clone()),
            raft,
            node_id,
            reader,
            net: net.clone(),
            engine,
            sealer: Arc::new(sealing::Sealer::new(cfg.kek.clone())),
        };
        let contact = election::LeaderContact::new();
        let timing = election::Timing::new(
            cfg.heartbeat_ms,
            cfg.election_timeout_min_ms,
            cfg.election_timeout_max_ms,
        );
        let members_of: admission::MembersOf = {
            let net = net.clone();
            Arc::new(move |peer: NodeInfo| {
                let net = net.clone();
                Box::pin(async move { network::forward_members(&net, &peer).await })
            })
        };
        let admission = Arc::new(admission::Admission::new(
            store.raft.clone(),
            node_id,
            members_of,
        ));
        net.set_handler(
            Channel::Raft,
            Arc::new(network::RaftHandler::new(
                store.raft.clone(),
                contact.clone(),
                timing,
                admission.clone(),
            )),
        );
        let ask: election::AskPreVote = {
            let net = net.clone();
            Arc::new(move |voter: NodeInfo, req| {
                let net = net.clone();
                Box::pin(async move { network::ask_pre_vote(&net, &voter, req).await })
            })
        };
        tokio::spawn(election::drive(
            store.raft.clone(),
            node_id,
            contact,
            timing,
            ask,
        ));
        net.set_handler(
            Channel::Store,
            Arc::new(network::StoreHandler::new(store.clone(), admission)),
        );
        metrics::spawn_raft_metrics(store.raft.metrics());
        compact::spawn(
            store.raft.clone(),
            store.log_sizes.clone(),
            cfg.compact_log_bytes,
        );
        info!(node_id, "store opened at {}", dir.display());
        Ok(store)
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The openraft handle, for membership changes.
    pub fn raft(&self) -> &ShoalRaft {
        &self.raft
    }

    /// The latest Raft metrics of this node.
    pub fn metrics(&self) -> RaftMetrics<NodeId, NodeInfo> {
        self.raft.metrics().borrow().clone()
    }

    /// Whether this node is a voter or learner of an initialised cluster.
    pub fn is_member(&self) -> bool {
        // Borrowed, not cloned: this runs on every write and health check.
        let rx = self.raft.metrics();
        let m = rx.borrow();
        m.membership_config
            .membership()
            .get_node(&self.node_id)
            .is_some()
    }

    /// The voters of this node's latest membership.
    pub fn voter_ids(&self) -> Vec<NodeId> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Whether the leader's membership still holds this node as a voter.
    /// A removed node gets no more replication, so it has to ask.
    pub async fn leader_keeps_me(&self) -> Result<bool, StoreError> {
        let voters = match self.leader() {
            Some((id, _)) if id == self.node_id => self.voter_ids(),
            Some((_, node)) => network::forward_voters(&self.net, &node).await?,
            None => return Err(StoreError::NoLeader),
        };
        Ok(voters.contains(&self.node_id))
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    /// Applies a command cluster-wide, forwarding to the leader when needed.
    /// Retries through elections for up to `WRITE_DEADLINE`. Secrets are
    /// sealed here, before the command leaves this node (see [`sealing`]).
    pub async fn write(&self, cmd: Command) -> Result<Vec<OpOutcome>, StoreError> {
        self.write_sealed(cmd).await
    }

    /// [`Store::write`] without sealing.
    async fn write_raw(&self, cmd: Command) -> Result<Vec<OpOutcome>, StoreError> {
        let size = cmd.size_bytes();
        if size > MAX_COMMAND_BYTES {
            return Err(StoreError::Txn(TxnError::TooLarge {
                bytes: size,
                limit: MAX_COMMAND_BYTES,
            }));
        }
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let started = std::time::Instant::now();
        let mut last_err;
        loop {
            // A leader cut off from its quorum never commits: bound each attempt.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(left, self.write_once(cmd.clone())).await;
            match attempt {
                Ok(Ok(r)) => {
                    metrics::record_write(started.elapsed());
                    return Ok(r);
                }
                Ok(Err(e)) if e.is_unavailable() => {
                    debug!("write not yet possible: {e}");
                    last_err = e;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(StoreError::Timeout(format!(
                        "not committed within {WRITE_DEADLINE:?}: no quorum reachable (this node may be cut off from the majority); the write may still apply if the partition heals"
                    )));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match last_err {
                    StoreError::NoLeader => StoreError::NoLeader,
                    e => StoreError::Timeout(e.to_string()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn write_once(&self, cmd: Command) -> Result<Vec<OpOutcome>, StoreError> {
        // Go straight to the leader this node knows; Raft corrects a stale guess.
        let (leader, node) = self.leader().ok_or(StoreError::NoLeader)?;
        if leader != self.node_id {
            return self.forward(node, cmd).await;
        }
        match self.propose_local(cmd.clone()).await {
            Err(LocalWrite::NotLeader(Some((leader, node)))) if leader != self.node_id => {
                self.forward(node, cmd).await
            }
            Err(LocalWrite::NotLeader(_)) => Err(StoreError::NoLeader),
            Err(LocalWrite::Failed(e)) => Err(StoreError::Raft(e)),
            Ok(r) => Ok(r?),
        }
    }

    /// Has the leader apply `cmd`, then waits (up to `CATCH_UP_WAIT`) for this
    /// replica to apply it too, so that a client reading through this node
    /// right after its write sees it, as it would through the leader.
    async fn forward(&self, leader: NodeInfo, cmd: Command) -> Result<Vec<OpOutcome>, StoreError> {
        let outcomes = self.forwarder.forward(leader, cmd).await?;
        if tokio::time::timeout(CATCH_UP_WAIT, self.catch_up(&outcomes))
            .await
            .is_err()
        {
            // Committed all the same; only a read here may still miss it.
            metrics::record_catch_up_timeout();
            debug!("this replica did not apply a forwarded write within {CATCH_UP_WAIT:?}");
        }
        Ok(outcomes)
    }

    /// Returns once the local replica reflects every outcome: a created or
    /// updated object at its new version, a deleted one gone (its own
    /// version says nothing of when the delete applied, so that is checked
    /// on the object after each applied entry).
    async fn catch_up(&self, outcomes: &[OpOutcome]) {
        let written = outcomes
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
            .map(|o| o.resource_version)
            .max()
            .unwrap_or(0);
        if written > 0 && self.wait_applied(written).await.is_err() {
            return;
        }
        let deleted: Vec<&OpOutcome> = outcomes
            .iter()
            .filter(|o| o.outcome == Outcome::Deleted)
            .collect();
        loop {
            let applied = self.reader.revision();
            let pending = deleted.iter().any(|o| match self.reader.get(&o.key) {
                Ok(Some(now)) => now.resource_version() <= o.resource_version,
                _ => false,
            });
            if !pending || self.wait_applied(applied + 1).await.is_err() {
                return;
            }
        }
    }

    /// Proposes at this node, which must be the leader.
    async fn propose_local(&self, cmd: Command) -> Result<CommandResult, LocalWrite> {
        // Checked here too: forwarded commands come from peers.
        let size = cmd.size_bytes();
        if size > MAX_COMMAND_BYTES {
            return Ok(Err(TxnError::TooLarge {
                bytes: size,
                limit: MAX_COMMAND_BYTES,
            }));
        }
        self.proposer.propose(cmd).await
    }

    /// Waits until this replica has applied everything the leader had committed
    /// when the call started, so local reads after it are linearizable.
    pub async fn barrier(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        loop {
            let r = match self.leader() {
                Some((id, _)) if id == self.node_id => self.read_index_local().await,
                Some((_, node)) => network::forward_read_index(&self.net, &node).await,
                None => Err(StoreError::NoLeader),
            };
            match r {
                Ok(index) => return self.wait_applied(index).await,
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The leader's read index (leader side of [`Store::barrier`]).
    async fn read_index_local(&self) -> Result<u64, StoreError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(_)) => Err(StoreError::NoLeader),
            Err(RaftError::Fatal(e)) => Err(StoreError::Raft(e.to_string())),
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), StoreError> {
        if index == 0 {
            return Ok(());
        }
        self.raft
            .wait(Some(WRITE_DEADLINE))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Timeout(e.to_string()))
    }

    /// Initialises a new cluster with these members as voters.
    pub async fn initialize(&self, members: Vec<NodeInfo>) -> Result<(), StoreError> {
        let map: std::collections::BTreeMap<NodeId, NodeInfo> =
            members.into_iter().map(|n| (n.node_id(), n)).collect();
        self.raft
            .initialize(map)
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))
    }

    /// One object from the local replica; a Secret opened.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        let mut o = self.reader.get(key)?;
        if let Some(o) = o.as_mut() {
            self.open_object(o)?;
        }
        Ok(o)
    }

    /// Objects of a kind (in one namespace, or all) and the replica's revision.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let (mut items, rev) = self.reader.list(kind, namespace)?;
        if kind == Kind::Secret {
            self.open_objects(&mut items)?;
        }
        Ok((items, rev))
    }

    /// As [`Store::list`], the objects shared with the replica's decoded
    /// mirror rather than copied: for the loops that list a kind on every
    /// change and only read it.
    pub fn list_shared(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Object>>, u64), StoreError> {
        if kind == Kind::Secret {
            // The mirror holds Secrets sealed; each caller gets its own opened copy.
            let (items, rev) = self.list(kind, namespace)?;
            return Ok((items.into_iter().map(Arc::new).collect(), rev));
        }
        self.reader.list_shared(kind, namespace)
    }

    /// The index of the last entry applied to the local replica.
    pub fn revision(&self) -> u64 {
        self.reader.revision()
    }

    /// Bytes of all objects (keys and JSON) in the local replica: what the
    /// quota is measured against.
    pub fn state_bytes(&self) -> u64 {
        self.usage.state_bytes()
    }

    /// The quota in force (replicated by the leader), once one was written.
    pub fn quota_bytes(&self) -> Option<u64> {
        self.usage.quota_bytes()
    }

    /// Bytes of the Raft log entries this node keeps on disk.
    pub fn log_bytes(&self) -> u64 {
        self.log_sizes.total()
    }

    /// Changes after `from` (or from now), filtered by kind and namespace.
    pub fn watch(
        &self,
        kind: Option<Kind>,
        namespace: Option<String>,
        from: Option<u64>,
    ) -> Result<WatchStream, StoreError> {
        let stream = self.reader.watch(kind, namespace, from)?;
        if kind.is_some_and(|k| k != Kind::Secret) {
            return Ok(stream);
        }
        let store = self.clone();
        Ok(stream.opening(Arc::new(move |o: &mut Object| store.open_object(o))))
    }

    /// The Raft view of this node, for `shoal raft status`.
    pub fn status(&self) -> RaftStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut voters = Vec::new();
        let mut learners = Vec::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.push((*id, node.clone()));
            } else {
                learners.push((*id, node.clone()));
            }
        }
        RaftStatus {
            node_id: self.node_id,
            state: match m.state {
                ServerState::Leader => "Leader",
                ServerState::Follower => "Follower",
                ServerState::Candidate => "Candidate",
                ServerState::Learner => "Learner",
                ServerState::Shutdown => "Shutdown",
            }
            .to_string(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            last_purged: m.purged.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            voters,
            learners,
            cluster_id: self.cluster_id(),
        }
    }

    /// The cluster's id: the uid of its `shoal-system` namespace, which the
    /// first leader creates. Unique per cluster (uids derive from the Raft
    /// log id of the write, which names the leader's random node id); `None`
    /// until this replica has that write.
    pub fn cluster_id(&self) -> Option<String> {
        let key = ObjectKey::new(Kind::Namespace, "", crate::resource::SYSTEM_NAMESPACE);
        self.get(&key).ok().flatten().and_then(|ns| ns.metadata.uid)
    }

    /// Stops the Raft node and closes the database: when it returns, no
    /// thread of this store uses rocksdb and its background work is cancelled
    /// (the data stays on disk). Every store must be shut down before the
    /// process exits; later calls return at once.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            debug!("raft shutdown: {e}");
        }
        self.engine.close().await;
    }
}

/// In-process stores without a node around them, for unit tests and the
/// scheduler benchmark.
#[doc(hidden)]
pub mod testing {
    use std::time::Duration;

    use super::{NodeInfo, Store, StoreConfig};
    use crate::net::Net;

    /// A swarm on loopback and a store under `dir`, not yet in a cluster.
    pub async fn open(dir: &std::path::Path, name: &str) -> (Net, Store, NodeInfo) {
        open_with(dir, name, config()).await
    }

    /// The in-process tests' timings (`Config::for_test`), without the
    /// config module, which sits above the store.
    pub fn config() -> StoreConfig {
        StoreConfig {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            ..StoreConfig::default()
        }
    }

    /// [`open`] with these tunables.
    pub async fn open_with(
        dir: &std::path::Path,
        name: &str,
        cfg: StoreConfig,
    ) -> (Net, Store, NodeInfo) {
        let net = Net::start(crate::net::NetConfig {
            data_dir: dir.to_path_buf(),
            listen: crate::net::parse_addr("127.0.0.1:0").await.expect("addr"),
            psk: None,
        })
        .await
        .expect("net starts");
        let store = Store::open(&dir.join("raft"), net.clone(), cfg)
            .await
            .expect("store opens");
        let info = NodeInfo {
            name: name.into(),
            peer_id: net.peer_id().to_base58(),
            p2p_addrs: net.listen_addrs().iter().map(|a| a.to_string()).collect(),
            api_addr: String::new(),
        };
        (net, store, info)
    }

    /// Makes `store` a one-node cluster and waits until it leads.
    pub async fn lead_alone(store: &Store, me: NodeInfo) {
        store.initialize(vec![me]).await.expect("initialise");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.leader().map(|(id, _)| id) != Some(store.node_id()) {
            assert!(tokio::time::Instant::now() < deadline, "never led");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How long a write or barrier keeps retrying through elections.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// How long a forwarded write waits for this replica to apply it. A
/// replica this far behind is partitioned or overloaded; the write has
/// committed, so it answers anyway rather than hold the client.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use openraft::StorageError;
    use openraft::testing::{StoreBuilder, Suite};

    use super::db::open_db;
    use super::log::LogStore;
    use super::state_machine::StateMachine;
    use super::*;

    struct RocksBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = open_db(dir.path()).expect("open rocksdb");
            let sm = StateMachine::open(db.clone(), 100, 1 << 20, Default::default())?;
            Ok((dir, LogStore::new(db, None, Default::default()), sm))
        }
    }

    /// openraft's own conformance suite against the rocksdb log and state machine.
    #[test]
    fn openraft_storage_conformance() {
        Suite::test_all(RocksBuilder).expect("storage passes openraft's suite");
    }

    fn configmap(name: &str, len: usize) -> Op {
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"v": "x".repeat(len)},
        });
        Op::Put {
            key: ObjectKey::new(Kind::ConfigMap, "default", name),
            object: serde_json::to_vec(&object).expect("json"),
            precondition: Precondition::None,
        }
    }

    async fn write(store: &Store, op: Op) -> Result<Vec<OpOutcome>, StoreError> {
        store.write(Command { ops: vec![op] }).await
    }

    /// The leader's configured quota is replicated with its first write and
    /// refuses what would pass it; a delete makes room; the count survives a
    /// restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_past_the_quota_is_refused_until_a_delete_makes_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StoreConfig {
            quota_bytes: 200_000,
            ..testing::config()
        };
        let (net, store, me) = testing::open_with(dir.path(), "a", cfg.clone()).await;
        testing::lead_alone(&store, me).await;
        for name in ["a", "b", "c"] {
            write(&store, configmap(name, 60_000))
                .await
                .expect("fits the quota");
        }
        assert_eq!(store.quota_bytes(), Some(200_000));
        let used = store.state_bytes();
        assert!(used > 180_000, "{used}");
        let err = write(&store, configmap("d", 60_000))
            .await
            .expect_err("a write past the quota must be refused");
        assert!(
            matches!(
                err,
                StoreError::Txn(TxnError::QuotaExceeded { quota: 200_000, .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("200000"), "{err}");
        assert!(err.to_string().contains(&used.to_string()), "{err}");
        let d = ObjectKey::new(Kind::ConfigMap, "default", "d");
        assert!(store.get(&d).expect("read").is_none());
        write(
            &store,
            Op::Delete {
                key: ObjectKey::new(Kind::ConfigMap, "default", "a"),
                precondition: Precondition::MustExist,
            },
        )
        .await
        .expect("a delete past the quota works");
        write(&store, configmap("d", 60_000))
            .await
            .expect("fits again after the delete");
        let used = store.state_bytes();
        store.shutdown().await;
        net.shutdown().await;
        drop(store);

        let (net, store, _) = testing::open_with(dir.path(), "a", cfg).await;
        assert_eq!(store.state_bytes(), used, "the count after a restart");
        assert_eq!(store.quota_bytes(), Some(200_000));
        store.shutdown().await;
        net.shutdown().await;
    }

    /// A few huge entries are far fewer than `snapshot_every`: without
    /// compaction by bytes the log kept every one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_by_bytes_bounds_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threshold = 1024 * 1024;
        let cfg = StoreConfig {
            compact_log_bytes: threshold,
            ..testing::config()
        };
        let (net, store, me) = testing::open_with(dir.path(), "a", cfg).await;
        testing::lead_alone(&store, me).await;
        let entry = 300 * 1024;
        let mut peak = 0;
        for i in 0..80 {
            write(&store, configmap(&format!("c{}", i % 4), entry))
                .await
                .expect("write");
            peak = peak.max(store.log_bytes());
        }
        // The compactor looks at least every second.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.log_bytes() > 2 * threshold + entry as u64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log holds {} bytes after 80 writes of {entry}; threshold {threshold}",
                store.log_bytes()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Writes go on while a snapshot is built, so the peak has some
        // slack; unbounded, the log would reach 80 entries (24 MiB).
        assert!(peak < 8 * threshold, "the log reached {peak} bytes");
        let m = store.metrics();
        assert!(m.snapshot.is_some(), "no snapshot was taken");
        assert!(m.purged.is_some(), "nothing was purged");
        store.shutdown().await;
        net.shutdown().await;
    }
}
