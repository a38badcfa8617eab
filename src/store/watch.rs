//! Watch events from the local replica: one ring of recent events, bounded
//! by count and bytes, that every watcher reads through its own cursor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::resource::{Kind, Object};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as sent to watchers (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// ADDED, MODIFIED or DELETED.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The Raft index of the write.
    pub revision: u64,
    /// The object after the change (before it, for DELETED).
    pub object: Object,
}

/// Watchers open at once on one node, at most: each costs a task and a
/// connection, and every write wakes them all.
pub const MAX_WATCHERS: usize = 4096;

struct Inner {
    /// Recent events with their sequence numbers and sizes, oldest first.
    ring: VecDeque<(u64, usize, Arc<WatchEvent>)>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    /// Sequence number the next event gets (several events can share a revision).
    next_seq: u64,
    /// Every event with a revision above this is in the ring.
    complete_after: u64,
    /// Sequence numbers below this have left the ring.
    first_seq: u64,
    /// Bumped when the replica is replaced by a snapshot.
    epoch: u64,
}

/// The event hub of one replica. Events live once, in a ring bounded by
/// count and by bytes; a watcher is only a cursor into it, so watchers that
/// never read cost no memory, and one whose cursor falls out of the ring is
/// ended with `Gone` and lists again, as Kubernetes' 410.
pub struct Hub {
    inner: Mutex<Inner>,
    /// The latest sequence number, to wake watchers.
    wake: tokio::sync::watch::Sender<u64>,
    watchers: Arc<AtomicUsize>,
}

impl Hub {
    /// A hub whose history starts after `revision` and keeps at most
    /// `capacity` events and `max_bytes` of their objects.
    pub fn new(capacity: usize, max_bytes: usize, revision: u64) -> Hub {
        let (wake, _) = tokio::sync::watch::channel(0);
        Hub {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                max_bytes: max_bytes.max(1),
                bytes: 0,
                next_seq: 1,
                complete_after: revision,
                first_seq: 1,
                epoch: 0,
            }),
            wake,
            watchers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Records applied changes, measuring each as JSON, and wakes watchers.
    #[cfg(test)]
    pub fn publish(&self, events: Vec<WatchEvent>) {
        self.publish_sized(events.into_iter().map(|e| (json_size(&e), e)).collect());
    }

    /// Records applied changes whose JSON size the caller knows (the state
    /// machine has just serialised each object), and wakes watchers.
    pub fn publish_sized(&self, sized: Vec<(usize, WatchEvent)>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (size, ev) in sized {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.ring.push_back((seq, size, Arc::new(ev)));
            inner.bytes += size;
            while inner.ring.len() > inner.capacity
                || (inner.bytes > inner.max_bytes && inner.ring.len() > 1)
            {
                let Some((old_seq, old_size, old)) = inner.ring.pop_front() else {
                    break;
                };
                inner.bytes = inner.bytes.saturating_sub(old_size);
                inner.first_seq = old_seq + 1;
                inner.complete_after = inner.complete_after.max(old.revision);
            }
        }
        ::metrics::gauge!(crate::store::metrics::WATCH_HISTORY_BYTES).set(inner.bytes as f64);
        let latest = inner.next_seq - 1;
        drop(inner);
        self.wake.send_replace(latest);
    }

