//! Checks of a pod spec: containers, probes, resources, volumes, scheduling fields.

use super::*;
use std::collections::HashSet;

use crate::resource::types::{DnsPolicy, SeccompProfile, SeccompProfileType};

// ---------------------------------------------------------------- pods

pub(super) const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

pub(super) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

pub(super) fn check_pod_spec(spec: &PodSpec, path: &str, owner: Kind, ck: &mut Checker) -> Res {
    if spec.containers.is_empty() {
        return fail(
            format!("{path}.containers"),
            "at least one container is required",
        );
    }
    super::serviceaccount::check_pod_account(spec, path)?;
    super::priority::check_pod_priority(spec, path)?;
    super::hostns::check_host_namespaces(spec, path)?;
    super::image::check_pull_secrets(spec, path)?;
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        check_dns_label(&format!("{vp}.name"), &v.name)?;
        if !volumes.insert(v.name.as_str()) {
            return fail(
                format!("{vp}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        let sources = [
            v.host_path.is_some(),
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.projected.is_some(),
            v.downward_api.is_some(),
            v.persistent_volume_claim.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if sources != 1 {
            let what = if sources == 0 { "no" } else { "more than one" };
            return fail(
                vp,
                format!(
                    "{what} volume source: set exactly one of hostPath, emptyDir, configMap, \
                     secret, projected, downwardAPI or persistentVolumeClaim"
                ),
            );
        }
        if let Some(c) = &v.persistent_volume_claim {
            check_dns_subdomain(
                &format!("{vp}.persistentVolumeClaim.claimName"),
                &c.claim_name,
            )?;
        }
        if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return fail(format!("{vp}.hostPath.path"), "must be an absolute path");
            }
            if let Some(t) = &h.path_type
                && !HOST_PATH_TYPES.contains(&t.as_str())
            {
                return fail(
                    format!("{vp}.hostPath.type"),
                    format!(
                        "unknown type {t:?}: expected one of {}",
                        HOST_PATH_TYPES[1..].join(", ")
                    ),
                );
            }
        }
        if let Some(e) = &v.empty_dir {
            if let Some(m) = &e.medium
                && !m.is_empty()
                && m != "Memory"
            {
                return fail(
                    format!("{vp}.emptyDir.medium"),
                    format!("unknown medium {m:?}: expected \"\" or \"Memory\""),
                );
            }
            if let Some(q) = &e.size_limit {
                let p = format!("{vp}.emptyDir.sizeLimit");
                q.memory_bytes().or_else(|e| fail(&p, e.to_string()))?;
                // Only a tmpfs has a size; on disk nothing evicts a pod over it.
                if e.medium.as_deref() != Some("Memory") {
                    ck.not_acted_on(&p);
                }
            }
        }
        if let Some(c) = &v.config_map {
            check_dns_subdomain(&format!("{vp}.configMap.name"), &c.name)?;
            check_key_paths(&format!("{vp}.configMap"), &c.items, c.default_mode)?;
        }
        if let Some(s) = &v.secret {
            check_dns_subdomain(&format!("{vp}.secret.secretName"), &s.secret_name)?;
            check_key_paths(&format!("{vp}.secret"), &s.items, s.default_mode)?;
        }
        if let Some(d) = &v.downward_api {
            let dp = format!("{vp}.downwardAPI");
            if let Some(m) = d.default_mode {
                check_mode(&format!("{dp}.defaultMode"), m)?;
            }
            check_downward_files(&dp, &d.items, spec)?;
        }
        if let Some(p) = &v.projected {
            let pp = format!("{vp}.projected");
            if let Some(m) = p.default_mode {
                check_mode(&format!("{pp}.defaultMode"), m)?;
            }
            for (j, src) in p.sources.iter().enumerate() {
                let sp = format!("{pp}.sources[{j}]");
                let set = [
                    src.config_map.is_some(),
                    src.secret.is_some(),
                    src.downward_api.is_some(),
                ];
                if set.iter().filter(|s| **s).count() != 1 {
                    return fail(sp, "set exactly one of configMap, secret or downwardAPI");
                }
                for (field, o) in [("configMap", &src.config_map), ("secret", &src.secret)] {
                    if let Some(o) = o {
                        let op = format!("{sp}.{field}");
                        check_dns_subdomain(&format!("{op}.name"), &o.name)?;
                        check_key_paths(&op, &o.items, None)?;
                    }
                }
                if let Some(d) = &src.downward_api {
                    check_downward_files(&format!("{sp}.downwardAPI"), &d.items, spec)?;
                }
            }
        }
    }

    let mut names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    for (list, c, cp) in lists.into_iter().flat_map(|(list, cs)| {
        cs.iter()
            .enumerate()
            .map(move |(i, c)| (list, c, format!("{path}.{list}[{i}]")))
    }) {
        check_dns_label(&format!("{cp}.name"), &c.name)?;
        check_init_fields(c, &cp, list == "initContainers")?;
        check_lifecycle(c, &cp, spec.termination_grace_period_seconds.unwrap_or(30))?;
        if !names.insert(c.name.as_str()) {
            return fail(
                format!("{cp}.name"),
                format!("duplicate container name {:?}", c.name),
            );
        }
        for (j, port) in c.ports.iter().enumerate() {
            let pp = format!("{cp}.ports[{j}]");
            if port.container_port == 0 {
                return fail(format!("{pp}.containerPort"), "must be between 1 and 65535");
            }
            if let Some(name) = &port.name {
                check_port_name(&format!("{pp}.name"), name)?;
                if !port_names.insert(name.as_str()) {
                    return fail(
                        format!("{pp}.name"),
                        format!("duplicate port name {name:?} in this pod"),
                    );
                }
            }
            let proto = port.protocol.unwrap_or_default();
            if let Some(hp) = port.host_port.filter(|hp| *hp != 0)
                && !host_ports.insert((hp, protocol_name(proto)))
            {
                return fail(
                    format!("{pp}.hostPort"),
                    format!(
                        "host port {hp}/{} is used twice in this pod",
                        protocol_name(proto)
                    ),
                );
            }
        }
        check_container(c, &cp, &volumes, ck)?;
        check_security_context(spec.security_context.as_ref(), path, c, &cp)?;
    }
    if let Some(sc) = &spec.security_context {
        check_pod_security_context(sc, &format!("{path}.securityContext"))?;
    }

    if let Some(h) = &spec.hostname
        && !is_dns_label(h)
    {
        return fail(
            format!("{path}.hostname"),
            format!("{h:?} is not valid: it must be {DNS_LABEL_RULE}"),
        );
    }
    if spec.active_deadline_seconds == Some(0) {
        return fail(
            format!("{path}.activeDeadlineSeconds"),
            "must be at least 1",
        );
    }
    if let Some(sub) = &spec.subdomain
        && !is_dns_label(sub)
    {
        return fail(
            format!("{path}.subdomain"),
            format!(
                "{sub:?} is not valid: it must be {DNS_LABEL_RULE} (a headless Service's name)"
            ),
        );
    }
    let rp_path = format!("{path}.restartPolicy");
    match (owner, spec.restart_policy) {
        (Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet | Kind::StatefulSet, Some(rp))
            if rp != RestartPolicy::Always =>
        {
            return fail(
                rp_path,
                format!("{rp:?} is not allowed in a {owner}: only Always"),
            );
        }
        (Kind::Job, None) => {
            return fail(
                rp_path,
                "missing: a Job's pod template needs restartPolicy OnFailure or Never",
            );
        }
        (Kind::Job, Some(RestartPolicy::Always)) => {
            return fail(
                rp_path,
                "Always is not allowed in a Job: use OnFailure or Never",
            );
        }
        _ => {}
    }
    if spec.node_name.as_deref() == Some("") {
        return fail(format!("{path}.nodeName"), "must not be empty when given");
    }
    check_dns(spec, path)?;
    super::scheduling::check_scheduling(spec, path)?;
    super::scheduling::check_pod_placement(spec, path)?;
    check_labels(&format!("{path}.nodeSelector"), &spec.node_selector)
}

