//! Checks of the workload and service kinds: Deployment, ReplicaSet, DaemonSet, Job,
//! Service, ConfigMap, Secret.

use super::*;
use crate::resource::types::{
    DaemonSetSpec, DaemonSetStrategyType, ExitCodeOperator, PodFailurePolicyAction,
    PodFailurePolicyRule, PodReplacementPolicy, ReplicaSetBody, ReplicaSetSpec,
};

// ---------------------------------------------------------------- workloads

pub(super) fn check_template_metadata(t: &PodTemplateSpec, path: &str) -> Res {
    if let Some(m) = &t.metadata {
        check_labels(&format!("{path}.metadata.labels"), &m.labels)?;
        check_annotations(&format!("{path}.metadata.annotations"), &m.annotations)?;
    }
    Ok(())
}

pub(super) fn check_selector(sel: &LabelSelector, path: &str) -> Res {
    check_labels(&format!("{path}.matchLabels"), &sel.match_labels)?;
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let rp = format!("{path}.matchExpressions[{i}]");
        check_qualified_name(&format!("{rp}.key"), &r.key)?;
        match r.operator {
            SelectorOperator::In | SelectorOperator::NotIn => {
                if r.values.is_empty() {
                    return fail(
                        format!("{rp}.values"),
                        format!("must not be empty for operator {:?}", r.operator),
                    );
                }
                for (j, v) in r.values.iter().enumerate() {
                    check_label_value(&format!("{rp}.values[{j}]"), v)?;
                }
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist => {
                if !r.values.is_empty() {
                    return fail(
                        format!("{rp}.values"),
                        format!("must be empty for operator {:?}", r.operator),
                    );
                }
            }
        }
    }
    Ok(())
}

pub(super) fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

pub(super) fn is_zero(v: &IntOrString) -> bool {
    matches!(v, IntOrString::Int(0)) || matches!(v, IntOrString::String(s) if s == "0%")
}

/// A count (>= 0) or a whole percentage; `max_percent` bounds percentages.
pub(super) fn check_count_or_percent(path: &str, v: &IntOrString, max_percent: Option<u64>) -> Res {
    match v {
        IntOrString::Int(n) if *n < 0 => fail(path, format!("{n} must not be negative")),
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(s) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok());
            match pct {
                None => fail(
                    path,
                    format!("{s:?} must be a whole number or a percentage such as \"25%\""),
                ),
                Some(p) if max_percent.is_some_and(|m| p > m) => {
                    fail(path, format!("{s:?} must be at most 100%"))
                }
                Some(_) => Ok(()),
            }
        }
    }
}

/// Kubernetes' `replicas` is an int32.
pub(super) const MAX_REPLICAS: u32 = i32::MAX as u32;

/// The checks a Deployment and a user's ReplicaSet share: the count, a
/// selector that is not empty and matches the template's labels, and the
/// pod template itself.
pub(super) fn check_pod_set(
    replicas: Option<u32>,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    kind: Kind,
    ck: &mut Checker,
) -> Res {
    if let Some(r) = replicas
        && r > MAX_REPLICAS
    {
        return fail(
            "spec.replicas",
            format!("{r} is over {MAX_REPLICAS}, the largest a Kubernetes int32 holds"),
        );
    }
    check_selector(selector, "spec.selector")?;
    if selector.is_empty() {
        return fail(
            "spec.selector",
            "empty: set matchLabels or matchExpressions (an empty selector would select every pod)",
        );
    }
    check_template_metadata(template, "spec.template")?;
    let labels = template.labels();
    if labels.is_empty() {
        return fail(
            "spec.template.metadata.labels",
            "missing: the pod template needs labels that spec.selector matches",
        );
    }
    if !selector.matches(&labels) {
        return fail(
            "spec.selector",
            format!("does not match template labels {}", format_labels(&labels)),
        );
    }
    check_pod_spec(&template.spec, "spec.template.spec", kind, ck)
}

/// A ReplicaSet as a user applies it: `replicas` may be left out (1).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AppliedReplicaSet {
    spec: AppliedReplicaSetSpec,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppliedReplicaSetSpec {
    #[serde(default)]
    replicas: Option<u32>,
    selector: LabelSelector,
    template: PodTemplateSpec,
    #[serde(default)]
    min_ready_seconds: Option<u32>,
}

