//! The scheduler's side of preemption: each pod's priority, the bound pods
//! a pending pod of higher priority could evict, and the one write that
//! evicts them and binds the pod, so that a stale pass (a deposed leader, a
//! victim changed meanwhile) evicts nobody. The choosing is
//! [`Placer::preempt`](super::placer::Placer::preempt)'s.

use std::collections::BTreeMap;

use serde_json::Value;

use super::placer::preempt::{Preemption, Victim};
use super::{PodNeeds, PodWrite};
use crate::resource::status::PodDisruptionBudgetStatus;
use crate::resource::types::{Body, PodDisruptionBudgetBody};
use crate::resource::{Kind, Object, ObjectKey};
use crate::store::{Op, Precondition, Store, StoreError};

/// A pod's `spec.priority` (0 when unset, as for pods created before
/// priorities or without a class) and whether it may preempt.
pub(super) fn priority_of(pod: &Object) -> (i32, bool) {
    let spec = pod.body.get("spec");
    let value = spec
        .and_then(|s| s.get("priority"))
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0);
    let never = spec
        .and_then(|s| s.get("preemptionPolicy"))
        .and_then(Value::as_str)
        == Some("Never");
    (value, !never)
}

/// The bound pods some pending pod could evict, by node, with what their
/// eviction is conditional on.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// Below this priority a bound pod is a candidate: the highest
    /// priority of a pending pod that may preempt.
    below: Option<i32>,
    by_node: BTreeMap<String, Vec<Victim>>,
    /// Each candidate's resourceVersion and uid as the pass read them.
    read: BTreeMap<ObjectKey, (u64, Option<String>)>,
    budgets: Vec<(Object, PodDisruptionBudgetBody)>,
}

impl Candidates {
    /// Candidates for pending pods up to `top` priority (`None`: none of
    /// the pending pods may preempt, and nothing is collected). Reads the
    /// disruption budgets only then.
    pub(super) fn new(store: &Store, top: Option<i32>) -> Result<Candidates, StoreError> {
        let budgets = match top {
            Some(_) => store
                .list(Kind::PodDisruptionBudget, None)?
                .0
                .into_iter()
                .filter_map(|b| Some((PodDisruptionBudgetBody::from_object(&b).ok()?, b)))
                .filter(|(_, b)| {
                    // A budget not yet counted is taken as exhausted: it
                    // only steers the choice between nodes.
                    b.status_or_default::<PodDisruptionBudgetStatus>()
                        .disruptions_allowed
                        == 0
                })
                .map(|(body, b)| (b, body))
                .collect(),
            None => Vec::new(),
        };
        Ok(Candidates {
            below: top,
            budgets,
            ..Candidates::default()
        })
    }

    /// Notes a pod bound to `node`, if a pending pod could evict it.
    pub(super) fn offer(&mut self, pod: &Object, needs: &PodNeeds, node: &str) {
        let (priority, _) = priority_of(pod);
        if self.below.is_none_or(|top| priority >= top) {
            return;
        }
        let guarded = self.budgets.iter().any(|(b, body)| body.covers(b, pod));
        self.read.insert(
            needs.key.clone(),
            (pod.resource_version(), pod.metadata.uid.clone()),
        );
        self.by_node
            .entry(node.to_string())
            .or_default()
            .push(Victim {
                needs: needs.clone(),
                priority,
                started: pod.metadata.creation_timestamp.clone().unwrap_or_default(),
                guarded,
            });
    }

    /// Whether there is anyone to evict at all.
    pub(super) fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// The victims by node, for [`Placer::preempt`](super::Placer::preempt).
    pub(super) fn by_node(&self) -> &BTreeMap<String, Vec<Victim>> {
        &self.by_node
    }

    /// Takes the chosen victims out (so no other pod of the pass evicts
    /// them again) and returns them.
    pub(super) fn take(&mut self, p: &Preemption) -> Vec<Victim> {
        let Some(list) = self.by_node.get_mut(&p.node) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(p.victims.len());
        for &i in p.victims.iter().rev() {
            if i < list.len() {
                out.push(list.remove(i));
            }
        }
        out
    }

    /// Adds to a binding the eviction of `victims`, each conditional on
    /// the version the pass read, and a `Preempted` event on each.
    pub(super) fn evict(
        &self,
        write: &mut PodWrite,
        victims: &[Victim],
        node: &str,
        now: &str,
        host: Option<&str>,
        event_name: &dyn Fn(&str) -> String,
    ) {
        let by = format!("{}/{}", write.pod.namespace, write.pod.name);
        for v in victims {
            let key = &v.needs.key;
            let Some((version, uid)) = self.read.get(key) else {
                continue;
            };
            write.ops.push(Op::Delete {
                key: key.clone(),
                precondition: Precondition::Version(*version),
            });
            write.touched.push(key.clone());
            let message = format!("Preempted by {by} on node {node}");
            let event = super::pod_event(
                key,
                uid.as_deref(),
                ("Preempted", "Normal"),
                &message,
                now,
                host,
                event_name(&key.name),
            );
            if let Some((ekey, bytes)) = event {
                write.ops.push(Op::Put {
                    key: ekey,
                    object: bytes,
                    precondition: Precondition::None,
                });
            }
        }
    }
}
