//! Nodes: `shoal nodes`, cordon, uncordon and drain.

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::resource::Kind;

use super::client::*;
use super::emit;
use super::objects::*;
use super::rollout::*;

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
        return Err(err);
    }
    // A server without `/v1/{plural}/{name}` still serves cluster-scoped
    // objects under any namespace's URL (their key ignores the namespace).
    let path = format!("/v1/namespaces/default/nodes/{name}");
    match client.send(reqwest::Method::GET, &path, None).await {
        Ok(n) => Ok((path, n)),
        Err(e) if http_status(&e) == Some(404) => bail!("node {name:?} not found"),
        Err(e) => Err(e),
    }
}

/// Sets or clears a node's `spec.unschedulable`; whether that changed it.
pub(super) async fn set_unschedulable(
    client: &Client,
    name: &str,
    on: bool,
) -> anyhow::Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (path, mut node) = get_node(client, name).await?;
        let cordoned = s(&node, &["spec", "unschedulable"]).as_bool() == Some(true);
        if cordoned == on {
            return Ok(false);
        }
        let obj = node
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node is not an object"))?;
        obj.remove("status");
        let spec = obj
            .entry("spec")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored node's spec is not a map"))?;
        if on {
            spec.insert("unschedulable".into(), Value::Bool(true));
        } else {
            spec.remove("unschedulable");
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
    matches!(
        s(p, &["status", "phase"]).as_str(),
        Some("Succeeded" | "Failed")
    )
}

pub(super) fn is_ready_pod(p: &Value) -> bool {
    s(p, &["status", "conditions"])
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
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

/// The most pods of a deployment that may be unavailable at once, as its
/// strategy says (and as the deployment controller resolves it).
pub(super) fn max_unavailable(d: &Value) -> i64 {
    use crate::resource::types::IntOrString;
    let replicas = s(d, &["spec", "replicas"]).as_u64().unwrap_or(1);
    let replicas = u32::try_from(replicas).unwrap_or(u32::MAX);
    let strategy = s(d, &["spec", "strategy"]);
    if s(strategy, &["type"]).as_str() == Some("Recreate") {
        return i64::from(replicas);
    }
    let field = |f: &str, round_up: bool| {
        let v = s(strategy, &["rollingUpdate", f]);
        let v = if v.is_null() { json!("25%") } else { v.clone() };
        serde_json::from_value::<IntOrString>(v)
            .ok()
            .and_then(|v| v.scaled_value(replicas, round_up))
    };
    let surge = field("maxSurge", true).unwrap_or(1);
    let unavailable = field("maxUnavailable", false).unwrap_or(0);
    // Both zero would stall every rollout; Kubernetes then allows one.
    if surge == 0 && unavailable == 0 {
        1
    } else {
        i64::from(unavailable)
    }
}

/// Deletes a pod bound to `node` unless it was replaced in the meantime
/// (the same name reused for a pod elsewhere); gone already is fine.
pub(super) async fn delete_pod(client: &Client, node: &str, pod: &Value) -> anyhow::Result<()> {
    let ns = s(pod, &["metadata", "namespace"])
        .as_str()
        .unwrap_or("default");
    let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
    let path = object_path(Kind::Pod, ns, Some(name));
    let mut rv = s(pod, &["metadata", "resourceVersion"])
        .as_str()
        .unwrap_or("")
        .to_string();
    for attempt in 1..=WRITE_ATTEMPTS {
        let q = if rv.is_empty() {
            String::new()
        } else {
            format!("?resourceVersion={rv}")
        };
        match client
            .send(reqwest::Method::DELETE, &format!("{path}{q}"), None)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if http_status(&e) == Some(404) => return Ok(()),
            // The agent updated its status meanwhile: check it is the same pod.
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                let Some(cur) = pod_still_on(client, node, pod).await? else {
                    return Ok(());
                };
                rv = s(&cur, &["metadata", "resourceVersion"])
                    .as_str()
                    .unwrap_or("")
                    .to_string();
            }
            Err(e) => return Err(e).with_context(|| format!("deleting pod {ns}/{name}")),
        }
    }
    bail!("pod {ns}/{name} keeps changing; could not delete it")
}

