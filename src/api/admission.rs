//! Admission of the Pods users write (the controllers admit theirs):
//! `crate::admission` decides.

use std::collections::HashMap;

use super::*;
use crate::admission::Policy;

/// The admission of one API write. Each namespace's policy is read once,
/// so the new pods of one manifest are charged to a quota together, in
/// the write that creates them ([`Admission::ops`]).
#[derive(Default)]
pub(super) struct Admission {
    policies: HashMap<String, Policy>,
}

impl Admission {
    /// A Pod written by a user takes its priority class and its
    /// namespace's LimitRange defaults and, when it is new, is charged to
    /// the namespace's quotas; it is refused (403, Kubernetes' words) when
    /// it names an unknown class, breaks a bound or exceeds a quota, as the
    /// controllers' pods are.
    pub(super) fn admit(
        &mut self,
        s: &ApiState,
        key: &ObjectKey,
        obj: &mut Object,
    ) -> ApiResult<()> {
        if key.kind != Kind::Pod {
            return Ok(());
        }
        let new = s.store.get(key)?.is_none();
        let policy = self
            .policies
            .entry(key.namespace.clone())
            .or_insert_with(|| crate::admission::policy(&s.store, &key.namespace));
        crate::admission::admit_pod_object(obj, policy, new)
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))
    }

    /// The quota charges to write with the admitted pods.
    pub(super) fn ops(&self) -> Vec<Op> {
        self.policies.values().flat_map(Policy::quota_ops).collect()
    }
}
