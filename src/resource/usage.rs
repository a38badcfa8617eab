//! Resource usage: the samples agents take of their containers and of their
//! host (soft state, never stored), and the `metrics.k8s.io/v1beta1` shapes
//! the API serves them in, exactly as metrics-server does, so `kubectl top`
//! and a UI read them unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API group and version of the resource metrics API.
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// One container's usage over the last sampling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSample {
    /// The container's name in its pod.
    pub name: String,
    /// CPU rate over the window, in billionths of a core.
    pub cpu_nanocores: u64,
    /// Working set (usage less inactive page cache), in bytes.
    pub memory_bytes: u64,
    /// Cumulative CPU time, in seconds (Prometheus' counter).
    pub cpu_seconds_total: f64,
}

/// One pod's containers, sampled on its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodSample {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// When the window ended, in milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// The window's length, in milliseconds.
    pub window_ms: u64,
    /// Its running containers that have two samples.
    pub containers: Vec<ContainerSample>,
}

/// What one node reports: its own usage and its pods'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    /// Node name.
    pub node: String,
    /// When the window ended, in milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// The window's length, in milliseconds (0: one sample only, no rate yet).
    pub window_ms: u64,
    /// The host's CPU rate, in billionths of a core.
    pub cpu_nanocores: u64,
    /// The host's memory in use (total less available), in bytes.
    pub memory_bytes: u64,
    /// The pods running here.
    pub pods: Vec<PodSample>,
}

/// `usage` of a metrics object: `cpu` in nanocores (`"123456n"`) and
/// `memory` in KiB (`"1234Ki"`), as metrics-server writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// CPU, a quantity.
    pub cpu: String,
    /// Memory, a quantity.
    pub memory: String,
}

impl ResourceUsage {
    /// Usage from raw figures.
    pub fn new(cpu_nanocores: u64, memory_bytes: u64) -> ResourceUsage {
        ResourceUsage {
            cpu: format!("{cpu_nanocores}n"),
            memory: format!("{}Ki", memory_bytes / 1024),
        }
    }

    /// CPU in millicores (rounded up), 0 when unreadable.
    pub fn cpu_millis(&self) -> u64 {
        crate::resource::types::parse_cpu_millis(&self.cpu).unwrap_or(0)
    }

    /// Memory in bytes, 0 when unreadable.
    pub fn memory_bytes(&self) -> u64 {
        crate::resource::types::parse_memory_bytes(&self.memory).unwrap_or(0)
    }
}

/// `metadata` of a metrics object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsMeta {
    /// The node's or pod's name.
    pub name: String,
    /// The pod's namespace (absent for nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When this object was made (now: it is computed per request).
    pub creation_timestamp: String,
    /// The node's or pod's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `NodeMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    /// `NodeMetrics`.
    pub kind: String,
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// Name and labels.
    pub metadata: MetricsMeta,
    /// End of the window, RFC 3339.
    pub timestamp: String,
    /// Window length as a duration (`"5.002s"`).
    pub window: String,
    /// The usage.
    pub usage: ResourceUsage,
}

/// One container of `PodMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// Container name.
    pub name: String,
    /// Its usage.
    pub usage: ResourceUsage,
}

/// `PodMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// `PodMetrics`.
    pub kind: String,
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// Name, namespace and labels.
    pub metadata: MetricsMeta,
    /// End of the window, RFC 3339.
    pub timestamp: String,
    /// Window length as a duration.
    pub window: String,
    /// Per container.
    pub containers: Vec<ContainerMetrics>,
}

impl PodMetrics {
    /// The pod's total over its containers: (millicores, bytes).
    pub fn total(&self) -> (u64, u64) {
        self.containers.iter().fold((0, 0), |(c, m), x| {
            (c + x.usage.cpu_millis(), m + x.usage.memory_bytes())
        })
    }
}

/// `NodeMetricsList` / `PodMetricsList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsList<T> {
    /// `NodeMetricsList` or `PodMetricsList`.
    pub kind: String,
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// Always empty, as metrics-server's.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The objects.
    pub items: Vec<T>,
}

impl<T> MetricsList<T> {
    /// A list of `kind`.
    pub fn new(kind: &str, items: Vec<T>) -> MetricsList<T> {
        MetricsList {
            kind: kind.to_string(),
            api_version: API_VERSION.to_string(),
            metadata: Default::default(),
            items,
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 (whole seconds).
fn stamp(ms: u64) -> String {
    crate::resource::time::rfc3339(ms / 1000)
}

/// A window as metrics-server prints it: seconds with up to millisecond
/// precision, trailing zeros dropped (`"5s"`, `"5.002s"`).
pub fn window_text(ms: u64) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    }
}

impl NodeSample {
    /// The node as `NodeMetrics`, with the Node object's labels.
    pub fn to_metrics(&self, labels: BTreeMap<String, String>, now: &str) -> NodeMetrics {
        NodeMetrics {
            kind: "NodeMetrics".into(),
            api_version: API_VERSION.into(),
            metadata: MetricsMeta {
                name: self.node.clone(),
                namespace: None,
                creation_timestamp: now.to_string(),
                labels,
            },
            timestamp: stamp(self.timestamp_ms),
            window: window_text(self.window_ms),
            usage: ResourceUsage::new(self.cpu_nanocores, self.memory_bytes),
        }
    }
}

impl PodSample {
    /// The pod as `PodMetrics`, with the Pod object's labels.
    pub fn to_metrics(&self, labels: BTreeMap<String, String>, now: &str) -> PodMetrics {
        PodMetrics {
            kind: "PodMetrics".into(),
            api_version: API_VERSION.into(),
            metadata: MetricsMeta {
                name: self.name.clone(),
                namespace: Some(self.namespace.clone()),
                creation_timestamp: now.to_string(),
                labels,
            },
            timestamp: stamp(self.timestamp_ms),
            window: window_text(self.window_ms),
            containers: self
                .containers
                .iter()
                .map(|c| ContainerMetrics {
                    name: c.name.clone(),
                    usage: ResourceUsage::new(c.cpu_nanocores, c.memory_bytes),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_metrics_servers() {
        let n = NodeSample {
            node: "n1".into(),
            timestamp_ms: 1_700_000_000_500,
            window_ms: 5_020,
            cpu_nanocores: 123_456,
            memory_bytes: 1_264_640,
            pods: vec![],
        };
        let v = serde_json::to_value(n.to_metrics(BTreeMap::new(), "2023-11-14T22:13:20Z"))
            .expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:20Z"},
                "timestamp": "2023-11-14T22:13:20Z",
                "window": "5.02s",
                "usage": {"cpu": "123456n", "memory": "1235Ki"}
            })
        );
        let list = serde_json::to_value(MetricsList::<NodeMetrics>::new("NodeMetricsList", vec![]))
            .expect("json");
        assert_eq!(
            list,
            serde_json::json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": []})
        );
    }

    #[test]
    fn usage_reads_back_and_windows_print_like_go() {
        let u = ResourceUsage::new(250_000_001, 128 * 1024 * 1024);
        assert_eq!(u.cpu_millis(), 251);
        assert_eq!(u.memory_bytes(), 128 * 1024 * 1024);
        assert_eq!(window_text(5_000), "5s");
        assert_eq!(window_text(15_100), "15.1s");
        assert_eq!(window_text(0), "0s");
    }
}
