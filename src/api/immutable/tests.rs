use serde_json::json;

use super::*;

fn obj(kind: &str, body: Value) -> Object {
    let mut v = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}});
    if let (Some(o), Value::Object(b)) = (v.as_object_mut(), body) {
        o.extend(b);
    }
    serde_json::from_value(v).expect("object")
}

fn refused(kind: Kind, live: Value, new: Value) -> String {
    let k = format!("{kind:?}");
    check(kind, &obj(&k, live), &obj(&k, new)).expect_err("refused")
}

fn allowed(kind: Kind, live: Value, new: Value) {
    let k = format!("{kind:?}");
    check(kind, &obj(&k, live), &obj(&k, new)).expect("allowed");
}

#[test]
fn a_workloads_selector_is_fixed_and_its_template_is_not() {
    let d = |app: &str, image: &str| {
        json!({"spec": {"selector": {"matchLabels": {"app": app}},
               "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    for kind in [Kind::Deployment, Kind::ReplicaSet, Kind::DaemonSet] {
        allowed(kind, d("web", "a"), d("web", "b"));
        assert_eq!(
            refused(kind, d("web", "a"), d("api", "a")),
            "spec.selector: field is immutable"
        );
    }
    // A Job's template is fixed too.
    assert_eq!(
        refused(Kind::Job, d("web", "a"), d("web", "b")),
        "spec.template: field is immutable"
    );
    allowed(
        Kind::Job,
        json!({"spec": {"parallelism": 1, "completions": 3}}),
        json!({"spec": {"parallelism": 2, "completions": 3, "suspend": true}}),
    );
    assert_eq!(
        refused(
            Kind::Job,
            json!({"spec": {"completions": 3}}),
            json!({"spec": {"completions": 4}})
        ),
        "spec.completions: field is immutable"
    );
    // The policies are fixed as in Kubernetes; maxFailedIndexes is not.
    assert_eq!(
        refused(
            Kind::Job,
            json!({"spec": {"podFailurePolicy": {"rules": []}}}),
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Ignore"}]}}})
        ),
        "spec.podFailurePolicy: field is immutable"
    );
    allowed(
        Kind::Job,
        json!({"spec": {"backoffLimitPerIndex": 1, "maxFailedIndexes": 1}}),
        json!({"spec": {"backoffLimitPerIndex": 1, "maxFailedIndexes": 2}}),
    );
}

#[test]
fn immutable_config_keeps_its_data_and_its_mark() {
    let cm = |v: &str, imm: Option<bool>| {
        let mut b = json!({"data": {"k": v}});
        if let Some(i) = imm {
            b["immutable"] = json!(i);
        }
        b
    };
    allowed(Kind::ConfigMap, cm("1", None), cm("2", None));
    allowed(Kind::ConfigMap, cm("1", Some(false)), cm("2", Some(true)));
    allowed(Kind::ConfigMap, cm("1", Some(true)), cm("1", Some(true)));
    assert!(
        refused(Kind::ConfigMap, cm("1", Some(true)), cm("2", Some(true)))
            .starts_with("data: the ConfigMap is immutable")
    );
    assert_eq!(
        refused(Kind::ConfigMap, cm("1", Some(true)), cm("1", None)),
        "immutable: field is immutable"
    );
    assert_eq!(
        refused(
            Kind::Secret,
            json!({"type": "Opaque", "data": {"k": "MQ=="}}),
            json!({"type": "kubernetes.io/tls", "data": {"k": "MQ=="}})
        ),
        "type: field is immutable"
    );
}

#[test]
fn a_claims_spec_is_fixed_but_what_the_binder_wrote_may_be_left_out() {
    let pvc = |size: &str, modes: &str| json!({"spec": {"accessModes": [modes], "resources": {"requests": {"storage": size}}}});
    let mut bound = pvc("1Gi", "ReadWriteOnce");
    bound["spec"]["volumeName"] = json!("pvc-1");
    bound["spec"]["storageClassName"] = json!("local");
    // apply keeps the live volumeName and storageClassName when left out
    // (manifests.rs), so a re-applied file compares equal.
    allowed(Kind::PersistentVolumeClaim, bound.clone(), bound.clone());
    assert!(
        refused(Kind::PersistentVolumeClaim, bound.clone(), {
            let mut b = bound.clone();
            b["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
            b
        })
        .contains("cannot be resized")
    );
    assert!(
        refused(Kind::PersistentVolumeClaim, bound.clone(), {
            let mut b = bound.clone();
            b["spec"]["accessModes"] = json!(["ReadWriteMany"]);
            b
        })
        .starts_with("spec: a PersistentVolumeClaim's spec is immutable")
    );
    assert_eq!(
        refused(Kind::PersistentVolumeClaim, bound.clone(), {
            let mut b = bound.clone();
            b["spec"]["volumeName"] = json!("pvc-2");
            b
        }),
        "spec.volumeName: field is immutable"
    );
}

#[test]
fn volumes_and_classes_keep_their_source() {
    let pv = |path: &str, cap: &str| json!({"spec": {"capacity": {"storage": cap}, "hostPath": {"path": path}}});
    allowed(Kind::PersistentVolume, pv("/a", "1Gi"), pv("/a", "2Gi"));
    assert_eq!(
        refused(Kind::PersistentVolume, pv("/a", "1Gi"), pv("/b", "1Gi")),
        "spec.hostPath: field is immutable"
    );
    let sc = |p: &str| json!({"provisioner": "shoal.io/local", "reclaimPolicy": p});
    assert_eq!(
        refused(Kind::StorageClass, sc("Delete"), sc("Retain")),
        "reclaimPolicy: field is immutable"
    );
}

#[test]
fn a_pods_spec_changes_only_in_images_and_the_listed_fields() {
    let pod = |image: &str, cmd: &str, grace: u64| {
        json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": grace,
               "containers": [{"name": "c", "image": image, "command": [cmd]}]}})
    };
    allowed(Kind::Pod, pod("a", "sh", 30), pod("b", "sh", 5));
    assert!(
        refused(Kind::Pod, pod("a", "sh", 30), pod("a", "bash", 30))
            .starts_with("spec: a Pod's spec may not change")
    );
    let mut moved = pod("a", "sh", 30);
    moved["spec"]["nodeName"] = json!("n2");
    assert!(refused(Kind::Pod, pod("a", "sh", 30), moved).starts_with("spec: a Pod's spec"));
}

#[test]
fn kinds_without_rules_take_any_change() {
    for kind in [Kind::Service, Kind::CronJob, Kind::Namespace] {
        assert!(!has_rules(kind));
        allowed(kind, json!({"spec": {"a": 1}}), json!({"spec": {"a": 2}}));
    }
}

#[test]
fn a_statefulsets_identity_is_fixed_and_its_template_is_not() {
    let sts = |service: &str, replicas: u32, image: &str| {
        json!({"spec": {"serviceName": service, "replicas": replicas,
               "selector": {"matchLabels": {"app": "db"}},
               "template": {"spec": {"containers": [{"name": "c", "image": image}]}},
               "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}})
    };
    allowed(Kind::StatefulSet, sts("db", 3, "a"), sts("db", 5, "b"));
    let mut moved = sts("db", 3, "a");
    moved["spec"]["ordinals"] = json!({"start": 2});
    allowed(Kind::StatefulSet, sts("db", 3, "a"), moved);
    assert!(
        refused(Kind::StatefulSet, sts("db", 3, "a"), sts("other", 3, "a"))
            .starts_with("spec: updates to a StatefulSet's spec may change only replicas")
    );
}

#[test]
fn a_bindings_role_is_fixed_and_its_subjects_are_not() {
    let b = |role: &str, who: &str| {
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [{"kind": "ServiceAccount", "name": who}]})
    };
    for kind in [Kind::RoleBinding, Kind::ClusterRoleBinding] {
        allowed(kind, b("view", "a"), b("view", "b"));
        assert!(
            refused(kind, b("view", "a"), b("edit", "a"))
                .starts_with("roleRef: cannot change roleRef")
        );
    }
}