/// Checks a user's ReplicaSet and gives the body the controller reads.
pub(super) fn check_replica_set(
    rs: AppliedReplicaSet,
    ck: &mut Checker,
) -> Result<ReplicaSetBody, Failure> {
    let s = rs.spec;
    check_pod_set(s.replicas, &s.selector, &s.template, Kind::ReplicaSet, ck)?;
    Ok(ReplicaSetBody {
        spec: ReplicaSetSpec {
            replicas: s.replicas.unwrap_or(1),
            selector: s.selector,
            template: s.template,
            min_ready_seconds: s.min_ready_seconds,
        },
    })
}

pub(super) fn check_deployment(spec: &DeploymentSpec, ck: &mut Checker) -> Res {
    check_pod_set(
        spec.replicas,
        &spec.selector,
        &spec.template,
        Kind::Deployment,
        ck,
    )?;
    if let Some(st) = &spec.strategy
        && let Some(ru) = &st.rolling_update
    {
        let rp = "spec.strategy.rollingUpdate";
        if st.strategy_type == Some(StrategyType::Recreate) {
            return fail(rp, "may not be set when type is Recreate");
        }
        if let Some(v) = &ru.max_surge {
            check_count_or_percent(&format!("{rp}.maxSurge"), v, None)?;
        }
        if let Some(v) = &ru.max_unavailable {
            check_count_or_percent(&format!("{rp}.maxUnavailable"), v, Some(100))?;
        }
        if ru.max_surge.as_ref().is_some_and(is_zero)
            && ru.max_unavailable.as_ref().is_some_and(is_zero)
        {
            return fail(
                format!("{rp}.maxUnavailable"),
                "may not be 0 when maxSurge is 0",
            );
        }
    }
    if let Some(pd) = spec.progress_deadline_seconds {
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if pd <= min_ready {
            return fail(
                "spec.progressDeadlineSeconds",
                format!("must be greater than minReadySeconds ({min_ready})"),
            );
        }
    }
    Ok(())
}

pub(super) fn check_daemon_set(spec: &DaemonSetSpec, ck: &mut Checker) -> Res {
    check_pod_set(None, &spec.selector, &spec.template, Kind::DaemonSet, ck)?;
    let Some(st) = &spec.update_strategy else {
        return Ok(());
    };
    let Some(ru) = &st.rolling_update else {
        return Ok(());
    };
    let rp = "spec.updateStrategy.rollingUpdate";
    if st.strategy_type == Some(DaemonSetStrategyType::OnDelete) {
        return fail(rp, "may not be set when type is OnDelete");
    }
    if let Some(v) = &ru.max_surge {
        check_count_or_percent(&format!("{rp}.maxSurge"), v, Some(100))?;
    }
    if let Some(v) = &ru.max_unavailable {
        check_count_or_percent(&format!("{rp}.maxUnavailable"), v, Some(100))?;
    }
    let surge_zero = ru.max_surge.as_ref().is_none_or(is_zero);
    if surge_zero && ru.max_unavailable.as_ref().is_some_and(is_zero) {
        return fail(
            format!("{rp}.maxUnavailable"),
            "may not be 0 when maxSurge is 0",
        );
    }
    Ok(())
}

/// Kubernetes' limit on an Indexed Job's completions.
const MAX_INDEXED_COMPLETIONS: u32 = 100_000;

pub(super) fn check_job(spec: &JobSpec, ck: &mut Checker) -> Res {
    check_job_at(spec, "spec", ck)
}

/// Checks a Job's spec found at `path` (a Job's or a CronJob's template).
fn check_job_at(spec: &JobSpec, path: &str, ck: &mut Checker) -> Res {
    if spec.active_deadline_seconds == Some(0) {
        return fail(
            format!("{path}.activeDeadlineSeconds"),
            "must be at least 1",
        );
    }
    if spec.completion_mode == Some(CompletionMode::Indexed) {
        match spec.completions {
            None => {
                return fail(
                    format!("{path}.completions"),
                    "missing: completionMode Indexed needs completions (one index per completion)",
                );
            }
            Some(n) if n > MAX_INDEXED_COMPLETIONS => {
                return fail(
                    format!("{path}.completions"),
                    format!(
                        "{n} is over {MAX_INDEXED_COMPLETIONS}, the most an Indexed Job may have"
                    ),
                );
            }
            Some(_) => {}
        }
    }
    check_job_policies(spec, path)?;
    check_job_ownership(spec, path)?;
    check_template_metadata(&spec.template, &format!("{path}.template"))?;
    check_pod_spec(
        &spec.template.spec,
        &format!("{path}.template.spec"),
        Kind::Job,
        ck,
    )
}

/// Kubernetes' longest `managedBy`.
const MAX_MANAGED_BY: usize = 63;

