//! LimitRanges applied to the Pods users write (the controllers apply them
//! to theirs): `crate::admission` decides.

use super::*;

/// A Pod written by a user gets its namespace's LimitRange defaults and is
/// refused (403, Kubernetes' words) out of their bounds, as the
/// controllers' pods are.
pub(super) fn limit_pod(s: &ApiState, key: &ObjectKey, obj: &mut Object) -> ApiResult<()> {
    if key.kind != Kind::Pod {
        return Ok(());
    }
    let items = crate::admission::ranges(&s.store, &key.namespace);
    crate::admission::limit_pod_object(obj, &items)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))
}