    /// Forgets history after a snapshot install and tells watchers to re-list.
    pub fn reset(&self, revision: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.ring.clear();
            inner.bytes = 0;
            inner.first_seq = inner.next_seq;
            inner.complete_after = revision;
            inner.epoch += 1;
            let latest = inner.next_seq - 1;
            drop(inner);
            self.wake.send_replace(latest);
        }
    }

    /// A stream of events matching the filter with revisions above `from`
    /// (or from now, without `from`).
    pub fn watch(
        self: &Arc<Self>,
        kind: Option<Kind>,
        namespace: Option<String>,
        from: Option<u64>,
    ) -> Result<WatchStream, StoreError> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Storage("watch hub lock poisoned".into()))?;
        let cursor = match from {
            Some(from) if from < inner.complete_after => {
                return Err(StoreError::Gone {
                    requested: from,
                    oldest: inner.complete_after,
                });
            }
            // Just before the first event past `from`.
            Some(from) => inner
                .ring
                .iter()
                .find(|(_, _, e)| e.revision > from)
                .map_or(inner.next_seq - 1, |(seq, _, _)| seq - 1),
            None => inner.next_seq - 1,
        };
        let epoch = inner.epoch;
        drop(inner);
        let open = self.watchers.fetch_add(1, Ordering::AcqRel);
        let guard = WatcherSlot(self.watchers.clone());
        if open >= MAX_WATCHERS {
            return Err(StoreError::TooManyWatches {
                limit: MAX_WATCHERS,
            });
        }
        Ok(WatchStream {
            hub: self.clone(),
            cursor,
            epoch,
            wake: self.wake.subscribe(),
            filter: Filter { kind, namespace },
            _slot: guard,
            opener: None,
        })
    }

    /// The next event after `cursor` that passes the filter, without waiting.
    fn next_after(&self, w: &mut WatchStream) -> Result<Option<Arc<WatchEvent>>, StoreError> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Storage("watch hub lock poisoned".into()))?;
        if inner.epoch != w.epoch {
            return Err(StoreError::Gone {
                requested: 0,
                oldest: inner.complete_after,
            });
        }
        if w.cursor + 1 < inner.first_seq {
            // Fell behind: what it has not read has left the ring.
            return Err(StoreError::Gone {
                requested: 0,
                oldest: inner.complete_after,
            });
        }
        let start = (w.cursor + 1 - inner.first_seq) as usize;
        for (seq, _, ev) in inner.ring.iter().skip(start) {
            w.cursor = *seq;
            if w.filter.matches(ev) {
                return Ok(Some(ev.clone()));
            }
        }
        Ok(None)
    }
}

/// An event's size as JSON, counted without building the text.
#[cfg(test)]
fn json_size(ev: &WatchEvent) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, &ev.object);
    c.0
}

