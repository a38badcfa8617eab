//! HorizontalPodAutoscalers from the command line: `shoal autoscale` and
//! the warning `shoal scale` prints when an HPA owns the count it changes
//! (their `get hpa` columns are in `columns`).

use anyhow::bail;
use serde_json::json;

use crate::resource::Kind;
use crate::resource::types::{Body, HorizontalPodAutoscalerBody};

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
