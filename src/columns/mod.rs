//! What a list of each kind shows in a table: the columns `shoal get`
//! prints and the Kubernetes API's Table answers give kubectl. Below both
//! `cli` and `api`, so neither reaches into the other for them.

mod autoscale;
mod batch;
pub(crate) mod cells;
mod ingress;
mod policy;
mod storage;

use std::collections::BTreeSet;

use serde_json::Value;

use crate::resource::Kind;
use crate::resource::status::{
    DaemonSetStatus, DeploymentStatus, NamespaceStatus, NodeStatus, PodPhase, PodStatus,
    ReplicaSetStatus, StatefulSetStatus,
};

use cells::*;

/// How many keys a map field of an object holds (ConfigMap and Secret data).
fn keys(o: &Value, field: &str) -> usize {
    o.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// The header, then one row of cells per item in order: what `shoal get`
/// prints, and the columns of the Kubernetes API's Table answers.
pub(crate) fn table_rows(kind: Kind, items: &[Value], with_ns: bool) -> Vec<Vec<String>> {
    let mut header: Vec<&str> = Vec::new();
    if with_ns && kind.namespaced() {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    let extra: &[&str] = match kind {
        Kind::Pod => &["READY", "STATUS", "RESTARTS", "AGE", "NODE"],
        Kind::Deployment => &["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::Service => &["TYPE", "CLUSTER-IP", "PORT(S)", "SELECTOR", "AGE"],
        Kind::ConfigMap => &["DATA", "AGE"],
        Kind::Secret => &["TYPE", "DATA", "AGE"],
        Kind::Job => &["COMPLETIONS", "DURATION", "AGE"],
        Kind::CronJob => &[
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        Kind::Namespace => &["STATUS", "AGE"],
        Kind::Node => &["RUNTIME", "CPU", "MEMORY", "PODS", "VERSION", "AGE"],
        Kind::Event => &["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"],
        Kind::ReplicaSet => &["DESIRED", "CURRENT", "READY", "AGE"],
        Kind::Token => &["ROLE", "EXPIRES", "DESCRIPTION", "AGE"],
        Kind::DaemonSet => &[
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        Kind::ControllerRevision => &["CONTROLLER", "REVISION", "AGE"],
        Kind::StatefulSet => &["READY", "AGE"],
        Kind::ServiceAccount => &["SECRETS", "AGE"],
        Kind::Role | Kind::ClusterRole | Kind::LimitRange | Kind::CustomResourceDefinition => {
            &["CREATED AT"]
        }
        // A definition's own columns are crate::crd's (additionalPrinterColumns).
        Kind::CustomObject => &["AGE"],
        Kind::RoleBinding | Kind::ClusterRoleBinding => &["ROLE", "AGE"],
        Kind::PodDisruptionBudget => &[
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE",
        ],
        Kind::HorizontalPodAutoscaler => &[
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE",
        ],
        Kind::Ingress => &["CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        Kind::IngressClass => &["CONTROLLER", "PARAMETERS", "AGE"],
        Kind::PriorityClass => &["VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        Kind::ResourceQuota => &["AGE", "REQUEST", "LIMIT"],
        Kind::PersistentVolumeClaim => &[
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "AGE",
        ],
        Kind::PersistentVolume => &[
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "AGE",
            "NODE",
        ],
        Kind::StorageClass => &[
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
    };
    header.extend_from_slice(extra);
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for it in items {
        let mut row = name_cells(it, with_ns && kind.namespaced());
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        match kind {
            Kind::Pod => {
                let containers = s(it, &["spec", "containers"])
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0);
                // Sidecars count in READY, as kubectl counts them.
                let sidecars: BTreeSet<&str> = s(it, &["spec", "initContainers"])
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["restartPolicy"] == "Always")
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                let status: PodStatus = status_of(it);
                let ready = status
                    .container_statuses
                    .iter()
                    .chain(
                        status
                            .init_container_statuses
                            .iter()
                            .filter(|c| sidecars.contains(c.name.as_str())),
                    )
                    .filter(|c| c.ready)
                    .count();
                let restarts: u64 = status
                    .container_statuses
                    .iter()
                    .chain(&status.init_container_statuses)
                    .map(|c| u64::from(c.restart_count))
                    .sum();
                row.push(format!("{ready}/{}", containers + sidecars.len()));
                row.push(pod_status_word(&status, &sidecars));
                row.push(restarts.to_string());
                row.push(age(it));
                row.push(
                    s(it, &["spec", "nodeName"])
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string(),
                );
            }
            Kind::Deployment => {
                let want = s(it, &["spec", "replicas"]).as_u64().unwrap_or(1);
                let st: DeploymentStatus = status_of(it);
                row.push(format!("{}/{want}", st.ready_replicas));
                row.push(st.updated_replicas.to_string());
                row.push(st.available_replicas.to_string());
                row.push(age(it));
            }
            Kind::Service => {
                row.push(
                    s(it, &["spec", "type"])
                        .as_str()
                        .unwrap_or("ClusterIP")
                        .to_string(),
                );
                row.push(
                    s(it, &["spec", "clusterIP"])
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string(),
                );
                let ports: Vec<String> = s(it, &["spec", "ports"])
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let node_port = p
                            .get("nodePort")
                            .and_then(Value::as_u64)
                            .map(|n| format!(":{n}"))
                            .unwrap_or_default();
                        format!(
                            "{}{node_port}/{}",
                            p.get("port").and_then(Value::as_u64).unwrap_or(0),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                row.push(if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports.join(",")
                });
                row.push(pairs(s(it, &["spec", "selector"])));
                row.push(age(it));
            }
            Kind::ConfigMap => {
                row.push((keys(it, "data") + keys(it, "binaryData")).to_string());
                row.push(age(it));
            }
            Kind::Role | Kind::ClusterRole | Kind::LimitRange | Kind::CustomResourceDefinition => {
                row.push(policy::created_at(it));
            }
            Kind::CustomObject => row.push(age(it)),
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                row.push(policy::binding_role(it));
                row.push(age(it));
            }
            Kind::PodDisruptionBudget => {
                row.extend(policy::budget_cells(it));
                row.push(age(it));
            }
            Kind::HorizontalPodAutoscaler => {
                row.extend(autoscale::hpa_cells(it));
                row.push(age(it));
            }
            Kind::Ingress => {
                row.extend(ingress::ingress_cells(it));
                row.push(age(it));
            }
            Kind::IngressClass => {
                row.extend(ingress::class_cells(it));
                row.push(age(it));
            }
            Kind::PriorityClass => {
                let [value, default, policy] = policy::priority_cells(it);
                row.extend([value, default, age(it), policy]);
            }
            Kind::ResourceQuota => {
                row.push(age(it));
                row.extend(policy::quota_cells(it));
            }
            Kind::ServiceAccount => {
                let n = s(it, &["secrets"]).as_array().map_or(0, Vec::len);
                row.push(n.to_string());
                row.push(age(it));
            }
            Kind::Secret => {
                row.push(s(it, &["type"]).as_str().unwrap_or("Opaque").to_string());
                row.push((keys(it, "data") + keys(it, "stringData")).to_string());
                row.push(age(it));
            }
            Kind::Job => {
                row.extend(batch::job_cells(it));
                row.push(age(it));
            }
            Kind::CronJob => {
                row.extend(batch::cronjob_cells(it));
                row.push(age(it));
            }
            Kind::Node => {
                let st: NodeStatus = status_of(it);
                let info = st.node_info.unwrap_or_default();
                let alloc = |k: &str| {
                    st.allocatable
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string()
                };
                row.push(if info.runtime.is_empty() {
                    "?".to_string()
                } else {
                    info.runtime.clone()
                });
                row.push(alloc("cpu"));
                row.push(alloc("memory"));
                row.push(alloc("pods"));
                row.push(if info.shoal_version.is_empty() {
                    "?".to_string()
                } else {
                    info.shoal_version.clone()
                });
                row.push(age(it));
            }
            Kind::Token => {
                let text = |path: &[&str]| s(it, path).as_str().unwrap_or("").to_string();
                row.push(text(&["spec", "role"]));
                let expires = text(&["spec", "expiresAt"]);
                row.push(if expires.is_empty() {
                    "never".into()
                } else {
                    expires
                });
                row.push(text(&["spec", "description"]));
                row.push(age(it));
            }
            Kind::StatefulSet => {
                let st: StatefulSetStatus = status_of(it);
                let want = s(it, &["spec", "replicas"]).as_u64().unwrap_or(1);
                row.push(format!("{}/{want}", st.ready_replicas));
                row.push(age(it));
            }
            Kind::ReplicaSet => {
                row.push(n(s(it, &["spec", "replicas"])).to_string());
                let st: ReplicaSetStatus = status_of(it);
                row.push(st.replicas.to_string());
                row.push(st.ready_replicas.to_string());
                row.push(age(it));
            }
            Kind::Event => {
                row.push(since(it, &["lastTimestamp"]));
                row.push(s(it, &["type"]).as_str().unwrap_or("").to_string());
                row.push(s(it, &["reason"]).as_str().unwrap_or("").to_string());
                let obj = s(it, &["involvedObject"]);
                row.push(format!(
                    "{}/{}",
                    s(obj, &["kind"]).as_str().unwrap_or("").to_lowercase(),
                    s(obj, &["name"]).as_str().unwrap_or("")
                ));
                row.push(n(s(it, &["count"])).max(1).to_string());
                row.push(s(it, &["message"]).as_str().unwrap_or("").to_string());
            }
            Kind::DaemonSet => {
                let st: DaemonSetStatus = status_of(it);
                for v in [
                    st.desired_number_scheduled,
                    st.current_number_scheduled,
                    st.number_ready,
                    st.updated_number_scheduled,
                    st.number_available,
                ] {
                    row.push(v.to_string());
                }
                row.push(pairs(s(it, &["spec", "template", "spec", "nodeSelector"])));
                row.push(age(it));
            }
            Kind::ControllerRevision => {
                let owner = s(it, &["metadata", "ownerReferences"])
                    .as_array()
                    .and_then(|a| a.first())
                    .map(|o| {
                        format!(
                            "{}.apps/{}",
                            s(o, &["kind"]).as_str().unwrap_or("").to_lowercase(),
                            s(o, &["name"]).as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_else(|| "<none>".into());
                row.push(owner);
                row.push(n(s(it, &["revision"])).to_string());
                row.push(age(it));
            }
            Kind::Namespace => {
                let st: NamespaceStatus = status_of(it);
                row.push(st.phase.unwrap_or_else(|| "Active".into()));
                row.push(age(it));
            }
            Kind::PersistentVolumeClaim => {
                row.extend(storage::claim_cells(it));
                row.push(age(it));
            }
            Kind::PersistentVolume => {
                row.extend(storage::volume_cells(it));
                row.push(age(it));
                row.push(storage::volume_node(it));
            }
            Kind::StorageClass => {
                if let Some(name) = row.last_mut() {
                    *name = storage::class_name(it);
                }
                row.extend(storage::class_cells(it));
                row.push(age(it));
            }
        }
        rows.push(row);
    }
    rows
}

/// What kubectl prints in a pod's STATUS column: the reason a container is
/// waiting or terminated (CrashLoopBackOff, OOMKilled, ...) when there is
/// one, else the phase.
pub(crate) fn pod_status_word(status: &PodStatus, sidecars: &BTreeSet<&str>) -> String {
    let phase = status.phase.unwrap_or(PodPhase::Pending);
    if phase.is_terminal()
        && let Some(r) = &status.reason
    {
        return r.clone();
    }
    if let Some(word) = init_status_word(status, sidecars) {
        return word;
    }
    if phase.is_terminal() {
        return status.reason.clone().unwrap_or_else(|| {
            if phase == PodPhase::Succeeded {
                "Completed".into()
            } else {
                phase.as_str().into()
            }
        });
    }
    for c in &status.container_statuses {
        let reason = c
            .state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .or_else(|| c.state.terminated.as_ref().and_then(|t| t.reason.clone()));
        if let Some(r) = reason {
            return r;
        }
    }
    phase.as_str().to_string()
}

/// kubectl's STATUS while init containers hold a pod back: the first init
/// container that has not succeeded (or, for a sidecar, started) gives
/// `Init:REASON` when it waits or failed, else `Init:N/M`.
fn init_status_word(status: &PodStatus, sidecars: &BTreeSet<&str>) -> Option<String> {
    let total = status.init_container_statuses.len();
    for (i, c) in status.init_container_statuses.iter().enumerate() {
        if let Some(t) = &c.state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            return Some(match &t.reason {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:ExitCode:{}", t.exit_code),
            });
        }
        if c.started == Some(true) && sidecars.contains(c.name.as_str()) {
            continue;
        }
        if let Some(r) = c.state.waiting.as_ref().and_then(|w| w.reason.as_deref())
            && r != "PodInitializing"
            && r != "ContainerCreating"
        {
            return Some(format!("Init:{r}"));
        }
        return Some(format!("Init:{i}/{total}"));
    }
    None
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn render_rows(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