/// What only an init container may have (a restart policy, making it a
/// sidecar) and what only a sidecar among them may have (probes): a
/// regular init container runs to completion before anything is ready.
fn check_init_fields(c: &Container, cp: &str, init: bool) -> Res {
    if c.restart_policy.is_some() && !init {
        return fail(
            format!("{cp}.restartPolicy"),
            "only an init container may have its own restart policy (Always, which makes \
             it a sidecar); an app container follows the pod's",
        );
    }
    if init && !c.is_sidecar() {
        let probes = [
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
            ("lifecycle", c.lifecycle.is_some()),
        ];
        if let Some((field, _)) = probes.iter().find(|(_, set)| *set) {
            return fail(
                format!("{cp}.{field}"),
                "not allowed on an init container that runs to completion (only on a \
                 sidecar: restartPolicy Always)",
            );
        }
    }
    Ok(())
}

/// A hook has one handler; a named port is one of the container's; a
/// sleep fits in the pod's grace period, as Kubernetes checks.
fn check_lifecycle(c: &Container, cp: &str, grace: u64) -> Res {
    let Some(l) = &c.lifecycle else {
        return Ok(());
    };
    let port_names: BTreeSet<&str> = c.ports.iter().filter_map(|p| p.name.as_deref()).collect();
    for (field, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        let Some(h) = hook else { continue };
        let hp = format!("{cp}.lifecycle.{field}");
        let set = [h.exec.is_some(), h.http_get.is_some(), h.sleep.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            return fail(hp, "set exactly one of exec, httpGet or sleep");
        }
        if let Some(e) = &h.exec
            && e.command.is_empty()
        {
            return fail(format!("{hp}.exec.command"), "must not be empty");
        }
        if let Some(g) = &h.http_get {
            check_probe_port(&format!("{hp}.httpGet.port"), &g.port, &port_names)?;
        }
        if let Some(s) = &h.sleep
            && u64::try_from(s.seconds).map_or(true, |secs| secs > grace)
        {
            return fail(
                format!("{hp}.sleep.seconds"),
                format!(
                    "{} must be between 0 and the pod's terminationGracePeriodSeconds ({grace})",
                    s.seconds
                ),
            );
        }
    }
    Ok(())
}