/// Counts an open watcher until dropped.
struct WatcherSlot(Arc<AtomicUsize>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Filter {
    kind: Option<Kind>,
    namespace: Option<String>,
}

impl Filter {
    fn matches(&self, ev: &WatchEvent) -> bool {
        if let Some(k) = self.kind
            && ev.object.kind() != Some(k)
        {
            return false;
        }
        match &self.namespace {
            Some(ns) => ev.object.metadata.namespace.as_deref() == Some(ns.as_str()),
            None => true,
        }
    }
}

/// Events for one watcher, in revision order.
pub struct WatchStream {
    hub: Arc<Hub>,
    /// Sequence number of the last event looked at.
    cursor: u64,
    epoch: u64,
    wake: tokio::sync::watch::Receiver<u64>,
    filter: Filter,
    _slot: WatcherSlot,
    /// Opens sealed Secrets before they are handed out.
    opener: Option<Opener>,
}

/// Opens a sealed object in place (see `store::sealing`).
pub(super) type Opener =
    Arc<dyn Fn(&mut crate::resource::Object) -> Result<(), StoreError> + Send + Sync>;

impl WatchStream {
    /// This stream, with sealed Secrets opened by `opener`.
    pub(super) fn opening(mut self, opener: Opener) -> WatchStream {
        self.opener = Some(opener);
        self
    }

    fn open(&self, ev: Arc<WatchEvent>) -> Arc<WatchEvent> {
        let Some(opener) = &self.opener else {
            return ev;
        };
        if !ev.object.body.contains_key(super::sealing::SEALED_FIELD) {
            return ev;
        }
        let mut ev = (*ev).clone();
        if let Err(e) = opener(&mut ev.object) {
            // The watcher still learns that the Secret changed, without its data.
            ev.object.body.remove(super::sealing::SEALED_FIELD);
            tracing::warn!("watch: {e}");
        }
        Arc::new(ev)
    }

    /// The next event; `Err(Gone)` when the watcher fell behind or the replica
    /// was reset, after which the caller lists again.
    pub async fn next(&mut self) -> Result<Arc<WatchEvent>, StoreError> {
        loop {
            // Marked seen before looking, so a publish in between wakes us.
            self.wake.borrow_and_update();
            let hub = self.hub.clone();
            if let Some(ev) = hub.next_after(self)? {
                return Ok(self.open(ev));
            }
            if self.wake.changed().await.is_err() {
                return Err(StoreError::Storage("the replica is shutting down".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ObjectMeta;

    fn event(revision: u64, name: &str) -> WatchEvent {
        sized_event(revision, name, 0)
    }

    fn sized_event(revision: u64, name: &str, payload: usize) -> WatchEvent {
        let mut body = serde_json::Map::new();
        body.insert(
            "data".into(),
            serde_json::json!({ "x": "y".repeat(payload) }),
        );
        WatchEvent {
            event_type: EventType::Modified,
            revision,
            object: Object {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                metadata: ObjectMeta {
                    name: name.into(),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                body,
            },
        }
    }

    /// 40 watchers that never read and 2,000 updates of a 900 KB object
    /// took a node to gigabytes: history and queues are now bounded by bytes.
    #[tokio::test]
    async fn history_is_bounded_by_bytes_and_slow_watchers_are_cut_with_gone() {
        const BIG: usize = 900 * 1024;
        let hub = Arc::new(Hub::new(10_000, 8 * BIG, 0));
        let mut slow: Vec<WatchStream> = (0..40)
            .map(|_| hub.watch(None, None, None).expect("watch"))
            .collect();
        let mut reader = hub.watch(None, None, None).expect("watch");
        for rev in 1..=100u64 {
            hub.publish(vec![sized_event(rev, "big", BIG)]);
            let ev = reader.next().await.expect("a reading watcher keeps up");
            assert_eq!(ev.revision, rev);
        }
        let (bytes, len) = {
            let inner = hub.inner.lock().expect("lock");
            (inner.bytes, inner.ring.len())
        };
        assert!(bytes <= 8 * BIG, "history holds {bytes} bytes");
        assert_eq!(len, 7, "each event is a little over 900 KB");
        for w in &mut slow {
            assert!(matches!(w.next().await, Err(StoreError::Gone { .. })));
        }
        // Resuming from a revision that has left the history is Gone too.
        assert!(matches!(
            hub.watch(None, None, Some(10)),
            Err(StoreError::Gone { .. })
        ));
        let mut resumed = hub.watch(None, None, Some(95)).expect("recent revision");
        assert_eq!(resumed.next().await.expect("event").revision, 96);
    }

    #[tokio::test]
    async fn events_of_one_revision_are_all_delivered_and_filters_apply() {
        let hub = Arc::new(Hub::new(100, 1 << 20, 0));
        let mut all = hub.watch(None, None, None).expect("watch");
        let mut other_ns = hub
            .watch(Some(Kind::ConfigMap), Some("kube-system".into()), None)
            .expect("watch");
        hub.publish(vec![event(5, "a"), event(5, "b"), event(6, "c")]);
        let names: Vec<String> = [
            all.next().await.expect("a"),
            all.next().await.expect("b"),
            all.next().await.expect("c"),
        ]
        .iter()
        .map(|e| e.object.metadata.name.clone())
        .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), other_ns.next()).await;
        assert!(nothing.is_err(), "a filtered-out event was delivered");
        hub.reset(6);
        assert!(matches!(all.next().await, Err(StoreError::Gone { .. })));
    }

    #[test]
    fn watchers_are_capped_per_node() {
        let hub = Arc::new(Hub::new(10, 1024, 0));
        let open: Vec<WatchStream> = (0..MAX_WATCHERS)
            .map(|_| hub.watch(None, None, None).expect("watch"))
            .collect();
        assert!(matches!(
            hub.watch(None, None, None),
            Err(StoreError::TooManyWatches { .. })
        ));
        drop(open);
        assert!(hub.watch(None, None, None).is_ok());
    }
}
