//! The storage pass's decisions, table by table.

use serde_json::json;

use super::*;

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).expect("object")
}

fn claim(name: &str, uid: &str, deleting: bool) -> Object {
    let mut meta =
        json!({"name": name, "namespace": "default", "uid": uid, "resourceVersion": "7"});
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    obj(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
}

fn volume(name: &str, claim: &str, uid: &str, policy: &str, phase: Option<&str>) -> Object {
    let mut o = obj(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "resourceVersion": "9"},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": policy,
            "claimRef": {"namespace": "default", "name": claim, "uid": uid}
        }
    }));
    if let Some(p) = phase {
        o.body.insert("status".into(), json!({"phase": p}));
    }
    o
}

fn pod(name: &str, claim: &str, phase: &str) -> Object {
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]
        },
        "status": {"phase": phase}
    }))
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, "default", name)
}

#[test]
fn the_local_class_is_created_once() {
    assert!(plan(&[], &[], &[], &[]).create_local_class);
    let class = local_class("T");
    assert!(!plan(std::slice::from_ref(&class), &[], &[], &[]).create_local_class);
    let b = crate::resource::types::StorageClassBody::from_object(&class).expect("decodes");
    assert_eq!(b.provisioner, LOCAL_PROVISIONER);
    assert_eq!(class.metadata.annotations[DEFAULT_CLASS_ANNOTATION], "true");
}

#[test]
fn a_claim_in_use_waits_for_its_pods() {
    let cases = [
        // (pods, deleted?)
        (vec![], true),
        (vec![pod("p", "data", "Running")], false),
        (vec![pod("p", "data", "Pending")], false),
        (vec![pod("p", "data", "Succeeded")], true),
        (vec![pod("p", "other", "Running")], true),
    ];
    for (pods, deleted) in cases {
        let p = plan(&[], &[claim("data", "u1", true)], &[], &pods);
        let want = if deleted {
            vec![(key(Kind::PersistentVolumeClaim, "data"), 7)]
        } else {
            vec![]
        };
        assert_eq!(p.delete_claims, want, "{pods:?}");
    }
    let p = plan(&[], &[claim("data", "u1", false)], &[], &[]);
    assert!(p.delete_claims.is_empty(), "not marked: kept");
}

#[test]
fn a_gone_claims_volume_is_deleted_or_released() {
    let pv = |policy, phase| volume("pvc-u1", "data", "u1", policy, phase);
    let pv_key = ObjectKey::new(Kind::PersistentVolume, "", "pvc-u1");
    // Bound: nothing to do whatever the policy.
    let p = plan(
        &[],
        &[claim("data", "u1", false)],
        &[pv("Delete", None)],
        &[],
    );
    assert_eq!((p.delete_volumes.len(), p.release_volumes.len()), (0, 0));
    // Claim gone.
    let p = plan(&[], &[], &[pv("Delete", None)], &[]);
    assert_eq!(p.delete_volumes, vec![(pv_key.clone(), 9)]);
    let p = plan(&[], &[], &[pv("Retain", Some("Bound"))], &[]);
    assert_eq!(p.release_volumes, vec![(pv_key.clone(), 9)]);
    assert!(p.delete_volumes.is_empty());
    let p = plan(&[], &[], &[pv("Retain", Some("Released"))], &[]);
    assert!(
        p.release_volumes.is_empty(),
        "already Released: nothing written"
    );
    // A claim of the same name but another uid is another claim.
    let p = plan(
        &[],
        &[claim("data", "u2", false)],
        &[pv("Delete", None)],
        &[],
    );
    assert_eq!(p.delete_volumes, vec![(pv_key, 9)]);
}

#[test]
fn every_live_claim_gets_the_protection_finalizer_once() {
    let bare = claim("data", "u1", false);
    let p = plan(&[], std::slice::from_ref(&bare), &[], &[]);
    assert_eq!(
        p.protect_claims,
        vec![(key(Kind::PersistentVolumeClaim, "data"), 7)]
    );
    let mut protected = bare.clone();
    protected.metadata.finalizers = Some(vec![PVC_PROTECTION.into()]);
    assert!(has_protection(&protected));
    let p = plan(&[], &[protected], &[], &[]);
    assert!(p.protect_claims.is_empty(), "already protected");
    // A claim being deleted is not given it again (in use or not).
    let deleting = claim("data", "u1", true);
    let p = plan(
        &[],
        std::slice::from_ref(&deleting),
        &[],
        &[pod("p", "data", "Running")],
    );
    assert!(p.protect_claims.is_empty() && p.delete_claims.is_empty());
}

