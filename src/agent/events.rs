//! Events: what happened to a pod (started, killed, probe failed, back-off,
//! OOM), stored as `Event` objects through Raft like everything else.
//!
//! History is bounded two ways: a repeated event bumps the `count` of the
//! one already stored instead of adding an object (as Kubernetes does), and
//! each agent periodically deletes its own events beyond the newest
//! `agent.events_per_pod` per pod, those of pods that are gone, and any
//! older than an hour.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::debug;

use super::Ctx;
use crate::resource::time::now_rfc3339;
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};
use crate::store::{Command, Op, Precondition};

/// How long an event is kept at most.
const EVENT_TTL: Duration = Duration::from_secs(3600);

/// `Normal` or `Warning`, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    kind: EventKind,
    reason: String,
    message: String,
    /// The container it concerns, when any.
    container: String,
    /// A runtime container id it was emitted for, to emit once per container.
    pub about: Option<String>,
}

impl PendingEvent {
    /// An event with a reason (`Started`, `BackOff`, ...) and a message.
    pub fn new(kind: EventKind, reason: &str, message: String, container: &str) -> Self {
        PendingEvent {
            kind,
            reason: reason.to_string(),
            message,
            container: container.to_string(),
            about: None,
        }
    }

    /// Its reason (`Started`, `BackOff`, ...).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[derive(Debug, Clone)]
struct Written {
    name: String,
    reason: String,
    message: String,
    count: u64,
    first: String,
    about: Option<String>,
}

/// The events an agent wrote for one pod, newest last.
#[derive(Debug, Default)]
pub struct Recent {
    written: Vec<Written>,
}

impl Recent {
    /// Whether an event with this reason was written about this container id.
    pub fn seen_for(&self, container_id: &str, reason: &str) -> bool {
        self.written
            .iter()
            .any(|w| w.reason == reason && w.about.as_deref() == Some(container_id))
    }
}

/// The writes that record events about a pod (a repeat of a recent one
/// bumps its count); the caller sends them with the pod's status, in one
/// Raft command.
pub fn ops(ctx: &Ctx, pod: &Object, recent: &mut Recent, events: Vec<PendingEvent>) -> Vec<Op> {
    let Some(pod_key) = pod.key() else {
        return Vec::new();
    };
    let now = now_rfc3339();
    let mut ops = Vec::new();
    let mut merged: Vec<PendingEvent> = Vec::new();
    for e in events {
        if !merged
            .iter()
            .any(|m| m.reason == e.reason && m.message == e.message)
        {
            merged.push(e);
        }
    }
    for e in merged {
        let existing = recent
            .written
            .iter_mut()
            .find(|w| w.reason == e.reason && w.message == e.message);
        let (name, count, first) = match existing {
            Some(w) => {
                w.count += 1;
                (w.name.clone(), w.count, w.first.clone())
            }
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let name = format!(
                    "{}.{:x}",
                    pod_key.name,
                    nanos + recent.written.len() as u128
                );
                recent.written.push(Written {
                    name: name.clone(),
                    reason: e.reason.clone(),
                    message: e.message.clone(),
                    count: 1,
                    first: now.clone(),
                    about: e.about.clone(),
                });
                (name, 1, now.clone())
            }
        };
        let mut involved = Map::new();
        involved.insert("kind".into(), json!("Pod"));
        involved.insert("namespace".into(), json!(pod_key.namespace));
        involved.insert("name".into(), json!(pod_key.name));
        involved.insert("uid".into(), json!(pod.metadata.uid));
        if !e.container.is_empty() {
            involved.insert(
                "fieldPath".into(),
                json!(format!("spec.containers{{{}}}", e.container)),
            );
        }
        let body = json!({
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "type": match e.kind { EventKind::Normal => "Normal", EventKind::Warning => "Warning" },
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": now,
            "source": {"component": "shoal-agent", "host": ctx.node},
        });
        let Value::Object(body) = body else { continue };
        let obj = Object {
            api_version: "v1".into(),
            kind: "Event".into(),
            metadata: ObjectMeta {
                name: name.clone(),
                namespace: Some(pod_key.namespace.clone()),
                creation_timestamp: Some(first.clone()),
                ..Default::default()
            },
            body,
        };
        let Ok(bytes) = serde_json::to_vec(&obj) else {
            continue;
        };
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::Event, &pod_key.namespace, &name),
            object: bytes,
            precondition: Precondition::None,
        });
    }
    let max = ctx.cfg.events_per_pod.max(1);
    if recent.written.len() > max {
        let drop = recent.written.len() - max;
        recent.written.drain(..drop);
    }
    ops
}

/// Deletes this node's events beyond the newest `events_per_pod` per pod,
/// those about pods that no longer exist, and those older than an hour.
pub async fn sweep(ctx: &Ctx) {
    let Ok((events, _)) = ctx.store.list(Kind::Event, None) else {
        return;
    };
    let Ok((pods, _)) = ctx.store.list_shared(Kind::Pod, None) else {
        return;
    };
    let live: std::collections::HashSet<String> =
        pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    let cutoff = SystemTime::now()
        .checked_sub(EVENT_TTL)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| crate::resource::time::rfc3339(d.as_secs()))
        .unwrap_or_default();
    let mut by_pod: HashMap<String, Vec<(String, ObjectKey)>> = HashMap::new();
    let mut doomed = Vec::new();
    for e in events {
        let Some(key) = e.key() else { continue };
        let field = |path: &[&str]| -> String {
            let mut v = e.body.get(path[0]);
            for p in &path[1..] {
                v = v.and_then(|x| x.get(*p));
            }
            v.and_then(Value::as_str).unwrap_or("").to_string()
        };
        if field(&["source", "host"]) != ctx.node {
            continue;
        }
        let uid = field(&["involvedObject", "uid"]);
        let last = field(&["lastTimestamp"]);
        // RFC 3339 in UTC with a fixed format sorts as text.
        if !live.contains(&uid) || last < cutoff {
            doomed.push(key);
        } else {
            by_pod.entry(uid).or_default().push((last, key));
        }
    }
    for (_, mut list) in by_pod {
        let max = ctx.cfg.events_per_pod.max(1);
        if list.len() > max {
            list.sort();
            let extra = list.len() - max;
            doomed.extend(list.into_iter().take(extra).map(|(_, k)| k));
        }
    }
    // Small commands, so one event deleted meanwhile fails only its own batch.
    for chunk in doomed.chunks(64) {
        let ops = chunk
            .iter()
            .map(|k| Op::Delete {
                key: k.clone(),
                precondition: Precondition::None,
            })
            .collect();
        if let Err(e) = ctx.store.write(Command { ops }).await {
            debug!("event sweep: {e}");
        }
    }
}
