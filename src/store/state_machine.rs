//! The replicated state machine: objects in the `sm` column family keyed by
//! `Kind/namespace/name`, the applied mark and membership in `sm_meta`.
//! Deterministic: it never reads a clock or the network.
// openraft's traits fix `StorageError` as the error type; boxing it here would
// only move the allocation.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{DB, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::db::{CF_SM, CF_SM_META, cf, decode, encode};

const KEY_APPLIED: &[u8] = b"last_applied";
/// What a watch event adds to its object's JSON (`{"type":"MODIFIED",
/// "revision":N,"object":...}`), so the watch ring's byte bound needs no
/// second serialisation of every applied object.
const EVENT_ENVELOPE_BYTES: usize = 64;
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The quota in force, kept among the objects (so snapshots carry it) under a
/// key no object has: object keys are `Kind/...` text.
const KEY_QUOTA: &[u8] = b"\x00shoal/quota_bytes";
use super::cache::ObjectCache;
use super::watch::{EventType, Hub, WatchEvent, WatchStream};
use super::{Command, CommandResult, NodeId, NodeInfo, StoreError, TypeConfig, metrics};
use crate::resource::{Kind, Object, ObjectKey};

/// When a write must find the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// Create or update, whatever is there.
    None,
    /// Fail with AlreadyExists if the object exists.
    MustNotExist,
    /// Fail with NotFound if it does not.
    MustExist,
    /// Fail with Conflict unless the object is at this resourceVersion.
    Version(u64),
}

/// One operation of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Create or update the object (given as JSON). Without a `status` in the
    /// new object the stored status is kept, as Kubernetes' status subresource does.
    Put {
        key: ObjectKey,
        object: Vec<u8>,
        precondition: Precondition,
    },
    /// Delete the object.
    Delete {
        key: ObjectKey,
        precondition: Precondition,
    },
    /// Replace only the object's `status` (JSON), as Kubernetes' status
    /// subresource does. The object must exist and, when `uid` is given, be
    /// that incarnation of it, so a report about a deleted and recreated
    /// object is refused. An identical status writes nothing.
    SetStatus {
        key: ObjectKey,
        uid: Option<String>,
        status: Vec<u8>,
    },
    /// Writes nothing, but fails the whole command with Conflict unless the
    /// object is at this resourceVersion: how a controller makes its writes
    /// conditional on an object it read and does not change.
    Check { key: ObjectKey, version: u64 },
    /// Sets the store quota that every replica enforces from this entry on.
    /// Only the leader's proposer writes it (from its `store.quota_bytes`),
    /// so the quota is replicated state and replicas never decide apart.
    SetQuota { bytes: u64 },
}

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Deleted,
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// The object.
    pub key: ObjectKey,
    /// What happened to it.
    pub outcome: Outcome,
    /// Its resourceVersion afterwards (before, for Deleted).
    pub resource_version: u64,
    /// The object as stored (as it was, for Deleted), JSON; lets a node that
    /// forwarded the write answer without waiting for its own replica.
    pub object: Vec<u8>,
}

/// Why a command was refused; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxnError {
    #[error(
        "{key}: resourceVersion is {actual}, not {expected}: the object was changed by someone else; get it again and retry"
    )]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: u64,
    },
    #[error("{key}: not found")]
    NotFound { key: ObjectKey },
    #[error("{key}: already exists")]
    AlreadyExists { key: ObjectKey },
    #[error("{key}: {msg}")]
    Invalid { key: ObjectKey, msg: String },
    #[error(
        "the write carries {bytes} bytes, over the {limit}-byte limit of one replicated command; split it"
    )]
    TooLarge { bytes: usize, limit: usize },
    #[error(
        "the store quota is full: it holds {used} of {quota} bytes (store.quota_bytes) and this write adds {adds}; delete objects to free space or raise the quota"
    )]
    QuotaExceeded { quota: u64, used: u64, adds: u64 },
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    objects: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, NodeInfo>,
    data: Vec<u8>,
}

