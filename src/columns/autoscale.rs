//! Table cells of HorizontalPodAutoscalers: `get hpa`'s columns.

use serde_json::{Value, json};

use crate::resource::types::HorizontalPodAutoscalerStatus;

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
pub(crate) fn hpa_cells(it: &Value) -> Vec<String> {
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
