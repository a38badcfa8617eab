//! The store's metrics (`shoal_raft_*`, `shoal_store_*`).

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use super::{NodeId, NodeInfo};

pub(super) fn record_write(d: Duration) {
    histogram!("shoal_store_write_seconds").record(d.as_secs_f64());
}

pub(super) fn record_batch(commands: usize) {
    histogram!("shoal_store_commands_per_entry").record(commands as f64);
}

pub(super) fn record_apply(d: Duration, entries: usize) {
    histogram!("shoal_store_apply_seconds").record(d.as_secs_f64());
    counter!("shoal_store_applied_entries_total").increment(entries as u64);
}

pub(super) fn record_log_sync(appends: usize) {
    counter!("shoal_store_log_syncs_total").increment(1);
    histogram!("shoal_store_log_appends_per_sync").record(appends as f64);
}

pub(super) fn record_append_latency(d: Duration) {
    histogram!("shoal_store_log_append_seconds").record(d.as_secs_f64());
}

pub(super) fn record_append_bytes(b: usize) {
    counter!("shoal_store_log_appended_bytes_total").increment(b as u64);
}

pub(super) fn record_snapshot_built(bytes: usize) {
    counter!("shoal_store_snapshots_built_total").increment(1);
    gauge!("shoal_store_snapshot_bytes").set(bytes as f64);
}

pub(super) fn record_snapshot_installed() {
    counter!("shoal_store_snapshots_installed_total").increment(1);
}

/// Mirrors openraft's metrics into gauges and counts leader changes.
pub(super) fn spawn_raft_metrics(mut rx: watch::Receiver<RaftMetrics<NodeId, NodeInfo>>) {
    tokio::spawn(async move {
        let mut last_leader = None;
        loop {
            {
                let m = rx.borrow_and_update();
                gauge!("shoal_raft_term").set(m.current_term as f64);
                gauge!("shoal_raft_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
                gauge!("shoal_raft_last_applied_index")
                    .set(m.last_applied.map(|l| l.index).unwrap_or(0) as f64);
                gauge!("shoal_raft_is_leader").set(if m.state == ServerState::Leader {
                    1.0
                } else {
                    0.0
                });
                let membership = m.membership_config.membership();
                gauge!("shoal_raft_voters").set(membership.voter_ids().count() as f64);
                gauge!("shoal_raft_learners").set(membership.learner_ids().count() as f64);
                if let Some(l) = m.last_applied {
                    // A follower learns the commit index through what it applies.
                    gauge!("shoal_raft_commit_index").set(l.index as f64);
                }
                if m.current_leader != last_leader {
                    if m.current_leader.is_some() {
                        counter!("shoal_raft_leader_changes_total").increment(1);
                    }
                    last_leader = m.current_leader;
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}

/// A Raft or store RPC refused because its sender is not in the configuration.
pub(super) fn record_refused_rpc() {
    counter!("shoal_store_refused_rpcs_total").increment(1);
}

/// The replica's state size and the quota in force (none before a leader
/// has written one).
pub(super) fn record_usage(state_bytes: u64, quota: Option<u64>) {
    gauge!("shoal_store_state_bytes").set(state_bytes as f64);
    if let Some(q) = quota {
        gauge!("shoal_store_quota_bytes").set(q as f64);
    }
}

/// A command refused because it would take the state past the quota.
pub(super) fn record_quota_refusal() {
    counter!("shoal_store_quota_refusals_total").increment(1);
}

/// Bytes of the Raft log entries kept on disk.
pub(super) fn record_log_bytes(bytes: u64) {
    gauge!("shoal_store_log_bytes").set(bytes as f64);
}

/// A snapshot or purge the compactor asked for because of the log's bytes.
pub(super) fn record_compaction(what: &'static str) {
    counter!("shoal_store_log_compactions_total", "trigger" => what).increment(1);
}

/// An entry larger than a frame was sent to a follower in pieces.
pub(super) fn record_staged_entry(bytes: u64) {
    counter!("shoal_store_staged_entries_total").increment(1);
    counter!("shoal_store_staged_entry_bytes_total").increment(bytes);
}
