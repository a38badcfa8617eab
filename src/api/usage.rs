//! `/apis/metrics.k8s.io/v1beta1`: nodes' and pods' resource usage in
//! metrics-server's shapes, read from the nodes' own samples
//! (`agent::usage`), never from the store: the store only lends the labels
//! and tells which node runs a pod.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, ApiResult, ApiState};
use crate::agent::usage::UsageService;
use crate::resource::types::LabelSelector;
use crate::resource::usage::{MetricsList, NodeSample, PodMetrics};
use crate::resource::view::PodView;
use crate::resource::{Kind, ObjectKey};

/// The routes of the resource metrics API.
pub(super) fn routes() -> Router<ApiState> {
    const P: &str = "/apis/metrics.k8s.io/v1beta1";
    Router::new()
        .route(&format!("{P}/nodes"), get(nodes))
        .route(&format!("{P}/nodes/{{name}}"), get(node))
        .route(&format!("{P}/pods"), get(pods_all))
        .route(&format!("{P}/namespaces/{{ns}}/pods"), get(pods_ns))
        .route(&format!("{P}/namespaces/{{ns}}/pods/{{name}}"), get(pod))
}

/// This node's container series for `/metrics` (empty without the service).
pub(super) fn prometheus_text(s: &ApiState) -> String {
    s.usage
        .as_ref()
        .map(|u| u.prometheus_text())
        .unwrap_or_default()
}

fn service(s: &ApiState) -> ApiResult<&Arc<UsageService>> {
    s.usage.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "resource metrics are not served by this node",
        )
    })
}

/// The names of the members that are up: only they are asked, so a dead
/// node's figures are absent rather than stale.
fn live_nodes(s: &ApiState) -> Vec<String> {
    match &s.membership {
        Some(m) => m
            .members()
            .iter()
            .filter(|v| v.is_up())
            .filter_map(|v| v.name().map(str::to_string))
            .collect(),
        None => vec![s.me.name.clone()],
    }
}

fn labels_of(s: &ApiState, key: &ObjectKey) -> Option<BTreeMap<String, String>> {
    s.store.get(key).ok().flatten().map(|o| o.metadata.labels)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{what}: no metrics (no such object, or not sampled yet)"),
    )
}

/// `?labelSelector=` of the list routes, as metrics-server takes it (so
/// `kubectl top pods -l app=web` works unchanged).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    label_selector: Option<String>,
}

impl ListQuery {
    /// The parsed selector; a malformed one is a 400 naming what is wrong.
    fn selector(&self) -> ApiResult<Option<LabelSelector>> {
        self.label_selector
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(crate::resource::selector::parse)
            .transpose()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("labelSelector: {e}")))
    }
}

/// Whether `labels` pass the optional selector.
fn selected(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    sel.is_none_or(|sel| sel.matches(labels))
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes`.
pub(super) async fn nodes(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let sel = q.selector()?;
    let samples = service(&s)?.fetch_all(&live_nodes(&s)).await;
    let now = crate::resource::time::now_rfc3339();
    let mut items: Vec<_> = samples
        .iter()
        // A node with one reading has no rate yet: metrics-server leaves it out too.
        .filter(|n| n.window_ms > 0)
        .filter_map(|n| {
            let labels = labels_of(&s, &ObjectKey::new(Kind::Node, "", &n.node))?;
            selected(sel.as_ref(), &labels).then(|| n.to_metrics(labels, &now))
        })
        .collect();
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(Json(MetricsList::new("NodeMetricsList", items)).into_response())
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes/{name}`.
pub(super) async fn node(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let svc = service(&s)?;
    let labels = labels_of(&s, &ObjectKey::new(Kind::Node, "", &name))
        .ok_or_else(|| not_found(&format!("node {name}")))?;
    if !live_nodes(&s).contains(&name) {
        return Err(not_found(&format!("node {name} (not up)")));
    }
    let sample = svc
        .fetch_all(std::slice::from_ref(&name))
        .await
        .into_iter()
        .find(|n| n.window_ms > 0)
        .ok_or_else(|| not_found(&format!("node {name}")))?;
    let now = crate::resource::time::now_rfc3339();
    Ok(Json(sample.to_metrics(labels, &now)).into_response())
}

/// Pods of `samples` in `ns` (every namespace when `None`) that the store
/// still has and `sel` selects, with their labels.
fn pod_metrics(
    s: &ApiState,
    samples: &[NodeSample],
    ns: Option<&str>,
    sel: Option<&LabelSelector>,
) -> Vec<PodMetrics> {
    let now = crate::resource::time::now_rfc3339();
    let mut items: Vec<PodMetrics> = samples
        .iter()
        .flat_map(|n| n.pods.iter())
        .filter(|p| ns.is_none_or(|ns| p.namespace == ns))
        .filter_map(|p| {
            let labels = labels_of(s, &ObjectKey::new(Kind::Pod, &p.namespace, &p.name))?;
            selected(sel, &labels).then(|| p.to_metrics(labels, &now))
        })
        .collect();
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    items
}

/// `GET /apis/metrics.k8s.io/v1beta1/pods`.
pub(super) async fn pods_all(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let sel = q.selector()?;
    let samples = service(&s)?.fetch_all(&live_nodes(&s)).await;
    let items = pod_metrics(&s, &samples, None, sel.as_ref());
    Ok(Json(MetricsList::new("PodMetricsList", items)).into_response())
}

/// `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods`.
pub(super) async fn pods_ns(
    State(s): State<ApiState>,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let sel = q.selector()?;
    let samples = service(&s)?.fetch_all(&live_nodes(&s)).await;
    let items = pod_metrics(&s, &samples, Some(&ns), sel.as_ref());
    Ok(Json(MetricsList::new("PodMetricsList", items)).into_response())
}

/// `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}`: asks
/// only the node the pod is bound to.
pub(super) async fn pod(
    State(s): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let svc = service(&s)?;
    let what = format!("pod {ns}/{name}");
    let obj = s
        .store
        .get(&ObjectKey::new(Kind::Pod, &ns, &name))?
        .ok_or_else(|| not_found(&what))?;
    let node = PodView::of(&obj)
        .and_then(|v| v.node)
        .ok_or_else(|| not_found(&what))?;
    if !live_nodes(&s).contains(&node) {
        return Err(not_found(&format!("{what} (its node {node} is not up)")));
    }
    let samples = svc.fetch_all(std::slice::from_ref(&node)).await;
    pod_metrics(&s, &samples, Some(&ns), None)
        .into_iter()
        .find(|p| p.metadata.name == name)
        .map(|p| Json(p).into_response())
        .ok_or_else(|| not_found(&what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_is_parsed_and_applied() {
        let q = |s: &str| ListQuery {
            label_selector: Some(s.into()),
        };
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let sel = q("app=web").selector().expect("parsed");
        assert!(selected(sel.as_ref(), &labels));
        let sel = q("app!=web").selector().expect("parsed");
        assert!(!selected(sel.as_ref(), &labels));
        assert!(selected(None, &labels));
        assert_eq!(ListQuery::default().selector().expect("none"), None);
        let e = q("app in (web)").selector().expect_err("set-based");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("labelSelector"), "{}", e.message);
    }
}
