//! `POST /v1/namespaces/{ns}/pods/{name}/eviction`: deletes a pod unless
//! that would break the PodDisruptionBudget covering it or, without one,
//! take its Deployment below what the Deployment's strategy allows to be
//! unavailable (then 429, as Kubernetes answers when a disruption budget
//! forbids an eviction). `shoal drain` evicts through it.

use super::*;
use crate::controller::disruption::{self, Owner, Verdict};
use crate::resource::types::{Body, PodDisruptionBudgetBody};
use crate::resource::view::PodView;
use crate::store::Precondition;

/// How often an eviction rereads and decides again when its write lost a
/// race (a pod of the Deployment changed between the read and the write).
const ATTEMPTS: usize = 8;

pub(super) async fn evict_pod(
    State(s): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    match evict(&s, &ns, &name, &body).await {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(json!({
                "apiVersion": "v1",
                "kind": "Status",
                "status": "Success",
                "details": { "name": name, "kind": "pods" },
            })),
        )
            .into_response()),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let mut resp = e.into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

/// Evicts pod `ns`/`name` as the eviction subresource asks (`body`, an
/// `Eviction` or nothing): `/v1`'s path and the Kubernetes one
/// (`kubectl drain`) both come here. 429 when the pod's budget or its
/// Deployment's strategy forbids it now.
pub(super) async fn evict(s: &ApiState, ns: &str, name: &str, body: &Bytes) -> ApiResult<()> {
    let want_uid = check_body(body, name)?;
    let key = ObjectKey::new(Kind::Pod, ns, name);
    for _ in 0..ATTEMPTS {
        // The decision reads this node's replica; the write below is
        // conditional on all it read, so a stale replica costs a retry,
        // never a wrong eviction.
        s.store.barrier().await?;
        let Some(pod) = s.store.get(&key)? else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{key} not found"),
            ));
        };
        if let Some(want) = &want_uid
            && pod.metadata.uid.as_deref() != Some(want.as_str())
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{key}: precondition failed: uid in precondition is {want}, the pod's is {}",
                    pod.metadata.uid.as_deref().unwrap_or("none")
                ),
            ));
        }
        let Some(view) = PodView::of(&pod) else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{key}: stored pod has no key"),
            ));
        };
        let budgets = budgets_of(s, &pod)?;
        if budgets.len() > 1 {
            // As Kubernetes: which budget would win is not defined.
            let names: Vec<&str> = budgets
                .iter()
                .map(|(b, _)| b.metadata.name.as_str())
                .collect();
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "This pod has more than one PodDisruptionBudget, which the eviction \
                     subresource does not support: {}",
                    names.join(", ")
                ),
            ));
        }
        let verdict = if let Some((b, body)) = budgets.first() {
            let (pods, _) = s.store.list(Kind::Pod, Some(ns))?;
            let covered: Vec<PodView> = pods
                .iter()
                .filter(|p| disruption::budget::covers(b, body, p))
                .filter_map(PodView::of)
                .collect();
            let list = |k: Kind| s.store.list(k, Some(ns)).map(|(v, _)| v);
            let scales = disruption::budget::Scales::of(
                &list(Kind::ReplicaSet)?,
                &list(Kind::Deployment)?,
                &list(Kind::StatefulSet)?,
            );
            disruption::budget::decide(&view, b, body, &covered, &scales)
        } else {
            match deployment_of(s, &pod)? {
                Some(d) => {
                    let (sets, _) = s.store.list(Kind::ReplicaSet, Some(ns))?;
                    let (pods, _) = s.store.list(Kind::Pod, Some(ns))?;
                    let pods: Vec<PodView> = pods.iter().filter_map(PodView::of).collect();
                    disruption::decide(
                        &view,
                        Some(Owner {
                            deployment: &d,
                            replica_sets: &sets,
                            pods: &pods,
                        }),
                    )
                }
                None => disruption::decide(&view, None),
            }
        };
        let fence = match verdict {
            Verdict::Allow { fence } => fence,
            Verdict::Wait(why) => {
                ::metrics::counter!(crate::api::metrics::EVICTIONS_TOTAL, "result" => "refused")
                    .increment(1);
                return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, why));
            }
        };
        let mut ops = vec![Op::Delete {
            key: key.clone(),
            precondition: Precondition::Version(view.resource_version),
        }];
        ops.extend(
            fence
                .into_iter()
                .map(|(key, version)| Op::Check { key, version }),
        );
        match s.store.write(Command { ops }).await {
            Ok(_) => {
                ::metrics::counter!(crate::api::metrics::EVICTIONS_TOTAL, "result" => "evicted")
                    .increment(1);
                return Ok(());
            }
            // Something the decision read changed: read and decide again.
            Err(StoreError::Txn(TxnError::Conflict { .. } | TxnError::NotFound { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "{key}: its Deployment or disruption budget kept changing during {ATTEMPTS} attempts; retry"
        ),
    ))
}

/// Accepts an empty body or an `Eviction` naming this pod; returns the uid
/// its `deleteOptions.preconditions` ask for, if any.
fn check_body(body: &Bytes, name: &str) -> ApiResult<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("request body is not JSON: {e}")))?;
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != "Eviction"
    {
        return Err(bad(format!("kind: expected Eviction, got {kind:?}")));
    }
    if let Some(n) = v.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(bad(format!(
            "metadata.name: {n:?} does not match the pod in the URL ({name:?})"
        )));
    }
    match v.pointer("/deleteOptions/preconditions/uid") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(uid)) => Ok(Some(uid.clone())),
        Some(other) => Err(bad(format!(
            "deleteOptions.preconditions.uid: expected a string, got {other}"
        ))),
    }
}

/// The PodDisruptionBudgets covering the pod, decoded.
fn budgets_of(s: &ApiState, pod: &Object) -> ApiResult<Vec<(Object, PodDisruptionBudgetBody)>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (all, _) = s.store.list(Kind::PodDisruptionBudget, Some(ns))?;
    Ok(all
        .into_iter()
        .filter_map(|b| {
            let body = PodDisruptionBudgetBody::from_object(&b).ok()?;
            disruption::budget::covers(&b, &body, pod).then_some((b, body))
        })
        .collect())
}

/// The Deployment controlling the pod's ReplicaSet, if both exist.
fn deployment_of(s: &ApiState, pod: &Object) -> ApiResult<Option<Object>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let Some(r) = pod
        .metadata
        .controller_ref()
        .filter(|r| r.kind == "ReplicaSet")
    else {
        return Ok(None);
    };
    let Some(rs) = s
        .store
        .get(&ObjectKey::new(Kind::ReplicaSet, ns, &r.name))?
    else {
        return Ok(None);
    };
    if rs.metadata.uid.as_deref() != Some(r.uid.as_str()) {
        return Ok(None);
    }
    let Some(d) = rs
        .metadata
        .controller_ref()
        .filter(|r| r.kind == "Deployment")
    else {
        return Ok(None);
    };
    let dep = s
        .store
        .get(&ObjectKey::new(Kind::Deployment, ns, &d.name))?;
    Ok(dep.filter(|o| o.metadata.uid.as_deref() == Some(d.uid.as_str())))
}
