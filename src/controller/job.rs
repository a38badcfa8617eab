//! The Job controller: runs each Job's pods until `completions` of them
//! succeed (or, for an Indexed Job, one per index), replacing failed pods
//! under restartPolicy Never after an exponential back-off, and fails the
//! Job past `backoffLimit` or `activeDeadlineSeconds`. A finished Job is
//! deleted `ttlSecondsAfterFinished` later; its pods go with it (garbage
//! collection by owner).
//!
//! Deciding is [`plan`], a pure function of the Job, its pods and the time.
//! Every pod name is derived from the Job's uid and a number that only
//! grows (the attempt of an index, or the pod's sequence number), and one
//! pass's writes are one command fenced on the Job's resourceVersion that
//! also writes the Job's new status: a deposed leader acting on an older
//! view either loses the fence or produces a name that already exists, so
//! two pods never run for one index, and never more than `parallelism`.

mod policy;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;

pub use policy::{IndexFailures, Verdict};

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Backoff, ControllerError, fence};
use crate::resource::status::{Condition, JobStatus, PodPhase, PodStatus};
use crate::resource::time::{parse_rfc3339, rfc3339};
use crate::resource::types::{Body, CompletionMode, EnvVar, JobBody, JobSpec};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// The annotation (and label) holding an Indexed Job pod's index, as Kubernetes.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// shoal's annotation: the pod's attempt at its index, or its sequence
/// number in a NonIndexed Job; the next pod's number is one more.
pub const ATTEMPT_ANNOTATION: &str = "shoal.io/job-attempt";
/// The label naming a pod's Job, as Kubernetes.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The older label naming a pod's Job, still set by Kubernetes.
pub const JOB_NAME_LABEL_SHORT: &str = "job-name";
/// The label holding the uid of a pod's Job, as Kubernetes.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The older label holding the uid of a pod's Job, still set by Kubernetes.
pub const CONTROLLER_UID_LABEL_SHORT: &str = "controller-uid";
/// The annotation holding the failures of a pod's index before it, as
/// Kubernetes (backoffLimitPerIndex).
pub const INDEX_FAILURES_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// The environment variable holding an Indexed Job pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Most pods one Job creates in a pass: one command stays small.
const MAX_CREATES_PER_PASS: usize = 100;
/// Kubernetes' cap on the back-off between retries.
const BACKOFF_CAP_MS: u64 = 360_000;

/// How the controller paces a Job's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The back-off after the first failure (doubling per failure, capped
    /// at six minutes): 10 s as Kubernetes unless configured.
    pub backoff_base_ms: u64,
    /// The most pods one Job runs at once, whatever its parallelism asks.
    pub max_parallelism: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backoff_base_ms: 10_000,
            max_parallelism: 10_000,
        }
    }
}

/// What the planner needs to know about one of a Job's pods.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPod {
    /// Its key.
    pub key: ObjectKey,
    /// Its resourceVersion, for the delete precondition.
    pub resource_version: u64,
    /// Pending when the agent has not reported yet.
    pub phase: PodPhase,
    /// Its Ready condition is True.
    pub ready: bool,
    /// Its completion index (Indexed Jobs).
    pub index: Option<u32>,
    /// Its attempt at the index, or its sequence number.
    pub attempt: u32,
    /// When it finished (seconds since the epoch), if it did.
    pub finished: Option<u64>,
    /// Container restarts (restartPolicy OnFailure counts them as failures).
    pub restarts: u32,
    /// Failed because its node was lost (Kubernetes' DisruptionTarget):
    /// not the workload's fault, so not counted against backoffLimit.
    pub disrupted: bool,
    /// Each terminated container's name and exit code (init containers too).
    pub exit_codes: Vec<(String, i64)>,
    /// Its conditions as (type, status).
    pub conditions: Vec<(String, String)>,
    /// Counted failures of its index before it (backoffLimitPerIndex).
    pub index_failures: u32,
}

