//! The PodDisruptionBudget kind (policy/v1): how many of a set of pods must
//! stay healthy while they are evicted (by `shoal drain`, kubectl, or any
//! client of the eviction endpoint).

use serde::{Deserialize, Serialize};

use super::{Body, IntOrString, LabelSelector};
use crate::resource::{Kind, Object};

/// Body of a `PodDisruptionBudget`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetBody {
    #[serde(default)]
    pub spec: PodDisruptionBudgetSpec,
}

impl PodDisruptionBudgetBody {
    /// Whether this body's object `budget` covers `pod`: same namespace and
    /// its selector matches. An absent selector covers nothing, an empty
    /// one everything (policy/v1).
    pub fn covers(&self, budget: &Object, pod: &Object) -> bool {
        budget.metadata.namespace == pod.metadata.namespace
            && self
                .spec
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&pod.metadata.labels))
    }
}

impl Body for PodDisruptionBudgetBody {
    const KIND: Kind = Kind::PodDisruptionBudget;
}

/// `PodDisruptionBudget.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetSpec {
    /// Pods that must stay healthy: a count or a percentage of the expected pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods that may be unhealthy at once: a count or a percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// The pods it covers, in its namespace. Absent selects none and an empty
    /// one selects every pod, as in policy/v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Whether a pod that is not ready may always be evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<UnhealthyPodEvictionPolicy>,
}

/// `spec.unhealthyPodEvictionPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnhealthyPodEvictionPolicy {
    /// A pod that is not ready may go only while the budget's healthy pods
    /// are at least what it asks (Kubernetes' default).
    #[default]
    IfHealthyBudget,
    /// A pod that is not ready may always go: it takes nothing away.
    AlwaysAllow,
}
