//! Garbage collection by owner: deleting a Deployment deletes its
//! ReplicaSets, and deleting a ReplicaSet deletes its pods (Kubernetes'
//! background cascading deletion). An object goes only when its
//! controlling owner's uid is gone, so a Deployment deleted and recreated
//! under the same name does not adopt the old one's ReplicaSets.

use std::collections::HashSet;

use tracing::{debug, info};

use crate::resource::Object;
use crate::store::{Command, Op, Precondition, Store};

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
            ops.push(Op::Delete {
                key,
                precondition: Precondition::Version(d.resource_version()),
            });
        }
    }
    if ops.is_empty() {
        return;
    }
    info!(
        owner = owner_kind,
        objects = ops.len(),
        "deleting objects whose owner is gone"
    );
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
