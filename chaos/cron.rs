//! The CronJob workload: two CronJobs that fire every minute while the
//! faults run, a poller that remembers every Job it ever saw (by uid, so a
//! Job deleted by the history limit and created again under its name is
//! caught), and the check of shoal's promise: exactly one Job per
//! scheduled minute, and a `Forbid` CronJob's Jobs never overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use shoal::resource::time::parse_rfc3339;

use crate::cluster::{Cluster, NodeState};

/// The CronJob that must make a Job every minute (`Allow`, short pods).
pub const EVERY_MINUTE: &str = "chaos-cron";
/// The `Forbid` CronJob, whose pods outlive a minute: every other minute
/// is skipped, and two of its Jobs must never run at once.
pub const FORBID: &str = "chaos-cron-forbid";

/// How long the `Forbid` CronJob's pods run: past the next minute, so a
/// Forbid that does not hold shows as an overlap.
const FORBID_POD_SECS: u64 = 75;

/// The two CronJobs as a manifest. Catch-up reaches back 300 s, longer
/// than any fault holds, so a minute that passes while no leader can act
/// is made up afterwards rather than skipped.
/// `image` runs `sleep` (the command that sleeps, its argument appended).
pub fn manifest(image: &str, sleep: &[&str]) -> String {
    let cron = |name: &str, policy: &str, secs: u64| {
        let mut command: Vec<String> = sleep.iter().map(|s| s.to_string()).collect();
        command.push(secs.to_string());
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": policy,
                "startingDeadlineSeconds": 300,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {
                    "backoffLimit": 2,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "tick",
                            "image": image,
                            "command": command,
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }],
                    }},
                }},
            },
        })
        .to_string()
    };
    [
        cron(EVERY_MINUTE, "Allow", 2),
        cron(FORBID, "Forbid", FORBID_POD_SECS),
    ]
    .join("\n---\n")
}

/// One Job as the poller last saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeenJob {
    /// Its CronJob.
    pub cron: String,
    /// The scheduled minute (Unix seconds / 60) its name carries.
    pub minute: u64,
    /// Its uid.
    pub uid: String,
    /// Unix seconds of its creation.
    pub created: Option<u64>,
    /// Unix seconds it completed or failed, once it has.
    pub finished: Option<u64>,
}

/// Every Job the poller saw, by uid.
#[derive(Debug, Default)]
pub struct CronLog {
    jobs: BTreeMap<String, SeenJob>,
    polls: u64,
    failed_polls: u64,
}

/// The poller's handle.
pub struct Poller {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<CronLog>>,
    task: tokio::task::JoinHandle<()>,
}

