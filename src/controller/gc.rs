//! Garbage collection by owner: deleting a Deployment deletes its
//! ReplicaSets, and deleting a ReplicaSet deletes its pods (Kubernetes'
//! background cascading deletion). An object goes only when its
//! controlling owner's uid is gone, so a Deployment deleted and recreated
//! under the same name does not adopt the old one's ReplicaSets.
//!
//! [`collect`] runs on every pass for the pairs shoal's own controllers
//! make; [`Collector`] walks every stored object now and then for the
//! owner references users and operators write (a ConfigMap owned by a
//! Deployment, a Deployment owned by a custom object), as Kubernetes'
//! garbage collector: an object goes once none of its owners exists.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::resource::Kind;

use tracing::{debug, info};

use crate::resource::{Object, ObjectKey};
use crate::store::{Op, Precondition, Store};

/// Deletes objects whose controlling owner of `owner_kind` no longer exists.
pub async fn collect(store: &Store, owner_kind: &str, owners: &[Object], dependents: &[Object]) {
    let live: HashSet<&str> = owners
        .iter()
        .filter_map(|o| o.metadata.uid.as_deref())
        .collect();
    let mut ops = Vec::new();
    for d in dependents {
        let orphaned = d
            .metadata
            .owner_references
            .iter()
            .find(|r| r.controller == Some(true))
            .is_some_and(|r| r.kind == owner_kind && !live.contains(r.uid.as_str()));
        if !orphaned {
            continue;
        }
        if let Some(key) = d.key() {
            ops.extend(super::finalizers::deletion(d, &key));
        }
    }
    if !ops.is_empty() {
        info!(
            owner = owner_kind,
            objects = ops.len(),
            "deleting objects whose owner is gone"
        );
        super::finalizers::write_in_chunks(store, &ops).await;
    }
}

/// How often [`Collector`] walks every object: a walk reads every object's
/// metadata, so not on every pass (a pass runs on every write).
const WALK_EVERY: Duration = Duration::from_secs(2);

/// How to delete the objects whose every owner is gone (by uid: an owner
/// deleted and re-created under its name is another object), each
/// conditional on the version read. An object being deleted still owns its
/// dependents until it is gone.
pub fn orphans(objects: &[(ObjectKey, Arc<Object>)]) -> Vec<Op> {
    let live: HashSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| o.metadata.uid.as_deref())
        .collect();
    objects
        .iter()
        .filter(|(_, o)| {
            !o.metadata.owner_references.is_empty()
                && o.metadata
                    .owner_references
                    .iter()
                    .all(|r| !live.contains(r.uid.as_str()))
        })
        .filter_map(|(k, o)| super::finalizers::deletion(o, k))
        .collect()
}

/// The writes that move foreground deletes on: an owner marked with the
/// `foregroundDeletion` finalizer stays until every object naming it among
/// its owners is gone. Each such dependent not yet being deleted is
/// deleted now: in the foreground itself when it owns others (a
/// Deployment's ReplicaSets wait for their pods, as Kubernetes' collector
/// does it), plainly otherwise; one that another live owner still holds
/// only loses this owner. An owner without dependents left loses the
/// finalizer, and goes when it held no other. Unlike Kubernetes, every
/// dependent blocks its owner, not only those with `blockOwnerDeletion`.
pub fn foreground(objects: &[(ObjectKey, Arc<Object>)]) -> Vec<Op> {
    use super::finalizers::{deletion, holds_deletion, in_foreground, mark_foreground};
    let waiting: Vec<&(ObjectKey, Arc<Object>)> = objects
        .iter()
        .filter(|(k, o)| holds_deletion(k.kind) && in_foreground(o))
        .collect();
    if waiting.is_empty() {
        return Vec::new();
    }
    let owning: HashSet<&str> = objects
        .iter()
        .flat_map(|(_, o)| o.metadata.owner_references.iter())
        .map(|r| r.uid.as_str())
        .collect();
    // Owners that stay: stored and not being deleted.
    let staying: HashSet<&str> = objects
        .iter()
        .filter(|(_, o)| o.metadata.deletion_timestamp.is_none())
        .filter_map(|(_, o)| o.metadata.uid.as_deref())
        .collect();
    let mut ops = Vec::new();
    let mut written: HashSet<&ObjectKey> = HashSet::new();
    for (key, owner) in waiting {
        let Some(uid) = owner.metadata.uid.as_deref() else {
            continue;
        };
        let mut dependents = objects
            .iter()
            .filter(|(_, d)| d.metadata.owner_references.iter().any(|r| r.uid == uid))
            .peekable();
        if dependents.peek().is_none() {
            ops.extend(super::finalizers::release_foreground(owner, key));
            continue;
        }
        for (dk, d) in dependents {
            if d.metadata.deletion_timestamp.is_some() || !written.insert(dk) {
                continue;
            }
            let at = Precondition::Version(d.resource_version());
            let held_elsewhere = d
                .metadata
                .owner_references
                .iter()
                .any(|r| r.uid != uid && staying.contains(r.uid.as_str()));
            let op = if held_elsewhere {
                let mut kept = (**d).clone();
                kept.metadata.owner_references.retain(|r| r.uid != uid);
                serde_json::to_vec(&kept).ok().map(|object| Op::Put {
                    key: dk.clone(),
                    object,
                    precondition: at,
                })
            } else if holds_deletion(dk.kind)
                && d.metadata
                    .uid
                    .as_deref()
                    .is_some_and(|u| owning.contains(u))
            {
                mark_foreground(d, dk.clone(), at).ok().flatten()
            } else {
                deletion(d, dk)
            };
            ops.extend(op);
        }
    }
    ops
}

