//! Checks of the RBAC kinds, with Kubernetes' rules; each is stored with a
//! warning that shoal does not evaluate it.

use super::*;
use crate::resource::types::{
    ClusterRoleBody, PolicyRule, RBAC_GROUP, RoleBindingBody, RoleBody, Subject,
};

/// Why storing RBAC objects grants nothing by itself.
const NOT_EVALUATED: &str = "stored, not evaluated: shoal authorizes each API token by its role \
     (view, edit, admin; a ServiceAccount's by its shoal.io/role annotation), not by RBAC rules";

pub(super) fn check_role(b: &RoleBody, ck: &mut Checker) -> Res {
    check_rules(&b.rules)?;
    ck.warn("rules", NOT_EVALUATED);
    Ok(())
}

pub(super) fn check_cluster_role(b: &ClusterRoleBody, ck: &mut Checker) -> Res {
    check_rules(&b.rules)?;
    if let Some(a) = &b.aggregation_rule {
        for (i, s) in a.cluster_role_selectors.iter().enumerate() {
            super::workloads::check_selector(
                s,
                &format!("aggregationRule.clusterRoleSelectors[{i}]"),
            )?;
        }
        ck.warn(
            "aggregationRule",
            "stored, not acted on: no controller aggregates ClusterRoles' rules",
        );
    }
    ck.warn("rules", NOT_EVALUATED);
    Ok(())
}

fn check_rules(rules: &[PolicyRule]) -> Res {
    for (i, r) in rules.iter().enumerate() {
        let rp = format!("rules[{i}]");
        if r.verbs.is_empty() {
            return fail(
                format!("{rp}.verbs"),
                "required: at least one verb (get, list, watch, create, update, patch, delete, or *)",
            );
        }
        if r.resources.is_empty() && r.non_resource_urls.is_empty() {
            return fail(
                rp,
                "names no resources and no nonResourceURLs: the rule would grant nothing",
            );
        }
        if !r.non_resource_urls.is_empty() && !r.resources.is_empty() {
            return fail(
                format!("{rp}.nonResourceURLs"),
                "cannot be mixed with resources in one rule",
            );
        }
    }
    Ok(())
}

pub(super) fn check_binding(b: &RoleBindingBody, kind: Kind, ck: &mut Checker) -> Res {
    let r = &b.role_ref;
    if r.api_group != RBAC_GROUP {
        return fail(
            "roleRef.apiGroup",
            format!("{:?}: must be {RBAC_GROUP:?}", r.api_group),
        );
    }
    let kinds: &[&str] = if kind == Kind::ClusterRoleBinding {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&r.kind.as_str()) {
        return fail(
            "roleRef.kind",
            format!("{:?}: a {kind} refers to {}", r.kind, kinds.join(" or ")),
        );
    }
    if r.name.is_empty() {
        return fail("roleRef.name", "required");
    }
    for (i, s) in b.subjects.iter().enumerate() {
        check_subject(&format!("subjects[{i}]"), s, kind)?;
    }
    ck.warn("roleRef", NOT_EVALUATED);
    Ok(())
}

fn check_subject(path: &str, s: &Subject, binding: Kind) -> Res {
    if s.name.is_empty() {
        return fail(format!("{path}.name"), "required");
    }
    match s.kind.as_str() {
        "ServiceAccount" => {
            if s.api_group.as_deref().is_some_and(|g| !g.is_empty()) {
                return fail(
                    format!("{path}.apiGroup"),
                    "must be empty for a ServiceAccount subject",
                );
            }
            check_dns_subdomain(&format!("{path}.name"), &s.name)?;
            match &s.namespace {
                Some(ns) => check_dns_label(&format!("{path}.namespace"), ns),
                None if binding == Kind::ClusterRoleBinding => fail(
                    format!("{path}.namespace"),
                    "required for a ServiceAccount subject of a ClusterRoleBinding",
                ),
                None => Ok(()),
            }
        }
        "User" | "Group" => {
            if s.api_group.as_deref() != Some(RBAC_GROUP) {
                return fail(
                    format!("{path}.apiGroup"),
                    format!("must be {RBAC_GROUP:?} for a {} subject", s.kind),
                );
            }
            Ok(())
        }
        other => fail(
            format!("{path}.kind"),
            format!("{other:?}: a subject is a ServiceAccount, User or Group"),
        ),
    }
}

/// Kubernetes' rule for RBAC names (path segment names, so `system:view`
/// is one): not `.` or `..`, no `/` or `%`.
pub(super) fn is_path_segment_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%']) && s.len() <= 253
}
