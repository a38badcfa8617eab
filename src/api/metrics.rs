//! The API's metrics (`shoal_api_*`), the cluster view sampled at each
//! scrape (`shoal_cluster_*`, `shoal_agent_pods`), and the catalogue of
//! every family shoal exports, which `/metrics` serves.

use metrics_exporter_prometheus::PrometheusHandle;

use serde_json::Value;

use crate::resource::Kind;
use crate::store::Store;
use crate::telemetry::{self, Def, counter, gauge, labelled_counter};

/// Every family shoal exports, by the module that records it.
pub const CATALOGUE: &[&[Def]] = &[
    telemetry::FAMILIES,
    FAMILIES,
    crate::store::metrics::FAMILIES,
    crate::membership::metrics::FAMILIES,
    crate::autopilot::metrics::FAMILIES,
    crate::net::metrics::FAMILIES,
    crate::runtime::metrics::FAMILIES,
    crate::controller::metrics::FAMILIES,
    crate::scheduler::metrics::FAMILIES,
    crate::agent::metrics::FAMILIES,
    crate::agent::metrics::USAGE_FAMILIES,
    crate::discovery::metrics::FAMILIES,
    crate::ingress::metrics::FAMILIES,
];

/// The process's recorder, with every family of the catalogue described.
pub fn recorder() -> Option<PrometheusHandle> {
    telemetry::handle(CATALOGUE)
}

/// Renders the exposition text after refreshing what is sampled at scrape
/// time: the cluster as this node's replica sees it, and the process.
pub fn render(
    handle: &PrometheusHandle,
    store: &Store,
    membership: Option<&crate::membership::Membership>,
    node: &str,
) -> String {
    sample_cluster(store, membership, node);
    let mut text = handle.render();
    text.push_str(&process_text());
    text
}

/// `shoal_cluster_nodes`.
pub const CLUSTER_NODES: &str = "shoal_cluster_nodes";
/// `shoal_cluster_pods`.
pub const CLUSTER_PODS: &str = "shoal_cluster_pods";
/// `shoal_agent_pods`.
pub const AGENT_PODS: &str = "shoal_agent_pods";
/// `shoal_api_evictions_total`.
pub const EVICTIONS_TOTAL: &str = "shoal_api_evictions_total";
/// `shoal_api_denied_total`.
pub const DENIED_TOTAL: &str = "shoal_api_denied_total";
/// `shoal_api_client_stream_refusals_total`.
pub const CLIENT_STREAM_REFUSALS_TOTAL: &str = "shoal_api_client_stream_refusals_total";
/// `shoal_api_audit_dropped_total`.
pub const AUDIT_DROPPED_TOTAL: &str = "shoal_api_audit_dropped_total";
/// `shoal_api_audit_errors_total`.
pub const AUDIT_ERRORS_TOTAL: &str = "shoal_api_audit_errors_total";
/// `shoal_api_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "shoal_api_tls_handshake_failures_total";

/// `shoal_api_exec_sessions_total`.
pub const EXEC_SESSIONS_TOTAL: &str = "shoal_api_exec_sessions_total";
/// `shoal_api_attach_sessions_total`.
pub const ATTACH_SESSIONS_TOTAL: &str = "shoal_api_attach_sessions_total";
/// `shoal_api_port_forward_connections_total`.
pub const PORT_FORWARD_CONNECTIONS_TOTAL: &str = "shoal_api_port_forward_connections_total";
/// `shoal_api_exec_bytes_total`.
pub const EXEC_BYTES_TOTAL: &str = "shoal_api_exec_bytes_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    counter(
        EXEC_SESSIONS_TOTAL,
        "exec sessions this node's API started (the command may run on another node).",
    ),
    counter(
        ATTACH_SESSIONS_TOTAL,
        "attach sessions this node's API started (the container may run on another node).",
    ),
    counter(
        PORT_FORWARD_CONNECTIONS_TOTAL,
        "Forwarded TCP connections this node's API started (made from the pod's node).",
    ),
    labelled_counter(
        EXEC_BYTES_TOTAL,
        "Bytes exec and port-forward sessions carried through this node's API: in (stdin, bytes sent) and out (stdout and stderr, bytes received).",
        &[&[("direction", "in")], &[("direction", "out")]],
    ),
    gauge(
        CLUSTER_NODES,
        "Nodes by state (ready, not_ready, cordoned) in this node's replica; every node reports the cluster, so aggregate with max().",
    ),
    gauge(
        CLUSTER_PODS,
        "Pods by phase in this node's replica; every node reports the cluster, so aggregate with max().",
    ),
    gauge(AGENT_PODS, "Pods bound to this node, by phase."),
    labelled_counter(
        EVICTIONS_TOTAL,
        "Evictions asked through the API (drain), by result: evicted, or refused because the pod's Deployment would drop below what its strategy allows unavailable.",
        &[&[("result", "evicted")], &[("result", "refused")]],
    ),
    labelled_counter(
        DENIED_TOTAL,
        "API requests refused by authentication (no, wrong, revoked or expired token) or by the token's role.",
        &[&[("reason", "unauthenticated")], &[("reason", "forbidden")]],
    ),
    labelled_counter(
        CLIENT_STREAM_REFUSALS_TOTAL,
        "Watches and log follows refused because their client already holds api.max_watches_per_client or api.max_log_follows_per_client on this node.",
        &[&[("stream", "watch")], &[("stream", "log_follow")]],
    ),
    counter(
        AUDIT_DROPPED_TOTAL,
        "Audit records dropped because the audit log's writer was behind (a queue of 1,024).",
    ),
    counter(
        AUDIT_ERRORS_TOTAL,
        "Audit records that could not be written to the audit log (disk full, permissions).",
    ),
    counter(
        TLS_HANDSHAKE_FAILURES_TOTAL,
        "TLS handshakes on the API that failed or timed out (a client without the cluster CA, a port scan).",
    ),
];

