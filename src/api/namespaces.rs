//! Namespace lifecycle, as Kubernetes' NamespaceLifecycle admission: a
//! namespaced object is written only into a namespace that exists and is
//! not being deleted; deleting a namespace marks it Terminating, and the
//! leader's namespace controller deletes what it holds, then the namespace.

use std::collections::HashSet;

use axum::http::StatusCode;

use super::{ApiError, ApiResult, ApiState};
use crate::resource::time::now_rfc3339;
use crate::resource::{BUILTIN_NAMESPACES, Kind, ObjectKey};
use crate::store::{Op, Precondition};

/// Refuses a write of `key` into a namespace that does not exist (404) or
/// is Terminating (403, unless the object already exists: updates are
/// allowed while the namespace empties). `in_request` names namespaces the
/// same request creates.
pub(super) async fn admit(
    s: &ApiState,
    key: &ObjectKey,
    in_request: &HashSet<String>,
) -> ApiResult<()> {
    if !key.kind.namespaced() || in_request.contains(&key.namespace) {
        return Ok(());
    }
    let ns_key = ObjectKey::new(Kind::Namespace, "", &key.namespace);
    let mut ns = s.store.get(&ns_key)?;
    if ns.is_none() && !BUILTIN_NAMESPACES.contains(&key.namespace.as_str()) {
        // This replica may lag behind a namespace just created elsewhere.
        s.store.barrier().await?;
        ns = s.store.get(&ns_key)?;
    }
    match ns {
        None if BUILTIN_NAMESPACES.contains(&key.namespace.as_str()) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{key}: namespace {:?} not found; create it first (kind: Namespace)",
                key.namespace
            ),
        )),
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
            if s.store.get(key)?.is_some() {
                return Ok(());
            }
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{key}: namespace {:?} is being deleted (Terminating); nothing new can be created in it",
                    key.namespace
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// The write that deletes namespace `name`: it is marked Terminating (the
/// namespace controller removes its objects, then it). `None` when it is
/// already terminating. The built-in namespaces cannot be deleted.
pub(super) fn delete_op(
    s: &ApiState,
    name: &str,
    precondition: Precondition,
) -> ApiResult<Option<Op>> {
    if BUILTIN_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("namespace {name:?} is built in and cannot be deleted"),
        ));
    }
    let key = ObjectKey::new(Kind::Namespace, "", name);
    let Some(mut ns) = s.store.get(&key)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("namespace {name:?} not found"),
        ));
    };
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let version = match precondition {
        Precondition::Version(v) => v,
        _ => ns.resource_version(),
    };
    ns.metadata.deletion_timestamp = Some(now_rfc3339());
    ns.set_status(&crate::resource::status::NamespaceStatus::phase(
        "Terminating",
    ));
    let object = serde_json::to_vec(&ns)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Some(Op::Put {
        key,
        object,
        precondition: Precondition::Version(version),
    }))
}
