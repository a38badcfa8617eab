//! Checks of a PriorityClass and of a pod's priority fields, with
//! Kubernetes' rules. Which class a pod names is resolved when the pod is
//! created (`crate::admission`), not here: the class may be applied later
//! in the same file.

use super::*;
use crate::resource::types::{
    HIGHEST_USER_PRIORITY, PodSpec, PriorityClassBody, SYSTEM_PRIORITY_CLASSES,
};

/// A PriorityClass: user classes up to one billion; the `system-` prefix
/// is Kubernetes' own.
pub(super) fn check(meta: &ObjectMeta, body: Map<String, Value>) -> Res<Map<String, Value>> {
    let b: PriorityClassBody = decode(body)?;
    if meta.name.starts_with("system-") {
        let builtin = SYSTEM_PRIORITY_CLASSES.iter().any(|(n, _)| *n == meta.name);
        let why = if builtin {
            "is built in and cannot be written"
        } else {
            "uses the \"system-\" prefix, which is reserved for built-in classes"
        };
        return fail("metadata.name", format!("{:?} {why}", meta.name));
    }
    if b.value > HIGHEST_USER_PRIORITY {
        return fail(
            "value",
            format!(
                "{}: must be at most {HIGHEST_USER_PRIORITY} (higher values are kept for the \
                 built-in system- classes)",
                b.value
            ),
        );
    }
    encode(&b)
}

/// `priorityClassName` is a name; `priority` is checked against the
/// class when the pod is created.
pub(super) fn check_pod_priority(spec: &PodSpec, path: &str) -> Res {
    if let Some(n) = &spec.priority_class_name {
        check_dns_subdomain(&format!("{path}.priorityClassName"), n)?;
    }
    Ok(())
}