/// Kubernetes' bounds on a pod's resolver settings.
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCHES: usize = 32;

fn check_dns(spec: &PodSpec, path: &str) -> Res {
    let config = spec.dns_config.as_ref();
    if spec.dns_policy == Some(DnsPolicy::None) && config.is_none_or(|c| c.nameservers.is_empty()) {
        return fail(
            format!("{path}.dnsConfig.nameservers"),
            "at least one is needed when dnsPolicy is None",
        );
    }
    if let Some(c) = config {
        let cp = format!("{path}.dnsConfig");
        if c.nameservers.len() > MAX_DNS_NAMESERVERS {
            return fail(
                format!("{cp}.nameservers"),
                format!("at most {MAX_DNS_NAMESERVERS}, not {}", c.nameservers.len()),
            );
        }
        for (i, ns) in c.nameservers.iter().enumerate() {
            if ns.parse::<std::net::IpAddr>().is_err() {
                return fail(
                    format!("{cp}.nameservers[{i}]"),
                    format!("{ns:?} is not an IP address"),
                );
            }
        }
        if c.searches.len() > MAX_DNS_SEARCHES {
            return fail(
                format!("{cp}.searches"),
                format!("at most {MAX_DNS_SEARCHES}, not {}", c.searches.len()),
            );
        }
        for (i, d) in c.searches.iter().enumerate() {
            if !is_dns_subdomain(d.trim_end_matches('.')) {
                return fail(
                    format!("{cp}.searches[{i}]"),
                    format!("{d:?} is not a DNS name"),
                );
            }
        }
        for (i, o) in c.options.iter().enumerate() {
            let bad =
                |s: &str| s.is_empty() || s.contains(|ch: char| ch.is_whitespace() || ch == ':');
            if bad(&o.name) {
                return fail(
                    format!("{cp}.options[{i}].name"),
                    format!("{:?} is not a resolv.conf option name", o.name),
                );
            }
            if o.value
                .as_deref()
                .is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace))
            {
                return fail(
                    format!("{cp}.options[{i}].value"),
                    "must be one word when given",
                );
            }
        }
    }
    for (i, a) in spec.host_aliases.iter().enumerate() {
        let ap = format!("{path}.hostAliases[{i}]");
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            return fail(
                format!("{ap}.ip"),
                format!("{:?} is not an IP address", a.ip),
            );
        }
        if a.hostnames.is_empty() {
            return fail(format!("{ap}.hostnames"), "at least one is needed");
        }
        for (j, h) in a.hostnames.iter().enumerate() {
            if !is_dns_subdomain(h) {
                return fail(
                    format!("{ap}.hostnames[{j}]"),
                    format!("{h:?} is not a DNS name"),
                );
            }
        }
    }
    Ok(())
}

