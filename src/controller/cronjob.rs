//! The CronJob controller: creates one Job per scheduled time, exactly once
//! while a majority is up. The Job's name is derived from the scheduled
//! time (`{cronjob}-{minutes since the epoch}`, as Kubernetes), and its
//! creation is one command with the CronJob's new `lastScheduleTime`,
//! fenced on the CronJob's resourceVersion: a deposed leader acting on an
//! older view loses the fence or finds the name taken. A new leader
//! catches up on every time missed within `startingDeadlineSeconds`,
//! oldest first (without a deadline, only the latest, as Kubernetes).
//!
//! Deciding is [`plan`], a pure function of the CronJob, its Jobs, its
//! parsed schedule and the time.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::job::JobEvent;
use super::{Backoff, ControllerError, fence};
use crate::resource::schedule::Schedule;
use crate::resource::status::{CronJobStatus, JobStatus, ObjectReference};
use crate::resource::time::{parse_rfc3339, rfc3339};
use crate::resource::types::{Body, ConcurrencyPolicy, CronJobBody, CronJobSpec};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// The annotation on a CronJob's Job holding its scheduled time, as Kubernetes.
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// The annotation on a Job made by `create job --from=cronjob/...`, as kubectl.
pub const MANUAL_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";

/// The name of the Job for the time `t` (seconds since the epoch).
pub fn job_name(cron: &str, t: u64) -> String {
    format!("{cron}-{}", t / 60)
}

/// What the planner needs to know about one of a CronJob's Jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildJob {
    /// Its key.
    pub key: ObjectKey,
    /// Its resourceVersion, for the delete precondition.
    pub resource_version: u64,
    /// Its uid.
    pub uid: Option<String>,
    /// Whether it finished, whether it succeeded, and when.
    pub finished: Option<(bool, u64)>,
}

impl ChildJob {
    /// Reads a Job object.
    pub fn of(o: &Object) -> Option<ChildJob> {
        let st: JobStatus = o.status_or_default();
        let time = |c: &str| {
            st.condition(c)
                .and_then(|c| c.last_transition_time.as_deref())
                .and_then(parse_rfc3339)
                .unwrap_or(0)
        };
        let finished = if st.is("Complete") {
            let at = st
                .completion_time
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or_else(|| time("Complete"));
            Some((true, at))
        } else if st.is("Failed") {
            Some((false, time("Failed")))
        } else {
            None
        };
        Some(ChildJob {
            key: o.key()?,
            resource_version: o.resource_version(),
            uid: o.metadata.uid.clone(),
            finished,
        })
    }
}

/// The CronJob a plan is made for.
#[derive(Debug, Clone, Copy)]
pub struct CronRef<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its spec.
    pub spec: &'a CronJobSpec,
    /// Its status as read.
    pub status: &'a CronJobStatus,
    /// Its creationTimestamp (seconds since the epoch): no time before it is due.
    pub created: u64,
}

/// What one pass does to a CronJob.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CronPlan {
    /// The scheduled time to create a Job for.
    pub create: Option<u64>,
    /// Jobs to delete (Replace, history limits), with their versions.
    pub delete: Vec<(ObjectKey, u64)>,
    /// The CronJob's status after the pass.
    pub status: CronJobStatus,
    /// Events to record.
    pub events: Vec<JobEvent>,
}

/// Most missed times looked at in one pass.
const MAX_MISSED: usize = 100;

