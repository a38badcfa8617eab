//! Checks of a HorizontalPodAutoscaler (autoscaling/v2, or v1 converted to
//! v2 first): the target, the replica bounds, `Resource` metrics of cpu or
//! memory, and the behavior's windows and policies.

use super::*;
use crate::resource::types::{
    HorizontalPodAutoscalerBody, HorizontalPodAutoscalerSpec, HpaScalingRules, MetricSpec,
    convert_v1,
};

const V1: &str = "autoscaling/v1";

/// Whether `version` is autoscaling/v1 for an HPA (accepted and converted).
pub(super) fn is_v1(kind: Kind, version: &str) -> bool {
    kind == Kind::HorizontalPodAutoscaler && version == V1
}

/// Stores an HPA as autoscaling/v2, the version its body now has.
pub(super) fn store_as_v2(obj: &mut Object) {
    if obj.kind() == Some(Kind::HorizontalPodAutoscaler) {
        obj.api_version = Kind::HorizontalPodAutoscaler.api_version().to_string();
    }
}

/// Converts (from v1), checks, and returns the canonical v2 body.
pub(super) fn check(api_version: &str, mut body: Map<String, Value>) -> Res<Map<String, Value>> {
    if api_version == V1 {
        convert_v1(&mut body).map_err(|(path, message)| Failure { path, message })?;
    }
    let b: HorizontalPodAutoscalerBody = decode(body)?;
    check_spec(&b.spec)?;
    encode(&b)
}