/// Kubernetes' bound on uids and gids (an int32, not Linux's u32).
const MAX_ID: i64 = i32::MAX as i64;

fn check_id(path: &str, id: Option<i64>) -> Res {
    match id {
        Some(v) if !(0..=MAX_ID).contains(&v) => {
            fail(path, format!("{v} must be between 0 and {MAX_ID}"))
        }
        _ => Ok(()),
    }
}

/// The container's own user fields, and what they make of the pod's: a
/// group needs a user to go with it, and runAsNonRoot with runAsUser 0
/// could never start.
fn check_security_context(
    pod: Option<&PodSecurityContext>,
    pod_path: &str,
    c: &Container,
    cp: &str,
) -> Res {
    let own = c.security_context.as_ref();
    let sp = format!("{cp}.securityContext");
    if let Some(sc) = own {
        check_id(&format!("{sp}.runAsUser"), sc.run_as_user)?;
        check_id(&format!("{sp}.runAsGroup"), sc.run_as_group)?;
        if let Some(caps) = &sc.capabilities {
            for (field, names) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (i, name) in names.iter().enumerate() {
                    check_capability(&format!("{sp}.capabilities.{field}[{i}]"), name)?;
                }
            }
        }
        if sc.allow_privilege_escalation == Some(false) {
            // Kubernetes' own refusals: either makes no_new_privs a lie.
            if sc.privileged == Some(true) {
                return fail(
                    format!("{sp}.allowPrivilegeEscalation"),
                    "cannot be false when privileged is true",
                );
            }
            let adds_sys_admin = sc.capabilities.as_ref().is_some_and(|c| {
                c.add
                    .iter()
                    .any(|n| capability_name(n) == "SYS_ADMIN" || capability_name(n) == "ALL")
            });
            if adds_sys_admin {
                return fail(
                    format!("{sp}.allowPrivilegeEscalation"),
                    "cannot be false when capabilities.add has SYS_ADMIN (or ALL)",
                );
            }
        }
        if let Some(p) = &sc.seccomp_profile {
            check_seccomp(&format!("{sp}.seccompProfile"), p)?;
        }
    }
    // Where a merged value came from, for the error's path.
    let from = |own_set: bool, field: &str| {
        if own_set {
            format!("{sp}.{field}")
        } else {
            format!("{pod_path}.securityContext.{field}")
        }
    };
    let eff = SecurityContext::effective(pod, own);
    if eff.run_as_group.is_some() && eff.run_as_user.is_none() {
        return fail(
            from(own.is_some_and(|s| s.run_as_group.is_some()), "runAsGroup"),
            "needs runAsUser as well (in the container's or the pod's securityContext): \
             shoal cannot pair a group with the image's own user",
        );
    }
    if eff.run_as_non_root == Some(true) && eff.run_as_user == Some(0) {
        return fail(
            from(own.is_some_and(|s| s.run_as_user.is_some()), "runAsUser"),
            "0 (root) contradicts runAsNonRoot: true; the container could never start",
        );
    }
    Ok(())
}