/// The state machine, owned by openraft.
pub struct StateMachine {
    db: Arc<DB>,
    /// Counts Raft's users of the database, for the store's shutdown.
    users: Arc<()>,
    hub: Arc<Hub>,
    revision: Arc<AtomicU64>,
    usage: Arc<Usage>,
    cache: Arc<ObjectCache>,
    snapshot_seq: u64,
}

/// What the state takes against the quota: every object's key and JSON bytes.
/// Derived from the replicated state only (never from disk statistics), so
/// every replica refuses the same writes.
#[derive(Debug, Default)]
pub struct Usage {
    state_bytes: AtomicU64,
    /// 0 while no leader has written a quota.
    quota_bytes: AtomicU64,
}

impl Usage {
    /// Bytes of all objects (keys and JSON) in the replica.
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Acquire)
    }

    /// The replicated quota in force, once a leader has written one.
    pub fn quota_bytes(&self) -> Option<u64> {
        Some(self.quota_bytes.load(Ordering::Acquire)).filter(|q| *q > 0)
    }

    fn set(&self, b: Budget) {
        self.state_bytes.store(b.used, Ordering::Release);
        self.quota_bytes
            .store(b.quota.unwrap_or(0), Ordering::Release);
        metrics::record_usage(b.used, b.quota);
    }

    fn budget(&self) -> Budget {
        Budget {
            used: self.state_bytes(),
            quota: self.quota_bytes(),
        }
    }
}

/// The usage as an apply batch advances it, command by command.
#[derive(Debug, Clone, Copy)]
struct Budget {
    used: u64,
    quota: Option<u64>,
}

/// An object as the apply sees it, with what it takes against the quota.
type Slot = Option<(Object, u64)>;

/// What one stored object takes against the quota.
fn stored_size(skey: &[u8], value: &[u8]) -> u64 {
    (skey.len() + value.len()) as u64
}

fn decode_quota(v: &[u8]) -> Option<u64> {
    let b: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_be_bytes(b)).filter(|q| *q > 0)
}

/// Sums the objects of the `sm` column family and reads the quota: at open,
/// so the count is right after a restart whatever wrote the data before.
fn scan_usage(db: &DB) -> Result<Budget, StorageError<NodeId>> {
    let sm = cf(db, CF_SM).map_err(io_read)?;
    let mut b = Budget {
        used: 0,
        quota: None,
    };
    for item in db.iterator_cf(sm, IteratorMode::Start) {
        let (k, v) = item.map_err(io_read)?;
        if &*k == KEY_QUOTA {
            b.quota = decode_quota(&v);
        } else {
            b.used += stored_size(&k, &v);
        }
    }
    Ok(b)
}

/// Read access to the local replica, shared with the API.
#[derive(Clone)]
pub struct Reader {
    db: Arc<DB>,
    hub: Arc<Hub>,
    revision: Arc<AtomicU64>,
    cache: Arc<ObjectCache>,
}

