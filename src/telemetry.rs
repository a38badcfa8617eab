//! telemetry: the process's Prometheus recorder and the catalogue of every
//! metric family shoal exports. Each family is described (`# HELP`, unit),
//! histograms get buckets that fit what they measure (so nodes can be
//! combined with `histogram_quantile` over `_bucket`, and an idle node does
//! not report quantiles of zero), and counters exist at zero from the
//! start, so `rate()` and `absent()` work before the first event. The
//! `process_*` families follow the Prometheus client libraries' names.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use tracing::warn;

use crate::resource::Kind;
use crate::store::Store;

/// What a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution, with buckets.
    Histogram(Buckets),
}

/// Bucket boundaries for a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Durations from half a millisecond to ten seconds.
    Seconds,
    /// Counts from one to a thousand and more (batch sizes).
    Count,
}

impl Buckets {
    fn bounds(self) -> &'static [f64] {
        match self {
            Buckets::Seconds => &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
            Buckets::Count => &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ],
        }
    }
}

/// One family: name, kind, unit, help, and for counters the label sets
/// that exist at zero from the start.
pub struct Def {
    /// The family's name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub family: Family,
    /// Its unit.
    pub unit: Option<Unit>,
    /// `# HELP` text.
    pub help: &'static str,
    /// Label sets registered at zero (counters only); one empty set for
    /// a counter without labels.
    pub zero: &'static [&'static [(&'static str, &'static str)]],
}

const fn counter(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Counter,
        unit: None,
        help,
        zero: &[&[]],
    }
}

const fn labelled_counter(
    name: &'static str,
    help: &'static str,
    zero: &'static [&'static [(&'static str, &'static str)]],
) -> Def {
    Def {
        name,
        family: Family::Counter,
        unit: None,
        help,
        zero,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Gauge,
        unit: None,
        help,
        zero: &[],
    }
}

const fn seconds(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Histogram(Buckets::Seconds),
        unit: Some(Unit::Seconds),
        help,
        zero: &[],
    }
}

const fn count_histogram(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Histogram(Buckets::Count),
        unit: Some(Unit::Count),
        help,
        zero: &[],
    }
}

