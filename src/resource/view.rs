//! Read-only views of stored objects for the components that decide on
//! them (controllers, discovery), so each reads a pod's status one way.

use serde_json::Value;

use super::status::{Condition, PodReadiness};
use super::time::{now_secs, parse_rfc3339};
use super::{Object, ObjectKey};

/// What the controllers need to know about a pod.
#[derive(Debug, Clone)]
pub struct PodView {
    /// Its key.
    pub key: ObjectKey,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its resourceVersion, for preconditions.
    pub resource_version: u64,
    /// The uid of its controlling owner, if any.
    pub owner: Option<String>,
    /// The node it is bound to.
    pub node: Option<String>,
    /// Succeeded or Failed.
    pub terminal: bool,
    /// Its Ready condition is True.
    pub ready: bool,
    /// When Ready last became True (seconds since the epoch).
    pub ready_since: Option<u64>,
    /// creationTimestamp, for ordering.
    pub created: String,
}

impl PodView {
    /// Reads a pod object.
    pub fn of(o: &Object) -> Option<PodView> {
        let key = o.key()?;
        let status: PodReadiness = o.status_or_default();
        let ready_cond = status.condition("Ready");
        let ready = ready_cond.is_some_and(Condition::is_true);
        let ready_since = ready_cond
            .and_then(|c| c.last_transition_time.as_deref())
            .and_then(parse_rfc3339);
        Some(PodView {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            key,
            resource_version: o.resource_version(),
            owner: o.metadata.controller_ref().map(|r| r.uid.clone()),
            node: o
                .body
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str)
                .map(str::to_string),
            terminal: status.is_terminal(),
            ready,
            ready_since,
            created: o.metadata.creation_timestamp.clone().unwrap_or_default(),
        })
    }

    /// Ready for at least `min_ready` seconds.
    pub fn available(&self, min_ready: u64) -> bool {
        self.ready
            && (min_ready == 0
                || self
                    .ready_since
                    .is_some_and(|t| now_secs().saturating_sub(t) >= min_ready))
    }
}
