//! Storage housekeeping on the leader: the built-in default class `local`
//! exists, every claim carries the `kubernetes.io/pvc-protection`
//! finalizer, a claim marked for deletion goes once no pod uses it (its
//! finalizer leaves with it, as Kubernetes' API server deletes an object
//! whose last finalizer is removed), and a volume whose claim
//! is gone is deleted (`Delete`; its node then removes the directory) or
//! kept `Released` with its data (`Retain`). Binding to a new local volume
//! is the scheduler's (it binds a claim in the same write that places its
//! first pod); binding to a volume made by hand is this pass's ([`binding`]).
//!
//! Deciding is pure ([`plan`]); every write is conditional on the version
//! the pass read, so a deposed leader's pass changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tracing::{debug, info};

use crate::resource::status::{PersistentVolumeStatus, PodReadiness};
use crate::resource::types::{
    Body, DEFAULT_CLASS_ANNOTATION, DOCKER_PROVISIONER, LOCAL_CLASS, LOCAL_PROVISIONER,
    PVC_PROTECTION, PersistentVolumeBody, PersistentVolumeClaimBody, ReclaimPolicy,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};
use crate::scheduler::claims::pod_claims;
use crate::store::{Command, Op, Precondition, Store};

/// What one pass should write.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The built-in class is missing: create it.
    pub create_local_class: bool,
    /// Claims not being deleted that lack the protection finalizer, with
    /// their versions.
    pub protect_claims: Vec<(ObjectKey, u64)>,
    /// Claims marked for deletion that no pod uses, with their versions.
    pub delete_claims: Vec<(ObjectKey, u64)>,
    /// Claims to bind to volumes made by hand.
    pub static_binds: Vec<binding::StaticBind>,
    /// Claims of a `shoal.io/docker` class to give a new volume, with their
    /// versions.
    pub docker_provision: Vec<(ObjectKey, u64)>,
    /// Volumes bound to nothing that do not say `Available` yet, with
    /// their versions.
    pub available_volumes: Vec<(ObjectKey, u64)>,
    /// Volumes of gone claims whose policy is `Delete`, with their versions.
    pub delete_volumes: Vec<(ObjectKey, u64)>,
    /// Volumes of gone claims whose policy is `Retain` and that do not say
    /// `Released` yet, with their versions.
    pub release_volumes: Vec<(ObjectKey, u64)>,
}

/// Decides a pass from every class, claim, volume and pod.
pub fn plan(classes: &[Object], claims: &[Object], volumes: &[Object], pods: &[Object]) -> Plan {
    let mut plan = Plan {
        create_local_class: !classes.iter().any(|c| c.metadata.name == LOCAL_CLASS),
        ..Plan::default()
    };
    // Any pod not finished holds its claims, scheduled or not, as in Kubernetes.
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for p in pods {
        if p.status_or_default::<PodReadiness>().is_terminal() {
            continue;
        }
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        for c in pod_claims(p) {
            used.insert((ns.clone(), c));
        }
    }
    let mut live: BTreeMap<(String, String), Option<&str>> = BTreeMap::new();
    for c in claims {
        let Some(key) = c.key() else { continue };
        let id = (key.namespace.clone(), key.name.clone());
        if c.metadata.deletion_timestamp.is_some() {
            if !used.contains(&id) {
                plan.delete_claims.push((key, c.resource_version()));
                continue;
            }
        } else if !has_protection(c) {
            plan.protect_claims.push((key, c.resource_version()));
        }
        live.insert(id, c.metadata.uid.as_deref());
    }
    for v in volumes {
        let (Some(key), Ok(b)) = (v.key(), PersistentVolumeBody::from_object(v)) else {
            continue;
        };
        let Some(r) = &b.spec.claim_ref else {
            let phase = v.status_or_default::<PersistentVolumeStatus>().phase;
            if phase.is_none() {
                plan.available_volumes.push((key, v.resource_version()));
            }
            continue;
        };
        // A claimRef without uid is its author's pre-binding: the volume
        // waits for that claim, which may not exist yet.
        if r.uid.is_none() {
            continue;
        }
        let bound = live
            .get(&(r.namespace.clone(), r.name.clone()))
            .is_some_and(|uid| r.uid.is_none() || r.uid.as_deref() == *uid);
        if bound {
            continue;
        }
        // Kubernetes' default for a volume made by hand is Retain.
        match b
            .spec
            .persistent_volume_reclaim_policy
            .unwrap_or(ReclaimPolicy::Retain)
        {
            ReclaimPolicy::Delete => plan.delete_volumes.push((key, v.resource_version())),
            _ => {
                let phase = v.status_or_default::<PersistentVolumeStatus>().phase;
                if phase.as_deref() != Some("Released") {
                    plan.release_volumes.push((key, v.resource_version()));
                }
            }
        }
    }
    plan.static_binds =
        binding::static_bindings(claims, volumes, default_class(classes).as_deref());
    plan.docker_provision = binding::docker_claims(classes, claims);
    plan
}

