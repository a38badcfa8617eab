//! The scale subresource of custom kinds: an autoscaling/v1 `Scale` read
//! from, and written to, the paths the definition names, so `kubectl
//! scale` works on a custom kind as on a Deployment.

use super::*;
use crate::crd::ScaleSubresource;

/// GET, PUT and PATCH of `.../PLURAL/NAME/scale`.
pub(super) async fn serve(s: &ApiState, t: &Target, call: &Call) -> KubeResult<Response> {
    let not_here = || {
        KubeError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not supported on the scale subresource", call.method),
        )
    };
    let (Some(name), Some(spec)) = (t.name.clone(), t.version.scale.clone()) else {
        return Err(not_here());
    };
    let bad = |m: String| KubeError::new(StatusCode::BAD_REQUEST, m);
    match call.method {
        Method::GET => {
            let o = live(s, t, &name).await?;
            Ok(Json(scale_of(&spec, &o)).into_response())
        }
        Method::PUT => {
            let body: Value = serde_json::from_slice(&call.body)
                .map_err(|e| bad(format!("the body is not JSON: {e}")))?;
            write(s, t, &spec, &name, |_| Ok(body.clone())).await
        }
        Method::PATCH => {
            let ct = call.content_type();
            // A Scale has no lists, so a strategic merge is a merge.
            let ty = match patch::PatchType::from_content_type(ct) {
                Some(patch::PatchType::Json) => patch::PatchType::Json,
                Some(patch::PatchType::Merge | patch::PatchType::Strategic) => {
                    patch::PatchType::Merge
                }
                _ => {
                    return Err(KubeError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("the patch Content-Type {ct:?} is not supported on scale"),
                    ));
                }
            };
            let p: Value = serde_json::from_slice(&call.body)
                .map_err(|e| bad(format!("the patch is not JSON: {e}")))?;
            write(s, t, &spec, &name, |current| {
                patch::apply(ty, Kind::CustomObject, current, &p).map_err(|e| match e {
                    patch::PatchError::Malformed(_) => bad(e.to_string()),
                    _ => KubeError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                })
            })
            .await
        }
        _ => Err(not_here()),
    }
}

/// The `Scale` of a stored object.
fn scale_of(spec: &ScaleSubresource, o: &Object) -> Value {
    let v = serde_json::to_value(o).unwrap_or(Value::Null);
    let (want, have, selector) = spec.read(&v);
    let mut meta = json!({"name": o.metadata.name});
    for (field, value) in [
        ("namespace", &o.metadata.namespace),
        ("uid", &o.metadata.uid),
        ("resourceVersion", &o.metadata.resource_version),
        ("creationTimestamp", &o.metadata.creation_timestamp),
    ] {
        if let Some(value) = value {
            meta[field] = json!(value);
        }
    }
    let mut status = json!({"replicas": have});
    if let Some(sel) = selector {
        status["selector"] = json!(sel);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": want},
        "status": status,
    })
}

/// Writes the replicas of the `Scale` that `change` makes of the current
/// one into the object, checked by the schema like any write of it.
/// Conditional on the resourceVersion the new `Scale` names, else on the
/// object read (read again after a concurrent write).
async fn write(
    s: &ApiState,
    t: &Target,
    spec: &ScaleSubresource,
    name: &str,
    change: impl Fn(&Value) -> KubeResult<Value>,
) -> KubeResult<Response> {
    let internal = |e: String| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = t.shown(live(s, t, name).await?);
        let current = scale_of(spec, &live);
        let wanted = change(&current)?;
        let replicas = match wanted.pointer("/spec/replicas") {
            Some(r) => r.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
                t.invalid(
                    name,
                    &[format!(
                        "spec.replicas: Invalid value: {r}: must be a non-negative integer"
                    )],
                )
            })?,
            None => 0,
        };
        let asked = wanted
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty());
        let locked = asked.is_some_and(|rv| live.metadata.resource_version.as_deref() != Some(rv));
        let mut object = serde_json::to_value(&live).map_err(|e| internal(e.to_string()))?;
        spec.set_replicas(&mut object, replicas)
            .map_err(|e| t.invalid(name, &[e]))?;
        if let Some(rv) = asked {
            object["metadata"]["resourceVersion"] = json!(rv);
        }
        let body = serde_json::to_vec(&object).map_err(|e| internal(e.to_string()))?;
        let obj = prepare(t, Some(name), &body)?;
        match replace(s, t, obj).await {
            Err(e) if e.code == StatusCode::CONFLICT && !locked && attempt < APPLY_ATTEMPTS => {}
            r => return r.map(|o| Json(scale_of(spec, &o)).into_response()),
        }
    }
}
