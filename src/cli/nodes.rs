//! Nodes: `shoal nodes`, cordon, uncordon and drain.

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::resource::Kind;
use crate::resource::status::{NodeStatus, PodStatus};

use super::client::*;
use super::emit;
use super::objects::*;
use super::rollout::*;
use crate::columns::cells::*;

/// A Node object by name, and the URL that reads and writes it.
pub(super) async fn get_node(client: &Client, name: &str) -> anyhow::Result<(String, Value)> {
    let path = object_path(Kind::Node, "", Some(name));
    let err = match client.send(reqwest::Method::GET, &path, None).await {
        Ok(n) => return Ok((path, n)),
        Err(e) => e,
    };
    if !no_route(&err) {
        if http_status(&err) == Some(404) {
            bail!("node {name:?} not found");
        }
        return Err(err.into());
    }
    // A server without `/v1/{plural}/{name}` still serves cluster-scoped
    // objects under any namespace's URL (their key ignores the namespace).
    let path = format!("/v1/namespaces/default/nodes/{name}");
    match client.send(reqwest::Method::GET, &path, None).await {
        Ok(n) => Ok((path, n)),
        Err(e) if http_status(&e) == Some(404) => bail!("node {name:?} not found"),
        Err(e) => Err(e.into()),
    }
}

/// Changes a node's `spec` with `change` (which says whether it changed
/// anything) and writes it back, retrying on a conflict; whether it changed.
pub(super) async fn update_node_spec(
    client: &Client,
    name: &str,
    change: impl Fn(&mut serde_json::Map<String, Value>) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (path, mut node) = get_node(client, name).await?;
        let obj = node
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node is not an object"))?;
        obj.remove("status");
        let spec = obj
            .entry("spec")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node's spec is not a map"))?;
        if !change(spec)? {
            return Ok(false);
        }
        let body = serde_json::to_vec(&node)?;
        match client.send(reqwest::Method::PUT, &path, Some(body)).await {
            Ok(_) => return Ok(true),
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("updating node/{name}")),
        }
    }
}

/// Sets or clears a node's `spec.unschedulable`; whether that changed it.
pub(super) async fn set_unschedulable(
    client: &Client,
    name: &str,
    on: bool,
) -> anyhow::Result<bool> {
    update_node_spec(client, name, |spec| {
        let cordoned = spec.get("unschedulable").and_then(Value::as_bool) == Some(true);
        if cordoned == on {
            return Ok(false);
        }
        if on {
            spec.insert("unschedulable".into(), Value::Bool(true));
        } else {
            spec.remove("unschedulable");
        }
        Ok(true)
    })
    .await
}

pub(super) async fn cordon(client: &Client, name: &str, on: bool) -> anyhow::Result<()> {
    let changed = set_unschedulable(client, name, on).await?;
    let word = if on { "cordoned" } else { "uncordoned" };
    if changed {
        outln!("node/{name} {word}");
    } else {
        outln!("node/{name} already {word}");
    }
    Ok(())
}

pub(super) fn is_terminal_pod(p: &Value) -> bool {
    status_of::<PodStatus>(p).is_terminal()
}

/// The ownerReference marked `controller: true`, if any.
pub(super) fn controller_ref(o: &Value) -> Option<&Value> {
    s(o, &["metadata", "ownerReferences"])
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

pub(super) fn pod_id(p: &Value) -> String {
    format!(
        "{}/{}",
        s(p, &["metadata", "namespace"])
            .as_str()
            .unwrap_or("default"),
        s(p, &["metadata", "name"]).as_str().unwrap_or("")
    )
}

/// Evicts one pod through the API's eviction endpoint, which refuses (429)
/// while the pod's Deployment has no replica to spare; asks again until it
/// is allowed or the deadline passes. `Ok(false)`: not evicted in time.
/// The eviction names the pod's uid, so a pod that was replaced under the
/// same name meanwhile is left alone (and counts as gone).
pub(super) async fn evict(
    client: &Client,
    pod: &Value,
    deadline: tokio::time::Instant,
) -> anyhow::Result<bool> {
    let ns = s(pod, &["metadata", "namespace"])
        .as_str()
        .unwrap_or("default");
    let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
    let uid = s(pod, &["metadata", "uid"]).as_str();
    outln!("evicting pod {}", pod_id(pod));
    let mut told = false;
    loop {
        match client.evict(ns, name, uid).await {
            Ok(_) => break,
            // Gone already, or replaced by another pod of the same name.
            Err(e) if matches!(http_status(&e), Some(404 | 409)) => break,
            Err(e) if http_status(&e) == Some(429) => {
                // Said once: a drain that waits silently looks hung.
                if !told {
                    eprintln!("waiting to evict pod {}: {e}", pod_id(pod));
                    told = true;
                }
                if tokio::time::Instant::now() + POLL > deadline {
                    return Ok(false);
                }
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("evicting pod {ns}/{name}")));
            }
        }
    }
    outln!("pod/{name} evicted");
    Ok(true)
}

