//! Commands on objects: apply, get, delete, events, members, raft status; and the tables they print.

use std::collections::BTreeSet;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::resource::Kind;
use crate::resource::status::{
    DaemonSetStatus, DeploymentStatus, NamespaceStatus, NodeStatus, PodPhase, PodStatus,
    ReplicaSetStatus, StatefulSetStatus,
};

use super::cells::*;
use super::client::*;
use super::{Output, emit};

pub(super) async fn apply(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/apply", Some(body))
        .await
        .with_context(|| format!("apply {file}"))?;
    for w in resp
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("Warning: {w}");
        }
    }
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let outcome = match r.get("outcome").and_then(Value::as_str).unwrap_or("") {
            "Created" => "created",
            "Updated" => "configured",
            "Unchanged" => "unchanged",
            o => o,
        };
        outln!("{}/{name} {outcome}", display_kind(kind));
    }
    Ok(())
}

pub(super) async fn get(
    client: &Client,
    kind: &str,
    name: Option<&str>,
    namespace: Option<String>,
    all: bool,
    output: Output,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or_else(|| "default".into());
    // Endpoints are derived per node, not stored: their own paths and table.
    let stored = if matches!(kind, "endpoints" | "ep") {
        None
    } else {
        Some(kind_arg(kind)?)
    };
    let path = match (stored, name) {
        (Some(k), None) if all => format!("/v1/{}", k.plural()),
        (Some(k), _) => object_path(k, &ns, name),
        (None, Some(n)) => format!("/v1/namespaces/{ns}/endpoints/{n}"),
        (None, None) if all => "/v1/endpoints".to_string(),
        (None, None) => format!("/v1/namespaces/{ns}/endpoints"),
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let items: Vec<Value> = if name.is_some() {
        vec![resp.clone()]
    } else {
        resp.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match output {
        Output::Json => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Yaml => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            out!(
                "{}",
                serde_saphyr::to_string(&v).map_err(|e| anyhow!("yaml: {e}"))?
            );
        }
        Output::Table => {
            if items.is_empty() {
                if all || stored.is_some_and(|k| !k.namespaced()) {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            out!(
                "{}",
                match stored {
                    Some(k) => table(k, &items, all),
                    None => endpoints_table(&items, all),
                }
            );
        }
    }
    Ok(())
}

/// `get endpoints` as a table: each Service's ready endpoints as the
/// answering node reaches them.
pub(super) fn endpoints_table(items: &[Value], all: bool) -> String {
    let mut rows = vec![Vec::new()];
    if all {
        rows[0].push("NAMESPACE".to_string());
    }
    rows[0].extend(["NAME", "ENDPOINTS"].map(String::from));
    for it in items {
        let mut row = name_cells(it, all);
        let eps: Vec<String> = s(it, &["ports"])
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p.get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .map(|e| {
                format!(
                    "{}:{}",
                    e.get("ip").and_then(Value::as_str).unwrap_or("?"),
                    e.get("port").and_then(Value::as_u64).unwrap_or(0)
                )
            })
            .collect();
        row.push(if eps.is_empty() {
            "<none>".into()
        } else {
            eps.join(",")
        });
        rows.push(row);
    }
    render_rows(&rows)
}

/// How many keys a map field of an object holds (ConfigMap and Secret data).
fn keys(o: &Value, field: &str) -> usize {
    o.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

pub(super) fn table(kind: Kind, items: &[Value], with_ns: bool) -> String {
    render_rows(&table_rows(kind, items, with_ns))
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
        Kind::Role | Kind::ClusterRole | Kind::LimitRange => &["CREATED AT"],
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
                let sel: Vec<String> = s(it, &["spec", "selector"])
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                row.push(if sel.is_empty() {
                    "<none>".into()
                } else {
                    sel.join(",")
                });
                row.push(age(it));
            }
            Kind::ConfigMap => {
                row.push((keys(it, "data") + keys(it, "binaryData")).to_string());
                row.push(age(it));
            }
            Kind::Role | Kind::ClusterRole | Kind::LimitRange => {
                row.push(super::policy::created_at(it));
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                row.push(super::policy::binding_role(it));
                row.push(age(it));
            }
            Kind::PodDisruptionBudget => {
                row.extend(super::policy::budget_cells(it));
                row.push(age(it));
            }
            Kind::HorizontalPodAutoscaler => {
                row.extend(super::autoscale::hpa_cells(it));
                row.push(age(it));
            }
            Kind::Ingress => {
                row.extend(super::ingress::ingress_cells(it));
                row.push(age(it));
            }
            Kind::IngressClass => {
                row.extend(super::ingress::class_cells(it));
                row.push(age(it));
            }
            Kind::PriorityClass => {
                let [value, default, policy] = super::policy::priority_cells(it);
                row.extend([value, default, age(it), policy]);
            }
            Kind::ResourceQuota => {
                row.push(age(it));
                row.extend(super::policy::quota_cells(it));
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
                row.extend(super::jobs::job_cells(it));
                row.push(age(it));
            }
            Kind::CronJob => {
                row.extend(super::jobs::cronjob_cells(it));
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
                let sel: Vec<String> = s(it, &["spec", "template", "spec", "nodeSelector"])
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                row.push(if sel.is_empty() {
                    "<none>".into()
                } else {
                    sel.join(",")
                });
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
                row.extend(super::storage::claim_cells(it));
                row.push(age(it));
            }
            Kind::PersistentVolume => {
                row.extend(super::storage::volume_cells(it));
                row.push(age(it));
                row.push(super::storage::volume_node(it));
            }
            Kind::StorageClass => {
                if let Some(name) = row.last_mut() {
                    *name = super::storage::class_name(it);
                }
                row.extend(super::storage::class_cells(it));
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
pub(super) fn pod_status_word(status: &PodStatus, sidecars: &BTreeSet<&str>) -> String {
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
pub(super) fn render_rows(rows: &[Vec<String>]) -> String {
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

/// `/ip4/10.0.0.1/tcp/7946` as `10.0.0.1:7946`; other addresses as they are.
pub(super) fn host_port(multiaddr: &str) -> String {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "dns" | "dns4", host, "tcp", port, ..] => format!("{host}:{port}"),
        ["", "ip6", host, "tcp", port, ..] => format!("[{host}]:{port}"),
        _ => multiaddr.to_string(),
    }
}

pub(super) async fn members(client: &Client, output: Output) -> anyhow::Result<()> {
    let resp = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&resp)?),
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(&resp).map_err(|e| anyhow!("yaml: {e}"))?
        ),
        Output::Table => {
            let mut rows = vec![
                ["NAME", "ADDRESS", "STATE", "INCARNATION", "RAFT", "SINCE"]
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>(),
            ];
            for m in s(&resp, &["items"]).as_array().into_iter().flatten() {
                let meta = s(m, &["meta"]);
                let name = s(meta, &["name"]).as_str().unwrap_or("?");
                let name = if m["isSelf"] == true {
                    format!("{name} (this node)")
                } else {
                    name.to_string()
                };
                let since = m["since"].as_u64().unwrap_or(0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                rows.push(vec![
                    name,
                    meta["p2pAddrs"][0]
                        .as_str()
                        .map(host_port)
                        .unwrap_or_else(|| "?".into()),
                    m["state"].as_str().unwrap_or("?").to_string(),
                    m["incarnation"].as_u64().unwrap_or(0).to_string(),
                    // A down member's last published role is stale, not a fact.
                    if matches!(m["state"].as_str(), Some("down" | "left")) {
                        "-".to_string()
                    } else {
                        s(meta, &["raftRole"]).as_str().unwrap_or("?").to_string()
                    },
                    if since == 0 {
                        "-".into()
                    } else {
                        human_duration(now.saturating_sub(since))
                    },
                ]);
            }
            out!("{}", render_rows(&rows));
        }
    }
    Ok(())
}

pub(super) async fn events(
    client: &Client,
    namespace: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let path = if all {
        "/v1/events".to_string()
    } else {
        object_path(Kind::Event, namespace.as_deref().unwrap_or("default"), None)
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let mut items: Vec<Value> = s(&resp, &["items"]).as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No events found");
        return Ok(());
    }
    items.sort_by_key(|e| s(e, &["lastTimestamp"]).as_str().unwrap_or("").to_string());
    out!("{}", table(Kind::Event, &items, all));
    Ok(())
}

pub(super) async fn delete_one(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: Option<String>,
    force: bool,
) -> anyhow::Result<()> {
    let kind = kind_arg(kind)?;
    let ns = namespace.unwrap_or_else(|| "default".into());
    let mut path = object_path(kind, &ns, Some(name));
    if force {
        path.push_str("?force=true");
    }
    client.send(reqwest::Method::DELETE, &path, None).await?;
    outln!("{}/{name} deleted", display_kind(kind.as_str()));
    Ok(())
}

pub(super) async fn delete_file(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/delete", Some(body))
        .await?;
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        outln!("{}/{name} deleted", display_kind(kind));
    }
    let missing: Vec<String> = resp
        .get("notFound")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                display_kind(r.get("kind").and_then(Value::as_str).unwrap_or("")),
                r.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!("not found: {}", missing.join(", "));
    }
    Ok(())
}

