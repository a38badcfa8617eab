//! `propagationPolicy` of a delete: what happens to the objects that name
//! the deleted one in their `ownerReferences`. `Background` (the default)
//! leaves them to the garbage collector, which deletes them once their
//! owners are gone; `Orphan` removes the owner from them first, so they
//! stay (`kubectl delete deployment web --cascade=orphan` keeps its
//! ReplicaSets and pods running). `Foreground` marks the owner with the
//! `foregroundDeletion` finalizer: it stays, marked, until the garbage
//! collector has deleted its dependents (`controller::gc::foreground`).

use std::sync::Arc;

use serde::Deserialize;

use super::*;

/// A delete's `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum Policy {
    Background,
    Orphan,
    Foreground,
}

impl Policy {
    /// Parses DeleteOptions' `propagationPolicy`, naming what is wrong.
    pub(super) fn parse(v: &str) -> ApiResult<Policy> {
        match v {
            "Background" => Ok(Policy::Background),
            "Orphan" => Ok(Policy::Orphan),
            "Foreground" => Ok(Policy::Foreground),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "propagationPolicy: Unsupported value: {v:?}: supported values: \"Orphan\", \"Background\", \"Foreground\""
                ),
            )),
        }
    }
}

/// Most writes a delete puts together with its dependents' strips: past
/// these (or past half a command's bytes) the strips go first, apart.
const MAX_TOGETHER: usize = 256;

/// Whether the delete orphans the dependents.
pub(super) fn orphans(q: &WriteQuery) -> bool {
    q.propagation_policy == Some(Policy::Orphan)
}

/// The write that starts a foreground delete of `key`: the object marked
/// with the `foregroundDeletion` finalizer, at the client's version if it
/// gave one. `None` when it is so marked already; a plain delete (the
/// store answers 404) when it is not stored. Only for kinds that hold
/// their deletion for finalizers: the others (pods, claims, namespaces)
/// run their own deletion, so `Foreground` is `Background` for them.
pub(super) fn foreground_op(
    s: &ApiState,
    key: &ObjectKey,
    precondition: crate::store::Precondition,
) -> ApiResult<Option<Op>> {
    let Some(obj) = s.store.get(key)? else {
        return Ok(Some(Op::Delete {
            key: key.clone(),
            precondition,
        }));
    };
    let version = match precondition {
        crate::store::Precondition::Version(v) => v,
        _ => obj.resource_version(),
    };
    crate::controller::finalizers::mark_foreground(
        &obj,
        key.clone(),
        crate::store::Precondition::Version(version),
    )
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// The writes that remove `owner` from its dependents' `ownerReferences`,
/// each at the version read, and whether they fit in one command with the
/// owner's delete.
pub(super) fn strip_ops(s: &ApiState, owner: &ObjectKey) -> ApiResult<(Vec<Op>, bool)> {
    let Some(uid) = s.store.get(owner)?.and_then(|o| o.metadata.uid) else {
        return Ok((Vec::new(), true));
    };
    let all = crate::controller::gc::everything(&s.store).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot read this node's replica to find the dependents",
        )
    })?;
    let mut ops = Vec::new();
    let mut bytes = 0;
    for (key, o) in dependents(&all, &uid) {
        // Secrets are listed sealed: read the opened copy to write back.
        let Some(mut d) = s.store.get(key)? else {
            continue;
        };
        d.metadata.owner_references.retain(|r| r.uid != uid);
        let object = serde_json::to_vec(&d)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        bytes += object.len();
        ops.push(Op::Put {
            key: key.clone(),
            object,
            precondition: crate::store::Precondition::Version(o.resource_version()),
        });
    }
    let together = ops.len() < MAX_TOGETHER && bytes < crate::store::MAX_COMMAND_BYTES / 2;
    Ok((ops, together))
}

/// The objects that name `uid` among their owners.
fn dependents<'a>(
    all: &'a [(ObjectKey, Arc<Object>)],
    uid: &'a str,
) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<Object>)> {
    all.iter()
        .filter(move |(_, o)| o.metadata.owner_references.iter().any(|r| r.uid == uid))
        .map(|(k, o)| (k, o))
}

/// Writes strips too many for one command, in commands bounded by count
/// and bytes.
pub(super) async fn write_apart(s: &ApiState, ops: Vec<Op>) -> ApiResult<()> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let size = match &op {
            Op::Put { object, .. } => object.len(),
            _ => 0,
        };
        if !chunk.is_empty()
            && (chunk.len() >= MAX_TOGETHER || bytes + size >= crate::store::MAX_COMMAND_BYTES / 2)
        {
            s.store
                .write(Command {
                    ops: std::mem::take(&mut chunk),
                })
                .await?;
            bytes = 0;
        }
        bytes += size;
        chunk.push(op);
    }
    if !chunk.is_empty() {
        s.store.write(Command { ops: chunk }).await?;
    }
    Ok(())
}
