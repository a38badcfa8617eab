//! Fields a user's write may not change once an object exists, as the
//! Kubernetes API refuses them: a selector that would orphan a workload's
//! pods, a bound claim's spec, a pod's spec, a Secret or ConfigMap marked
//! `immutable`. Refusing here, with the field's path, beats a controller
//! discovering later that what it owns no longer matches.

use serde_json::{Map, Value};

use crate::resource::{Kind, Object};

/// Fields of a Pod's spec that may change in place, as in Kubernetes; every
/// other difference is refused. (`nodeName` is the scheduler's, and a
/// re-applied manifest that leaves it out keeps the live one.)
const POD_MUTABLE: &[&str] = &[
    "activeDeadlineSeconds",
    "tolerations",
    "terminationGracePeriodSeconds",
];

/// The fields of a StatefulSet's spec that may change, as in Kubernetes
/// (`replicas`, as `scale` does; the rest as a rollout does).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Why `new` may not replace `live` (the same kind, namespace and name),
/// naming the field; `Ok` when every immutable field is unchanged.
pub(super) fn check(kind: Kind, live: &Object, new: &Object) -> Result<(), String> {
    if !has_rules(kind) {
        return Ok(());
    }
    let fixed = |path: &[&str]| unchanged(&live.body, &new.body, path);
    match kind {
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet => fixed(&["spec", "selector"]),
        Kind::StatefulSet => {
            let rest = |o: &Object| without(spec(o), STATEFULSET_MUTABLE);
            if rest(live) != rest(new) {
                return Err(format!(
                    "spec: updates to a StatefulSet's spec may change only {}; delete and \
                     re-create it (its claims stay) to change the rest",
                    STATEFULSET_MUTABLE.join(", ")
                ));
            }
            Ok(())
        }
        Kind::Job => {
            for path in [
                &["spec", "selector"][..],
                &["spec", "template"],
                &["spec", "completions"],
                &["spec", "completionMode"],
                &["spec", "podFailurePolicy"],
                &["spec", "backoffLimitPerIndex"],
                &["spec", "successPolicy"],
                &["spec", "manualSelector"],
                &["spec", "managedBy"],
            ] {
                fixed(path)?;
            }
            Ok(())
        }
        Kind::ConfigMap | Kind::Secret => {
            if kind == Kind::Secret {
                fixed(&["type"])?;
            }
            if live.body.get("immutable") != Some(&Value::Bool(true)) {
                return Ok(());
            }
            fixed(&["immutable"])?;
            for field in ["data", "binaryData"] {
                fixed(&[field]).map_err(|_| {
                    format!("{field}: the {kind} is immutable (immutable: true); delete and re-create it to change it")
                })?;
            }
            Ok(())
        }
        Kind::PersistentVolumeClaim => {
            fixed(&["spec", "resources", "requests"]).map_err(|_| {
                "spec.resources.requests: the claim cannot be resized: no StorageClass of \
                 shoal supports volume expansion (allowVolumeExpansion)"
                    .to_string()
            })?;
            let spec_without =
                |o: &Object| without(spec(o), &["resources", "volumeName", "storageClassName"]);
            if spec_without(live) != spec_without(new) {
                return Err(
                    "spec: a PersistentVolumeClaim's spec is immutable after creation \
                            except resources.requests; delete and re-create the claim"
                        .to_string(),
                );
            }
            // Written by the binder, and kept live by apply when left out.
            fixed(&["spec", "volumeName"])?;
            fixed(&["spec", "storageClassName"])
        }
        Kind::PersistentVolume => {
            for field in ["hostPath", "local", "csi", "volumeMode"] {
                fixed(&["spec", field])?;
            }
            Ok(())
        }
        Kind::StorageClass => {
            for field in [
                "provisioner",
                "parameters",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                fixed(&[field])?;
            }
            Ok(())
        }
        Kind::Pod => {
            let comparable = |o: &Object| {
                let mut spec = without(spec(o), POD_MUTABLE);
                for list in ["containers", "initContainers"] {
                    if let Some(Value::Array(containers)) = spec.get_mut(list) {
                        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                            c.remove("image");
                        }
                    }
                }
                spec
            };
            if comparable(live) != comparable(new) {
                return Err("spec: a Pod's spec may not change except \
                            spec.containers[*].image, spec.initContainers[*].image, \
                            spec.activeDeadlineSeconds, spec.tolerations and \
                            spec.terminationGracePeriodSeconds; delete and re-create the Pod \
                            (or run it from a Deployment)"
                    .to_string());
            }
            Ok(())
        }
        // As Kubernetes: pods already created keep the value they took.
        Kind::PriorityClass => {
            fixed(&["value"])?;
            fixed(&["preemptionPolicy"])
        }
        // As Kubernetes: a binding is re-made, not pointed elsewhere.
        Kind::RoleBinding | Kind::ClusterRoleBinding => fixed(&["roleRef"]).map_err(|_| {
            "roleRef: cannot change roleRef; delete and re-create the binding".to_string()
        }),
        _ => Ok(()),
    }
}

/// Whether `kind` has a field that [`check`] may refuse to change. (The
/// Service's cluster IP is services.rs's, which assigns it.)
pub(super) fn has_rules(kind: Kind) -> bool {
    match kind {
        Kind::Deployment
        | Kind::ReplicaSet
        | Kind::DaemonSet
        | Kind::StatefulSet
        | Kind::Job
        | Kind::ConfigMap
        | Kind::Secret
        | Kind::PersistentVolumeClaim
        | Kind::PersistentVolume
        | Kind::StorageClass
        | Kind::RoleBinding
        | Kind::ClusterRoleBinding
        | Kind::PriorityClass
        | Kind::Pod => true,
        Kind::Namespace
        | Kind::Service
        | Kind::Node
        | Kind::Event
        | Kind::Token
        | Kind::CronJob
        | Kind::ControllerRevision
        | Kind::ServiceAccount
        | Kind::PodDisruptionBudget
        | Kind::Role
        | Kind::ClusterRole
        | Kind::LimitRange
        | Kind::HorizontalPodAutoscaler
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::ResourceQuota
        | Kind::CustomResourceDefinition
        | Kind::CustomObject => false,
    }
}

fn unchanged(
    live: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &[&str],
) -> Result<(), String> {
    if at(live, path) == at(new, path) {
        Ok(())
    } else {
        Err(format!("{}: field is immutable", path.join(".")))
    }
}

fn at<'a>(body: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(body.get(*first)?, |v, field| v.get(field))
        .filter(|v| !v.is_null())
}

fn spec(o: &Object) -> Map<String, Value> {
    o.body
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn without(mut map: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    for f in fields {
        map.remove(*f);
    }
    map
}

#[cfg(test)]
mod tests;