/// Every stored object with its key, for a walk: Secrets as stored
/// (sealed), since only their metadata is read; custom objects (not in
/// `Kind::ALL`, see `crate::crd`) keyed through their definitions. A
/// custom object whose definition is gone is left out: it is being
/// deleted with it.
pub fn everything(store: &Store) -> Option<Vec<(ObjectKey, Arc<Object>)>> {
    let mut all = Vec::new();
    let mut keyed = |o: Arc<Object>| {
        if let Some(k) = o.key() {
            all.push((k, o));
        }
    };
    for kind in Kind::ALL {
        if kind == Kind::Secret {
            store
                .list_sealed()
                .ok()?
                .into_iter()
                .map(Arc::new)
                .for_each(&mut keyed);
        } else {
            store
                .list_shared(kind, None)
                .ok()?
                .0
                .into_iter()
                .for_each(&mut keyed);
        }
    }
    // Custom objects own too (an operator's children), and are collected
    // and finalized like the rest.
    let defs: Vec<crate::crd::Definition> = all
        .iter()
        .filter(|(k, _)| k.kind == Kind::CustomResourceDefinition)
        .filter_map(|(_, o)| crate::crd::Definition::from_object(o))
        .collect();
    for o in store.list_shared(Kind::CustomObject, None).ok()?.0 {
        if let Some(d) = defs.iter().find(|d| d.owns(&o)) {
            all.push((d.key(o.metadata.namespace.as_deref(), &o.metadata.name), o));
        }
    }
    Some(all)
}

/// The periodic walk over every object's owner references and finalizers.
#[derive(Debug, Default)]
pub struct Collector {
    last: Option<Instant>,
}

