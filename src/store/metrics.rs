//! The store's metrics (`shoal_raft_*`, `shoal_store_*`).

use crate::telemetry::{Def, count_histogram, counter, gauge, labelled_counter, seconds};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use super::{NodeId, NodeInfo};

/// `shoal_raft_leader_changes_total`.
pub const RAFT_LEADER_CHANGES_TOTAL: &str = "shoal_raft_leader_changes_total";
/// `shoal_raft_prevotes_total`.
pub const RAFT_PREVOTES_TOTAL: &str = "shoal_raft_prevotes_total";
/// `shoal_raft_term`.
pub const RAFT_TERM: &str = "shoal_raft_term";
/// `shoal_raft_is_leader`.
pub const RAFT_IS_LEADER: &str = "shoal_raft_is_leader";
/// `shoal_raft_voters`.
pub const RAFT_VOTERS: &str = "shoal_raft_voters";
/// `shoal_raft_learners`.
pub const RAFT_LEARNERS: &str = "shoal_raft_learners";
/// `shoal_raft_last_log_index`.
pub const RAFT_LAST_LOG_INDEX: &str = "shoal_raft_last_log_index";
/// `shoal_raft_last_applied_index`.
pub const RAFT_LAST_APPLIED_INDEX: &str = "shoal_raft_last_applied_index";
/// `shoal_raft_commit_index`.
pub const RAFT_COMMIT_INDEX: &str = "shoal_raft_commit_index";
/// `shoal_store_applied_entries_total`.
pub const APPLIED_ENTRIES_TOTAL: &str = "shoal_store_applied_entries_total";
/// `shoal_store_log_syncs_total`.
pub const LOG_SYNCS_TOTAL: &str = "shoal_store_log_syncs_total";
/// `shoal_store_log_appended_bytes_total`.
pub const LOG_APPENDED_BYTES_TOTAL: &str = "shoal_store_log_appended_bytes_total";
/// `shoal_store_snapshots_built_total`.
pub const SNAPSHOTS_BUILT_TOTAL: &str = "shoal_store_snapshots_built_total";
/// `shoal_store_snapshots_installed_total`.
pub const SNAPSHOTS_INSTALLED_TOTAL: &str = "shoal_store_snapshots_installed_total";
/// `shoal_store_refused_rpcs_total`.
pub const REFUSED_RPCS_TOTAL: &str = "shoal_store_refused_rpcs_total";
/// `shoal_store_snapshot_bytes`.
pub const SNAPSHOT_BYTES: &str = "shoal_store_snapshot_bytes";
/// `shoal_store_watch_history_bytes`.
pub const WATCH_HISTORY_BYTES: &str = "shoal_store_watch_history_bytes";
/// `shoal_store_write_seconds`.
pub const WRITE_SECONDS: &str = "shoal_store_write_seconds";
/// `shoal_store_apply_seconds`.
pub const APPLY_SECONDS: &str = "shoal_store_apply_seconds";
/// `shoal_store_log_append_seconds`.
pub const LOG_APPEND_SECONDS: &str = "shoal_store_log_append_seconds";
/// `shoal_store_log_appends_per_sync`.
pub const LOG_APPENDS_PER_SYNC: &str = "shoal_store_log_appends_per_sync";
/// `shoal_store_commands_per_entry`.
pub const COMMANDS_PER_ENTRY: &str = "shoal_store_commands_per_entry";
/// `shoal_store_state_bytes`.
pub const STATE_BYTES: &str = "shoal_store_state_bytes";
/// `shoal_store_quota_bytes`.
pub const QUOTA_BYTES: &str = "shoal_store_quota_bytes";
/// `shoal_store_quota_refusals_total`.
pub const QUOTA_REFUSALS_TOTAL: &str = "shoal_store_quota_refusals_total";
/// `shoal_store_log_bytes`.
pub const LOG_BYTES: &str = "shoal_store_log_bytes";
/// `shoal_store_log_compactions_total`.
pub const LOG_COMPACTIONS_TOTAL: &str = "shoal_store_log_compactions_total";
/// `shoal_store_staged_entries_total`.
pub const STAGED_ENTRIES_TOTAL: &str = "shoal_store_staged_entries_total";
/// `shoal_store_staged_entry_bytes_total`.
pub const STAGED_ENTRY_BYTES_TOTAL: &str = "shoal_store_staged_entry_bytes_total";
/// `shoal_store_catch_up_timeouts_total`.
pub const CATCH_UP_TIMEOUTS_TOTAL: &str = "shoal_store_catch_up_timeouts_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    counter(RAFT_LEADER_CHANGES_TOTAL, "Leader changes this node saw."),
    labelled_counter(
        RAFT_PREVOTES_TOTAL,
        "Pre-vote rounds this node ran, by result.",
        &[&[("result", "granted")], &[("result", "denied")]],
    ),
    gauge(RAFT_TERM, "Current Raft term."),
    gauge(RAFT_IS_LEADER, "1 on the Raft leader, else 0."),
    gauge(RAFT_VOTERS, "Voters in the Raft membership."),
    gauge(RAFT_LEARNERS, "Learners in the Raft membership."),
    gauge(
        RAFT_LAST_LOG_INDEX,
        "Index of the last entry in this node's log.",
    ),
    gauge(
        RAFT_LAST_APPLIED_INDEX,
        "Index of the last entry this node applied.",
    ),
    gauge(
        RAFT_COMMIT_INDEX,
        "Index of the last committed entry this node knows of.",
    ),
    counter(
        APPLIED_ENTRIES_TOTAL,
        "Log entries applied to the state machine.",
    ),
    counter(LOG_SYNCS_TOTAL, "fsyncs of the Raft log."),
    counter(LOG_APPENDED_BYTES_TOTAL, "Bytes appended to the Raft log."),
    counter(SNAPSHOTS_BUILT_TOTAL, "Snapshots built."),
    counter(
        SNAPSHOTS_INSTALLED_TOTAL,
        "Snapshots received from a leader and installed.",
    ),
    counter(
        REFUSED_RPCS_TOTAL,
        "Raft and store RPCs refused because the sender is not a member.",
    ),
    gauge(SNAPSHOT_BYTES, "Size of the last snapshot built, in bytes."),
    gauge(WATCH_HISTORY_BYTES, "Bytes held by the watch history ring."),
    seconds(
        WRITE_SECONDS,
        "Time from a write's submission to its result.",
    ),
    seconds(
        APPLY_SECONDS,
        "Time to apply one batch of entries to the state machine.",
    ),
    seconds(
        LOG_APPEND_SECONDS,
        "Time to append and fsync one batch of log entries.",
    ),
    count_histogram(LOG_APPENDS_PER_SYNC, "Log appends covered by one fsync."),
    count_histogram(
        COMMANDS_PER_ENTRY,
        "Client commands batched into one log entry.",
    ),
    gauge(
        STATE_BYTES,
        "Bytes of the replicated state (keys and objects) that count against store.quota_bytes.",
    ),
    gauge(
        QUOTA_BYTES,
        "The store quota (store.quota_bytes): writes that would grow the state past it are refused.",
    ),
    counter(
        QUOTA_REFUSALS_TOTAL,
        "Writes refused because they would grow the replicated state past store.quota_bytes.",
    ),
    gauge(
        LOG_BYTES,
        "Bytes of the Raft log entries kept on disk (compacted past store.compact_log_bytes).",
    ),
    labelled_counter(
        LOG_COMPACTIONS_TOTAL,
        "Snapshots and purges the store asked for because the log held store.compact_log_bytes, by trigger.",
        &[&[("trigger", "snapshot")], &[("trigger", "purge")]],
    ),
    counter(
        STAGED_ENTRIES_TOTAL,
        "Raft entries larger than a p2p frame sent to a follower in pieces.",
    ),
    counter(
        STAGED_ENTRY_BYTES_TOTAL,
        "Bytes of the Raft entries sent in pieces.",
    ),
    counter(
        CATCH_UP_TIMEOUTS_TOTAL,
        "Writes forwarded to the leader that this replica had not applied when the wait for it ended (a read here right after may miss them).",
    ),
];

