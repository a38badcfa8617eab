//! Checks of a pod's host namespace fields: `hostNetwork`, `hostPID`,
//! `hostIPC` and `shareProcessNamespace`. Whether a node lets a pod have the
//! host's namespaces is the node's call (`agent.allow_privileged`), made
//! when the container is created, as the kubelet makes it.

use super::*;

pub(super) fn check_host_namespaces(spec: &PodSpec, path: &str) -> Res {
    if spec.share_process_namespace && spec.host_pid {
        // Kubernetes: "ShareProcessNamespace and HostPID cannot both be enabled".
        return fail(
            format!("{path}.shareProcessNamespace"),
            "cannot be true when hostPID is true: a pod shares either the host's process \
             namespace or one of its own",
        );
    }
    if spec.host_network {
        // In the host's network a container port is a host port: one
        // declared as another number could never be honoured.
        for (list, cs) in [
            ("initContainers", &spec.init_containers),
            ("containers", &spec.containers),
        ] {
            for (i, c) in cs.iter().enumerate() {
                for (j, p) in c.ports.iter().enumerate() {
                    if let Some(hp) = p.host_port.filter(|hp| *hp != 0 && *hp != p.container_port) {
                        return fail(
                            format!("{path}.{list}[{i}].ports[{j}].hostPort"),
                            format!(
                                "{hp} must match containerPort ({}) when hostNetwork is true",
                                p.container_port
                            ),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
