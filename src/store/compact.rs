//! Log compaction by bytes. openraft snapshots every `snapshot_every`
//! entries and keeps `keep_logs_behind_snapshot` entries behind the
//! snapshot, both counted in entries: a few huge entries (each up to
//! `MAX_ENTRY_BYTES`) would grow the log on disk without bound. This task
//! asks for a snapshot once the entries after the last one hold
//! `compact_log_bytes`, and purges what lies behind the snapshot beyond as
//! many bytes again, so the log stays under about twice the threshold plus
//! one entry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;
use tracing::debug;

use super::log::LogSizes;
use super::{ShoalRaft, metrics};

/// What the log's sizes call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Plan {
    /// Build a snapshot: the entries after the last one hold the threshold.
    pub snapshot: bool,
    /// Purge up to and including this index, behind the snapshot.
    pub purge_upto: Option<u64>,
}

/// Decides from the entries' sizes (by index) and the last snapshot's index.
pub(super) fn plan(sizes: &BTreeMap<u64, u64>, snapshot: Option<u64>, threshold: u64) -> Plan {
    let after_from = snapshot.map_or(0, |s| s.saturating_add(1));
    let after: u64 = sizes.range(after_from..).map(|(_, b)| *b).sum();
    let purge_upto = snapshot.and_then(|s| {
        let mut kept = 0u64;
        for (&i, &b) in sizes.range(..=s).rev() {
            kept = kept.saturating_add(b);
            if kept > threshold {
                return Some(i);
            }
        }
        None
    });
    Plan {
        snapshot: after >= threshold,
        purge_upto,
    }
}

/// How soon a snapshot is asked for again when the last request brought
/// none (a snapshot of a large state takes a while).
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);
/// At most one look at the log this often, however fast entries come.
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Watches the log's bytes and triggers snapshots and purges; ends with Raft.
pub(super) fn spawn(raft: ShoalRaft, sizes: Arc<LogSizes>, threshold: u64) {
    tokio::spawn(async move {
        let mut asked: Option<(Option<u64>, Instant)> = None;
        loop {
            sizes.appended(Duration::from_secs(1)).await;
            let (state, snapshot, applied) = {
                let rx = raft.metrics();
                let m = rx.borrow();
                (
                    m.state,
                    m.snapshot.map(|l| l.index),
                    m.last_applied.map(|l| l.index),
                )
            };
            if state == ServerState::Shutdown {
                return;
            }
            let p = sizes.with(|m| plan(m, snapshot, threshold));
            // A snapshot covers only applied entries: none newer, none to take.
            let pending =
                asked.is_some_and(|(at, when)| at == snapshot && when.elapsed() < SNAPSHOT_RETRY);
            if p.snapshot && applied > snapshot && !pending {
                debug!(
                    ?snapshot,
                    "the log since the last snapshot passed {threshold} bytes: snapshot"
                );
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                metrics::record_compaction("snapshot");
                asked = Some((snapshot, Instant::now()));
            }
            if let Some(upto) = p.purge_upto {
                debug!(
                    upto,
                    "the log behind the snapshot passed {threshold} bytes: purge"
                );
                if raft.trigger().purge_log(upto).await.is_err() {
                    return;
                }
                metrics::record_compaction("purge");
            }
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(v: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn a_snapshot_is_due_once_the_entries_after_the_last_hold_the_threshold() {
        let m = sizes(&[(1, 40), (2, 40), (3, 40)]);
        assert!(!plan(&m, None, 200).snapshot);
        assert!(plan(&m, None, 120).snapshot);
        // Only what follows the snapshot counts.
        assert!(!plan(&m, Some(1), 120).snapshot);
        assert!(!plan(&BTreeMap::new(), None, 1).snapshot);
    }

    #[test]
    fn what_lies_behind_the_snapshot_beyond_the_threshold_is_purged() {
        let m = sizes(&[(4, 100), (5, 100), (6, 100), (7, 100), (8, 500)]);
        // Behind snapshot 7: 7, 6 fit in 250 bytes, 5 does not: purge up to 5.
        assert_eq!(plan(&m, Some(7), 250).purge_upto, Some(5));
        assert_eq!(plan(&m, Some(7), 1_000).purge_upto, None);
        assert_eq!(plan(&m, None, 10).purge_upto, None);
        // One entry larger than the threshold goes as soon as a snapshot covers it.
        assert_eq!(plan(&m, Some(8), 400).purge_upto, Some(8));
    }
}
