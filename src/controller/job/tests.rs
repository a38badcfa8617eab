use super::*;
use crate::resource::types::{PodSpec, PodTemplateSpec, RestartPolicy};

pub(super) const UID: &str = "uid-1";
pub(super) const T0: u64 = 1_800_000_000; // seconds

pub(super) fn spec(completions: Option<u32>, parallelism: u32, indexed: bool) -> JobSpec {
    JobSpec {
        completions,
        parallelism: Some(parallelism),
        backoff_limit: Some(2),
        completion_mode: indexed.then_some(CompletionMode::Indexed),
        template: PodTemplateSpec {
            metadata: None,
            spec: PodSpec {
                restart_policy: Some(RestartPolicy::Never),
                ..PodSpec::default()
            },
        },
        ..JobSpec::default()
    }
}

pub(super) fn pod(
    index: Option<u32>,
    attempt: u32,
    phase: PodPhase,
    finished: Option<u64>,
) -> JobPod {
    JobPod {
        key: ObjectKey::new(Kind::Pod, "default", &pod_name("j", UID, index, attempt)),
        resource_version: 7,
        phase,
        ready: phase == PodPhase::Running,
        index,
        attempt,
        finished: if phase.is_terminal() {
            finished.or(Some(T0))
        } else {
            None
        },
        restarts: 0,
        disrupted: false,
        exit_codes: Vec::new(),
        conditions: Vec::new(),
        index_failures: 0,
    }
}

pub(super) fn run(spec: &JobSpec, status: &JobStatus, pods: &[JobPod], now_secs: u64) -> Plan {
    plan(
        JobRef {
            name: "j",
            uid: UID,
            spec,
            status,
        },
        pods,
        now_secs * 1000,
        Settings::default(),
    )
}

pub(super) fn started() -> JobStatus {
    JobStatus {
        start_time: Some(rfc3339(T0)),
        ..JobStatus::default()
    }
}

pub(super) fn created(p: &Plan) -> Vec<(Option<u32>, u32)> {
    p.create.iter().map(|c| (c.index, c.attempt)).collect()
}

use PodPhase::{Failed, Pending, Running, Succeeded};

/// (what, spec, pods, pods created as (index, attempt), deleted count, condition set)
#[test]
fn plans() {
    type Case = (
        &'static str,
        JobSpec,
        Vec<JobPod>,
        Vec<(Option<u32>, u32)>,
        usize,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "a new job starts parallelism pods",
            spec(Some(3), 2, false),
            vec![],
            vec![(None, 0), (None, 1)],
            0,
            None,
        ),
        (
            "never more than the completions left",
            spec(Some(3), 2, false),
            vec![
                pod(None, 0, Succeeded, None),
                pod(None, 1, Succeeded, None),
                pod(None, 2, Running, None),
            ],
            vec![],
            0,
            None,
        ),
        (
            "a success makes room for the next pod, numbered after the highest",
            spec(Some(3), 2, false),
            vec![pod(None, 0, Succeeded, None), pod(None, 1, Running, None)],
            vec![(None, 2)],
            0,
            None,
        ),
        (
            "completions reached: Complete",
            spec(Some(2), 2, false),
            vec![pod(None, 0, Succeeded, None), pod(None, 1, Succeeded, None)],
            vec![],
            0,
            Some("Complete"),
        ),
        (
            "a work queue completes when one succeeded and none runs",
            spec(None, 2, false),
            vec![pod(None, 0, Succeeded, None), pod(None, 1, Succeeded, None)],
            vec![],
            0,
            Some("Complete"),
        ),
        (
            "a work queue with a success starts no more pods",
            spec(None, 2, false),
            vec![pod(None, 0, Succeeded, None), pod(None, 1, Running, None)],
            vec![],
            0,
            None,
        ),
        (
            "past backoffLimit: Failed, running pods deleted",
            spec(Some(5), 2, false),
            vec![
                pod(None, 0, Failed, None),
                pod(None, 1, Failed, None),
                pod(None, 2, Failed, None),
                pod(None, 3, Running, None),
            ],
            vec![],
            1,
            Some("Failed"),
        ),
        (
            "a pod lost with its node is not counted; kept until replaced",
            spec(Some(1), 1, false),
            vec![
                pod(None, 0, Failed, None),
                pod(None, 1, Failed, None),
                JobPod {
                    disrupted: true,
                    ..pod(None, 2, Failed, Some(T0 - 100))
                },
            ],
            vec![],
            0,
            None,
        ),
        (
            "a lost pod is deleted with its replacement's creation",
            spec(Some(1), 1, false),
            vec![JobPod {
                disrupted: true,
                ..pod(None, 0, Failed, Some(T0))
            }],
            vec![(None, 1)],
            1,
            None,
        ),
        (
            "indexed: a lost pod's index gets its next attempt in the command that deletes it",
            spec(Some(2), 2, true),
            vec![
                JobPod {
                    disrupted: true,
                    ..pod(Some(0), 0, Failed, Some(T0))
                },
                pod(Some(1), 0, Running, None),
            ],
            vec![(Some(0), 1)],
            1,
            None,
        ),
        (
            "indexed: one pod per index up to parallelism",
            spec(Some(3), 2, true),
            vec![],
            vec![(Some(0), 0), (Some(1), 0)],
            0,
            None,
        ),
        (
            "indexed: a running index gets no second pod, the next free index does",
            spec(Some(3), 2, true),
            vec![
                pod(Some(0), 0, Running, None),
                pod(Some(1), 0, Succeeded, None),
            ],
            vec![(Some(2), 0)],
            0,
            None,
        ),
        (
            "indexed: a failed index is retried with the next attempt after the back-off",
            spec(Some(2), 2, true),
            vec![
                pod(Some(0), 0, Failed, Some(T0 - 11)),
                pod(Some(1), 0, Succeeded, None),
            ],
            vec![(Some(0), 1)],
            0,
            None,
        ),
        (
            "indexed: every index done: Complete",
            spec(Some(2), 2, true),
            vec![
                pod(Some(0), 1, Succeeded, None),
                pod(Some(1), 0, Succeeded, None),
                pod(Some(0), 0, Failed, None),
            ],
            vec![],
            0,
            Some("Complete"),
        ),
        (
            "pending pods count against parallelism",
            spec(Some(4), 2, false),
            vec![pod(None, 0, Pending, None), pod(None, 1, Running, None)],
            vec![],
            0,
            None,
        ),
    ];
    for (what, spec, pods, want, deleted, cond) in cases {
        let p = run(&spec, &started(), &pods, T0);
        assert_eq!(created(&p), want, "{what}");
        assert_eq!(p.delete.len(), deleted, "{what}");
        for c in ["Complete", "Failed"] {
            assert_eq!(p.status.is(c), cond == Some(c), "{what}: condition {c}");
        }
    }
}