/// How many of a deployment's pods are available. The lower of its status
/// (which lags behind an eviction until the controller notices) and a count
/// of its ready pods (which ignores minReadySeconds), so neither lag lets
/// an eviction go below what the strategy allows.
pub(super) async fn available_now(client: &Client, ns: &str, d: &Value) -> anyhow::Result<i64> {
    let from_status = s(d, &["status", "availableReplicas"]).as_i64().unwrap_or(0);
    let uid = s(d, &["metadata", "uid"]).as_str().unwrap_or("");
    let sets = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::ReplicaSet, ns, None),
            None,
        )
        .await?;
    let set_uids: std::collections::HashSet<&str> = s(&sets, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            controller_ref(rs)
                .and_then(|r| r.get("uid"))
                .and_then(Value::as_str)
                == Some(uid)
        })
        .filter_map(|rs| s(rs, &["metadata", "uid"]).as_str())
        .collect();
    let pods = client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Pod, ns, None),
            None,
        )
        .await?;
    let ready = s(&pods, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            controller_ref(p)
                .and_then(|r| r.get("uid"))
                .and_then(Value::as_str)
                .is_some_and(|u| set_uids.contains(u))
        })
        .filter(|p| !is_terminal_pod(p) && is_ready_pod(p))
        .count();
    Ok(from_status.min(i64::try_from(ready).unwrap_or(i64::MAX)))
}

