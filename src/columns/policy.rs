//! Table cells of the policy kinds: disruption budgets, RBAC, LimitRanges,
//! PriorityClasses, ResourceQuotas.

use serde_json::Value;

use super::cells::s;

/// `CREATED AT`, as kubectl shows Roles and LimitRanges.
pub(crate) fn created_at(it: &Value) -> String {
    it["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("<unknown>")
        .to_string()
}

/// A binding's `ROLE`: `ClusterRole/view`.
pub(crate) fn binding_role(it: &Value) -> String {
    format!(
        "{}/{}",
        s(it, &["roleRef", "kind"]).as_str().unwrap_or(""),
        s(it, &["roleRef", "name"]).as_str().unwrap_or("")
    )
}

/// A PodDisruptionBudget's MIN AVAILABLE, MAX UNAVAILABLE and ALLOWED DISRUPTIONS.
pub(crate) fn budget_cells(it: &Value) -> [String; 3] {
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
pub(crate) fn priority_cells(it: &Value) -> [String; 3] {
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

/// A ResourceQuota's REQUEST and LIMIT, as kubectl shows them:
/// `pods: 1/10, requests.cpu: 500m/2`, the limits.* resources in LIMIT.
pub(crate) fn quota_cells(it: &Value) -> [String; 2] {
    let hard = s(it, &["status", "hard"])
        .as_object()
        .or_else(|| s(it, &["spec", "hard"]).as_object());
    let used = s(it, &["status", "used"]);
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (k, h) in hard.into_iter().flatten() {
        let shown = |v: &Value| match v {
            Value::String(t) => t.clone(),
            Value::Null => "0".to_string(),
            other => other.to_string(),
        };
        let cell = format!("{k}: {}/{}", shown(&used[k]), shown(h));
        if k.starts_with("limits.") {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    [request.join(", "), limit.join(", ")]
}