impl Collector {
    /// Walks every object if the last walk is `WALK_EVERY` old: deletes
    /// those whose owners are all gone and those whose finalizers are done.
    pub async fn reconcile(&mut self, store: &Store) {
        if self.last.is_some_and(|t| t.elapsed() < WALK_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let Some(all) = everything(store) else {
            debug!("garbage collection: cannot read the replica");
            return;
        };
        super::finalizers::reconcile(store, &all).await;
        let moved = foreground(&all);
        if !moved.is_empty() {
            info!(
                objects = moved.len(),
                "foreground deletes: deleting dependents, releasing owners"
            );
            super::finalizers::write_in_chunks(store, &moved).await;
        }
        let ops = orphans(&all);
        if ops.is_empty() {
            return;
        }
        info!(
            objects = ops.len(),
            "deleting objects whose owners are all gone"
        );
        super::finalizers::write_in_chunks(store, &ops).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{ObjectMeta, OwnerReference};

    fn obj(kind: &str, name: &str, uid: &str, owners: &[&str]) -> Arc<Object> {
        Arc::new(Object {
            api_version: "v1".into(),
            kind: kind.into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                resource_version: Some("3".into()),
                owner_references: owners
                    .iter()
                    .map(|u| OwnerReference {
                        api_version: "example.com/v1".into(),
                        kind: "Website".into(),
                        name: format!("owner-{u}"),
                        uid: (*u).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            body: Default::default(),
        })
    }

    fn names(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                Op::Delete { key, .. } => key.name.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_object_goes_when_every_owner_is_gone() {
        let objects = [
            obj("Deployment", "owner", "u-owner", &[]),
            obj("ConfigMap", "kept", "u1", &["u-owner"]),
            obj("ConfigMap", "orphan", "u2", &["u-gone"]),
            // One owner left is enough to stay.
            obj("ConfigMap", "shared", "u3", &["u-gone", "u-owner"]),
            obj("ConfigMap", "two-gone", "u4", &["u-gone", "u-gone-too"]),
            obj("ConfigMap", "unowned", "u5", &[]),
            // A chain: its owner is itself owned by something gone, but
            // exists for now; it goes on a later walk.
            obj("Secret", "grandchild", "u6", &["u2"]),
        ];
        let keyed: Vec<(ObjectKey, Arc<Object>)> = objects
            .iter()
            .map(|o| (o.key().expect("a key"), o.clone()))
            .collect();
        assert_eq!(names(&orphans(&keyed)), ["orphan", "two-gone"]);
    }

    fn foreground_marked(o: Arc<Object>, others: &[&str]) -> Arc<Object> {
        let mut o = (*o).clone();
        o.metadata.deletion_timestamp = Some("2026-12-01T00:00:00Z".into());
        let mut f: Vec<String> = others.iter().map(|s| s.to_string()).collect();
        f.push(super::super::finalizers::FOREGROUND.into());
        o.metadata.finalizers = Some(f);
        Arc::new(o)
    }

    #[test]
    fn foreground_deletes_dependents_before_their_owner() {
        let objects = [
            foreground_marked(obj("Deployment", "web", "u-web", &[]), &[]),
            // Owns a pod: deleted in the foreground itself.
            obj("ReplicaSet", "web-1", "u-rs", &["u-web"]),
            // Its owner is not in the foreground yet: left for later.
            obj("Pod", "web-1-a", "u-pod", &["u-rs"]),
            // Owns nothing: deleted plainly.
            obj("ConfigMap", "leaf", "u-leaf", &["u-web"]),
            // Another owner stays: it only loses this one.
            obj("ConfigMap", "shared", "u-shared", &["u-web", "u-other"]),
            obj("Deployment", "other", "u-other", &[]),
            // Already being deleted: waited for, not written.
            foreground_marked(obj("Secret", "going", "u-going", &["u-web"]), &[]),
            // Dependents all gone: released, and deleted or kept for the
            // finalizers it holds besides.
            foreground_marked(obj("Deployment", "done", "u-done", &[]), &[]),
            foreground_marked(obj("Deployment", "held", "u-held", &[]), &["example.com/x"]),
        ];
        let keyed: Vec<(ObjectKey, Arc<Object>)> = objects
            .iter()
            .map(|o| (o.key().expect("a key"), o.clone()))
            .collect();
        let mut got: Vec<(String, String)> = foreground(&keyed)
            .iter()
            .map(|op| match op {
                Op::Delete { key, precondition } => {
                    assert_eq!(*precondition, Precondition::Version(3));
                    (key.name.clone(), "delete".to_string())
                }
                Op::Put {
                    key,
                    object,
                    precondition,
                } => {
                    assert_eq!(*precondition, Precondition::Version(3));
                    let o: Object = serde_json::from_slice(object).unwrap();
                    let what = format!(
                        "finalizers={:?} owners={:?} deleting={}",
                        o.metadata.finalizers.unwrap_or_default(),
                        o.metadata
                            .owner_references
                            .iter()
                            .map(|r| r.uid.clone())
                            .collect::<Vec<_>>(),
                        o.metadata.deletion_timestamp.is_some()
                    );
                    (key.name.clone(), what)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort();
        let want = [
            ("done", "delete"),
            // In the foreground itself, with nothing left under it.
            ("going", "delete"),
            (
                "held",
                "finalizers=[\"example.com/x\"] owners=[] deleting=true",
            ),
            ("leaf", "delete"),
            (
                "shared",
                "finalizers=[] owners=[\"u-other\"] deleting=false",
            ),
            (
                "web-1",
                "finalizers=[\"foregroundDeletion\"] owners=[\"u-web\"] deleting=true",
            ),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        // Nothing in the foreground: nothing to do.
        assert!(foreground(&keyed[1..6]).is_empty());
    }
}