#[test]
fn retries_wait_out_an_exponential_backoff() {
    let s = spec(Some(1), 1, false);
    let one = [pod(None, 0, Failed, Some(T0))];
    assert!(
        run(&s, &started(), &one, T0 + 9).create.is_empty(),
        "10 s after one failure"
    );
    assert_eq!(
        created(&run(&s, &started(), &one, T0 + 10)),
        vec![(None, 1)]
    );
    let two = [
        pod(None, 0, Failed, Some(T0 - 30)),
        pod(None, 1, Failed, Some(T0)),
    ];
    assert!(
        run(&s, &started(), &two, T0 + 19).create.is_empty(),
        "20 s after two"
    );
    assert_eq!(
        created(&run(&s, &started(), &two, T0 + 20)),
        vec![(None, 2)]
    );
    assert_eq!(backoff_ms(10_000, 0), 0);
    assert_eq!(backoff_ms(10_000, 1), 10_000);
    assert_eq!(backoff_ms(10_000, 3), 40_000);
    assert_eq!(backoff_ms(10_000, 6), 320_000);
    assert_eq!(backoff_ms(10_000, 7), 360_000, "capped at six minutes");
    assert_eq!(backoff_ms(10_000, 1000), 360_000);
}

#[test]
fn the_deadline_fails_the_job_and_stops_its_pods() {
    let mut s = spec(Some(1), 1, false);
    s.active_deadline_seconds = Some(30);
    let pods = [pod(None, 0, Running, None)];
    let p = run(&s, &started(), &pods, T0 + 29);
    assert!(!p.status.is("Failed") && p.delete.is_empty());
    let p = run(&s, &started(), &pods, T0 + 30);
    let c = p.status.condition("Failed").expect("failed");
    assert_eq!(c.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.status.active, 0);
    assert!(
        p.status.completion_time.is_none(),
        "a failed Job has no completionTime"
    );
    assert!(
        p.events
            .iter()
            .any(|e| e.warning && e.reason == "DeadlineExceeded")
    );
}

#[test]
fn backoff_limit_exceeded_has_its_reason() {
    let s = spec(Some(1), 1, false); // backoffLimit 2
    let pods = [pod(None, 0, Failed, None), pod(None, 1, Failed, None)];
    assert!(
        !run(&s, &started(), &pods, T0 + 100).status.is("Failed"),
        "2 failures, limit 2"
    );
    let mut three = pods.to_vec();
    three.push(pod(None, 2, Failed, None));
    let p = run(&s, &started(), &three, T0 + 100);
    let c = p.status.condition("Failed").expect("failed");
    assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(p.status.failed, 3);
}