pub(super) fn record_write(d: Duration) {
    histogram!(WRITE_SECONDS).record(d.as_secs_f64());
}

pub(super) fn record_catch_up_timeout() {
    counter!(CATCH_UP_TIMEOUTS_TOTAL).increment(1);
}

pub(super) fn record_batch(commands: usize) {
    histogram!(COMMANDS_PER_ENTRY).record(commands as f64);
}

pub(super) fn record_apply(d: Duration, entries: usize) {
    histogram!(APPLY_SECONDS).record(d.as_secs_f64());
    counter!(APPLIED_ENTRIES_TOTAL).increment(entries as u64);
}

pub(super) fn record_log_sync(appends: usize) {
    counter!(LOG_SYNCS_TOTAL).increment(1);
    histogram!(LOG_APPENDS_PER_SYNC).record(appends as f64);
}

pub(super) fn record_append_latency(d: Duration) {
    histogram!(LOG_APPEND_SECONDS).record(d.as_secs_f64());
}

pub(super) fn record_append_bytes(b: usize) {
    counter!(LOG_APPENDED_BYTES_TOTAL).increment(b as u64);
}

pub(super) fn record_snapshot_built(bytes: usize) {
    counter!(SNAPSHOTS_BUILT_TOTAL).increment(1);
    gauge!(SNAPSHOT_BYTES).set(bytes as f64);
}

