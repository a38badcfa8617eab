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
/// built-in kind's (name, namespace, labels, annotations, owners,
/// finalizers), normalising the
/// namespace; errors name the field.
pub fn check_custom_metadata(meta: &mut ObjectMeta, namespaced: bool) -> Result<(), ManifestError> {
    let checked = super::meta::check_metadata(Kind::CustomObject, namespaced, meta);
    checked.map_err(|f| ManifestError::Invalid {
        doc: None,
        object: None,
        path: f.path,
        message: f.message,
    })
}
