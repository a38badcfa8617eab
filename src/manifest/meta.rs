//! Checks of the metadata users may give beyond names and labels: owner
//! references and finalizers (see the controllers' garbage collector and
//! finalizer sweep, which honour them).

use super::*;
use crate::resource::OwnerReference;

/// The most owner references and finalizers one object may carry: each is
/// looked at on every garbage-collection pass.
const MAX_OWNER_REFERENCES: usize = 64;
const MAX_FINALIZERS: usize = 64;

pub(super) fn check_owner_references(refs: &[OwnerReference]) -> Res {
    if refs.len() > MAX_OWNER_REFERENCES {
        return fail(
            "metadata.ownerReferences",
            format!("{} references: at most {MAX_OWNER_REFERENCES}", refs.len()),
        );
    }
    for (i, r) in refs.iter().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        for (field, value) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if value.is_empty() {
                return fail(format!("{path}.{field}"), "must not be empty");
            }
        }
    }
    if refs.iter().filter(|r| r.controller == Some(true)).count() > 1 {
        return fail(
            "metadata.ownerReferences",
            "only one reference can have controller set to true",
        );
    }
    Ok(())
}

/// Finalizers a user may set: a domain-prefixed name (`example.com/cleanup`)
/// or one of Kubernetes' own. Not on the kinds whose deletion shoal runs
/// itself (a pod's stop, a claim's protection, a namespace's emptying).
pub(super) fn check_finalizers(kind: Kind, finalizers: &[String]) -> Res {
    if finalizers.is_empty() {
        return Ok(());
    }
    if matches!(
        kind,
        Kind::Pod | Kind::PersistentVolumeClaim | Kind::Namespace | Kind::Event | Kind::Token
    ) {
        return fail(
            "metadata.finalizers",
            format!(
                "field not supported by shoal on a {kind}: its deletion is shoal's own \
                 (finalizers are honoured on the other kinds)"
            ),
        );
    }
    if finalizers.len() > MAX_FINALIZERS {
        return fail(
            "metadata.finalizers",
            format!("{} finalizers: at most {MAX_FINALIZERS}", finalizers.len()),
        );
    }
    for (i, f) in finalizers.iter().enumerate() {
        let path = format!("metadata.finalizers[{i}]");
        if f == "orphan" {
            return fail(
                path,
                "\"orphan\": shoal orphans dependents only for deletes with \
                 propagationPolicy=Orphan (kubectl delete --cascade=orphan)"
                    .to_string(),
            );
        }
        // foregroundDeletion is what a foreground delete sets; an object
        // read back and applied carries it.
        if !f.contains('/') && !matches!(f.as_str(), "kubernetes" | "foregroundDeletion") {
            return fail(
                path,
                format!(
                    "{f:?} is neither a standard finalizer name nor fully qualified \
                     (such as example.com/cleanup)"
                ),
            );
        }
        check_qualified_name(&path, f)?;
    }
    Ok(())
}

/// The metadata every object has: name, namespace (filled with the default
/// or cleared as `namespaced` says), labels, annotations, owners, finalizers.
pub(super) fn check_metadata(kind: Kind, namespaced: bool, meta: &mut ObjectMeta) -> Res {
    if meta.name.is_empty() {
        return fail("metadata.name", "missing: every object needs a name");
    }
    check_object_name(kind, &meta.name)?;
    if namespaced {
        match meta.namespace.as_deref() {
            None | Some("") => meta.namespace = Some(DEFAULT_NAMESPACE.to_string()),
            Some(ns) => check_dns_label("metadata.namespace", ns)?,
        }
    } else {
        meta.namespace = None;
    }
    check_labels("metadata.labels", &meta.labels)?;
    check_annotations("metadata.annotations", &meta.annotations)?;
    check_owner_references(&meta.owner_references)?;
    check_finalizers(kind, meta.finalizers.as_deref().unwrap_or_default())
}
