//! The DaemonSet kind (apps/v1), one pod per eligible node, and the
//! ControllerRevision its controller writes to keep its template history.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Body, IntOrString, LabelSelector, PodTemplateSpec};
use crate::resource::Kind;

/// Body of a `DaemonSet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetBody {
    pub spec: DaemonSetSpec,
}

impl Body for DaemonSetBody {
    const KIND: Kind = Kind::DaemonSet;
}

/// `DaemonSetSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    /// `RollingUpdate` with maxUnavailable 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
    /// Old ControllerRevisions kept; 10 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<u32>,
}

/// How a DaemonSet replaces its pods when the template changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<DaemonSetStrategyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDaemonSet>,
}

/// `RollingUpdate` or `OnDelete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonSetStrategyType {
    /// Replace pods node by node within maxUnavailable / maxSurge.
    #[default]
    RollingUpdate,
    /// A pod gets the new template only when the user deletes it.
    OnDelete,
}

/// The pace of a DaemonSet's rolling update, in nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateDaemonSet {
    /// 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

impl DaemonSetSpec {
    /// The strategy, `RollingUpdate` by default.
    pub fn strategy(&self) -> DaemonSetStrategyType {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.strategy_type)
            .unwrap_or_default()
    }

    /// (maxSurge, maxUnavailable) in nodes out of `desired`, as Kubernetes
    /// resolves them: surge rounds up, unavailable rounds up too, and with
    /// both zero one node may be unavailable.
    pub fn surge_unavailable(&self, desired: u32) -> (u32, u32) {
        let ru = self
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.clone())
            .unwrap_or_default();
        let surge = ru
            .max_surge
            .and_then(|v| v.scaled_value(desired, true))
            .unwrap_or(0);
        let mut unavailable = ru
            .max_unavailable
            .map_or(Some(1), |v| v.scaled_value(desired, true))
            .unwrap_or(1);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        (surge, unavailable)
    }
}

/// Body of a `ControllerRevision`: one template of its owner, numbered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerRevisionBody {
    /// `{"spec": {"template": ...}}`, as Kubernetes stores a DaemonSet's.
    pub data: Value,
    /// Higher is newer.
    pub revision: u64,
}

impl Body for ControllerRevisionBody {
    const KIND: Kind = Kind::ControllerRevision;
}
