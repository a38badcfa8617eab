//! The LimitRange kind (v1): per-namespace defaults and bounds for the
//! resources of each new pod's containers, applied by `crate::admission`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Body, Quantity};
use crate::resource::Kind;

/// The resources LimitRanges bound (validation refuses others).
pub const LIMIT_RANGE_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// Body of a `LimitRange`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRangeBody {
    #[serde(default)]
    pub spec: LimitRangeSpec,
}

impl Body for LimitRangeBody {
    const KIND: Kind = Kind::LimitRange;
}

/// `LimitRange.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRangeSpec {
    #[serde(default)]
    pub limits: Vec<LimitRangeItem>,
}

/// One item: what it applies to and its bounds, by resource name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRangeItem {
    /// `Container` or `Pod` (`PersistentVolumeClaim` is refused).
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min: BTreeMap<String, Quantity>,
    /// A container's limit when it sets none (Container items only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, Quantity>,
    /// A container's request when it sets none (Container items only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_request: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_limit_request_ratio: BTreeMap<String, Quantity>,
}

impl LimitRangeItem {
    /// Kubernetes' defaulting of a Container item: the default limit from
    /// `max`, the default request from the default limit, else from `min`.
    pub fn set_defaults(&mut self) {
        if self.type_ != "Container" {
            return;
        }
        for (k, v) in &self.max {
            self.default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &self.default {
            self.default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &self.min {
            self.default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}
