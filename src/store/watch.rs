//! Watch events from the local replica: a bounded ring of recent events for
//! watchers resuming from a revision, and a broadcast for live ones.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

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

#[derive(Clone)]
enum Msg {
    Event(Arc<WatchEvent>),
    /// The replica was replaced by a snapshot: watchers must list again.
    Reset(u64),
}

struct Inner {
    ring: VecDeque<Arc<WatchEvent>>,
    capacity: usize,
    /// Every event with a revision above this is in the ring.
    complete_after: u64,
    tx: broadcast::Sender<Msg>,
}

/// The event hub of one replica.
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    /// A hub whose history starts after `revision`.
    pub fn new(capacity: usize, revision: u64) -> Hub {
        let (tx, _) = broadcast::channel(4096);
        Hub {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                complete_after: revision,
                tx,
            }),
        }
    }

    /// Records applied changes and wakes watchers.
    pub fn publish(&self, events: Vec<WatchEvent>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for ev in events {
            let ev = Arc::new(ev);
            while inner.ring.len() >= inner.capacity {
                if let Some(old) = inner.ring.pop_front() {
                    inner.complete_after = inner.complete_after.max(old.revision);
                }
            }
            inner.ring.push_back(ev.clone());
            // No receivers is fine.
            let _ = inner.tx.send(Msg::Event(ev));
        }
    }

    /// Forgets history after a snapshot install and tells watchers to re-list.
    pub fn reset(&self, revision: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.ring.clear();
            inner.complete_after = revision;
            let _ = inner.tx.send(Msg::Reset(revision));
        }
    }

    /// A stream of events matching the filter with revisions above `from`
    /// (or from now, without `from`).
    pub fn watch(
        &self,
        kind: Option<Kind>,
        namespace: Option<String>,
        from: Option<u64>,
    ) -> Result<WatchStream, StoreError> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Storage("watch hub lock poisoned".into()))?;
        let filter = Filter { kind, namespace };
        let mut backlog = VecDeque::new();
        if let Some(from) = from {
            if from < inner.complete_after {
                return Err(StoreError::Gone {
                    requested: from,
                    oldest: inner.complete_after,
                });
            }
            backlog.extend(
                inner
                    .ring
                    .iter()
                    .filter(|e| e.revision > from && filter.matches(e))
                    .cloned(),
            );
        }
        Ok(WatchStream {
            backlog,
            rx: inner.tx.subscribe(),
            filter,
        })
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
    backlog: VecDeque<Arc<WatchEvent>>,
    rx: broadcast::Receiver<Msg>,
    filter: Filter,
}

impl WatchStream {
    /// The next event; `Err(Gone)` when the watcher fell behind or the replica
    /// was reset, after which the caller lists again.
    pub async fn next(&mut self) -> Result<Arc<WatchEvent>, StoreError> {
        if let Some(ev) = self.backlog.pop_front() {
            return Ok(ev);
        }
        loop {
            match self.rx.recv().await {
                // The backlog was read under the same lock as the subscription, so the
                // live channel holds only later events.
                Ok(Msg::Event(ev)) => {
                    if self.filter.matches(&ev) {
                        return Ok(ev);
                    }
                }
                Ok(Msg::Reset(rev)) => {
                    return Err(StoreError::Gone {
                        requested: 0,
                        oldest: rev,
                    });
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(StoreError::Gone {
                        requested: 0,
                        oldest: 0,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(StoreError::Storage("the replica is shutting down".into()));
                }
            }
        }
    }
}
