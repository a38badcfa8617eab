//! Raft RPCs and leader forwarding over libp2p: the client side used by
//! openraft, and the handlers that serve peers. Bodies are bincode with a
//! size limit; a peer's bytes that do not decode are an error, never a panic.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::admission::Admission;
use super::batch::spawn_batcher;
use super::db::{decode, encode};
use super::election::{self, LeaderContact, PreVoteRequest, PreVoteResponse, Timing};
use super::proposer::LocalWrite;
use super::{
    Command, NodeId, NodeInfo, OpOutcome, ShoalRaft, Store, StoreError, TxnError, TypeConfig,
};
use crate::net::{Channel, Handler, Net, NetError};

#[derive(Serialize, Deserialize)]
enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    PreVote(PreVoteRequest),
}

#[derive(Serialize, Deserialize)]
enum RaftReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    PreVote(PreVoteResponse),
}

#[derive(Serialize, Deserialize)]
enum StoreRpc {
    Write(Vec<Command>),
    ReadIndex,
    Voters,
    /// Every node of the answering node's latest configuration, learners
    /// included; any member answers, not only the leader.
    Members,
}

#[derive(Debug, Serialize, Deserialize)]
enum ForwardError {
    Txn(TxnError),
    NotLeader,
    Failed(String),
}

#[derive(Serialize, Deserialize)]
enum StoreReply {
    Write(Vec<Result<Vec<OpOutcome>, ForwardError>>),
    ReadIndex(Result<u64, ForwardError>),
    Voters(Result<Vec<NodeId>, ForwardError>),
    Members(Vec<NodeId>),
}

/// Creates Raft clients for peers named in the membership.
pub struct RaftNet {
    net: Net,
}

impl RaftNet {
    /// A factory sending through `net`.
    pub fn new(net: Net) -> Self {
        RaftNet { net }
    }
}

/// A Raft client for one peer.
pub struct RaftClient {
    net: Net,
    target: NodeId,
    node: NodeInfo,
}

