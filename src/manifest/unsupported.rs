//! Kubernetes fields shoal refuses, or accepts with a warning because it
//! keeps them without acting on them yet: the lists and their checks.

use super::*;

/// Kubernetes fields outside shoal's subset, per place. They are refused with
/// "field not supported by shoal" rather than the generic "unknown field".
pub(super) const META_UNSUPPORTED: &[&str] = &[
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
];
pub(super) const TEMPLATE_META_UNSUPPORTED: &[&str] = &[
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];
pub(super) const POD_SPEC_UNSUPPORTED: &[&str] = &[
    "ephemeralContainers",
    "hostUsers",
    "os",
    "overhead",
    "readinessGates",
    "resourceClaims",
    "resources",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "setHostnameAsFQDN",
];
pub(super) const CONTAINER_UNSUPPORTED: &[&str] = &["resizePolicy", "volumeDevices"];
pub(super) const CONTAINER_PORT_UNSUPPORTED: &[&str] = &["hostIP"];
/// `securityContext` fields beyond the user ones: refused, not ignored,
/// since a pod that asks for less privilege must not silently get more.
pub(super) const POD_SECURITY_CONTEXT_UNSUPPORTED: &[&str] = &[
    "appArmorProfile",
    "seLinuxChangePolicy",
    "seLinuxOptions",
    "supplementalGroupsPolicy",
    "windowsOptions",
];
pub(super) const CONTAINER_SECURITY_CONTEXT_UNSUPPORTED: &[&str] =
    &["appArmorProfile", "seLinuxOptions", "windowsOptions"];
pub(super) const SECURITY_CONTEXT_NOT_HONOURED: &str = "not honoured by shoal: no AppArmor, SELinux or Windows options (a pod that asks for a confinement must not run without it)";
pub(super) const ENV_SOURCE_UNSUPPORTED: &[&str] = &["fileKeyRef"];
pub(super) const RESOURCES_UNSUPPORTED: &[&str] = &["claims"];
pub(super) const PROBE_UNSUPPORTED: &[&str] = &["terminationGracePeriodSeconds"];
pub(super) const LIFECYCLE_UNSUPPORTED: &[&str] = &["stopSignal"];
pub(super) const VOLUME_MOUNT_UNSUPPORTED: &[&str] =
    &["mountPropagation", "recursiveReadOnly", "subPathExpr"];
pub(super) const PROJECTION_UNSUPPORTED: &[&str] = &[
    "clusterTrustBundle",
    "podCertificate",
    "serviceAccountToken",
];
pub(super) const VOLUME_UNSUPPORTED: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "image",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];
pub(super) const SERVICE_SPEC_UNSUPPORTED: &[&str] = &[
    "allocateLoadBalancerNodePorts",
    "clusterIPs",
    "externalIPs",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "publishNotReadyAddresses",
    "trafficDistribution",
];
pub(super) const SERVICE_PORT_UNSUPPORTED: &[&str] = &["appProtocol"];
pub(super) const NAMESPACE_SPEC_UNSUPPORTED: &[&str] = &["finalizers"];

pub(super) fn unsupported(map: &Map<String, Value>, path: &str, fields: &[&str]) -> Res {
    unsupported_because(map, path, fields, "field not supported by shoal")
}

pub(super) fn unsupported_because(
    map: &Map<String, Value>,
    path: &str,
    fields: &[&str],
    why: &str,
) -> Res {
    match map.keys().find(|k| fields.contains(&k.as_str())) {
        Some(k) => fail(join(path, k), why),
        None => Ok(()),
    }
}

/// The mapping at `map[key]`, if it is one (wrong types are left to decoding).
pub(super) fn sub<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

/// The mappings in the list at `map[key]`, with their indices.
pub(super) fn items<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = (usize, &'a Map<String, Value>)> {
    map.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|m| (i, m)))
}

