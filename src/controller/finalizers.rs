//! Finalizers set by users and operators: a delete of an object that holds
//! any only marks it (`deletionTimestamp`, see `api::finalized_delete_op`);
//! whoever set them removes them when their cleanup is done, and this
//! controller then deletes the object. The kinds whose deletion shoal runs
//! itself (a pod's stop, a claim's protection, a namespace's emptying) do
//! not take user finalizers.

use std::sync::Arc;

use tracing::{debug, info};

use crate::resource::{Kind, Object, ObjectKey};
use crate::store::{Command, Op, Precondition, Store};

/// Whether a delete of `kind` waits for the object's finalizers.
pub fn holds_deletion(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Pod | Kind::PersistentVolumeClaim | Kind::Namespace | Kind::Event | Kind::Token
    )
}

/// `o` marked for deletion (`deletionTimestamp`), conditional on
/// `precondition`. A claim without a status gets one (`Pending`): the mark
/// alone on an object whose desired state is unchanged must still be a
/// write the store keeps.
pub fn mark(o: &Object, key: ObjectKey, precondition: Precondition) -> Result<Op, String> {
    let mut m = o.clone();
    m.metadata.deletion_timestamp = Some(crate::resource::time::now_rfc3339());
    if o.kind() == Some(Kind::PersistentVolumeClaim) && !m.body.contains_key("status") {
        m.set_status(&crate::resource::status::PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }
    Ok(Op::Put {
        key,
        object: serde_json::to_vec(&m).map_err(|e| e.to_string())?,
        precondition,
    })
}

/// The finalizer of a foreground delete (Kubernetes' name): the owner
/// stays, marked, until the garbage collector has deleted every object
/// that names it among its owners (see `gc::foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";

/// Whether `o` is marked for a foreground delete.
pub fn in_foreground(o: &Object) -> bool {
    o.metadata.deletion_timestamp.is_some()
        && o.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FOREGROUND))
}

/// `o` marked for a foreground delete, at `precondition`: its
/// `deletionTimestamp` (kept when it has one: a foreground delete of an
/// object already being deleted only adds the finalizer) and the
/// [`FOREGROUND`] finalizer. `None` when it is so marked already.
pub fn mark_foreground(
    o: &Object,
    key: ObjectKey,
    precondition: Precondition,
) -> Result<Option<Op>, String> {
    if in_foreground(o) {
        return Ok(None);
    }
    let mut m = o.clone();
    if m.metadata.deletion_timestamp.is_none() {
        m.metadata.deletion_timestamp = Some(crate::resource::time::now_rfc3339());
    }
    let finalizers = m.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == FOREGROUND) {
        finalizers.push(FOREGROUND.into());
    }
    Ok(Some(Op::Put {
        key,
        object: serde_json::to_vec(&m).map_err(|e| e.to_string())?,
        precondition,
    }))
}

/// The write that ends `o`'s foreground wait, its dependents gone: the
/// [`FOREGROUND`] finalizer removed, and `o` deleted when it held no other.
pub fn release_foreground(o: &Object, key: &ObjectKey) -> Option<Op> {
    let at = Precondition::Version(o.resource_version());
    let left: Vec<String> = o
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FOREGROUND)
        .cloned()
        .collect();
    if left.is_empty() {
        return Some(Op::Delete {
            key: key.clone(),
            precondition: at,
        });
    }
    let mut m = o.clone();
    m.metadata.finalizers = Some(left);
    Some(Op::Put {
        key: key.clone(),
        object: serde_json::to_vec(&m).ok()?,
        precondition: at,
    })
}

/// How the garbage collector deletes `o` (stored under `key`), whose
/// owners are gone: at once, or by marking it when it holds finalizers (a
/// claim always: its protection is the storage controller's). `None` when
/// it is already marked, or of a kind never collected by owner (a
/// namespace).
pub fn deletion(o: &Object, key: &ObjectKey) -> Option<Op> {
    let kind = key.kind;
    let at = Precondition::Version(o.resource_version());
    let held = kind == Kind::PersistentVolumeClaim
        || (holds_deletion(kind)
            && o.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty()));
    match kind {
        Kind::Namespace => None,
        _ if held && o.metadata.deletion_timestamp.is_some() => None,
        _ if held => mark(o, key.clone(), at).ok(),
        _ => Some(Op::Delete {
            key: key.clone(),
            precondition: at,
        }),
    }
}

