//! Persistent volume claims in placement: which nodes a pod's claims allow,
//! and what binding them on the chosen node writes.
//!
//! A claim of the `shoal.io/local` provisioner binds when its first pod is
//! placed (`WaitForFirstConsumer`): its volume is a directory on that
//! node, so from then on the claim's pods may go nowhere else. A claim not
//! bound yet may go to any node with room for it: each node offers
//! `status.allocatable["shoal.io/volume-storage"]` bytes, less the volumes
//! already pinned there. Deciding is pure ([`StorageView::verdict`]) and
//! the view is updated as the pass places pods ([`StorageView::bound`]), so
//! two pods of one pass never provision one claim twice or overfill a node.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::resource::status::{NodeStatus, PersistentVolumeClaimStatus, PersistentVolumeStatus};
use crate::resource::types::{
    AccessMode, Body, ClaimRef, DEFAULT_CLASS_ANNOTATION, DOCKER_PROVISIONER, HOSTNAME_LABEL,
    LOCAL_PROVISIONER, NodeSelector, NodeSelectorOperator, NodeSelectorRequirement,
    NodeSelectorTerm, PROVISIONED_BY, PersistentVolumeBody, PersistentVolumeClaimBody,
    PersistentVolumeSpec, ReclaimPolicy, StorageClassBody, VOLUME_STORAGE, VolumeNodeAffinity,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};

/// Why a node is not allowed by a pod's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeReason {
    /// A bound claim's volume lives on another node.
    Affinity,
    /// The node has no room left for an unbound claim.
    Capacity,
}

/// The nodes a pod's claims allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeNodes {
    /// Only these nodes.
    pub allowed: BTreeSet<String>,
    /// What the other nodes are told.
    pub reason: VolumeReason,
}

/// An unbound claim to bind once its pod is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// The claim.
    pub claim: ObjectKey,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a pod's claims say about its placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The pod uses no claim.
    Any,
    /// Only some nodes; the claims to bind on the chosen one.
    Only(VolumeNodes, Vec<Provision>),
    /// The pod cannot be placed now, for this reason.
    Refused(String),
    /// A claim of the pod was bound earlier in this pass: the pod waits for
    /// the next pass, which reads that binding from the store. Placing it
    /// now could outlive a binding write that fails (a conflict drops it).
    NextPass,
}

/// One claim as the pass read it.
#[derive(Debug, Clone)]
struct Claim {
    object: Object,
    body: PersistentVolumeClaimBody,
}

/// Claims, volumes, classes and per-node room, as one pass read them.
#[derive(Debug, Default)]
pub struct StorageView {
    claims: BTreeMap<ObjectKey, Claim>,
    /// Bound volumes' nodes, by volume name (`None`: reachable from any node).
    volumes: BTreeMap<String, Option<String>>,
    /// The claim each volume names (namespace, name), if any.
    volume_claims: BTreeMap<String, (String, String)>,
    classes: BTreeMap<String, StorageClassBody>,
    default_class: Option<String>,
    /// Bytes left for new local volumes, by node.
    free: BTreeMap<String, u64>,
    /// Pods (not finished) using each claim.
    users: BTreeMap<ObjectKey, BTreeSet<String>>,
    /// Claims this pass binds (not in the store yet).
    binding_now: BTreeSet<ObjectKey>,
}

