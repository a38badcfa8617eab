//! HorizontalPodAutoscalers from the command line: `shoal autoscale`, the
//! `get hpa` columns, and the warning `shoal scale` prints when an HPA
//! owns the count it changes.

use anyhow::bail;
use serde_json::{Value, json};

use crate::resource::Kind;
use crate::resource::types::{Body, HorizontalPodAutoscalerBody, HorizontalPodAutoscalerStatus};

use super::client::*;
use super::emit;

/// `shoal autoscale KIND NAME --min --max --cpu-percent`: creates an HPA
/// named after its target, as kubectl does.
pub(super) async fn autoscale(
    client: &Client,
    kind: &str,
    name: &str,
    ns: &str,
    min: Option<u32>,
    max: u32,
    cpu_percent: Option<u32>,
) -> anyhow::Result<()> {
    let target = match Kind::from_user(kind) {
        Some(Kind::Deployment) => "Deployment",
        Some(Kind::StatefulSet) => "StatefulSet",
        _ => bail!("autoscale {kind}: only deployments and statefulsets can be autoscaled"),
    };
    // Checks the target exists first, so a typo is not an HPA that never acts.
    let kind_of = Kind::from_user(kind).unwrap_or(Kind::Deployment);
    client.get(kind_of, ns, name).await?;
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target, "name": name},
        "maxReplicas": max,
    });
    if let Some(min) = min {
        spec["minReplicas"] = json!(min);
    }
    if let Some(pct) = cpu_percent {
        spec["metrics"] = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": pct}}
        }]);
    }
    let obj = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    let path = object_path(Kind::HorizontalPodAutoscaler, ns, None);
    let body = serde_json::to_vec(&obj)?;
    client
        .send(reqwest::Method::POST, &path, Some(body))
        .await?;
    emit(format_args!(
        "horizontalpodautoscaler.autoscaling/{name} autoscaled\n"
    ));
    Ok(())
}

/// Prints a warning when an HPA in `ns` targets `kind/name`: it will put
/// the count back, as in Kubernetes.
pub(super) async fn warn_if_autoscaled(client: &Client, kind: Kind, ns: &str, name: &str) {
    let Ok(hpas) = client.list(Kind::HorizontalPodAutoscaler, Some(ns)).await else {
        return;
    };
    for h in hpas {
        let Ok(b) = HorizontalPodAutoscalerBody::from_object(&h) else {
            continue;
        };
        let t = &b.spec.scale_target_ref;
        if t.kind == kind.as_str() && t.name == name {
            eprintln!(
                "Warning: horizontalpodautoscaler/{} manages the replicas of {}/{name} and will set them back to what it decides",
                h.metadata.name,
                kind.as_str().to_lowercase()
            );
        }
    }
}

fn targets(spec: &Value, status: &HorizontalPodAutoscalerStatus) -> String {
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_else(|| {
        vec![json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}})]
    });
    let cells: Vec<String> = metrics
        .iter()
        .map(|m| {
            let r = &m["resource"];
            let name = r["name"].as_str().unwrap_or("?");
            let current = status.current_metrics.iter().find_map(|c| {
                c.resource
                    .as_ref()
                    .filter(|x| x.name == name)
                    .map(|x| &x.current)
            });
            let t = &r["target"];
            match t["type"].as_str() {
                Some("Utilization") => {
                    let cur = current
                        .and_then(|c| c.average_utilization)
                        .map_or("<unknown>".to_string(), |u| format!("{u}%"));
                    format!(
                        "{name}: {cur}/{}%",
                        t["averageUtilization"].as_u64().unwrap_or(0)
                    )
                }
                _ => {
                    let cur = current
                        .and_then(|c| c.average_value.clone())
                        .unwrap_or_else(|| "<unknown>".into());
                    format!(
                        "{name}: {cur}/{}",
                        t["averageValue"].as_str().unwrap_or("?")
                    )
                }
            }
        })
        .collect();
    cells.join(", ")
}

/// `get hpa` cells after the name: REFERENCE TARGETS MINPODS MAXPODS REPLICAS.
pub(super) fn hpa_cells(it: &Value) -> Vec<String> {
    let spec = &it["spec"];
    let status: HorizontalPodAutoscalerStatus =
        serde_json::from_value(it["status"].clone()).unwrap_or_default();
    let r = &spec["scaleTargetRef"];
    vec![
        format!(
            "{}/{}",
            r["kind"].as_str().unwrap_or("?"),
            r["name"].as_str().unwrap_or("?")
        ),
        targets(spec, &status),
        spec["minReplicas"].as_u64().unwrap_or(1).to_string(),
        spec["maxReplicas"].as_u64().unwrap_or(0).to_string(),
        status.current_replicas.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_hpa_cells_read_as_kubectl() {
        let it = json!({
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
            },
            "status": {
                "currentReplicas": 3, "desiredReplicas": 4,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 63, "averageValue": "63m"}}}]
            }
        });
        assert_eq!(
            hpa_cells(&it),
            ["Deployment/web", "cpu: 63%/50%", "1", "10", "3"]
        );
        let fresh = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 2}});
        assert_eq!(hpa_cells(&fresh)[1], "cpu: <unknown>/80%");
    }
}