impl RaftNetworkFactory<TypeConfig> for RaftNet {
    type Network = RaftClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> RaftClient {
        RaftClient {
            net: self.net.clone(),
            target,
            node: node.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireError(String);

/// Largest AppendEntries body sent: the frame limit less room for framing.
const MAX_APPEND_BYTES: usize = crate::net::MAX_FRAME_BYTES - 1024 * 1024;

impl RaftClient {
    async fn call<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
    ) -> Result<RaftReply, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>> {
        let peer: PeerId = self.node.peer().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&WireError(format!(
                "bad PeerId {}",
                self.node.peer_id
            ))))
        })?;
        let body = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(peer, body).await
    }

    async fn send<E: std::error::Error>(
        &self,
        peer: PeerId,
        body: Vec<u8>,
    ) -> Result<RaftReply, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>> {
        let reply = self
            .net
            .request(peer, self.node.multiaddrs(), Channel::Raft, body)
            .await
            .map_err(|e| match e {
                NetError::Remote { .. } => RPCError::Network(NetworkError::new(&e)),
                _ => RPCError::Unreachable(Unreachable::new(&e)),
            })?;
        decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn unexpected<E: std::error::Error>() -> RPCError<NodeId, NodeInfo, RaftError<NodeId, E>> {
        RPCError::Network(NetworkError::new(&WireError(
            "reply of the wrong type".into(),
        )))
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let rpc = RaftRpc::Append(rpc);
        let body = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // Entries are capped well below the frame (MAX_ENTRY_BYTES), so a
        // shorter append always fits: ask openraft for one instead of sending
        // a frame the follower refuses forever.
        if body.len() > MAX_APPEND_BYTES && entries > 1 {
            let hint = (entries as u128 * MAX_APPEND_BYTES as u128 / body.len() as u128).max(1);
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint as u64),
            ));
        }
        let peer: PeerId = self.node.peer().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&WireError(format!(
                "bad PeerId {}",
                self.node.peer_id
            ))))
        })?;
        match self.send(peer, body).await? {
            RaftReply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(Self::unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(RaftRpc::Snapshot(rpc)).await? {
            RaftReply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(Self::unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        match self.call(RaftRpc::Vote(rpc)).await? {
            RaftReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(Self::unexpected()),
        }
    }
}

/// Sends a pre-vote to one voter; `None` when it cannot be reached or its
/// answer does not decode.
pub(super) async fn ask_pre_vote(
    net: &Net,
    node: &NodeInfo,
    req: PreVoteRequest,
) -> Option<PreVoteResponse> {
    let peer = node.peer()?;
    let body = encode(&RaftRpc::PreVote(req)).ok()?;
    let reply = net
        .request(peer, node.multiaddrs(), Channel::Raft, body)
        .await
        .ok()?;
    match decode(&reply).ok()? {
        RaftReply::PreVote(r) => Some(r),
        _ => None,
    }
}

/// Serves Raft RPCs from the nodes of the configuration.
pub struct RaftHandler {
    raft: ShoalRaft,
    contact: LeaderContact,
    timing: Timing,
    admission: Arc<Admission>,
}

impl RaftHandler {
    /// A handler feeding `raft`, noting accepted leader contact in `contact`.
    pub(super) fn new(
        raft: ShoalRaft,
        contact: LeaderContact,
        timing: Timing,
        admission: Arc<Admission>,
    ) -> Self {
        RaftHandler {
            raft,
            contact,
            timing,
            admission,
        }
    }
}

fn serve<F>(fut: F) -> BoxFuture<'static, Result<Vec<u8>, String>>
where
    F: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    fut.boxed()
}

impl Handler for RaftHandler {
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let raft = self.raft.clone();
        let contact = self.contact.clone();
        let timing = self.timing;
        let admission = self.admission.clone();
        serve(async move {
            if !admission.admits(&from).await {
                return Err(NOT_A_MEMBER.into());
            }
            let rpc: RaftRpc = decode(&body).map_err(|e| format!("undecodable raft rpc: {e}"))?;
            let reply = match rpc {
                RaftRpc::Append(r) => {
                    let res = raft.append_entries(r).await;
                    // Anything but a refusal by vote comes from the leader this node follows.
                    if matches!(&res, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                        contact.touch();
                    }
                    RaftReply::Append(res)
                }
                RaftRpc::Vote(r) => {
                    let res = raft.vote(r).await;
                    // A vote given restarts this node's quiet time, as in Raft: the
                    // candidate may have just won, and its first heartbeat is on
                    // its way (two campaigns right after a win deposed the winner).
                    if matches!(&res, Ok(v) if v.vote_granted) {
                        contact.touch();
                    }
                    RaftReply::Vote(res)
                }
                RaftRpc::Snapshot(r) => {
                    let vote = r.vote;
                    let res = raft.install_snapshot(r).await;
                    if matches!(&res, Ok(a) if a.vote == vote) {
                        contact.touch();
                    }
                    RaftReply::Snapshot(res)
                }
                RaftRpc::PreVote(r) => {
                    RaftReply::PreVote(election::answer(&raft, &contact, &timing, &r))
                }
            };
            encode(&reply).map_err(|e| e.to_string())
        })
    }
}

/// Serves writes and read-index requests forwarded by followers.
pub struct StoreHandler {
    store: Store,
    admission: Arc<Admission>,
}

impl StoreHandler {
    /// A handler for this node's store.
    pub(super) fn new(store: Store, admission: Arc<Admission>) -> Self {
        StoreHandler { store, admission }
    }
}

/// The answer to a sender outside the Raft configuration.
const NOT_A_MEMBER: &str = "not a member of this cluster's Raft configuration";

impl Handler for StoreHandler {
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let store = self.store.clone();
        let admission = self.admission.clone();
        serve(async move {
            let rpc: StoreRpc = decode(&body).map_err(|e| format!("undecodable store rpc: {e}"))?;
            // Asking who the voters or members are is open to every keyed
            // peer: a removed node asks to learn it was removed, and a lagging
            // one to learn who joined.
            if matches!(rpc, StoreRpc::Write(_) | StoreRpc::ReadIndex)
                && !admission.admits(&from).await
            {
                return Err(NOT_A_MEMBER.into());
            }
            let reply = match rpc {
                StoreRpc::Write(cmds) => {
                    // Proposed together, so the leader's proposer puts them in one entry.
                    let results = futures::future::join_all(cmds.into_iter().map(|cmd| {
                        let store = store.clone();
                        async move {
                            match store.propose_local(cmd).await {
                                Ok(Ok(r)) => Ok(r),
                                Ok(Err(e)) => Err(ForwardError::Txn(e)),
                                Err(LocalWrite::NotLeader(_)) => Err(ForwardError::NotLeader),
                                Err(LocalWrite::Failed(e)) => Err(ForwardError::Failed(e)),
                            }
                        }
                    }))
                    .await;
                    StoreReply::Write(results)
                }
                StoreRpc::ReadIndex => {
                    StoreReply::ReadIndex(match store.read_index_local().await {
                        Ok(i) => Ok(i),
                        Err(StoreError::NoLeader) => Err(ForwardError::NotLeader),
                        Err(e) => Err(ForwardError::Failed(e.to_string())),
                    })
                }
                StoreRpc::Voters => StoreReply::Voters(match store.leader() {
                    Some((id, _)) if id == store.node_id() => Ok(store.voter_ids()),
                    _ => Err(ForwardError::NotLeader),
                }),
                StoreRpc::Members => StoreReply::Members({
                    let rx = store.raft.metrics();
                    let m = rx.borrow();
                    m.membership_config
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .collect()
                }),
            };
            encode(&reply).map_err(|e| e.to_string())
        })
    }
}

