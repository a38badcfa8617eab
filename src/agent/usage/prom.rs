//! This node's container usage as Prometheus text.
//!
//! These two families are written here rather than through the `metrics`
//! recorder: the recorder cannot forget one series (its only removal is an
//! idle timeout over every metric of a kind, which would also drop the
//! gauges other modules set once), and a pod's series must go with the
//! pod. Rendering from the sample does that by construction: a container
//! gone from the window is gone from the next scrape. Cardinality is bounded
//! by `metrics.max_containers` per node (refusals are counted in
//! `shoal_agent_usage_containers_dropped_total`), and each node reports only
//! its own containers, so in-process test clusters do not mix them.

use std::fmt::Write as _;

use crate::resource::usage::NodeSample;

use crate::agent::metrics::{
    CONTAINER_CPU_SECONDS_TOTAL as CPU_SECONDS_TOTAL,
    CONTAINER_MEMORY_WORKING_SET_BYTES as MEMORY_WORKING_SET_BYTES,
};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The two families for every container in `s`.
pub(super) fn render(s: &NodeSample) -> String {
    let mut out = String::new();
    // A family with no series is left out whole, HELP and TYPE too.
    if s.pods.iter().all(|p| p.containers.is_empty()) {
        return out;
    }
    let series = |out: &mut String, name: &str, value: &dyn Fn(usize, usize) -> String| {
        for (pi, p) in s.pods.iter().enumerate() {
            for (ci, c) in p.containers.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",pod=\"{}\",container=\"{}\",node=\"{}\"}} {}",
                    escape(&p.namespace),
                    escape(&p.name),
                    escape(&c.name),
                    escape(&s.node),
                    value(pi, ci)
                );
            }
        }
    };
    let _ = writeln!(
        out,
        "# HELP {CPU_SECONDS_TOTAL} Cumulative CPU time of a container, in seconds.\n# TYPE {CPU_SECONDS_TOTAL} counter"
    );
    series(&mut out, CPU_SECONDS_TOTAL, &|p, c| {
        format!("{}", s.pods[p].containers[c].cpu_seconds_total)
    });
    let _ = writeln!(
        out,
        "# HELP {MEMORY_WORKING_SET_BYTES} Working set of a container (usage less inactive page cache), in bytes.\n# TYPE {MEMORY_WORKING_SET_BYTES} gauge"
    );
    series(&mut out, MEMORY_WORKING_SET_BYTES, &|p, c| {
        s.pods[p].containers[c].memory_bytes.to_string()
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::usage::{ContainerSample, PodSample};

    #[test]
    fn series_are_per_container_and_go_with_the_pod() {
        let mut s = NodeSample {
            node: "n1".into(),
            pods: vec![PodSample {
                namespace: "default".into(),
                name: "web-1".into(),
                timestamp_ms: 0,
                window_ms: 5000,
                containers: vec![ContainerSample {
                    name: "app".into(),
                    cpu_nanocores: 1,
                    memory_bytes: 4096,
                    cpu_seconds_total: 1.5,
                }],
            }],
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains(
            "shoal_container_cpu_seconds_total{namespace=\"default\",pod=\"web-1\",container=\"app\",node=\"n1\"} 1.5\n"
        ));
        assert!(text.contains(
            "shoal_container_memory_working_set_bytes{namespace=\"default\",pod=\"web-1\",container=\"app\",node=\"n1\"} 4096\n"
        ));
        assert!(text.contains("# TYPE shoal_container_cpu_seconds_total counter"));
        s.pods.clear();
        assert_eq!(render(&s), "");
    }
}
