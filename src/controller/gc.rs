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
use crate::store::{Op, Store};

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
}
