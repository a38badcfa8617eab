//! RBAC manifests: accepted as Kubernetes writes them, stored with a warning.

use super::*;

const RBAC: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: 'system:pod-reader'}
rules:
- apiGroups: ['']
  resources: [pods, pods/log]
  verbs: [get, list, watch]
- nonResourceURLs: [/healthz]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-editor, namespace: ci}
rules:
- apiGroups: ['']
  resources: [configmaps]
  resourceNames: [settings]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: ci}
subjects:
- {kind: ServiceAccount, name: builder}
- {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: 'system:pod-reader'}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read-pods-everywhere}
subjects:
- {kind: ServiceAccount, name: builder, namespace: ci}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: 'system:pod-reader'}
";

#[test]
fn rbac_kinds_are_stored_with_a_warning_that_nothing_evaluates_them() {
    let p = ok(RBAC);
    let kinds: Vec<Kind> = p.objects.iter().filter_map(Object::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::ClusterRole,
            Kind::Role,
            Kind::RoleBinding,
            Kind::ClusterRoleBinding
        ]
    );
    assert_eq!(p.objects[0].metadata.namespace, None, "cluster-scoped");
    assert_eq!(p.objects[2].metadata.namespace.as_deref(), Some("ci"));
    assert_eq!(
        p.objects[0].body["rules"][1]["nonResourceURLs"][0], "/healthz",
        "Kubernetes' spelling survives"
    );
    assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
    assert!(
        p.warnings
            .iter()
            .all(|w| w.contains("stored, not evaluated")),
        "{:?}",
        p.warnings
    );
    for (s, k) in [
        ("clusterroles", Kind::ClusterRole),
        ("role", Kind::Role),
        ("rolebindings", Kind::RoleBinding),
        ("clusterrolebinding", Kind::ClusterRoleBinding),
    ] {
        assert_eq!(Kind::from_user(s), Some(k), "{s}");
    }
}

#[test]
fn rbac_errors_name_their_field() {
    let binding = |role_ref: &str, subject: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: b}}\nsubjects: [{subject}]\nroleRef: {role_ref}\n"
        )
    };
    let good_ref = "{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}";
    let cases = [
        (
            binding("{apiGroup: rbac.authorization.k8s.io, kind: Role, name: view}", "{kind: Group, name: g, apiGroup: rbac.authorization.k8s.io}"),
            "roleRef.kind: \"Role\": a ClusterRoleBinding refers to ClusterRole",
        ),
        (
            binding("{apiGroup: rbac, kind: ClusterRole, name: view}", "{kind: Group, name: g, apiGroup: rbac.authorization.k8s.io}"),
            "roleRef.apiGroup",
        ),
        (
            binding(good_ref, "{kind: ServiceAccount, name: sa}"),
            "subjects[0].namespace: required for a ServiceAccount subject of a ClusterRoleBinding",
        ),
        (
            binding(good_ref, "{kind: Robot, name: r}"),
            "subjects[0].kind: \"Robot\"",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\nrules: [{resources: [pods]}]\n".to_string(),
            "rules[0].verbs: required",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a/b}\nrules: []\n".to_string(),
            "metadata.name: \"a/b\" is not a valid Role name",
        ),
    ];
    for (text, want) in cases {
        let e = err(&text);
        assert!(e.contains(want), "{text}\n{e}");
    }
}
