use serde_json::json;

use super::*;

fn budget(spec: serde_json::Value) -> (Object, PodDisruptionBudgetBody) {
    let o: Object = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-pdb", "namespace": "default", "uid": "b1",
                     "resourceVersion": "9", "generation": 2},
        "spec": spec,
    }))
    .unwrap();
    let b = PodDisruptionBudgetBody::from_object(&o).unwrap();
    (o, b)
}

fn pod_object(name: &str, owner: Option<&str>, ready: bool, phase: &str) -> Object {
    let mut meta = json!({"name": name, "namespace": "default", "uid": name,
        "resourceVersion": "3", "labels": {"app": "web"}});
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-x", "uid": o, "controller": true}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

fn pod(name: &str, owner: Option<&str>, ready: bool) -> PodView {
    PodView::of(&pod_object(name, owner, ready, "Running")).unwrap()
}

fn deployment(uid: &str, replicas: u32) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": uid},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }))
    .unwrap()
}

fn replica_set(uid: &str, deployment: Option<&str>, replicas: u32) -> Object {
    let mut meta = json!({"name": format!("web-{uid}"), "namespace": "default", "uid": uid});
    if let Some(d) = deployment {
        meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "web", "uid": d, "controller": true}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }))
    .unwrap()
}

#[test]
fn counts_as_kubernetes_does() {
    // A Deployment of 4 replicas mid-rollout: two ReplicaSets, the scale
    // counted once, from the Deployment.
    let scales = Scales::of(
        &[
            replica_set("rs1", Some("d1"), 2),
            replica_set("rs2", Some("d1"), 2),
        ],
        &[deployment("d1", 4)],
        &[],
    );
    let pods = [
        pod("a", Some("rs1"), true),
        pod("b", Some("rs1"), true),
        pod("c", Some("rs2"), true),
        pod("d", Some("rs2"), false),
    ];
    let cases = [
        // (spec, expected, desired, current, allowed)
        (json!({"minAvailable": 2}), 4, 2, 3, 1),
        (json!({"minAvailable": 3}), 4, 3, 3, 0),
        (json!({"minAvailable": "50%"}), 4, 2, 3, 1),
        (json!({"minAvailable": "60%"}), 4, 3, 3, 0),
        (json!({"maxUnavailable": 1}), 4, 3, 3, 0),
        (json!({"maxUnavailable": 2}), 4, 2, 3, 1),
        (json!({"maxUnavailable": "25%"}), 4, 3, 3, 0),
        (json!({"maxUnavailable": "30%"}), 4, 2, 3, 1),
        (json!({"maxUnavailable": 0}), 4, 4, 3, 0),
        // Neither: nothing expected, nothing allowed.
        (json!({}), 0, 0, 3, 0),
    ];
    for (spec, expected, desired, current, allowed) in cases {
        let (_, b) = budget(spec.clone());
        let c = count(&b.spec, &pods, &scales);
        assert_eq!(
            c,
            Count {
                expected,
                desired_healthy: desired,
                current_healthy: current,
                allowed
            },
            "{spec}"
        );
    }
}

#[test]
fn unmanaged_and_standalone_pods_count_for_themselves() {
    let scales = Scales::of(&[replica_set("rs9", None, 5)], &[], &[]);
    let pods = [
        pod("a", Some("rs9"), true),
        pod("b", None, true),
        pod("c", None, false),
        PodView::of(&pod_object("e", None, false, "Succeeded")).unwrap(),
    ];
    let (_, b) = budget(json!({"maxUnavailable": 1}));
    let c = count(&b.spec, &pods, &scales);
    // rs9's scale of 5 plus the two bare pods; the finished pod is not counted.
    assert_eq!(
        (c.expected, c.desired_healthy, c.current_healthy),
        (7, 6, 2)
    );
    assert_eq!(c.allowed, 0);
}

#[test]
fn evictions_within_the_budget_go_and_fence_the_others() {
    let scales = Scales::default();
    let pods = [
        pod("a", None, true),
        pod("b", None, true),
        pod("c", None, true),
        pod("d", None, false),
    ];
    let (o, b) = budget(json!({"minAvailable": 2, "selector": {}}));
    match decide(&pods[0], &o, &b, &pods, &scales) {
        Verdict::Allow { fence } => {
            let names: Vec<&str> = fence.iter().map(|(k, _)| k.name.as_str()).collect();
            assert_eq!(names, ["web-pdb", "b", "c"]);
            assert_eq!(fence[0].1, 9);
        }
        v => panic!("{v:?}"),
    }
    // Two ready of a budget of two: a ready pod waits, with the figures.
    let two = [pods[1].clone(), pods[2].clone(), pods[3].clone()];
    match decide(&two[0], &o, &b, &two, &scales) {
        Verdict::Wait(why) => assert!(
            why.contains("web-pdb needs 2 healthy pods and has 2 currently"),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
    // The unready pod takes nothing away while the budget is met...
    assert!(matches!(
        decide(&two[2], &o, &b, &two, &scales),
        Verdict::Allow { .. }
    ));
    // ...but not once it is not, unless the policy says always.
    let one = [pods[1].clone(), pods[3].clone()];
    assert!(matches!(
        decide(&one[1], &o, &b, &one, &scales),
        Verdict::Wait(_)
    ));
    let (o2, b2) = budget(json!({"minAvailable": 2, "selector": {},
        "unhealthyPodEvictionPolicy": "AlwaysAllow"}));
    assert!(matches!(
        decide(&one[1], &o2, &b2, &one, &scales),
        Verdict::Allow { .. }
    ));
}

#[test]
fn selectors_cover_as_policy_v1() {
    let p = pod_object("a", None, true, "Running");
    let (absent, b) = budget(json!({"minAvailable": 1}));
    assert!(!covers(&absent, &b, &p), "no selector covers nothing");
    let (all, b) = budget(json!({"minAvailable": 1, "selector": {}}));
    assert!(covers(&all, &b, &p), "an empty selector covers everything");
    let (other, b) = budget(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}));
    assert!(!covers(&other, &b, &p));
    let mut elsewhere = p.clone();
    elsewhere.metadata.namespace = Some("prod".into());
    assert!(!covers(
        &all,
        &budget(json!({"selector": {}})).1,
        &elsewhere
    ));
}

#[test]
fn status_keeps_the_transition_time_while_unchanged() {
    let c = Count {
        expected: 3,
        desired_healthy: 2,
        current_healthy: 3,
        allowed: 1,
    };
    let s1 = status(Some(2), c, &Default::default(), "t1");
    assert_eq!(s1.disruptions_allowed, 1);
    assert_eq!(s1.conditions[0].reason.as_deref(), Some("SufficientPods"));
    let s2 = status(Some(2), c, &s1, "t2");
    assert_eq!(s2, s1);
    let s3 = status(Some(2), Count { allowed: 0, ..c }, &s2, "t3");
    assert_eq!(s3.conditions[0].status, "False");
    assert_eq!(s3.conditions[0].last_transition_time.as_deref(), Some("t3"));
}