/// Decodes `body` as every message a peer can send this module: a request
/// on `channel` (Raft or Store) and each reply this node reads back. For the
/// fuzz targets, which must reach the real decoders; returns how many of the
/// decodes succeeded.
pub(crate) fn decode_peer_body(channel: Channel, body: &[u8]) -> usize {
    let mut ok = 0;
    match channel {
        Channel::Raft => {
            ok += usize::from(decode::<RaftRpc>(body).is_ok());
            ok += usize::from(decode::<RaftReply>(body).is_ok());
        }
        Channel::Store => {
            ok += usize::from(decode::<StoreRpc>(body).is_ok());
            ok += usize::from(decode::<StoreReply>(body).is_ok());
        }
        Channel::Logs | Channel::Gossip => {}
    }
    ok
}

async fn call_leader(
    net: &Net,
    leader: &NodeInfo,
    rpc: StoreRpc,
) -> Result<StoreReply, StoreError> {
    let peer = leader.peer().ok_or_else(|| {
        StoreError::Forward(format!("leader has a bad PeerId {}", leader.peer_id))
    })?;
    let body = encode(&rpc).map_err(|e| StoreError::Forward(e.to_string()))?;
    let reply = net
        .request(peer, leader.multiaddrs(), Channel::Store, body)
        .await
        .map_err(|e| StoreError::Forward(e.to_string()))?;
    decode(&reply)
        .map_err(|e| StoreError::Forward(format!("undecodable reply from the leader: {e}")))
}

fn from_forward(e: ForwardError) -> StoreError {
    match e {
        ForwardError::Txn(t) => StoreError::Txn(t),
        ForwardError::NotLeader => StoreError::NoLeader,
        ForwardError::Failed(m) => StoreError::Forward(m),
    }
}

type ForwardWaiter = (
    NodeInfo,
    Command,
    oneshot::Sender<Result<Vec<OpOutcome>, StoreError>>,
);

/// Forwards writes to the leader, many commands per request under load.
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::UnboundedSender<ForwardWaiter>,
}

/// Largest number of commands forwarded in one request.
const FORWARD_BATCH: usize = 512;

impl Forwarder {
    /// Starts the forwarding task.
    pub fn spawn(net: Net) -> Forwarder {
        let tx = spawn_batcher(
            FORWARD_BATCH,
            super::MAX_ENTRY_BYTES,
            |w: &ForwardWaiter| w.1.size_bytes(),
            2,
            move |batch: Vec<ForwardWaiter>| {
                let net = net.clone();
                async move { forward_batch(net, batch).await }
            },
        );
        Forwarder { tx }
    }

    /// Sends one command to `leader` and waits for its outcome.
    pub async fn forward(
        &self,
        leader: NodeInfo,
        cmd: Command,
    ) -> Result<Vec<OpOutcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((leader, cmd, reply))
            .map_err(|_| StoreError::Forward("the forwarder has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Forward("the forwarder has stopped".into()))?
    }
}

async fn forward_batch(net: Net, batch: Vec<ForwardWaiter>) {
    // Normally every command names the same leader; group in case it just changed.
    let mut groups: Vec<(NodeInfo, Vec<Command>, Vec<oneshot::Sender<_>>)> = Vec::new();
    for (leader, cmd, reply) in batch {
        match groups.iter_mut().find(|g| g.0 == leader) {
            Some(g) => {
                g.1.push(cmd);
                g.2.push(reply);
            }
            None => groups.push((leader, vec![cmd], vec![reply])),
        }
    }
    for (leader, cmds, replies) in groups {
        let n = cmds.len();
        match call_leader(&net, &leader, StoreRpc::Write(cmds)).await {
            Ok(StoreReply::Write(results)) if results.len() == n => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r.map_err(from_forward));
                }
            }
            Ok(_) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Forward(
                        "malformed reply from the leader".into(),
                    )));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Forward(msg.clone())));
                }
            }
        }
    }
}

