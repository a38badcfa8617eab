//! The Job's policies as Kubernetes defines them: podFailurePolicy (what a
//! failed pod means), backoffLimitPerIndex (each index retried on its own
//! budget) and successPolicy (an Indexed Job done before all its indexes
//! are). Pure functions the planner calls.

use std::collections::{BTreeMap, BTreeSet};

use super::JobPod;
use crate::resource::status::PodPhase;
use crate::resource::types::{
    ExitCodeOperator, PodFailurePolicy, PodFailurePolicyAction, PodFailurePolicyRule,
    SuccessPolicy, parse_index_intervals,
};

/// What one failed pod means for its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counts against backoffLimit (or its index's backoffLimitPerIndex).
    Count,
    /// Replaced without counting.
    Ignore,
    /// Its index fails, not retried again.
    FailIndex,
    /// The Job fails at once; the message says which rule matched.
    FailJob(String),
}

/// Judges a failed pod by the first rule that matches it. A pod matching no
/// rule counts, except one lost with its node (DisruptionTarget), which
/// shoal never counts: it was not the workload's fault.
pub fn verdict(policy: Option<&PodFailurePolicy>, p: &JobPod) -> Verdict {
    let rules = policy.map(|x| x.rules.as_slice()).unwrap_or_default();
    for (i, r) in rules.iter().enumerate() {
        let Some(why) = matches(r, p) else { continue };
        return match r.action {
            PodFailurePolicyAction::Count => Verdict::Count,
            PodFailurePolicyAction::Ignore => Verdict::Ignore,
            PodFailurePolicyAction::FailIndex => Verdict::FailIndex,
            PodFailurePolicyAction::FailJob => {
                Verdict::FailJob(format!("{why} matching FailJob rule at index {i}"))
            }
        };
    }
    if p.disrupted {
        Verdict::Ignore
    } else {
        Verdict::Count
    }
}

/// Why the rule matches the pod, in Kubernetes' words (its FailJob
/// message up to the rule), if it does.
fn matches(r: &PodFailurePolicyRule, p: &JobPod) -> Option<String> {
    if let Some(ec) = &r.on_exit_codes {
        // As Kubernetes: a container that exited 0 did not fail, whatever
        // the operator says.
        return p
            .exit_codes
            .iter()
            .filter(|(name, _)| ec.container_name.as_ref().is_none_or(|n| n == name))
            .filter(|(_, code)| *code != 0)
            .find(|(_, code)| {
                let listed = i32::try_from(*code).is_ok_and(|c| ec.values.contains(&c));
                listed == (ec.operator == ExitCodeOperator::In)
            })
            .map(|(name, code)| {
                format!(
                    "Container {name} for pod {}/{} failed with exit code {code}",
                    p.key.namespace, p.key.name
                )
            });
    }
    r.on_pod_conditions
        .iter()
        .find(|c| {
            p.conditions
                .iter()
                .any(|(t, s)| *t == c.type_ && *s == c.status)
        })
        .map(|c| {
            format!(
                "Pod {}/{} has condition {}",
                p.key.namespace, p.key.name, c.type_
            )
        })
}

/// Per-index accounting under backoffLimitPerIndex.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexFailures {
    /// Counted failures of each index, carried from pod to pod.
    pub counts: BTreeMap<u32, u32>,
    /// When each index last failed (seconds), for its own back-off.
    pub last: BTreeMap<u32, u64>,
    /// Indexes that failed for good.
    pub failed: BTreeSet<u32>,
}

/// Counts each index's failures: a pod carries the count of its index's
/// failures before it (so deleting a failed pod does not reset the index)
/// plus its own when it counts. An index fails past `limit` failures or on
/// a FailIndex verdict.
pub fn index_failures(
    pods: &[JobPod],
    verdicts: &[(usize, Verdict)],
    limit: u32,
    completions: u32,
) -> IndexFailures {
    let mut out = IndexFailures::default();
    let counted: BTreeMap<usize, &Verdict> = verdicts.iter().map(|(i, v)| (*i, v)).collect();
    for (n, p) in pods.iter().enumerate() {
        let Some(i) = p.index.filter(|i| *i < completions) else {
            continue;
        };
        let v = counted.get(&n);
        let own = u32::from(matches!(v, Some(Verdict::Count | Verdict::FailIndex)));
        let total = p.index_failures.saturating_add(own);
        let c = out.counts.entry(i).or_insert(0);
        *c = (*c).max(total);
        if own == 1
            && let Some(at) = p.finished
        {
            let l = out.last.entry(i).or_insert(at);
            *l = (*l).max(at);
        }
        if matches!(v, Some(Verdict::FailIndex)) {
            out.failed.insert(i);
        }
    }
    out.failed.extend(
        out.counts
            .iter()
            .filter(|(_, c)| **c > limit)
            .map(|(i, _)| *i),
    );
    out
}

/// The first success rule the completed indexes meet, if one does.
pub fn success_rule_met(
    policy: &SuccessPolicy,
    done: &BTreeSet<u32>,
    completions: u32,
) -> Option<usize> {
    policy.rules.iter().position(|r| {
        match &r.succeeded_indexes {
            Some(s) => {
                // Checked at admission; a rule that no longer parses holds never.
                let Ok(iv) = parse_index_intervals(s, completions) else {
                    return false;
                };
                let size: u64 = iv.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
                let n = done
                    .iter()
                    .filter(|i| iv.iter().any(|(a, b)| (a..=b).contains(i)))
                    .count() as u64;
                match r.succeeded_count {
                    Some(c) => n >= u64::from(c),
                    None => n == size,
                }
            }
            None => r
                .succeeded_count
                .is_some_and(|c| done.len() as u64 >= u64::from(c)),
        }
    })
}

/// A failed pod, as the planner sees it.
pub fn failed(p: &JobPod) -> bool {
    p.phase == PodPhase::Failed
}
