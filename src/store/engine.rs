//! The owner of the node's rocksdb: the one place that closes it.
//!
//! RocksDB requires that every thread using a database has stopped, and its
//! background work has been cancelled, before the process exits and its
//! static destructors run. A store that is only dropped leaves that to
//! whichever thread happens to drop the last reference, possibly while the
//! process is exiting; so [`super::Store::shutdown`] closes it explicitly and
//! a store dropped without that says so loudly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocksdb::DB;
use tokio::sync::{Mutex, oneshot};
use tracing::{error, warn};

/// How long shutdown waits for the WAL syncer after Raft has stopped.
const SYNCER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by every clone of a store; closes the database once.
pub(super) struct Engine {
    db: Arc<DB>,
    dir: PathBuf,
    syncer_done: Mutex<Option<oneshot::Receiver<()>>>,
    /// Held by Raft's users of the database (log store and readers, state
    /// machine and snapshot builders): the state machine worker and
    /// replication tasks end a little after Raft's shutdown returns.
    raft_users: Arc<()>,
    closed: AtomicBool,
}

impl Engine {
    /// Takes ownership of the database and of the signal that the log's
    /// syncer thread has ended.
    pub(super) fn new(db: Arc<DB>, dir: PathBuf, syncer_done: oneshot::Receiver<()>) -> Engine {
        Engine {
            db,
            dir,
            syncer_done: Mutex::new(Some(syncer_done)),
            raft_users: Arc::new(()),
            closed: AtomicBool::new(false),
        }
    }

    /// A token for one of Raft's users of the database to hold.
    pub(super) fn raft_users(&self) -> Arc<()> {
        self.raft_users.clone()
    }

    /// Waits for the syncer thread (Raft must have stopped, so the log store
    /// is dropped) and for Raft's tasks to let go of the database, then
    /// cancels RocksDB's flushes and compactions and waits for them. Later
    /// calls return at once.
    pub(super) async fn close(&self) {
        let Some(done) = self.syncer_done.lock().await.take() else {
            return;
        };
        match tokio::time::timeout(SYNCER_STOP_TIMEOUT, done).await {
            Ok(_) => {}
            Err(_) => warn!(
                dir = %self.dir.display(),
                "the log sync thread did not stop within {SYNCER_STOP_TIMEOUT:?} of Raft's shutdown"
            ),
        }
        let deadline = tokio::time::Instant::now() + SYNCER_STOP_TIMEOUT;
        while Arc::strong_count(&self.raft_users) > 1 {
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    dir = %self.dir.display(),
                    users = Arc::strong_count(&self.raft_users) - 1,
                    "Raft's tasks still hold the database {SYNCER_STOP_TIMEOUT:?} after its shutdown"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let db = self.db.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || db.cancel_all_background_work(true)).await
        {
            error!("cancelling rocksdb background work: {e}");
        }
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`Engine::close`] has completed.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.is_closed() {
            return;
        }
        error!(
            dir = %self.dir.display(),
            "a store was dropped without Store::shutdown; closing its rocksdb now, \
             wherever this thread is (at process exit this can corrupt the heap)"
        );
        self.db.cancel_all_background_work(true);
        // Tests must shut their stores down; a forgotten one fails loudly
        // there (not while already unwinding, which would abort).
        debug_assert!(
            std::thread::panicking(),
            "store at {} dropped without Store::shutdown",
            self.dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Engine;
    use crate::store::db::open_db;

    fn engine(dir: &std::path::Path) -> (Engine, tokio::sync::oneshot::Sender<()>) {
        let db = open_db(dir).expect("open rocksdb");
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Engine::new(db, dir.to_path_buf(), rx), tx)
    }

    /// A store that is only dropped is caught in debug builds, the ones tests run.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "dropped without Store::shutdown")]
    fn an_engine_dropped_without_close_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (engine, _syncer) = engine(dir.path());
        drop(engine);
    }

    #[tokio::test]
    async fn close_waits_for_the_syncer_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (engine, syncer) = engine(dir.path());
        let engine = std::sync::Arc::new(engine);
        let closing = tokio::spawn({
            let engine = engine.clone();
            async move { engine.close().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !engine.is_closed(),
            "close returned before the syncer ended"
        );
        syncer.send(()).expect("close is waiting");
        closing.await.expect("close");
        assert!(engine.is_closed());
        engine.close().await;
        drop(engine);
    }
}
