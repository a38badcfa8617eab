//! The controllers' metrics (`shoal_controller_*`, `shoal_secrets_*`).

use crate::telemetry::{Def, counter, seconds};

/// `shoal_controller_pass_seconds`.
pub const PASS_SECONDS: &str = "shoal_controller_pass_seconds";
/// `shoal_controller_pods_evicted_total`.
pub const PODS_EVICTED_TOTAL: &str = "shoal_controller_pods_evicted_total";
/// `shoal_controller_replicaset_changes_total`.
pub const REPLICASET_CHANGES_TOTAL: &str = "shoal_controller_replicaset_changes_total";
/// `shoal_controller_daemonset_changes_total`.
pub const DAEMONSET_CHANGES_TOTAL: &str = "shoal_controller_daemonset_changes_total";
/// `shoal_controller_statefulset_changes_total`.
pub const STATEFULSET_CHANGES_TOTAL: &str = "shoal_controller_statefulset_changes_total";
/// `shoal_controller_job_pods_created_total`.
pub const JOB_PODS_CREATED_TOTAL: &str = "shoal_controller_job_pods_created_total";
/// `shoal_controller_job_pods_deleted_total`.
pub const JOB_PODS_DELETED_TOTAL: &str = "shoal_controller_job_pods_deleted_total";
/// `shoal_controller_cronjob_jobs_created_total`.
pub const CRONJOB_JOBS_CREATED_TOTAL: &str = "shoal_controller_cronjob_jobs_created_total";
/// `shoal_controller_cronjob_start_delay_seconds`.
pub const CRONJOB_START_DELAY_SECONDS: &str = "shoal_controller_cronjob_start_delay_seconds";
/// `shoal_controller_serviceaccount_changes_total`.
pub const SERVICEACCOUNT_CHANGES_TOTAL: &str = "shoal_controller_serviceaccount_changes_total";
/// `shoal_secrets_resealed_total`.
pub const SECRETS_RESEALED_TOTAL: &str = "shoal_secrets_resealed_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    seconds(PASS_SECONDS, "Time of one controller pass on the leader."),
    counter(
        PODS_EVICTED_TOTAL,
        "Pods marked Failed because their node was lost.",
    ),
    counter(
        REPLICASET_CHANGES_TOTAL,
        "Pods created or deleted by ReplicaSets.",
    ),
    counter(
        DAEMONSET_CHANGES_TOTAL,
        "Pods created or deleted by DaemonSets.",
    ),
    counter(
        STATEFULSET_CHANGES_TOTAL,
        "Pods and claims created or deleted by StatefulSets.",
    ),
    counter(
        JOB_PODS_CREATED_TOTAL,
        "Pods created by the Job controller.",
    ),
    counter(
        JOB_PODS_DELETED_TOTAL,
        "Pods deleted by the Job controller (finished, failed or suspended Jobs).",
    ),
    counter(
        CRONJOB_JOBS_CREATED_TOTAL,
        "Jobs created by CronJobs on schedule.",
    ),
    seconds(
        CRONJOB_START_DELAY_SECONDS,
        "Delay from a CronJob's scheduled time to the write that created its Job.",
    ),
    counter(
        SERVICEACCOUNT_CHANGES_TOTAL,
        "Default ServiceAccounts created and ServiceAccount tokens minted.",
    ),
    counter(
        SECRETS_RESEALED_TOTAL,
        "Secrets re-sealed under the active data key (after a key rotation).",
    ),
];
