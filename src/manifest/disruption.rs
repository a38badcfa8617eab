//! Checks of a PodDisruptionBudget.

use super::workloads::{check_count_or_percent, check_selector};
use super::*;
use crate::resource::types::PodDisruptionBudgetBody;

pub(super) fn check_disruption_budget(b: &PodDisruptionBudgetBody, ck: &mut Checker) -> Res {
    let s = &b.spec;
    match (&s.min_available, &s.max_unavailable) {
        (Some(_), Some(_)) => {
            return fail(
                "spec",
                "minAvailable and maxUnavailable cannot be both set: a budget is one or the other",
            );
        }
        (None, None) => {
            // Kubernetes accepts it and then refuses every eviction of a
            // ready pod; shoal does the same, and says so.
            ck.warn(
                "spec",
                "neither minAvailable nor maxUnavailable is set: as in Kubernetes, no ready pod \
                 it covers may be evicted; set one of them",
            );
        }
        _ => {}
    }
    if let Some(v) = &s.min_available {
        check_count_or_percent("spec.minAvailable", v, Some(100))?;
    }
    if let Some(v) = &s.max_unavailable {
        check_count_or_percent("spec.maxUnavailable", v, Some(100))?;
    }
    match &s.selector {
        Some(sel) => check_selector(sel, "spec.selector")?,
        None => ck.warn(
            "spec.selector",
            "absent: the budget covers no pod (policy/v1); `selector: {}` covers every pod of \
             the namespace",
        ),
    }
    Ok(())
}
