//! ServiceAccount manifests and the account fields of pod specs.

use super::*;
use crate::resource::types::{PodBody, ServiceAccountBody};

const ACCOUNT: &str = "
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: ci
  annotations:
    shoal.io/role: edit
automountServiceAccountToken: false
";

#[test]
fn a_service_account_is_accepted_as_kubernetes_writes_it() {
    let p = ok(ACCOUNT);
    let o = &p.objects[0];
    assert_eq!(o.kind(), Some(Kind::ServiceAccount));
    assert_eq!(o.metadata.namespace.as_deref(), Some("ci"));
    let b = ServiceAccountBody::from_object(o).expect("body");
    assert_eq!(b.automount_service_account_token, Some(false));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // The short names a user types.
    for s in ["sa", "serviceaccounts", "ServiceAccount"] {
        assert_eq!(Kind::from_user(s), Some(Kind::ServiceAccount), "{s}");
    }
}

#[test]
fn pull_secrets_and_secrets_are_kept_with_a_warning() {
    let p = ok("
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
imagePullSecrets: [{name: regcred}]
secrets: [{name: app-token-x}]
");
    let b = ServiceAccountBody::from_object(&p.objects[0]).expect("body");
    assert_eq!(b.image_pull_secrets[0].name, "regcred");
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings.iter().any(|w| w.contains("imagePullSecrets")));
}

#[test]
fn service_account_errors_name_their_field() {
    let cases = [
        (
            ACCOUNT.replace("shoal.io/role: edit", "shoal.io/role: admin"),
            "metadata.annotations.shoal.io/role",
            "\"admin\" is refused",
        ),
        (
            ACCOUNT.replace("shoal.io/role: edit", "shoal.io/role: root"),
            "metadata.annotations.shoal.io/role",
            "use view (the default) or edit",
        ),
        (
            ACCOUNT.replace("automountServiceAccountToken: false", "automount: false"),
            "automount",
            "",
        ),
        (
            format!("{ACCOUNT}imagePullSecrets: [{{name: Bad_Name}}]\n"),
            "imagePullSecrets[0].name",
            "DNS-1123 subdomain",
        ),
        (
            ACCOUNT.replace(
                "name: builder",
                &format!("name: {}", vec!["a".repeat(62); 4].join(".")),
            ),
            "metadata.name",
            "its token Secret",
        ),
        (
            ACCOUNT.replace("apiVersion: v1", "apiVersion: apps/v1"),
            "apiVersion",
            "use \"v1\"",
        ),
    ];
    for (text, path, what) in cases {
        let e = err(&text);
        assert!(e.contains(path), "{path}: {e}");
        assert!(e.contains(what), "{what}: {e}");
    }
}

fn pod(fields: &str) -> String {
    format!(
        "
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
{fields}
  containers: [{{name: a, image: busybox}}]
"
    )
}

#[test]
fn pods_name_their_account() {
    let p = ok(&pod(
        "  serviceAccountName: builder\n  automountServiceAccountToken: false",
    ));
    let b = PodBody::from_object(&p.objects[0]).expect("pod");
    assert_eq!(b.spec.account_name(), "builder");
    assert_eq!(b.spec.automount_service_account_token, Some(false));
    // The deprecated alias alone, and both agreeing.
    let p = ok(&pod("  serviceAccount: old"));
    let b = PodBody::from_object(&p.objects[0]).expect("pod");
    assert_eq!(b.spec.account_name(), "old");
    ok(&pod("  serviceAccount: same\n  serviceAccountName: same"));
    // None: the namespace's default.
    let p = ok(&pod(""));
    let b = PodBody::from_object(&p.objects[0]).expect("pod");
    assert_eq!(b.spec.account_name(), "default");
}

#[test]
fn pod_account_errors_name_their_field() {
    let e = err(&pod("  serviceAccount: a\n  serviceAccountName: b"));
    assert!(e.contains("spec.serviceAccount:"), "{e}");
    assert!(e.contains("deprecated alias"), "{e}");
    let e = err(&pod("  serviceAccountName: Not_Valid"));
    assert!(e.contains("spec.serviceAccountName"), "{e}");
    let e = err(&pod("  automountServiceAccountToken: maybe"));
    assert!(e.contains("automountServiceAccountToken"), "{e}");
    // In a template, the path says so.
    let e = err(&deployment_with(
        "      containers:",
        "      serviceAccountName: UPPER\n      containers:",
    ));
    assert!(e.contains("spec.template.spec.serviceAccountName"), "{e}");
}

#[test]
fn an_account_applied_with_its_pods_is_stored_first() {
    let p = ok(&format!(
        "{}\n---\n{ACCOUNT}",
        pod("  serviceAccountName: builder")
    ));
    let kinds: Vec<_> = p.objects.iter().filter_map(Object::kind).collect();
    assert!(kinds.contains(&Kind::ServiceAccount));
    let pos = |k| Kind::ALL.iter().position(|x| *x == k);
    assert!(pos(Kind::ServiceAccount) < pos(Kind::Pod));
}