/// Decides one pass over a CronJob at `now` (seconds since the epoch).
pub fn plan(cron: CronRef<'_>, schedule: &Schedule, jobs: &[ChildJob], now: u64) -> CronPlan {
    let spec = cron.spec;
    let mut plan = CronPlan {
        status: cron.status.clone(),
        ..CronPlan::default()
    };
    let active: Vec<&ChildJob> = jobs.iter().filter(|j| j.finished.is_none()).collect();
    let reference = |j: &ChildJob| ObjectReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: j.key.namespace.clone(),
        name: j.key.name.clone(),
        uid: j.uid.clone(),
        extra: Default::default(),
    };
    plan.status.active = active.iter().map(|j| reference(j)).collect();
    let last_ok = jobs
        .iter()
        .filter_map(|j| j.finished.filter(|(ok, _)| *ok).map(|(_, at)| at))
        .max();
    let prev_ok = cron
        .status
        .last_successful_time
        .as_deref()
        .and_then(parse_rfc3339);
    if let Some(t) = last_ok
        && prev_ok.is_none_or(|p| t > p)
    {
        plan.status.last_successful_time = Some(rfc3339(t));
    }

    // History: the newest finished Jobs of each outcome are kept.
    for (ok, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<(u64, &ChildJob)> = jobs
            .iter()
            .filter_map(|j| j.finished.filter(|(o, _)| *o == ok).map(|(_, at)| (at, j)))
            .collect();
        done.sort_by(|a, b| (b.0, &b.1.key.name).cmp(&(a.0, &a.1.key.name)));
        for (_, j) in done.into_iter().skip(limit as usize) {
            plan.delete.push((j.key.clone(), j.resource_version));
        }
    }

    if spec.suspend == Some(true) {
        return plan;
    }
    let last = cron
        .status
        .last_schedule_time
        .as_deref()
        .and_then(parse_rfc3339);
    // Times at or before this were scheduled already, or came before the CronJob.
    let mut after = last.unwrap_or(cron.created);
    let due = match spec.starting_deadline_seconds {
        Some(d) => {
            // The oldest time still within the deadline comes first.
            after = after.max(now.saturating_sub(d).saturating_sub(1));
            schedule
                .times_between(after, now, MAX_MISSED)
                .0
                .first()
                .copied()
        }
        None => schedule.last_at_or_before(now).filter(|t| *t > after),
    };
    let Some(t) = due else { return plan };
    let name = job_name(cron.name, t);
    if jobs.iter().any(|j| j.key.name == name) {
        // Created already (the status write was lost with the command
        // that made it, which cannot happen, or a user made it): record it.
        plan.status.last_schedule_time = Some(rfc3339(t));
        return plan;
    }
    match spec.concurrency_policy.unwrap_or_default() {
        ConcurrencyPolicy::Forbid if !active.is_empty() => {
            // Still due while within the deadline: the next pass looks again.
            return plan;
        }
        ConcurrencyPolicy::Replace if !active.is_empty() => {
            for j in &active {
                plan.delete.push((j.key.clone(), j.resource_version));
            }
            plan.status.active.clear();
            plan.events.push(JobEvent {
                warning: false,
                reason: "SuccessfulDelete",
                message: format!(
                    "Deleted job {}",
                    active
                        .iter()
                        .map(|j| j.key.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        _ => {}
    }
    plan.create = Some(t);
    plan.status.last_schedule_time = Some(rfc3339(t));
    plan.status.active.push(ObjectReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: cron.namespace.to_string(),
        name: name.clone(),
        uid: None,
        extra: Default::default(),
    });
    plan.events.push(JobEvent {
        warning: false,
        reason: "SuccessfulCreate",
        message: format!("Created job {name}"),
    });
    plan
}

/// One pass over every CronJob at `now` (seconds since the epoch).
pub async fn reconcile(
    store: &Store,
    crons: &[Object],
    jobs: &[Object],
    now: u64,
    backoff: &mut Backoff,
) {
    let mut by_owner: BTreeMap<&str, Vec<ChildJob>> = BTreeMap::new();
    for j in jobs {
        let Some(r) = j.metadata.controller_ref() else {
            continue;
        };
        if r.kind != "CronJob" {
            continue;
        }
        if let Some(c) = ChildJob::of(j) {
            by_owner.entry(r.uid.as_str()).or_default().push(c);
        }
    }
    for cron in crons {
        let uid = cron.metadata.uid.as_deref().unwrap_or_default();
        if !backoff.ready(uid) {
            continue;
        }
        let mine = by_owner.get(uid).map(Vec::as_slice).unwrap_or_default();
        match sync_one(store, cron, mine, now).await {
            Ok(()) => backoff.succeeded(uid),
            Err(e) => {
                let wait = backoff.failed(uid);
                let key = cron.key().map(|k| k.to_string()).unwrap_or_default();
                e.log("cronjob", &format!("{key} (next try in {wait:?})"));
            }
        }
    }
    let live: HashSet<&str> = crons
        .iter()
        .filter_map(|c| c.metadata.uid.as_deref())
        .collect();
    backoff.retain(&live);
}

/// The owner reference a CronJob's Jobs carry.
pub fn owner_ref(cron: &Object) -> OwnerReference {
    OwnerReference::to(cron, true)
}

/// The Job a CronJob's template makes, named `name`, with `annotation`
/// added (the scheduled time, or kubectl's manual mark).
pub fn new_job(cron: &Object, body: &CronJobBody, name: &str, annotation: (&str, &str)) -> Object {
    let tmpl = &body.spec.job_template;
    let meta = tmpl.metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations;
    annotations.insert(annotation.0.into(), annotation.1.into());
    let spec = serde_json::to_value(&tmpl.spec).unwrap_or(Value::Null);
    Object {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: cron.metadata.namespace.clone(),
            labels: meta.labels,
            annotations,
            creation_timestamp: Some(crate::resource::time::now_rfc3339()),
            owner_references: vec![owner_ref(cron)],
            ..Default::default()
        },
        body: json!({ "spec": spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

async fn sync_one(
    store: &Store,
    cron: &Object,
    jobs: &[ChildJob],
    now: u64,
) -> Result<(), ControllerError> {
    let Some(key) = cron.key() else { return Ok(()) };
    let body = CronJobBody::from_object(cron).map_err(|e| format!("{key}: {e}"))?;
    let schedule = Schedule::parse(&body.spec.schedule, body.spec.time_zone.as_deref())
        .map_err(|e| format!("{key}: spec.schedule: {e}"))?;
    let prev: CronJobStatus = cron.status_or_default();
    let created = cron
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    let p = plan(
        CronRef {
            name: &key.name,
            namespace: &key.namespace,
            spec: &body.spec,
            status: &prev,
            created,
        },
        &schedule,
        jobs,
        now,
    );
    let mut ops = vec![fence(cron)?];
    for (k, v) in &p.delete {
        ops.push(Op::Delete {
            key: k.clone(),
            precondition: Precondition::Version(*v),
        });
    }
    if let Some(t) = p.create {
        let name = job_name(&key.name, t);
        let job = new_job(cron, &body, &name, (SCHEDULED_ANNOTATION, &rfc3339(t)));
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::Job, &key.namespace, &name),
            object: serde_json::to_vec(&job).map_err(|e| e.to_string())?,
            precondition: Precondition::MustNotExist,
        });
        let lag = now.saturating_sub(t);
        ::metrics::histogram!(crate::controller::metrics::CRONJOB_START_DELAY_SECONDS)
            .record(lag as f64);
    }
    let stamp = rfc3339(now);
    for e in &p.events {
        ops.push(super::job::event(
            cron,
            &key,
            e,
            &stamp,
            owner_ref(cron),
            "cronjob-controller",
        )?);
    }
    if !cron.body.contains_key("status") || p.status != prev {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: cron.metadata.uid.clone(),
            status: serde_json::to_vec(&p.status).map_err(|e| e.to_string())?,
        });
    }
    if ops.len() == 1 {
        return Ok(());
    }
    store.write(Command { ops }).await?;
    if p.create.is_some() {
        ::metrics::counter!(crate::controller::metrics::CRONJOB_JOBS_CREATED_TOTAL).increment(1);
    }
    Ok(())
}
