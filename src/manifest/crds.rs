//! Checks of a CustomResourceDefinition (the rules are `crate::crd`'s)
//! and of a custom object's metadata.

use super::*;

/// A definition's body, canonical with its defaults; `CustomObject` is
/// never parsed from a manifest (it is not in `Kind::ALL`).
pub(super) fn check(
    kind: Kind,
    meta: &ObjectMeta,
    body: Map<String, Value>,
) -> Res<Map<String, Value>> {
    if kind == Kind::CustomObject {
        return fail("kind", "not a kind: name the custom kind itself");
    }
    let b = crate::crd::check(&meta.name, decode(body)?).or_else(|e| fail(e.path, e.message))?;
    encode(&b)
}

/// Checks a custom object's metadata as [`validate_object`] checks a
/// built-in kind's (name, namespace, labels, annotations), normalising the
/// namespace; errors name the field.
pub fn check_custom_metadata(meta: &mut ObjectMeta, namespaced: bool) -> Result<(), ManifestError> {
    let checked = (|| {
        if meta.name.is_empty() {
            return fail("metadata.name", "missing: every object needs a name");
        }
        check_object_name(Kind::CustomObject, &meta.name)?;
        if namespaced {
            match meta.namespace.as_deref() {
                None | Some("") => meta.namespace = Some(DEFAULT_NAMESPACE.to_string()),
                Some(ns) => check_dns_label("metadata.namespace", ns)?,
            }
        } else {
            meta.namespace = None;
        }
        check_labels("metadata.labels", &meta.labels)?;
        check_annotations("metadata.annotations", &meta.annotations)
    })();
    checked.map_err(|f| ManifestError::Invalid {
        doc: None,
        object: None,
        path: f.path,
        message: f.message,
    })
}
