use super::*;
use crate::resource::types::{
    ClaimRetentionPolicy, ClaimTemplate, ClaimTemplateMetadata, RollingUpdateStatefulSet,
    StatefulSetUpdateStrategy,
};

fn spec(replicas: u32, policy: PodManagementPolicy) -> StatefulSetSpec {
    StatefulSetSpec {
        replicas: Some(replicas),
        pod_management_policy: Some(policy),
        volume_claim_templates: vec![ClaimTemplate {
            metadata: ClaimTemplateMetadata {
                name: "data".into(),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn pod(o: u32, hash: &str, ready: bool) -> StsPod {
    StsPod {
        ordinal: Some(o),
        name: format!("web-{o}"),
        hash: hash.into(),
        terminal: false,
        ready,
        available: ready,
    }
}

fn live(names: &[&str]) -> BTreeMap<String, ClaimState> {
    names
        .iter()
        .map(|n| (n.to_string(), ClaimState::Live))
        .collect()
}

fn created(p: &Plan) -> Vec<u32> {
    p.create.iter().map(|(o, _)| *o).collect()
}

#[test]
fn ordinals_parse_only_exact_names() {
    assert_eq!(ordinal_of("web", "web-0"), Some(0));
    assert_eq!(ordinal_of("web", "web-12"), Some(12));
    assert_eq!(ordinal_of("web", "web-01"), None);
    assert_eq!(ordinal_of("web", "web-"), None);
    assert_eq!(ordinal_of("web", "webx-1"), None);
    assert_eq!(ordinal_of("web", "web-1-2"), None);
}

#[test]
fn ordered_ready_creates_one_at_a_time_after_the_ones_below_are_ready() {
    let s = spec(3, PodManagementPolicy::OrderedReady);
    let none = BTreeMap::new();
    // (pods, ordinals created, claims created)
    type Case = (Vec<StsPod>, Vec<u32>, Vec<(String, u32)>);
    let cases: Vec<Case> = vec![
        (vec![], vec![0], vec![("data".into(), 0)]),
        (vec![pod(0, "h", false)], vec![], vec![]),
        (vec![pod(0, "h", true)], vec![1], vec![("data".into(), 1)]),
        (
            vec![pod(0, "h", true), pod(1, "h", true)],
            vec![2],
            vec![("data".into(), 2)],
        ),
        // web-0 lost while web-1 runs: web-0 comes back first, alone.
        (vec![pod(1, "h", true)], vec![0], vec![("data".into(), 0)]),
    ];
    for (pods, want, want_claims) in cases {
        let p = plan("web", &s, "h", "h", &pods, &none);
        assert_eq!(created(&p), want, "{pods:?}");
        assert_eq!(p.create_claims, want_claims, "{pods:?}");
        assert!(p.delete.is_empty(), "{pods:?}");
    }
}

#[test]
fn parallel_creates_every_missing_ordinal_at_once() {
    let s = spec(3, PodManagementPolicy::Parallel);
    let p = plan("web", &s, "h", "h", &[pod(1, "h", false)], &BTreeMap::new());
    assert_eq!(created(&p), vec![0, 2]);
}

#[test]
fn an_existing_claim_is_reused_and_one_being_deleted_holds_the_pod() {
    let s = spec(1, PodManagementPolicy::OrderedReady);
    let p = plan("web", &s, "h", "h", &[], &live(&["data-web-0"]));
    assert_eq!(created(&p), vec![0]);
    assert!(
        p.create_claims.is_empty(),
        "the claim (and its data) is kept"
    );
    let deleting = BTreeMap::from([("data-web-0".to_string(), ClaimState::Deleting)]);
    let p = plan("web", &s, "h", "h", &[], &deleting);
    assert!(p.create.is_empty() && p.create_claims.is_empty());
}

#[test]
fn a_failed_pod_is_deleted_then_recreated_under_its_name() {
    let s = spec(2, PodManagementPolicy::OrderedReady);
    let mut failed = pod(1, "h", false);
    failed.terminal = true;
    let pods = vec![pod(0, "h", true), failed];
    let p = plan(
        "web",
        &s,
        "h",
        "h",
        &pods,
        &live(&["data-web-0", "data-web-1"]),
    );
    assert_eq!(p.delete, vec!["web-1".to_string()]);
    assert!(p.create.is_empty(), "the name is still taken this pass");
    let p = plan(
        "web",
        &s,
        "h",
        "h",
        &pods[..1],
        &live(&["data-web-0", "data-web-1"]),
    );
    assert_eq!(created(&p), vec![1]);
    assert!(p.create_claims.is_empty());
}

#[test]
fn a_pod_on_a_lost_node_is_not_replaced_until_it_is_marked_failed() {
    // Not Ready and not finished: its node may still run it.
    let s = spec(2, PodManagementPolicy::Parallel);
    let pods = vec![pod(0, "h", true), pod(1, "h", false)];
    let p = plan(
        "web",
        &s,
        "h",
        "h",
        &pods,
        &live(&["data-web-0", "data-web-1"]),
    );
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
}

#[test]
fn scale_down_removes_the_highest_ordinal_first_and_keeps_its_claim() {
    let s = spec(1, PodManagementPolicy::OrderedReady);
    let pods = vec![pod(0, "h", true), pod(1, "h", true), pod(2, "h", true)];
    let claims = live(&["data-web-0", "data-web-1", "data-web-2"]);
    let p = plan("web", &s, "h", "h", &pods, &claims);
    assert_eq!(p.delete, vec!["web-2".to_string()]);
    assert!(p.delete_claims.is_empty());
    // Not while a remaining pod is not Ready.
    let pods = vec![pod(0, "h", false), pod(1, "h", true)];
    let p = plan("web", &s, "h", "h", &pods, &claims);
    assert!(p.delete.is_empty());
    // Parallel removes them all at once.
    let s = spec(1, PodManagementPolicy::Parallel);
    let pods = vec![pod(0, "h", true), pod(1, "h", true), pod(2, "h", true)];
    let p = plan("web", &s, "h", "h", &pods, &claims);
    assert_eq!(p.delete, vec!["web-1".to_string(), "web-2".to_string()]);
}

#[test]
fn when_scaled_delete_marks_claims_of_ordinals_whose_pod_is_gone() {
    let mut s = spec(1, PodManagementPolicy::OrderedReady);
    s.persistent_volume_claim_retention_policy = Some(ClaimRetentionPolicy {
        when_scaled: Some(ClaimRetention::Delete),
        when_deleted: None,
    });
    let claims = live(&["data-web-0", "data-web-1", "data-web-2", "data-webx-3"]);
    let pods = vec![pod(0, "h", true), pod(1, "h", true)];
    let p = plan("web", &s, "h", "h", &pods, &claims);
    assert_eq!(p.delete, vec!["web-1".to_string()]);
    assert_eq!(p.delete_claims, vec!["data-web-2".to_string()]);
}

fn rolling(partition: u32) -> StatefulSetSpec {
    let mut s = spec(3, PodManagementPolicy::OrderedReady);
    s.update_strategy = Some(StatefulSetUpdateStrategy {
        strategy_type: None,
        rolling_update: Some(RollingUpdateStatefulSet {
            partition: Some(partition),
            max_unavailable: None,
        }),
    });
    s
}

#[test]
fn rolling_update_goes_in_reverse_ordinal_order_down_to_the_partition() {
    let claims = live(&["data-web-0", "data-web-1", "data-web-2"]);
    let s = rolling(1);
    let all_old = vec![
        pod(0, "old", true),
        pod(1, "old", true),
        pod(2, "old", true),
    ];
    let p = plan("web", &s, "new", "old", &all_old, &claims);
    assert_eq!(p.delete, vec!["web-2".to_string()]);
    // web-2 gone: it comes back on the new template.
    let p = plan("web", &s, "new", "old", &all_old[..2], &claims);
    assert_eq!(p.create, vec![(2, "new".to_string())]);
    assert!(p.delete.is_empty());
    // web-2 new but not Ready yet: nothing else moves.
    let pods = vec![
        pod(0, "old", true),
        pod(1, "old", true),
        pod(2, "new", false),
    ];
    let p = plan("web", &s, "new", "old", &pods, &claims);
    assert!(p.delete.is_empty() && p.create.is_empty());
    let pods = vec![
        pod(0, "old", true),
        pod(1, "old", true),
        pod(2, "new", true),
    ];
    let p = plan("web", &s, "new", "old", &pods, &claims);
    assert_eq!(p.delete, vec!["web-1".to_string()]);
    // Below the partition: kept, and recreated on the old template.
    let pods = vec![
        pod(0, "old", true),
        pod(1, "new", true),
        pod(2, "new", true),
    ];
    let p = plan("web", &s, "new", "old", &pods, &claims);
    assert!(p.delete.is_empty());
    assert_eq!(p.status.current_revision.as_deref(), Some("web-old"));
    assert_eq!(p.status.update_revision.as_deref(), Some("web-new"));
    assert_eq!(
        (p.status.current_replicas, p.status.updated_replicas),
        (1, 2)
    );
    let p = plan("web", &s, "new", "old", &pods[1..], &claims);
    assert_eq!(p.create, vec![(0, "old".to_string())]);
}

#[test]
fn a_finished_rollout_makes_the_update_revision_current() {
    let claims = live(&["data-web-0", "data-web-1", "data-web-2"]);
    let pods = vec![
        pod(0, "new", true),
        pod(1, "new", true),
        pod(2, "new", true),
    ];
    let p = plan("web", &rolling(0), "new", "old", &pods, &claims);
    assert_eq!(p.status.current_revision.as_deref(), Some("web-new"));
    assert_eq!(p.status.ready_replicas, 3);
}

#[test]
fn on_delete_leaves_old_pods_until_the_user_deletes_them() {
    let mut s = spec(2, PodManagementPolicy::OrderedReady);
    s.update_strategy = Some(StatefulSetUpdateStrategy {
        strategy_type: Some(StatefulSetStrategyType::OnDelete),
        rolling_update: None,
    });
    let claims = live(&["data-web-0", "data-web-1"]);
    let pods = vec![pod(0, "old", true), pod(1, "old", true)];
    let p = plan("web", &s, "new", "old", &pods, &claims);
    assert!(p.delete.is_empty() && p.create.is_empty());
    let p = plan("web", &s, "new", "old", &pods[..1], &claims);
    assert_eq!(p.create, vec![(1, "new".to_string())]);
}

#[test]
fn pods_with_foreign_names_are_deleted() {
    let s = spec(1, PodManagementPolicy::Parallel);
    let mut odd = pod(0, "h", true);
    odd.ordinal = None;
    odd.name = "web-abc".into();
    let p = plan(
        "web",
        &s,
        "h",
        "h",
        &[pod(0, "h", true), odd],
        &live(&["data-web-0"]),
    );
    assert_eq!(p.delete, vec!["web-abc".to_string()]);
}

fn stored_pod(owner_kind: &str, node: &str, phase: &str) -> Object {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": owner_kind, "name": "web",
                "uid": "u1", "controller": true
            }]
        },
        "spec": { "nodeName": node, "containers": [] },
        "status": { "phase": phase }
    }))
    .expect("pod")
}