impl JobPod {
    /// Reads a pod object.
    pub fn of(o: &Object) -> Option<JobPod> {
        let key = o.key()?;
        let st: PodStatus = o.status_or_default();
        let ann = &o.metadata.annotations;
        let num = |k: &str| ann.get(k).and_then(|v| v.parse::<u32>().ok());
        let finished = st
            .container_statuses
            .iter()
            .filter_map(|c| c.state.terminated.as_ref()?.finished_at.as_deref())
            .filter_map(parse_rfc3339)
            .max()
            .or_else(|| {
                st.condition("Ready")
                    .and_then(|c| c.last_transition_time.as_deref())
                    .and_then(parse_rfc3339)
            });
        let phase = st.phase.unwrap_or(PodPhase::Pending);
        Some(JobPod {
            key,
            resource_version: o.resource_version(),
            phase,
            ready: st.is_ready(),
            index: num(INDEX_ANNOTATION),
            attempt: num(ATTEMPT_ANNOTATION).unwrap_or(0),
            finished: if phase.is_terminal() { finished } else { None },
            restarts: st.container_statuses.iter().map(|c| c.restart_count).sum(),
            disrupted: st.reason.as_deref() == Some("NodeLost")
                || st
                    .condition("DisruptionTarget")
                    .is_some_and(Condition::is_true),
            exit_codes: st
                .init_container_statuses
                .iter()
                .chain(&st.container_statuses)
                .filter_map(|c| Some((c.name.clone(), c.state.terminated.as_ref()?.exit_code)))
                .collect(),
            conditions: st
                .conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect(),
            index_failures: num(INDEX_FAILURES_ANNOTATION).unwrap_or(0),
        })
    }

    fn active(&self) -> bool {
        !self.phase.is_terminal()
    }
}

/// A pod the plan creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPod {
    /// Its name, derived from the Job's uid, index and attempt.
    pub name: String,
    /// Its completion index (Indexed Jobs).
    pub index: Option<u32>,
    /// Its attempt at the index, or its sequence number.
    pub attempt: u32,
    /// Counted failures of its index so far (backoffLimitPerIndex).
    pub index_failures: u32,
}

/// An event the plan records on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// Warning rather than Normal.
    pub warning: bool,
    /// `SuccessfulCreate`, `Completed`, `BackoffLimitExceeded`, ...
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// What one pass does to a Job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Pods to create.
    pub create: Vec<NewPod>,
    /// Pods to delete, with the version they were read at.
    pub delete: Vec<(ObjectKey, u64)>,
    /// The Job's status after the pass.
    pub status: JobStatus,
    /// The Job's time to live after finishing has passed.
    pub delete_job: bool,
    /// Events to record.
    pub events: Vec<JobEvent>,
}

/// The Job a plan is made for.
#[derive(Debug, Clone, Copy)]
pub struct JobRef<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its uid, from which pod names are derived.
    pub uid: &'a str,
    /// Its spec.
    pub spec: &'a JobSpec,
    /// Its status as read.
    pub status: &'a JobStatus,
}

/// A pod name for the Job: `{job}-{index}-{5 chars}` (Indexed) or
/// `{job}-{5 chars}`, stable for (uid, index, attempt). The Job's name is
/// cut so the whole stays a DNS label.
pub fn pod_name(job: &str, uid: &str, index: Option<u32>, attempt: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let seed = match index {
        Some(i) => format!("{uid}/{i}/{attempt}"),
        None => format!("{uid}/{attempt}"),
    };
    let d = Sha256::digest(seed.as_bytes());
    let suffix: String = d[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let tail = match index {
        Some(i) => format!("-{i}-{suffix}"),
        None => format!("-{suffix}"),
    };
    let mut prefix = job.to_string();
    prefix.truncate(63usize.saturating_sub(tail.len()));
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}{tail}")
}

/// Kubernetes' back-off before the next pod after `failures` failures.
pub fn backoff_ms(base_ms: u64, failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    let shift = (failures - 1).min(32);
    base_ms.saturating_mul(1u64 << shift).min(BACKOFF_CAP_MS)
}

/// Formats a set of indexes as Kubernetes' `completedIndexes` (`1,3-5`).
pub fn format_indexes(set: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end.wrapping_add(1))) {
            end += 1;
            it.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// Parses `completedIndexes`, keeping indexes below `limit` (garbage is skipped).
pub fn parse_indexes(s: &str, limit: u32) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            continue;
        };
        set.extend(a..=b.min(limit.saturating_sub(1)));
    }
    set
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(now.into()),
        last_update_time: Some(now.into()),
        ..Condition::default()
    }
}

