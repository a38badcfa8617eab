//! `/v1/apply` and `/v1/delete`: whole manifests, every document in one
//! command, checked against the caller's role.

use super::kube::custom::ManifestObject;
use super::*;
use serde_json::Value;

fn manifest_text(body: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "manifest is not UTF-8"))
}

/// How often an apply reads the live objects again after a concurrent write.
pub(super) const APPLY_ATTEMPTS: usize = 5;

/// Fields that `scale` and `rollout pause` own, and those binding writes
/// into a claim. A re-applied manifest that leaves them out keeps the live
/// values, as kubectl's apply does when they were never in the applied
/// file; the write is then conditional on the object read, so a concurrent
/// scale (or binding) is not lost either.
const LIVE_OWNED: &[(Kind, &str)] = &[
    (Kind::Deployment, "replicas"),
    (Kind::Deployment, "paused"),
    (Kind::PersistentVolumeClaim, "volumeName"),
    (Kind::PersistentVolumeClaim, "storageClassName"),
    (Kind::PersistentVolume, "claimRef"),
    (Kind::Pod, "nodeName"),
];

fn keep_live_fields(
    s: &ApiState,
    key: &ObjectKey,
    mut obj: Object,
) -> ApiResult<(Object, crate::store::Precondition)> {
    let fields: Vec<&str> = LIVE_OWNED
        .iter()
        .filter(|(k, _)| *k == key.kind)
        .map(|(_, f)| *f)
        .collect();
    if fields.is_empty() {
        return Ok((obj, crate::store::Precondition::None));
    }
    let Some(live) = s.store.get(key)? else {
        return Ok((obj, crate::store::Precondition::None));
    };
    let mut kept = false;
    if let (Some(serde_json::Value::Object(spec)), Some(serde_json::Value::Object(live_spec))) =
        (obj.body.get_mut("spec"), live.body.get("spec"))
    {
        for f in fields {
            if !spec.contains_key(f)
                && let Some(v) = live_spec.get(f)
            {
                spec.insert(f.to_string(), v.clone());
                kept = true;
            }
        }
    }
    let precondition = if kept {
        crate::store::Precondition::Version(live.resource_version())
    } else {
        crate::store::Precondition::None
    };
    Ok((obj, precondition))
}

/// `POST /v1/apply`: every document of a manifest, created or updated in one
/// Raft write, or none of them.
pub(super) async fn apply(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let parsed = manifest::parse_manifests(manifest_text(&body)?)?;
    if parsed.objects.is_empty() && parsed.custom.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the manifest holds no objects",
        ));
    }
    let new_namespaces: HashSet<String> = parsed
        .objects
        .iter()
        .filter(|o| o.kind() == Some(Kind::Namespace))
        .map(|o| o.metadata.name.clone())
        .collect();
    let mut custom = Vec::with_capacity(parsed.custom.len());
    for d in &parsed.custom {
        let m = ManifestObject::resolve(&s, d).await?;
        // Checked before any write, so a bad document fails the whole file.
        let op = m.put_op(d)?;
        if m.namespaced {
            namespaces::admit(&s, &m.key, &new_namespaces).await?;
        }
        custom.push((m, op));
    }
    let keys = may_write_all(&caller, &parsed.objects, custom.iter().map(|(m, _)| m))?;
    let mut objects = parsed.objects;
    // Namespaces first so a file that creates one and uses it reads naturally.
    objects.sort_by_key(|o| o.kind().map(|k| Kind::ALL.iter().position(|x| *x == k)));
    // A document that keeps live fields is written conditional on the
    // object it read; a controller's status write in between is no reason
    // to fail the user's apply, so read again and retry.
    let mut attempt = 0;
    let out = loop {
        attempt += 1;
        let mut ops = Vec::with_capacity(objects.len());
        let mut addresses = ServiceAddresses::default();
        let mut admission = super::admission::Admission::default();
        for obj in objects.iter().cloned() {
            let key = obj.key().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown kind {}", obj.kind),
                )
            })?;
            if key.kind == Kind::Node {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "kind: Node {}: nodes register themselves; change one with `shoal cordon`, \
                         `uncordon` or `drain`",
                        key.name
                    ),
                ));
            }
            namespaces::admit(&s, &key, &new_namespaces).await?;
            let (mut obj, precondition) = keep_live_fields(&s, &key, obj)?;
            admission.admit(&s, &key, &mut obj)?;
            let precondition = super::user_set_precondition(&s, &key)?.unwrap_or(precondition);
            let (precondition, _) = super::guard_immutable(&s, &key, &obj, precondition)?;
            addresses.assign(&s, &key, &mut obj)?;
            let definition = super::crds::with_write(&s, &key, &obj)?;
            ops.push(put_op(key, obj, precondition)?);
            ops.extend(definition);
        }
        ops.extend(custom.iter().map(|(_, op)| op.clone()));
        // A quota charged by another write meanwhile is a conflict too:
        // read again, and the pods are charged against the new figures.
        ops.extend(admission.ops());
        match s.store.write(Command { ops }).await {
            Err(StoreError::Txn(TxnError::Conflict { .. })) if attempt < APPLY_ATTEMPTS => {
                s.store.barrier().await?;
            }
            r => break r?,
        }
    };
    // A definition's status and the removal of leftovers under its name
    // are not the file's objects; its custom objects are, named as kubectl
    // names them.
    let mut definitions = HashSet::new();
    let results: Vec<Value> = out
        .into_iter()
        .filter_map(|o| match o.key.kind {
            Kind::CustomResourceDefinition if !definitions.insert(o.key.clone()) => None,
            Kind::CustomObject => custom
                .iter()
                .find(|(m, _)| m.key == o.key)
                .map(|(m, _)| m.result(&o)),
            _ => serde_json::to_value(WriteResult::from(o)).ok(),
        })
        .collect();
    let response = Json(json!({ "results": results, "warnings": parsed.warnings }));
    Ok(with_audit_objects(response.into_response(), keys))
}