/// Walks the raw body where Kubernetes has fields shoal lacks.
pub(super) fn check_unsupported(kind: Kind, body: &Map<String, Value>) -> Res {
    let Some(spec) = sub(body, "spec") else {
        return Ok(());
    };
    match kind {
        Kind::Namespace => unsupported(spec, "spec", NAMESPACE_SPEC_UNSUPPORTED),
        Kind::Pod => unsupported_pod_spec(spec, "spec"),
        Kind::Deployment => unsupported_template(spec, "spec.template"),
        Kind::Job => unsupported_template(spec, "spec.template"),
        Kind::CronJob => {
            let Some(job) = sub(spec, "jobTemplate").and_then(|t| sub(t, "spec")) else {
                return Ok(());
            };
            unsupported_template(job, "spec.jobTemplate.spec.template")
        }
        Kind::DaemonSet => unsupported_template(spec, "spec.template"),
        Kind::StatefulSet => {
            for (i, t) in items(spec, "volumeClaimTemplates") {
                if let Some(claim) = sub(t, "spec") {
                    let path = format!("spec.volumeClaimTemplates[{i}].spec");
                    unsupported(claim, &path, super::storage::PVC_SPEC_UNSUPPORTED)?;
                }
            }
            unsupported_template(spec, "spec.template")
        }
        Kind::Service => {
            unsupported(spec, "spec", SERVICE_SPEC_UNSUPPORTED)?;
            for (i, port) in items(spec, "ports") {
                unsupported(port, &format!("spec.ports[{i}]"), SERVICE_PORT_UNSUPPORTED)?;
            }
            Ok(())
        }
        Kind::PersistentVolumeClaim => {
            unsupported(spec, "spec", super::storage::PVC_SPEC_UNSUPPORTED)
        }
        Kind::PersistentVolume => unsupported(spec, "spec", super::storage::PV_SPEC_UNSUPPORTED),
        Kind::ConfigMap
        | Kind::Secret
        | Kind::Node
        | Kind::Event
        | Kind::ReplicaSet
        | Kind::Token
        | Kind::ControllerRevision
        | Kind::StorageClass
        | Kind::ServiceAccount
        | Kind::PodDisruptionBudget
        | Kind::Role
        | Kind::ClusterRole
        | Kind::RoleBinding
        | Kind::ClusterRoleBinding
        | Kind::LimitRange
        | Kind::HorizontalPodAutoscaler
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::PriorityClass
        | Kind::ResourceQuota
        | Kind::CustomResourceDefinition
        | Kind::CustomObject => Ok(()),
    }
}

pub(super) fn unsupported_template(spec: &Map<String, Value>, path: &str) -> Res {
    let Some(template) = sub(spec, "template") else {
        return Ok(());
    };
    if let Some(meta) = sub(template, "metadata") {
        unsupported(meta, &join(path, "metadata"), TEMPLATE_META_UNSUPPORTED)?;
    }
    match sub(template, "spec") {
        Some(pod) => unsupported_pod_spec(pod, &join(path, "spec")),
        None => Ok(()),
    }
}

pub(super) fn unsupported_pod_spec(spec: &Map<String, Value>, path: &str) -> Res {
    unsupported(spec, path, POD_SPEC_UNSUPPORTED)?;
    if let Some(sc) = sub(spec, "securityContext") {
        unsupported_because(
            sc,
            &join(path, "securityContext"),
            POD_SECURITY_CONTEXT_UNSUPPORTED,
            SECURITY_CONTEXT_NOT_HONOURED,
        )?;
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in items(spec, list) {
            unsupported_container(c, &format!("{path}.{list}[{i}]"))?;
        }
    }
    for (i, v) in items(spec, "volumes") {
        let vp = format!("{path}.volumes[{i}]");
        unsupported(v, &vp, VOLUME_UNSUPPORTED)?;
        if let Some(p) = sub(v, "projected") {
            for (j, s) in items(p, "sources") {
                unsupported(
                    s,
                    &format!("{vp}.projected.sources[{j}]"),
                    PROJECTION_UNSUPPORTED,
                )?;
            }
        }
    }
    Ok(())
}

fn unsupported_container(c: &Map<String, Value>, cp: &str) -> Res {
    unsupported(c, cp, CONTAINER_UNSUPPORTED)?;
    if let Some(sc) = sub(c, "securityContext") {
        unsupported_because(
            sc,
            &format!("{cp}.securityContext"),
            CONTAINER_SECURITY_CONTEXT_UNSUPPORTED,
            SECURITY_CONTEXT_NOT_HONOURED,
        )?;
    }
    for (j, port) in items(c, "ports") {
        unsupported(
            port,
            &format!("{cp}.ports[{j}]"),
            CONTAINER_PORT_UNSUPPORTED,
        )?;
    }
    for (j, env) in items(c, "env") {
        if let Some(from) = sub(env, "valueFrom") {
            unsupported(
                from,
                &format!("{cp}.env[{j}].valueFrom"),
                ENV_SOURCE_UNSUPPORTED,
            )?;
        }
    }
    if let Some(r) = sub(c, "resources") {
        unsupported_because(
            r,
            &format!("{cp}.resources"),
            RESOURCES_UNSUPPORTED,
            "not supported by shoal: dynamic resource allocation (ResourceClaims) is not implemented; request extended resources in limits instead",
        )?;
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = sub(c, probe) {
            unsupported(p, &format!("{cp}.{probe}"), PROBE_UNSUPPORTED)?;
        }
    }
    if let Some(l) = sub(c, "lifecycle") {
        unsupported(l, &format!("{cp}.lifecycle"), LIFECYCLE_UNSUPPORTED)?;
        for hook in ["postStart", "preStop"] {
            if let Some(h) = sub(l, hook) {
                unsupported_because(
                    h,
                    &format!("{cp}.lifecycle.{hook}"),
                    &["tcpSocket"],
                    "deprecated and never run by the kubelet; use exec, httpGet or sleep",
                )?;
            }
        }
    }
    for (j, m) in items(c, "volumeMounts") {
        unsupported(
            m,
            &format!("{cp}.volumeMounts[{j}]"),
            VOLUME_MOUNT_UNSUPPORTED,
        )?;
    }
    Ok(())
}