fn check_pod_security_context(sc: &PodSecurityContext, sp: &str) -> Res {
    check_id(&format!("{sp}.runAsUser"), sc.run_as_user)?;
    check_id(&format!("{sp}.runAsGroup"), sc.run_as_group)?;
    check_id(&format!("{sp}.fsGroup"), sc.fs_group)?;
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        check_id(&format!("{sp}.supplementalGroups[{i}]"), Some(*g))?;
    }
    if let Some(p) = sc.fs_group_change_policy.as_deref()
        && !matches!(p, "Always" | "OnRootMismatch")
    {
        return fail(
            format!("{sp}.fsGroupChangePolicy"),
            format!("{p:?}: must be Always or OnRootMismatch"),
        );
    }
    if let Some(p) = &sc.seccomp_profile {
        check_seccomp(&format!("{sp}.seccompProfile"), p)?;
    }
    let mut seen = HashSet::new();
    for (i, s) in sc.sysctls.iter().enumerate() {
        let path = format!("{sp}.sysctls[{i}].name");
        if !seen.insert(s.name.as_str()) {
            return fail(path, format!("{:?} is set twice", s.name));
        }
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            return fail(
                path,
                format!(
                    "{:?} is not one of Kubernetes' safe sysctls ({}); shoal sets no others",
                    s.name,
                    SAFE_SYSCTLS.join(", ")
                ),
            );
        }
        if s.value.is_empty() || s.value.contains(['\n', '\0']) {
            return fail(
                format!("{sp}.sysctls[{i}].value"),
                "must be a non-empty single line",
            );
        }
    }
    Ok(())
}

/// Kubernetes' safe sysctls: namespaced, and unable to affect other pods
/// or the node.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_syncookies",
];

/// Linux's capabilities, as Kubernetes names them (without `CAP_`).
const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// A capability's name without the optional `CAP_` prefix, as Docker takes
/// either.
/// A capability's name as the runtimes compare it: upper case (containerd
/// and Docker upper-case them, so `drop: [all]` is common and works) and
/// without the `CAP_` prefix.
fn capability_name(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    match up.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => up,
    }
}

fn check_capability(path: &str, name: &str) -> Res {
    if CAPABILITIES.contains(&capability_name(name).as_str()) {
        Ok(())
    } else {
        fail(
            path,
            format!("{name:?} is not a Linux capability (such as NET_ADMIN, or ALL)"),
        )
    }
}

fn check_seccomp(path: &str, p: &SeccompProfile) -> Res {
    match (p.profile_type, p.localhost_profile.as_deref()) {
        (SeccompProfileType::Localhost, None) => fail(
            format!("{path}.localhostProfile"),
            "required with type Localhost: a file under the node's agent.seccomp_dir",
        ),
        (SeccompProfileType::Localhost, Some(f)) => {
            check_relative_path(&format!("{path}.localhostProfile"), f)
        }
        (_, Some(_)) => fail(
            format!("{path}.localhostProfile"),
            "only with type Localhost",
        ),
        (_, None) => Ok(()),
    }
}

pub(super) fn check_key_paths(path: &str, items: &[KeyToPath], default_mode: Option<u32>) -> Res {
    if let Some(m) = default_mode {
        check_mode(&format!("{path}.defaultMode"), m)?;
    }
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{path}.items[{i}]");
        check_config_key(&format!("{ip}.key"), &item.key)?;
        check_relative_path(&format!("{ip}.path"), &item.path)?;
        if let Some(m) = item.mode {
            check_mode(&format!("{ip}.mode"), m)?;
        }
    }
    Ok(())
}

pub(super) fn check_field_ref(path: &str, f: &ObjectFieldSelector, whole_maps: bool) -> Res {
    if let Some(v) = f.api_version.as_deref().filter(|v| *v != "v1") {
        return fail(format!("{path}.apiVersion"), format!("{v:?}: only v1"));
    }
    crate::resource::downward::parse_field_path(&f.field_path, whole_maps)
        .map(|_| ())
        .or_else(|e| fail(format!("{path}.fieldPath"), e))
}

