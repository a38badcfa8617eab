//! Job policies (podFailurePolicy, backoffLimitPerIndex, successPolicy):
//! accepted as Kubernetes writes them, refused with the path of what is wrong.

use super::*;
use crate::resource::types::{ExitCodeOperator, PodFailurePolicyAction};

const INDEXED: &str = "
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
  backoffLimitPerIndex: 1
  maxFailedIndexes: 2
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes:
        containerName: main
        operator: In
        values: [42]
    - action: Ignore
      onPodConditions:
      - type: DisruptionTarget
    - action: FailIndex
      onExitCodes:
        operator: In
        values: [7, 8]
  successPolicy:
    rules:
    - succeededIndexes: 0,2-3
      succeededCount: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
";

#[test]
fn job_policies_are_accepted_as_kubernetes_writes_them() {
    let p = ok(INDEXED);
    let b = JobBody::from_object(&p.objects[0]).expect("body");
    let pfp = b.spec.pod_failure_policy.expect("podFailurePolicy");
    assert_eq!(pfp.rules.len(), 3);
    assert_eq!(pfp.rules[0].action, PodFailurePolicyAction::FailJob);
    let ec = pfp.rules[0].on_exit_codes.as_ref().expect("onExitCodes");
    assert_eq!(
        (ec.operator, ec.values.as_slice()),
        (ExitCodeOperator::In, &[42][..])
    );
    assert_eq!(
        pfp.rules[1].on_pod_conditions[0].status, "True",
        "defaulted"
    );
    assert_eq!(b.spec.backoff_limit_per_index, Some(1));
    assert_eq!(b.spec.max_failed_indexes, Some(2));
    let sp = b.spec.success_policy.expect("successPolicy");
    assert_eq!(sp.rules[0].succeeded_indexes.as_deref(), Some("0,2-3"));
}

#[test]
fn job_policies_are_refused_with_the_path_of_what_is_wrong() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "restartPolicy: Never",
            "restartPolicy: OnFailure",
            "spec.template.spec.restartPolicy: must be Never when podFailurePolicy is set",
        ),
        (
            "values: [42]",
            "values: [0, 42]",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: may not contain 0",
        ),
        (
            "values: [7, 8]",
            "values: [8, 7]",
            "spec.podFailurePolicy.rules[2].onExitCodes.values: must be unique and in ascending order",
        ),
        (
            "values: [7, 8]",
            "values: []",
            "spec.podFailurePolicy.rules[2].onExitCodes.values: 0 values",
        ),
        (
            "containerName: main",
            "containerName: other",
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName: \"other\" is not a container",
        ),
        (
            "      - type: DisruptionTarget",
            "      - type: DisruptionTarget\n        status: Maybe",
            "spec.podFailurePolicy.rules[1].onPodConditions[0].status",
        ),
        (
            "    - action: Ignore\n      onPodConditions:",
            "    - action: Ignore\n      onExitCodes: {operator: In, values: [1]}\n      onPodConditions:",
            "spec.podFailurePolicy.rules[1]: set one of onExitCodes and onPodConditions, not both",
        ),
        (
            "  backoffLimitPerIndex: 1\n  maxFailedIndexes: 2\n",
            "",
            "spec.podFailurePolicy.rules[2].action: FailIndex is only allowed with backoffLimitPerIndex",
        ),
        (
            "  completionMode: Indexed\n",
            "",
            "spec.backoffLimitPerIndex: only allowed with completionMode Indexed",
        ),
        (
            "maxFailedIndexes: 2",
            "maxFailedIndexes: 5",
            "spec.maxFailedIndexes: 5 is over completions (4)",
        ),
        (
            "succeededIndexes: 0,2-3",
            "succeededIndexes: 2-3,0",
            "spec.successPolicy.rules[0].succeededIndexes: \"0\" overlaps or precedes",
        ),
        (
            "succeededIndexes: 0,2-3",
            "succeededIndexes: 0-4",
            "spec.successPolicy.rules[0].succeededIndexes: index 4 is out of range",
        ),
        (
            "succeededIndexes: 0,2-3",
            "succeededIndexes: a",
            "spec.successPolicy.rules[0].succeededIndexes: \"a\" is not an index",
        ),
        (
            "succeededCount: 2",
            "succeededCount: 4",
            "spec.successPolicy.rules[0].succeededCount: 4 is over the number of succeededIndexes",
        ),
        (
            "    - succeededIndexes: 0,2-3\n      succeededCount: 2",
            "    - {}",
            "spec.successPolicy.rules[0]: set succeededIndexes, succeededCount or both",
        ),
    ];
    for (from, to, want) in cases {
        assert!(INDEXED.contains(from), "{from}");
        let e = err(&INDEXED.replacen(from, to, 1));
        assert!(e.contains(want), "{from} -> {to}: {e}");
    }
}

const PLAIN: &str = "
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    metadata:
      labels: {app: pi}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
";

fn with_spec(extra: &str) -> String {
    PLAIN.replace("spec:\n  template:", &format!("spec:\n{extra}  template:"))
}

#[test]
fn managed_by_manual_selector_and_replacement_policy_are_accepted() {
    let p = ok(&with_spec(
        "  managedBy: example.com/batch-controller\n  manualSelector: true\n  selector:\n    matchLabels: {app: pi}\n  podReplacementPolicy: TerminatingOrFailed\n",
    ));
    let b: crate::resource::types::JobBody =
        crate::resource::types::Body::from_object(&p.objects[0]).unwrap();
    assert_eq!(
        b.spec.managed_by.as_deref(),
        Some("example.com/batch-controller")
    );
    assert!(!b.spec.managed_here());
    assert_eq!(b.spec.manual_selector, Some(true));
    let p = ok(&with_spec("  managedBy: kubernetes.io/job-controller\n"));
    let b: crate::resource::types::JobBody =
        crate::resource::types::Body::from_object(&p.objects[0]).unwrap();
    assert!(b.spec.managed_here());
}

#[test]
fn managed_by_manual_selector_and_replacement_policy_are_refused_by_path() {
    for (extra, path, why) in [
        (
            "  podReplacementPolicy: Failed\n",
            "spec.podReplacementPolicy",
            "cannot hold the replacement",
        ),
        ("  managedBy: mine\n", "spec.managedBy", "domain-prefixed"),
        (
            "  managedBy: Not_A_Domain/x\n",
            "spec.managedBy",
            "Not_A_Domain",
        ),
        (
            "  managedBy: example.com/\n",
            "spec.managedBy",
            "non-empty path",
        ),
        (
            "  selector:\n    matchLabels: {app: pi}\n",
            "spec.selector",
            "manualSelector: true",
        ),
        ("  manualSelector: true\n", "spec.selector", "missing"),
        (
            "  manualSelector: true\n  selector:\n    matchLabels: {app: other}\n",
            "spec.selector",
            "does not match template labels",
        ),
        (
            "  manualSelector: true\n  selector: {}\n",
            "spec.selector",
            "empty",
        ),
    ] {
        let e = err(&with_spec(extra));
        assert!(e.contains(path) && e.contains(why), "{extra}: {e}");
    }
    let long = format!("  managedBy: example.com/{}\n", "x".repeat(60));
    let e = err(&with_spec(&long));
    assert!(
        e.contains("spec.managedBy") && e.contains("at most 63"),
        "{e}"
    );
}
