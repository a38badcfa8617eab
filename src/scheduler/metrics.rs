//! The scheduler's metrics (`shoal_scheduler_*`).

use crate::telemetry::{Def, counter, gauge, seconds};

/// `shoal_scheduler_pass_seconds`.
pub const PASS_SECONDS: &str = "shoal_scheduler_pass_seconds";
/// `shoal_scheduler_pending_pods`.
pub const PENDING_PODS: &str = "shoal_scheduler_pending_pods";
/// `shoal_scheduler_placements_total`.
pub const PLACEMENTS_TOTAL: &str = "shoal_scheduler_placements_total";
/// `shoal_scheduler_unschedulable_total`.
pub const UNSCHEDULABLE_TOTAL: &str = "shoal_scheduler_unschedulable_total";
/// `shoal_scheduler_conflicts_total`.
pub const CONFLICTS_TOTAL: &str = "shoal_scheduler_conflicts_total";

/// `shoal_scheduler_preemptions_total`.
pub const PREEMPTIONS_TOTAL: &str = "shoal_scheduler_preemptions_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    seconds(PASS_SECONDS, "Time of one scheduling pass."),
    gauge(PENDING_PODS, "Pods waiting for a node."),
    counter(PLACEMENTS_TOTAL, "Pods bound to a node."),
    counter(UNSCHEDULABLE_TOTAL, "Pods found to fit no node."),
    counter(CONFLICTS_TOTAL, "Bindings lost to a concurrent change."),
    counter(
        PREEMPTIONS_TOTAL,
        "Pods evicted to make room for pods of higher priority.",
    ),
];