/// podReplacementPolicy, managedBy and a manual selector.
fn check_job_ownership(spec: &JobSpec, path: &str) -> Res {
    if spec.pod_replacement_policy == Some(PodReplacementPolicy::Failed) {
        return fail(
            format!("{path}.podReplacementPolicy"),
            "Failed is not supported: shoal removes a deleted pod from the store at once and              stops its containers afterwards, so it cannot hold the replacement until the old              pod has stopped; leave it out or use TerminatingOrFailed",
        );
    }
    if let Some(m) = &spec.managed_by {
        let mp = format!("{path}.managedBy");
        if m.len() > MAX_MANAGED_BY {
            return fail(
                mp,
                format!("{} characters: at most {MAX_MANAGED_BY}", m.len()),
            );
        }
        // As Kubernetes: a domain-prefixed path, such as example.com/my-controller.
        let Some((domain, rest)) = m.split_once('/') else {
            return fail(
                mp,
                format!("{m:?} is not a domain-prefixed path (such as example.com/controller)"),
            );
        };
        check_dns_subdomain(&mp, domain)?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail(
                mp,
                format!("{m:?}: the part after the domain must be a non-empty path"),
            );
        }
    }
    match (&spec.selector, spec.manual_selector) {
        (Some(_), Some(true)) => {}
        (Some(_), _) => {
            return fail(
                format!("{path}.selector"),
                "set by the Job controller: leave it out, or set manualSelector: true to                  choose the pods yourself",
            );
        }
        (None, Some(true)) => {
            return fail(
                format!("{path}.selector"),
                "missing: manualSelector: true needs a selector",
            );
        }
        (None, _) => return Ok(()),
    }
    let Some(selector) = &spec.selector else {
        return Ok(());
    };
    let sp = format!("{path}.selector");
    check_selector(selector, &sp)?;
    if selector.is_empty() {
        return fail(
            sp,
            "empty: set matchLabels or matchExpressions (an empty selector would select every pod)",
        );
    }
    let labels = spec.template.labels();
    if !selector.matches(&labels) {
        return fail(
            sp,
            format!("does not match template labels {}", format_labels(&labels)),
        );
    }
    Ok(())
}

/// Kubernetes' limits on the lists of a Job's policies.
const MAX_POLICY_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;

