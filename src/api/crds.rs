//! The API's side of CustomResourceDefinitions: what a definition may not
//! do given the others (share names in a group, change what its objects
//! are keyed and recognised by), its status, and removing its objects
//! when it goes. Serving the objects is `kube::custom`'s.

use super::*;
use crate::crd::CrdBody;

/// Most deletes in one replicated command when a definition's objects go.
const DELETE_BATCH: usize = 64;

fn body_of(o: &Object) -> ApiResult<CrdBody> {
    let mut b = o.body.clone();
    b.remove("status");
    serde_json::from_value(Value::Object(b)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: {e}", o.metadata.name),
        )
    })
}

/// Checks a definition against the stored ones and returns the status
/// write that goes with it (`None`: its accepted names are unchanged).
pub(super) fn admit(s: &ApiState, key: &ObjectKey, obj: &Object) -> ApiResult<Option<Op>> {
    let body = body_of(obj)?;
    let (defs, _) = s.store.list(Kind::CustomResourceDefinition, None)?;
    let mut live = None;
    for d in &defs {
        if d.metadata.name == key.name {
            live = Some(d);
            continue;
        }
        let Ok(other) = body_of(d) else { continue };
        if let Some(what) = crate::crd::conflict(&body.spec, &other.spec) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{key}: spec.names: the {what} is taken by {} in group {:?}",
                    d.metadata.name, body.spec.group
                ),
            ));
        }
    }
    if let Some(live) = live {
        let old = body_of(live)?;
        // Stored objects are recognised by kind and keyed by scope.
        for (field, was, now) in [
            (
                "spec.names.kind",
                &old.spec.names.kind,
                &body.spec.names.kind,
            ),
            ("spec.scope", &old.spec.scope, &body.spec.scope),
        ] {
            if was != now {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "{key}: {field}: Invalid value: {now:?}: field is immutable (was {was:?})"
                    ),
                ));
            }
        }
        let accepted = live.body.get("status").and_then(|s| s.get("acceptedNames"));
        if accepted == serde_json::to_value(&body.spec.names).ok().as_ref() {
            return Ok(None);
        }
    }
    let status = crate::crd::accepted_status(&body, &crate::resource::time::now_rfc3339());
    Ok(Some(Op::SetStatus {
        key: key.clone(),
        uid: None,
        status: serde_json::to_vec(&status)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    }))
}

/// What goes with a write of `obj` in the same command: for a definition,
/// its status (see [`admit`]) and, when it is new, the deletion of what a
/// crash left under its name after an earlier one was deleted (in the same
/// command, so a create that fails as AlreadyExists deletes nothing).
/// Nothing for other kinds.
pub(super) fn with_write(s: &ApiState, key: &ObjectKey, obj: &Object) -> ApiResult<Vec<Op>> {
    if key.kind != Kind::CustomResourceDefinition {
        return Ok(Vec::new());
    }
    let mut ops: Vec<Op> = admit(s, key, obj)?.into_iter().collect();
    if s.store.get(key)?.is_none() {
        ops.extend(object_deletes(s, &key.name)?);
    }
    Ok(ops)
}

/// Deletes of every stored object keyed under definition `name`
/// (`PLURAL.GROUP`), each conditional on the version read.
fn object_deletes(s: &ApiState, name: &str) -> ApiResult<Vec<Op>> {
    let (items, _) = s.store.list_shared(Kind::CustomObject, None)?;
    let mut ops = Vec::new();
    for o in &items {
        let ns = o.metadata.namespace.as_deref().unwrap_or("");
        let key = crate::crd::object_key(name, ns, &o.metadata.name);
        // Another definition's object may have the same name: only what is
        // stored under this definition's prefix is this one's.
        if s.store
            .get(&key)?
            .is_some_and(|stored| stored.metadata.uid == o.metadata.uid)
        {
            ops.push(Op::Delete {
                key,
                precondition: crate::store::Precondition::Version(o.resource_version()),
            });
        }
    }
    Ok(ops)
}

/// Deletes the objects of definition `name` once it is deleted; returns
/// how many went.
pub(super) async fn delete_objects(s: &ApiState, name: &str) -> ApiResult<usize> {
    s.store.barrier().await?;
    let ops = object_deletes(s, name)?;
    let n = ops.len();
    for chunk in ops.chunks(DELETE_BATCH) {
        s.store
            .write(Command {
                ops: chunk.to_vec(),
            })
            .await?;
    }
    Ok(n)
}