#[test]
fn deleting_a_pod_on_an_unreachable_node_needs_force_only_for_statefulsets() {
    let up = |n: &str| n == "n1";
    // (owner, node, phase, refused)
    let cases = [
        ("StatefulSet", "n2", "Running", true),
        ("StatefulSet", "n1", "Running", false),
        // Marked Failed by node lifecycle: the node is known lost.
        ("StatefulSet", "n2", "Failed", false),
        ("ReplicaSet", "n2", "Running", false),
    ];
    for (owner, node, phase, refused) in cases {
        let why = delete_needs_force(&stored_pod(owner, node, phase), up);
        assert_eq!(why.is_some(), refused, "{owner} {node} {phase}: {why:?}");
        if let Some(why) = why {
            assert!(why.contains("--force") && why.contains("\"n2\""), "{why}");
        }
    }
}

#[test]
fn a_pass_deletes_a_bounded_number_of_pods() {
    let s = spec(0, PodManagementPolicy::Parallel);
    let pods: Vec<StsPod> = (0..250).map(|o| pod(o, "h", true)).collect();
    let p = plan("web", &s, "h", "h", &pods, &BTreeMap::new());
    assert_eq!(p.delete.len(), MAX_CREATES_PER_PASS);
}

fn starting_at(start: u32, replicas: u32, policy: PodManagementPolicy) -> StatefulSetSpec {
    let mut s = spec(replicas, policy);
    s.ordinals = Some(crate::resource::types::StatefulSetOrdinals { start });
    s
}

