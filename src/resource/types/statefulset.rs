//! The StatefulSet kind (apps/v1): numbered pods with stable names, each
//! with its own claims made from `volumeClaimTemplates`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Body, IntOrString, LabelSelector, PersistentVolumeClaimSpec, PodTemplateSpec};
use crate::resource::Kind;

/// Body of a `StatefulSet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetBody {
    pub spec: StatefulSetSpec,
}

impl Body for StatefulSetBody {
    const KIND: Kind = Kind::StatefulSet;
}

/// `StatefulSetSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetSpec {
    /// 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    /// The headless Service that gives each pod its DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// `OrderedReady` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<PodManagementPolicy>,
    /// `RollingUpdate` with partition 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    /// One claim per template and ordinal, `<template>-<set>-<ordinal>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<ClaimTemplate>,
    /// Retain both ways when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy: Option<ClaimRetentionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
    /// Old ControllerRevisions kept; 10 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<u32>,
    /// The first ordinal; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinals: Option<StatefulSetOrdinals>,
}

/// `StatefulSetOrdinals`: pods are numbered `start..start+replicas`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetOrdinals {
    #[serde(default)]
    pub start: u32,
}

/// Whether a StatefulSet waits for each pod before the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodManagementPolicy {
    /// Create in ordinal order, each once the ones below are Ready; remove
    /// from the highest, one at a time.
    #[default]
    OrderedReady,
    /// Create and remove without waiting.
    Parallel,
}

/// How a StatefulSet replaces its pods when the template changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetUpdateStrategy {
    /// `RollingUpdate` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<StatefulSetStrategyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStatefulSet>,
}

/// `RollingUpdate` or `OnDelete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatefulSetStrategyType {
    /// Replace pods from the highest ordinal down to `partition`.
    #[default]
    RollingUpdate,
    /// A pod gets the new template only when the user deletes it.
    OnDelete,
}

/// The reach and pace of a StatefulSet's rolling update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateStatefulSet {
    /// Ordinals below this keep the current revision; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Pods updated at once that may be unavailable; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// One of `volumeClaimTemplates`: a claim's metadata and spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimTemplate {
    pub metadata: ClaimTemplateMetadata,
    pub spec: PersistentVolumeClaimSpec,
}

/// The `metadata` of a claim template: its name (the pod volume it fills)
/// and what each claim is labelled and annotated with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimTemplateMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Accepted because generated manifests carry `creationTimestamp: null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// What happens to the claims when the set is deleted or scaled down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRetentionPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<ClaimRetention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_scaled: Option<ClaimRetention>,
}

/// Keep or delete a claim whose pod is gone for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimRetention {
    /// The claim and its data stay.
    #[default]
    Retain,
    /// The claim is deleted (its volume follows its reclaim policy).
    Delete,
}

impl StatefulSetSpec {
    /// `replicas`, 1 by default.
    pub fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }

    /// The ordinals the set's pods have: `start..start+replicas`.
    pub fn ordinal_range(&self) -> std::ops::Range<u32> {
        let start = self.ordinals.map(|o| o.start).unwrap_or(0);
        start..start.saturating_add(self.replicas())
    }

    /// The pod management policy, `OrderedReady` by default.
    pub fn policy(&self) -> PodManagementPolicy {
        self.pod_management_policy.unwrap_or_default()
    }

    /// The update strategy, `RollingUpdate` by default.
    pub fn strategy(&self) -> StatefulSetStrategyType {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.strategy_type)
            .unwrap_or_default()
    }

    /// The rolling update's partition, 0 by default.
    pub fn partition(&self) -> u32 {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
    }

    /// maxUnavailable in pods out of `replicas`, at least 1 (percentages
    /// round down, as Kubernetes resolves this one).
    pub fn max_unavailable(&self) -> u32 {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.clone())
            .and_then(|v| v.scaled_value(self.replicas(), false))
            .unwrap_or(1)
            .max(1)
    }

    /// The policy for claims of a deleted set and of scaled-away ordinals.
    pub fn retention(&self) -> (ClaimRetention, ClaimRetention) {
        let p = self
            .persistent_volume_claim_retention_policy
            .clone()
            .unwrap_or_default();
        (
            p.when_deleted.unwrap_or_default(),
            p.when_scaled.unwrap_or_default(),
        )
    }
}

/// The name of the claim template `template` makes for `set`'s `ordinal`.
pub fn claim_name(template: &str, set: &str, ordinal: u32) -> String {
    format!("{template}-{set}-{ordinal}")
}