/// Whether the claim carries the `kubernetes.io/pvc-protection` finalizer.
pub fn has_protection(claim: &Object) -> bool {
    claim
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|n| n == PVC_PROTECTION))
}

/// The default class's name, as the scheduler picks it (the first by name).
fn default_class(classes: &[Object]) -> Option<String> {
    classes
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .get(DEFAULT_CLASS_ANNOTATION)
                .is_some_and(|d| d == "true")
        })
        .map(|c| c.metadata.name.clone())
        .min()
}

/// The built-in default class.
pub fn local_class(now: &str) -> Object {
    let body = json!({
        "provisioner": LOCAL_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    });
    Object {
        api_version: Kind::StorageClass.api_version().into(),
        kind: Kind::StorageClass.as_str().into(),
        metadata: ObjectMeta {
            name: LOCAL_CLASS.into(),
            creation_timestamp: Some(now.into()),
            annotations: BTreeMap::from([(DEFAULT_CLASS_ANNOTATION.into(), "true".into())]),
            ..ObjectMeta::default()
        },
        body: body.as_object().cloned().unwrap_or_default(),
    }
}

/// Runs one pass: reads the replica, writes what [`plan`] decides, one
/// write per object so that one conflict holds back nothing else.
pub async fn reconcile(store: &Store, pods: &[Object]) {
    let list = |k: Kind| store.list(k, None).map(|(v, _)| v);
    let (Ok(classes), Ok(claims), Ok(volumes)) = (
        list(Kind::StorageClass),
        list(Kind::PersistentVolumeClaim),
        list(Kind::PersistentVolume),
    ) else {
        debug!("storage: cannot read the replica");
        return;
    };
    let plan = plan(&classes, &claims, &volumes, pods);
    let mut ops: Vec<(String, Op)> = Vec::new();
    if plan.create_local_class {
        let now = crate::resource::time::now_rfc3339();
        if let Ok(object) = serde_json::to_vec(&local_class(&now)) {
            let key = ObjectKey::new(Kind::StorageClass, "", LOCAL_CLASS);
            let op = Op::Put {
                key,
                object,
                precondition: Precondition::MustNotExist,
            };
            ops.push(("created the built-in class local".into(), op));
        }
    }
    for (key, version) in &plan.protect_claims {
        let Some(mut c) = claims
            .iter()
            .find(|c| c.key().as_ref() == Some(key))
            .cloned()
        else {
            continue;
        };
        c.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(PVC_PROTECTION.into());
        if let Ok(object) = serde_json::to_vec(&c) {
            let op = Op::Put {
                key: key.clone(),
                object,
                precondition: Precondition::Version(*version),
            };
            ops.push((format!("{key} protected ({PVC_PROTECTION})"), op));
        }
    }
    let find = |list: &[Object], key: &ObjectKey| {
        list.iter().find(|o| o.key().as_ref() == Some(key)).cloned()
    };
    let mut pairs: Vec<(String, Vec<Op>)> = Vec::new();
    for b in &plan.static_binds {
        let (Some(c), Some(v)) = (find(&claims, &b.claim), find(&volumes, &b.volume)) else {
            continue;
        };
        let Some((c, v)) = binding::bound_pair(&c, &v) else {
            continue;
        };
        let (Ok(cb), Ok(vb)) = (serde_json::to_vec(&c), serde_json::to_vec(&v)) else {
            continue;
        };
        pairs.push((
            format!("bound {} to {}", b.claim, b.volume),
            vec![
                Op::Put {
                    key: b.claim.clone(),
                    object: cb,
                    precondition: Precondition::Version(b.claim_version),
                },
                Op::Put {
                    key: b.volume.clone(),
                    object: vb,
                    precondition: Precondition::Version(b.volume_version),
                },
            ],
        ));
    }
    let now = crate::resource::time::now_rfc3339();
    for (key, version) in &plan.docker_provision {
        let Some(c) = find(&claims, key) else {
            continue;
        };
        let class_name = PersistentVolumeClaimBody::from_object(&c)
            .ok()
            .and_then(|b| b.spec.storage_class_name)
            .or_else(|| default_class(&classes));
        let Some(class) = class_name.and_then(|n| classes.iter().find(|k| k.metadata.name == n))
        else {
            continue;
        };
        let Some((c, v)) = binding::docker_volume(&c, class, &now) else {
            continue;
        };
        let (Some(vkey), Ok(cb), Ok(vb)) =
            (v.key(), serde_json::to_vec(&c), serde_json::to_vec(&v))
        else {
            continue;
        };
        pairs.push((
            format!("bound {key} to a new {DOCKER_PROVISIONER} volume {vkey}"),
            vec![
                Op::Put {
                    key: key.clone(),
                    object: cb,
                    precondition: Precondition::Version(*version),
                },
                Op::Put {
                    key: vkey,
                    object: vb,
                    precondition: Precondition::MustNotExist,
                },
            ],
        ));
    }
    // A volume's new phase, at the version the plan read.
    let phase = |key: &ObjectKey, version: u64, status: PersistentVolumeStatus| {
        let mut v = find(&volumes, key)?;
        v.set_status(&status);
        let object = serde_json::to_vec(&v).ok()?;
        Some(Op::Put {
            key: key.clone(),
            object,
            precondition: Precondition::Version(version),
        })
    };
    for (key, version) in &plan.available_volumes {
        let available = PersistentVolumeStatus {
            phase: Some("Available".into()),
            ..Default::default()
        };
        if let Some(op) = phase(key, *version, available) {
            ops.push((format!("{key} available"), op));
        }
    }
    for (key, version) in plan.delete_claims.iter().chain(&plan.delete_volumes) {
        let op = Op::Delete {
            key: key.clone(),
            precondition: Precondition::Version(*version),
        };
        ops.push((format!("deleted {key}"), op));
    }
    for (key, version) in &plan.release_volumes {
        let released = PersistentVolumeStatus {
            phase: Some("Released".into()),
            message: Some("its claim was deleted; the data is kept (Retain)".into()),
            ..Default::default()
        };
        if let Some(op) = phase(key, *version, released) {
            ops.push((format!("{key} released, data kept"), op));
        }
    }
    let singles = ops.into_iter().map(|(what, op)| (what, vec![op]));
    for (what, ops) in pairs.into_iter().chain(singles) {
        match store.write(Command { ops }).await {
            Ok(_) => info!("storage: {what}"),
            Err(e) => debug!("storage: write refused (next pass looks again): {e}"),
        }
    }
}

pub mod binding;

#[cfg(test)]
mod tests;
