//! The Raft log in rocksdb: entries in the `logs` column family keyed by
//! big-endian index, vote and committed id in `meta`.
//!
//! Appends are written at once (so replication can read them) and made durable
//! by a separate syncer thread that fsyncs the WAL once for every batch of
//! appends waiting on it: group commit. An append is acknowledged to openraft
//! only after the sync that covers it.
// openraft's traits fix `StorageError` as the error type; boxing it here would
// only move the allocation.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::db::{CF_LOGS, CF_META, cf, decode, encode};
use super::{NodeId, TypeConfig, metrics};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

fn idx_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn key_idx(k: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = k.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

type Sync = (LogFlushed<TypeConfig>, std::time::Instant);

/// The Raft log storage.
pub struct LogStore {
    db: Arc<DB>,
    syncer: Syncer,
    /// Counts Raft's users of the database, for the store's shutdown.
    users: Arc<()>,
    sizes: Arc<LogSizes>,
}

/// The encoded size of every entry the log holds, by index, so compaction
/// can go by bytes without reading the log.
#[derive(Debug, Default)]
pub struct LogSizes {
    sizes: Mutex<BTreeMap<u64, u64>>,
    notify: tokio::sync::Notify,
}

impl LogSizes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        // A panic elsewhere leaves the map itself consistent.
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the sizes, by index.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<u64, u64>) -> R) -> R {
        f(&self.lock())
    }

    /// Bytes of all entries held.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Waits until entries were appended (or `timeout` passed).
    pub async fn appended(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    fn record(&self, f: impl FnOnce(&mut BTreeMap<u64, u64>)) {
        let total = {
            let mut m = self.lock();
            f(&mut m);
            m.values().sum::<u64>()
        };
        metrics::record_log_bytes(total);
    }
}

/// The WAL syncer thread and the way to stop it. Stopping joins the thread,
/// so that no thread still holds the database once its owner has let it go:
/// a detached syncer dropping the last `Arc<DB>` while the process exits ran
/// RocksDB's close concurrently with its static destructors (SIGABRT at exit).
struct Syncer {
    tx: Option<std_mpsc::Sender<Sync>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(db: Arc<DB>, done: Option<tokio::sync::oneshot::Sender<()>>) -> Syncer {
        let (tx, rx) = std_mpsc::channel::<Sync>();
        let handle = std::thread::Builder::new()
            .name("shoal-log-sync".into())
            .spawn(move || {
                syncer(db, rx);
                // The database reference is gone by now: tell the store's shutdown.
                if let Some(done) = done {
                    let _ = done.send(());
                }
            })
            .map_err(|e| tracing::error!("cannot start the log sync thread: {e}"))
            .ok();
        Syncer {
            tx: Some(tx),
            handle,
        }
    }