pub(super) async fn drain(
    client: &Client,
    node: &str,
    timeout: u64,
    force: bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    cordon(client, node, true).await?;
    let list = client.send(reqwest::Method::GET, "/v1/pods", None).await?;
    let mine: Vec<Value> = s(&list, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| s(p, &["spec", "nodeName"]).as_str() == Some(node))
        .cloned()
        .collect();
    // A DaemonSet puts its pod back on the cordoned node at once, so
    // evicting it would not empty the node: left alone, as kubectl's
    // --ignore-daemonsets.
    let (daemons, mine): (Vec<Value>, Vec<Value>) = mine.into_iter().partition(|p| {
        controller_ref(p)
            .and_then(|r| r.get("kind"))
            .and_then(Value::as_str)
            == Some("DaemonSet")
    });
    if !daemons.is_empty() {
        let ids: Vec<String> = daemons.iter().map(pod_id).collect();
        eprintln!(
            "Warning: ignoring DaemonSet-managed Pods: {}",
            ids.join(", ")
        );
    }

    // Nothing would re-create a pod without a controller: refuse to lose
    // it unless told, as kubectl does.
    let unmanaged: Vec<String> = mine
        .iter()
        .filter(|p| !is_terminal_pod(p) && controller_ref(p).is_none())
        .map(pod_id)
        .collect();
    if !unmanaged.is_empty() {
        if !force {
            bail!(
                "cannot delete Pods not managed by a controller (use --force to override): {}",
                unmanaged.join(", ")
            );
        }
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            unmanaged.join(", ")
        );
    }

    // Every pod at once: the server holds back the ones whose Deployment
    // cannot spare them yet, and those are asked again until it can.
    let results = futures::future::join_all(mine.iter().map(|p| evict(client, p, deadline))).await;
    let mut left = Vec::new();
    for (p, r) in mine.iter().zip(results) {
        if !r? {
            left.push(pod_id(p));
        }
    }
    if !left.is_empty() {
        bail!(
            "timed out after {timeout}s draining node/{node}; pods left: {}",
            left.join(", ")
        );
    }
    outln!("node/{node} drained");
    Ok(())
}

/// Memory as kubectl-style human units: `512Mi`, `23.3Gi`.
pub(super) fn human_memory(bytes: u64) -> String {
    const MI: f64 = 1024.0 * 1024.0;
    const GI: f64 = MI * 1024.0;
    let b = bytes as f64;
    if b >= GI {
        let g = format!("{:.1}", b / GI);
        format!("{}Gi", g.strip_suffix(".0").unwrap_or(&g))
    } else {
        format!("{}Mi", (b / MI).round() as u64)
    }
}

/// CPU millicores and memory bytes a pod asks for: container requests,
/// falling back to limits, as the scheduler counts them.
pub(super) fn pod_requests(p: &Value) -> (u64, u64) {
    use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};
    let mut cpu = 0;
    let mut mem = 0;
    for c in s(p, &["spec", "containers"])
        .as_array()
        .into_iter()
        .flatten()
    {
        let q = |res: &str| {
            s(c, &["resources", "requests", res])
                .as_str()
                .or_else(|| s(c, &["resources", "limits", res]).as_str())
        };
        cpu += q("cpu").and_then(|v| parse_cpu_millis(v).ok()).unwrap_or(0);
        mem += q("memory")
            .and_then(|v| parse_memory_bytes(v).ok())
            .unwrap_or(0);
    }
    (cpu, mem)
}

