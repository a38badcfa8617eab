//! Jobs on the command line: `logs job/NAME`, `wait --for=condition=...`,
//! which works on any object with conditions, and `create job
//! --from=cronjob/NAME` (their table cells are in `columns`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Deserialize;

use super::client::{Client, ClientError, kind_arg, object_path};
use super::{UsageError, emit};
use crate::controller::cronjob::{MANUAL_ANNOTATION, new_job};
use crate::controller::job::JOB_NAME_LABEL;
use crate::resource::status::{Condition, PodStatus};
use crate::resource::types::{Body, CronJobBody};
use crate::resource::{Kind, Object};

/// `shoal create job NAME --from=cronjob/CRON`: a Job from the CronJob's
/// template, marked manual as kubectl does.
pub(super) async fn create_job_from(
    client: &Client,
    ns: &str,
    name: &str,
    from: &str,
) -> anyhow::Result<()> {
    let cron_name = match from.split_once('/') {
        Some((k, n)) if Kind::from_user(k) == Some(Kind::CronJob) => n,
        _ => {
            return Err(
                UsageError(format!("--from={from}: only cronjob/NAME is supported")).into(),
            );
        }
    };
    let cron = client.get(Kind::CronJob, ns, cron_name).await?;
    let body = CronJobBody::from_object(&cron).map_err(|e| anyhow!("cronjob {cron_name}: {e}"))?;
    let mut job = new_job(&cron, &body, name, (MANUAL_ANNOTATION, "manual"));
    // The API takes no owner references from users (kubectl sets one to
    // the CronJob): this Job stays when the CronJob is deleted.
    job.metadata.owner_references.clear();
    let path = object_path(Kind::Job, ns, None);
    client
        .send(
            reqwest::Method::POST,
            &path,
            Some(serde_json::to_vec(&job)?),
        )
        .await?;
    outln!("job.batch/{name} created");
    Ok(())
}

/// Splits `KIND/NAME` (or `KIND NAME`).
fn target(kind: &str, name: Option<&str>) -> anyhow::Result<(Kind, String)> {
    let (k, n) = match (kind.split_once('/'), name) {
        (Some((k, n)), None) => (k, n.to_string()),
        (None, Some(n)) => (kind, n.to_string()),
        _ => {
            return Err(UsageError(format!(
                "name one object, as KIND/NAME or KIND NAME (got {kind:?})"
            ))
            .into());
        }
    };
    Ok((kind_arg(k)?, n))
}

/// The pod `logs job/NAME` reads: a running one first, else the newest,
/// as kubectl picks one of the Job's pods.
pub(super) async fn job_pod(client: &Client, ns: &str, job: &str) -> anyhow::Result<String> {
    let j = client.get(Kind::Job, ns, job).await?;
    let uid = j.metadata.uid.clone().unwrap_or_default();
    let pods = client.list(Kind::Pod, Some(ns)).await?;
    let mut mine: Vec<&Object> = pods
        .iter()
        .filter(|p| {
            p.metadata.controller_ref().is_some_and(|r| r.uid == uid)
                || p.metadata.labels.get(JOB_NAME_LABEL).map(String::as_str) == Some(job)
                    && p.metadata.controller_ref().is_some_and(|r| r.kind == "Job")
        })
        .collect();
    mine.sort_by_key(|p| {
        let st: PodStatus = p.status_or_default();
        let running = st.phase.is_some_and(|ph| !ph.is_terminal());
        (
            running,
            p.metadata.creation_timestamp.clone(),
            p.metadata.name.clone(),
        )
    });
    mine.last()
        .map(|p| p.metadata.name.clone())
        .ok_or_else(|| anyhow!("job {job} has no pods (yet)"))
}

/// What `--for` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    /// The condition type, as the user wrote it (compared case-insensitively).
    pub condition: String,
    /// The status it must have: `True` unless `=False` was given.
    pub status: String,
}

/// Parses `condition=Complete` or `condition=Ready=False`.
pub(super) fn parse_for(s: &str) -> Result<WaitFor, String> {
    let Some(rest) = s.strip_prefix("condition=") else {
        return Err(format!(
            "--for={s}: only condition=TYPE[=STATUS] is supported (e.g. --for=condition=complete)"
        ));
    };
    let (condition, status) = rest.split_once('=').unwrap_or((rest, "True"));
    if condition.is_empty() {
        return Err("--for=condition= needs a condition type".into());
    }
    Ok(WaitFor {
        condition: condition.to_string(),
        status: status.to_string(),
    })
}

fn conditions(o: &Object) -> Vec<Condition> {
    o.body
        .get("status")
        .and_then(|st| st.get("conditions"))
        .and_then(|c| Vec::<Condition>::deserialize(c).ok())
        .unwrap_or_default()
}

/// Whether the object's conditions meet `want`.
pub(super) fn met(conds: &[Condition], want: &WaitFor) -> bool {
    conds.iter().any(|c| {
        c.type_.eq_ignore_ascii_case(&want.condition) && c.status.eq_ignore_ascii_case(&want.status)
    })
}

/// `shoal wait --for=condition=TYPE KIND/NAME`: exits 0 once the condition
/// holds, 1 on timeout (as kubectl). Waiting for a Job to complete ends at
/// once when it has failed, since it never will.
pub(super) async fn wait(
    client: &Client,
    kind: &str,
    name: Option<&str>,
    ns: &str,
    want: &WaitFor,
    timeout: u64,
) -> anyhow::Result<()> {
    let (kind, name) = target(kind, name)?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        match client.get(kind, ns, &name).await {
            Ok(o) => {
                let conds = conditions(&o);
                if met(&conds, want) {
                    outln!("{}/{name} condition met", kind.plural());
                    return Ok(());
                }
                if kind == Kind::Job
                    && want.condition.eq_ignore_ascii_case("complete")
                    && let Some(f) = conds.iter().find(|c| c.type_ == "Failed" && c.is_true())
                {
                    bail!(
                        "jobs/{name} failed ({}: {}), it will not complete",
                        f.reason.as_deref().unwrap_or("Failed"),
                        f.message.as_deref().unwrap_or("")
                    );
                }
            }
            Err(ClientError::Api { status: 404, .. }) => {
                bail!("{} {name:?} not found in namespace {ns}", kind.as_str());
            }
            // No leader for a moment (an election) or busy: ask again
            // until the timeout, as kubectl rides out a restarting server.
            Err(
                e @ ClientError::Api {
                    status: 503 | 429, ..
                },
            )
            | Err(e @ ClientError::Timeout { .. }) => {
                if Instant::now() >= deadline {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out waiting for the condition on {}/{name}",
                kind.plural()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
