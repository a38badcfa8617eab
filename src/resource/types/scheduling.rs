//! Where a pod may run beyond `nodeSelector`: node affinity (required and
//! preferred terms on node labels and the node's name) and tolerations of
//! node taints; the matching rules as Kubernetes applies them, shared by
//! the scheduler and the DaemonSet controller.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `spec.affinity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<super::PodAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<super::PodAffinity>,
}

/// Rules on the node a pod runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// The node must match one of its terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    /// Nodes matching a term score its weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

/// Terms ORed together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Requirements ANDed together; an empty term matches nothing, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// On node fields: only `metadata.name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// A weighted term (weight 1..=100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub preference: NodeSelectorTerm,
}

/// One requirement on a label (or field) of the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: NodeSelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How a requirement compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeSelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl NodeSelectorRequirement {
    /// Whether a node value (`None`: the label is absent) satisfies it.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        match self.operator {
            NodeSelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|w| w == v)),
            NodeSelectorOperator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|w| w == v))
            }
            NodeSelectorOperator::Exists => value.is_some(),
            NodeSelectorOperator::DoesNotExist => value.is_none(),
            NodeSelectorOperator::Gt | NodeSelectorOperator::Lt => {
                let (Some(have), Some(bound)) = (
                    value.and_then(int),
                    self.values.first().and_then(|s| int(s)),
                ) else {
                    return false;
                };
                if self.operator == NodeSelectorOperator::Gt {
                    have > bound
                } else {
                    have < bound
                }
            }
        }
    }
}

impl NodeSelectorTerm {
    /// Whether the node (by name and labels) matches every requirement; an
    /// empty term matches no node.
    pub fn matches(&self, node: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self
                .match_fields
                .iter()
                .all(|r| r.key == "metadata.name" && r.matches(Some(node)))
    }
}

impl NodeAffinity {
    /// Whether the node satisfies the required terms (any of them), or there are none.
    pub fn required_matches(&self, node: &str, labels: &BTreeMap<String, String>) -> bool {
        self.required_during_scheduling_ignored_during_execution
            .as_ref()
            .is_none_or(|s| {
                s.node_selector_terms
                    .iter()
                    .any(|t| t.matches(node, labels))
            })
    }

    /// The share, in [0, 1], of the preferred terms' weight this node earns.
    pub fn preference(&self, node: &str, labels: &BTreeMap<String, String>) -> f64 {
        let terms = &self.preferred_during_scheduling_ignored_during_execution;
        let total: i64 = terms.iter().map(|t| i64::from(t.weight.max(0))).sum();
        if total == 0 {
            return 0.0;
        }
        let earned: i64 = terms
            .iter()
            .filter(|t| t.preference.matches(node, labels))
            .map(|t| i64::from(t.weight.max(0)))
            .sum();
        earned as f64 / total as f64
    }
}

/// A node's taint: pods that do not tolerate it are kept off (NoSchedule),
/// steered away from (PreferNoSchedule) or evicted (NoExecute).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
    /// When a NoExecute taint was added (RFC 3339): tolerationSeconds count from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    #[default]
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A pod's tolerance of taints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// Empty with `Exists`: every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Every effect when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For NoExecute: how long the pod stays after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration matches a taint's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

impl Toleration {
    /// Whether this toleration covers the taint (key, value and effect), as Kubernetes matches them.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != t.effect) {
            return false;
        }
        let key = self.key.as_deref().unwrap_or("");
        match self.operator.unwrap_or(TolerationOperator::Equal) {
            TolerationOperator::Exists => key.is_empty() || key == t.key,
            TolerationOperator::Equal => {
                key == t.key
                    && self.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("")
            }
        }
    }
}

/// The first of `taints` with one of `effects` that no toleration covers.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[TaintEffect],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect))
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: NodeSelectorOperator, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn operators_match_as_kubernetes() {
        use NodeSelectorOperator::*;
        let cases = [
            (req("k", In, &["a", "b"]), Some("a"), true),
            (req("k", In, &["a"]), None, false),
            (req("k", NotIn, &["a"]), Some("a"), false),
            (req("k", NotIn, &["a"]), None, true),
            (req("k", Exists, &[]), Some(""), true),
            (req("k", DoesNotExist, &[]), Some("x"), false),
            (req("k", Gt, &["4"]), Some("8"), true),
            (req("k", Gt, &["4"]), Some("4"), false),
            (req("k", Lt, &["4"]), Some("x"), false),
            (req("k", Lt, &["4"]), None, false),
        ];
        for (r, v, want) in cases {
            assert_eq!(r.matches(v), want, "{r:?} on {v:?}");
        }
    }

    #[test]
    fn terms_or_requirements_and_fields() {
        let labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let zone_a = NodeSelectorTerm {
            match_expressions: vec![req("zone", NodeSelectorOperator::In, &["a"])],
            ..Default::default()
        };
        let named = NodeSelectorTerm {
            match_fields: vec![req("metadata.name", NodeSelectorOperator::In, &["n2"])],
            ..Default::default()
        };
        assert!(zone_a.matches("n1", &labels));
        assert!(!named.matches("n1", &labels));
        assert!(named.matches("n2", &BTreeMap::new()));
        assert!(!NodeSelectorTerm::default().matches("n1", &labels));
        let aff = NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![named.clone(), zone_a.clone()],
            }),
            preferred_during_scheduling_ignored_during_execution: vec![
                PreferredSchedulingTerm {
                    weight: 30,
                    preference: zone_a,
                },
                PreferredSchedulingTerm {
                    weight: 10,
                    preference: named,
                },
            ],
        };
        assert!(aff.required_matches("n1", &labels));
        assert!(aff.required_matches("n2", &BTreeMap::new()));
        assert!(!aff.required_matches("n3", &BTreeMap::new()));
        assert_eq!(aff.preference("n1", &labels), 0.75);
        assert_eq!(aff.preference("n3", &BTreeMap::new()), 0.0);
    }

    #[test]
    fn tolerations_cover_taints_as_kubernetes() {
        let taint = |key: &str, value: Option<&str>, effect| Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect,
            time_added: None,
        };
        let gpu = taint("gpu", Some("yes"), TaintEffect::NoSchedule);
        let equal = Toleration {
            key: Some("gpu".into()),
            value: Some("yes".into()),
            ..Default::default()
        };
        let exists = Toleration {
            key: Some("gpu".into()),
            operator: Some(TolerationOperator::Exists),
            ..Default::default()
        };
        let everything = Toleration {
            operator: Some(TolerationOperator::Exists),
            ..Default::default()
        };
        let wrong_effect = Toleration {
            effect: Some(TaintEffect::NoExecute),
            ..exists.clone()
        };
        let wrong_value = Toleration {
            value: Some("no".into()),
            ..equal.clone()
        };
        assert!(equal.tolerates(&gpu));
        assert!(exists.tolerates(&gpu));
        assert!(everything.tolerates(&gpu));
        assert!(!wrong_effect.tolerates(&gpu));
        assert!(!wrong_value.tolerates(&gpu));
        let taints = [
            taint("soft", None, TaintEffect::PreferNoSchedule),
            gpu.clone(),
        ];
        let hard = [TaintEffect::NoSchedule, TaintEffect::NoExecute];
        assert_eq!(untolerated(&taints, &[], &hard), Some(&gpu));
        assert_eq!(untolerated(&taints, &[exists], &hard), None);
    }
}
