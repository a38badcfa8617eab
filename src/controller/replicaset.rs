//! The ReplicaSet controller: keeps each ReplicaSet's count of live pods at
//! its `spec.replicas`, creating pods from its template and deleting the
//! extras (unscheduled first, then not ready, then the newest), and deletes
//! its pods that finished or were lost with their node so replacements
//! take their place.
//!
//! Pod names are `{replicaset}-{5 chars}` derived from the ReplicaSet's uid
//! and an ordinal, and every change is one command fenced on the
//! ReplicaSet's resourceVersion: two controllers that read the same state
//! (a deposed leader and its successor) produce the same names, so only one
//! of them can create each pod.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{PodView, fence, owned_by, pods_by_owner};
use crate::resource::status::ReplicaSetStatus;
use crate::resource::types::{Body, ReplicaSetBody};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// A pod name for the ReplicaSet: short, stable for (uid, ordinal).
fn pod_name(rs: &str, uid: &str, ordinal: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let d = Sha256::digest(format!("{uid}/{ordinal}").as_bytes());
    let suffix: String = d[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{rs}-{suffix}")
}

/// The pod a ReplicaSet's template makes.
fn new_pod(
    rs: &Object,
    body: &ReplicaSetBody,
    name: &str,
    ns: &str,
    policy: &mut crate::admission::Policy,
) -> Result<Vec<u8>, String> {
    let tmpl = &body.spec.template;
    let meta = tmpl.metadata.clone().unwrap_or_default();
    let mut pod_spec = tmpl.spec.clone();
    crate::admission::admit_new_pod(&mut pod_spec, policy)
        .map_err(|e| format!("pods {name:?} is forbidden: {e}"))?;
    let spec = serde_json::to_value(&pod_spec).map_err(|e| e.to_string())?;
    let obj = Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: Some(ns.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            creation_timestamp: Some(crate::resource::time::now_rfc3339()),
            owner_references: vec![OwnerReference::to(rs, true)],
            ..Default::default()
        },
        body: json!({ "spec": spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    serde_json::to_vec(&obj).map_err(|e| e.to_string())
}

/// Most pods one ReplicaSet creates in a pass (Kubernetes' burstReplicas).
const MAX_CREATES_PER_PASS: usize = 500;

/// One pass over every ReplicaSet; a ReplicaSet whose sync failed waits out
/// its back-off. No ReplicaSet gets more than `max_replicas` pods.
pub async fn reconcile(
    store: &Store,
    pods: &[PodView],
    replicasets: &[Object],
    max_replicas: u32,
    backoff: &mut super::Backoff,
) {
    let by_owner = pods_by_owner(pods);
    let names: HashSet<(String, String)> = pods
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    for rs in replicasets {
        let uid = rs.metadata.uid.as_deref().unwrap_or_default();
        if !backoff.ready(uid) {
            continue;
        }
        match sync_one(store, rs, &by_owner, &names, max_replicas).await {
            Ok(()) => backoff.succeeded(uid),
            Err(e) => {
                let wait = backoff.failed(uid);
                let key = rs.key().map(|k| k.to_string()).unwrap_or_default();
                e.log("replicaset", &format!("{key} (next try in {wait:?})"));
            }
        }
    }
    let live: HashSet<&str> = replicasets
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    backoff.retain(&live);
}

/// Names for `count` new pods: ordinals from 0 up, skipping names that exist
/// and names an earlier ordinal already produced (5-character suffixes
/// collide from a few thousand pods on).
fn new_pod_names(
    rs: &ObjectKey,
    uid: &str,
    existing: &HashSet<(String, String)>,
    count: usize,
) -> Vec<String> {
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(count);
    let mut ordinal = 0u32;
    while out.len() < count {
        let name = pod_name(&rs.name, uid, ordinal);
        ordinal = ordinal.wrapping_add(1);
        if existing.contains(&(rs.namespace.clone(), name.clone())) || !taken.insert(name.clone()) {
            continue;
        }
        out.push(name);
    }
    out
}

/// The sizes of successive create commands for `n` pods: 1, 2, 4, ... as
/// Kubernetes' slow start, so a template that cannot work fails on one pod,
/// not on hundreds.
fn slow_start(n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let (mut left, mut next) = (n, 1usize);
    while left > 0 {
        let k = next.min(left);
        sizes.push(k);
        left -= k;
        next = next.saturating_mul(2);
    }
    sizes
}

async fn sync_one(
    store: &Store,
    rs: &Object,
    by_owner: &BTreeMap<String, Vec<&PodView>>,
    names: &HashSet<(String, String)>,
    max_replicas: u32,
) -> Result<(), super::ControllerError> {
    let Some(key) = rs.key() else { return Ok(()) };
    let body = ReplicaSetBody::from_object(rs).map_err(|e| e.to_string())?;
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let mine: Vec<&PodView> = by_owner.get(&uid).cloned().unwrap_or_default();
    let active: Vec<&PodView> = mine.iter().copied().filter(|p| !p.terminal).collect();
    if body.spec.replicas > max_replicas {
        tracing::warn!(
            rs = %key,
            replicas = body.spec.replicas,
            max_replicas,
            "spec.replicas is over the cluster's controller.max_replicas; keeping it at the ceiling"
        );
    }
    let want = body.spec.replicas.min(max_replicas) as usize;
    let mut ops = Vec::new();
    // Finished or lost pods make room for replacements.
    for p in mine.iter().filter(|p| p.terminal) {
        ops.push(Op::Delete {
            key: p.key.clone(),
            precondition: Precondition::Version(p.resource_version),
        });
    }
    if active.len() < want {
        let count = (want - active.len()).min(MAX_CREATES_PER_PASS);
        let mut creates = Vec::with_capacity(count);
        let mut policy = crate::admission::policy(store, &key.namespace);
        // The pods admitted before one is refused (a quota full) are still
        // created; the refusal is an event and a back-off.
        let mut refused = None;
        for name in new_pod_names(&key, &uid, names, count) {
            match new_pod(rs, &body, &name, &key.namespace, &mut policy) {
                Ok(bytes) => creates.push(Op::Put {
                    key: ObjectKey::new(Kind::Pod, &key.namespace, &name),
                    object: bytes,
                    precondition: Precondition::MustNotExist,
                }),
                Err(e) => {
                    super::failed_create(store, rs, &key, &e, "replicaset-controller").await;
                    refused = Some(e);
                    break;
                }
            }
        }
        // Creating pods leaves the ReplicaSet's version alone, so every
        // batch is fenced on the version this pass read. Pods charged to a
        // quota go in one write with the charge, which is conditional on
        // the quota's version and so cannot be split.
        let quota_ops = policy.quota_ops();
        let sizes = if quota_ops.is_empty() {
            slow_start(creates.len())
        } else {
            vec![creates.len()]
        };
        let mut creates = creates.into_iter();
        let mut quota_ops = Some(quota_ops);
        for size in sizes.into_iter().filter(|s| *s > 0) {
            let mut batch = vec![fence(rs)?];
            batch.extend(creates.by_ref().take(size));
            batch.extend(quota_ops.take().unwrap_or_default());
            store
                .write(Command { ops: batch })
                .await
                .map_err(|e| format!("creating {size} pods: {e}"))?;
            ::metrics::counter!(crate::controller::metrics::REPLICASET_CHANGES_TOTAL)
                .increment(size as u64);
        }
        if let Some(e) = refused {
            return Err(e.into());
        }
    } else if active.len() > want {
        let mut doomed = active.clone();
        // Unscheduled, then not ready, then the newest go first.
        doomed.sort_by(|a, b| {
            (a.node.is_some(), a.ready, std::cmp::Reverse(&a.created)).cmp(&(
                b.node.is_some(),
                b.ready,
                std::cmp::Reverse(&b.created),
            ))
        });
        for p in doomed.into_iter().take(active.len() - want) {
            ops.push(Op::Delete {
                key: p.key.clone(),
                precondition: Precondition::Version(p.resource_version),
            });
        }
    }
    let min_ready = u64::from(body.spec.min_ready_seconds.unwrap_or(0));
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let prev: ReplicaSetStatus = rs.status_or_default();
    let status = ReplicaSetStatus {
        replicas: count(active.len()),
        ready_replicas: count(active.iter().filter(|p| p.ready).count()),
        available_replicas: count(active.iter().filter(|p| p.available(min_ready)).count()),
        observed_generation: Some(rs.metadata.generation.unwrap_or(1)),
        extra: prev.extra.clone(),
    };
    if !rs.body.contains_key("status") || prev != status {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: rs.metadata.uid.clone(),
            status: serde_json::to_vec(&status).map_err(|e| e.to_string())?,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    let n = ops.len();
    ops.insert(0, fence(rs)?);
    store.write(Command { ops }).await?;
    ::metrics::counter!(crate::controller::metrics::REPLICASET_CHANGES_TOTAL).increment(n as u64);
    Ok(())
}

/// The ReplicaSets a Deployment owns.
pub fn owned_sets<'a>(deployment: &Object, all: &'a [Object]) -> Vec<&'a Object> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    all.iter()
        .filter(|rs| owned_by(rs) == Some(uid.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_stable_and_distinct() {
        let a = pod_name("web-abc", "uid-1", 0);
        assert_eq!(a, pod_name("web-abc", "uid-1", 0));
        assert_ne!(a, pod_name("web-abc", "uid-1", 1));
        assert_ne!(a, pod_name("web-abc", "uid-2", 0));
        assert!(a.starts_with("web-abc-") && a.len() == "web-abc-".len() + 5);
    }

    /// 12,000 replicas created no pod at all: two ordinals of one pass made
    /// the same name (first at 3,234) and the all-or-nothing create failed.
    #[test]
    fn new_pod_names_never_repeat_within_a_pass_or_with_existing_pods() {
        let rs = ObjectKey::new(Kind::ReplicaSet, "default", "web-abc");
        let existing: HashSet<(String, String)> =
            [("default".to_string(), pod_name("web-abc", "uid-1", 7))].into();
        let names = new_pod_names(&rs, "uid-1", &existing, 12_000);
        assert_eq!(names.len(), 12_000);
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 12_000, "names repeat");
        assert!(!names.contains(&pod_name("web-abc", "uid-1", 7)));
        // Stable: another controller with the same view picks the same names.
        assert_eq!(names, new_pod_names(&rs, "uid-1", &existing, 12_000));
    }

    #[test]
    fn creates_go_out_in_slow_start_batches() {
        assert_eq!(slow_start(0), Vec::<usize>::new());
        assert_eq!(slow_start(1), vec![1]);
        assert_eq!(slow_start(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start(500), vec![1, 2, 4, 8, 16, 32, 64, 128, 245]);
    }
}
