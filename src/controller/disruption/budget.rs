//! PodDisruptionBudgets: which pods a budget covers, how many of them must
//! stay healthy, and whether an eviction may go now. Pure: the eviction
//! endpoint decides from it, and the leader's pass writes the budgets'
//! status from it. Counting is Kubernetes' (the disruption controller's
//! `getExpectedPodCount`), so a budget written for Kubernetes allows the
//! same evictions here.

use std::collections::{BTreeSet, HashMap};

use super::Verdict;
use crate::resource::status::{Condition, PodDisruptionBudgetStatus};
use crate::resource::types::{
    Body, DeploymentBody, IntOrString, PodDisruptionBudgetBody, PodDisruptionBudgetSpec,
    ReplicaSetBody, StatefulSetBody, UnhealthyPodEvictionPolicy,
};
use crate::resource::view::PodView;
use crate::resource::{Kind, Object};

/// For the uid of a pod's controller: the uid of the workload whose scale
/// counts (a ReplicaSet's Deployment, else the ReplicaSet or StatefulSet
/// itself) and that scale.
#[derive(Debug, Default)]
pub struct Scales(HashMap<String, (String, u32)>);

impl Scales {
    /// Reads the scalable workloads of the objects given (any namespaces).
    pub fn of(sets: &[Object], deployments: &[Object], statefulsets: &[Object]) -> Scales {
        let mut deps: HashMap<&str, u32> = HashMap::new();
        for d in deployments {
            if let (Some(uid), Ok(b)) = (d.metadata.uid.as_deref(), DeploymentBody::from_object(d))
            {
                deps.insert(uid, b.spec.replicas.unwrap_or(1));
            }
        }
        let mut m = HashMap::new();
        for rs in sets {
            let (Some(uid), Ok(b)) = (rs.metadata.uid.as_deref(), ReplicaSetBody::from_object(rs))
            else {
                continue;
            };
            let top = rs
                .metadata
                .controller_ref()
                .filter(|r| r.kind == Kind::Deployment.as_str())
                .and_then(|r| deps.get(r.uid.as_str()).map(|n| (r.uid.clone(), *n)));
            m.insert(
                uid.to_string(),
                top.unwrap_or((uid.to_string(), b.spec.replicas)),
            );
        }
        for s in statefulsets {
            if let (Some(uid), Ok(b)) = (s.metadata.uid.as_deref(), StatefulSetBody::from_object(s))
            {
                m.insert(
                    uid.to_string(),
                    (uid.to_string(), b.spec.replicas.unwrap_or(1)),
                );
            }
        }
        Scales(m)
    }
}

/// Whether `budget` covers `pod` (see [`PodDisruptionBudgetBody::covers`]).
pub fn covers(budget: &Object, body: &PodDisruptionBudgetBody, pod: &Object) -> bool {
    body.covers(budget, pod)
}

/// What a budget allows, counted from its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    /// How many covered pods there should be.
    pub expected: u32,
    /// How many must stay ready.
    pub desired_healthy: u32,
    /// How many are ready.
    pub current_healthy: u32,
    /// How many may be evicted now.
    pub allowed: u32,
}