/// Asks the leader for its read index.
pub async fn forward_read_index(net: &Net, leader: &NodeInfo) -> Result<u64, StoreError> {
    match call_leader(net, leader, StoreRpc::ReadIndex).await? {
        StoreReply::ReadIndex(r) => r.map_err(from_forward),
        _ => Err(StoreError::Forward("reply of the wrong type".into())),
    }
}

/// Asks the leader for the voters of its membership.
pub async fn forward_voters(net: &Net, leader: &NodeInfo) -> Result<Vec<NodeId>, StoreError> {
    match call_leader(net, leader, StoreRpc::Voters).await? {
        StoreReply::Voters(r) => r.map_err(from_forward),
        _ => Err(StoreError::Forward("reply of the wrong type".into())),
    }
}

/// The nodes of `peer`'s latest Raft configuration, as it sees them.
pub(super) async fn forward_members(net: &Net, peer: &NodeInfo) -> Result<Vec<NodeId>, StoreError> {
    match call_leader(net, peer, StoreRpc::Members).await? {
        StoreReply::Members(ids) => Ok(ids),
        _ => Err(StoreError::Forward("reply of the wrong type".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any connected peer could append, vote and write: the handlers ignored
    /// the sender. A node outside the configuration is now refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_outside_the_configuration_cannot_write_vote_or_append() {
        let (da, db) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (net_a, a, info_a) = super::super::testing::open(da.path(), "a").await;
        let (net_b, b, _) = super::super::testing::open(db.path(), "b").await;
        super::super::testing::lead_alone(&a, info_a.clone()).await;
        let pod = crate::resource::ObjectKey::new(crate::resource::Kind::ConfigMap, "default", "x");
        let cmd = Command {
            ops: vec![super::super::Op::Put {
                key: pod.clone(),
                object: br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}"#.to_vec(),
                precondition: super::super::Precondition::None,
            }],
        };
        let write = call_leader(&net_b, &info_a, StoreRpc::Write(vec![cmd])).await;
        let Err(e) = write else {
            panic!("a stranger's write was served");
        };
        assert!(e.to_string().contains(NOT_A_MEMBER), "{e}");
        assert!(
            a.get(&pod).expect("read").is_none(),
            "the write was applied"
        );
        // A vote request at a far higher term would depose the leader.
        let vote = RaftRpc::Vote(VoteRequest::new(
            openraft::Vote::new(1_000, node_id_of_peer(&net_b)),
            None,
        ));
        let peer = info_a.peer().expect("peer id");
        let res = net_b
            .request(
                peer,
                info_a.multiaddrs(),
                Channel::Raft,
                encode(&vote).expect("encode"),
            )
            .await;
        assert!(
            matches!(&res, Err(NetError::Remote { msg, .. }) if msg.contains(NOT_A_MEMBER)),
            "{res:?}"
        );
        assert_eq!(
            a.leader().map(|(id, _)| id),
            Some(a.node_id()),
            "the leader was deposed"
        );
        assert!(a.metrics().current_term < 1_000);
        // Asking who the voters are stays open to keyed peers (a removed node asks).
        let voters = forward_voters(&net_b, &info_a).await.expect("voters");
        assert_eq!(voters, vec![a.node_id()]);
        for (net, store) in [(net_a, a), (net_b, b)] {
            store.shutdown().await;
            net.shutdown().await;
        }
    }

    fn node_id_of_peer(net: &Net) -> NodeId {
        super::super::node_id_of(&net.peer_id())
    }

    /// A peer's bytes are untrusted: garbage, truncations and huge length
    /// prefixes must decode to errors, never panic or allocate wildly.
    #[test]
    fn undecodable_peer_bytes_are_errors() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..512usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode::<RaftRpc>(&bytes);
            let _ = decode::<StoreRpc>(&bytes);
            let _ = decode::<StoreReply>(&bytes);
        }
        // A vector claiming u64::MAX elements.
        let mut huge = vec![0u8]; // StoreRpc::Write
        huge.push(253);
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<StoreRpc>(&huge).is_err());
        // A valid message truncated at every point.
        let cmd = Command {
            ops: vec![super::super::Op::Delete {
                key: crate::resource::ObjectKey::new(crate::resource::Kind::Pod, "default", "x"),
                precondition: super::super::Precondition::None,
            }],
        };
        let full = encode(&StoreRpc::Write(vec![cmd])).expect("encode");
        for cut in 0..full.len() {
            assert!(
                decode::<StoreRpc>(&full[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        assert!(decode::<StoreRpc>(&full).is_ok());
    }
}
