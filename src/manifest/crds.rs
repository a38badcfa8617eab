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

/// A document of a custom kind, as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomDocument {
    /// 1-based index among the file's documents.
    pub doc: usize,
    /// The document.
    pub value: Value,
}

impl CustomDocument {
    /// `apiVersion` split into group and version.
    pub fn group_version(&self) -> (&str, &str) {
        let v = self.value.get("apiVersion").and_then(Value::as_str);
        v.and_then(|v| v.split_once('/')).unwrap_or(("", ""))
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// Its `metadata.name`, or "" when it has none.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Its `metadata.namespace`, when it names one.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// `document N (Kind name)`, for messages.
    pub fn label(&self) -> String {
        format!("document {} ({} {})", self.doc, self.kind(), self.name())
    }
}

/// Whether a document belongs to a custom kind: its group is a domain name
/// that shoal does not serve and that Kubernetes does not keep for itself
/// (`*.k8s.io` and `*.kubernetes.io` hold built-in kinds shoal may lack,
/// which deserve the unknown-kind message instead).
pub(super) fn is_custom_document(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(is_custom_api_version)
}

/// Whether `GROUP/VERSION` names a custom kind's group (see
/// [`is_custom_document`]).
pub(super) fn is_custom_api_version(api_version: &str) -> bool {
    let Some((group, _)) = api_version.split_once('/') else {
        return false;
    };
    let reserved = |suffix: &str| group == suffix || group.ends_with(&format!(".{suffix}"));
    group.contains('.')
        && !reserved("k8s.io")
        && !reserved("kubernetes.io")
        && !crate::crd::is_builtin_group(group)
}