/// Counts a budget over the pods it covers (finished pods are left out
/// by the caller or here, alike).
pub fn count(spec: &PodDisruptionBudgetSpec, covered: &[PodView], scales: &Scales) -> Count {
    let live: Vec<&PodView> = covered.iter().filter(|p| !p.terminal).collect();
    let current_healthy =
        u32::try_from(live.iter().filter(|p| p.ready).count()).unwrap_or(u32::MAX);
    let pods = u32::try_from(live.len()).unwrap_or(u32::MAX);
    // The workloads' scale, each counted once; a pod without a known
    // controller counts for itself.
    let scaled = || {
        let mut tops = BTreeSet::new();
        let mut n = 0u32;
        for p in &live {
            match p.owner.as_ref().and_then(|o| scales.0.get(o)) {
                Some((top, replicas)) => {
                    if tops.insert(top.clone()) {
                        n = n.saturating_add(*replicas);
                    }
                }
                None => n = n.saturating_add(1),
            }
        }
        n
    };
    let (expected, desired_healthy) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = scaled();
            let away = max.scaled_value(expected, true).unwrap_or(0);
            (expected, expected.saturating_sub(away))
        }
        (None, Some(IntOrString::Int(n))) => (pods, u32::try_from(*n).unwrap_or(0)),
        (None, Some(min)) => {
            let expected = scaled();
            (
                expected,
                min.scaled_value(expected, true).unwrap_or(expected),
            )
        }
        // Neither set: Kubernetes counts nothing expected, which allows no
        // eviction of a ready pod (validation warned about it).
        (None, None) => (0, 0),
    };
    let allowed = if expected == 0 {
        0
    } else {
        current_healthy.saturating_sub(desired_healthy)
    };
    Count {
        expected,
        desired_healthy,
        current_healthy,
        allowed,
    }
}

/// Decides the eviction of `pod`, which `budget` covers (with `covered`,
/// every pod it covers, `pod` included).
pub fn decide(
    pod: &PodView,
    budget: &Object,
    body: &PodDisruptionBudgetBody,
    covered: &[PodView],
    scales: &Scales,
) -> Verdict {
    let mut fence = Vec::new();
    if pod.terminal {
        return Verdict::Allow { fence };
    }
    let c = count(&body.spec, covered, scales);
    let name = &budget.metadata.name;
    if let Some(key) = budget.key() {
        fence.push((key, budget.resource_version()));
    }
    if !pod.ready {
        let policy = body.spec.unhealthy_pod_eviction_policy.unwrap_or_default();
        if policy == UnhealthyPodEvictionPolicy::AlwaysAllow
            || c.current_healthy >= c.desired_healthy
        {
            return Verdict::Allow { fence };
        }
        return Verdict::Wait(format!(
            "Cannot evict pod as it would violate the pod's disruption budget: the disruption \
             budget {name} needs {} healthy pods and has {} currently; this pod is not ready, \
             which policy IfHealthyBudget allows only while the budget is met",
            c.desired_healthy, c.current_healthy
        ));
    }
    if c.allowed == 0 {
        return Verdict::Wait(format!(
            "Cannot evict pod as it would violate the pod's disruption budget: the disruption \
             budget {name} needs {} healthy pods and has {} currently (expected pods {})",
            c.desired_healthy, c.current_healthy, c.expected
        ));
    }
    // Every other ready pod counted: an eviction of one of them racing
    // through another node changes it, and one of the two writes fails.
    fence.extend(
        covered
            .iter()
            .filter(|p| p.ready && !p.terminal && p.key != pod.key)
            .map(|p| (p.key.clone(), p.resource_version)),
    );
    Verdict::Allow { fence }
}

/// The status a budget should have, keeping what `prev` had when nothing
/// changed (the condition's transition time).
pub fn status(
    generation: Option<u64>,
    c: Count,
    prev: &PodDisruptionBudgetStatus,
    now: &str,
) -> PodDisruptionBudgetStatus {
    let (st, reason) = if c.allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old = crate::resource::status::find_condition(&prev.conditions, "DisruptionAllowed");
    let since = match old {
        Some(o) if o.status == st => o.last_transition_time.clone(),
        _ => Some(now.to_string()),
    };
    PodDisruptionBudgetStatus {
        observed_generation: generation,
        disruptions_allowed: c.allowed,
        current_healthy: c.current_healthy,
        desired_healthy: c.desired_healthy,
        expected_pods: c.expected,
        conditions: vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: st.into(),
            reason: Some(reason.into()),
            message: None,
            last_transition_time: since,
            last_update_time: None,
            extra: Default::default(),
        }],
        extra: prev.extra.clone(),
    }
}

#[cfg(test)]
mod tests;
