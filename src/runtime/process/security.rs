//! The security settings a host process can be given, and refusing the
//! rest.

use super::user::Identity;
use crate::runtime::{ContainerSpec, Seccomp};

/// What a host process cannot be given of a container's security settings:
/// refused, so that a pod asking for a confinement never runs without it.
/// (no_new_privs is set; a process switched to a non-root user has no
/// capabilities left, so dropping them is already true.)
pub(super) fn refuse_unhonoured(spec: &ContainerSpec, user: Identity) -> Result<(), String> {
    let root = user.uid == 0;
    let mut refused = Vec::new();
    if spec.privileged {
        refused.push("privileged");
    }
    if spec.unmasked_proc {
        refused.push("procMount: Unmasked");
    }
    if spec.read_only_root {
        refused.push("readOnlyRootFilesystem (a host process shares the host's root)");
    }
    if !spec.cap_add.is_empty() {
        refused.push("capabilities.add");
    }
    if root && !spec.cap_drop.is_empty() {
        refused.push("capabilities.drop for a process running as root");
    }
    if !spec.supplemental_groups.is_empty() {
        refused.push("supplementalGroups and fsGroup");
    }
    if !spec.extra_hosts.is_empty() {
        refused.push("hostAliases (a host process reads the host's /etc/hosts)");
    }
    if !spec.dns_options.is_empty() {
        refused.push("dnsConfig.options (a host process uses the host's resolver)");
    }
    if spec.stdin || spec.tty {
        // Its stdin is /dev/null and its output a FIFO the daemon pumps: a
        // pipe or terminal held by the daemon would not outlive a restart
        // of the daemon, which the process does.
        refused.push("stdin and tty (a host process gets neither)");
    }
    if !spec.sysctls.is_empty() {
        refused.push("sysctls (a host process shares the host's kernel settings)");
    }
    match &spec.seccomp {
        None | Some(Seccomp::Unconfined) => {}
        Some(_) => refused.push(
            "seccompProfile RuntimeDefault or Localhost (no filter is applied to host processes)",
        ),
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the process runtime cannot honour {}: run this pod on a node with the docker runtime",
            refused.join(", ")
        ))
    }
}

/// A host process is in the host's network, PID and IPC namespaces
/// whatever it asks; a pod that asks for them outright needs the node's
/// leave all the same (`agent.allow_privileged`), as on Docker, so the
/// policy does not depend on which runtime a node has.
pub(super) fn refuse_host_namespaces(spec: &ContainerSpec, allowed: bool) -> Result<(), String> {
    if allowed {
        return Ok(());
    }
    let what: Vec<String> = spec
        .host_namespaces()
        .into_iter()
        .map(|n| format!("{n}: true"))
        .collect();
    crate::runtime::not_allowed_here(&what)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: Identity = Identity {
        uid: 65534,
        gid: 65534,
    };

    #[test]
    fn host_namespaces_need_the_nodes_leave() {
        let asks = ContainerSpec {
            host_network: true,
            host_ipc: true,
            ..Default::default()
        };
        assert_eq!(
            refuse_host_namespaces(&asks, false),
            Err("hostNetwork: true, hostIPC: true are not allowed on this node (agent.allow_privileged is false)".into())
        );
        assert_eq!(refuse_host_namespaces(&asks, true), Ok(()));
        // What a host process has anyway is not refused as unhonoured.
        assert_eq!(refuse_unhonoured(&asks, NOBODY), Ok(()));
        let shared = ContainerSpec {
            pid_namespace_of: Some("other".into()),
            ..Default::default()
        };
        assert_eq!(refuse_host_namespaces(&shared, false), Ok(()));
        assert_eq!(refuse_unhonoured(&shared, NOBODY), Ok(()));
    }

    #[test]
    fn what_a_host_process_cannot_have_is_named() {
        assert_eq!(refuse_unhonoured(&ContainerSpec::default(), NOBODY), Ok(()));
        let honoured = ContainerSpec {
            no_new_privileges: true,
            cap_drop: vec!["ALL".into()],
            seccomp: Some(Seccomp::Unconfined),
            ..Default::default()
        };
        assert_eq!(refuse_unhonoured(&honoured, NOBODY), Ok(()));
        let root = Identity { uid: 0, gid: 0 };
        let e = refuse_unhonoured(&honoured, root).unwrap_err();
        assert!(
            e.contains("capabilities.drop for a process running as root"),
            "{e}"
        );
        let asks = ContainerSpec {
            privileged: true,
            read_only_root: true,
            seccomp: Some(Seccomp::RuntimeDefault),
            supplemental_groups: vec![2000],
            ..Default::default()
        };
        let e = refuse_unhonoured(&asks, NOBODY).unwrap_err();
        for part in [
            "privileged",
            "readOnlyRootFilesystem",
            "seccompProfile",
            "supplementalGroups",
            "docker runtime",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        for asks in [
            ContainerSpec {
                stdin: true,
                ..Default::default()
            },
            ContainerSpec {
                tty: true,
                ..Default::default()
            },
        ] {
            let e = refuse_unhonoured(&asks, NOBODY).unwrap_err();
            assert!(e.contains("stdin and tty"), "{e}");
        }
    }
}
