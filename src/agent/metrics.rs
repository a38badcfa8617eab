//! The agent's metrics (`shoal_agent_*`).

use crate::telemetry::{Def, counter, labelled_counter, seconds};

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
