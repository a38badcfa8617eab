//! Where a pod may run relative to other pods: pod affinity and
//! anti-affinity (required and preferred terms over a topology key) and
//! topology spread constraints, in Kubernetes' shapes. The scheduler's
//! placer applies them (`scheduler::placer::interpod`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LabelSelector, LabelSelectorRequirement, SelectorOperator};

/// `spec.affinity.podAffinity` or `podAntiAffinity`: the same shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinity {
    /// Every term must hold on the chosen node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<PodAffinityTerm>,
    /// Terms that hold add (affinity) or take away (anti-affinity) their weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<WeightedPodAffinityTerm>,
}

/// Pods (by label selector, in some namespaces) and the topology domain in
/// which they count: the node's value of `topologyKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinityTerm {
    /// Absent matches no pod, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// The namespaces searched; with no `namespaceSelector`, empty means the pod's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only the empty selector (every namespace) is honoured; validation refuses others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
    /// Keys of the pod's own labels whose values are added to the selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    /// Keys of the pod's own labels whose values the selected pods must not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatch_label_keys: Vec<String>,
}

/// A preferred term (weight 1..=100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedPodAffinityTerm {
    pub weight: i32,
    pub pod_affinity_term: PodAffinityTerm,
}

/// `spec.topologySpreadConstraints[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpreadConstraint {
    /// The most the matching pods of two domains may differ by.
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: WhenUnsatisfiable,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// With fewer eligible domains than this, the global minimum counts as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i32>,
    /// Whether the pod's node selector and affinity limit the domains (Honor, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_policy: Option<InclusionPolicy>,
    /// Whether nodes with taints the pod does not tolerate count (Ignore, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints_policy: Option<InclusionPolicy>,
    /// Keys of the pod's own labels whose values are added to the selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
}

/// What a spread constraint does when it cannot be met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhenUnsatisfiable {
    /// A filter: no node that would break the skew.
    #[default]
    DoNotSchedule,
    /// A preference: nodes that keep the skew small score higher.
    ScheduleAnyway,
}

/// `nodeAffinityPolicy` / `nodeTaintsPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InclusionPolicy {
    Honor,
    Ignore,
}

/// A label selector with a pod's `matchLabelKeys` (and `mismatchLabelKeys`)
/// folded in from its own labels, as Kubernetes' API server does; a key the
/// pod does not carry adds nothing. `None` stays `None` (matches nothing).
pub fn selector_with_own_labels(
    selector: Option<&LabelSelector>,
    match_keys: &[String],
    mismatch_keys: &[String],
    own: &BTreeMap<String, String>,
) -> Option<LabelSelector> {
    let mut s = selector?.clone();
    for k in match_keys {
        if let Some(v) = own.get(k) {
            s.match_expressions.push(LabelSelectorRequirement {
                key: k.clone(),
                operator: SelectorOperator::In,
                values: vec![v.clone()],
            });
        }
    }
    for k in mismatch_keys {
        if let Some(v) = own.get(k) {
            s.match_expressions.push(LabelSelectorRequirement {
                key: k.clone(),
                operator: SelectorOperator::NotIn,
                values: vec![v.clone()],
            });
        }
    }
    Some(s)
}