/// The STATUS column: gossip's view of the node, and whether it is cordoned.
pub(super) fn node_status(node: &Value, member: Option<&Value>) -> String {
    let state = match member.and_then(|m| m.get("state")).and_then(Value::as_str) {
        Some("alive") => "Ready",
        Some("suspect") => "Suspect",
        _ => "NotReady",
    };
    if s(node, &["spec", "unschedulable"]).as_bool() == Some(true) {
        format!("{state},SchedulingDisabled")
    } else {
        state.to_string()
    }
}

/// The member gossip knows by this name; a host that came back under a
/// new identity is listed twice, and the liveliest entry is the one to show.
pub(super) fn member_named<'a>(members: &'a [Value], name: &str) -> Option<&'a Value> {
    let rank = |m: &Value| match m.get("state").and_then(Value::as_str) {
        Some("alive") => 0,
        Some("suspect") => 1,
        _ => 2,
    };
    members
        .iter()
        .filter(|m| s(m, &["meta", "name"]).as_str() == Some(name))
        .min_by_key(|m| rank(m))
}

pub(super) async fn nodes(client: &Client) -> anyhow::Result<()> {
    let list = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Node, "", None),
            None,
        )
        .await?;
    let items: Vec<Value> = s(&list, &["items"]).as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    // Without gossip every node would read NotReady; say Unknown instead.
    let members: Option<Vec<Value>> = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await
        .ok()
        .map(|m| s(&m, &["items"]).as_array().cloned().unwrap_or_default());
    let pods = client.send(reqwest::Method::GET, "/v1/pods", None).await?;
    let mut used: std::collections::HashMap<&str, (u64, u64, u64)> =
        std::collections::HashMap::new();
    for p in s(&pods, &["items"]).as_array().into_iter().flatten() {
        let Some(n) = s(p, &["spec", "nodeName"]).as_str() else {
            continue;
        };
        if is_terminal_pod(p) {
            continue;
        }
        let (cpu, mem) = pod_requests(p);
        let e = used.entry(n).or_default();
        e.0 += cpu;
        e.1 += mem;
        e.2 += 1;
    }
    let mut rows = vec![
        [
            "NAME", "STATUS", "ROLES", "CPU", "MEMORY", "PODS", "RUNTIME", "AGE",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>(),
    ];
    for n in &items {
        use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};
        let name = s(n, &["metadata", "name"]).as_str().unwrap_or("");
        let member = members.as_deref().and_then(|m| member_named(m, name));
        let status = match &members {
            Some(_) => node_status(n, member),
            None => node_status(n, None).replacen("NotReady", "Unknown", 1),
        };
        let role = member
            .and_then(|m| s(m, &["meta", "raftRole"]).as_str())
            .filter(|r| matches!(*r, "leader" | "voter" | "learner"))
            .unwrap_or("<none>");
        let st: NodeStatus = status_of(n);
        let alloc = |k: &str| st.allocatable.get(k).and_then(Value::as_str);
        let (cpu, mem, count) = used.get(name).copied().unwrap_or_default();
        let alloc_cpu = alloc("cpu")
            .and_then(|v| parse_cpu_millis(v).ok())
            .map(|m| format!("{m}m"))
            .unwrap_or_else(|| "?".into());
        let alloc_mem = alloc("memory")
            .and_then(|v| parse_memory_bytes(v).ok())
            .map(human_memory)
            .unwrap_or_else(|| "?".into());
        let runtime = st
            .node_info
            .as_ref()
            .map(|i| i.runtime.as_str())
            .filter(|r| !r.is_empty())
            .unwrap_or("?");
        rows.push(vec![
            name.to_string(),
            status,
            role.to_string(),
            format!("{cpu}m/{alloc_cpu}"),
            format!("{}/{alloc_mem}", human_memory(mem)),
            format!("{count}/{}", alloc("pods").unwrap_or("?")),
            runtime.to_string(),
            age(n),
        ]);
    }
    out!("{}", render_rows(&rows));
    Ok(())
}
