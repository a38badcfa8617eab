//! The agent's metrics (`shoal_agent_*`).

use crate::telemetry::{Def, Family, counter, gauge, labelled_counter, seconds};

/// `shoal_agent_container_starts_total`.
pub const CONTAINER_STARTS_TOTAL: &str = "shoal_agent_container_starts_total";
/// `shoal_agent_image_pull_failures_total`.
pub const IMAGE_PULL_FAILURES_TOTAL: &str = "shoal_agent_image_pull_failures_total";
/// `shoal_agent_orphans_removed_total`.
pub const ORPHANS_REMOVED_TOTAL: &str = "shoal_agent_orphans_removed_total";
/// `shoal_agent_status_writes_total`.
pub const STATUS_WRITES_TOTAL: &str = "shoal_agent_status_writes_total";
/// `shoal_agent_volume_updates_total`.
pub const VOLUME_UPDATES_TOTAL: &str = "shoal_agent_volume_updates_total";
/// `shoal_agent_volume_sync_seconds`.
pub const VOLUME_SYNC_SECONDS: &str = "shoal_agent_volume_sync_seconds";
/// `shoal_agent_events_total`.
pub const EVENTS_TOTAL: &str = "shoal_agent_events_total";
/// `shoal_agent_probe_failures_total`.
pub const PROBE_FAILURES_TOTAL: &str = "shoal_agent_probe_failures_total";

/// `shoal_agent_local_volumes_removed_total`.
pub const LOCAL_VOLUMES_REMOVED_TOTAL: &str = "shoal_agent_local_volumes_removed_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    counter(
        LOCAL_VOLUMES_REMOVED_TOTAL,
        "Local persistent volume directories removed after their PersistentVolume was deleted.",
    ),
    counter(CONTAINER_STARTS_TOTAL, "Containers started."),
    counter(IMAGE_PULL_FAILURES_TOTAL, "Image pulls that failed."),
    counter(
        ORPHANS_REMOVED_TOTAL,
        "Containers removed because their pod was gone.",
    ),
    counter(STATUS_WRITES_TOTAL, "Pod status writes."),
    counter(
        VOLUME_UPDATES_TOTAL,
        "ConfigMap, Secret, projected and downward API volumes whose files were rewritten.",
    ),
    seconds(
        VOLUME_SYNC_SECONDS,
        "Time to bring one pod's volumes up to date.",
    ),
    counter(EVENTS_TOTAL, "Events recorded."),
    labelled_counter(
        PROBE_FAILURES_TOTAL,
        "Failed probes, by probe.",
        &[&[("probe", "liveness")], &[("probe", "readiness")]],
    ),
];

/// `shoal_agent_usage_containers_dropped_total`.
pub const USAGE_CONTAINERS_DROPPED_TOTAL: &str = "shoal_agent_usage_containers_dropped_total";
/// `shoal_agent_usage_containers`.
pub const USAGE_CONTAINERS: &str = "shoal_agent_usage_containers";
/// `shoal_agent_usage_sample_seconds`.
pub const USAGE_SAMPLE_SECONDS: &str = "shoal_agent_usage_sample_seconds";

/// `shoal_container_cpu_seconds_total`.
pub const CONTAINER_CPU_SECONDS_TOTAL: &str = "shoal_container_cpu_seconds_total";
/// `shoal_container_memory_working_set_bytes`.
pub const CONTAINER_MEMORY_WORKING_SET_BYTES: &str = "shoal_container_memory_working_set_bytes";

/// The resource usage sampler's families. The two per-container families
/// are rendered by `agent::usage` from its sample, not recorded (so a
/// pod's series go with it); they are listed here with no series at zero.
pub const USAGE_FAMILIES: &[Def] = &[
    Def {
        name: CONTAINER_CPU_SECONDS_TOTAL,
        family: Family::Counter,
        unit: None,
        help: "Cumulative CPU time of a container, in seconds.",
        zero: &[],
    },
    Def {
        name: CONTAINER_MEMORY_WORKING_SET_BYTES,
        family: Family::Gauge,
        unit: None,
        help: "Working set of a container (usage less inactive page cache), in bytes.",
        zero: &[],
    },
    counter(
        USAGE_CONTAINERS_DROPPED_TOTAL,
        "Container samples not kept because the node already tracks metrics.max_containers.",
    ),
    gauge(USAGE_CONTAINERS, "Containers whose usage this node tracks."),
    seconds(
        USAGE_SAMPLE_SECONDS,
        "Time to sample every container and the host once.",
    ),
];
