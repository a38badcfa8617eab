//! The batch kinds' specs (batch/v1): a Job's, and the CronJob kind, a Job
//! template and the schedule to run it on.

use serde::{Deserialize, Serialize};

use super::{Body, LabelSelector, PodTemplateSpec, TemplateMetadata};
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

/// `Job.spec.podFailurePolicy`: what a failed pod means, decided by the
/// first rule that matches it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicy {
    #[serde(default)]
    pub rules: Vec<PodFailurePolicyRule>,
}

/// One rule: an action and exactly one of its two matchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyRule {
    pub action: PodFailurePolicyAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<PodFailurePolicyOnExitCodes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_pod_conditions: Vec<PodFailurePolicyOnPodCondition>,
}

/// What a matching rule does with the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodFailurePolicyAction {
    /// Fail the whole Job at once (reason `PodFailurePolicy`).
    FailJob,
    /// Fail the pod's index without retrying it (needs backoffLimitPerIndex).
    FailIndex,
    /// Replace the pod without counting the failure.
    Ignore,
    /// Count the failure as if no rule matched.
    Count,
}

/// Matches a pod one of whose containers exited non-zero with a code in
/// (or not in) `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyOnExitCodes {
    /// Only this container's exit code; any container's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    pub operator: ExitCodeOperator,
    pub values: Vec<i32>,
}

/// `In` or `NotIn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}

/// Matches a pod carrying a condition of `type` with `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyOnPodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` when absent.
    #[serde(default = "condition_true")]
    pub status: String,
}

fn condition_true() -> String {
    "True".into()
}

/// `Job.spec.successPolicy`: an Indexed Job succeeds as soon as one rule holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessPolicy {
    #[serde(default)]
    pub rules: Vec<SuccessPolicyRule>,
}

/// One rule: all of `succeededIndexes` succeeded, or `succeededCount` of
/// them (of all indexes when `succeededIndexes` is absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessPolicyRule {
    /// Intervals as `completedIndexes` writes them (`0,2-4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_indexes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_count: Option<u32>,
}

/// Parses an index list as Kubernetes writes one (`0,2-4`), strictly:
/// intervals ascending, not overlapping, each below `completions`.
pub fn parse_index_intervals(s: &str, completions: u32) -> Result<Vec<(u32, u32)>, String> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| format!("{part:?} is not an index or an interval of indexes"))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("interval {part:?} ends before it starts"));
        }
        if b >= completions {
            return Err(format!(
                "index {b} is out of range: completions is {completions}"
            ));
        }
        if out.last().is_some_and(|&(_, end)| a <= end) {
            return Err(format!(
                "{part:?} overlaps or precedes the interval before it: intervals must be ascending"
            ));
        }
        out.push((a, b));
    }
    Ok(out)
}

/// `JobSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<u32>,
    /// 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// 6 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u32>,
    /// While true, no pod runs (active ones are deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `NonIndexed` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<CompletionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
    /// Indexed Jobs: failures allowed per index before the index fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit_per_index: Option<u32>,
    /// With backoffLimitPerIndex: failed indexes past this fail the Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_indexes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,
    /// When a pod being deleted may be replaced; shoal deletes a pod from
    /// the store at once, so only `TerminatingOrFailed` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_replacement_policy: Option<PodReplacementPolicy>,
    /// The controller that runs this Job; shoal's own Job controller leaves
    /// it alone unless this is `kubernetes.io/job-controller` or unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// A selector chosen by the user (only with `manualSelector: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    pub template: PodTemplateSpec,
}

/// The value of `managedBy` that means shoal's (Kubernetes') own Job controller.
pub const JOB_CONTROLLER: &str = "kubernetes.io/job-controller";

impl JobSpec {
    /// Whether shoal's Job controller runs this Job (no other `managedBy`).
    pub fn managed_here(&self) -> bool {
        self.managed_by
            .as_deref()
            .is_none_or(|m| m == JOB_CONTROLLER)
    }
}

/// `podReplacementPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodReplacementPolicy {
    /// A pod being deleted is replaced at once.
    TerminatingOrFailed,
    /// A pod being deleted keeps its place until it has stopped (refused
    /// by validation: see [`JobSpec::pod_replacement_policy`]).
    Failed,
}

/// How a Job counts its completions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionMode {
    /// Any `completions` successful pods complete the Job.
    #[default]
    NonIndexed,
    /// Each index in `0..completions` needs one successful pod.
    Indexed,
}