/// Every family shoal exports.
pub const FAMILIES: &[Def] = &[
    // Build (the process_* families are written by `render` itself: the
    // recorder's counters cannot hold fractional CPU seconds).
    gauge(
        "shoal_build_info",
        "Always 1; the labels say which shoal runs (version).",
    ),
    gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
    ),
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
    ),
    gauge(
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds (a counter exported as a gauge).",
    ),
    gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
    ),
    // Cluster view from this node's replica (every node reports the same: use max()).
    gauge(
        "shoal_cluster_nodes",
        "Nodes by state (ready, not_ready, cordoned) in this node's replica; every node reports the cluster, so aggregate with max().",
    ),
    gauge(
        "shoal_cluster_pods",
        "Pods by phase in this node's replica; every node reports the cluster, so aggregate with max().",
    ),
    gauge("shoal_agent_pods", "Pods bound to this node, by phase."),
    // Raft and the store.
    counter(
        "shoal_raft_leader_changes_total",
        "Leader changes this node saw.",
    ),
    labelled_counter(
        "shoal_raft_prevotes_total",
        "Pre-vote rounds this node ran, by result.",
        &[&[("result", "granted")], &[("result", "denied")]],
    ),
    gauge("shoal_raft_term", "Current Raft term."),
    gauge("shoal_raft_is_leader", "1 on the Raft leader, else 0."),
    gauge("shoal_raft_voters", "Voters in the Raft membership."),
    gauge("shoal_raft_learners", "Learners in the Raft membership."),
    gauge(
        "shoal_raft_last_log_index",
        "Index of the last entry in this node's log.",
    ),
    gauge(
        "shoal_raft_last_applied_index",
        "Index of the last entry this node applied.",
    ),
    gauge(
        "shoal_raft_commit_index",
        "Index of the last committed entry this node knows of.",
    ),
    counter(
        "shoal_store_applied_entries_total",
        "Log entries applied to the state machine.",
    ),
    counter("shoal_store_log_syncs_total", "fsyncs of the Raft log."),
    counter(
        "shoal_store_log_appended_bytes_total",
        "Bytes appended to the Raft log.",
    ),
    counter("shoal_store_snapshots_built_total", "Snapshots built."),
    counter(
        "shoal_store_snapshots_installed_total",
        "Snapshots received from a leader and installed.",
    ),
    counter(
        "shoal_store_refused_rpcs_total",
        "Raft and store RPCs refused because the sender is not a member.",
    ),
    gauge(
        "shoal_store_snapshot_bytes",
        "Size of the last snapshot built, in bytes.",
    ),
    gauge(
        "shoal_store_watch_history_bytes",
        "Bytes held by the watch history ring.",
    ),
    seconds(
        "shoal_store_write_seconds",
        "Time from a write's submission to its result.",
    ),
    seconds(
        "shoal_store_apply_seconds",
        "Time to apply one batch of entries to the state machine.",
    ),
    seconds(
        "shoal_store_log_append_seconds",
        "Time to append and fsync one batch of log entries.",
    ),
    count_histogram(
        "shoal_store_log_appends_per_sync",
        "Log appends covered by one fsync.",
    ),
    count_histogram(
        "shoal_store_commands_per_entry",
        "Client commands batched into one log entry.",
    ),
    // Membership and autopilot.
    gauge("shoal_membership_members", "Gossip members by state."),
    counter(
        "shoal_membership_suspicions_total",
        "Members this node began to suspect.",
    ),
    counter(
        "shoal_membership_refutations_total",
        "Suspicions of this node that it refuted.",
    ),
    seconds(
        "shoal_membership_probe_rtt_seconds",
        "Round trip of gossip probes.",
    ),
    labelled_counter(
        "shoal_autopilot_actions_total",
        "Raft membership changes autopilot made, by action.",
        &[
            &[("action", "add_learner")],
            &[("action", "update_node")],
            &[("action", "change_voters")],
            &[("action", "remove")],
        ],
    ),
    counter(
        "shoal_net_silent_connections_closed_total",
        "Connections closed because a request on them timed out and the peer had sent nothing for as long (a partition or a frozen host), so the next request dials afresh.",
    ),
    labelled_counter(
        "shoal_api_evictions_total",
        "Evictions asked through the API (drain), by result: evicted, or refused because the pod's Deployment would drop below what its strategy allows unavailable.",
        &[&[("result", "evicted")], &[("result", "refused")]],
    ),
    gauge(
        "shoal_store_state_bytes",
        "Bytes of the replicated state (keys and objects) that count against store.quota_bytes.",
    ),
    gauge(
        "shoal_store_quota_bytes",
        "The store quota (store.quota_bytes): writes that would grow the state past it are refused.",
    ),
    counter(
        "shoal_store_quota_refusals_total",
        "Writes refused because they would grow the replicated state past store.quota_bytes.",
    ),
    gauge(
        "shoal_store_log_bytes",
        "Bytes of the Raft log entries kept on disk (compacted past store.compact_log_bytes).",
    ),
    labelled_counter(
        "shoal_store_log_compactions_total",
        "Snapshots and purges the store asked for because the log held store.compact_log_bytes, by trigger.",
        &[&[("trigger", "snapshot")], &[("trigger", "purge")]],
    ),
    counter(
        "shoal_store_staged_entries_total",
        "Raft entries larger than a p2p frame sent to a follower in pieces.",
    ),
    counter(
        "shoal_store_staged_entry_bytes_total",
        "Bytes of the Raft entries sent in pieces.",
    ),
    counter(
        "shoal_net_refused_connections_total",
        "Incoming p2p connections refused: another or no cluster key, or not libp2p at all.",
    ),
    counter(
        "shoal_runtime_process_log_rotations_total",
        "Rotations of process-runtime container logs (agent.log_max_bytes reached).",
    ),
    counter(
        "shoal_runtime_process_log_bytes_total",
        "Bytes of container output the process runtime copied into log files.",
    ),
    labelled_counter(
        "shoal_api_denied_total",
        "API requests refused by authentication (no, wrong, revoked or expired token) or by the token's role.",
        &[&[("reason", "unauthenticated")], &[("reason", "forbidden")]],
    ),
    labelled_counter(
        "shoal_api_client_stream_refusals_total",
        "Watches and log follows refused because their client already holds api.max_watches_per_client or api.max_log_follows_per_client on this node.",
        &[&[("stream", "watch")], &[("stream", "log_follow")]],
    ),
    counter(
        "shoal_api_audit_dropped_total",
        "Audit records dropped because the audit log's writer was behind (a queue of 1,024).",
    ),
    counter(
        "shoal_api_audit_errors_total",
        "Audit records that could not be written to the audit log (disk full, permissions).",
    ),
    counter(
        "shoal_api_tls_handshake_failures_total",
        "TLS handshakes on the API that failed or timed out (a client without the cluster CA, a port scan).",
    ),
    // Controllers and scheduler.
    seconds(
        "shoal_controller_pass_seconds",
        "Time of one controller pass on the leader.",
    ),
    counter(
        "shoal_controller_pods_evicted_total",
        "Pods marked Failed because their node was lost.",
    ),
    counter(
        "shoal_controller_replicaset_changes_total",
        "Pods created or deleted by ReplicaSets.",
    ),
    counter(
        "shoal_controller_job_pods_created_total",
        "Pods created by the Job controller.",
    ),
    counter(
        "shoal_controller_job_pods_deleted_total",
        "Pods deleted by the Job controller (finished, failed or suspended Jobs).",
    ),
    counter(
        "shoal_controller_cronjob_jobs_created_total",
        "Jobs created by CronJobs on schedule.",
    ),
    seconds(
        "shoal_controller_cronjob_start_delay_seconds",
        "Delay from a CronJob's scheduled time to the write that created its Job.",
    ),
    counter(
        "shoal_secrets_resealed_total",
        "Secrets re-sealed under the active data key (after a key rotation).",
    ),
    seconds(
        "shoal_scheduler_pass_seconds",
        "Time of one scheduling pass.",
    ),
    gauge("shoal_scheduler_pending_pods", "Pods waiting for a node."),
    counter("shoal_scheduler_placements_total", "Pods bound to a node."),
    counter(
        "shoal_scheduler_unschedulable_total",
        "Pods found to fit no node.",
    ),
    counter(
        "shoal_scheduler_conflicts_total",
        "Bindings lost to a concurrent change.",
    ),
    // Agent.
    counter("shoal_agent_container_starts_total", "Containers started."),
    counter(
        "shoal_agent_image_pull_failures_total",
        "Image pulls that failed.",
    ),
    counter(
        "shoal_agent_orphans_removed_total",
        "Containers removed because their pod was gone.",
    ),
    counter("shoal_agent_status_writes_total", "Pod status writes."),
    counter(
        "shoal_agent_volume_updates_total",
        "ConfigMap, Secret, projected and downward API volumes whose files were rewritten.",
    ),
    counter(
        "shoal_agent_local_volumes_removed_total",
        "Local persistent volume directories removed after their PersistentVolume was deleted.",
    ),
    seconds(
        "shoal_agent_volume_sync_seconds",
        "Time to bring one pod's volumes up to date.",
    ),
    counter("shoal_agent_events_total", "Events recorded."),
    labelled_counter(
        "shoal_agent_probe_failures_total",
        "Failed probes, by probe.",
        &[&[("probe", "liveness")], &[("probe", "readiness")]],
    ),
    // Discovery.
    gauge("shoal_discovery_services", "Services in the table."),
    gauge(
        "shoal_discovery_endpoints",
        "Ready endpoints over all Services.",
    ),
    labelled_counter(
        "shoal_discovery_dns_queries_total",
        "DNS queries, by result.",
        &[],
    ),
    seconds(
        "shoal_discovery_dns_request_duration_seconds",
        "Time to answer a DNS query.",
    ),
    labelled_counter(
        "shoal_discovery_lb_connections_total",
        "Connections accepted by a Service's balancer.",
        &[],
    ),
    labelled_counter(
        "shoal_discovery_lb_unserved_connections_total",
        "Connections closed for want of a reachable endpoint.",
        &[],
    ),
    labelled_counter(
        "shoal_discovery_lb_upstream_errors_total",
        "Failed connects to endpoints.",
        &[],
    ),
    labelled_counter(
        "shoal_discovery_lb_ejections_total",
        "Endpoints ejected after repeated failures.",
        &[],
    ),
    labelled_counter(
        "shoal_discovery_lb_bytes_total",
        "Bytes relayed, by direction.",
        &[],
    ),
    gauge(
        "shoal_discovery_lb_active_connections",
        "Open balanced connections.",
    ),
    gauge(
        "shoal_discovery_lb_listeners",
        "Listeners the balancer holds.",
    ),
    gauge(
        "shoal_discovery_lb_bind_failures",
        "Listeners the balancer could not bind.",
    ),
    seconds(
        "shoal_discovery_lb_upstream_connect_seconds",
        "Time to connect to an endpoint.",
    ),
];

