//! Table cells of the policy kinds: disruption budgets, RBAC, LimitRanges,
//! PriorityClasses.

use serde_json::Value;

use super::cells::s;

/// `CREATED AT`, as kubectl shows Roles and LimitRanges.
pub(super) fn created_at(it: &Value) -> String {
    it["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("<unknown>")
        .to_string()
}

/// A binding's `ROLE`: `ClusterRole/view`.
pub(super) fn binding_role(it: &Value) -> String {
    format!(
        "{}/{}",
        s(it, &["roleRef", "kind"]).as_str().unwrap_or(""),
        s(it, &["roleRef", "name"]).as_str().unwrap_or("")
    )
}

/// A PodDisruptionBudget's MIN AVAILABLE, MAX UNAVAILABLE and ALLOWED DISRUPTIONS.
pub(super) fn budget_cells(it: &Value) -> [String; 3] {
    let or_na = |v: &Value| match v {
        Value::Null => "N/A".to_string(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    [
        or_na(s(it, &["spec", "minAvailable"])),
        or_na(s(it, &["spec", "maxUnavailable"])),
        s(it, &["status", "disruptionsAllowed"])
            .as_u64()
            .unwrap_or(0)
            .to_string(),
    ]
}

/// A PriorityClass's VALUE, GLOBAL-DEFAULT and PREEMPTIONPOLICY.
pub(super) fn priority_cells(it: &Value) -> [String; 3] {
    [
        s(it, &["value"]).as_i64().unwrap_or(0).to_string(),
        s(it, &["globalDefault"])
            .as_bool()
            .unwrap_or(false)
            .to_string(),
        s(it, &["preemptionPolicy"])
            .as_str()
            .unwrap_or("PreemptLowerPriority")
            .to_string(),
    ]
}
