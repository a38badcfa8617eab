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

/// Deletes every stored object keyed under definition `name`
/// (`PLURAL.GROUP`): after the definition is deleted, and before one of
/// that name is created (what a crash between the two left behind must not
/// reappear). Returns how many went.
pub(super) async fn delete_objects(s: &ApiState, name: &str) -> ApiResult<usize> {
    s.store.barrier().await?;
    let (items, _) = s.store.list_shared(Kind::CustomObject, None)?;
    let mut keys = Vec::new();
    for o in &items {
        let ns = o.metadata.namespace.as_deref().unwrap_or("");
        let key = crate::crd::object_key(name, ns, &o.metadata.name);
        // Another definition's object may have the same name: only what is
        // stored under this definition's prefix is this one's.
        if s.store
            .get(&key)?
            .is_some_and(|stored| stored.metadata.uid == o.metadata.uid)
        {
            keys.push(key);
        }
    }
    let n = keys.len();
    for chunk in keys.chunks(DELETE_BATCH) {
        let ops = chunk
            .iter()
            .map(|k| Op::Delete {
                key: k.clone(),
                precondition: crate::store::Precondition::None,
            })
            .collect();
        s.store.write(Command { ops }).await?;
    }
    Ok(n)
}