#[test]
fn on_failure_restarts_count_as_failures() {
    let mut s = spec(Some(1), 1, false);
    s.template.spec.restart_policy = Some(RestartPolicy::OnFailure);
    let p = JobPod {
        restarts: 3,
        ..pod(None, 0, Running, None)
    };
    let plan = run(&s, &started(), &[p], T0 + 1);
    assert_eq!(plan.status.failed, 3);
    assert!(plan.status.is("Failed"));
    assert_eq!(plan.delete.len(), 1);
}

#[test]
fn suspend_stops_pods_and_resume_restarts_the_clock() {
    let mut s = spec(Some(2), 2, false);
    s.suspend = Some(true);
    let pods = [pod(None, 0, Running, None), pod(None, 1, Pending, None)];
    let p = run(&s, &started(), &pods, T0 + 5);
    assert!(p.status.is("Suspended"));
    assert_eq!(p.delete.len(), 2);
    assert!(p.create.is_empty());
    // A suspended Job created suspended starts no pod.
    assert!(run(&s, &JobStatus::default(), &[], T0).create.is_empty());
    s.suspend = Some(false);
    let resumed = run(&s, &p.status, &[], T0 + 100);
    assert!(!resumed.status.is("Suspended"));
    assert_eq!(
        resumed.status.start_time.as_deref(),
        Some(rfc3339(T0 + 100).as_str())
    );
    assert_eq!(created(&resumed), vec![(None, 0), (None, 1)]);
}

#[test]
fn a_finished_job_is_deleted_after_its_ttl() {
    let mut s = spec(Some(1), 1, false);
    s.ttl_seconds_after_finished = Some(60);
    let pods = [pod(None, 0, Succeeded, None)];
    let done = run(&s, &started(), &pods, T0 + 10).status;
    assert!(done.is("Complete"));
    assert_eq!(
        done.completion_time.as_deref(),
        Some(rfc3339(T0 + 10).as_str())
    );
    assert!(!run(&s, &done, &pods, T0 + 69).delete_job);
    let p = run(&s, &done, &pods, T0 + 70);
    assert!(p.delete_job && p.create.is_empty());
    s.ttl_seconds_after_finished = None;
    assert!(
        !run(&s, &done, &pods, T0 + 100_000).delete_job,
        "no ttl: kept"
    );
}

#[test]
fn counts_do_not_go_back_when_pods_are_deleted() {
    let s = spec(Some(3), 1, false);
    let prev = JobStatus {
        succeeded: 2,
        failed: 1,
        ..started()
    };
    let p = run(&s, &prev, &[], T0 + 1000);
    assert_eq!((p.status.succeeded, p.status.failed), (2, 1));
    assert_eq!(p.create.len(), 1, "only the one completion left");
    // Indexed: completedIndexes is kept.
    let s = spec(Some(3), 3, true);
    let prev = JobStatus {
        completed_indexes: Some("0,2".into()),
        ..started()
    };
    let p = run(&s, &prev, &[], T0 + 1000);
    assert_eq!(created(&p), vec![(Some(1), 0)]);
    assert_eq!(p.status.succeeded, 2);
}

/// Two controllers acting on the same view (a deposed leader and its
/// successor) make the same names, so the store lets only one create them.
#[test]
fn plans_from_the_same_view_make_the_same_names() {
    let s = spec(Some(3), 3, true);
    let pods = [pod(Some(0), 0, Failed, Some(T0 - 100))];
    let a = run(&s, &started(), &pods, T0);
    let b = run(&s, &started(), &pods, T0 + 1);
    assert_eq!(a.create, b.create);
    assert_eq!(created(&a), vec![(Some(0), 1), (Some(1), 0), (Some(2), 0)]);
}

#[test]
fn pod_names_carry_the_index_and_stay_dns_labels() {
    let n = pod_name("work", UID, Some(12), 0);
    assert!(
        n.starts_with("work-12-") && n.len() == "work-12-".len() + 5,
        "{n}"
    );
    assert_ne!(n, pod_name("work", UID, Some(12), 1));
    assert_ne!(
        pod_name("work", UID, None, 0),
        pod_name("work", UID, None, 1)
    );
    let long = "a".repeat(63);
    assert!(pod_name(&long, UID, Some(99_999), 3).len() <= 63);
}

#[test]
fn completed_indexes_round_trip() {
    let set: BTreeSet<u32> = [0, 1, 2, 5, 7, 8].into();
    assert_eq!(format_indexes(&set), "0-2,5,7-8");
    assert_eq!(parse_indexes("0-2,5,7-8", 100), set);
    assert_eq!(parse_indexes("0-2,x,9", 5), [0, 1, 2].into());
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}