/// A volume made by hand: `size`, class `class` (none when `None`), a
/// claimRef when `to` names a claim (with `uid` if given).
fn hand_volume(
    name: &str,
    size: &str,
    class: Option<&str>,
    to: Option<(&str, Option<&str>)>,
) -> Object {
    let mut spec = json!({
        "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": format!("/srv/{name}")}
    });
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    if let Some((claim, uid)) = to {
        spec["claimRef"] = json!({"namespace": "default", "name": claim});
        if let Some(u) = uid {
            spec["claimRef"]["uid"] = json!(u);
        }
    }
    obj(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "resourceVersion": "9"}, "spec": spec
    }))
}

fn static_claim(name: &str, class: Option<&str>, volume: Option<&str>) -> Object {
    let mut c = claim(name, &format!("uid-{name}"), false);
    if let Some(s) = c.body.get_mut("spec") {
        if let Some(cl) = class {
            s["storageClassName"] = json!(cl);
        }
        if let Some(v) = volume {
            s["volumeName"] = json!(v);
        }
    }
    c
}

#[test]
fn a_claim_naming_a_volume_binds_to_it_if_free_and_fitting() {
    let pv_key = |n: &str| ObjectKey::new(Kind::PersistentVolume, "", n);
    let c = static_claim("data", None, Some("pv1"));
    let p = plan(
        &[],
        std::slice::from_ref(&c),
        &[hand_volume("pv1", "2Gi", None, None)],
        &[],
    );
    assert_eq!(
        p.static_binds,
        vec![binding::StaticBind {
            claim: key(Kind::PersistentVolumeClaim, "data"),
            claim_version: 7,
            volume: pv_key("pv1"),
            volume_version: 9,
        }]
    );
    // Too small, bound to another claim, or pre-bound to another: no.
    for pv in [
        hand_volume("pv1", "512Mi", None, None),
        hand_volume("pv1", "2Gi", None, Some(("other", Some("u9")))),
        hand_volume("pv1", "2Gi", None, Some(("other", None))),
    ] {
        let p = plan(
            &[],
            std::slice::from_ref(&c),
            std::slice::from_ref(&pv),
            &[],
        );
        assert!(p.static_binds.is_empty(), "{pv:?}");
    }
    // Pre-bound to this claim by its author: yes.
    let pv = hand_volume("pv1", "2Gi", None, Some(("data", None)));
    let p = plan(
        &[],
        std::slice::from_ref(&c),
        std::slice::from_ref(&pv),
        &[],
    );
    assert_eq!(p.static_binds.len(), 1);
    // and such a volume is not released while it waits for its claim.
    let p = plan(&[], &[], std::slice::from_ref(&pv), &[]);
    assert!(p.release_volumes.is_empty() && p.delete_volumes.is_empty());
}

