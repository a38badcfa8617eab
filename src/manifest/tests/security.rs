//! securityContext fields: accepted, kept, and checked with their paths.

use super::*;

#[test]
fn security_context_user_fields_are_accepted_and_kept() {
    let text = deployment_with(
        "    spec:\n",
        "    spec:\n      securityContext: {runAsUser: 1000, runAsGroup: 100, runAsNonRoot: true}\n",
    )
    .replacen(
        "image: busybox",
        "image: busybox\n        securityContext: {runAsUser: 2000}",
        1,
    );
    let p = ok(&text);
    let body = DeploymentBody::from_object(&p.objects[0]).expect("decode");
    let pod = &body.spec.template.spec;
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(
        (psc.run_as_user, psc.run_as_group, psc.run_as_non_root),
        (Some(1000), Some(100), Some(true))
    );
    let c = &pod.containers[0];
    let eff = SecurityContext::effective(Some(psc), c.security_context.as_ref());
    assert_eq!(
        (eff.run_as_user, eff.run_as_group, eff.run_as_non_root),
        (Some(2000), Some(100), Some(true)),
        "the container's own field wins, the rest comes from the pod"
    );
}

#[test]
fn security_context_values_are_checked_with_their_paths() {
    let cases = [
        (
            "    spec:\n      securityContext: {runAsUser: -1}\n",
            "spec.template.spec.securityContext.runAsUser: -1 must be between 0 and 2147483647",
        ),
        (
            "    spec:\n      securityContext: {runAsUser: 1, runAsGroup: 2147483648}\n",
            "spec.template.spec.securityContext.runAsGroup: 2147483648 must be between 0 and 2147483647",
        ),
        (
            "    spec:\n      securityContext: {fsGroup: 5}\n",
            "spec.template.spec.securityContext.fsGroup: not honoured by shoal yet",
        ),
        (
            "    spec:\n      securityContext: {runAsGroup: 5}\n",
            "spec.template.spec.securityContext.runAsGroup: needs runAsUser as well",
        ),
        (
            "    spec:\n      securityContext: {runAsNonRoot: true, runAsUser: 0}\n",
            "spec.template.spec.securityContext.runAsUser: 0 (root) contradicts runAsNonRoot: true",
        ),
    ];
    for (to, want) in cases {
        let e = err(&deployment_with("    spec:\n", to));
        assert!(e.contains(want), "{to:?}: {e}");
    }
    let container = |sc: &str| {
        deployment_with(
            "image: busybox",
            &format!("image: busybox\n        securityContext: {sc}"),
        )
    };
    let cases = [
        (
            "{runAsUser: 2147483648}",
            "spec.template.spec.containers[0].securityContext.runAsUser: 2147483648 must be between",
        ),
        (
            "{runAsGroup: -3, runAsUser: 1}",
            "spec.template.spec.containers[0].securityContext.runAsGroup: -3 must be between",
        ),
        (
            "{runAsUser: \"x\"}",
            "spec.template.spec.containers[0].securityContext.runAsUser",
        ),
        (
            "{runAsNonRoot: maybe}",
            "spec.template.spec.containers[0].securityContext.runAsNonRoot",
        ),
        (
            "{runAsUser: 0, runAsNonRoot: true}",
            "spec.template.spec.containers[0].securityContext.runAsUser: 0 (root) contradicts",
        ),
        (
            "{capabilities: {add: [NET_ADMIN]}}",
            "spec.template.spec.containers[0].securityContext.capabilities: not honoured by shoal yet",
        ),
        (
            "{allowPrivilegeEscalation: false}",
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: not honoured",
        ),
        (
            "{runAsUser: 1, bogus: 1}",
            "spec.template.spec.containers[0].securityContext",
        ),
    ];
    for (sc, want) in cases {
        let e = err(&container(sc));
        assert!(e.contains(want), "{sc}: {e}");
    }
    // The pod's runAsNonRoot meets the container's runAsUser 0: the path is the container's.
    let both = deployment_with(
        "    spec:\n",
        "    spec:\n      securityContext: {runAsNonRoot: true}\n",
    )
    .replacen(
        "image: busybox",
        "image: busybox\n        securityContext: {runAsUser: 0}",
        1,
    );
    let e = err(&both);
    assert!(
        e.contains("spec.template.spec.containers[0].securityContext.runAsUser: 0 (root)"),
        "{e}"
    );
    // A bare Pod: the paths start at spec.
    let e = err(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {securityContext: {runAsUser: -5}, containers: [{name: a, image: b}]}\n",
    );
    assert!(
        e.ends_with("spec.securityContext.runAsUser: -5 must be between 0 and 2147483647"),
        "{e}"
    );
    // Root is a valid request (whether a node allows it is the runtime's call).
    ok(&container("{runAsUser: 0, runAsGroup: 0}"));
}