/// Sets a condition, keeping the list as it was when nothing changes.
fn set_condition(st: &mut JobStatus, c: Condition) -> bool {
    match st.conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) if x.status == c.status && x.reason == c.reason => false,
        Some(x) => {
            *x = c;
            true
        }
        None => {
            st.conditions.push(c);
            true
        }
    }
}

/// When the Job finished (seconds since the epoch), if it did.
fn finished_at(st: &JobStatus) -> Option<u64> {
    st.conditions
        .iter()
        .filter(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.is_true())
        .filter_map(|c| c.last_transition_time.as_deref())
        .filter_map(parse_rfc3339)
        .next()
}

fn listed(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// Decides one pass over a Job from its spec, its status as read, its pods
/// and the time (milliseconds since the epoch).
pub fn plan(job: JobRef<'_>, pods: &[JobPod], now_ms: u64, settings: Settings) -> Plan {
    let spec = job.spec;
    let now_secs = now_ms / 1000;
    let now = rfc3339(now_secs);
    let indexed = spec.completion_mode == Some(CompletionMode::Indexed);
    let completions = spec.completions;
    let mut plan = Plan {
        status: job.status.clone(),
        ..Plan::default()
    };
    let st = &mut plan.status;

    let active: Vec<&JobPod> = pods.iter().filter(|p| p.active()).collect();
    let verdicts: Vec<(usize, Verdict)> = pods
        .iter()
        .enumerate()
        .filter(|(_, p)| policy::failed(p))
        .map(|(n, p)| (n, policy::verdict(spec.pod_failure_policy.as_ref(), p)))
        .collect();
    // Every failure but an ignored one counts in status.failed, as Kubernetes.
    let failed_pods: Vec<&JobPod> = verdicts
        .iter()
        .filter(|(_, v)| *v != Verdict::Ignore)
        .map(|(n, _)| &pods[*n])
        .collect();
    // Counts only grow: a pod deleted by hand does not undo its failure or
    // make its success run again.
    let restarts: u32 = pods.iter().map(|p| p.restarts).sum();
    let failed = u32::try_from(failed_pods.len())
        .unwrap_or(u32::MAX)
        .saturating_add(restarts);
    st.failed = st.failed.max(failed);
    let mut done: BTreeSet<u32> = BTreeSet::new();
    if indexed {
        let limit = completions.unwrap_or(0);
        done = st
            .completed_indexes
            .as_deref()
            .map(|s| parse_indexes(s, limit))
            .unwrap_or_default();
        done.extend(
            pods.iter()
                .filter(|p| p.phase == PodPhase::Succeeded)
                .filter_map(|p| p.index)
                .filter(|i| *i < limit),
        );
        st.succeeded = u32::try_from(done.len()).unwrap_or(u32::MAX);
        st.completed_indexes = Some(format_indexes(&done));
    } else {
        let ok = pods
            .iter()
            .filter(|p| p.phase == PodPhase::Succeeded)
            .count();
        st.succeeded = st.succeeded.max(u32::try_from(ok).unwrap_or(u32::MAX));
    }
    let per_index = indexed && spec.backoff_limit_per_index.is_some();
    let mut by_index = IndexFailures::default();
    if per_index {
        let limit = completions.unwrap_or(0);
        by_index = policy::index_failures(
            pods,
            &verdicts,
            spec.backoff_limit_per_index.unwrap_or(0),
            limit,
        );
        let mut gone = st
            .failed_indexes
            .as_deref()
            .map(|s| parse_indexes(s, limit))
            .unwrap_or_default();
        gone.extend(by_index.failed.iter().filter(|i| !done.contains(i)));
        by_index.failed = gone;
        st.failed_indexes = Some(format_indexes(&by_index.failed));
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    st.active = count(active.len());
    st.ready = Some(count(active.iter().filter(|p| p.ready).count()));

    let stop_all = |plan: &mut Plan| {
        let names: Vec<String> = active.iter().map(|p| p.key.name.clone()).collect();
        plan.delete
            .extend(active.iter().map(|p| (p.key.clone(), p.resource_version)));
        if !names.is_empty() {
            plan.events.push(JobEvent {
                warning: false,
                reason: "SuccessfulDelete",
                message: format!("Deleted pod: {}", listed(&names)),
            });
        }
        plan.status.active = 0;
        plan.status.ready = Some(0);
    };

    if st.is_finished() {
        stop_all(&mut plan);
        if let (Some(ttl), Some(at)) = (spec.ttl_seconds_after_finished, finished_at(&plan.status))
            && now_secs >= at.saturating_add(u64::from(ttl))
        {
            plan.delete_job = true;
        }
        return plan;
    }

    if spec.suspend == Some(true) {
        if set_condition(
            st,
            condition("Suspended", true, "JobSuspended", "Job suspended", &now),
        ) {
            plan.events.push(JobEvent {
                warning: false,
                reason: "Suspended",
                message: "Job suspended".into(),
            });
        }
        stop_all(&mut plan);
        return plan;
    }
    if st.is("Suspended") {
        set_condition(
            st,
            condition("Suspended", false, "JobResumed", "Job resumed", &now),
        );
        // As Kubernetes: the deadline counts from the resume.
        st.start_time = Some(now.clone());
        plan.events.push(JobEvent {
            warning: false,
            reason: "Resumed",
            message: "Job resumed".into(),
        });
    }
    let started = match st.start_time.as_deref().and_then(parse_rfc3339) {
        Some(t) => t,
        None => {
            st.start_time = Some(now.clone());
            now_secs
        }
    };

    // As Kubernetes: with backoffLimitPerIndex, only an explicit
    // backoffLimit bounds the Job's failures as a whole.
    let backoff_limit = spec
        .backoff_limit
        .unwrap_or(if per_index { u32::MAX } else { 6 });
    let fail_job = verdicts.iter().find_map(|(_, v)| match v {
        Verdict::FailJob(m) => Some(m.clone()),
        _ => None,
    });
    let failure = if let Some(m) = fail_job {
        Some(("PodFailurePolicy", m))
    } else if let Some(d) = spec.active_deadline_seconds
        && now_secs >= started.saturating_add(d)
    {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline".to_string(),
        ))
    } else if st.failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_string(),
        ))
    } else if per_index
        && let Some(m) = spec.max_failed_indexes
        && by_index.failed.len() > m as usize
    {
        Some((
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes".to_string(),
        ))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        fail(&mut plan, reason, message, &now);
        stop_all(&mut plan);
        return plan;
    }
    let st = &mut plan.status;

    let total = completions.unwrap_or(0);
    let by_policy = match &spec.success_policy {
        Some(sp) if indexed => policy::success_rule_met(sp, &done, total),
        _ => None,
    };
    let complete = match (indexed, completions) {
        (true, c) => done.len() >= c.unwrap_or(0) as usize,
        (false, Some(c)) => st.succeeded >= c,
        // A work queue: done when one pod succeeded and none still runs.
        (false, None) => st.succeeded >= 1 && active.is_empty(),
    };
    if by_policy.is_some() || complete {
        let (reason, message) = match by_policy {
            Some(i) if !complete => ("SuccessPolicy", format!("Matched rules at index {i}")),
            _ => (
                "CompletionsReached",
                "Reached expected number of succeeded pods".to_string(),
            ),
        };
        // As Kubernetes since 1.31: SuccessCriteriaMet, then Complete.
        set_condition(
            st,
            condition("SuccessCriteriaMet", true, reason, &message, &now),
        );
        set_condition(st, condition("Complete", true, reason, &message, &now));
        st.completion_time = Some(now.clone());
        plan.events.push(JobEvent {
            warning: false,
            reason: "Completed",
            message: "Job completed".into(),
        });
        stop_all(&mut plan);
        return plan;
    }

    if per_index
        && !by_index.failed.is_empty()
        && done.len() + by_index.failed.len() >= total as usize
    {
        fail(
            &mut plan,
            "FailedIndexes",
            "Job has failed indexes".to_string(),
            &now,
        );
        stop_all(&mut plan);
        return plan;
    }
    let st = &mut plan.status;

    // Retries wait out the back-off from the last failure (of the index,
    // under backoffLimitPerIndex).
    let last_failure = failed_pods.iter().filter_map(|p| p.finished).max();
    if !per_index && let Some(at) = last_failure {
        let due = at
            .saturating_mul(1000)
            .saturating_add(backoff_ms(settings.backoff_base_ms, failed));
        if now_ms < due {
            return plan;
        }
    }

    let parallelism = spec.parallelism.unwrap_or(1).min(settings.max_parallelism) as usize;
    let taken: HashSet<&str> = pods.iter().map(|p| p.key.name.as_str()).collect();
    let room = parallelism.saturating_sub(active.len());
    let mut create = Vec::new();
    if indexed {
        let running: HashSet<u32> = active.iter().filter_map(|p| p.index).collect();
        let mut next_attempt: BTreeMap<u32, u32> = BTreeMap::new();
        for p in pods {
            if let Some(i) = p.index {
                let n = next_attempt.entry(i).or_insert(0);
                *n = (*n).max(p.attempt.saturating_add(1));
            }
        }
        let backing_off = |i: &u32| {
            let (Some(at), Some(n)) = (by_index.last.get(i), by_index.counts.get(i)) else {
                return false;
            };
            let due = at
                .saturating_mul(1000)
                .saturating_add(backoff_ms(settings.backoff_base_ms, *n));
            now_ms < due
        };
        for i in (0..completions.unwrap_or(0))
            .filter(|i| !done.contains(i) && !running.contains(i))
            .filter(|i| !by_index.failed.contains(i) && !backing_off(i))
            .take(room.min(MAX_CREATES_PER_PASS))
        {
            let mut attempt = next_attempt.get(&i).copied().unwrap_or(0);
            let mut name = pod_name(job.name, job.uid, Some(i), attempt);
            // A hash that collides with an older attempt's name moves on.
            while taken.contains(name.as_str()) {
                attempt = attempt.saturating_add(1);
                name = pod_name(job.name, job.uid, Some(i), attempt);
            }
            create.push(NewPod {
                name,
                index: Some(i),
                attempt,
                index_failures: by_index.counts.get(&i).copied().unwrap_or(0),
            });
        }
    } else {
        let want = match completions {
            Some(c) => (c.saturating_sub(st.succeeded) as usize).min(parallelism),
            None if st.succeeded >= 1 => 0,
            None => parallelism,
        };
        let n = want.saturating_sub(active.len()).min(MAX_CREATES_PER_PASS);
        let mut seq = pods
            .iter()
            .filter(|p| p.index.is_none())
            .map(|p| p.attempt.saturating_add(1))
            .max()
            .unwrap_or(0);
        while create.len() < n {
            let name = pod_name(job.name, job.uid, None, seq);
            if !taken.contains(name.as_str()) {
                create.push(NewPod {
                    name,
                    index: None,
                    attempt: seq,
                    index_failures: 0,
                });
            }
            seq = seq.saturating_add(1);
        }
    }
    if !create.is_empty() {
        let names: Vec<String> = create.iter().map(|c| c.name.clone()).collect();
        plan.events.push(JobEvent {
            warning: false,
            reason: "SuccessfulCreate",
            message: format!("Created pod: {}", listed(&names)),
        });
        plan.status.active = plan.status.active.saturating_add(count(create.len()));
    }
    // A pod lost with its node goes in the command that creates its
    // replacement, at the version that says it was lost: its node's agent,
    // back or slow to hear, can then no longer report it running next to
    // the replacement. Only then, so its attempt number is never reused.
    for p in pods
        .iter()
        .filter(|p| p.phase == PodPhase::Failed && p.disrupted)
    {
        let replaced = create
            .iter()
            .any(|c| c.index == p.index && c.attempt > p.attempt);
        if replaced {
            plan.delete.push((p.key.clone(), p.resource_version));
        }
    }
    plan.create = create;
    plan
}

