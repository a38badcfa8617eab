//! The replica's objects, decoded once: an in-memory mirror of the state
//! machine for the kinds somebody lists.
//!
//! Every component on a node (the agent, the service table, the controller
//! manager, the scheduler) lists whole kinds on every change it hears of.
//! Decoding each stored object's JSON on every such list made a Job of 1,000
//! pods slow down as its finished pods piled up: three nodes spent their CPU
//! re-parsing the same bytes. The state machine already holds each object it
//! writes decoded, so it hands them here as it applies; a list is then a
//! copy of pointers, as in Kubernetes' watch cache.
//!
//! A kind is mirrored from its first list on, so kinds nobody lists cost no
//! memory. The mirror holds no more than the replica itself, whose size the
//! state quota bounds.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::resource::{Kind, Object, ObjectKey};

/// Decoded objects of the mirrored kinds, by storage key, with the
/// revision they reflect.
#[derive(Debug, Default)]
pub struct ObjectCache {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Kinds whose every object is in `objects`.
    mirrored: HashSet<Kind>,
    objects: BTreeMap<Vec<u8>, Arc<Object>>,
}

/// One applied change: the storage key and the object after it (`None`
/// when deleted).
pub type Change = (Vec<u8>, Option<Object>);

/// The mirror under its write lock, held by the state machine while it makes
/// an applied batch visible: the objects and the revision move together.
pub struct Applying<'a> {
    inner: RwLockWriteGuard<'a, Inner>,
}

impl Applying<'_> {
    /// Records the changes of an applied batch, for the kinds mirrored.
    pub fn record(&mut self, changes: impl IntoIterator<Item = Change>) {
        for (skey, obj) in changes {
            let Some(kind) = kind_of(&skey) else { continue };
            if !self.inner.mirrored.contains(&kind) {
                continue;
            }
            match obj {
                Some(o) => {
                    self.inner.objects.insert(skey, Arc::new(o));
                }
                None => {
                    self.inner.objects.remove(&skey);
                }
            }
        }
    }

    /// Forgets everything: the replica was replaced by a snapshot.
    pub fn clear(&mut self) {
        self.inner.mirrored.clear();
        self.inner.objects.clear();
    }
}

/// The kind a storage key (`Kind/namespace/name`) belongs to.
fn kind_of(skey: &[u8]) -> Option<Kind> {
    let end = skey.iter().position(|b| *b == b'/')?;
    let name = std::str::from_utf8(&skey[..end]).ok()?;
    Kind::ALL
        .iter()
        .copied()
        .chain([Kind::CustomObject])
        .find(|k| k.as_str() == name)
}

fn read(lock: &RwLock<Inner>) -> RwLockReadGuard<'_, Inner> {
    // A panic while holding the lock leaves the maps whole (each update is
    // one insert or remove), so a poisoned lock is still safe to read.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<Inner>) -> RwLockWriteGuard<'_, Inner> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl ObjectCache {
    /// Takes the write lock for an apply (see [`Applying`]).
    pub fn applying(&self) -> Applying<'_> {
        Applying {
            inner: write(&self.inner),
        }
    }

    /// Objects of `kind` (in `namespace`, or all), in key order, with
    /// `revision` read under the same lock. The first list of a kind fills
    /// the mirror through `load`, which must return every stored object of
    /// the kind as the replica holds it now.
    pub fn list<E>(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        revision: &AtomicU64,
        load: impl FnOnce() -> Result<Vec<(Vec<u8>, Object)>, E>,
    ) -> Result<(Vec<Arc<Object>>, u64), E> {
        let prefix = ObjectKey::storage_prefix(kind, namespace);
        {
            let inner = read(&self.inner);
            if inner.mirrored.contains(&kind) {
                let rev = revision.load(Ordering::Acquire);
                return Ok((collect(&inner, &prefix), rev));
            }
        }
        let mut inner = write(&self.inner);
        if !inner.mirrored.contains(&kind) {
            // Under the write lock no apply can make a batch visible, so
            // the replica read here is complete up to the revision read
            // after it (an apply written to disk but not yet recorded only
            // re-inserts the same objects when it gets the lock).
            for (skey, o) in load()? {
                inner.objects.insert(skey, Arc::new(o));
            }
            inner.mirrored.insert(kind);
        }
        let rev = revision.load(Ordering::Acquire);
        Ok((collect(&inner, &prefix), rev))
    }

    /// One object, if its kind is mirrored (`None`: ask the replica).
    pub fn get(&self, key: &ObjectKey) -> Option<Option<Arc<Object>>> {
        let inner = read(&self.inner);
        if !inner.mirrored.contains(&key.kind) {
            return None;
        }
        Some(inner.objects.get(&key.storage_key()).cloned())
    }
}

