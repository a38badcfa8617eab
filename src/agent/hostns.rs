//! A pod's namespace fields as its containers get them: the host's network,
//! PID and IPC namespaces (which the runtime allows only on a node with
//! `agent.allow_privileged`), and one PID namespace shared by the pod.

use std::collections::BTreeMap;

use super::Ctx;
use crate::resource::types::{DnsPolicy, PodSpec};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_CONTAINER, LABEL_POD_UID, RuntimeKind,
};

/// The DNS policy that applies: in the host's network ClusterFirst means the
/// node's resolver (Default), as in Kubernetes; only ClusterFirstWithHostNet
/// keeps the cluster DNS there.
pub(super) fn dns_policy(spec: &PodSpec) -> Option<DnsPolicy> {
    match spec.dns_policy {
        None | Some(DnsPolicy::ClusterFirst) if spec.host_network => Some(DnsPolicy::Default),
        other => other,
    }
}

/// Completes one of the pod's containers' spec for its namespaces. With
/// `shareProcessNamespace`, the container joins the PID namespace of the
/// pod's longest-running container (every one of them is in the same): the
/// first container started makes it. Fails when the pod's containers cannot
/// be listed, rather than start one in a namespace of its own.
pub(super) async fn apply(
    ctx: &Ctx,
    spec: &PodSpec,
    uid: &str,
    container: &str,
    cspec: &mut ContainerSpec,
) -> Result<(), String> {
    if spec.host_network {
        // The container's ports are the host's: say so to whoever reads
        // the spec (the engine publishes nothing).
        for p in &mut cspec.ports {
            p.host_port = p.container_port;
        }
    }
    // A host process is in the host's PID namespace with the pod's other
    // processes already.
    if !spec.share_process_namespace
        || spec.host_pid
        || ctx.runtime.name() == RuntimeKind::Process.as_str()
    {
        return Ok(());
    }
    let pod = BTreeMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]);
    let running = ctx
        .runtime
        .list(&pod)
        .await
        .map_err(|e| format!("cannot find the pod's process namespace: {e}"))?;
    cspec.pid_namespace_of = namespace_holder(&running, container);
    Ok(())
}

/// Which running container of the pod another joins for its PID
/// namespace: the longest running, not an instance of `container` itself.
fn namespace_holder(containers: &[ContainerInfo], container: &str) -> Option<String> {
    containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .filter(|c| c.labels.get(LABEL_CONTAINER).map(String::as_str) != Some(container))
        .min_by_key(|c| (c.started_at, c.id.clone()))
        .map(|c| c.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn info(id: &str, name: &str, state: ContainerState, started: u64) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: id.into(),
            image: "i".into(),
            labels: BTreeMap::from([(LABEL_CONTAINER.to_string(), name.to_string())]),
            state,
            started_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(started)),
            created_at: None,
            ip: None,
            ports: Vec::new(),
            termination_message: None,
        }
    }

    #[test]
    fn the_longest_running_other_container_holds_the_namespace() {
        let exited = ContainerState::Exited {
            exit_code: Some(0),
            oom_killed: false,
            finished_at: None,
        };
        let pod = [
            info("init", "migrate", exited, 1),
            info("a", "app", ContainerState::Running, 5),
            info("b", "sidecar", ContainerState::Running, 3),
            info("c", "late", ContainerState::Running, 9),
        ];
        assert_eq!(namespace_holder(&pod, "late").as_deref(), Some("b"));
        // A restarting container does not join its own dead instance.
        assert_eq!(namespace_holder(&pod, "sidecar").as_deref(), Some("a"));
        // The first container of the pod makes the namespace.
        assert_eq!(namespace_holder(&pod[..1], "app"), None);
        assert_eq!(namespace_holder(&[], "app"), None);
    }

    #[test]
    fn cluster_first_in_the_hosts_network_is_the_nodes_resolver() {
        let spec = |host_network, dns_policy| PodSpec {
            host_network,
            dns_policy,
            ..PodSpec::default()
        };
        use DnsPolicy::*;
        assert_eq!(dns_policy(&spec(true, Option::None)), Some(Default));
        assert_eq!(dns_policy(&spec(true, Some(ClusterFirst))), Some(Default));
        assert_eq!(
            dns_policy(&spec(true, Some(ClusterFirstWithHostNet))),
            Some(ClusterFirstWithHostNet)
        );
        assert_eq!(dns_policy(&spec(true, Some(None))), Some(None));
        assert_eq!(dns_policy(&spec(false, Option::None)), Option::None);
        assert_eq!(
            dns_policy(&spec(false, Some(ClusterFirst))),
            Some(ClusterFirst)
        );
    }
}