/// The process-wide recorder (one per process, shared by in-process
/// nodes), installed on first use with every family described.
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for def in FAMILIES {
        if let Family::Histogram(b) = def.family {
            builder =
                match builder.set_buckets_for_metric(Matcher::Full(def.name.into()), b.bounds()) {
                    Ok(b) => b,
                    Err(e) => {
                        warn!("metrics recorder not installed: {e}");
                        return None;
                    }
                };
        }
    }
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        Err(e) => {
            warn!("metrics recorder not installed: {e}");
            return None;
        }
    };
    for def in FAMILIES {
        let (name, help) = (def.name, def.help);
        match (def.family, def.unit) {
            (Family::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Family::Counter, None) => metrics::describe_counter!(name, help),
            (Family::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Family::Gauge, None) => metrics::describe_gauge!(name, help),
            (Family::Histogram(_), Some(u)) => metrics::describe_histogram!(name, u, help),
            (Family::Histogram(_), None) => metrics::describe_histogram!(name, help),
        }
        if def.family == Family::Counter {
            for labels in def.zero {
                let labels: Vec<metrics::Label> = labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, *v))
                    .collect();
                metrics::counter!(name, labels).increment(0);
            }
        }
    }
    metrics::gauge!("shoal_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(handle)
}

/// Renders the exposition text after refreshing what is sampled at scrape
/// time: the process's own figures and the cluster's from `store`.
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
            metrics::gauge!("shoal_cluster_pods", "phase" => *phase).set(cluster[i] as f64);
            metrics::gauge!("shoal_agent_pods", "phase" => *phase).set(here[i] as f64);
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
        metrics::gauge!("shoal_cluster_nodes", "state" => "ready").set(f64::from(ready));
        metrics::gauge!("shoal_cluster_nodes", "state" => "not_ready").set(f64::from(not_ready));
        metrics::gauge!("shoal_cluster_nodes", "state" => "cordoned").set(f64::from(cordoned));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_by_convention_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for d in FAMILIES {
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

    /// Every metric the code records is in the catalogue (and so has HELP
    /// and, for histograms, buckets): scans the sources for metric names.
    #[test]
    fn every_recorded_metric_is_catalogued() {
        let mut missing = Vec::new();
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
                for (i, _) in text.match_indices("!(\"shoal_") {
                    let name: String = text[i + 3..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !FAMILIES.iter().any(|d| d.name == name) {
                        missing.push(format!("{name} ({})", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in telemetry::FAMILIES: {missing:?}"
        );
    }
}
