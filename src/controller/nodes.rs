//! Node lifecycle: a node that gossip reports down (or left, or never
//! heard of) for longer than `scheduler.pod_eviction_grace_ms` loses its
//! pods: each one not yet finished is marked Failed with reason NodeLost, so
//! its ReplicaSet replaces it elsewhere. When the node comes back, its agent
//! stops the containers of those pods, and removes them once the pods are
//! deleted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use super::SchedulerConfig;
use crate::membership::NodeHealth;
use crate::resource::Object;
use crate::resource::status::{Condition, PodPhase, PodStatus};
use crate::resource::types::{Taint, TaintEffect, Toleration};
use crate::store::{Command, Op, Store};

/// Remembers since when each node has been seen down by this leader.
#[derive(Default)]
pub struct Lifecycle {
    down_since: HashMap<String, Instant>,
}

impl Lifecycle {
    /// Marks the pods of nodes down past the grace as Failed / NodeLost;
    /// returns how long until the next node's grace ends, if one is pending.
    pub async fn reconcile(
        &mut self,
        store: &Store,
        nodes: &[Object],
        pods: &[Object],
        health: &HashMap<String, NodeHealth>,
        cfg: &SchedulerConfig,
    ) -> Option<Duration> {
        let grace = Duration::from_millis(cfg.pod_eviction_grace_ms);
        let mut lost = HashSet::new();
        let mut next: Option<Duration> = None;
        let now = super::now_millis();
        for n in nodes {
            let name = &n.metadata.name;
            let down_for = match health.get(name) {
                Some(NodeHealth::Up) => {
                    self.down_since.remove(name);
                    continue;
                }
                // Gossip's own timestamp: the grace runs from when the node
                // was declared down, not from when this leader looked.
                Some(NodeHealth::DownSince(since)) => {
                    Duration::from_millis(now.saturating_sub(*since))
                }
                None => self
                    .down_since
                    .entry(name.clone())
                    .or_insert_with(Instant::now)
                    .elapsed(),
            };
            if down_for >= grace {
                lost.insert(name.clone());
            } else {
                let left = grace - down_for;
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        self.down_since
            .retain(|n, _| nodes.iter().any(|o| &o.metadata.name == n));
        let (evicted, until_eviction) =
            taint_evictions(nodes, pods, crate::resource::time::now_secs());
        if let Some(d) = until_eviction {
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        let mut ops: Vec<Op> = evicted
            .iter()
            .filter_map(|(i, why)| fail_pod(&pods[*i], "DeletionByTaintManager", why.clone()))
            .collect();
        if !ops.is_empty() {
            info!(
                pods = ops.len(),
                "evicting pods for NoExecute taints they do not tolerate"
            );
        }
        for p in pods {
            let spec_node = p
                .body
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str);
            let Some(node) = spec_node.filter(|n| lost.contains(*n)) else {
                continue;
            };
            if evicted.iter().any(|(i, _)| std::ptr::eq(&pods[*i], p)) {
                continue;
            }
            let why = format!("node {node} has been unreachable for more than {grace:?}");
            ops.extend(fail_pod(p, "NodeLost", why));
        }
        if ops.is_empty() {
            return next;
        }
        let n = ops.len();
        if !lost.is_empty() {
            info!(nodes = ?lost, "nodes lost: marking their pods Failed (NodeLost)");
        }
        for chunk in ops.chunks(500) {
            if let Err(e) = store
                .write(Command {
                    ops: chunk.to_vec(),
                })
                .await
            {
                warn!("marking pods of lost nodes: {e}");
            }
        }
        ::metrics::counter!(crate::controller::metrics::PODS_EVICTED_TOTAL).increment(n as u64);
        next
    }
}

/// The operation marking a running pod Failed for `reason`; `None` for a
/// pod already finished.
fn fail_pod(p: &Object, reason: &str, message: String) -> Option<Op> {
    let mut status: PodStatus = p.status_or_default();
    if status.is_terminal() {
        return None;
    }
    let key = p.key()?;
    status.phase = Some(PodPhase::Failed);
    status.reason = Some(reason.into());
    status.message = Some(message);
    status.conditions = vec![Condition {
        type_: "Ready".into(),
        status: "False".into(),
        reason: Some(reason.into()),
        last_transition_time: Some(crate::resource::time::now_rfc3339()),
        ..Condition::default()
    }];
    Some(Op::SetStatus {
        key,
        uid: p.metadata.uid.clone(),
        status: serde_json::to_vec(&status).ok()?,
    })
}

/// The running pods (by index, with why) that must leave their node for a
/// NoExecute taint they do not tolerate, or tolerate for `tolerationSeconds`
/// that have run out since the taint's `timeAdded` (a taint without one
/// counts as old); and how long until the next toleration runs out.
pub(super) fn taint_evictions(
    nodes: &[Object],
    pods: &[Object],
    now: u64,
) -> (Vec<(usize, String)>, Option<Duration>) {
    let mut tainted: HashMap<&str, Vec<Taint>> = HashMap::new();
    for n in nodes {
        let taints: Vec<Taint> = n
            .body
            .get("spec")
            .and_then(|s| s.get("taints"))
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        let hard: Vec<Taint> = taints
            .into_iter()
            .filter(|t| t.effect == TaintEffect::NoExecute)
            .collect();
        if !hard.is_empty() {
            tainted.insert(n.metadata.name.as_str(), hard);
        }
    }
    let mut out = Vec::new();
    let mut next: Option<Duration> = None;
    if tainted.is_empty() {
        return (out, next);
    }
    for (i, p) in pods.iter().enumerate() {
        let spec = p.body.get("spec");
        let Some(node) = spec.and_then(|s| s.get("nodeName")).and_then(Value::as_str) else {
            continue;
        };
        let Some(taints) = tainted.get(node) else {
            continue;
        };
        if PodStatus::is_terminal(&p.status_or_default()) {
            continue;
        }
        let tolerations: Vec<Toleration> = spec
            .and_then(|s| s.get("tolerations"))
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        for t in taints {
            let matching: Vec<&Toleration> =
                tolerations.iter().filter(|tol| tol.tolerates(t)).collect();
            let why = format!(
                "node {node} has the taint {}:NoExecute, which the pod does not tolerate",
                t.key
            );
            if matching.is_empty() {
                out.push((i, why));
                break;
            }
            // The longest of the matching tolerations holds; one without
            // seconds holds for good.
            if matching.iter().any(|tol| tol.toleration_seconds.is_none()) {
                continue;
            }
            let secs = matching
                .iter()
                .filter_map(|tol| tol.toleration_seconds)
                .max()
                .unwrap_or(0)
                .max(0) as u64;
            let added = t
                .time_added
                .as_deref()
                .and_then(crate::resource::time::parse_rfc3339)
                .unwrap_or(0);
            let deadline = added.saturating_add(secs);
            if now >= deadline {
                out.push((i, format!("{why} past its tolerationSeconds ({secs})")));
                break;
            }
            let left = Duration::from_secs(deadline - now);
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn no_execute_taints_evict_who_does_not_tolerate_them() {
        let node = |name: &str, taints: Value| {
            obj(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"taints": taints}}),
            )
        };
        let pod = |name: &str, node: &str, tolerations: Value| {
            obj(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "i"}]},
                "status": {"phase": "Running"}}),
            )
        };
        let nodes = [
            node(
                "n1",
                json!([{"key": "maint", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]),
            ),
            node("n2", json!([{"key": "soft", "effect": "NoSchedule"}])),
        ];
        let t0 = crate::resource::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let pods = [
            pod("plain", "n1", json!([])),
            pod(
                "forever",
                "n1",
                json!([{"key": "maint", "operator": "Exists"}]),
            ),
            pod(
                "for-60s",
                "n1",
                json!([{"key": "maint", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]),
            ),
            pod("elsewhere", "n2", json!([])),
        ];
        let (out, next) = taint_evictions(&nodes, &pods, t0 + 10);
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0]);
        assert!(out[0].1.contains("maint:NoExecute"), "{}", out[0].1);
        assert_eq!(next, Some(Duration::from_secs(50)));
        let (out, next) = taint_evictions(&nodes, &pods, t0 + 60);
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(next, None);
    }
}
