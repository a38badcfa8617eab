//! `propagationPolicy` of a delete: what happens to the objects that name
//! the deleted one in their `ownerReferences`. `Background` (the default)
//! leaves them to the garbage collector, which deletes them once their
//! owners are gone; `Orphan` removes the owner from them first, so they
//! stay (`kubectl delete deployment web --cascade=orphan` keeps its
//! ReplicaSets and pods running). `Foreground` is refused: shoal does not
//! hold an owner until its dependents are gone.

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

/// Whether the delete orphans the dependents; a refused `Foreground` is
/// refused here, before anything is written.
pub(super) fn orphans(q: &WriteQuery) -> ApiResult<bool> {
    match q.propagation_policy {
        None | Some(Policy::Background) => Ok(false),
        Some(Policy::Orphan) => Ok(true),
        Some(Policy::Foreground) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "propagationPolicy Foreground is not supported by shoal: an owner is not held until \
             its dependents are gone; use Background (the default: the garbage collector deletes \
             them right after) or Orphan (they stay)",
        )),
    }
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
