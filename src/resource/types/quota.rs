//! The ResourceQuota kind (v1): caps on what a namespace's pods request
//! and limit and on how many there are, charged when each pod is created
//! (`crate::admission::quota`) and recounted by the leader.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Body, Quantity};
use crate::resource::Kind;

/// The resources a quota may cap: pods counted, and the summed requests
/// and limits of cpu, memory and ephemeral storage (the bare names mean
/// their requests); besides these, `requests.<extended resource>`
/// ([`is_quota_resource`]).
pub const QUOTA_RESOURCES: [&str; 11] = [
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "ephemeral-storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
];

/// Whether a quota may cap `name`: one of [`QUOTA_RESOURCES`], or
/// `requests.` and an extended resource (Kubernetes allows no other form
/// for them: they are never overcommitted, so requests are limits).
pub fn is_quota_resource(name: &str) -> bool {
    QUOTA_RESOURCES.contains(&name)
        || name
            .strip_prefix("requests.")
            .is_some_and(crate::resource::extended::is_extended)
}

/// Body of a `ResourceQuota`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaBody {
    #[serde(default)]
    pub spec: ResourceQuotaSpec,
}

impl Body for ResourceQuotaBody {
    const KIND: Kind = Kind::ResourceQuota;
}

/// `ResourceQuota.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaSpec {
    #[serde(default)]
    pub hard: BTreeMap<String, Quantity>,
    /// Refused by validation: every quota covers every pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Refused by validation, as `scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<serde_json::Value>,
}

/// `ResourceQuota.status`: the caps in force and what is used of each, as
/// quantities (`500m`, `1Gi`, `3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuotaStatus {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub used: BTreeMap<String, String>,
}
