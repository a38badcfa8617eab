//! The engine's create request, built from shoal's container spec: a pure
//! function, so what a spec asks of Docker is tested without an engine.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount as DockerMount, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, PortBinding as DockerPortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};

use super::super::{ContainerSpec, LogLimits};

/// Refuses what only a node that allows privileged pods may run
/// (`agent.allow_privileged`): privileged containers, an unmasked /proc and
/// the host's namespaces.
pub(super) fn refuse_unallowed(spec: &ContainerSpec, allow_privileged: bool) -> Result<(), String> {
    if allow_privileged {
        return Ok(());
    }
    let mut what: Vec<String> = Vec::new();
    if spec.privileged {
        what.push("privileged: true".into());
    }
    if spec.unmasked_proc {
        what.push("procMount: Unmasked".into());
    }
    what.extend(
        spec.host_namespaces()
            .into_iter()
            .map(|n| format!("{n}: true")),
    );
    super::super::not_allowed_here(&what)
}

/// Builds the engine's create request from shoal's spec.
pub(super) fn create_body(
    spec: &ContainerSpec,
    logs: LogLimits,
    seccomp: Option<String>,
) -> ContainerCreateBody {
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    // In the host's network a container port is the host's port already:
    // nothing to publish (the engine would discard it with a warning).
    let published = if spec.host_network {
        &[][..]
    } else {
        &spec.ports[..]
    };
    for p in published {
        let key = format!("{}/tcp", p.container_port);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let host_ip = if p.host_ip.is_empty() {
            "0.0.0.0".to_string()
        } else {
            p.host_ip.clone()
        };
        // Host port 0: an empty HostPort makes the engine choose a free one;
        // `to_info` reads back which.
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(DockerPortBinding {
                host_ip: Some(host_ip),
                host_port: Some(if p.host_port == 0 {
                    String::new()
                } else {
                    p.host_port.to_string()
                }),
            });
    }
    let memory = spec
        .memory_limit_bytes
        .map(|b| i64::try_from(b).unwrap_or(i64::MAX));
    // Named volumes go as mounts, so the engine makes a missing one with
    // the driver and options asked (a bind string cannot carry them).
    let volumes: Vec<DockerMount> = spec
        .mounts
        .iter()
        .filter_map(|m| {
            let v = m.volume.as_ref()?;
            let map = |m: &std::collections::BTreeMap<String, String>| {
                (!m.is_empty()).then(|| m.clone().into_iter().collect::<HashMap<_, _>>())
            };
            Some(DockerMount {
                target: Some(m.container_path.clone()),
                source: Some(m.host_path.clone()),
                typ: Some(MountType::VOLUME),
                read_only: m.read_only.then_some(true),
                volume_options: Some(MountVolumeOptions {
                    labels: map(&v.labels),
                    driver_config: Some(MountVolumeOptionsDriverConfig {
                        name: Some(v.driver.clone()),
                        options: map(&v.options),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect();
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .filter(|m| m.volume.is_none())
        .map(|m| {
            let ro = if m.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", m.host_path, m.container_path)
        })
        .collect();
    let host_config = HostConfig {
        nano_cpus: spec
            .cpu_limit_millis
            .map(|m| i64::try_from(m.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
        memory,
        // Equal to the memory limit: with swap allowed, a container over its
        // limit would swap instead of being OOM-killed, hiding the overrun.
        memory_swap: memory,
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!volumes.is_empty()).then_some(volumes),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        dns: (!spec.dns_servers.is_empty()).then(|| spec.dns_servers.clone()),
        dns_search: (!spec.dns_search.is_empty()).then(|| spec.dns_search.clone()),
        dns_options: (!spec.dns_options.is_empty()).then(|| spec.dns_options.clone()),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| {
            spec.extra_hosts
                .iter()
                .map(|(name, ip)| format!("{name}:{ip}"))
                .collect()
        }),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        group_add: (!spec.supplemental_groups.is_empty()).then(|| {
            spec.supplemental_groups
                .iter()
                .map(ToString::to_string)
                .collect()
        }),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
        privileged: spec.privileged.then_some(true),
        readonly_rootfs: spec.read_only_root.then_some(true),
        network_mode: spec.host_network.then(|| "host".to_string()),
        pid_mode: if spec.host_pid {
            Some("host".to_string())
        } else {
            spec.pid_namespace_of
                .as_ref()
                .map(|id| format!("container:{id}"))
        },
        ipc_mode: spec.host_ipc.then(|| "host".to_string()),
        security_opt: {
            let opts: Vec<String> = [
                spec.no_new_privileges
                    .then(|| "no-new-privileges:true".to_string()),
                spec.unmasked_proc
                    .then(|| "systempaths=unconfined".to_string()),
                seccomp,
            ]
            .into_iter()
            .flatten()
            .collect();
            (!opts.is_empty()).then_some(opts)
        },
        sysctls: (!spec.sysctls.is_empty()).then(|| {
            spec.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        // Named explicitly rather than left to the engine's default driver,
        // which may be one without a size cap.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), logs.max_bytes.to_string()),
                ("max-file".to_string(), logs.max_files.to_string()),
            ])),
        }),
        ..Default::default()
    };
    let user = spec.run_as_user.map(|uid| match spec.run_as_group {
        Some(gid) => format!("{uid}:{gid}"),
        None => uid.to_string(),
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: (!spec.env.is_empty())
            .then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        working_dir: spec.working_dir.clone().filter(|w| !w.is_empty()),
        // A pod in the host's network has the node's host name, as in Kubernetes.
        hostname: spec.hostname.clone().filter(|_| !spec.host_network),
        domainname: spec.domainname.clone().filter(|_| !spec.host_network),
        user,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        // Kubernetes' stdin, stdinOnce and tty: a stdin kept open for
        // `shoal attach -i`, closed by the engine when the first attached
        // client detaches if stdinOnce.
        open_stdin: spec.stdin.then_some(true),
        attach_stdin: spec.stdin.then_some(true),
        stdin_once: (spec.stdin && spec.stdin_once).then_some(true),
        tty: spec.tty.then_some(true),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_stdin_once_and_tty_reach_the_engine() {
        let body = |stdin, stdin_once, tty| {
            let spec = ContainerSpec {
                stdin,
                stdin_once,
                tty,
                ..Default::default()
            };
            let b = create_body(&spec, LogLimits::default(), None);
            (b.open_stdin, b.attach_stdin, b.stdin_once, b.tty)
        };
        assert_eq!(body(false, false, false), (None, None, None, None));
        assert_eq!(
            body(true, true, true),
            (Some(true), Some(true), Some(true), Some(true))
        );
        // stdinOnce means nothing without a stdin to close.
        assert_eq!(body(false, true, false), (None, None, None, None));
        assert_eq!(body(false, false, true), (None, None, None, Some(true)));
    }

    #[test]
    fn host_namespaces_and_a_shared_pid_namespace_reach_the_engine() {
        use crate::runtime::PortBinding;
        let spec = ContainerSpec {
            host_network: true,
            host_pid: true,
            host_ipc: true,
            hostname: Some("web".into()),
            domainname: Some("sub.ns.svc.cluster.local".into()),
            ports: vec![PortBinding {
                container_port: 8080,
                host_port: 0,
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let b = create_body(&spec, LogLimits::default(), None);
        let hc = b.host_config.clone().expect("host config");
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("host"));
        assert_eq!(
            hc.port_bindings, None,
            "nothing to publish in the host's network"
        );
        assert_eq!(b.exposed_ports, None);
        assert_eq!(
            (b.hostname, b.domainname),
            (None, None),
            "the node's host name"
        );

        // Without them: the engine's defaults, ports published, own host name.
        let spec = ContainerSpec {
            pid_namespace_of: Some("abc123".into()),
            ..spec.clone()
        };
        let plain = ContainerSpec {
            host_network: false,
            host_pid: false,
            host_ipc: false,
            ..spec
        };
        let b = create_body(&plain, LogLimits::default(), None);
        let hc = b.host_config.expect("host config");
        assert_eq!(hc.network_mode, None);
        assert_eq!(hc.pid_mode.as_deref(), Some("container:abc123"));
        assert_eq!(hc.ipc_mode, None);
        assert!(hc.port_bindings.is_some());
        assert_eq!(b.hostname.as_deref(), Some("web"));
        // hostPID wins over a shared namespace (the manifest refuses both).
        let both = ContainerSpec {
            host_pid: true,
            ..plain
        };
        let hc = create_body(&both, LogLimits::default(), None)
            .host_config
            .expect("hc");
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
    }

    #[test]
    fn host_namespaces_need_a_node_that_allows_privileged_pods() {
        let spec = |f: fn(&mut ContainerSpec)| {
            let mut s = ContainerSpec::default();
            f(&mut s);
            s
        };
        let net = spec(|s| s.host_network = true);
        assert_eq!(
            refuse_unallowed(&net, false),
            Err(
                "hostNetwork: true is not allowed on this node (agent.allow_privileged is false)"
                    .into()
            )
        );
        assert_eq!(refuse_unallowed(&net, true), Ok(()));
        let all = spec(|s| {
            s.privileged = true;
            s.host_pid = true;
            s.host_ipc = true;
        });
        assert_eq!(
            refuse_unallowed(&all, false),
            Err("privileged: true, hostPID: true, hostIPC: true are not allowed on this node (agent.allow_privileged is false)".into())
        );
        // Sharing the pod's own PID namespace needs no privilege, as in Kubernetes.
        let shared = spec(|s| s.pid_namespace_of = Some("x".into()));
        assert_eq!(refuse_unallowed(&shared, false), Ok(()));
        assert_eq!(refuse_unallowed(&ContainerSpec::default(), false), Ok(()));
    }

    #[test]
    fn a_named_volume_goes_as_a_mount_with_its_driver_and_a_path_as_a_bind() {
        use crate::runtime::{Mount, NamedVolume};
        use std::collections::BTreeMap;
        let nv = NamedVolume {
            driver: "local".into(),
            options: BTreeMap::from([
                ("type".into(), "nfs".into()),
                ("o".into(), "addr=h,rw".into()),
            ]),
            labels: BTreeMap::from([("shoal.io/persistent-volume".into(), "pvc-1".into())]),
        };
        let spec = ContainerSpec {
            mounts: vec![
                Mount {
                    host_path: "/srv/a".into(),
                    volume: None,
                    container_path: "/a".into(),
                    read_only: true,
                },
                Mount {
                    host_path: "pvc-1".into(),
                    volume: Some(nv),
                    container_path: "/data".into(),
                    read_only: false,
                },
            ],
            ..Default::default()
        };
        let hc = create_body(&spec, LogLimits::default(), None)
            .host_config
            .expect("host config");
        assert_eq!(hc.binds, Some(vec!["/srv/a:/a:ro".to_string()]));
        let mounts = hc.mounts.expect("mounts");
        let [m] = &mounts[..] else {
            panic!("one volume mount: {mounts:?}");
        };
        assert_eq!(m.typ, Some(MountType::VOLUME));
        assert_eq!(m.source.as_deref(), Some("pvc-1"));
        assert_eq!(m.target.as_deref(), Some("/data"));
        assert_eq!(m.read_only, None);
        let vo = m.volume_options.as_ref().expect("volume options");
        let dc = vo.driver_config.as_ref().expect("driver config");
        assert_eq!(dc.name.as_deref(), Some("local"));
        let opts = dc.options.as_ref().expect("options");
        assert_eq!(opts["type"], "nfs");
        assert_eq!(opts["o"], "addr=h,rw");
        assert_eq!(
            vo.labels.as_ref().expect("labels")["shoal.io/persistent-volume"],
            "pvc-1"
        );
    }
}
