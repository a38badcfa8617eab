//! Claims in placement, table by table: which nodes a pod may go to, and
//! what binding writes.

use serde_json::json;

use super::*;

const GI: u64 = 1 << 30;

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).expect("object")
}

fn claim(name: &str, modes: &[&str], size: &str, extra: serde_json::Value) -> Object {
    let mut spec = json!({"accessModes": modes, "resources": {"requests": {"storage": size}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    obj(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": "5"},
        "spec": spec
    }))
}

fn local_class(name: &str, default: bool) -> Object {
    let mut o = obj(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "shoal.io/local", "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain"
    }));
    if default {
        o.metadata
            .annotations
            .insert(DEFAULT_CLASS_ANNOTATION.into(), "true".into());
    }
    o
}

fn pinned_volume(name: &str, node: &str, size: &str) -> Object {
    obj(json!({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        }
    }))
}

fn pod(name: &str, claims: &[&str]) -> Object {
    let volumes: Vec<_> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": volumes}
    }))
}

fn nodes() -> Vec<(String, u64)> {
    vec![("a".into(), 10 * GI), ("b".into(), 2 * GI), ("c".into(), 0)]
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn view(claims: Vec<Object>, volumes: &[Object], users: &[(Object, &str)]) -> StorageView {
    let pods: Vec<(&Object, Option<&str>)> = users.iter().map(|(p, n)| (p, Some(*n))).collect();
    StorageView::new(
        &nodes(),
        claims,
        volumes,
        &[local_class("local", true), local_class("other", false)],
        &pods,
    )
}

fn only(v: &Verdict) -> (BTreeSet<String>, VolumeReason, usize) {
    match v {
        Verdict::Only(n, p) => (n.allowed.clone(), n.reason, p.len()),
        other => panic!("expected Only, got {other:?}"),
    }
}

fn refused(v: &Verdict) -> String {
    match v {
        Verdict::Refused(why) => why.clone(),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn unbound_claims_go_where_there_is_room() {
    let v = view(
        vec![
            claim("small", &["ReadWriteOnce"], "1Gi", json!({})),
            claim("big", &["ReadWriteOnce"], "5Gi", json!({})),
            claim("huge", &["ReadWriteOnce"], "1Ti", json!({})),
            claim(
                "named",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"storageClassName": "other"}),
            ),
        ],
        &[pinned_volume("old", "a", "4Gi")],
        &[],
    );
    assert_eq!(v.verdict("default", "p", &[]), Verdict::Any);
    // a: 10Gi less the 4Gi already pinned there; b: 2Gi; c: none.
    let cases: [(&[&str], &[&str]); 5] = [
        (&["small"], &["a", "b"]),
        (&["big"], &["a"]),
        (&["small", "big"], &["a"]),
        (&["named"], &["a", "b"]),
        (&["huge"], &[]),
    ];
    for (claims, want) in cases {
        let (allowed, reason, provisions) = only(&v.verdict("default", "p", &names(claims)));
        assert_eq!(allowed, set(want), "{claims:?}");
        assert_eq!(reason, VolumeReason::Capacity);
        assert_eq!(provisions, claims.len());
    }
}

#[test]
fn a_bound_claim_pins_its_pods_to_its_node() {
    let bound = claim(
        "data",
        &["ReadWriteOnce"],
        "1Gi",
        json!({"volumeName": "pvc-1"}),
    );
    let v = view(
        vec![bound, claim("fresh", &["ReadWriteOnce"], "3Gi", json!({}))],
        &[pinned_volume("pvc-1", "b", "1Gi")],
        &[],
    );
    let (allowed, reason, provisions) = only(&v.verdict("default", "p", &names(&["data"])));
    assert_eq!(
        (allowed, reason, provisions),
        (set(&["b"]), VolumeReason::Affinity, 0)
    );
    // b has 1Gi left: a 3Gi claim with it fits nowhere.
    let (allowed, reason, _) = only(&v.verdict("default", "p", &names(&["data", "fresh"])));
    assert_eq!((allowed, reason), (set(&[]), VolumeReason::Affinity));
}

#[test]
fn claims_that_cannot_be_used_say_why() {
    let mut deleting = claim("gone", &["ReadWriteOnce"], "1Gi", json!({}));
    deleting.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
    let v = view(
        vec![
            deleting,
            claim("rwop", &["ReadWriteOncePod"], "1Gi", json!({})),
            claim(
                "none",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"storageClassName": ""}),
            ),
            claim(
                "nosuch",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"storageClassName": "nosuch"}),
            ),
            claim(
                "lost",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"volumeName": "pvc-x"}),
            ),
            claim(
                "picky",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"selector": {"matchLabels": {"tier": "fast"}}}),
            ),
        ],
        &[],
        &[(pod("holder", &["rwop"]), "a")],
    );
    for (claim, want) in [
        ("missing", "persistentvolumeclaim \"missing\" not found"),
        ("gone", "persistentvolumeclaim \"gone\" is being deleted"),
        (
            "rwop",
            "persistentvolumeclaim \"rwop\" is ReadWriteOncePod and used by pod \"holder\"",
        ),
        ("none", "asks for no storage class"),
        ("nosuch", "storageclass \"nosuch\" not found"),
        ("lost", "bound to volume \"pvc-x\", which does not exist"),
        // Never provisioned: it waits for a matching volume made by hand.
        (
            "picky",
            "has a selector: it binds only to a volume made by hand",
        ),
    ] {
        let why = refused(&v.verdict("default", "p", &names(&[claim])));
        assert!(why.contains(want), "{claim}: {why}");
    }
    // The pod that holds a ReadWriteOncePod claim may be looked at again.
    assert!(matches!(
        v.verdict("default", "holder", &names(&["rwop"])),
        Verdict::Only(..)
    ));
}