/// Lists Jobs every 2 s (committed state, through whichever node answers)
/// until stopped. A Job lives at least three minutes (the history limit
/// keeps three newer ones), so no Job can come and go unseen.
pub fn start(cluster: Arc<Cluster>) -> Poller {
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(CronLog::default()));
    let task = tokio::spawn({
        let (stop, log) = (stop.clone(), log.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let listed = list_jobs(&cluster).await;
                {
                    let mut l = log.lock().unwrap_or_else(PoisonError::into_inner);
                    l.polls += 1;
                    match listed {
                        Some(items) => {
                            for j in items {
                                l.jobs.insert(j.uid.clone(), j);
                            }
                        }
                        None => l.failed_polls += 1,
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
    Poller { stop, log, task }
}

impl Poller {
    /// Stops polling (after one last list) and returns what was seen.
    pub async fn finish(self, cluster: &Cluster) -> CronLog {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        let mut log = std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(items) = list_jobs(cluster).await {
            for j in items {
                log.jobs.insert(j.uid.clone(), j);
            }
        }
        log
    }
}

async fn list_jobs(cluster: &Cluster) -> Option<Vec<SeenJob>> {
    for i in 0..cluster.len() {
        if cluster.state(i) != NodeState::Running {
            continue;
        }
        let Some(v) = cluster
            .get_json(
                i,
                "/v1/namespaces/default/jobs?consistent=true",
                Duration::from_secs(3),
            )
            .await
        else {
            continue;
        };
        return Some(v["items"].as_array()?.iter().filter_map(seen).collect());
    }
    None
}

/// A Job of one of the two CronJobs, `None` for any other object.
fn seen(job: &Value) -> Option<SeenJob> {
    let meta = &job["metadata"];
    let name = meta["name"].as_str()?;
    let cron = [FORBID, EVERY_MINUTE].into_iter().find(|c| {
        name.strip_prefix(c)
            .is_some_and(|rest| rest.starts_with('-'))
    })?;
    let minute = name[cron.len() + 1..].parse().ok()?;
    let status = &job["status"];
    let finished = status["completionTime"]
        .as_str()
        .and_then(parse_rfc3339)
        .or_else(|| {
            status["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Failed" && c["status"] == "True")
                    .and_then(|c| c["lastTransitionTime"].as_str())
                    .and_then(parse_rfc3339)
            })
        });
    Some(SeenJob {
        cron: cron.to_string(),
        minute,
        uid: meta["uid"].as_str()?.to_string(),
        created: meta["creationTimestamp"].as_str().and_then(parse_rfc3339),
        finished,
    })
}

/// What the check found.
#[derive(Debug, Default, Serialize)]
pub struct CronCheck {
    /// The minutes checked for the every-minute CronJob, `[first, last]`.
    pub window: (u64, u64),
    /// Jobs seen, per CronJob.
    pub jobs: BTreeMap<String, usize>,
    /// Minutes of the window without a Job of the every-minute CronJob.
    pub missing: Vec<u64>,
    /// Minutes with more than one Job (different uids) of one CronJob.
    pub doubled: Vec<String>,
    /// `Forbid` Jobs created while an earlier one had not finished.
    pub overlaps: Vec<String>,
    /// Lists made, and lists no node answered.
    pub polls: (u64, u64),
}

/// Checks the log over the minutes `first..=last` (Unix minutes).
pub fn check(log: &CronLog, first: u64, last: u64) -> CronCheck {
    let mut out = CronCheck {
        window: (first, last),
        polls: (log.polls, log.failed_polls),
        ..CronCheck::default()
    };
    let mut by_minute: BTreeMap<(&str, u64), BTreeSet<&str>> = BTreeMap::new();
    for j in log.jobs.values() {
        *out.jobs.entry(j.cron.clone()).or_default() += 1;
        by_minute
            .entry((j.cron.as_str(), j.minute))
            .or_default()
            .insert(j.uid.as_str());
    }
    for ((cron, minute), uids) in &by_minute {
        if uids.len() > 1 {
            out.doubled
                .push(format!("{cron}-{minute}: {} Jobs", uids.len()));
        }
    }
    for m in first..=last {
        if !by_minute.contains_key(&(EVERY_MINUTE, m)) {
            out.missing.push(m);
        }
    }
    let mut forbid: Vec<&SeenJob> = log.jobs.values().filter(|j| j.cron == FORBID).collect();
    forbid.sort_by_key(|j| (j.minute, j.created));
    for pair in forbid.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let overlap = match (a.finished, b.created) {
            (Some(end), Some(start)) => start < end,
            // The earlier one never finished while a later one exists.
            (None, _) => true,
            (_, None) => false,
        };
        if overlap {
            out.overlaps.push(format!(
                "{FORBID}-{} created at {} before {FORBID}-{} finished ({})",
                b.minute,
                b.created.map_or("?".into(), |t| t.to_string()),
                a.minute,
                a.finished.map_or("never".into(), |t| t.to_string())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(cron: &str, minute: u64, uid: &str, created: u64, finished: Option<u64>) -> SeenJob {
        SeenJob {
            cron: cron.into(),
            minute,
            uid: uid.into(),
            created: Some(created),
            finished,
        }
    }

    fn log(jobs: Vec<SeenJob>) -> CronLog {
        CronLog {
            jobs: jobs.into_iter().map(|j| (j.uid.clone(), j)).collect(),
            polls: 1,
            failed_polls: 0,
        }
    }

    #[test]
    fn one_job_a_minute_and_no_overlap_is_clean() {
        let l = log(vec![
            job(EVERY_MINUTE, 10, "a", 600, Some(603)),
            job(EVERY_MINUTE, 11, "b", 660, Some(663)),
            job(FORBID, 10, "f1", 600, Some(676)),
            job(FORBID, 12, "f2", 720, None),
        ]);
        let c = check(&l, 10, 11);
        assert!(
            c.missing.is_empty() && c.doubled.is_empty() && c.overlaps.is_empty(),
            "{c:?}"
        );
    }

    #[test]
    fn a_missing_minute_a_recreated_job_and_an_overlap_are_caught() {
        let l = log(vec![
            job(EVERY_MINUTE, 10, "a", 600, Some(603)),
            // Deleted by the history limit, then made again.
            job(EVERY_MINUTE, 10, "a2", 800, Some(803)),
            job(FORBID, 10, "f1", 600, Some(676)),
            job(FORBID, 11, "f2", 660, Some(740)),
        ]);
        let c = check(&l, 10, 12);
        assert_eq!(c.missing, vec![11, 12]);
        assert_eq!(c.doubled.len(), 1, "{c:?}");
        assert_eq!(c.overlaps.len(), 1, "{c:?}");
    }

    #[test]
    fn only_the_two_cronjobs_jobs_are_read() {
        let v = json!({"metadata": {"name": "chaos-cron-forbid-29000", "uid": "u",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"completionTime": "2026-01-01T00:01:15Z"}});
        let j = seen(&v).expect("a Forbid job");
        assert_eq!((j.cron.as_str(), j.minute), (FORBID, 29000));
        assert_eq!(j.finished.zip(j.created).map(|(f, c)| f - c), Some(75));
        let v = json!({"metadata": {"name": "chaos-cron-29000", "uid": "v"}});
        assert_eq!(seen(&v).map(|j| j.cron), Some(EVERY_MINUTE.to_string()));
        assert!(seen(&json!({"metadata": {"name": "other-1", "uid": "w"}})).is_none());
    }
}