/// Marks the Job failed: FailureTarget, then Failed, as Kubernetes since 1.31.
fn fail(plan: &mut Plan, reason: &'static str, message: String, now: &str) {
    let st = &mut plan.status;
    set_condition(st, condition("FailureTarget", true, reason, &message, now));
    set_condition(st, condition("Failed", true, reason, &message, now));
    plan.events.push(JobEvent {
        warning: true,
        reason,
        message,
    });
}

/// One pass over every Job; a Job whose sync failed waits out its back-off.
pub async fn reconcile(
    store: &Store,
    jobs: &[Object],
    pods: &[Object],
    settings: Settings,
    backoff: &mut Backoff,
) {
    let mut by_owner: BTreeMap<&str, Vec<&Object>> = BTreeMap::new();
    for p in pods {
        let Some(r) = p.metadata.controller_ref() else {
            continue;
        };
        if r.kind == "Job" {
            by_owner.entry(r.uid.as_str()).or_default().push(p);
        }
    }
    let now = super::now_millis();
    for job in jobs {
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        if !backoff.ready(uid) {
            continue;
        }
        let mine = by_owner.get(uid).map(Vec::as_slice).unwrap_or_default();
        match sync_one(store, job, mine, now, settings).await {
            Ok(()) => backoff.succeeded(uid),
            Err(e) => {
                let wait = backoff.failed(uid);
                let key = job.key().map(|k| k.to_string()).unwrap_or_default();
                e.log("job", &format!("{key} (next try in {wait:?})"));
            }
        }
    }
    let live: HashSet<&str> = jobs
        .iter()
        .filter_map(|j| j.metadata.uid.as_deref())
        .collect();
    backoff.retain(&live);
}

