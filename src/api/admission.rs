//! Admission of the Pods users write (the controllers admit theirs):
//! `crate::admission` decides.

use super::*;

/// A Pod written by a user takes its priority class and its namespace's
/// LimitRange defaults, and is refused (403, Kubernetes' words) when it
/// names an unknown class or breaks a bound, as the controllers' pods are.
pub(super) fn admit_pod(s: &ApiState, key: &ObjectKey, obj: &mut Object) -> ApiResult<()> {
    if key.kind != Kind::Pod {
        return Ok(());
    }
    let policy = crate::admission::policy(&s.store, &key.namespace);
    crate::admission::admit_pod_object(obj, &policy)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))
}