pub(super) fn check_downward_files(path: &str, items: &[DownwardApiFile], spec: &PodSpec) -> Res {
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{path}.items[{i}]");
        check_relative_path(&format!("{ip}.path"), &item.path)?;
        if let Some(m) = item.mode {
            check_mode(&format!("{ip}.mode"), m)?;
        }
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => check_field_ref(&format!("{ip}.fieldRef"), f, true)?,
            (None, Some(r)) => {
                let rp = format!("{ip}.resourceFieldRef");
                match r.container_name.as_deref() {
                    None | Some("") => {
                        return fail(
                            format!("{rp}.containerName"),
                            "required in a volume: which container's resources",
                        );
                    }
                    Some(n) if spec.container(n).is_none() => {
                        return fail(
                            format!("{rp}.containerName"),
                            format!("no container named {n:?} in this pod"),
                        );
                    }
                    Some(_) => {}
                }
                crate::resource::downward::check_resource(r)
                    .or_else(|e| fail(format!("{rp}.resource"), e))?;
            }
            _ => return fail(ip, "set exactly one of fieldRef and resourceFieldRef"),
        }
    }
    Ok(())
}

pub(super) fn check_mode(path: &str, mode: u32) -> Res {
    if mode > 0o777 {
        return fail(
            path,
            format!("{mode} is not a file mode: must be between 0 and 0777 (511)"),
        );
    }
    Ok(())
}

pub(super) fn check_relative_path(path: &str, p: &str) -> Res {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|part| part == "..") {
        return fail(path, format!("{p:?} must be a relative path without '..'"));
    }
    Ok(())
}

pub(super) fn check_container(
    c: &Container,
    cp: &str,
    volumes: &BTreeSet<&str>,
    ck: &mut Checker,
) -> Res {
    if c.image.trim().is_empty() {
        return fail(
            format!("{cp}.image"),
            "missing: every container needs an image",
        );
    }
    if c.image.chars().any(char::is_whitespace) {
        return fail(
            format!("{cp}.image"),
            format!("{:?} must not contain whitespace", c.image),
        );
    }
    if let Some(dir) = &c.working_dir
        && (!dir.starts_with('/') || dir.split('/').any(|part| part == ".."))
    {
        return fail(
            format!("{cp}.workingDir"),
            format!("{dir:?} must be an absolute path without '..'"),
        );
    }
    super::termination::check_termination_message(c, cp)?;
    if let Err(why) = check_image_reference(&c.image) {
        return fail(
            format!("{cp}.image"),
            format!("{:?} is not a valid image reference: {why}", c.image),
        );
    }

    for (j, e) in c.env.iter().enumerate() {
        let ep = format!("{cp}.env[{j}]");
        if e.name.is_empty()
            || e.name.contains('=')
            || !e.name.bytes().all(|b| b.is_ascii_graphic())
        {
            return fail(
                format!("{ep}.name"),
                format!(
                    "{:?} is not a valid variable name: printable characters other than '=' and spaces",
                    e.name
                ),
            );
        }
        if let Some(from) = &e.value_from {
            if e.value.is_some() {
                return fail(
                    format!("{ep}.valueFrom"),
                    "may not be set together with value",
                );
            }
            let refs = [
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
            ];
            match refs.iter().filter(|r| **r).count() {
                1 => {}
                n => {
                    let what = if n == 0 { "set" } else { "set only one of" };
                    return fail(
                        format!("{ep}.valueFrom"),
                        format!(
                            "{what} configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef"
                        ),
                    );
                }
            }
            for (field, r) in [
                ("configMapKeyRef", &from.config_map_key_ref),
                ("secretKeyRef", &from.secret_key_ref),
            ] {
                if let Some(r) = r {
                    let rp = format!("{ep}.valueFrom.{field}");
                    check_dns_subdomain(&format!("{rp}.name"), &r.name)?;
                    check_config_key(&format!("{rp}.key"), &r.key)?;
                }
            }
            if let Some(f) = &from.field_ref {
                check_field_ref(&format!("{ep}.valueFrom.fieldRef"), f, false)?;
            }
            if let Some(r) = &from.resource_field_ref {
                let rp = format!("{ep}.valueFrom.resourceFieldRef");
                if let Some(n) = r.container_name.as_deref().filter(|n| *n != c.name) {
                    return fail(
                        format!("{rp}.containerName"),
                        format!("{n:?} is not this container ({:?})", c.name),
                    );
                }
                crate::resource::downward::check_resource(r)
                    .or_else(|e| fail(format!("{rp}.resource"), e))?;
            }
        }
    }
    for (j, e) in c.env_from.iter().enumerate() {
        let ep = format!("{cp}.envFrom[{j}]");
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), None) => check_dns_subdomain(&format!("{ep}.configMapRef.name"), &r.name)?,
            (None, Some(r)) => check_dns_subdomain(&format!("{ep}.secretRef.name"), &r.name)?,
            _ => {
                return fail(ep, "set exactly one of configMapRef and secretRef");
            }
        }
    }

    if let Some(r) = &c.resources {
        super::resources::check_resources(&format!("{cp}.resources"), r)?;
    }

    let port_names: BTreeSet<&str> = c.ports.iter().filter_map(|p| p.name.as_deref()).collect();
    for (field, probe, single_success) in [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ] {
        if let Some(p) = probe {
            check_probe(p, &format!("{cp}.{field}"), &port_names, single_success)?;
        }
    }

    let mut mount_paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        if !volumes.contains(m.name.as_str()) {
            return fail(
                format!("{mp}.name"),
                format!("no volume named {:?} in the pod's volumes", m.name),
            );
        }
        if !m.mount_path.starts_with('/') {
            return fail(format!("{mp}.mountPath"), "must be an absolute path");
        }
        if !mount_paths.insert(m.mount_path.trim_end_matches('/')) {
            return fail(
                format!("{mp}.mountPath"),
                format!("{:?} is mounted twice in this container", m.mount_path),
            );
        }
        if let Some(sp) = &m.sub_path {
            check_relative_path(&format!("{mp}.subPath"), sp)?;
        }
    }

    if c.image_pull_policy.is_some() {
        ck.not_acted_on(&format!("{cp}.imagePullPolicy"));
    }
    Ok(())
}