fn owner_ref(job: &Object) -> OwnerReference {
    OwnerReference::to(job, true)
}

/// The pod a Job's template makes for `p`.
fn new_pod(
    job: &Object,
    body: &JobBody,
    p: &NewPod,
    ns: &str,
    policy: &mut crate::admission::Policy,
) -> Result<Vec<u8>, ControllerError> {
    let tmpl = &body.spec.template;
    let meta = tmpl.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels;
    let mut annotations = meta.annotations;
    labels.insert(JOB_NAME_LABEL.into(), job.metadata.name.clone());
    labels.insert(JOB_NAME_LABEL_SHORT.into(), job.metadata.name.clone());
    // As Kubernetes, unless the user chose the selector (and so the labels).
    if body.spec.manual_selector != Some(true) {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        labels.insert(CONTROLLER_UID_LABEL.into(), uid.clone());
        labels.insert(CONTROLLER_UID_LABEL_SHORT.into(), uid);
    }
    annotations.insert(ATTEMPT_ANNOTATION.into(), p.attempt.to_string());
    let mut spec = tmpl.spec.clone();
    if p.index.is_some() && body.spec.backoff_limit_per_index.is_some() {
        annotations.insert(
            INDEX_FAILURES_ANNOTATION.into(),
            p.index_failures.to_string(),
        );
    }
    if let Some(i) = p.index {
        labels.insert(INDEX_ANNOTATION.into(), i.to_string());
        annotations.insert(INDEX_ANNOTATION.into(), i.to_string());
        for c in spec.init_containers.iter_mut().chain(&mut spec.containers) {
            c.env.retain(|e| e.name != INDEX_ENV);
            c.env.push(EnvVar {
                name: INDEX_ENV.into(),
                value: Some(i.to_string()),
                value_from: None,
            });
        }
    }
    crate::admission::admit_new_pod(&mut spec, policy)
        .map_err(|e| format!("pods {:?} is forbidden: {e}", p.name))?;
    let spec = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    let obj = Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: p.name.clone(),
            namespace: Some(ns.to_string()),
            labels,
            annotations,
            creation_timestamp: Some(crate::resource::time::now_rfc3339()),
            owner_references: vec![owner_ref(job)],
            ..Default::default()
        },
        body: json!({ "spec": spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    Ok(serde_json::to_vec(&obj).map_err(|e| e.to_string())?)
}

/// An event on a Job or CronJob (`key`), one per (object, reason):
/// rewriting it keeps the number of its events bounded, and its owner
/// reference (`owner`) lets garbage collection delete it with the object.
pub(super) fn event(
    obj: &Object,
    key: &ObjectKey,
    e: &JobEvent,
    now: &str,
    owner: OwnerReference,
    component: &str,
) -> Result<Op, ControllerError> {
    let kind = key.kind.as_str();
    let name = format!(
        "{}.{}.{}",
        key.name,
        kind.to_ascii_lowercase(),
        e.reason.to_ascii_lowercase()
    );
    let body = json!({
        "involvedObject": {
            "kind": kind,
            "apiVersion": key.kind.api_version(),
            "namespace": key.namespace,
            "name": key.name,
            "uid": obj.metadata.uid,
        },
        "reason": e.reason,
        "message": e.message,
        "type": if e.warning { "Warning" } else { "Normal" },
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": component},
    });
    let Value::Object(body) = body else {
        return Err("event body is not an object".into());
    };
    let obj = Object {
        api_version: "v1".into(),
        kind: "Event".into(),
        metadata: ObjectMeta {
            name: name.clone(),
            namespace: Some(key.namespace.clone()),
            creation_timestamp: Some(now.to_string()),
            owner_references: vec![owner],
            ..Default::default()
        },
        body,
    };
    Ok(Op::Put {
        key: ObjectKey::new(Kind::Event, &key.namespace, &name),
        object: serde_json::to_vec(&obj).map_err(|e| e.to_string())?,
        precondition: Precondition::None,
    })
}

async fn sync_one(
    store: &Store,
    job: &Object,
    pods: &[&Object],
    now_ms: u64,
    settings: Settings,
) -> Result<(), ControllerError> {
    let Some(key) = job.key() else { return Ok(()) };
    let body = JobBody::from_object(job).map_err(|e| format!("{key}: {e}"))?;
    // Another controller (spec.managedBy) runs this Job and writes its status.
    if !body.spec.managed_here() {
        return Ok(());
    }
    // A manual selector narrows the pods the Job counts: one relabelled
    // out of it no longer counts, as Kubernetes releases it.
    let pods: Vec<JobPod> = pods
        .iter()
        .filter(|p| {
            body.spec
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&p.metadata.labels))
        })
        .filter_map(|p| JobPod::of(p))
        .collect();
    let pods = pods.as_slice();
    let prev: JobStatus = job.status_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let p = plan(
        JobRef {
            name: &key.name,
            uid: &uid,
            spec: &body.spec,
            status: &prev,
        },
        pods,
        now_ms,
        settings,
    );
    let mut ops = vec![fence(job)?];
    for (k, v) in &p.delete {
        ops.push(Op::Delete {
            key: k.clone(),
            precondition: Precondition::Version(*v),
        });
    }
    let mut policy = if p.create.is_empty() {
        crate::admission::Policy::default()
    } else {
        crate::admission::policy(store, &key.namespace)
    };
    for c in &p.create {
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::Pod, &key.namespace, &c.name),
            object: match new_pod(job, &body, c, &key.namespace, &mut policy) {
                Ok(bytes) => bytes,
                Err(e) => {
                    super::failed_create(store, job, &key, &e.to_string(), "job-controller").await;
                    return Err(e);
                }
            },
            precondition: Precondition::MustNotExist,
        });
    }
    ops.extend(policy.quota_ops());
    let now = rfc3339(now_ms / 1000);
    for e in &p.events {
        ops.push(event(job, &key, e, &now, owner_ref(job), "job-controller")?);
    }
    if p.delete_job {
        ops.push(Op::Delete {
            key: key.clone(),
            precondition: Precondition::Version(job.resource_version()),
        });
    } else if !job.body.contains_key("status") || p.status != prev {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: job.metadata.uid.clone(),
            status: serde_json::to_vec(&p.status).map_err(|e| e.to_string())?,
        });
    }
    if ops.len() == 1 {
        return Ok(());
    }
    store.write(Command { ops }).await?;
    ::metrics::counter!(crate::controller::metrics::JOB_PODS_CREATED_TOTAL)
        .increment(p.create.len() as u64);
    ::metrics::counter!(crate::controller::metrics::JOB_PODS_DELETED_TOTAL)
        .increment(p.delete.len() as u64);
    if p.delete_job {
        tracing::info!(job = %key, "deleting a finished Job past its ttlSecondsAfterFinished");
    }
    Ok(())
}