/// Refuses (403) a manifest naming a kind the caller may not write;
/// returns the keys for the audit log.
fn may_write_all<'a>(
    caller: &auth::Caller,
    objects: &[Object],
    custom: impl Iterator<Item = &'a ManifestObject>,
) -> ApiResult<Vec<ObjectKey>> {
    let keys: Vec<ObjectKey> = objects
        .iter()
        .filter_map(|o| o.key())
        .chain(custom.map(|m| m.key.clone()))
        .collect();
    if let Some(k) = keys.iter().find(|k| !auth::may_write(caller.role, k.kind)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {} may not write {k}", caller.role.as_str()),
        ));
    }
    Ok(keys)
}

/// Names the objects a write touched, for the audit log.
fn with_audit_objects(mut r: Response, keys: Vec<ObjectKey>) -> Response {
    r.extensions_mut().insert(audit::Objects(
        keys.iter().map(ToString::to_string).collect(),
    ));
    r
}

/// `POST /v1/delete`: deletes every object a manifest names; missing ones are reported, not errors.
pub(super) async fn delete_manifest(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let parsed = manifest::parse_manifests(manifest_text(&body)?)?;
    let mut custom = Vec::with_capacity(parsed.custom.len());
    for d in &parsed.custom {
        custom.push(ManifestObject::resolve(&s, d).await?);
    }
    let keys = may_write_all(&caller, &parsed.objects, custom.iter())?;
    s.store.barrier().await?;
    let mut ops = Vec::new();
    let mut missing = Vec::new();
    for obj in &parsed.objects {
        let Some(key) = obj.key() else { continue };
        // A file has no --force: such a pod is deleted by name.
        super::refuse_unforced_pod_delete(&s, &key)?;
        if key.kind == Kind::Namespace && s.store.get(&key)?.is_some() {
            ops.extend(namespaces::delete_op(
                &s,
                &key.name,
                crate::store::Precondition::None,
            )?);
        } else if key.kind == Kind::PersistentVolumeClaim && s.store.get(&key)?.is_some() {
            // Only marked: the claim goes once no pod uses it.
            ops.extend(super::claim_delete_op(
                &s,
                &key,
                crate::store::Precondition::None,
            )?);
        } else if s.store.get(&key)?.is_some() {
            // An object holding finalizers is only marked, as through DELETE.
            ops.extend(super::finalized_delete_op(
                &s,
                &key,
                crate::store::Precondition::None,
            )?);
        } else {
            missing.push(json!({"kind": key.kind, "namespace": key.namespace, "name": key.name}));
        }
    }
    for m in &custom {
        match s.store.get(&m.key)? {
            // Marked rather than deleted while it holds finalizers.
            Some(_) => ops.extend(super::finalized_delete_op(
                &s,
                &m.key,
                crate::store::Precondition::None,
            )?),
            None => missing.push(m.result_missing()),
        }
    }
    let out = if ops.is_empty() {
        Vec::new()
    } else {
        s.store.write(Command { ops }).await?
    };
    // A definition's objects go after it, as through DELETE.
    for o in out
        .iter()
        .filter(|o| o.key.kind == Kind::CustomResourceDefinition)
    {
        super::crds::delete_objects(&s, &o.key.name).await?;
    }
    let results: Vec<Value> = out
        .into_iter()
        .filter_map(|o| match custom.iter().find(|m| m.key == o.key) {
            Some(m) => Some(m.result(&o)),
            None => serde_json::to_value(WriteResult::from(o)).ok(),
        })
        .collect();
    let response = Json(json!({ "results": results, "notFound": missing }));
    Ok(with_audit_objects(response.into_response(), keys))
}
