//! Checks of a pod's scheduling fields beyond `nodeSelector`: node affinity
//! and tolerations, with Kubernetes' rules and messages.

use super::*;
use crate::resource::types::{
    NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, TaintEffect,
    TolerationOperator,
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
