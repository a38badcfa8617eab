//! The CronJob kind (batch/v1): a Job template and the schedule to run it on.

use serde::{Deserialize, Serialize};

use super::{Body, JobSpec, TemplateMetadata};
use crate::resource::Kind;

/// Body of a `CronJob`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobBody {
    pub spec: CronJobSpec,
}

impl Body for CronJobBody {
    const KIND: Kind = Kind::CronJob;
}

/// `CronJobSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobSpec {
    /// Five cron fields (`*/5 * * * *`) or a macro (`@hourly`).
    pub schedule: String,
    /// An IANA time zone (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A scheduled time missed by more than this is skipped; without it,
    /// only the latest missed time is run (as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<u64>,
    /// `Allow` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// While true, no new Job is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Finished successful Jobs kept; 3 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<u32>,
    /// Finished failed Jobs kept; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<u32>,
    pub job_template: JobTemplateSpec,
}

/// The Job a CronJob creates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    pub spec: JobSpec,
}

/// What a CronJob does when a run is due while an earlier one still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConcurrencyPolicy {
    /// Run both.
    #[default]
    Allow,
    /// Skip the new run (it stays due while within startingDeadlineSeconds).
    Forbid,
    /// Delete the running Job and start the new one.
    Replace,
}