fn io_read(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn io_write(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// Loads the applied mark so watchers and reads know the replica's revision.
    pub fn open(
        db: Arc<DB>,
        watch_history: usize,
        watch_history_bytes: usize,
        users: Arc<()>,
    ) -> Result<StateMachine, StorageError<NodeId>> {
        let applied = read_meta::<Option<LogId<NodeId>>>(&db, KEY_APPLIED)?.flatten();
        let rev = applied.map(|l| l.index).unwrap_or(0);
        let usage = Arc::new(Usage::default());
        usage.set(scan_usage(&db)?);
        Ok(StateMachine {
            db,
            users,
            hub: Arc::new(Hub::new(watch_history, watch_history_bytes, rev)),
            revision: Arc::new(AtomicU64::new(rev)),
            usage,
            cache: Arc::default(),
            snapshot_seq: 0,
        })
    }

    /// A reader sharing this replica.
    pub fn reader(&self) -> Reader {
        Reader {
            db: self.db.clone(),
            hub: self.hub.clone(),
            revision: self.revision.clone(),
            cache: self.cache.clone(),
        }
    }

    /// The replica's usage against the quota, shared with the proposer.
    pub fn usage(&self) -> Arc<Usage> {
        self.usage.clone()
    }

    fn build(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // A rocksdb snapshot gives a consistent view even if apply runs meanwhile.
        let snap = self.db.snapshot();
        let sm_meta = cf(&self.db, CF_SM_META).map_err(io_read)?;
        let load = |k: &[u8]| -> Result<Option<Vec<u8>>, StorageError<NodeId>> {
            snap.get_cf(sm_meta, k).map_err(io_read)
        };
        let last_applied: Option<LogId<NodeId>> = match load(KEY_APPLIED)? {
            Some(b) => decode(&b).map_err(io_read)?,
            None => None,
        };
        let membership: StoredMembership<NodeId, NodeInfo> = match load(KEY_MEMBERSHIP)? {
            Some(b) => decode(&b).map_err(io_read)?,
            None => StoredMembership::default(),
        };
        let sm = cf(&self.db, CF_SM).map_err(io_read)?;
        let mut objects = Vec::new();
        for item in snap.iterator_cf(sm, IteratorMode::Start) {
            let (k, v) = item.map_err(io_read)?;
            objects.push((k.to_vec(), v.to_vec()));
        }
        let file = SnapshotFile {
            last_applied,
            membership: membership.clone(),
            objects,
        };
        let data = encode(&file).map_err(io_read)?;
        self.snapshot_seq += 1;
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.snapshot_seq),
            None => format!("empty-{}", self.snapshot_seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let meta_cf = cf(&self.db, CF_SM_META).map_err(io_write)?;
        self.db
            .put_cf(meta_cf, KEY_SNAPSHOT, encode(&stored).map_err(io_write)?)
            .map_err(io_write)?;
        metrics::record_snapshot_built(data.len());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    fn apply_command(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Slot>,
        budget: &mut Budget,
        (log_id, pos): (&LogId<NodeId>, usize),
        cmd: &Command,
        events: &mut Vec<(usize, WatchEvent)>,
    ) -> Result<CommandResult, StorageError<NodeId>> {
        let index = log_id.index;
        // Evaluate every op first against a scratch view, then commit them together.
        let mut scratch: HashMap<Vec<u8>, Slot> = HashMap::new();
        let mut outcomes = Vec::with_capacity(cmd.ops.len());
        let mut pending = Vec::new();
        let mut events_here = Vec::new();
        // What the command adds to the state, op after op (an op sees the
        // size the previous ones left, so the sum is the command's net change).
        let mut delta: i64 = 0;
        let mut new_quota = None;
        for op in &cmd.ops {
            let Some(key) = op.key() else {
                if let Op::SetQuota { bytes } = op {
                    new_quota = Some(*bytes);
                }
                continue;
            };
            let skey = key.storage_key();
            let slot = match scratch.get(&skey).or_else(|| overlay.get(&skey)) {
                Some(o) => o.clone(),
                None => self.load(&skey)?,
            };
            let (current, current_size) = match slot {
                Some((o, n)) => (Some(o), n),
                None => (None, 0),
            };
            let check = super::rules::check(op, key, current.as_ref());
            if let Err(e) = check {
                return Ok(Err(e));
            }
            match op {
                // Taken before the key lookup.
                Op::SetQuota { .. } => {}
                Op::Check { .. } => {
                    let Some(cur) = current else { continue };
                    outcomes.push(OpOutcome {
                        key: key.clone(),
                        outcome: Outcome::Unchanged,
                        resource_version: cur.resource_version(),
                        object: serde_json::to_vec(&cur).map_err(io_write)?,
                    });
                }
                Op::SetStatus { status, .. } => {
                    let Some(old) = current else { continue };
                    let status: serde_json::Value = match serde_json::from_slice(status) {
                        Ok(v) => v,
                        Err(e) => {
                            return Ok(Err(TxnError::Invalid {
                                key: key.clone(),
                                msg: format!("undecodable status: {e}"),
                            }));
                        }
                    };
                    if old.body.get("status") == Some(&status) {
                        outcomes.push(OpOutcome {
                            key: key.clone(),
                            outcome: Outcome::Unchanged,
                            resource_version: old.resource_version(),
                            object: serde_json::to_vec(&old).map_err(io_write)?,
                        });
                        continue;
                    }
                    let mut new = old;
                    new.body.insert("status".into(), status);
                    new.metadata.resource_version = Some(index.to_string());
                    let bytes = serde_json::to_vec(&new).map_err(io_write)?;
                    let size = stored_size(&skey, &bytes);
                    delta += size as i64 - current_size as i64;
                    scratch.insert(skey.clone(), Some((new.clone(), size)));
                    pending.push((skey, Some(bytes.clone())));
                    events_here.push((
                        bytes.len() + EVENT_ENVELOPE_BYTES,
                        WatchEvent {
                            event_type: EventType::Modified,
                            revision: index,
                            object: new,
                        },
                    ));
                    outcomes.push(OpOutcome {
                        key: key.clone(),
                        outcome: Outcome::Updated,
                        resource_version: index,
                        object: bytes,
                    });
                }
                Op::Delete { .. } => {
                    let Some(mut old) = current else { continue };
                    let rv = old.resource_version();
                    let bytes = serde_json::to_vec(&old).map_err(io_write)?;
                    old.metadata.resource_version = Some(index.to_string());
                    delta -= current_size as i64;
                    scratch.insert(skey.clone(), None);
                    pending.push((skey, None));
                    events_here.push((
                        bytes.len() + EVENT_ENVELOPE_BYTES,
                        WatchEvent {
                            event_type: EventType::Deleted,
                            revision: index,
                            object: old,
                        },
                    ));
                    outcomes.push(OpOutcome {
                        key: key.clone(),
                        outcome: Outcome::Deleted,
                        resource_version: rv,
                        object: bytes,
                    });
                }
                Op::Put { object, .. } => {
                    let new: Object = match serde_json::from_slice(object) {
                        Ok(o) => o,
                        Err(e) => {
                            return Ok(Err(TxnError::Invalid {
                                key: key.clone(),
                                msg: format!("undecodable object: {e}"),
                            }));
                        }
                    };
                    let put = super::rules::put(
                        key,
                        current.as_ref(),
                        new,
                        || derive_uid(&skey, log_id, pos),
                        index,
                    );
                    let Some((new, outcome)) = put else {
                        let Some(old) = &current else { continue };
                        outcomes.push(OpOutcome {
                            key: key.clone(),
                            outcome: Outcome::Unchanged,
                            resource_version: old.resource_version(),
                            object: serde_json::to_vec(old).map_err(io_write)?,
                        });
                        continue;
                    };
                    let ev = match outcome {
                        Outcome::Created => EventType::Added,
                        _ => EventType::Modified,
                    };
                    let bytes = serde_json::to_vec(&new).map_err(io_write)?;
                    let size = stored_size(&skey, &bytes);
                    delta += size as i64 - current_size as i64;
                    scratch.insert(skey.clone(), Some((new.clone(), size)));
                    pending.push((skey, Some(bytes.clone())));
                    events_here.push((
                        bytes.len() + EVENT_ENVELOPE_BYTES,
                        WatchEvent {
                            event_type: ev,
                            revision: index,
                            object: new,
                        },
                    ));
                    outcomes.push(OpOutcome {
                        key: key.clone(),
                        outcome,
                        resource_version: index,
                        object: bytes,
                    });
                }
            }
        }
        // Only growth is refused: deletes and shrinking writes stay allowed
        // past the quota, so an admin can always make room.
        if let Some(quota) = budget.quota
            && delta > 0
            && budget.used.saturating_add(delta as u64) > quota
        {
            metrics::record_quota_refusal();
            return Ok(Err(TxnError::QuotaExceeded {
                quota,
                used: budget.used,
                adds: delta as u64,
            }));
        }
        budget.used = budget.used.saturating_add_signed(delta);
        events.append(&mut events_here);
        let sm = cf(&self.db, CF_SM).map_err(io_write)?;
        if let Some(q) = new_quota {
            budget.quota = Some(q).filter(|q| *q > 0);
            batch.put_cf(sm, KEY_QUOTA, q.to_be_bytes());
        }
        for (skey, bytes) in pending {
            match &bytes {
                Some(b) => batch.put_cf(sm, &skey, b),
                None => batch.delete_cf(sm, &skey),
            }
            let obj = scratch.get(&skey).cloned().flatten();
            overlay.insert(skey, obj);
        }
        Ok(Ok(outcomes))
    }

    fn load(&self, skey: &[u8]) -> Result<Slot, StorageError<NodeId>> {
        let sm = cf(&self.db, CF_SM).map_err(io_read)?;
        match self.db.get_cf(sm, skey).map_err(io_read)? {
            Some(b) => serde_json::from_slice(&b)
                .map(|o| Some((o, stored_size(skey, &b))))
                .map_err(io_read),
            None => Ok(None),
        }
    }
}

/// A uid that every replica derives identically from the key and the
/// creating entry. The entry's leader (a node id hashed from a random node
/// key) makes it differ between clusters too: a container labelled with a
/// uid from an earlier cluster on the same host is never mistaken for a new
/// pod's.
fn derive_uid(skey: &[u8], log_id: &LogId<NodeId>, pos: usize) -> String {
    let mut h = Sha256::new();
    h.update(skey);
    h.update(log_id.index.to_be_bytes());
    h.update(log_id.leader_id.term.to_be_bytes());
    h.update(log_id.leader_id.node_id.to_be_bytes());
    h.update((pos as u64).to_be_bytes());
    let d = h.finalize();
    super::rules::uid_text(&d[..16])
}

fn read_meta<T: serde::de::DeserializeOwned>(
    db: &DB,
    key: &[u8],
) -> Result<Option<T>, StorageError<NodeId>> {
    let c = cf(db, CF_SM_META).map_err(io_read)?;
    match db.get_cf(c, key).map_err(io_read)? {
        Some(b) => decode(&b).map(Some).map_err(io_read),
        None => Ok(None),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.build()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StorageError<NodeId>>
    {
        let applied = read_meta::<Option<LogId<NodeId>>>(&self.db, KEY_APPLIED)?.flatten();
        let membership = read_meta(&self.db, KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Vec<CommandResult>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let mut batch = WriteBatch::default();
        let mut overlay = HashMap::new();
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut last = None;
        let mut membership = None;
        let mut budget = self.usage.budget();
        for entry in entries {
            last = Some(entry.log_id);
            match &entry.payload {
                EntryPayload::Blank => results.push(Vec::new()),
                EntryPayload::Normal(proposal) => {
                    let mut r = Vec::with_capacity(proposal.0.len());
                    for (pos, cmd) in proposal.0.iter().enumerate() {
                        r.push(self.apply_command(
                            &mut batch,
                            &mut overlay,
                            &mut budget,
                            (&entry.log_id, pos),
                            cmd,
                            &mut events,
                        )?);
                    }
                    results.push(r);
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                    results.push(Vec::new());
                }
            }
        }
        let meta = cf(&self.db, CF_SM_META).map_err(io_write)?;
        if let Some(last) = last {
            batch.put_cf(meta, KEY_APPLIED, encode(&Some(last)).map_err(io_write)?);
        }
        if let Some(m) = &membership {
            batch.put_cf(meta, KEY_MEMBERSHIP, encode(m).map_err(io_write)?);
        }
        self.db.write(batch).map_err(io_write)?;
        {
            // The decoded objects and the revision become visible together.
            let mut mirror = self.cache.applying();
            mirror.record(
                overlay
                    .into_iter()
                    .map(|(k, slot)| (k, slot.map(|(o, _)| o))),
            );
            if let Some(last) = last {
                self.revision.store(last.index, Ordering::Release);
            }
        }
        self.usage.set(budget);
        self.hub.publish_sized(events);
        metrics::record_apply(started.elapsed(), results.len());
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachine {
            db: self.db.clone(),
            users: self.users.clone(),
            hub: self.hub.clone(),
            revision: self.revision.clone(),
            usage: self.usage.clone(),
            cache: self.cache.clone(),
            snapshot_seq: self.snapshot_seq + 1000,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let file: SnapshotFile = decode(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &std::io::Error::other(e.to_string()),
            ))
        })?;
        let sm = cf(&self.db, CF_SM).map_err(io_write)?;
        let sm_meta = cf(&self.db, CF_SM_META).map_err(io_write)?;
        let mut batch = WriteBatch::default();
        // Keys are `Kind/...` text (or the quota's, starting 0x00), so every
        // key sorts below 0xff.
        batch.delete_range_cf(sm, [0u8].as_slice(), [0xffu8].as_slice());
        let mut budget = Budget {
            used: 0,
            quota: None,
        };
        for (k, v) in &file.objects {
            batch.put_cf(sm, k, v);
            if k.as_slice() == KEY_QUOTA {
                budget.quota = decode_quota(v);
            } else {
                budget.used += stored_size(k, v);
            }
        }
        batch.put_cf(
            sm_meta,
            KEY_APPLIED,
            encode(&meta.last_log_id).map_err(io_write)?,
        );
        batch.put_cf(
            sm_meta,
            KEY_MEMBERSHIP,
            encode(&meta.last_membership).map_err(io_write)?,
        );
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put_cf(sm_meta, KEY_SNAPSHOT, encode(&stored).map_err(io_write)?);
        self.db.write(batch).map_err(io_write)?;
        let rev = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        {
            let mut mirror = self.cache.applying();
            mirror.clear();
            self.revision.store(rev, Ordering::Release);
        }
        self.usage.set(budget);
        self.hub.reset(rev);
        metrics::record_snapshot_installed();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let Some(stored) = read_meta::<StoredSnapshot>(&self.db, KEY_SNAPSHOT)? else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

impl Reader {
    /// One object from the local replica.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        Ok(self.get_shared(key)?.map(Arc::unwrap_or_clone))
    }

    /// One object from the local replica, shared with the mirror when its
    /// kind is mirrored.
    pub fn get_shared(&self, key: &ObjectKey) -> Result<Option<Arc<Object>>, StoreError> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let sm = cf(&self.db, CF_SM).map_err(|e| StoreError::Storage(e.to_string()))?;
        match self
            .db
            .get_cf(sm, key.storage_key())
            .map_err(|e| StoreError::Storage(e.to_string()))?
        {
            Some(b) => serde_json::from_slice(&b)
                .map(|o| Some(Arc::new(o)))
                .map_err(|e| StoreError::Storage(format!("stored {key} is corrupt: {e}"))),
            None => Ok(None),
        }
    }

    /// Objects of a kind, in one namespace or all, with the revision they reflect.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let (items, rev) = self.list_shared(kind, namespace)?;
        Ok((items.into_iter().map(Arc::unwrap_or_clone).collect(), rev))
    }

    /// As [`Reader::list`], the objects shared with the mirror (no copy).
    pub fn list_shared(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Object>>, u64), StoreError> {
        // The revision is read after the objects (under the mirror's lock),
        // so it never claims more than the list shows; a watch from it may
        // replay a change already listed, never skip one.
        self.cache
            .list(kind, namespace, &self.revision, || self.scan(kind))
    }

    /// Every stored object of a kind, decoded: what fills the mirror.
    fn scan(&self, kind: Kind) -> Result<Vec<(Vec<u8>, Object)>, StoreError> {
        let sm = cf(&self.db, CF_SM).map_err(|e| StoreError::Storage(e.to_string()))?;
        let snap = self.db.snapshot();
        let prefix = ObjectKey::storage_prefix(kind, None);
        let mut out = Vec::new();
        for item in snap.iterator_cf(sm, IteratorMode::From(&prefix, rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(|e| StoreError::Storage(e.to_string()))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let o: Object = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Storage(format!("stored object is corrupt: {e}")))?;
            out.push((k.to_vec(), o));
        }
        Ok(out)
    }

    /// The index of the last applied entry.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// See [`Hub::watch`].
    pub fn watch(
        &self,
        kind: Option<Kind>,
        namespace: Option<String>,
        from: Option<u64>,
    ) -> Result<WatchStream, StoreError> {
        self.hub.watch(kind, namespace, from)
    }
}

#[cfg(test)]
mod tests;
