//! Metadata users give beyond names and labels: owner references and
//! finalizers, refused by path when malformed.

use super::*;

#[test]
fn owner_references_are_the_users_to_give() {
    // Owner references are the user's to give; two controllers are not.
    let owner = |controller: bool| {
        format!(
            "  - {{apiVersion: apps/v1, kind: Deployment, name: web, uid: u-{controller}, controller: {controller}, blockOwnerDeletion: true}}\n"
        )
    };
    let p = ok(&USER_RS.replace(
        "metadata:\n  name: frontend\n",
        &format!(
            "metadata:\n  name: frontend\n  ownerReferences:\n{}",
            owner(true)
        ),
    ));
    let refs = &p.objects[0].metadata.owner_references;
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].block_owner_deletion, Some(true));
    let e = err(&USER_RS.replace(
        "metadata:\n  name: frontend\n",
        &format!(
            "metadata:\n  name: frontend\n  ownerReferences:\n{}{}",
            owner(true),
            owner(true).replace("u-true", "u-other")
        ),
    ));
    assert!(
        e.contains("metadata.ownerReferences: only one reference can have controller set to true"),
        "{e}"
    );
    let e = err(&USER_RS.replace(
        "metadata:\n  name: frontend\n",
        "metadata:\n  name: frontend\n  ownerReferences:\n  - {apiVersion: v1, kind: ConfigMap, name: x, uid: ''}\n",
    ));
    assert!(
        e.contains("metadata.ownerReferences[0].uid: must not be empty"),
        "{e}"
    );
}

#[test]
fn finalizers_are_qualified_names_on_the_kinds_that_take_them() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  finalizers: [FIN]\n";
    let p = ok(&cm.replace("FIN", "example.com/cleanup"));
    assert_eq!(
        p.objects[0].metadata.finalizers.as_deref(),
        Some(&["example.com/cleanup".to_string()][..])
    );
    for (fin, why) in [
        (
            "cleanup",
            "neither a standard finalizer name nor fully qualified",
        ),
        ("orphan", "deletes with propagationPolicy=Orphan"),
        ("Bad_Domain/x", "metadata.finalizers[0]"),
    ] {
        let e = err(&cm.replace("FIN", fin));
        assert!(
            e.contains("metadata.finalizers[0]") && e.contains(why),
            "{fin}: {e}"
        );
    }
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  finalizers: [example.com/x]\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
    let e = err(pod);
    assert!(
        e.contains("metadata.finalizers: field not supported by shoal on a Pod"),
        "{e}"
    );
}