/// The claim names a pod's volumes use, in order.
pub fn pod_claims(pod: &Object) -> Vec<String> {
    pod.body
        .get("spec")
        .and_then(|s| s.get("volumes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("persistentVolumeClaim")?.get("claimName")?.as_str())
        .map(str::to_string)
        .collect()
}

/// The bytes a Node offers for local volumes (0 when it says nothing).
pub fn node_volume_bytes(node: &Object) -> u64 {
    node.status_or_default::<NodeStatus>()
        .allocatable
        .get(VOLUME_STORAGE)
        .and_then(|v| match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .unwrap_or(0)
}

impl StorageView {
    /// Builds the view from what the pass listed. `nodes` are (name, bytes
    /// offered); `pods` every pod not finished, with its node if bound.
    pub fn new(
        nodes: &[(String, u64)],
        claims: Vec<Object>,
        volumes: &[Object],
        classes: &[Object],
        pods: &[(&Object, Option<&str>)],
    ) -> StorageView {
        let mut v = StorageView {
            free: nodes.iter().cloned().collect(),
            ..StorageView::default()
        };
        for o in classes {
            let Ok(b) = StorageClassBody::from_object(o) else {
                continue;
            };
            let default = o.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION);
            // Several defaults: the first by name, deterministically.
            if default.is_some_and(|d| d == "true") && v.default_class.is_none() {
                v.default_class = Some(o.metadata.name.clone());
            }
            v.classes.insert(o.metadata.name.clone(), b);
        }
        for o in volumes {
            let Ok(b) = PersistentVolumeBody::from_object(o) else {
                continue;
            };
            let node = b.spec.pinned_node().map(str::to_string);
            if let (Some(n), Some(bytes)) = (&node, b.spec.capacity_bytes())
                && let Some(f) = v.free.get_mut(n)
            {
                *f = f.saturating_sub(bytes);
            }
            if let Some(r) = &b.spec.claim_ref {
                let named = (r.namespace.clone(), r.name.clone());
                v.volume_claims.insert(o.metadata.name.clone(), named);
            }
            v.volumes.insert(o.metadata.name.clone(), node);
        }
        for o in claims {
            let (Some(key), Ok(body)) = (o.key(), PersistentVolumeClaimBody::from_object(&o))
            else {
                continue;
            };
            v.claims.insert(key, Claim { object: o, body });
        }
        for (pod, node) in pods {
            if node.is_none() {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            for c in pod_claims(pod) {
                let key = ObjectKey::new(Kind::PersistentVolumeClaim, ns, &c);
                v.users
                    .entry(key)
                    .or_default()
                    .insert(pod.metadata.name.clone());
            }
        }
        v
    }

    /// Whether a pod names a claim that exists and has no volume yet.
    pub fn has_unbound_claims(&self, pod: &Object) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        pod_claims(pod).iter().any(|c| {
            let key = ObjectKey::new(Kind::PersistentVolumeClaim, ns, c);
            self.claims
                .get(&key)
                .is_some_and(|c| c.body.spec.volume_name.as_deref().unwrap_or("").is_empty())
        })
    }

    /// What the claims of `pod` (in namespace `ns`) allow.
    pub fn verdict(&self, ns: &str, pod: &str, claims: &[String]) -> Verdict {
        if claims.is_empty() {
            return Verdict::Any;
        }
        let mut pinned: Option<BTreeSet<String>> = None;
        let mut provision = Vec::new();
        let mut bytes_needed = 0u64;
        for name in claims {
            let key = ObjectKey::new(Kind::PersistentVolumeClaim, ns, name);
            if self.binding_now.contains(&key) {
                return Verdict::NextPass;
            }
            let Some(c) = self.claims.get(&key) else {
                return Verdict::Refused(format!("persistentvolumeclaim {name:?} not found"));
            };
            if c.object.metadata.deletion_timestamp.is_some() {
                return Verdict::Refused(format!(
                    "persistentvolumeclaim {name:?} is being deleted"
                ));
            }
            if c.body
                .spec
                .access_modes
                .contains(&AccessMode::ReadWriteOncePod)
                && let Some(other) = self
                    .users
                    .get(&key)
                    .and_then(|u| u.iter().find(|p| p.as_str() != pod))
            {
                return Verdict::Refused(format!(
                    "persistentvolumeclaim {name:?} is ReadWriteOncePod and used by pod {other:?}"
                ));
            }
            let volume = c.body.spec.volume_name.as_deref().filter(|v| !v.is_empty());
            // A volume made by hand may name another claim: this claim
            // stays unbound and its pod waits, as in Kubernetes.
            if let Some((rns, rname)) = volume.and_then(|v| self.volume_claims.get(v))
                && (rns.as_str(), rname.as_str()) != (ns, name.as_str())
            {
                return Verdict::Refused(format!(
                    "persistentvolumeclaim {name:?} names volume {:?}, which is bound to claim {rns}/{rname}",
                    volume.unwrap_or_default()
                ));
            }
            match volume {
                Some(volume) => match self.volumes.get(volume) {
                    None => {
                        return Verdict::Refused(format!(
                            "persistentvolumeclaim {name:?} is bound to volume {volume:?}, which does not exist"
                        ));
                    }
                    Some(None) => {}
                    Some(Some(node)) => {
                        let only = BTreeSet::from([node.clone()]);
                        pinned = Some(match pinned {
                            None => only,
                            Some(p) => p.intersection(&only).cloned().collect(),
                        });
                    }
                },
                None => {
                    if c.body.spec.volume_selector().is_some() {
                        return Verdict::Refused(format!(
                            "persistentvolumeclaim {name:?} has a selector: it binds only to a volume made by hand whose labels match, and none is bound to it yet"
                        ));
                    }
                    let class = match c.body.spec.storage_class_name.as_deref() {
                        Some("") => {
                            return Verdict::Refused(format!(
                                "persistentvolumeclaim {name:?} asks for no storage class and is not bound to a volume"
                            ));
                        }
                        Some(n) => n.to_string(),
                        None => match &self.default_class {
                            Some(d) => d.clone(),
                            None => {
                                return Verdict::Refused(format!(
                                    "persistentvolumeclaim {name:?} names no storage class and there is no default one"
                                ));
                            }
                        },
                    };
                    match self.classes.get(&class) {
                        Some(b) if b.provisioner == LOCAL_PROVISIONER => {}
                        // The storage pass makes its volume (reachable from
                        // any node): the pod waits for that binding.
                        Some(b) if b.provisioner == DOCKER_PROVISIONER => {
                            return Verdict::Refused(format!(
                                "persistentvolumeclaim {name:?} waits for its {DOCKER_PROVISIONER} volume"
                            ));
                        }
                        Some(b) => {
                            return Verdict::Refused(format!(
                                "persistentvolumeclaim {name:?}: storageclass {class:?} has provisioner {:?}, which shoal does not run",
                                b.provisioner
                            ));
                        }
                        None => {
                            return Verdict::Refused(format!(
                                "persistentvolumeclaim {name:?}: storageclass {class:?} not found"
                            ));
                        }
                    }
                    let bytes = c.body.spec.requested_bytes().unwrap_or(0);
                    bytes_needed = bytes_needed.saturating_add(bytes);
                    provision.push(Provision { claim: key, bytes });
                }
            }
        }
        let roomy: BTreeSet<String> = self
            .free
            .iter()
            .filter(|(_, f)| **f >= bytes_needed)
            .map(|(n, _)| n.clone())
            .collect();
        match pinned {
            Some(p) => {
                let reason = VolumeReason::Affinity;
                let allowed = if provision.is_empty() {
                    p
                } else {
                    p.intersection(&roomy).cloned().collect()
                };
                Verdict::Only(VolumeNodes { allowed, reason }, provision)
            }
            None if provision.is_empty() => Verdict::Any,
            None => Verdict::Only(
                VolumeNodes {
                    allowed: roomy,
                    reason: VolumeReason::Capacity,
                },
                provision,
            ),
        }
    }

    /// Records that `pod` was placed on `node` with these claims bound there
    /// (so later pods of the pass see them bound and the room taken).
    pub fn bound(
        &mut self,
        ns: &str,
        pod: &str,
        node: &str,
        claims: &[String],
        made: &[Provision],
    ) {
        for p in made {
            if let Some(f) = self.free.get_mut(node) {
                *f = f.saturating_sub(p.bytes);
            }
            let volume = volume_name(self.claims.get(&p.claim).map(|c| &c.object));
            if let Some(c) = self.claims.get_mut(&p.claim) {
                c.body.spec.volume_name = Some(volume.clone());
            }
            self.volumes.insert(volume, Some(node.to_string()));
            self.binding_now.insert(p.claim.clone());
        }
        for c in claims {
            let key = ObjectKey::new(Kind::PersistentVolumeClaim, ns, c);
            self.users.entry(key).or_default().insert(pod.to_string());
        }
    }

    /// The writes that bind `p` to a new volume on `node`: the claim at the
    /// version the pass read, and the volume, which must not exist yet.
    pub fn binding_objects(
        &self,
        p: &Provision,
        node: &str,
        now: &str,
    ) -> Option<(Object, Object)> {
        let c = self.claims.get(&p.claim)?;
        let class = c
            .body
            .spec
            .storage_class_name
            .clone()
            .or_else(|| self.default_class.clone())?;
        let reclaim = self
            .classes
            .get(&class)
            .and_then(|b| b.reclaim_policy)
            .unwrap_or(ReclaimPolicy::Delete);
        Some(bind(&c.object, &c.body, &class, reclaim, node, now))
    }
}

/// A provisioned volume's name: `pvc-<claim uid>`, as Kubernetes names them.
pub fn volume_name(claim: Option<&Object>) -> String {
    let uid = claim
        .and_then(|c| c.metadata.uid.as_deref())
        .unwrap_or("unknown");
    format!("pvc-{uid}")
}

/// The claim bound to a new local volume on `node`, and that volume.
pub fn bind(
    claim: &Object,
    body: &PersistentVolumeClaimBody,
    class: &str,
    reclaim: ReclaimPolicy,
    node: &str,
    now: &str,
) -> (Object, Object) {
    let volume = volume_name(Some(claim));
    let storage = body
        .spec
        .resources
        .requests
        .get("storage")
        .map(|q| q.as_str().to_string())
        .unwrap_or_default();
    let mut claim_out = claim.clone();
    let mut spec = body.spec.clone();
    spec.volume_name = Some(volume.clone());
    spec.storage_class_name = Some(class.to_string());
    if let Ok(v) = serde_json::to_value(&spec) {
        claim_out.body.insert("spec".into(), v);
    }
    claim_out.set_status(&PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        access_modes: body.spec.access_modes.clone(),
        capacity: BTreeMap::from([("storage".to_string(), json!(storage))]),
        ..Default::default()
    });
    let pv_spec = PersistentVolumeSpec {
        capacity: body.spec.resources.requests.clone(),
        access_modes: body.spec.access_modes.clone(),
        persistent_volume_reclaim_policy: Some(reclaim),
        storage_class_name: Some(class.to_string()),
        volume_mode: None,
        claim_ref: Some(ClaimRef {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone().unwrap_or_default(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
        }),
        node_affinity: Some(VolumeNodeAffinity {
            required: NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: vec![NodeSelectorRequirement {
                        key: HOSTNAME_LABEL.into(),
                        operator: NodeSelectorOperator::In,
                        values: vec![node.to_string()],
                    }],
                    ..NodeSelectorTerm::default()
                }],
            },
        }),
        local: None,
        host_path: None,
        csi: None,
    };
    let mut pv = Object {
        api_version: "v1".into(),
        kind: Kind::PersistentVolume.as_str().into(),
        metadata: ObjectMeta {
            name: volume,
            creation_timestamp: Some(now.to_string()),
            annotations: BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                LOCAL_PROVISIONER.to_string(),
            )]),
            ..ObjectMeta::default()
        },
        body: Default::default(),
    };
    if let Ok(v) = serde_json::to_value(&pv_spec) {
        pv.body.insert("spec".into(), v);
    }
    pv.set_status(&PersistentVolumeStatus {
        phase: Some("Bound".into()),
        ..Default::default()
    });
    (claim_out, pv)
}

#[cfg(test)]
mod tests;