#[test]
fn a_claim_of_an_explicit_class_takes_the_smallest_fitting_volume_once() {
    let vols = [
        hand_volume("big", "10Gi", None, None),
        hand_volume("small", "1Gi", None, None),
        hand_volume("tiny", "100Mi", None, None),
        hand_volume("fast", "1Gi", Some("fast"), None),
    ];
    let a = static_claim("a", Some(""), None);
    let b = static_claim("b", Some(""), None);
    let p = plan(&[], &[a.clone(), b], &vols, &[]);
    let chosen: Vec<&str> = p
        .static_binds
        .iter()
        .map(|s| s.volume.name.as_str())
        .collect();
    assert_eq!(
        chosen,
        vec!["small", "big"],
        "smallest first, never one volume twice"
    );
    let p = plan(&[], &[static_claim("f", Some("fast"), None)], &vols, &[]);
    assert_eq!(p.static_binds[0].volume.name, "fast");
    // The default class (no storageClassName) is the scheduler's to provision.
    let p = plan(&[], &[static_claim("d", None, None)], &vols, &[]);
    assert!(p.static_binds.is_empty());
    // A bound claim is not bound again.
    let (bound, pv) = binding::bound_pair(&a, &vols[1]).expect("pair");
    assert_eq!(bound.body["spec"]["volumeName"], "small");
    assert_eq!(bound.body["status"]["phase"], "Bound");
    assert_eq!(bound.body["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(pv.body["spec"]["claimRef"]["uid"], "uid-a");
    assert_eq!(pv.body["status"]["phase"], "Bound");
    let p = plan(&[], &[bound], &[pv], &[]);
    assert!(p.static_binds.is_empty());
}

#[test]
fn a_claim_with_a_selector_binds_only_to_matching_volumes_and_is_never_provisioned() {
    let labelled = |name: &str, size: &str, class: Option<&str>, tier: &str| {
        let mut v = hand_volume(name, size, class, None);
        v.metadata.labels.insert("tier".into(), tier.into());
        v
    };
    let vols = [
        labelled("slow-small", "1Gi", Some(""), "slow"),
        labelled("fast-big", "10Gi", Some(""), "fast"),
        labelled("fast-default", "5Gi", Some(LOCAL_CLASS), "fast"),
    ];
    let selecting = |name: &str, class: Option<&str>| {
        let mut c = static_claim(name, class, None);
        c.body["spec"]["selector"] = json!({"matchLabels": {"tier": "fast"}});
        c
    };
    // Not the smallest volume of its class: the smallest that matches.
    let p = plan(&[], &[selecting("a", Some(""))], &vols, &[]);
    let chosen: Vec<&str> = p
        .static_binds
        .iter()
        .map(|s| s.volume.name.as_str())
        .collect();
    assert_eq!(chosen, ["fast-big"]);
    // Of the default class (`local`, made by the pass): a volume made by
    // hand of that class, never a provisioned one.
    let classes = [local_class("T")];
    let p = plan(&classes, &[selecting("d", None)], &vols, &[]);
    let chosen: Vec<&str> = p
        .static_binds
        .iter()
        .map(|s| s.volume.name.as_str())
        .collect();
    assert_eq!(chosen, ["fast-default"]);
    // Nothing matches: it waits, unbound.
    let mut none = selecting("n", Some(""));
    none.body["spec"]["selector"] = json!({"matchLabels": {"tier": "gold"}});
    assert!(plan(&[], &[none], &vols, &[]).static_binds.is_empty());
    // Naming a volume its selector does not match: no.
    let mut named = selecting("v", None);
    named.body["spec"]["volumeName"] = json!("slow-small");
    assert!(plan(&[], &[named], &vols, &[]).static_binds.is_empty());
}

#[test]
fn an_unbound_volume_is_marked_available_once() {
    let pv = hand_volume("pv1", "1Gi", None, None);
    let p = plan(&[], &[], std::slice::from_ref(&pv), &[]);
    assert_eq!(
        p.available_volumes,
        vec![(ObjectKey::new(Kind::PersistentVolume, "", "pv1"), 9)]
    );
    let mut pv = pv;
    pv.body
        .insert("status".into(), json!({"phase": "Available"}));
    assert!(plan(&[], &[], &[pv], &[]).available_volumes.is_empty());
}

#[test]
fn a_claim_of_a_docker_class_gets_an_unpinned_volume_of_the_driver() {
    let class = obj(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "nfs"},
        "provisioner": "shoal.io/docker", "reclaimPolicy": "Retain",
        "parameters": {"type": "nfs", "o": "addr=10.0.0.5,rw", "device": ":/export"}
    }));
    let c = static_claim("data", Some("nfs"), None);
    let p = plan(
        std::slice::from_ref(&class),
        std::slice::from_ref(&c),
        &[],
        &[],
    );
    assert_eq!(
        p.docker_provision,
        vec![(key(Kind::PersistentVolumeClaim, "data"), 7)]
    );
    assert!(p.static_binds.is_empty());
    let (bound, pv) = binding::docker_volume(&c, &class, "T").expect("made");
    assert_eq!(pv.metadata.name, "pvc-uid-data");
    assert_eq!(bound.body["spec"]["volumeName"], "pvc-uid-data");
    assert_eq!(bound.body["status"]["phase"], "Bound");
    let spec = &pv.body["spec"];
    assert_eq!(spec["csi"]["driver"], "shoal.io/docker");
    assert_eq!(spec["csi"]["volumeHandle"], "pvc-uid-data");
    assert_eq!(spec["csi"]["volumeAttributes"]["o"], "addr=10.0.0.5,rw");
    assert_eq!(spec["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(spec["claimRef"]["uid"], "uid-data");
    assert!(spec["nodeAffinity"].is_null(), "reachable from any node");
    let b = PersistentVolumeBody::from_object(&pv).expect("a valid volume");
    let (driver, options) = b.spec.csi.expect("csi").docker_driver().expect("ours");
    assert_eq!(driver, "local");
    assert_eq!(options.len(), 3);
    // Bound: not provisioned again. Of the local class or none: not ours.
    let p = plan(std::slice::from_ref(&class), &[bound], &[pv], &[]);
    assert!(p.docker_provision.is_empty());
    let p = plan(
        &[class],
        &[static_claim("x", Some("local"), None)],
        &[],
        &[],
    );
    assert!(p.docker_provision.is_empty());
}