/// Evicts one deployment's pods from the node, one at a time, each only
/// while the deployment stays within its maxUnavailable and after the
/// previous one's replacement is available. Returns the pods it did not
/// get to before the deadline.
pub(super) async fn evict_deployment_pods(
    client: &Client,
    node: &str,
    ns: &str,
    deployment: &str,
    pods: &[Value],
    deadline: tokio::time::Instant,
) -> anyhow::Result<Vec<String>> {
    let dpath = object_path(Kind::Deployment, ns, Some(deployment));
    for (i, pod) in pods.iter().enumerate() {
        let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
        outln!("evicting pod {}", pod_id(pod));
        let mut told = false;
        let before = loop {
            // Reread: the pod may have turned ready, or gone, while we waited.
            let Some(pod) = pod_still_on(client, node, pod).await? else {
                break None;
            };
            let d = match client.send(reqwest::Method::GET, &dpath, None).await {
                Ok(d) => d,
                // Nobody will replace the pod, so there is nothing to keep available.
                Err(e) if http_status(&e) == Some(404) => {
                    delete_pod(client, node, &pod).await?;
                    break None;
                }
                Err(e) => return Err(e),
            };
            let available = available_now(client, ns, &d).await?;
            let want = s(&d, &["spec", "replicas"]).as_i64().unwrap_or(1);
            // A maxUnavailable that rounds down to 0 (25% of fewer than 4
            // replicas) would block a drain forever: nothing adds a pod
            // before one leaves. Allow one, as kubectl's drain does without
            // a disruption budget.
            let floor = want - max_unavailable(&d).max(1);
            // A pod that is not ready takes nothing away by leaving.
            if !is_ready_pod(&pod) || available > floor {
                delete_pod(client, node, &pod).await?;
                // A scale-down meanwhile must not leave us waiting for pods
                // that will never come.
                break Some(available.min(want));
            }
            // Said once: a drain that waits silently looks hung.
            if !told {
                eprintln!(
                    "waiting to evict pod {}: deployment {deployment:?} has {available} available replicas and must keep {floor} (replicas {want} minus maxUnavailable {})",
                    pod_id(&pod),
                    want - floor
                );
                told = true;
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok(pods[i..].iter().map(pod_id).collect());
            }
            tokio::time::sleep(POLL).await;
        };
        outln!("pod/{name} evicted");
        let (Some(before), true) = (before, i + 1 < pods.len()) else {
            continue;
        };
        loop {
            let d = match client.send(reqwest::Method::GET, &dpath, None).await {
                Ok(d) => d,
                Err(e) if http_status(&e) == Some(404) => break,
                Err(e) => return Err(e),
            };
            let want = s(&d, &["spec", "replicas"]).as_i64().unwrap_or(1);
            if available_now(client, ns, &d).await? >= before.min(want) {
                break;
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok(pods[i + 1..].iter().map(pod_id).collect());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(Vec::new())
}

/// The pod as stored now, if it is still the same pod on this node (a
/// replacement may reuse its name elsewhere).
pub(super) async fn pod_still_on(
    client: &Client,
    node: &str,
    pod: &Value,
) -> anyhow::Result<Option<Value>> {
    let ns = s(pod, &["metadata", "namespace"])
        .as_str()
        .unwrap_or("default");
    let name = s(pod, &["metadata", "name"]).as_str().unwrap_or("");
    let cur = match client
        .send(
            reqwest::Method::GET,
            &object_path(Kind::Pod, ns, Some(name)),
            None,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if http_status(&e) == Some(404) => return Ok(None),
        Err(e) => return Err(e),
    };
    let same = s(&cur, &["metadata", "uid"]) == s(pod, &["metadata", "uid"])
        && s(&cur, &["spec", "nodeName"]).as_str() == Some(node);
    Ok(same.then_some(cur))
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

    let mut plain: Vec<Value> = Vec::new();
    let mut unmanaged: Vec<Value> = Vec::new();
    let mut by_deployment: std::collections::BTreeMap<(String, String), Vec<Value>> =
        std::collections::BTreeMap::new();
    for p in mine {
        if is_terminal_pod(&p) {
            plain.push(p);
            continue;
        }
        let Some(owner) = controller_ref(&p) else {
            unmanaged.push(p);
            continue;
        };
        let ns = s(&p, &["metadata", "namespace"])
            .as_str()
            .unwrap_or("default")
            .to_string();
        let mut deployment = None;
        if owner.get("kind").and_then(Value::as_str) == Some("ReplicaSet") {
            let rs_name = owner.get("name").and_then(Value::as_str).unwrap_or("");
            match client
                .send(
                    reqwest::Method::GET,
                    &object_path(Kind::ReplicaSet, &ns, Some(rs_name)),
                    None,
                )
                .await
            {
                Ok(rs) => {
                    deployment = controller_ref(&rs)
                        .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Deployment"))
                        .and_then(|r| r.get("name").and_then(Value::as_str))
                        .map(str::to_string);
                }
                Err(e) if http_status(&e) == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        match deployment {
            Some(d) => by_deployment.entry((ns, d)).or_default().push(p),
            None => plain.push(p),
        }
    }

    if !unmanaged.is_empty() {
        let ids: Vec<String> = unmanaged.iter().map(pod_id).collect();
        if !force {
            bail!(
                "cannot delete Pods not managed by a controller (use --force to override): {}",
                ids.join(", ")
            );
        }
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            ids.join(", ")
        );
        plain.extend(unmanaged);
    }

    for p in &plain {
        outln!("evicting pod {}", pod_id(p));
        delete_pod(client, node, p).await?;
        outln!(
            "pod/{} evicted",
            s(p, &["metadata", "name"]).as_str().unwrap_or("")
        );
    }

    // Deployments are independent of each other: evict from all at once.
    let results = futures::future::join_all(
        by_deployment
            .iter()
            .map(|((ns, d), pods)| evict_deployment_pods(client, node, ns, d, pods, deadline)),
    )
    .await;
    let mut left = Vec::new();
    for r in results {
        left.extend(r?);
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
        let alloc = s(n, &["status", "allocatable"]);
        let (cpu, mem, count) = used.get(name).copied().unwrap_or_default();
        let alloc_cpu = s(alloc, &["cpu"])
            .as_str()
            .and_then(|v| parse_cpu_millis(v).ok())
            .map(|m| format!("{m}m"))
            .unwrap_or_else(|| "?".into());
        let alloc_mem = s(alloc, &["memory"])
            .as_str()
            .and_then(|v| parse_memory_bytes(v).ok())
            .map(human_memory)
            .unwrap_or_else(|| "?".into());
        rows.push(vec![
            name.to_string(),
            status,
            role.to_string(),
            format!("{cpu}m/{alloc_cpu}"),
            format!("{}/{alloc_mem}", human_memory(mem)),
            format!("{count}/{}", s(alloc, &["pods"]).as_str().unwrap_or("?")),
            s(n, &["status", "nodeInfo", "runtime"])
                .as_str()
                .unwrap_or("?")
                .to_string(),
            age(n),
        ]);
    }
    out!("{}", render_rows(&rows));
    Ok(())
}
