//! Documents of custom kinds are set aside, unchecked, for the API to
//! check against their definitions; Kubernetes' own groups are not.

use super::*;

#[test]
fn custom_documents_are_set_aside_in_file_order() {
    let p = ok(
        "apiVersion: example.com/v1\nkind: Website\nmetadata: {name: home}\nspec: {x: 1}\n\
        ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n\
        ---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m, namespace: obs}\n",
    );
    assert_eq!(p.objects.len(), 1);
    assert_eq!(p.custom.len(), 2);
    assert_eq!(p.custom[0].doc, 1);
    assert_eq!(p.custom[0].group_version(), ("example.com", "v1"));
    assert_eq!(p.custom[0].kind(), "Website");
    assert_eq!(p.custom[0].name(), "home");
    assert_eq!(p.custom[0].namespace(), None);
    assert_eq!(p.custom[1].doc, 3);
    assert_eq!(p.custom[1].namespace(), Some("obs"));
    assert_eq!(p.custom[1].label(), "document 3 (ServiceMonitor m)");
    // A file of custom objects alone is not empty.
    assert_eq!(
        ok("apiVersion: example.com/v1\nkind: Website\nmetadata: {name: a}\n")
            .custom
            .len(),
        1
    );
}

#[test]
fn kubernetes_own_groups_keep_the_unknown_kind_message() {
    for (api_version, kind) in [
        ("apps/v1", "Deploymnet"),
        ("node.k8s.io/v1", "RuntimeClass"),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"),
        ("resource.kubernetes.io/v1", "Claim"),
        ("v1", "Widget"),
    ] {
        let e = err(&format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\n"
        ));
        assert!(e.contains("unknown kind"), "{api_version} {kind}: {e}");
    }
}
