//! Checks of a pod's scheduling fields beyond `nodeSelector`: node affinity,
//! tolerations, pod affinity and anti-affinity and topology spread
//! constraints, with Kubernetes' rules and messages.

use super::*;
use crate::resource::types::{
    LabelSelector, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm,
    PodAffinityTerm, TaintEffect, TolerationOperator, WhenUnsatisfiable,
};

pub(super) fn check_scheduling(spec: &PodSpec, path: &str) -> Res {
    if let Some(na) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
    {
        let ap = format!("{path}.affinity.nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let rp = format!("{ap}.requiredDuringSchedulingIgnoredDuringExecution");
            if req.node_selector_terms.is_empty() {
                return fail(
                    format!("{rp}.nodeSelectorTerms"),
                    "must have at least one term",
                );
            }
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                check_term(&format!("{rp}.nodeSelectorTerms[{i}]"), t)?;
            }
        }
        let pp = format!("{ap}.preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            if !(1..=100).contains(&t.weight) {
                return fail(
                    format!("{pp}[{i}].weight"),
                    format!("{} must be in the range 1-100", t.weight),
                );
            }
            check_term(&format!("{pp}[{i}].preference"), &t.preference)?;
        }
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        if !key.is_empty() {
            check_qualified_name(&format!("{tp}.key"), key)?;
        }
        match t.operator.unwrap_or(TolerationOperator::Equal) {
            TolerationOperator::Exists if t.value.as_deref().is_some_and(|v| !v.is_empty()) => {
                return fail(
                    format!("{tp}.value"),
                    "must be empty when operator is Exists",
                );
            }
            TolerationOperator::Equal if key.is_empty() => {
                return fail(
                    format!("{tp}.operator"),
                    "must be Exists when key is empty, which means \"match all values and all keys\"",
                );
            }
            _ => {}
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            return fail(
                format!("{tp}.effect"),
                "must be NoExecute when tolerationSeconds is set",
            );
        }
    }
    Ok(())
}

fn check_term(path: &str, t: &NodeSelectorTerm) -> Res {
    for (j, r) in t.match_expressions.iter().enumerate() {
        let rp = format!("{path}.matchExpressions[{j}]");
        check_qualified_name(&format!("{rp}.key"), &r.key)?;
        check_requirement(&rp, r)?;
    }
    for (j, r) in t.match_fields.iter().enumerate() {
        let rp = format!("{path}.matchFields[{j}]");
        if r.key != "metadata.name" {
            return fail(
                format!("{rp}.key"),
                format!("{:?}: only metadata.name is a supported node field", r.key),
            );
        }
        if !matches!(
            r.operator,
            NodeSelectorOperator::In | NodeSelectorOperator::NotIn
        ) || r.values.len() != 1
        {
            return fail(
                rp,
                "a metadata.name field requirement takes In or NotIn and exactly one value",
            );
        }
    }
    Ok(())
}

fn check_requirement(path: &str, r: &NodeSelectorRequirement) -> Res {
    let vp = format!("{path}.values");
    match r.operator {
        NodeSelectorOperator::In | NodeSelectorOperator::NotIn if r.values.is_empty() => {
            fail(vp, "must be specified when `operator` is 'In' or 'NotIn'")
        }
        NodeSelectorOperator::Exists | NodeSelectorOperator::DoesNotExist
            if !r.values.is_empty() =>
        {
            fail(
                vp,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )
        }
        NodeSelectorOperator::Gt | NodeSelectorOperator::Lt
            if r.values.len() != 1 || r.values[0].parse::<i64>().is_err() =>
        {
            fail(
                vp,
                "must be exactly one integer when `operator` is 'Gt' or 'Lt'",
            )
        }
        _ => Ok(()),
    }
}

