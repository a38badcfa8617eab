//! Binding claims to volumes made by hand (static provisioning), as
//! Kubernetes' volume controller does: a claim that names a volume
//! (`spec.volumeName`) binds to it, and a claim that names a class
//! explicitly (`""` included) and no volume binds to the smallest
//! available volume of that class that fits it. Claims of the default
//! class (no `storageClassName`) are left to the scheduler, which
//! provisions them on their first pod's node.
//!
//! Deciding is pure ([`static_bindings`]); [`bound_pair`] makes the two
//! objects one conditional write stores together, so a claim is never
//! bound to a volume that does not name it back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::resource::status::{PersistentVolumeClaimStatus, PersistentVolumeStatus};
use crate::resource::types::{
    Body, ClaimRef, PersistentVolumeBody, PersistentVolumeClaimBody, PersistentVolumeClaimSpec,
    PersistentVolumeSpec,
};
use crate::resource::{Object, ObjectKey};

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
/// claim asks for offered.
fn fits(claim: &PersistentVolumeClaimSpec, volume: &PersistentVolumeSpec) -> bool {
    let want = claim.requested_bytes().unwrap_or(0);
    volume.capacity_bytes().is_some_and(|have| have >= want)
        && claim
            .access_modes
            .iter()
            .all(|m| volume.access_modes.contains(m))
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
pub fn static_bindings(claims: &[Object], volumes: &[Object]) -> Vec<StaticBind> {
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
                    && fits(&body.spec, &b.spec)
            }),
            None => {
                let Some(class) = body.spec.storage_class_name.as_deref() else {
                    continue;
                };
                vols.iter()
                    .filter(|(n, (v, b))| {
                        !taken.contains(*n)
                            && reusable(v)
                            && b.spec.storage_class_name.as_deref().unwrap_or("") == class
                            && free_for(&b.spec, c)
                            && fits(&body.spec, &b.spec)
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