#[test]
fn binding_holds_later_pods_of_the_pass_and_takes_the_room() {
    let mut v = view(
        vec![
            claim("data", &["ReadWriteOnce"], "2Gi", json!({})),
            claim("more", &["ReadWriteOnce"], "1Gi", json!({})),
        ],
        &[],
        &[],
    );
    let Verdict::Only(_, provision) = v.verdict("default", "p1", &names(&["data"])) else {
        panic!("expected Only");
    };
    let (c, pv) = v.binding_objects(&provision[0], "b", "T").expect("binding");
    v.bound("default", "p1", "b", &names(&["data"]), &provision);
    // The second pod with the same claim waits for the binding to be
    // stored (a refused write would leave it bound with an unbound claim).
    assert_eq!(
        v.verdict("default", "p2", &names(&["data"])),
        Verdict::NextPass
    );
    // b's 2Gi are taken.
    let (allowed, _, _) = only(&v.verdict("default", "p3", &names(&["more"])));
    assert_eq!(allowed, set(&["a"]));

    let cb = PersistentVolumeClaimBody::from_object(&c).expect("claim");
    assert_eq!(cb.spec.volume_name.as_deref(), Some("pvc-uid-data"));
    assert_eq!(cb.spec.storage_class_name.as_deref(), Some("local"));
    let st: PersistentVolumeClaimStatus = c.status_or_default();
    assert_eq!(st.phase.as_deref(), Some("Bound"));
    assert_eq!(st.capacity["storage"], json!("2Gi"));
    assert_eq!(c.resource_version(), 5, "written at the version read");
    assert_eq!(pv.metadata.name, "pvc-uid-data");
    let pb = PersistentVolumeBody::from_object(&pv).expect("volume");
    assert_eq!(pb.spec.pinned_node(), Some("b"));
    assert_eq!(
        pb.spec.persistent_volume_reclaim_policy,
        Some(ReclaimPolicy::Retain),
        "the class's policy"
    );
    assert_eq!(pb.spec.capacity_bytes(), Some(2 * GI));
    let r = pb.spec.claim_ref.expect("claimRef");
    assert_eq!(
        (r.name.as_str(), r.uid.as_deref()),
        ("data", Some("uid-data"))
    );
}

#[test]
fn nodes_offer_their_reported_room() {
    let node = obj(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
        "status": {"allocatable": {"shoal.io/volume-storage": "1073741824"}}
    }));
    assert_eq!(node_volume_bytes(&node), GI);
    let silent = obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}));
    assert_eq!(node_volume_bytes(&silent), 0);
    assert_eq!(pod_claims(&pod("p", &["x", "y"])), names(&["x", "y"]));
}

#[test]
fn pods_placed_by_hand_are_found_when_their_claim_is_unbound() {
    let v = view(
        vec![
            claim("fresh", &["ReadWriteOnce"], "1Gi", json!({})),
            claim(
                "done",
                &["ReadWriteOnce"],
                "1Gi",
                json!({"volumeName": "pvc-1"}),
            ),
        ],
        &[pinned_volume("pvc-1", "a", "1Gi")],
        &[],
    );
    assert!(v.has_unbound_claims(&pod("p", &["done", "fresh"])));
    assert!(!v.has_unbound_claims(&pod("p", &["done"])));
    assert!(!v.has_unbound_claims(&pod("p", &["missing"])));
    assert!(!v.has_unbound_claims(&pod("p", &[])));
}