/// The objects marked for deletion whose finalizers are all gone: to delete
/// now, each at the version read.
pub fn released(objects: &[(ObjectKey, Arc<Object>)]) -> Vec<Op> {
    objects
        .iter()
        .filter(|(k, _)| holds_deletion(k.kind))
        .filter(|(_, o)| {
            o.metadata.deletion_timestamp.is_some()
                && o.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
        })
        .map(|(k, o)| Op::Delete {
            key: k.clone(),
            precondition: Precondition::Version(o.resource_version()),
        })
        .collect()
}

/// Deletes the released objects of `objects`.
pub async fn reconcile(store: &Store, objects: &[(ObjectKey, Arc<Object>)]) {
    let ops = released(objects);
    if ops.is_empty() {
        return;
    }
    info!(
        objects = ops.len(),
        "deleting objects whose finalizers are done"
    );
    write_in_chunks(store, &ops).await;
}

/// Writes deletes (or marks) 200 to a command; a failed chunk is left for
/// the next pass, which finds the same objects again (level-triggered).
pub(super) async fn write_in_chunks(store: &Store, ops: &[Op]) {
    for chunk in ops.chunks(200) {
        if let Err(e) = store
            .write(Command {
                ops: chunk.to_vec(),
            })
            .await
        {
            debug!("garbage collection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ObjectMeta;

    fn obj(kind: &str, name: &str, deleting: bool, finalizers: Option<Vec<&str>>) -> Arc<Object> {
        Arc::new(Object {
            api_version: "v1".into(),
            kind: kind.into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                resource_version: Some("9".into()),
                deletion_timestamp: deleting.then(|| "2026-12-01T00:00:00Z".into()),
                finalizers: finalizers.map(|f| f.into_iter().map(String::from).collect()),
                ..Default::default()
            },
            body: Default::default(),
        })
    }

    #[test]
    fn collected_objects_holding_finalizers_are_marked() {
        let del = |o: &Arc<Object>| deletion(o, &o.key().expect("a key"));
        let plain = obj("ConfigMap", "plain", false, None);
        assert!(matches!(del(&plain), Some(Op::Delete { .. })));
        let held = obj("ConfigMap", "held", false, Some(vec!["example.com/x"]));
        let Some(Op::Put { object, .. }) = del(&held) else {
            panic!("a held object is marked");
        };
        let marked: Object = serde_json::from_slice(&object).unwrap();
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert_eq!(
            del(&obj(
                "ConfigMap",
                "again",
                true,
                Some(vec!["example.com/x"])
            )),
            None
        );
        let claim = obj("PersistentVolumeClaim", "data", false, None);
        let Some(Op::Put { object, .. }) = del(&claim) else {
            panic!("a claim is marked, for its protection");
        };
        let marked: Object = serde_json::from_slice(&object).unwrap();
        assert!(marked.body.contains_key("status"));
        assert_eq!(del(&obj("Namespace", "ns", false, None)), None);
    }

    #[test]
    fn only_marked_objects_without_finalizers_go() {
        let objects = [
            obj("ConfigMap", "done", true, Some(vec![])),
            obj("ConfigMap", "done-none", true, None),
            obj("ConfigMap", "waiting", true, Some(vec!["example.com/x"])),
            obj("ConfigMap", "live", false, None),
            // A claim marked for deletion is the storage controller's.
            obj("PersistentVolumeClaim", "claim", true, None),
        ];
        let keyed: Vec<(ObjectKey, Arc<Object>)> = objects
            .iter()
            .map(|o| (o.key().expect("a key"), o.clone()))
            .collect();
        let names: Vec<String> = released(&keyed)
            .iter()
            .map(|op| match op {
                Op::Delete { key, precondition } => {
                    assert_eq!(*precondition, Precondition::Version(9));
                    key.name.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["done", "done-none"]);
    }
}
