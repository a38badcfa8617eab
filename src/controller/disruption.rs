//! Evictions: whether a pod may be taken away now without breaking the
//! PodDisruptionBudget that covers it ([`budget`]) or, when none does, without
//! its Deployment dropping below what its strategy allows to be unavailable
//! (shoal's implicit budget, so a drain is safe without one). The API's
//! eviction endpoint (`POST .../pods/NAME/eviction`) asks this, so every
//! client (`shoal drain`, kubectl, a script) drains the same way; the
//! decision is pure and the endpoint makes its delete conditional on
//! everything the decision read, so two evictions racing through two nodes
//! cannot both take the last spare pod.

pub mod budget;

use std::collections::HashSet;

use tracing::{debug, warn};

use crate::resource::status::PodDisruptionBudgetStatus;
use crate::resource::types::{Body, DeploymentBody, PodDisruptionBudgetBody, StrategyType};
use crate::resource::view::PodView;
use crate::resource::{Kind, Object, ObjectKey};
use crate::store::{Command, Op, Store};

/// What the eviction endpoint does with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delete it, in one write that also checks each of these objects is
    /// still at the version the decision read.
    Allow { fence: Vec<(ObjectKey, u64)> },
    /// Not now (HTTP 429, as Kubernetes answers when a disruption budget
    /// forbids it): why, in words a user can act on.
    Wait(String),
}

/// What a pod belongs to, as far as its availability is concerned.
pub struct Owner<'a> {
    /// The Deployment that controls the pod's ReplicaSet.
    pub deployment: &'a Object,
    /// Every ReplicaSet of the namespace (those of the Deployment are picked out).
    pub replica_sets: &'a [Object],
    /// Every pod of the namespace.
    pub pods: &'a [PodView],
}

/// The most pods of a Deployment that may be unavailable at once: all of
/// them for `Recreate`, else `maxUnavailable` resolved against `replicas`
/// as the deployment controller resolves it (25% rounded down by default),
/// and at least one: a budget that rounds down to zero (25% of fewer than
/// four replicas) would block every drain, since nothing adds a pod before
/// one leaves. kubectl's drain without a disruption budget allows one too.
pub fn max_unavailable(body: &DeploymentBody, replicas: u32) -> u32 {
    let strategy = body.spec.strategy.as_ref();
    if strategy.and_then(|s| s.strategy_type) == Some(StrategyType::Recreate) {
        return replicas.max(1);
    }
    super::deployment::surge_unavailable(body, replicas)
        .1
        .max(1)
}

/// Decides an eviction of `pod`. A pod that is finished or not ready takes
/// nothing away by leaving; a pod without a Deployment has nothing to keep
/// available (whether to evict unmanaged pods at all is the caller's
/// choice, as with kubectl's `--force`).
pub fn decide(pod: &PodView, owner: Option<Owner<'_>>) -> Verdict {
    let mut fence = Vec::new();
    let Some(owner) = owner else {
        return Verdict::Allow { fence };
    };
    if pod.terminal || !pod.ready {
        return Verdict::Allow { fence };
    }
    let d = owner.deployment;
    let Ok(body) = DeploymentBody::from_object(d) else {
        // A Deployment this node cannot read has nothing it can enforce.
        return Verdict::Allow { fence };
    };
    let Some(dkey) = d.key() else {
        return Verdict::Allow { fence };
    };
    let replicas = body.spec.replicas.unwrap_or(1);
    let budget = max_unavailable(&body, replicas);
    let floor = replicas.saturating_sub(budget);
    let min_ready = u64::from(body.spec.min_ready_seconds.unwrap_or(0));
    let sets: HashSet<&str> = super::replicaset::owned_sets(d, owner.replica_sets)
        .into_iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    let available: Vec<&PodView> = owner
        .pods
        .iter()
        .filter(|p| p.owner.as_deref().is_some_and(|u| sets.contains(u)))
        .filter(|p| !p.terminal && p.available(min_ready))
        .collect();
    let count = u32::try_from(available.len()).unwrap_or(u32::MAX);
    if count <= floor {
        return Verdict::Wait(format!(
            "Cannot evict pod as it would violate the deployment's availability: deployment {}/{} has {count} available replicas and must keep {floor} (replicas {replicas} minus maxUnavailable {budget})",
            dkey.namespace, dkey.name
        ));
    }
    fence.push((dkey, d.resource_version()));
    fence.extend(
        available
            .iter()
            .filter(|p| p.key != pod.key)
            .map(|p| (p.key.clone(), p.resource_version)),
    );
    Verdict::Allow { fence }
}