    fn send(&self, item: Sync) -> Result<(), StorageError<NodeId>> {
        let stopped = || {
            StorageIOError::<NodeId>::write_logs(&std::io::Error::other("log sync thread stopped"))
                .into()
        };
        match &self.tx {
            Some(tx) => tx.send(item).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }

    /// Closes the queue and waits for the thread, which first acknowledges
    /// what is already queued.
    fn stop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("the log sync thread panicked");
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LogStore {
    /// Wraps the shared database and starts the WAL syncer thread; `done`
    /// fires when that thread has ended and let go of the database.
    pub fn new(
        db: Arc<DB>,
        done: Option<tokio::sync::oneshot::Sender<()>>,
        users: Arc<()>,
    ) -> Self {
        let syncer = Syncer::start(db.clone(), done);
        let sizes = Arc::new(LogSizes::default());
        match scan_sizes(&db) {
            Ok(m) => sizes.record(|s| *s = m),
            // Only compaction by bytes misses these entries; Raft reads them itself.
            Err(e) => tracing::warn!("cannot size the Raft log: {e}"),
        }
        LogStore {
            db,
            syncer,
            users,
            sizes,
        }
    }

    /// The entries' sizes, shared with the compactor.
    pub fn sizes(&self) -> Arc<LogSizes> {
        self.sizes.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeId>> {
        let cf = cf(&self.db, CF_META).map_err(|e| StorageIOError::<NodeId>::read(&e))?;
        match self.db.get_cf(cf, key) {
            Ok(Some(b)) => decode(&b)
                .map(Some)
                .map_err(|e| StorageIOError::<NodeId>::read(&e).into()),
            Ok(None) => Ok(None),
            Err(e) => Err(StorageIOError::<NodeId>::read(&e).into()),
        }
    }

    fn put_meta_sync<T: serde::Serialize>(
        &self,
        key: &[u8],
        v: &T,
    ) -> Result<(), StorageError<NodeId>> {
        let cf = cf(&self.db, CF_META).map_err(|e| StorageIOError::<NodeId>::write(&e))?;
        let b = encode(v).map_err(|e| StorageIOError::<NodeId>::write(&e))?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .put_cf_opt(cf, key, b, &wo)
            .map_err(|e| StorageIOError::<NodeId>::write(&e).into())
    }

    fn last_entry(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let cf = cf(&self.db, CF_LOGS).map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        let mut it = self.db.iterator_cf(cf, IteratorMode::End);
        match it.next() {
            Some(Ok((_, v))) => {
                let e: Entry<TypeConfig> =
                    decode(&v).map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
                Ok(Some(e.log_id))
            }
            Some(Err(e)) => Err(StorageIOError::<NodeId>::read_logs(&e).into()),
            None => Ok(None),
        }
    }
}

/// The size of every entry on disk, read once at open.
fn scan_sizes(db: &DB) -> Result<BTreeMap<u64, u64>, std::io::Error> {
    let cf = cf(db, CF_LOGS)?;
    let mut out = BTreeMap::new();
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (k, v) = item.map_err(std::io::Error::other)?;
        if let Some(i) = key_idx(&k) {
            out.insert(i, v.len() as u64);
        }
    }
    Ok(out)
}

/// Fsyncs the WAL for every group of appends that queued up while the
/// previous sync ran, then acknowledges them in order.
fn syncer(db: Arc<DB>, rx: std_mpsc::Receiver<Sync>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let result = db.flush_wal(true);
        metrics::record_log_sync(batch.len());
        for (cb, started) in batch {
            metrics::record_append_latency(started.elapsed());
            cb.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        read_range(&self.db, range)
    }
}

fn read_range<RB: RangeBounds<u64>>(
    db: &DB,
    range: RB,
) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let cf = cf(db, CF_LOGS).map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
    let mut out = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(&idx_key(start), Direction::Forward)) {
        let (k, v) = item.map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        let Some(idx) = key_idx(&k) else {
            return Err(StorageIOError::<NodeId>::read_logs(&std::io::Error::other(
                "malformed log key",
            ))
            .into());
        };
        if !range.contains(&idx) {
            break;
        }
        let e: Entry<TypeConfig> =
            decode(&v).map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        out.push(e);
    }
    Ok(out)
}

/// A cheap reader over the same database, for replication tasks.
pub struct LogReader {
    db: Arc<DB>,
    _users: Arc<()>,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        read_range(&self.db, range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(KEY_PURGED)?;
        let last = self.last_entry()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            db: self.db.clone(),
            _users: self.users.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta_sync(KEY_VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not synced: losing it only means re-applying from the state machine's own mark.
        let cf = cf(&self.db, CF_META).map_err(|e| StorageIOError::<NodeId>::write(&e))?;
        let b = encode(&committed).map_err(|e| StorageIOError::<NodeId>::write(&e))?;
        self.db
            .put_cf(cf, KEY_COMMITTED, b)
            .map_err(|e| StorageIOError::<NodeId>::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let cf = cf(&self.db, CF_LOGS).map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        let mut batch = WriteBatch::default();
        let mut bytes = 0usize;
        let mut sized = Vec::new();
        for e in entries {
            let v = encode(&e)
                .map_err(|err| StorageIOError::<NodeId>::write_log_entry(e.log_id, &err))?;
            bytes += v.len();
            sized.push((e.log_id.index, v.len() as u64));
            batch.put_cf(cf, idx_key(e.log_id.index), v);
        }
        metrics::record_append_bytes(bytes);
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        self.sizes.record(|m| m.extend(sized));
        self.sizes.notify.notify_one();
        self.syncer.send((callback, started))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let cf = cf(&self.db, CF_LOGS).map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, idx_key(log_id.index), idx_key(u64::MAX));
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        self.sizes.record(|m| {
            m.split_off(&log_id.index);
        });
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.put_meta_sync(KEY_PURGED, &log_id)?;
        let cf = cf(&self.db, CF_LOGS).map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        self.db
            .delete_range_cf(cf, idx_key(0), idx_key(log_id.index + 1))
            .map_err(|e| StorageIOError::<NodeId>::write_logs(&e))?;
        self.sizes.record(|m| *m = m.split_off(&(log_id.index + 1)));
        Ok(())
    }
}
