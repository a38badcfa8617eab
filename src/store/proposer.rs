//! Batches concurrent commands into one Raft entry on the leader.
//!
//! Every entry costs the leader one log append and fsync and one round of
//! replication, so the proposer takes every command that queued up while the
//! previous entry was in flight and proposes them together. A command keeps
//! its own atomicity: the state machine applies the commands of an entry one
//! after another, each all-or-nothing.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use super::batch::spawn_batcher;
use super::state_machine::{Op, Usage};
use super::{Command, CommandResult, NodeId, NodeInfo, Proposal, ShoalRaft};

/// Largest number of commands in one entry.
const MAX_BATCH: usize = 512;
/// Entries in flight at once. One measured best on 2 cores (see
/// docs/benchmarks.md): the next batch forms while the current one commits.
const MAX_IN_FLIGHT: usize = 1;

/// Why a local proposal did not produce a result.
#[derive(Debug, Clone)]
pub(super) enum LocalWrite {
    /// This node does not lead; the leader, when known.
    NotLeader(Option<(NodeId, NodeInfo)>),
    /// Raft refused or stopped.
    Failed(String),
}

type Waiter = (Command, oneshot::Sender<Result<CommandResult, LocalWrite>>);

/// Handle to the batching task.
#[derive(Clone)]
pub(super) struct Proposer {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Proposer {
    /// Starts the batching task for `raft`. Its entries carry this node's
    /// `quota_bytes` whenever the replicated quota (in `usage`) differs.
    pub(super) fn spawn(raft: ShoalRaft, usage: Arc<Usage>, quota_bytes: u64) -> Proposer {
        let tx = spawn_batcher(
            MAX_BATCH,
            super::MAX_ENTRY_BYTES,
            |w: &Waiter| w.0.size_bytes(),
            MAX_IN_FLIGHT,
            move |batch: Vec<Waiter>| {
                let raft = raft.clone();
                let stamp = (usage.quota_bytes() != Some(quota_bytes)).then_some(quota_bytes);
                async move { propose_batch(raft, batch, stamp).await }
            },
        );
        Proposer { tx }
    }

    /// Proposes one command and waits for its result.
    pub(super) async fn propose(&self, cmd: Command) -> Result<CommandResult, LocalWrite> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .map_err(|_| LocalWrite::Failed("the proposer has stopped".into()))?;
        rx.await
            .map_err(|_| LocalWrite::Failed("the proposer has stopped".into()))?
    }
}

/// Proposes one entry; `quota` first sets the replicated quota to this
/// leader's, ahead of the batch's commands, so they are held to it.
async fn propose_batch(raft: ShoalRaft, batch: Vec<Waiter>, quota: Option<u64>) {
    let (mut cmds, waiters): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
    super::metrics::record_batch(cmds.len());
    if let Some(bytes) = quota {
        cmds.insert(
            0,
            Command {
                ops: vec![Op::SetQuota { bytes }],
            },
        );
    }
    let result = match raft.client_write(Proposal(cmds)).await {
        Ok(resp) => Ok(resp
            .data
            .into_iter()
            .skip(usize::from(quota.is_some()))
            .collect::<Vec<_>>()),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(LocalWrite::NotLeader(f.leader_id.zip(f.leader_node)))
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(LocalWrite::Failed(e.to_string()))
        }
        Err(RaftError::Fatal(e)) => Err(LocalWrite::Failed(e.to_string())),
    };
    match result {
        Ok(results) => {
            for (w, r) in waiters.into_iter().zip(results) {
                let _ = w.send(Ok(r));
            }
        }
        Err(e) => {
            for w in waiters {
                let _ = w.send(Err(e.clone()));
            }
        }
    }
}
