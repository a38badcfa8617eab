//! `[agent]` settings.

use serde::{Deserialize, Serialize};

/// Node agent settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Labels published on this node's Node object (for nodeSelector).
    pub labels: std::collections::BTreeMap<String, String>,
    /// CPU kept back from pods, as a Kubernetes quantity (`500m`, `1`).
    pub reserved_cpu: String,
    /// Memory kept back from pods, as a Kubernetes quantity (`256Mi`).
    pub reserved_memory: String,
    /// Most pods this node runs.
    pub max_pods: u32,
    /// Overrides the CPU capacity read from the host (a quantity: `4`, `3500m`).
    pub capacity_cpu: Option<String>,
    /// Overrides the memory capacity read from the host (a quantity: `8Gi`).
    pub capacity_memory: Option<String>,
    /// First restart delay of a crashed container, in milliseconds; doubles each restart.
    pub restart_backoff_initial_ms: u64,
    /// Longest restart delay, in milliseconds.
    pub restart_backoff_max_ms: u64,
    /// A container that ran this long (milliseconds) starts its back-off afresh.
    pub restart_backoff_reset_ms: u64,
    /// How often the agent compares every pod with the runtime even without news, in milliseconds.
    pub resync_ms: u64,
    /// Longest wait for an image pull, in seconds.
    pub image_pull_timeout_secs: u64,
    /// Events kept per pod; older ones are deleted.
    pub events_per_pod: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            labels: Default::default(),
            reserved_cpu: "100m".into(),
            reserved_memory: "256Mi".into(),
            max_pods: 110,
            capacity_cpu: None,
            capacity_memory: None,
            restart_backoff_initial_ms: 10_000,
            restart_backoff_max_ms: 300_000,
            restart_backoff_reset_ms: 600_000,
            resync_ms: 1_000,
            image_pull_timeout_secs: 120,
            events_per_pod: 20,
        }
    }
}
