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
