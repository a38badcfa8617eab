//! Binding claims to volumes made by hand (static provisioning), as
//! Kubernetes' volume controller does: a claim that names a volume
//! (`spec.volumeName`) binds to it, and a claim that names a class
//! explicitly (`""` included) and no volume binds to the smallest
//! available volume of that class that fits it. Claims of the default
//! class (no `storageClassName`) are left to the scheduler, which
//! provisions them on their first pod's node.
//!
//! Claims of a `shoal.io/docker` class get a new volume at once
//! ([`docker_claims`], [`docker_volume`]): a Docker named volume the
//! engine's volume driver makes with the class's parameters, reachable from
//! whichever node runs the pod as far as the driver's storage is (NFS is;
//! the `local` driver's tmpfs or bind is per engine).
//!
//! Deciding is pure ([`static_bindings`]); [`bound_pair`] makes the two
//! objects one conditional write stores together, so a claim is never
//! bound to a volume that does not name it back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::resource::status::{PersistentVolumeClaimStatus, PersistentVolumeStatus};
use crate::resource::types::{
    Body, ClaimRef, CsiVolumeSource, DOCKER_PROVISIONER, PROVISIONED_BY, PersistentVolumeBody,
    PersistentVolumeClaimBody, PersistentVolumeClaimSpec, PersistentVolumeSpec, ReclaimPolicy,
    StorageClassBody,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};

/// One claim to bind to one volume, with the versions the pass read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticBind {
    /// The claim.
    pub claim: ObjectKey,
    /// The claim's version.
    pub claim_version: u64,
    /// The volume.
    pub volume: ObjectKey,
    /// The volume's version.
    pub volume_version: u64,
}

/// Whether the volume can serve the claim: big enough, every mode the
/// claim asks for offered, and its labels matched by the claim's selector.
fn fits(claim: &PersistentVolumeClaimSpec, volume: &Object, spec: &PersistentVolumeSpec) -> bool {
    let want = claim.requested_bytes().unwrap_or(0);
    spec.capacity_bytes().is_some_and(|have| have >= want)
        && claim
            .access_modes
            .iter()
            .all(|m| spec.access_modes.contains(m))
        && claim
            .volume_selector()
            .is_none_or(|s| s.matches(&volume.metadata.labels))
}

/// Whether a volume's `claimRef` leaves it to this claim: none, or one
/// naming it (a volume pre-bound by its author names the claim, no uid).
fn free_for(volume: &PersistentVolumeSpec, claim: &Object) -> bool {
    match &volume.claim_ref {
        None => true,
        Some(r) => {
            Some(r.namespace.as_str()) == claim.metadata.namespace.as_deref()
                && r.name == claim.metadata.name
                && r.uid
                    .as_deref()
                    .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
        }
    }
}

/// A volume that failed or was released is not bound again (Kubernetes:
/// its author decides what becomes of the data first).
fn reusable(volume: &Object) -> bool {
    let phase = volume.status_or_default::<PersistentVolumeStatus>().phase;
    !matches!(phase.as_deref(), Some("Released" | "Failed"))
}

/// The bindings a pass should write, in claim order; no volume twice.
/// `default_class` is the class a claim naming none belongs to.
pub fn static_bindings(
    claims: &[Object],
    volumes: &[Object],
    default_class: Option<&str>,
) -> Vec<StaticBind> {
    let mut vols: BTreeMap<&str, (&Object, PersistentVolumeBody)> = BTreeMap::new();
    for v in volumes {
        if let Ok(b) = PersistentVolumeBody::from_object(v) {
            vols.insert(v.metadata.name.as_str(), (v, b));
        }
    }
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for c in claims {
        let (Some(key), Ok(body)) = (c.key(), PersistentVolumeClaimBody::from_object(c)) else {
            continue;
        };
        let phase = c.status_or_default::<PersistentVolumeClaimStatus>().phase;
        if c.metadata.deletion_timestamp.is_some() || phase.as_deref() == Some("Bound") {
            continue;
        }
        let chosen = match body.spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
            Some(name) => vols.get_key_value(name).filter(|(n, (v, b))| {
                !taken.contains(*n)
                    && reusable(v)
                    && free_for(&b.spec, c)
                    && fits(&body.spec, v, &b.spec)
            }),
            None => {
                // A claim of the default class is provisioned by the
                // scheduler, unless it has a selector: then, as in
                // Kubernetes, only a volume made by hand may serve it.
                let class = match body.spec.storage_class_name.as_deref() {
                    Some(class) => class,
                    None if body.spec.volume_selector().is_some() => {
                        let Some(class) = default_class else { continue };
                        class
                    }
                    None => continue,
                };
                vols.iter()
                    .filter(|(n, (v, b))| {
                        !taken.contains(*n)
                            && reusable(v)
                            && b.spec.storage_class_name.as_deref().unwrap_or("") == class
                            && free_for(&b.spec, c)
                            && fits(&body.spec, v, &b.spec)
                    })
                    // The smallest that fits, then by name: deterministic.
                    .min_by_key(|(n, (_, b))| (b.spec.capacity_bytes().unwrap_or(u64::MAX), **n))
            }
        };
        let Some((name, (v, _))) = chosen else {
            continue;
        };
        let Some(volume) = v.key() else { continue };
        taken.insert(*name);
        out.push(StaticBind {
            claim: key,
            claim_version: c.resource_version(),
            volume,
            volume_version: v.resource_version(),
        });
    }
    out
}

