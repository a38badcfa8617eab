//! `/v1/.../endpoints`: each Service's ready endpoints as this node's load
//! balancer sees them (derived per node, not stored).

use super::*;

/// One Service's endpoints as this node's load balancer sees them.
fn endpoints_json(e: &crate::discovery::ServiceEntry) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": e.name, "namespace": e.namespace},
        "clusterIP": e.cluster_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "None".into()),
        "ports": e.ports.iter().map(|p| json!({
            "name": p.name,
            "port": p.port,
            "nodePort": p.node_port,
            "endpoints": p.endpoints.iter().map(|ep| json!({
                "ip": ep.ip.to_string(),
                "port": ep.port,
                "pod": ep.pod,
                "node": ep.node,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn service_table(s: &ApiState) -> ApiResult<Arc<crate::discovery::ServiceTable>> {
    s.services
        .as_ref()
        .map(|rx| rx.borrow().clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "discovery is disabled on this node (discovery.enabled = false)",
            )
        })
}

fn endpoints_list(s: &ApiState, ns: Option<&str>) -> ApiResult<Response> {
    let t = service_table(s)?;
    let items: Vec<Value> = t
        .services
        .values()
        .filter(|e| ns.is_none_or(|n| n == e.namespace))
        .map(endpoints_json)
        .collect();
    Ok(Json(json!({"kind": "EndpointsList", "items": items})).into_response())
}

pub(super) async fn endpoints_all(State(s): State<ApiState>) -> ApiResult<Response> {
    endpoints_list(&s, None)
}

pub(super) async fn endpoints_ns(
    State(s): State<ApiState>,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    endpoints_list(&s, Some(&ns))
}

pub(super) async fn endpoints_one(
    State(s): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let t = service_table(&s)?;
    let e = t.get(&ns, &name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("endpoints {ns}/{name} not found (no such Service)"),
        )
    })?;
    Ok(Json(endpoints_json(e)).into_response())
}
