//! Table cells of the batch kinds: Jobs and CronJobs.

use serde_json::Value;

use super::cells::{human_duration, s, status_of};
use crate::resource::status::{CronJobStatus, JobStatus};
use crate::resource::time::{now_secs, parse_rfc3339};

/// A Job's COMPLETIONS and DURATION cells, as kubectl prints them.
pub(crate) fn job_cells(it: &Value) -> Vec<String> {
    let st: JobStatus = status_of(it);
    let completions = match s(it, &["spec", "completions"]).as_u64() {
        Some(c) => format!("{}/{c}", st.succeeded),
        // A work queue: kubectl's `0/1 of 3`.
        None => format!(
            "{}/1 of {}",
            st.succeeded,
            s(it, &["spec", "parallelism"]).as_u64().unwrap_or(1)
        ),
    };
    let start = st.start_time.as_deref().and_then(parse_rfc3339);
    let end = st
        .completion_time
        .as_deref()
        .and_then(parse_rfc3339)
        .or_else(|| {
            // A failed Job's clock stops when it failed.
            st.condition("Failed")
                .filter(|c| c.is_true())
                .and_then(|c| c.last_transition_time.as_deref())
                .and_then(parse_rfc3339)
        })
        .unwrap_or_else(now_secs);
    let duration = match start {
        Some(t) => human_duration(end.saturating_sub(t)),
        None => String::new(),
    };
    vec![completions, duration]
}

/// A CronJob's SCHEDULE, TIMEZONE, SUSPEND, ACTIVE and LAST SCHEDULE cells.
pub(crate) fn cronjob_cells(it: &Value) -> Vec<String> {
    let st: CronJobStatus = status_of(it);
    let text = |path: &[&str], none: &str| s(it, path).as_str().unwrap_or(none).to_string();
    vec![
        text(&["spec", "schedule"], ""),
        text(&["spec", "timeZone"], "<none>"),
        s(it, &["spec", "suspend"])
            .as_bool()
            .unwrap_or(false)
            .to_string(),
        st.active.len().to_string(),
        match st.last_schedule_time.as_deref().and_then(parse_rfc3339) {
            Some(t) => human_duration(now_secs().saturating_sub(t)),
            None => "<none>".into(),
        },
    ]
}
