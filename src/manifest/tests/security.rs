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
            "    spec:\n      securityContext: {fsGroup: -5}\n",
            "spec.template.spec.securityContext.fsGroup: -5 must be between",
        ),
        (
            "    spec:\n      securityContext: {supplementalGroups: [1, -2]}\n",
            "spec.template.spec.securityContext.supplementalGroups[1]: -2 must be between",
        ),
        (
            "    spec:\n      securityContext: {fsGroupChangePolicy: Sometimes}\n",
            "spec.template.spec.securityContext.fsGroupChangePolicy: \"Sometimes\": must be Always or OnRootMismatch",
        ),
        (
            "    spec:\n      securityContext: {sysctls: [{name: kernel.msgmax, value: \"1\"}]}\n",
            "spec.template.spec.securityContext.sysctls[0].name: \"kernel.msgmax\" is not one of Kubernetes' safe sysctls",
        ),
        (
            "    spec:\n      securityContext: {sysctls: [{name: net.ipv4.tcp_syncookies, value: \"\"}]}\n",
            "spec.template.spec.securityContext.sysctls[0].value: must be a non-empty single line",
        ),
        (
            "    spec:\n      securityContext: {seccompProfile: {type: Localhost}}\n",
            "spec.template.spec.securityContext.seccompProfile.localhostProfile: required with type Localhost",
        ),
        (
            "    spec:\n      securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x.json}}\n",
            "spec.template.spec.securityContext.seccompProfile.localhostProfile: \"../x.json\" must be a relative path",
        ),
        (
            "    spec:\n      securityContext: {seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}}\n",
            "spec.template.spec.securityContext.seccompProfile.localhostProfile: only with type Localhost",
        ),
        (
            "    spec:\n      securityContext: {seccompProfile: {type: Strict}}\n",
            "spec.template.spec.securityContext.seccompProfile.type",
        ),
        (
            "    spec:\n      securityContext: {seLinuxOptions: {level: s0}}\n",
            "spec.template.spec.securityContext.seLinuxOptions: not honoured by shoal",
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
            "{capabilities: {add: [NET_ADMIN, FLY]}}",
            "spec.template.spec.containers[0].securityContext.capabilities.add[1]: \"FLY\" is not a Linux capability",
        ),
        (
            "{capabilities: {drop: [CAP_NOPE]}}",
            "spec.template.spec.containers[0].securityContext.capabilities.drop[0]: \"CAP_NOPE\" is not",
        ),
        (
            "{allowPrivilegeEscalation: false, privileged: true}",
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: cannot be false when privileged is true",
        ),
        (
            "{allowPrivilegeEscalation: false, capabilities: {add: [CAP_SYS_ADMIN]}}",
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: cannot be false when capabilities.add has SYS_ADMIN",
        ),
        (
            "{procMount: Sideways}",
            "spec.template.spec.containers[0].securityContext.procMount",
        ),
        (
            "{appArmorProfile: {type: RuntimeDefault}}",
            "spec.template.spec.containers[0].securityContext.appArmorProfile: not honoured by shoal",
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
    // So is privileged: the node decides (agent.allow_privileged).
    ok(&container("{privileged: true, procMount: Unmasked}"));
}

/// The hardened container that well-known demo manifests carry applies.
#[test]
fn a_hardened_pod_applies_and_keeps_every_field() {
    let text = deployment_with(
        "    spec:\n",
        "    spec:\n      securityContext: {fsGroup: 2000, supplementalGroups: [3000], \
         fsGroupChangePolicy: OnRootMismatch, seccompProfile: {type: RuntimeDefault}, \
         sysctls: [{name: net.ipv4.tcp_syncookies, value: \"1\"}]}\n",
    )
    .replacen(
        "image: busybox",
        "image: busybox\n        securityContext: {runAsUser: 1000, runAsNonRoot: true, \
         allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, \
         capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}, \
         seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}",
        1,
    );
    let p = ok(&text);
    let body = DeploymentBody::from_object(&p.objects[0]).expect("decode");
    let pod = &body.spec.template.spec;
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.fs_group, Some(2000));
    assert_eq!(psc.supplemental_groups, vec![3000]);
    assert_eq!(psc.sysctls.len(), 1);
    let eff = SecurityContext::effective(Some(psc), pod.containers[0].security_context.as_ref());
    assert_eq!(eff.allow_privilege_escalation, Some(false));
    assert_eq!(eff.read_only_root_filesystem, Some(true));
    let caps = eff.capabilities.expect("capabilities");
    assert_eq!(
        (caps.drop, caps.add),
        (
            vec!["ALL".to_string()],
            vec!["NET_BIND_SERVICE".to_string()]
        )
    );
    // The container's profile wins over the pod's.
    assert_eq!(
        eff.seccomp_profile.map(|p| p.profile_type),
        Some(crate::resource::types::SeccompProfileType::Localhost)
    );
}

#[test]
fn capabilities_are_case_insensitive_as_the_runtimes_read_them() {
    // The microservices demo's manifests drop `all`, lower case.
    ok(&deployment_with(
        "image: busybox",
        "image: busybox\n        securityContext: {capabilities: {drop: [all], add: [cap_net_bind_service]}, allowPrivilegeEscalation: false}",
    ));
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        securityContext: {capabilities: {add: [sys_admin]}, allowPrivilegeEscalation: false}",
    ));
    assert!(
        e.contains("allowPrivilegeEscalation: cannot be false"),
        "{e}"
    );
}