fn check_spec(spec: &HorizontalPodAutoscalerSpec) -> Res {
    let t = &spec.scale_target_ref;
    // A custom kind is scaled through its definition's scale subresource;
    // whether it has one is the controller's to find, as in Kubernetes.
    let custom = t
        .api_version
        .as_deref()
        .is_some_and(super::crds::is_custom_api_version);
    if !custom && !matches!(t.kind.as_str(), "Deployment" | "StatefulSet") {
        return fail(
            "spec.scaleTargetRef.kind",
            format!(
                "{:?} cannot be autoscaled by shoal: the target must be a Deployment, a \
                 StatefulSet, or a custom kind with a scale subresource",
                t.kind
            ),
        );
    }
    if let Some(v) = &t.api_version
        && v != "apps/v1"
        && !custom
    {
        return fail(
            "spec.scaleTargetRef.apiVersion",
            format!(
                "{v:?} is not the apiVersion of a {}: use \"apps/v1\"",
                t.kind
            ),
        );
    }
    if t.name.is_empty() {
        return fail(
            "spec.scaleTargetRef.name",
            "missing: the name of the target",
        );
    }
    if spec.max_replicas < 1 {
        return fail("spec.maxReplicas", "must be at least 1");
    }
    if let Some(min) = spec.min_replicas {
        if min < 1 {
            return fail("spec.minReplicas", "must be at least 1");
        }
        if min > spec.max_replicas {
            return fail(
                "spec.minReplicas",
                format!(
                    "{min} is more than spec.maxReplicas ({})",
                    spec.max_replicas
                ),
            );
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        check_metric(m, &format!("spec.metrics[{i}]"))?;
    }
    if let Some(b) = &spec.behavior {
        if let Some(r) = &b.scale_up {
            check_rules(r, "spec.behavior.scaleUp")?;
        }
        if let Some(r) = &b.scale_down {
            check_rules(r, "spec.behavior.scaleDown")?;
        }
    }
    Ok(())
}

fn check_metric(m: &MetricSpec, path: &str) -> Res {
    if m.type_ != "Resource" {
        return fail(
            format!("{path}.type"),
            format!(
                "{:?} is not supported: shoal has only Resource metrics (cpu and memory)",
                m.type_
            ),
        );
    }
    let Some(r) = &m.resource else {
        return fail(
            format!("{path}.resource"),
            "missing: a Resource metric needs resource.name and resource.target",
        );
    };
    if !matches!(r.name.as_str(), "cpu" | "memory") {
        return fail(
            format!("{path}.resource.name"),
            format!(
                "{:?} is not a resource shoal measures: use cpu or memory",
                r.name
            ),
        );
    }
    let tp = format!("{path}.resource.target");
    match r.target.type_.as_str() {
        "Utilization" => match r.target.average_utilization {
            Some(u) if u >= 1 => Ok(()),
            Some(_) => fail(format!("{tp}.averageUtilization"), "must be at least 1"),
            None => fail(
                format!("{tp}.averageUtilization"),
                "missing: a Utilization target needs averageUtilization (percent of requests)",
            ),
        },
        "AverageValue" => {
            let Some(q) = &r.target.average_value else {
                return fail(
                    format!("{tp}.averageValue"),
                    "missing: an AverageValue target needs averageValue",
                );
            };
            let v = match r.name.as_str() {
                "cpu" => q.cpu_millis(),
                _ => q.memory_bytes(),
            }
            .map_err(|e| Failure {
                path: format!("{tp}.averageValue"),
                message: e.to_string(),
            })?;
            if v == 0 {
                return fail(format!("{tp}.averageValue"), "must be more than zero");
            }
            Ok(())
        }
        other => fail(
            format!("{tp}.type"),
            format!(
                "{other:?} is not valid for a Resource metric: use Utilization or AverageValue"
            ),
        ),
    }
}

fn check_rules(r: &HpaScalingRules, path: &str) -> Res {
    if let Some(w) = r.stabilization_window_seconds
        && w > 3600
    {
        return fail(
            format!("{path}.stabilizationWindowSeconds"),
            format!("{w} is more than 3600 (one hour)"),
        );
    }
    if let Some(p) = &r.select_policy
        && !matches!(p.as_str(), "Max" | "Min" | "Disabled")
    {
        return fail(
            format!("{path}.selectPolicy"),
            format!("{p:?} is not valid: use Max, Min or Disabled"),
        );
    }
    if let Some(policies) = &r.policies {
        if policies.is_empty() {
            return fail(
                format!("{path}.policies"),
                "must have at least one policy when given",
            );
        }
        for (j, p) in policies.iter().enumerate() {
            let pp = format!("{path}.policies[{j}]");
            if !matches!(p.type_.as_str(), "Pods" | "Percent") {
                return fail(
                    format!("{pp}.type"),
                    format!("{:?} is not valid: use Pods or Percent", p.type_),
                );
            }
            if p.value < 1 {
                return fail(format!("{pp}.value"), "must be at least 1");
            }
            if !(1..=1800).contains(&p.period_seconds) {
                return fail(
                    format!("{pp}.periodSeconds"),
                    format!("{} is not within 1 to 1800", p.period_seconds),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::manifest::{ManifestError, parse_manifests};
    use crate::resource::Kind;
    use crate::resource::types::{Body, HorizontalPodAutoscalerBody};

    fn err(yaml: &str) -> String {
        match parse_manifests(yaml) {
            Err(ManifestError::Invalid { path, message, .. }) => format!("{path}: {message}"),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    const V2: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 10
      policies: [{type: Percent, value: 100, periodSeconds: 15}]
";

    #[test]
    fn v2_is_accepted_as_written() {
        let p = parse_manifests(V2).expect("valid");
        let o = &p.objects[0];
        assert_eq!(o.kind(), Some(Kind::HorizontalPodAutoscaler));
        let b = HorizontalPodAutoscalerBody::from_object(o).expect("typed");
        assert_eq!(b.spec.max_replicas, 10);
        assert_eq!(Kind::from_user("hpa"), Some(Kind::HorizontalPodAutoscaler));
    }

    #[test]
    fn v1_target_cpu_is_converted_to_a_v2_metric() {
        let y = "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 60
";
        let p = parse_manifests(y).expect("valid");
        let o = &p.objects[0];
        assert_eq!(o.api_version, "autoscaling/v2");
        let b = HorizontalPodAutoscalerBody::from_object(o).expect("typed");
        let m = &b.spec.metrics[0];
        let r = m.resource.as_ref().expect("resource");
        assert_eq!((m.type_.as_str(), r.name.as_str()), ("Resource", "cpu"));
        assert_eq!(r.target.average_utilization, Some(60));
        let bad = y.replace("targetCPUUtilizationPercentage: 60", "metrics: []");
        assert_eq!(
            err(&bad),
            "spec.metrics: not a field of autoscaling/v1: use apiVersion autoscaling/v2"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "kind: Deployment, name: web}",
                "kind: DaemonSet, name: web}",
                "spec.scaleTargetRef.kind",
            ),
            ("minReplicas: 1", "minReplicas: 11", "spec.minReplicas"),
            ("maxReplicas: 10", "maxReplicas: 0", "spec.maxReplicas"),
            ("type: Resource", "type: Pods", "spec.metrics[0].type"),
            ("name: cpu,", "name: gpu,", "spec.metrics[0].resource.name"),
            (
                "averageUtilization: 50",
                "averageUtilization: 0",
                "spec.metrics[0].resource.target.averageUtilization",
            ),
            (
                "type: Utilization, averageUtilization: 50",
                "type: AverageValue",
                "spec.metrics[0].resource.target.averageValue",
            ),
            (
                "type: Utilization,",
                "type: Value,",
                "spec.metrics[0].resource.target.type",
            ),
            (
                "stabilizationWindowSeconds: 10",
                "stabilizationWindowSeconds: 4000",
                "spec.behavior.scaleDown.stabilizationWindowSeconds",
            ),
            (
                "type: Percent",
                "type: Fraction",
                "spec.behavior.scaleDown.policies[0].type",
            ),
            (
                "periodSeconds: 15",
                "periodSeconds: 0",
                "spec.behavior.scaleDown.policies[0].periodSeconds",
            ),
        ];
        for (from, to, path) in cases {
            let y = V2.replace(from, to);
            assert_ne!(y, V2, "{from}");
            let e = err(&y);
            assert!(e.starts_with(&format!("{path}: ")), "{to}: {e}");
        }
        let e = err(&V2.replace(
            "apiVersion: autoscaling/v2",
            "apiVersion: autoscaling/v2beta2",
        ));
        assert!(e.starts_with("apiVersion: "), "{e}");
    }
}