/// The claim and the volume as a binding writes them: the claim names the
/// volume and says `Bound` with the volume's capacity and modes; the
/// volume's `claimRef` names the claim with its uid and says `Bound`.
pub fn bound_pair(claim: &Object, volume: &Object) -> Option<(Object, Object)> {
    let cb = PersistentVolumeClaimBody::from_object(claim).ok()?;
    let vb = PersistentVolumeBody::from_object(volume).ok()?;
    let mut c = claim.clone();
    let mut spec = cb.spec.clone();
    spec.volume_name = Some(volume.metadata.name.clone());
    c.body
        .insert("spec".into(), serde_json::to_value(&spec).ok()?);
    c.set_status(&PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        access_modes: vb.spec.access_modes.clone(),
        capacity: vb
            .spec
            .capacity
            .iter()
            .map(|(k, q)| (k.clone(), json!(q.as_str())))
            .collect(),
        ..Default::default()
    });
    let mut v = volume.clone();
    let mut vspec = vb.spec.clone();
    vspec.claim_ref = Some(ClaimRef {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone().unwrap_or_default(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
    });
    v.body
        .insert("spec".into(), serde_json::to_value(&vspec).ok()?);
    v.set_status(&PersistentVolumeStatus {
        phase: Some("Bound".into()),
        ..Default::default()
    });
    Some((c, v))
}

/// Claims (not bound, not being deleted) of a `shoal.io/docker` class,
/// named or the default, with their versions: the pass makes their volumes.
pub fn docker_claims(classes: &[Object], claims: &[Object]) -> Vec<(ObjectKey, u64)> {
    let docker: BTreeSet<&str> = classes
        .iter()
        .filter(|c| {
            StorageClassBody::from_object(c).is_ok_and(|b| b.provisioner == DOCKER_PROVISIONER)
        })
        .map(|c| c.metadata.name.as_str())
        .collect();
    let default_class = super::default_class(classes);
    let mut out = Vec::new();
    for c in claims {
        let Ok(b) = PersistentVolumeClaimBody::from_object(c) else {
            continue;
        };
        let unbound = b.spec.volume_name.as_deref().is_none_or(str::is_empty);
        let class = b
            .spec
            .storage_class_name
            .as_deref()
            .or(default_class.as_deref());
        if c.metadata.deletion_timestamp.is_none()
            && unbound
            && b.spec.volume_selector().is_none()
            && class.is_some_and(|k| docker.contains(k))
            && let Some(key) = c.key()
        {
            out.push((key, c.resource_version()));
        }
    }
    out
}

/// The claim bound to a new `shoal.io/docker` volume of `class`, and that
/// volume: named `pvc-<claim uid>` (so is the Docker volume), no node
/// affinity, the class's parameters as the driver and its options.
pub fn docker_volume(claim: &Object, class: &Object, now: &str) -> Option<(Object, Object)> {
    let cb = PersistentVolumeClaimBody::from_object(claim).ok()?;
    let sb = StorageClassBody::from_object(class).ok()?;
    let name = format!("pvc-{}", claim.metadata.uid.as_deref()?);
    let spec = PersistentVolumeSpec {
        capacity: cb.spec.resources.requests.clone(),
        access_modes: cb.spec.access_modes.clone(),
        persistent_volume_reclaim_policy: Some(sb.reclaim_policy.unwrap_or(ReclaimPolicy::Delete)),
        storage_class_name: Some(class.metadata.name.clone()),
        csi: Some(CsiVolumeSource {
            driver: DOCKER_PROVISIONER.into(),
            volume_handle: name.clone(),
            volume_attributes: sb.parameters.clone(),
            read_only: None,
        }),
        ..PersistentVolumeSpec::default()
    };
    let volume = Object {
        api_version: "v1".into(),
        kind: Kind::PersistentVolume.as_str().into(),
        metadata: ObjectMeta {
            name,
            creation_timestamp: Some(now.into()),
            annotations: BTreeMap::from([(PROVISIONED_BY.into(), DOCKER_PROVISIONER.into())]),
            ..ObjectMeta::default()
        },
        body: json!({ "spec": spec }).as_object().cloned()?,
    };
    let mut claim = claim.clone();
    let mut spec = cb.spec.clone();
    spec.storage_class_name = Some(class.metadata.name.clone());
    claim
        .body
        .insert("spec".into(), serde_json::to_value(&spec).ok()?);
    bound_pair(&claim, &volume)
}