/// Pod affinity, anti-affinity and topology spread constraints, with
/// Kubernetes' rules; the one thing shoal refuses is a non-empty
/// `namespaceSelector` (its placer keeps no namespace labels).
pub(super) fn check_pod_placement(spec: &PodSpec, path: &str) -> Res {
    let affinity = spec.affinity.as_ref();
    for (field, a) in [
        (
            "podAffinity",
            affinity.and_then(|a| a.pod_affinity.as_ref()),
        ),
        (
            "podAntiAffinity",
            affinity.and_then(|a| a.pod_anti_affinity.as_ref()),
        ),
    ] {
        let Some(a) = a else { continue };
        let ap = format!("{path}.affinity.{field}");
        let rp = format!("{ap}.requiredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in a
            .required_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            check_pod_term(&format!("{rp}[{i}]"), t)?;
        }
        let pp = format!("{ap}.preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in a
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            if !(1..=100).contains(&t.weight) {
                return fail(
                    format!("{pp}[{i}].weight"),
                    format!("{} must be in the range 1-100", t.weight),
                );
            }
            check_pod_term(&format!("{pp}[{i}].podAffinityTerm"), &t.pod_affinity_term)?;
        }
    }
    let mut seen = Vec::new();
    for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
        let cp = format!("{path}.topologySpreadConstraints[{i}]");
        if c.max_skew < 1 {
            return fail(
                format!("{cp}.maxSkew"),
                format!("{} must be greater than zero", c.max_skew),
            );
        }
        check_topology_key(&format!("{cp}.topologyKey"), &c.topology_key)?;
        if let Some(m) = c.min_domains {
            if m < 1 {
                return fail(
                    format!("{cp}.minDomains"),
                    format!("{m} must be greater than zero"),
                );
            }
            if c.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                return fail(
                    format!("{cp}.minDomains"),
                    "can only be used when whenUnsatisfiable is DoNotSchedule",
                );
            }
        }
        if let Some(sel) = &c.label_selector {
            super::workloads::check_selector(sel, &format!("{cp}.labelSelector"))?;
        }
        check_label_keys(
            &format!("{cp}.matchLabelKeys"),
            &c.match_label_keys,
            c.label_selector.as_ref(),
        )?;
        let pair = (c.topology_key.as_str(), c.when_unsatisfiable);
        if seen.contains(&pair) {
            return fail(
                cp,
                format!(
                    "duplicate constraint on {{{}, {:?}}}: a topologyKey and whenUnsatisfiable pair may appear once",
                    c.topology_key, c.when_unsatisfiable
                ),
            );
        }
        seen.push(pair);
    }
    Ok(())
}

fn check_topology_key(path: &str, key: &str) -> Res {
    if key.is_empty() {
        return fail(
            path,
            "can not be empty: name a node label such as kubernetes.io/hostname or \
             topology.kubernetes.io/zone",
        );
    }
    check_qualified_name(path, key)
}

fn check_pod_term(path: &str, t: &PodAffinityTerm) -> Res {
    check_topology_key(&format!("{path}.topologyKey"), &t.topology_key)?;
    if let Some(sel) = &t.label_selector {
        super::workloads::check_selector(sel, &format!("{path}.labelSelector"))?;
    }
    for (i, ns) in t.namespaces.iter().enumerate() {
        check_dns_label(&format!("{path}.namespaces[{i}]"), ns)?;
    }
    if t.namespace_selector.as_ref().is_some_and(|s| !s.is_empty()) {
        return fail(
            format!("{path}.namespaceSelector"),
            "only the empty selector ({}: every namespace) is honoured by shoal's scheduler; \
             list the namespaces in `namespaces` instead",
        );
    }
    check_label_keys(
        &format!("{path}.matchLabelKeys"),
        &t.match_label_keys,
        t.label_selector.as_ref(),
    )?;
    check_label_keys(
        &format!("{path}.mismatchLabelKeys"),
        &t.mismatch_label_keys,
        t.label_selector.as_ref(),
    )?;
    for k in &t.match_label_keys {
        if t.mismatch_label_keys.contains(k) {
            return fail(
                format!("{path}.matchLabelKeys"),
                format!("{k:?} exists in both matchLabelKeys and mismatchLabelKeys"),
            );
        }
    }
    Ok(())
}

/// `matchLabelKeys`: label keys, not also in the selector's `matchLabels`
/// or expressions (Kubernetes refuses the overlap), and only with a selector.
fn check_label_keys(path: &str, keys: &[String], selector: Option<&LabelSelector>) -> Res {
    for (i, k) in keys.iter().enumerate() {
        let kp = format!("{path}[{i}]");
        check_qualified_name(&kp, k)?;
        let Some(sel) = selector else {
            return fail(kp, "must not be specified when labelSelector is not set");
        };
        if sel.match_labels.contains_key(k) || sel.match_expressions.iter().any(|r| &r.key == k) {
            return fail(
                kp,
                format!("{k:?} exists in both matchLabelKeys and labelSelector"),
            );
        }
    }
    Ok(())
}