pub(super) async fn raft_status(client: &Client) -> anyhow::Result<()> {
    let v = client.send(reqwest::Method::GET, "/v1/raft", None).await?;
    let leader = v.get("leader").and_then(Value::as_u64);
    let name_of = |id: u64| -> String {
        for group in ["voters", "learners"] {
            for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
                if e.get(0).and_then(Value::as_u64) == Some(id) {
                    let n = e.get(1).cloned().unwrap_or(Value::Null);
                    return n
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                }
            }
        }
        "?".into()
    };
    outln!(
        "node:    {} ({})",
        s(&v, &["node", "name"]).as_str().unwrap_or(""),
        v.get("state").and_then(Value::as_str).unwrap_or("")
    );
    outln!(
        "term:    {}",
        v.get("term").and_then(Value::as_u64).unwrap_or(0)
    );
    outln!(
        "cluster: {}",
        v.get("cluster_id")
            .and_then(Value::as_str)
            .unwrap_or("<not yet known>")
    );
    match leader {
        Some(id) => outln!("leader:  {} ({id})", name_of(id)),
        None => outln!("leader:  <none>"),
    }
    let idx = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into())
    };
    outln!(
        "log:     last {}  applied {}  purged {}  snapshot {}",
        idx("last_log_index"),
        idx("last_applied"),
        idx("last_purged"),
        idx("snapshot_index")
    );
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ROLE".into(),
        "NODE ID".into(),
        "PEER ID".into(),
        "API".into(),
    ]];
    for (group, role) in [("voters", "voter"), ("learners", "learner")] {
        for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
            let id = e.get(0).and_then(Value::as_u64).unwrap_or(0);
            let n = e.get(1).cloned().unwrap_or(Value::Null);
            let role = if Some(id) == leader {
                "voter (leader)"
            } else {
                role
            };
            rows.push(vec![
                n.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                role.to_string(),
                id.to_string(),
                n.get("peer_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                n.get("api_addr")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ]);
        }
    }
    out!("{}", render_rows(&rows));
    Ok(())
}
