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
        if lost.is_empty() {
            return next;
        }
        let mut ops = Vec::new();
        for p in pods {
            let spec_node = p
                .body
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str);
            let Some(node) = spec_node.filter(|n| lost.contains(*n)) else {
                continue;
            };
            let mut status: PodStatus = p.status_or_default();
            if status.is_terminal() {
                continue;
            }
            let Some(key) = p.key() else { continue };
            status.phase = Some(PodPhase::Failed);
            status.reason = Some("NodeLost".into());
            status.message = Some(format!(
                "node {node} has been unreachable for more than {grace:?}"
            ));
            status.conditions = vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: Some("NodeLost".into()),
                last_transition_time: Some(crate::resource::time::now_rfc3339()),
                ..Condition::default()
            }];
            let Ok(bytes) = serde_json::to_vec(&status) else {
                continue;
            };
            ops.push(Op::SetStatus {
                key,
                uid: p.metadata.uid.clone(),
                status: bytes,
            });
        }
        if ops.is_empty() {
            return next;
        }
        let n = ops.len();
        info!(nodes = ?lost, pods = n, "nodes lost: marking their pods Failed (NodeLost)");
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
