//! Custom documents of `/v1/apply` and `/v1/delete` manifests, resolved
//! against the stored definitions and checked as the Kubernetes paths
//! check them.

use super::*;

/// A custom document of a `/v1/apply` or `/v1/delete` manifest, resolved
/// against the stored definitions.
pub(in crate::api) struct ManifestObject {
    /// Where it is stored.
    pub key: ObjectKey,
    /// `Kind.group`, as kubectl names it in its output.
    pub shown_kind: String,
    /// Whether its definition is namespaced.
    pub namespaced: bool,
    target: Target,
}

impl ManifestObject {
    /// Resolves `d`; a document whose kind no stored definition serves is
    /// refused in kubectl's words.
    pub(in crate::api) async fn resolve(
        s: &ApiState,
        d: &crate::manifest::CustomDocument,
    ) -> ApiResult<ManifestObject> {
        let (group, version) = d.group_version();
        let kind = d.kind();
        let find = |defs: Vec<Definition>| {
            defs.into_iter().find_map(|def| {
                let v = def.served(version).cloned()?;
                (def.group == group && def.names.kind == kind).then_some((def, v))
            })
        };
        let kube = |e: KubeError| ApiError::new(e.code, e.message);
        let found = match find(definitions(s, false).await.map_err(kube)?) {
            Some(f) => Some(f),
            None => find(definitions(s, true).await.map_err(kube)?),
        };
        let Some((def, served)) = found else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: no matches for kind {kind:?} in version \"{group}/{version}\": apply its \
                     CustomResourceDefinition first (`shoal get crd` lists those stored)",
                    d.label()
                ),
            ));
        };
        if d.name().is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{}: metadata.name: Required value", d.label()),
            ));
        }
        let namespace = def.namespaced.then(|| {
            d.namespace()
                .unwrap_or(crate::resource::DEFAULT_NAMESPACE)
                .to_string()
        });
        let target = Target {
            def,
            version: served,
            namespace,
            name: Some(d.name().to_string()),
            status: false,
            scale: false,
        };
        Ok(ManifestObject {
            key: target.key(d.name()),
            shown_kind: format!("{}.{}", target.def.names.kind, target.def.group),
            namespaced: target.def.namespaced,
            target,
        })
    }

    /// The write that creates or updates it, as `kubectl apply` would:
    /// checked against its version's schema and defaulted; the stored
    /// status (when a subresource) and finalizers are kept.
    pub(in crate::api) fn put_op(&self, d: &crate::manifest::CustomDocument) -> ApiResult<Op> {
        let invalid = |e: KubeError| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}: {}", d.label(), e.message),
            )
        };
        let body = serde_json::to_vec(&d.value)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut obj = prepare(&self.target, None, &body).map_err(invalid)?;
        obj.metadata.resource_version = None;
        obj.metadata.generation = None;
        obj.metadata.uid = None;
        obj.metadata.deletion_timestamp = None;
        if obj.metadata.creation_timestamp.is_none() {
            obj.metadata.creation_timestamp = Some(crate::resource::time::now_rfc3339());
        }
        let object = serde_json::to_vec(&obj)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Op::Put {
            key: self.key.clone(),
            object,
            precondition: crate::store::Precondition::None,
        })
    }

    /// How `notFound` names it.
    pub(in crate::api) fn result_missing(&self) -> Value {
        json!({"kind": self.shown_kind, "namespace": self.key.namespace, "name": self.target.name})
    }

    /// How a write result names it: the definition's kind and the object's
    /// own name, as kubectl prints them.
    pub(in crate::api) fn result(&self, o: &crate::store::OpOutcome) -> Value {
        json!({
            "kind": self.shown_kind,
            "namespace": o.key.namespace,
            "name": self.target.name,
            "outcome": o.outcome,
            "resourceVersion": o.resource_version,
        })
    }
}
