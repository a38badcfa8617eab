//! PriorityClass manifests and the pod's priority fields.

use super::*;
use crate::resource::types::{PreemptionPolicy, PriorityClassBody};

const CLASS: &str = "
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority
value: 1000000
globalDefault: false
preemptionPolicy: Never
description: \"For XYZ service pods only.\"
";

#[test]
fn a_priority_class_is_accepted_as_kubernetes_writes_it() {
    let p = ok(CLASS);
    let o = &p.objects[0];
    assert_eq!(o.kind(), Some(Kind::PriorityClass));
    assert_eq!(o.metadata.namespace, None, "cluster-scoped");
    let b = PriorityClassBody::from_object(o).expect("body");
    assert_eq!(b.value, 1_000_000);
    assert_eq!(b.preemption_policy, Some(PreemptionPolicy::Never));
    for s in ["pc", "priorityclass", "PriorityClasses"] {
        assert_eq!(Kind::from_user(s), Some(Kind::PriorityClass), "{s}");
    }
}

#[test]
fn priority_class_errors_name_their_field() {
    let cases = [
        (
            CLASS.replace("1000000", "1000000001"),
            "value",
            "at most 1000000000",
        ),
        (
            CLASS.replace("high-priority", "system-mine"),
            "metadata.name",
            "reserved",
        ),
        (
            CLASS.replace("high-priority", "system-node-critical"),
            "metadata.name",
            "built in",
        ),
        (
            CLASS.replace("Never", "Sometimes"),
            "preemptionPolicy",
            "unknown variant",
        ),
        (CLASS.replace("value: 1000000\n", ""), "", "value"),
        (
            CLASS.replace("high-priority", "High"),
            "metadata.name",
            "not a valid",
        ),
    ];
    ok(&QUOTA.replace(
        "pods: '10'",
        "requests.nvidia.com/gpu: '4'\n    requests.ephemeral-storage: 10Gi",
    ));
    for (text, path, what) in cases {
        let e = err(&text);
        assert!(e.contains(path) && e.contains(what), "{path}/{what}: {e}");
    }
}

#[test]
fn pods_name_a_class_and_may_repeat_its_value() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: high-priority\n  priority: 1000000\n  preemptionPolicy: PreemptLowerPriority\n  containers: [{name: c, image: busybox}]\n";
    let p = ok(pod);
    let spec = &p.objects[0].body["spec"];
    assert_eq!(spec["priorityClassName"], "high-priority");
    assert_eq!(spec["priority"], 1_000_000);
    let e = err(&pod.replace("high-priority", "High_Priority"));
    assert!(e.contains("spec.priorityClassName"), "{e}");
}

const QUOTA: &str = "
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute-resources, namespace: team}
spec:
  hard:
    requests.cpu: '1'
    requests.memory: 1Gi
    limits.cpu: '2'
    limits.memory: 2Gi
    pods: '10'
";

#[test]
fn a_resource_quota_is_accepted_and_what_shoal_cannot_enforce_is_named() {
    let p = ok(QUOTA);
    assert_eq!(p.objects[0].kind(), Some(Kind::ResourceQuota));
    assert_eq!(Kind::from_user("quota"), Some(Kind::ResourceQuota));
    let cases = [
        (
            QUOTA.replace("pods: '10'", "services: '5'"),
            "spec.hard.services",
            "enforces quotas on",
        ),
        (
            QUOTA.replace("pods: '10'", "pods: 1.5"),
            "spec.hard.pods",
            "whole number",
        ),
        (
            QUOTA.replace("requests.cpu: '1'", "requests.cpu: lots"),
            "spec.hard[\"requests.cpu\"]",
            "cpu",
        ),
        (
            QUOTA.replace("pods: '10'", "limits.example.com/dongle: '1'"),
            "spec.hard[\"limits.example.com/dongle\"]",
            "requests.<extended resource>",
        ),
        (
            QUOTA.replace("pods: '10'", "requests.example.com/dongle: 500m"),
            "spec.hard[\"requests.example.com/dongle\"]",
            "whole number",
        ),
        (
            QUOTA.replace("  hard:\n", "  scopes: [BestEffort]\n  hard:\n"),
            "spec.scopes",
            "not supported",
        ),
    ];
    for (text, path, what) in cases {
        let e = err(&text);
        assert!(e.contains(path) && e.contains(what), "{path}/{what}: {e}");
    }
}
