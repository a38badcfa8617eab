//! The planner under podFailurePolicy, backoffLimitPerIndex and successPolicy.

use super::tests::{created, pod, run, spec, started};
use super::*;
use crate::resource::types::{
    ExitCodeOperator, PodFailurePolicy, PodFailurePolicyAction, PodFailurePolicyOnExitCodes,
    PodFailurePolicyOnPodCondition, PodFailurePolicyRule, SuccessPolicy, SuccessPolicyRule,
};
use PodFailurePolicyAction::{Count, FailIndex, FailJob, Ignore};
use PodPhase::{Failed, Running, Succeeded};

const T0: u64 = super::tests::T0;

fn on_codes(
    action: PodFailurePolicyAction,
    op: ExitCodeOperator,
    values: &[i32],
) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action,
        on_exit_codes: Some(PodFailurePolicyOnExitCodes {
            container_name: None,
            operator: op,
            values: values.to_vec(),
        }),
        on_pod_conditions: Vec::new(),
    }
}

fn on_condition(action: PodFailurePolicyAction, type_: &str) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action,
        on_exit_codes: None,
        on_pod_conditions: vec![PodFailurePolicyOnPodCondition {
            type_: type_.into(),
            status: "True".into(),
        }],
    }
}

fn with_rules(mut s: JobSpec, rules: Vec<PodFailurePolicyRule>) -> JobSpec {
    s.pod_failure_policy = Some(PodFailurePolicy { rules });
    s
}

/// A failed pod whose container `main` exited with `code` (sidecar `side` exited 0).
fn exited(index: Option<u32>, attempt: u32, code: i64) -> JobPod {
    JobPod {
        exit_codes: vec![("side".into(), 0), ("main".into(), code)],
        ..pod(index, attempt, Failed, Some(T0))
    }
}

fn reason(p: &Plan, c: &str) -> Option<String> {
    p.status
        .condition(c)
        .filter(|c| c.is_true())
        .and_then(|c| c.reason.clone())
}

#[test]
fn verdicts_follow_the_first_matching_rule() {
    use ExitCodeOperator::{In, NotIn};
    let disrupted = JobPod {
        disrupted: true,
        conditions: vec![("DisruptionTarget".into(), "True".into())],
        ..pod(None, 0, Failed, Some(T0))
    };
    let named = |name: &str| PodFailurePolicyRule {
        on_exit_codes: Some(PodFailurePolicyOnExitCodes {
            container_name: Some(name.into()),
            operator: In,
            values: vec![42],
        }),
        ..on_codes(FailJob, In, &[42])
    };
    type Case = (
        &'static str,
        Vec<PodFailurePolicyRule>,
        JobPod,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("no policy: counts", vec![], exited(None, 0, 1), "Count"),
        (
            "In matches",
            vec![on_codes(FailJob, In, &[42])],
            exited(None, 0, 42),
            "FailJob",
        ),
        (
            "In misses",
            vec![on_codes(FailJob, In, &[42])],
            exited(None, 0, 1),
            "Count",
        ),
        (
            "NotIn matches a code outside",
            vec![on_codes(Ignore, NotIn, &[1, 2])],
            exited(None, 0, 5),
            "Ignore",
        ),
        (
            "NotIn: a container exiting 0 never matches",
            vec![on_codes(Ignore, NotIn, &[5])],
            exited(None, 0, 5),
            "Count",
        ),
        (
            "first rule wins",
            vec![on_codes(Ignore, In, &[3]), on_codes(FailJob, In, &[3])],
            exited(None, 0, 3),
            "Ignore",
        ),
        (
            "containerName matches",
            vec![named("main")],
            exited(None, 0, 42),
            "FailJob",
        ),
        (
            "containerName misses",
            vec![named("side")],
            exited(None, 0, 42),
            "Count",
        ),
        (
            "a lost pod is not counted by default",
            vec![on_codes(FailJob, In, &[42])],
            disrupted.clone(),
            "Ignore",
        ),
        (
            "a DisruptionTarget rule decides for a lost pod",
            vec![on_condition(Count, "DisruptionTarget")],
            disrupted.clone(),
            "Count",
        ),
        (
            "condition rule misses a pod without it",
            vec![on_condition(Ignore, "DisruptionTarget")],
            exited(None, 0, 1),
            "Count",
        ),
        (
            "FailIndex",
            vec![on_codes(FailIndex, In, &[7])],
            exited(Some(0), 0, 7),
            "FailIndex",
        ),
    ];
    for (what, rules, p, want) in cases {
        let policy = PodFailurePolicy { rules };
        let v = policy::verdict(Some(&policy), &p);
        let got = match &v {
            Verdict::Count => "Count",
            Verdict::Ignore => "Ignore",
            Verdict::FailIndex => "FailIndex",
            Verdict::FailJob(_) => "FailJob",
        };
        assert_eq!(got, want, "{what}: {v:?}");
    }
    let policy = PodFailurePolicy {
        rules: vec![on_codes(Ignore, In, &[3]), on_codes(FailJob, In, &[42])],
    };
    let Verdict::FailJob(m) = policy::verdict(Some(&policy), &exited(None, 0, 42)) else {
        panic!("FailJob expected");
    };
    assert!(
        m.starts_with("Container main for pod default/j-")
            && m.ends_with("failed with exit code 42 matching FailJob rule at index 1"),
        "{m}"
    );
    let policy = PodFailurePolicy {
        rules: vec![on_condition(FailJob, "DisruptionTarget")],
    };
    let lost = JobPod {
        conditions: vec![("DisruptionTarget".into(), "True".into())],
        ..pod(None, 0, Failed, Some(T0))
    };
    let Verdict::FailJob(m) = policy::verdict(Some(&policy), &lost) else {
        panic!("FailJob expected");
    };
    assert!(
        m.starts_with("Pod default/j-")
            && m.ends_with("has condition DisruptionTarget matching FailJob rule at index 0"),
        "{m}"
    );
}