fn collect(inner: &Inner, prefix: &[u8]) -> Vec<Arc<Object>> {
    inner
        .objects
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, o)| o.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: &str, name: &str) -> Object {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns},
        }))
        .expect("object")
    }

    fn key(kind: Kind, ns: &str, name: &str) -> Vec<u8> {
        ObjectKey::new(kind, ns, name).storage_key()
    }

    fn names(v: &[Arc<Object>]) -> Vec<&str> {
        v.iter().map(|o| o.metadata.name.as_str()).collect()
    }

    #[test]
    fn a_kind_is_loaded_once_then_follows_the_applied_changes() {
        let cache = ObjectCache::default();
        let rev = AtomicU64::new(7);
        let loads = std::cell::Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Ok::<_, ()>(vec![
                (key(Kind::Pod, "a", "p1"), obj("Pod", "a", "p1")),
                (key(Kind::Pod, "b", "p2"), obj("Pod", "b", "p2")),
            ])
        };
        let (all, r) = cache.list(Kind::Pod, None, &rev, load).expect("list");
        assert_eq!((names(&all), r), (vec!["p1", "p2"], 7));
        {
            let mut a = cache.applying();
            a.record([
                (key(Kind::Pod, "a", "p3"), Some(obj("Pod", "a", "p3"))),
                (key(Kind::Pod, "b", "p2"), None),
                // Not mirrored yet: not kept.
                (key(Kind::Service, "a", "s"), Some(obj("Service", "a", "s"))),
            ]);
            rev.store(8, Ordering::Release);
        }
        let (all, r) = cache
            .list(Kind::Pod, None, &rev, || Err(()))
            .expect("no second load");
        assert_eq!((names(&all), r), (vec!["p1", "p3"], 8));
        let (in_a, _) = cache
            .list(Kind::Pod, Some("a"), &rev, || Err(()))
            .expect("list");
        assert_eq!(names(&in_a), vec!["p1", "p3"]);
        assert_eq!(loads.get(), 1);
        assert!(
            cache
                .get(&ObjectKey::new(Kind::Service, "a", "s"))
                .is_none()
        );
        let got = cache.get(&ObjectKey::new(Kind::Pod, "a", "p3"));
        assert_eq!(
            got.flatten().map(|o| o.metadata.name.clone()),
            Some("p3".into())
        );
        assert_eq!(cache.get(&ObjectKey::new(Kind::Pod, "b", "p2")), Some(None));
    }

    #[test]
    fn a_namespace_prefix_does_not_match_a_longer_namespace() {
        let cache = ObjectCache::default();
        let rev = AtomicU64::new(1);
        let load = || {
            Ok::<_, ()>(vec![
                (key(Kind::Pod, "a", "x"), obj("Pod", "a", "x")),
                (key(Kind::Pod, "ab", "y"), obj("Pod", "ab", "y")),
            ])
        };
        let (in_a, _) = cache.list(Kind::Pod, Some("a"), &rev, load).expect("list");
        assert_eq!(names(&in_a), vec!["x"]);
    }

    #[test]
    fn a_snapshot_clears_the_mirror_and_the_next_list_reloads() {
        let cache = ObjectCache::default();
        let rev = AtomicU64::new(1);
        let one = || Ok::<_, ()>(vec![(key(Kind::Pod, "a", "old"), obj("Pod", "a", "old"))]);
        cache.list(Kind::Pod, None, &rev, one).expect("list");
        cache.applying().clear();
        let fresh = || Ok::<_, ()>(vec![(key(Kind::Pod, "a", "new"), obj("Pod", "a", "new"))]);
        let (all, _) = cache.list(Kind::Pod, None, &rev, fresh).expect("list");
        assert_eq!(names(&all), vec!["new"]);
    }
}