const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

fn sample_cluster(store: &Store, membership: Option<&crate::membership::Membership>, node: &str) {
    let health = membership.map(crate::membership::node_health);
    if let Ok((pods, _)) = store.list(Kind::Pod, None) {
        let mut cluster = [0u32; PHASES.len()];
        let mut here = [0u32; PHASES.len()];
        for p in &pods {
            let phase = p
                .status_or_default::<crate::resource::status::PodReadiness>()
                .phase
                .map_or("Pending", crate::resource::status::PodPhase::as_str);
            let i = PHASES.iter().position(|x| *x == phase).unwrap_or(4);
            cluster[i] += 1;
            let bound = p
                .body
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str);
            if bound == Some(node) {
                here[i] += 1;
            }
        }
        for (i, phase) in PHASES.iter().enumerate() {
            ::metrics::gauge!(CLUSTER_PODS, "phase" => *phase).set(cluster[i] as f64);
            ::metrics::gauge!(AGENT_PODS, "phase" => *phase).set(here[i] as f64);
        }
    }
    if let Ok((nodes, _)) = store.list(Kind::Node, None) {
        let (mut ready, mut not_ready, mut cordoned) = (0u32, 0u32, 0u32);
        for n in &nodes {
            // Ready as `shoal nodes` shows it: up in gossip (the node
            // itself, when there is no gossip view).
            let is_ready = match &health {
                Some(h) => h.get(&n.metadata.name).is_some_and(|h| h.is_up()),
                None => n.metadata.name == node,
            };
            if is_ready {
                ready += 1;
            } else {
                not_ready += 1;
            }
            let unschedulable = n
                .body
                .get("spec")
                .and_then(|s| s.get("unschedulable"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if unschedulable {
                cordoned += 1;
            }
        }
        ::metrics::gauge!(CLUSTER_NODES, "state" => "ready").set(f64::from(ready));
        ::metrics::gauge!(CLUSTER_NODES, "state" => "not_ready").set(f64::from(not_ready));
        ::metrics::gauge!(CLUSTER_NODES, "state" => "cordoned").set(f64::from(cordoned));
    }
}

/// The Prometheus client libraries' process families, as exposition text
/// (read with the process driver's /proc parser).
fn process_text() -> String {
    use crate::runtime::process::{clock_ticks_per_sec, page_size_bytes, self_stat};
    use std::fmt::Write;
    let ticks = clock_ticks_per_sec() as f64;
    let mut samples: Vec<(&str, &str, &str, f64)> = Vec::new();
    if let Some(st) = self_stat() {
        let cpu = (st.utime + st.stime) as f64 / ticks;
        let rss = (st.rss_pages * page_size_bytes()) as f64;
        samples.push((
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            cpu,
        ));
        samples.push((
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        ));
        samples.push((
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            st.vsize as f64,
        ));
        samples.push((
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            st.threads as f64,
        ));
        if let Some(boot) = boot_time() {
            let start = boot + st.start_time as f64 / ticks;
            samples.push((
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                start,
            ));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        samples.push((
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
        ));
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        samples.push((
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            soft as f64,
        ));
    }
    let mut out = String::new();
    for (name, kind, help, value) in samples {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        );
    }
    out
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Buckets, Family};

    #[test]
    fn every_family_is_named_by_convention_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for d in CATALOGUE.iter().copied().flatten() {
            assert!(seen.insert(d.name), "{} listed twice", d.name);
            assert!(
                d.name.starts_with("shoal_") || d.name.starts_with("process_"),
                "{}",
                d.name
            );
            if d.family == Family::Counter {
                assert!(d.name.ends_with("_total"), "{}", d.name);
            }
            if matches!(d.family, Family::Histogram(Buckets::Seconds)) {
                assert!(d.name.ends_with("_seconds"), "{}", d.name);
            }
        }
    }

    /// Every metric name the code declares is in the catalogue (and so
    /// has HELP and, for histograms, buckets), and no call site names a
    /// metric by a string literal: names live in their module's
    /// `metrics.rs` as constants. Scans the sources.
    #[test]
    fn every_recorded_metric_is_catalogued() {
        let mut missing = Vec::new();
        let mut literals = Vec::new();
        let mut declared = 0;
        let mut stack = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for prefix in ["!(\"shoal_", "!(\"process_"] {
                    for (i, _) in text.match_indices(prefix) {
                        let line = text[..i].matches('\n').count() + 1;
                        literals.push(format!("{}:{line}", path.display()));
                    }
                }
                for (i, _) in text.match_indices(": &str = \"") {
                    let name: String = text[i + 10..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !(name.starts_with("shoal_") || name.starts_with("process_")) {
                        continue;
                    }
                    let rest = &text[i + 10 + name.len()..];
                    if !rest.starts_with('"') {
                        continue;
                    }
                    declared += 1;
                    if !CATALOGUE.iter().copied().flatten().any(|d| d.name == name) {
                        missing.push(format!("{name} ({})", path.display()));
                    }
                }
            }
        }
        assert!(
            declared >= 80,
            "the scan found only {declared} metric names"
        );
        assert!(
            missing.is_empty(),
            "not in api::metrics::CATALOGUE: {missing:?}"
        );
        assert!(
            literals.is_empty(),
            "metric named by a literal, not its module's constant: {literals:?}"
        );
    }
}