pub(super) fn record_snapshot_installed() {
    counter!(SNAPSHOTS_INSTALLED_TOTAL).increment(1);
}

/// Mirrors openraft's metrics into gauges and counts leader changes.
pub(super) fn spawn_raft_metrics(mut rx: watch::Receiver<RaftMetrics<NodeId, NodeInfo>>) {
    tokio::spawn(async move {
        let mut last_leader = None;
        loop {
            {
                let m = rx.borrow_and_update();
                gauge!(RAFT_TERM).set(m.current_term as f64);
                gauge!(RAFT_LAST_LOG_INDEX).set(m.last_log_index.unwrap_or(0) as f64);
                gauge!(RAFT_LAST_APPLIED_INDEX)
                    .set(m.last_applied.map(|l| l.index).unwrap_or(0) as f64);
                gauge!(RAFT_IS_LEADER).set(if m.state == ServerState::Leader {
                    1.0
                } else {
                    0.0
                });
                let membership = m.membership_config.membership();
                gauge!(RAFT_VOTERS).set(membership.voter_ids().count() as f64);
                gauge!(RAFT_LEARNERS).set(membership.learner_ids().count() as f64);
                if let Some(l) = m.last_applied {
                    // A follower learns the commit index through what it applies.
                    gauge!(RAFT_COMMIT_INDEX).set(l.index as f64);
                }
                if m.current_leader != last_leader {
                    if m.current_leader.is_some() {
                        counter!(RAFT_LEADER_CHANGES_TOTAL).increment(1);
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
    counter!(REFUSED_RPCS_TOTAL).increment(1);
}

/// The replica's state size and the quota in force (none before a leader
/// has written one).
pub(super) fn record_usage(state_bytes: u64, quota: Option<u64>) {
    gauge!(STATE_BYTES).set(state_bytes as f64);
    if let Some(q) = quota {
        gauge!(QUOTA_BYTES).set(q as f64);
    }
}

/// A command refused because it would take the state past the quota.
pub(super) fn record_quota_refusal() {
    counter!(QUOTA_REFUSALS_TOTAL).increment(1);
}

/// Bytes of the Raft log entries kept on disk.
pub(super) fn record_log_bytes(bytes: u64) {
    gauge!(LOG_BYTES).set(bytes as f64);
}

/// A snapshot or purge the compactor asked for because of the log's bytes.
pub(super) fn record_compaction(what: &'static str) {
    counter!(LOG_COMPACTIONS_TOTAL, "trigger" => what).increment(1);
}

/// An entry larger than a frame was sent to a follower in pieces.
pub(super) fn record_staged_entry(bytes: u64) {
    counter!(STAGED_ENTRIES_TOTAL).increment(1);
    counter!(STAGED_ENTRY_BYTES_TOTAL).increment(bytes);
}
