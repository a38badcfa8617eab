//! What a pod requests, as Kubernetes counts it: per container the request,
//! or the limit when no request is given; per pod the app containers and
//! sidecars summed, or, if larger, the most any init container needs beside
//! the sidecars started before it. Each resource is maximised separately.

use serde_json::Value;

use super::placer::OtherResources;
use super::quantity_str;
use crate::resource::extended::{EPHEMERAL_STORAGE, is_extended, parse_count};
use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};

/// A container's or a pod's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Requests {
    /// CPU in millicores.
    pub cpu: u64,
    /// Memory in bytes.
    pub memory: u64,
    /// Ephemeral storage and extended resources.
    pub other: OtherResources,
}

impl Requests {
    fn add(&mut self, o: &Requests) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.memory = self.memory.saturating_add(o.memory);
        let (a, b) = (&mut self.other, &o.other);
        a.ephemeral_bytes = a.ephemeral_bytes.saturating_add(b.ephemeral_bytes);
        for (k, v) in &b.extended {
            let e = a.extended.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    fn max(&mut self, o: &Requests) {
        self.cpu = self.cpu.max(o.cpu);
        self.memory = self.memory.max(o.memory);
        let (a, b) = (&mut self.other, &o.other);
        a.ephemeral_bytes = a.ephemeral_bytes.max(b.ephemeral_bytes);
        for (k, v) in &b.extended {
            let e = a.extended.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// One container's requests; a resource without a request counts its
/// limit, as in Kubernetes. `None` when a quantity does not parse.
fn container_requests(c: &Value) -> Option<Requests> {
    let mut r = Requests::default();
    let Some(res) = c.get("resources") else {
        return Some(r);
    };
    let requests = res.get("requests").and_then(Value::as_object);
    let limits = res.get("limits").and_then(Value::as_object);
    let request = |name: &str| {
        requests
            .and_then(|m| m.get(name))
            .or_else(|| limits.and_then(|m| m.get(name)))
    };
    if let Some(q) = request("cpu") {
        r.cpu = parse_cpu_millis(&quantity_str(q)?).ok()?;
    }
    if let Some(q) = request("memory") {
        r.memory = parse_memory_bytes(&quantity_str(q)?).ok()?;
    }
    if let Some(q) = request(EPHEMERAL_STORAGE) {
        r.other.ephemeral_bytes = parse_memory_bytes(&quantity_str(q)?).ok()?;
    }
    let names = requests
        .into_iter()
        .chain(limits)
        .flat_map(|m| m.keys())
        .filter(|n| is_extended(n));
    for name in names {
        if r.other.extended.contains_key(name) {
            continue;
        }
        let Some(q) = request(name) else { continue };
        let count = parse_count(&quantity_str(q)?).ok()?;
        if count > 0 {
            r.other.extended.insert(name.clone(), count);
        }
    }
    Some(r)
}

/// A pod's requests as Kubernetes counts them (see the module's doc).
pub(super) fn effective_requests(spec: &Value, containers: &[Value]) -> Option<Requests> {
    let mut sidecars = Requests::default();
    let mut init_peak = Requests::default();
    let init = spec.get("initContainers").and_then(Value::as_array);
    for c in init.into_iter().flatten() {
        let r = container_requests(c)?;
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sidecars.add(&r);
            init_peak.max(&sidecars);
        } else {
            let mut now = sidecars.clone();
            now.add(&r);
            init_peak.max(&now);
        }
    }
    let mut running = sidecars;
    for c in containers {
        running.add(&container_requests(c)?);
    }
    running.max(&init_peak);
    Some(running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extended_and_ephemeral_follow_kubernetes_counting() {
        let spec = json!({
            "initContainers": [
                {"name": "i", "resources": {"limits": {"example.com/dongle": 3, "ephemeral-storage": "1Gi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"limits": {"example.com/dongle": "1"},
                    "requests": {"ephemeral-storage": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"example.com/dongle": 1, "nvidia.com/gpu": 2},
                    "limits": {"example.com/dongle": 1, "nvidia.com/gpu": 2, "ephemeral-storage": "200Mi"}}}
            ]
        });
        let containers = spec["containers"].as_array().unwrap().clone();
        let r = effective_requests(&spec, &containers).unwrap();
        // init 3 dongles > app 1 + 1; init 1Gi > 100Mi + 200Mi (b's limit).
        assert_eq!(r.other.extended.get("example.com/dongle"), Some(&3));
        assert_eq!(r.other.extended.get("nvidia.com/gpu"), Some(&2));
        assert_eq!(r.other.ephemeral_bytes, 1 << 30);
        let plain = json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]});
        let c = plain["containers"].as_array().unwrap().clone();
        let r = effective_requests(&plain, &c).unwrap();
        assert!(r.other.is_empty());
        assert_eq!(r.cpu, 1000);
    }
}