/// The leader's pass over PodDisruptionBudgets: writes each one's status
/// (what it allows now) from the pods it covers, conditional on the budget
/// not having changed since it was read. Evictions do not read this status:
/// they count for themselves at the time of the eviction.
pub async fn reconcile(store: &Store, pods: &[Object]) {
    let list = |k: Kind| store.list(k, None).map(|(v, _)| v);
    let (Ok(budgets), Ok(sets), Ok(deployments), Ok(statefulsets)) = (
        list(Kind::PodDisruptionBudget),
        list(Kind::ReplicaSet),
        list(Kind::Deployment),
        list(Kind::StatefulSet),
    ) else {
        warn!("disruption budgets: cannot read the replica");
        return;
    };
    if budgets.is_empty() {
        return;
    }
    let scales = budget::Scales::of(&sets, &deployments, &statefulsets);
    let now = crate::resource::time::now_rfc3339();
    for b in &budgets {
        let (Ok(body), Some(key)) = (PodDisruptionBudgetBody::from_object(b), b.key()) else {
            continue;
        };
        let covered: Vec<PodView> = pods
            .iter()
            .filter(|p| budget::covers(b, &body, p))
            .filter_map(PodView::of)
            .collect();
        let prev: PodDisruptionBudgetStatus = b.status_or_default();
        let count = budget::count(&body.spec, &covered, &scales);
        let next = budget::status(b.metadata.generation, count, &prev, &now);
        if next == prev {
            continue;
        }
        let Ok(status) = serde_json::to_vec(&next) else {
            continue;
        };
        let ops = vec![
            Op::Check {
                key: key.clone(),
                version: b.resource_version(),
            },
            Op::SetStatus {
                key: key.clone(),
                uid: b.metadata.uid.clone(),
                status,
            },
        ];
        if let Err(e) = store.write(Command { ops }).await {
            // A conflict is the budget changing under the pass: the next
            // pass counts again.
            debug!("disruption budget {key}: status not written: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: u32, strategy: serde_json::Value) -> Object {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "resourceVersion": "7"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "strategy": strategy,
            }
        }))
        .unwrap()
    }

    fn replica_set(uid: &str, owner: &str) -> Object {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{uid}"), "namespace": "default", "uid": uid,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web", "uid": owner, "controller": true}]},
        }))
        .unwrap()
    }

    fn pod(name: &str, rs: &str, ready: bool, phase: &str) -> PodView {
        let o: Object = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": name, "resourceVersion": "3",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "web-x", "uid": rs, "controller": true}]},
            "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap();
        PodView::of(&o).unwrap()
    }

    fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
        json!({"type": "RollingUpdate",
               "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    #[test]
    fn budget_table() {
        let cases = [
            // (replicas, strategy, allowed unavailable)
            (4, rolling(json!(1), json!(0)), 1),
            (4, rolling(json!(1), json!(2)), 2),
            (10, rolling(json!("25%"), json!("25%")), 2),
            (3, json!(null), 1),
            (1, json!(null), 1),
            (10, rolling(json!("25%"), json!("33%")), 3),
            (3, rolling(json!(0), json!(0)), 1),
            (3, json!({"type": "Recreate"}), 3),
            (5, json!({"type": "Recreate"}), 5),
            (0, json!({"type": "Recreate"}), 1),
        ];
        for (replicas, strategy, want) in cases {
            let d = deployment(replicas, strategy.clone());
            let body = DeploymentBody::from_object(&d).unwrap();
            assert_eq!(max_unavailable(&body, replicas), want, "{strategy}");
        }
    }

    #[test]
    fn evicts_while_above_the_floor_and_fences_what_it_counted() {
        let d = deployment(3, rolling(json!(1), json!(1)));
        let sets = [replica_set("rs1", "d1"), replica_set("other", "d9")];
        let pods = [
            pod("a", "rs1", true, "Running"),
            pod("b", "rs1", true, "Running"),
            pod("c", "rs1", true, "Running"),
            // Another deployment's ready pod counts for nothing here.
            pod("z", "other", true, "Running"),
        ];
        let owner = || Owner {
            deployment: &d,
            replica_sets: &sets,
            pods: &pods,
        };
        match decide(&pods[0], Some(owner())) {
            Verdict::Allow { fence } => {
                let names: Vec<&str> = fence.iter().map(|(k, _)| k.name.as_str()).collect();
                assert_eq!(names, ["web", "b", "c"]);
                assert_eq!(fence[0].1, 7);
            }
            v => panic!("{v:?}"),
        }
        // Two left of three with one allowed away: the floor is reached.
        let fewer = [pods[1].clone(), pods[2].clone()];
        let v = decide(
            &fewer[0],
            Some(Owner {
                deployment: &d,
                replica_sets: &sets,
                pods: &fewer,
            }),
        );
        match v {
            Verdict::Wait(why) => assert!(
                why.contains("deployment default/web has 2 available replicas and must keep 2"),
                "{why}"
            ),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn pods_that_take_nothing_away_always_go() {
        let d = deployment(1, rolling(json!(0), json!(0)));
        let sets = [replica_set("rs1", "d1")];
        let pods = [
            pod("a", "rs1", false, "Running"),
            pod("b", "rs1", true, "Succeeded"),
        ];
        for p in &pods {
            let v = decide(
                p,
                Some(Owner {
                    deployment: &d,
                    replica_sets: &sets,
                    pods: &pods,
                }),
            );
            assert_eq!(v, Verdict::Allow { fence: vec![] }, "{}", p.name);
        }
        assert_eq!(
            decide(&pods[0], None),
            Verdict::Allow { fence: vec![] },
            "unmanaged"
        );
    }

    #[test]
    fn the_last_ready_pod_of_a_single_replica_waits_for_its_surge() {
        // One replica, maxSurge 1, maxUnavailable 0: the budget is one
        // anyway, so a drain is not blocked forever.
        let d = deployment(1, rolling(json!(1), json!(0)));
        let sets = [replica_set("rs1", "d1")];
        let pods = [pod("a", "rs1", true, "Running")];
        let v = decide(
            &pods[0],
            Some(Owner {
                deployment: &d,
                replica_sets: &sets,
                pods: &pods,
            }),
        );
        assert!(matches!(v, Verdict::Allow { .. }), "{v:?}");
    }
}