pub(super) fn check_probe(
    p: &Probe,
    path: &str,
    port_names: &BTreeSet<&str>,
    single_success: bool,
) -> Res {
    let handlers = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ]
    .into_iter()
    .filter(|h| *h)
    .count();
    if handlers != 1 {
        let what = if handlers == 0 { "no" } else { "more than one" };
        return fail(
            path,
            format!("{what} handler: set exactly one of httpGet, tcpSocket, exec or grpc"),
        );
    }
    if let Some(h) = &p.http_get {
        check_probe_port(&format!("{path}.httpGet.port"), &h.port, port_names)?;
        for (i, header) in h.http_headers.iter().enumerate() {
            if header.name.is_empty() || !header.name.bytes().all(|b| b.is_ascii_graphic()) {
                return fail(
                    format!("{path}.httpGet.httpHeaders[{i}].name"),
                    format!("{:?} is not a valid header name", header.name),
                );
            }
        }
    }
    if let Some(t) = &p.tcp_socket {
        check_probe_port(&format!("{path}.tcpSocket.port"), &t.port, port_names)?;
    }
    if let Some(g) = &p.grpc
        && !(1..=65535).contains(&g.port)
    {
        return fail(
            format!("{path}.grpc.port"),
            format!("{} must be between 1 and 65535", g.port),
        );
    }
    if let Some(e) = &p.exec
        && e.command.is_empty()
    {
        return fail(format!("{path}.exec.command"), "must not be empty");
    }
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("failureThreshold", p.failure_threshold),
        ("successThreshold", p.success_threshold),
    ] {
        if v == Some(0) {
            return fail(format!("{path}.{field}"), "must be at least 1");
        }
    }
    if single_success && p.success_threshold.is_some_and(|s| s != 1) {
        return fail(
            format!("{path}.successThreshold"),
            "must be 1 for liveness and startup probes",
        );
    }
    Ok(())
}

pub(super) fn check_port_number(path: &str, port: &IntOrString) -> Res {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(()),
        IntOrString::Int(n) => fail(path, format!("{n} must be between 1 and 65535")),
        IntOrString::String(s) => check_port_name(path, s),
    }
}

pub(super) fn check_probe_port(path: &str, port: &IntOrString, port_names: &BTreeSet<&str>) -> Res {
    check_port_number(path, port)?;
    match port {
        IntOrString::String(s) if !port_names.contains(s.as_str()) => fail(
            path,
            format!("no port named {s:?} in this container's ports"),
        ),
        _ => Ok(()),
    }
}
