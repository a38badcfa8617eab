//! The PriorityClass kind (scheduling.k8s.io/v1): a named priority that
//! pods take by `priorityClassName`, resolved into `spec.priority` when a
//! pod is created (`crate::admission`), and what the scheduler orders and
//! preempts by.

use serde::{Deserialize, Serialize};

use super::Body;
use crate::resource::Kind;

/// The highest value a user's class may have; above it are the built-in
/// `system-` classes, as in Kubernetes.
pub const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

/// The built-in classes every cluster has (name, value), as Kubernetes
/// creates them: critical add-ons and node-critical pods.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i32); 2] = [
    ("system-cluster-critical", 2_000_000_000),
    ("system-node-critical", 2_000_001_000),
];

/// Body of a `PriorityClass`: its fields sit at the top level, beside
/// `metadata`, with no `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityClassBody {
    pub value: i32,
    /// The class of pods that name none (at most one class has it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<PreemptionPolicy>,
}

impl Body for PriorityClassBody {
    const KIND: Kind = Kind::PriorityClass;
}

/// Whether a pod may evict lower-priority pods to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreemptionPolicy {
    #[default]
    PreemptLowerPriority,
    /// Scheduled ahead of lower priorities, but never evicts anyone.
    Never,
}
