use super::*;

const T: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z

fn spec(schedule: &str, policy: ConcurrencyPolicy, deadline: Option<u64>) -> CronJobSpec {
    CronJobSpec {
        schedule: schedule.into(),
        concurrency_policy: Some(policy),
        starting_deadline_seconds: deadline,
        ..CronJobSpec::default()
    }
}

fn job(t: u64, finished: Option<(bool, u64)>) -> ChildJob {
    ChildJob {
        key: ObjectKey::new(Kind::Job, "default", &job_name("c", t)),
        resource_version: 3,
        uid: Some(format!("u{t}")),
        finished,
    }
}

fn status(last: Option<u64>) -> CronJobStatus {
    CronJobStatus {
        last_schedule_time: last.map(rfc3339),
        ..CronJobStatus::default()
    }
}

fn run(spec: &CronJobSpec, st: &CronJobStatus, jobs: &[ChildJob], now: u64) -> CronPlan {
    let schedule = Schedule::parse(&spec.schedule, spec.time_zone.as_deref()).unwrap();
    plan(
        CronRef {
            name: "c",
            namespace: "default",
            spec,
            status: st,
            created: T - 30,
        },
        &schedule,
        jobs,
        now,
    )
}

use ConcurrencyPolicy::{Allow, Forbid, Replace};

/// (what, spec, last schedule, jobs, now, time created, jobs deleted)
#[test]
fn plans() {
    type Case = (
        &'static str,
        CronJobSpec,
        Option<u64>,
        Vec<ChildJob>,
        u64,
        Option<u64>,
        usize,
    );
    let cases: Vec<Case> = vec![
        (
            "nothing due before the first minute",
            spec("* * * * *", Allow, None),
            None,
            vec![],
            T - 1,
            None,
            0,
        ),
        (
            "the first time after creation",
            spec("* * * * *", Allow, None),
            None,
            vec![],
            T + 5,
            Some(T),
            0,
        ),
        (
            "a time already scheduled is not again",
            spec("* * * * *", Allow, None),
            Some(T),
            vec![job(T, None)],
            T + 59,
            None,
            0,
        ),
        (
            "the next minute",
            spec("* * * * *", Allow, None),
            Some(T),
            vec![job(T, None)],
            T + 60,
            Some(T + 60),
            0,
        ),
        (
            "no deadline: only the latest missed time",
            spec("* * * * *", Allow, None),
            Some(T),
            vec![],
            T + 600,
            Some(T + 600),
            0,
        ),
        (
            "a deadline: every missed time within it, oldest first",
            spec("* * * * *", Allow, Some(300)),
            Some(T),
            vec![],
            T + 600,
            Some(T + 300),
            0,
        ),
        (
            "a deadline: the next missed one once the first was made",
            spec("* * * * *", Allow, Some(300)),
            Some(T + 300),
            vec![job(T + 300, None)],
            T + 600,
            Some(T + 360),
            0,
        ),
        (
            "a time missed past its deadline is skipped",
            spec("0 * * * *", Allow, Some(60)),
            None,
            vec![],
            T + 61,
            None,
            0,
        ),
        (
            "Forbid with a Job running: wait",
            spec("* * * * *", Forbid, Some(300)),
            Some(T),
            vec![job(T, None)],
            T + 60,
            None,
            0,
        ),
        (
            "Forbid: the late run starts when the last one finished, within the deadline",
            spec("* * * * *", Forbid, Some(300)),
            Some(T),
            vec![job(T, Some((true, T + 90)))],
            T + 90,
            Some(T + 60),
            0,
        ),
        (
            "Replace: the running Job is deleted and the new one made",
            spec("* * * * *", Replace, None),
            Some(T),
            vec![job(T, None)],
            T + 60,
            Some(T + 60),
            1,
        ),
        (
            "Allow: both run",
            spec("* * * * *", Allow, None),
            Some(T),
            vec![job(T, None)],
            T + 60,
            Some(T + 60),
            0,
        ),
        (
            "history: three successes and one failure kept",
            spec("0 0 1 1 *", Allow, None),
            Some(T),
            vec![
                job(T - 600, Some((true, T - 500))),
                job(T - 540, Some((true, T - 400))),
                job(T - 480, Some((true, T - 300))),
                job(T - 420, Some((true, T - 200))),
                job(T - 360, Some((false, T - 100))),
                job(T - 300, Some((false, T - 50))),
            ],
            T + 60,
            None,
            2,
        ),
    ];
    for (what, spec, last, jobs, now, want, deleted) in cases {
        let p = run(&spec, &status(last), &jobs, now);
        assert_eq!(p.create, want, "{what}");
        assert_eq!(p.delete.len(), deleted, "{what}: {:?}", p.delete);
        if let Some(t) = want {
            assert_eq!(p.status.last_schedule_time, Some(rfc3339(t)), "{what}");
            assert!(
                p.status.active.iter().any(|r| r.name == job_name("c", t)),
                "{what}"
            );
        }
    }
}

#[test]
fn history_keeps_the_newest() {
    let jobs = vec![
        job(T - 600, Some((true, T - 500))),
        job(T - 540, Some((true, T - 400))),
        job(T - 480, Some((true, T - 300))),
        job(T - 420, Some((true, T - 200))),
    ];
    let p = run(
        &spec("0 0 1 1 *", Allow, None),
        &status(Some(T)),
        &jobs,
        T + 1,
    );
    assert_eq!(
        p.delete,
        vec![(jobs[0].key.clone(), 3)],
        "the oldest success goes"
    );
    assert_eq!(p.status.last_successful_time, Some(rfc3339(T - 200)));
}

#[test]
fn a_suspended_cronjob_creates_nothing() {
    let mut s = spec("* * * * *", Allow, Some(600));
    s.suspend = Some(true);
    assert_eq!(run(&s, &status(Some(T)), &[], T + 300).create, None);
    s.suspend = Some(false);
    assert_eq!(run(&s, &status(Some(T)), &[], T + 300).create, Some(T + 60));
}

/// A Job that exists for the due time (made by an earlier leader whose
/// status write this view does not show yet) is recorded, never made again.
#[test]
fn an_existing_job_is_never_created_again() {
    let p = run(
        &spec("* * * * *", Allow, None),
        &status(Some(T)),
        &[job(T + 60, None)],
        T + 70,
    );
    assert_eq!(p.create, None);
    assert_eq!(p.status.last_schedule_time, Some(rfc3339(T + 60)));
}

#[test]
fn job_names_are_minutes_since_the_epoch() {
    assert_eq!(job_name("hello", T), format!("hello-{}", T / 60));
    assert_eq!(job_name("hello", T + 59), job_name("hello", T));
}

#[test]
fn time_zones_move_the_due_time() {
    let mut s = spec("0 9 * * *", Allow, None);
    s.time_zone = Some("Europe/Paris".into());
    assert_eq!(run(&s, &status(None), &[], T + 8 * 3600 - 1).create, None);
    assert_eq!(
        run(&s, &status(None), &[], T + 8 * 3600).create,
        Some(T + 8 * 3600)
    );
}