#[test]
fn ordinals_start_names_pods_from_start() {
    let none = BTreeMap::new();
    let s = starting_at(5, 3, PodManagementPolicy::Parallel);
    let p = plan("web", &s, "h", "h", &[], &none);
    assert_eq!(created(&p), vec![5, 6, 7]);
    let claims: Vec<u32> = p.create_claims.iter().map(|(_, o)| *o).collect();
    assert_eq!(claims, vec![5, 6, 7]);
    // OrderedReady starts at `start` and waits for it.
    let s = starting_at(5, 3, PodManagementPolicy::OrderedReady);
    assert_eq!(created(&plan("web", &s, "h", "h", &[], &none)), vec![5]);
    let p = plan("web", &s, "h", "h", &[pod(5, "h", false)], &none);
    assert!(p.create.is_empty());
    let p = plan("web", &s, "h", "h", &[pod(5, "h", true)], &none);
    assert_eq!(created(&p), vec![6]);
    // Status counts the pods in the range.
    let pods = [pod(5, "h", true), pod(6, "h", true), pod(7, "h", false)];
    let p = plan("web", &s, "h", "h", &pods, &none);
    assert_eq!(
        (
            p.status.replicas,
            p.status.ready_replicas,
            p.status.available_replicas,
            p.status.updated_replicas
        ),
        (3, 2, 2, 3)
    );
    assert_eq!(p.status.update_revision.as_deref(), Some("web-h"));
}