/// podFailurePolicy, backoffLimitPerIndex/maxFailedIndexes and
/// successPolicy, with Kubernetes' rules on how they combine.
fn check_job_policies(spec: &JobSpec, path: &str) -> Res {
    let indexed = spec.completion_mode == Some(CompletionMode::Indexed);
    let completions = spec.completions.unwrap_or(0);
    if let Some(pfp) = &spec.pod_failure_policy {
        let pp = format!("{path}.podFailurePolicy");
        if spec.template.spec.restart_policy != Some(RestartPolicy::Never) {
            return fail(
                format!("{path}.template.spec.restartPolicy"),
                "must be Never when podFailurePolicy is set",
            );
        }
        if pfp.rules.len() > MAX_POLICY_RULES {
            return fail(
                format!("{pp}.rules"),
                format!("{} rules: at most {MAX_POLICY_RULES}", pfp.rules.len()),
            );
        }
        let names: BTreeSet<&str> = spec
            .template
            .spec
            .init_containers
            .iter()
            .chain(&spec.template.spec.containers)
            .map(|c| c.name.as_str())
            .collect();
        for (i, r) in pfp.rules.iter().enumerate() {
            let rp = format!("{pp}.rules[{i}]");
            check_failure_rule(spec, r, &rp, &names)?;
        }
    }
    if spec.backoff_limit_per_index.is_some() && !indexed {
        return fail(
            format!("{path}.backoffLimitPerIndex"),
            "only allowed with completionMode Indexed",
        );
    }
    if let Some(m) = spec.max_failed_indexes {
        if spec.backoff_limit_per_index.is_none() {
            return fail(
                format!("{path}.maxFailedIndexes"),
                "only allowed with backoffLimitPerIndex",
            );
        }
        if m > completions {
            return fail(
                format!("{path}.maxFailedIndexes"),
                format!("{m} is over completions ({completions})"),
            );
        }
    }
    if let Some(sp) = &spec.success_policy {
        let pp = format!("{path}.successPolicy");
        if !indexed {
            return fail(pp, "only allowed with completionMode Indexed");
        }
        if sp.rules.is_empty() || sp.rules.len() > MAX_POLICY_RULES {
            return fail(
                format!("{pp}.rules"),
                format!("{} rules: between 1 and {MAX_POLICY_RULES}", sp.rules.len()),
            );
        }
        for (i, r) in sp.rules.iter().enumerate() {
            let rp = format!("{pp}.rules[{i}]");
            let size = match &r.succeeded_indexes {
                Some(s) => {
                    let iv = crate::resource::types::parse_index_intervals(s, completions)
                        .or_else(|m| fail(format!("{rp}.succeededIndexes"), m))?;
                    Some(iv.iter().map(|(a, b)| u64::from(b - a) + 1).sum::<u64>())
                }
                None => None,
            };
            match r.succeeded_count {
                None if size.is_none() => {
                    return fail(rp, "set succeededIndexes, succeededCount or both");
                }
                None => {}
                Some(0) => return fail(format!("{rp}.succeededCount"), "must be at least 1"),
                Some(n) if n > completions => {
                    return fail(
                        format!("{rp}.succeededCount"),
                        format!("{n} is over completions ({completions})"),
                    );
                }
                Some(n) if size.is_some_and(|s| u64::from(n) > s) => {
                    return fail(
                        format!("{rp}.succeededCount"),
                        format!("{n} is over the number of succeededIndexes"),
                    );
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn check_failure_rule(
    spec: &JobSpec,
    r: &PodFailurePolicyRule,
    rp: &str,
    containers: &BTreeSet<&str>,
) -> Res {
    if r.action == PodFailurePolicyAction::FailIndex && spec.backoff_limit_per_index.is_none() {
        return fail(
            format!("{rp}.action"),
            "FailIndex is only allowed with backoffLimitPerIndex",
        );
    }
    match (&r.on_exit_codes, r.on_pod_conditions.is_empty()) {
        (Some(_), false) => fail(rp, "set one of onExitCodes and onPodConditions, not both"),
        (None, true) => fail(rp, "set one of onExitCodes and onPodConditions"),
        (Some(ec), true) => {
            let ep = format!("{rp}.onExitCodes");
            if let Some(n) = &ec.container_name
                && !containers.contains(n.as_str())
            {
                return fail(
                    format!("{ep}.containerName"),
                    format!("{n:?} is not a container of the template"),
                );
            }
            if ec.values.is_empty() || ec.values.len() > MAX_EXIT_CODE_VALUES {
                return fail(
                    format!("{ep}.values"),
                    format!(
                        "{} values: between 1 and {MAX_EXIT_CODE_VALUES}",
                        ec.values.len()
                    ),
                );
            }
            if !ec.values.windows(2).all(|w| w[0] < w[1]) {
                return fail(
                    format!("{ep}.values"),
                    "must be unique and in ascending order",
                );
            }
            if ec.operator == ExitCodeOperator::In && ec.values.contains(&0) {
                return fail(
                    format!("{ep}.values"),
                    "may not contain 0 for operator In (a container exiting 0 did not fail)",
                );
            }
            Ok(())
        }
        (None, false) => {
            if r.on_pod_conditions.len() > MAX_POLICY_RULES {
                return fail(
                    format!("{rp}.onPodConditions"),
                    format!("at most {MAX_POLICY_RULES}"),
                );
            }
            for (j, c) in r.on_pod_conditions.iter().enumerate() {
                let cp = format!("{rp}.onPodConditions[{j}]");
                if c.type_.is_empty() {
                    return fail(format!("{cp}.type"), "must not be empty");
                }
                if !matches!(c.status.as_str(), "True" | "False" | "Unknown") {
                    return fail(
                        format!("{cp}.status"),
                        format!("{:?}: must be True, False or Unknown", c.status),
                    );
                }
            }
            Ok(())
        }
    }
}

pub(super) fn check_cron_job(b: &CronJobBody, ck: &mut Checker) -> Res {
    use crate::resource::schedule::{Schedule, ScheduleError};
    match Schedule::parse(&b.spec.schedule, b.spec.time_zone.as_deref()) {
        Ok(_) => {}
        Err(ScheduleError::Schedule(m)) => return fail("spec.schedule", m),
        Err(ScheduleError::TimeZone(m)) => return fail("spec.timeZone", m),
    }
    if let Some(meta) = &b.spec.job_template.metadata {
        check_labels("spec.jobTemplate.metadata.labels", &meta.labels)?;
    }
    check_job_at(&b.spec.job_template.spec, "spec.jobTemplate.spec", ck)
}

// ---------------------------------------------------------------- services, config

pub(super) fn check_service(spec: &ServiceSpec, ck: &mut Checker) -> Res {
    check_labels("spec.selector", &spec.selector)?;
    check_session_affinity(spec)?;
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if spec.ports.is_empty() && !headless {
        return fail("spec.ports", "at least one port is required");
    }
    let exposed = matches!(
        spec.service_type,
        Some(ServiceType::NodePort | ServiceType::LoadBalancer)
    );
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if port.port == 0 {
            return fail(format!("{pp}.port"), "must be between 1 and 65535");
        }
        match &port.name {
            Some(n) => {
                check_dns_label(&format!("{pp}.name"), n)?;
                if !names.insert(n.as_str()) {
                    return fail(format!("{pp}.name"), format!("duplicate port name {n:?}"));
                }
            }
            None if spec.ports.len() > 1 => {
                return fail(
                    format!("{pp}.name"),
                    "missing: required when the service has more than one port",
                );
            }
            None => {}
        }
        let proto = port.protocol.unwrap_or_default();
        if proto != Protocol::Tcp {
            return fail(
                format!("{pp}.protocol"),
                format!(
                    "{} is not supported: shoal's service proxy carries TCP only",
                    protocol_name(proto)
                ),
            );
        }
        if !ports.insert(port.port) {
            return fail(
                format!("{pp}.port"),
                format!("port {} is listed twice", port.port),
            );
        }
        if let Some(t) = &port.target_port {
            check_port_number(&format!("{pp}.targetPort"), t)?;
        }
        if port.node_port.is_some() && !exposed {
            return fail(
                format!("{pp}.nodePort"),
                "may only be set when type is NodePort or LoadBalancer",
            );
        }
    }
    // Friendlier than a refusal: manifests written for clouds keep working,
    // and Kubernetes itself serves a LoadBalancer as NodePort when no
    // provider exists.
    if spec.service_type == Some(ServiceType::LoadBalancer) {
        ck.warn(
            "spec.type",
            "LoadBalancer is served as NodePort (shoal provisions no external load balancer)",
        );
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && ip != "None"
        && ip.parse::<std::net::Ipv4Addr>().is_err()
    {
        return fail(
            "spec.clusterIP",
            format!("{ip:?} is neither an IPv4 address nor \"None\""),
        );
    }
    Ok(())
}

pub(super) const MAX_DATA_BYTES: usize = 1024 * 1024;

pub(super) fn check_config_map(cm: &ConfigMapBody) -> Res {
    let mut size = 0;
    for (k, v) in &cm.data {
        check_config_key(&join("data", k), k)?;
        size += k.len() + v.len();
    }
    for (k, v) in &cm.binary_data {
        let p = join("binaryData", k);
        check_config_key(&p, k)?;
        if cm.data.contains_key(k) {
            return fail(p, "the same key is also in data");
        }
        let bytes = decode_base64(v).or_else(|e| fail(&p, e.to_string()))?;
        size += k.len() + bytes.len();
    }
    if size > MAX_DATA_BYTES {
        return fail("data", "data and binaryData together must be at most 1 MiB");
    }
    Ok(())
}

pub(super) fn check_secret(s: &mut SecretBody) -> Res {
    if s.secret_type.as_deref() == Some("") {
        return fail("type", "must not be empty when given");
    }
    let mut size = 0;
    let mut canonical = BTreeMap::new();
    for (k, v) in &s.data {
        let p = join("data", k);
        check_config_key(&p, k)?;
        let bytes = decode_base64(v).or_else(|e| fail(&p, e.to_string()))?;
        size += k.len() + bytes.len();
        canonical.insert(k.clone(), encode_base64(&bytes));
    }
    for (k, v) in &s.string_data {
        check_config_key(&join("stringData", k), k)?;
        size += k.len() + v.len();
        canonical.insert(k.clone(), encode_base64(v.as_bytes()));
    }
    if size > MAX_DATA_BYTES {
        return fail("data", "data and stringData together must be at most 1 MiB");
    }
    s.data = canonical;
    s.string_data.clear();
    Ok(())
}

/// `sessionAffinity` and its config, with Kubernetes' rules.
fn check_session_affinity(spec: &ServiceSpec) -> Res {
    let client_ip = match spec.session_affinity.as_deref() {
        None | Some("None") => false,
        Some("ClientIP") => true,
        Some(other) => {
            return fail(
                "spec.sessionAffinity",
                format!("{other:?}: supported values are \"ClientIP\" and \"None\""),
            );
        }
    };
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    if let Some(t) = timeout {
        let path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
        if !client_ip {
            return fail(path, "must not be set when sessionAffinity is None");
        }
        if !(1..=86_400).contains(&t) {
            return fail(path, format!("{t} must be in the range 1-86400"));
        }
    }
    Ok(())
}