#[test]
fn fail_job_ends_the_job_at_once() {
    let s = with_rules(
        spec(Some(3), 2, false),
        vec![on_codes(FailJob, ExitCodeOperator::In, &[42])],
    );
    let pods = [exited(None, 0, 42), pod(None, 1, Running, None)];
    let p = run(&s, &started(), &pods, T0 + 1);
    assert_eq!(reason(&p, "Failed").as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        reason(&p, "FailureTarget").as_deref(),
        Some("PodFailurePolicy")
    );
    assert!(p.create.is_empty());
    assert_eq!(p.delete.len(), 1, "the running pod is stopped");
    assert_eq!(p.status.failed, 1);
    assert!(
        p.events
            .iter()
            .any(|e| e.warning && e.reason == "PodFailurePolicy")
    );
}

#[test]
fn ignored_failures_neither_count_nor_wait() {
    // backoffLimit 2; three ignored failures leave it untouched, and the
    // replacement comes at once, without a back-off.
    let s = with_rules(
        spec(Some(1), 1, false),
        vec![on_codes(Ignore, ExitCodeOperator::In, &[3])],
    );
    let pods = [exited(None, 0, 3), exited(None, 1, 3), exited(None, 2, 3)];
    let p = run(&s, &started(), &pods, T0 + 1);
    assert!(!p.status.is("Failed"), "{:?}", p.status);
    assert_eq!(p.status.failed, 0);
    assert_eq!(created(&p), vec![(None, 3)]);
    // The same codes under Count fail it.
    let s = with_rules(
        spec(Some(1), 1, false),
        vec![on_codes(Count, ExitCodeOperator::In, &[3])],
    );
    let p = run(&s, &started(), &pods, T0 + 100);
    assert_eq!(
        reason(&p, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
}

fn per_index(completions: u32, parallelism: u32, limit: u32, max_failed: Option<u32>) -> JobSpec {
    let mut s = spec(Some(completions), parallelism, true);
    s.backoff_limit = None;
    s.backoff_limit_per_index = Some(limit);
    s.max_failed_indexes = max_failed;
    s
}

#[test]
fn each_index_has_its_own_backoff_limit() {
    // Index 0 failed twice with a per-index limit of 1: it fails for good,
    // and no global backoffLimit (6 by default) applies.
    let s = per_index(3, 3, 1, None);
    let pods = [
        pod(Some(0), 0, Failed, Some(T0 - 100)),
        JobPod {
            index_failures: 1,
            ..pod(Some(0), 1, Failed, Some(T0 - 50))
        },
        pod(Some(1), 0, Running, None),
    ];
    let p = run(&s, &started(), &pods, T0);
    assert_eq!(p.status.failed_indexes.as_deref(), Some("0"));
    assert!(!p.status.is("Failed"), "{:?}", p.status);
    assert_eq!(created(&p), vec![(Some(2), 0)], "index 0 is not retried");
    // One failure of index 2 after the Job's retries: it retries after its own back-off.
    let pods = [
        pod(Some(0), 0, Succeeded, None),
        pod(Some(1), 0, Running, None),
        pod(Some(2), 0, Failed, Some(T0)),
    ];
    assert!(run(&s, &started(), &pods, T0 + 9).create.is_empty());
    let p = run(&s, &started(), &pods, T0 + 10);
    assert_eq!(created(&p), vec![(Some(2), 1)]);
    assert_eq!(p.create[0].index_failures, 1, "carried to the next pod");
    // Deleting the failed pod does not reset the count its successor carries.
    let pods = [
        pod(Some(0), 0, Succeeded, None),
        JobPod {
            index_failures: 1,
            ..pod(Some(2), 1, Failed, Some(T0))
        },
    ];
    let p = run(&s, &started(), &pods, T0 + 100);
    assert_eq!(p.status.failed_indexes.as_deref(), Some("2"));
}

#[test]
fn failed_indexes_fail_the_job_when_all_are_settled_or_too_many() {
    let s = per_index(2, 2, 0, None);
    let pods = [
        pod(Some(0), 0, Succeeded, None),
        pod(Some(1), 0, Failed, None),
    ];
    let p = run(&s, &started(), &pods, T0 + 100);
    assert_eq!(reason(&p, "Failed").as_deref(), Some("FailedIndexes"));
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.status.failed_indexes.as_deref(), Some("1"));
    // maxFailedIndexes 0: the first failed index fails the Job while others run.
    let s = per_index(3, 3, 0, Some(0));
    let pods = [
        pod(Some(0), 0, Failed, None),
        pod(Some(1), 0, Running, None),
    ];
    let p = run(&s, &started(), &pods, T0 + 100);
    assert_eq!(
        reason(&p, "Failed").as_deref(),
        Some("MaxFailedIndexesExceeded")
    );
    assert_eq!(p.delete.len(), 1);
    // FailIndex fails the index on its first failure whatever the limit.
    let s = with_rules(
        per_index(2, 2, 5, None),
        vec![on_codes(FailIndex, ExitCodeOperator::In, &[7])],
    );
    let pods = [exited(Some(0), 0, 7), pod(Some(1), 0, Running, None)];
    let p = run(&s, &started(), &pods, T0 + 100);
    assert_eq!(p.status.failed_indexes.as_deref(), Some("0"));
    assert!(p.create.is_empty() && !p.status.is("Failed"));
    // A failed index stays failed once its pod is gone.
    let mut st = started();
    st.failed_indexes = Some("0".into());
    let p = run(&s, &st, &[pod(Some(1), 0, Succeeded, None)], T0 + 100);
    assert_eq!(reason(&p, "Failed").as_deref(), Some("FailedIndexes"));
}

fn succeeding(mut s: JobSpec, indexes: Option<&str>, count: Option<u32>) -> JobSpec {
    s.success_policy = Some(SuccessPolicy {
        rules: vec![SuccessPolicyRule {
            succeeded_indexes: indexes.map(str::to_string),
            succeeded_count: count,
        }],
    });
    s
}

#[test]
fn a_success_policy_completes_the_job_early() {
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<u32>,
        Vec<u32>,
        bool,
    );
    let cases: Vec<Case> = vec![
        ("index 0 done", Some("0"), None, vec![0], true),
        ("index 0 not done", Some("0"), None, vec![1, 2], false),
        ("2 of 0-2: only 1", Some("0-2"), Some(2), vec![0, 3], false),
        ("2 of 0-2", Some("0-2"), Some(2), vec![0, 2], true),
        ("any 2", None, Some(2), vec![3, 4], true),
        ("all of 1,3-4", Some("1,3-4"), None, vec![1, 3], false),
        (
            "all of 1,3-4 done",
            Some("1,3-4"),
            None,
            vec![1, 3, 4],
            true,
        ),
    ];
    for (what, indexes, count, done, want) in cases {
        let s = succeeding(spec(Some(5), 5, true), indexes, count);
        let mut pods: Vec<JobPod> = done
            .iter()
            .map(|i| pod(Some(*i), 0, Succeeded, None))
            .collect();
        let free = (0..5).find(|i| !done.contains(i)).expect("a free index");
        pods.push(pod(Some(free), 0, Running, None));
        let p = run(&s, &started(), &pods, T0 + 1);
        assert_eq!(p.status.is("Complete"), want, "{what}: {:?}", p.status);
        if want {
            assert_eq!(
                reason(&p, "SuccessCriteriaMet").as_deref(),
                Some("SuccessPolicy"),
                "{what}"
            );
            assert_eq!(
                reason(&p, "Complete").as_deref(),
                Some("SuccessPolicy"),
                "{what}"
            );
            assert!(p.create.is_empty(), "{what}");
            assert_eq!(p.delete.len(), 1, "{what}: the rest is stopped");
            assert!(p.status.completion_time.is_some());
        }
    }
    // Without a policy, completing all indexes meets the criteria too.
    let s = spec(Some(1), 1, true);
    let p = run(&s, &started(), &[pod(Some(0), 0, Succeeded, None)], T0 + 1);
    assert_eq!(
        reason(&p, "SuccessCriteriaMet").as_deref(),
        Some("CompletionsReached")
    );
}
