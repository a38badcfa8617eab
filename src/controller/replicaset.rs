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

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::debug;

use super::{PodView, fence, owned_by, pods_by_owner};
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
fn new_pod(rs: &Object, body: &ReplicaSetBody, name: &str, ns: &str) -> Option<Vec<u8>> {
    let tmpl = &body.spec.template;
    let meta = tmpl.metadata.clone().unwrap_or_default();
    let spec = serde_json::to_value(&tmpl.spec).ok()?;
    let obj = Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: Some(ns.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            creation_timestamp: Some(crate::api::now_rfc3339()),
            owner_references: vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: rs.metadata.name.clone(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
            }],
            ..Default::default()
        },
        body: json!({ "spec": spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    serde_json::to_vec(&obj).ok()
}

/// One pass over every ReplicaSet.
pub async fn reconcile(store: &Store, pods: &[PodView], replicasets: &[Object]) {
    let by_owner = pods_by_owner(pods);
    let names: HashSet<(String, String)> = pods
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    for rs in replicasets {
        if let Err(e) = sync_one(store, rs, &by_owner, &names).await {
            debug!(rs = %rs.metadata.name, "replicaset sync: {e}");
        }
    }
}

async fn sync_one(
    store: &Store,
    rs: &Object,
    by_owner: &BTreeMap<String, Vec<&PodView>>,
    names: &HashSet<(String, String)>,
) -> Result<(), String> {
    let Some(key) = rs.key() else { return Ok(()) };
    let body = ReplicaSetBody::from_object(rs).map_err(|e| e.to_string())?;
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let mine: Vec<&PodView> = by_owner.get(&uid).cloned().unwrap_or_default();
    let active: Vec<&PodView> = mine.iter().copied().filter(|p| !p.terminal).collect();
    let want = body.spec.replicas as usize;
    let mut ops = Vec::new();
    // Finished or lost pods make room for replacements.
    for p in mine.iter().filter(|p| p.terminal) {
        ops.push(Op::Delete {
            key: p.key.clone(),
            precondition: Precondition::Version(p.resource_version),
        });
    }
    if active.len() < want {
        let mut ordinal = 0u32;
        let mut made = 0;
        while made < want - active.len() {
            let name = pod_name(&key.name, &uid, ordinal);
            ordinal += 1;
            if names.contains(&(key.namespace.clone(), name.clone())) {
                continue;
            }
            let Some(bytes) = new_pod(rs, &body, &name, &key.namespace) else {
                return Err("cannot build a pod from the template".into());
            };
            ops.push(Op::Put {
                key: ObjectKey::new(Kind::Pod, &key.namespace, &name),
                object: bytes,
                precondition: Precondition::MustNotExist,
            });
            made += 1;
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
    let status = json!({
        "replicas": active.len(),
        "readyReplicas": active.iter().filter(|p| p.ready).count(),
        "availableReplicas": active.iter().filter(|p| p.available(min_ready)).count(),
        "observedGeneration": rs.metadata.generation.unwrap_or(1),
    });
    if rs.body.get("status") != Some(&status) {
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
    store
        .write(Command { ops })
        .await
        .map_err(|e| e.to_string())?;
    metrics::counter!("shoal_controller_replicaset_changes_total").increment(n as u64);
    Ok(())
}

/// The ReplicaSets a Deployment owns.
pub fn owned_sets<'a>(deployment: &Object, all: &'a [Object]) -> Vec<&'a Object> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    all.iter()
        .filter(|rs| owned_by(rs) == Some(uid.as_str()))
        .collect()
}

/// `status.<field>` as a number.
pub fn status_count(o: &Object, field: &str) -> u64 {
    o.body
        .get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_u64)
        .unwrap_or(0)
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
}