#[test]
fn ordinals_outside_the_range_are_removed_highest_first() {
    let none = BTreeMap::new();
    let pods = [pod(5, "h", true), pod(6, "h", true), pod(7, "h", true)];
    // Scaled to 2: ordinal 7 goes.
    let s = starting_at(5, 2, PodManagementPolicy::OrderedReady);
    let p = plan("web", &s, "h", "h", &pods, &none);
    assert_eq!(p.delete, vec!["web-7".to_string()]);
    // Start moved to 6: ordinal 5 is outside now; Parallel makes 8 at once.
    let s = starting_at(6, 3, PodManagementPolicy::Parallel);
    let p = plan("web", &s, "h", "h", &pods, &none);
    assert_eq!(p.delete, vec!["web-5".to_string()]);
    assert_eq!(created(&p), vec![8]);
    // OrderedReady: 8 first, and 5 only once 6..9 are all Ready.
    let s = starting_at(6, 3, PodManagementPolicy::OrderedReady);
    let p = plan("web", &s, "h", "h", &pods, &none);
    assert_eq!((created(&p), p.delete.len()), (vec![8], 0));
}

#[test]
fn a_rollout_with_ordinals_start_goes_down_to_start_or_the_partition() {
    let claims = BTreeMap::new();
    let mut s = rolling(0);
    s.ordinals = Some(crate::resource::types::StatefulSetOrdinals { start: 5 });
    let pods = [
        pod(5, "old", true),
        pod(6, "old", true),
        pod(7, "old", true),
    ];
    let p = plan("web", &s, "new", "old", &pods, &claims);
    assert_eq!(p.delete, vec!["web-7".to_string()]);
    let p = plan("web", &s, "new", "old", &[pod(5, "old", true)], &claims);
    assert_eq!(
        p.create,
        vec![(6, "new".to_string())],
        "recreated on the update"
    );
    let mut done = [
        pod(5, "old", true),
        pod(6, "new", true),
        pod(7, "new", true),
    ];
    let p = plan("web", &s, "new", "old", &done, &claims);
    assert_eq!(p.delete, vec!["web-5".to_string()], "start is updated last");
    // The partition is an ordinal, as Kubernetes documents it: 6 keeps 5 old.
    let mut s6 = rolling(6);
    s6.ordinals = s.ordinals;
    let p = plan("web", &s6, "new", "old", &done, &claims);
    assert!(p.delete.is_empty(), "{:?}", p.delete);
    done[0] = pod(5, "new", true);
    let p = plan("web", &s, "new", "old", &done, &claims);
    assert_eq!(p.status.current_revision.as_deref(), Some("web-new"));
}

fn revision(name: &str, owner_uid: &str, hash: &str, template: &PodTemplateSpec) -> Object {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": { REVISION_HASH: hash },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                "uid": owner_uid, "controller": true
            }]
        },
        "data": { "spec": { "template": template } },
        "revision": 1
    }))
    .expect("revision")
}

#[test]
fn a_revision_name_held_by_another_object_bumps_the_collision_count() {
    let set: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "web", "namespace": "default", "uid": "u1" },
        "spec": {}
    }))
    .expect("set");
    let t = spec(1, PodManagementPolicy::Parallel).template;
    let plain = template_hash(&t);
    assert_eq!(salted_hash(&t, 0), plain);
    assert_ne!(salted_hash(&t, 1), plain);
    assert_eq!(revision_hash(&set, &t, 0, &[]), (plain.clone(), 0));
    // Its own revision of the same template: no collision.
    let own = revision(&format!("web-{plain}"), "u1", &plain, &t);
    assert_eq!(revision_hash(&set, &t, 0, &[own]), (plain.clone(), 0));
    // A leftover of a deleted set of the same name: the next salt.
    let other = revision(&format!("web-{plain}"), "u0", &plain, &t);
    let (h, c) = revision_hash(&set, &t, 0, std::slice::from_ref(&other));
    assert_eq!((h.as_str(), c), (salted_hash(&t, 1).as_str(), 1));
    // The count in the status is where the search starts.
    assert_eq!(
        revision_hash(&set, &t, 1, &[other]),
        (salted_hash(&t, 1), 1)
    );
    // Its own revision under that name with another template collides too.
    let mut t2 = t.clone();
    t2.spec.hostname = Some("x".into());
    let stale = revision(&format!("web-{plain}"), "u1", &plain, &t2);
    assert_eq!(revision_hash(&set, &t, 0, &[stale]).1, 1);
}
