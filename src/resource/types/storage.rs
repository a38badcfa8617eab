//! The storage kinds: PersistentVolumeClaim and PersistentVolume (v1) and
//! StorageClass (storage.k8s.io/v1), the subset of Kubernetes' fields shoal keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Body, HostPathVolume, LabelSelector, NodeSelector, Quantity};
use crate::resource::Kind;

/// The provisioner of the built-in class: a directory under a node's data dir.
pub const LOCAL_PROVISIONER: &str = "shoal.io/local";
/// The provisioner whose volumes are Docker named volumes made by a volume
/// driver of the engine (the `local` driver's `type`/`o`/`device` mount NFS).
pub const DOCKER_PROVISIONER: &str = "shoal.io/docker";
/// The class parameter naming the Docker volume driver (`local` when absent);
/// every other parameter is passed to the driver as an option.
pub const DOCKER_DRIVER_PARAMETER: &str = "driver";
/// The label on the Docker volumes shoal has the engine make: the PV's name.
pub const DOCKER_VOLUME_LABEL: &str = "shoal.io/persistent-volume";
/// The name of the built-in default class.
pub const LOCAL_CLASS: &str = "local";
/// The annotation that marks a class as the default, as Kubernetes spells it.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The allocatable entry a node offers its local volumes from (bytes).
pub const VOLUME_STORAGE: &str = "shoal.io/volume-storage";
/// The annotation on a volume shoal provisioned, as Kubernetes names it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The finalizer-like protection a claim in use gets (Kubernetes' name).
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// Body of a `PersistentVolumeClaim`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimBody {
    pub spec: PersistentVolumeClaimSpec,
}

impl Body for PersistentVolumeClaimBody {
    const KIND: Kind = Kind::PersistentVolumeClaim;
}

/// `PersistentVolumeClaim.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimSpec {
    pub access_modes: Vec<AccessMode>,
    pub resources: VolumeResourceRequirements,
    /// The class to provision from; the default class when absent, none
    /// (only pre-made volumes) when `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Only `Filesystem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<VolumeMode>,
    /// The volume this claim is bound to, written when it binds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// Only volumes whose labels match may bind; a claim with a selector
    /// is never provisioned (as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl PersistentVolumeClaimSpec {
    /// The claim's selector, if it has one that selects anything (an
    /// empty one is no selector, as Kubernetes' binder reads it).
    pub fn volume_selector(&self) -> Option<&LabelSelector> {
        self.selector.as_ref().filter(|s| !s.is_empty())
    }

    /// The requested size in bytes, once validated (`resources.requests.storage`).
    pub fn requested_bytes(&self) -> Option<u64> {
        self.resources
            .requests
            .get("storage")
            .and_then(|q| q.memory_bytes().ok())
    }
}

/// `resources` of a claim: only `storage` is meaningful.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeResourceRequirements {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

/// How a volume may be mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AccessMode {
    /// Read-write by the pods of one node at a time.
    ReadWriteOnce,
    /// Read-only by many nodes.
    ReadOnlyMany,
    /// Read-write by many nodes.
    ReadWriteMany,
    /// Read-write by a single pod.
    ReadWriteOncePod,
}

impl AccessMode {
    /// kubectl's abbreviation (`RWO`, `ROX`, `RWX`, `RWOP`).
    pub fn short(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "RWO",
            AccessMode::ReadOnlyMany => "ROX",
            AccessMode::ReadWriteMany => "RWX",
            AccessMode::ReadWriteOncePod => "RWOP",
        }
    }
}

/// Whether a volume is a filesystem or a raw block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeMode {
    /// A mounted filesystem.
    Filesystem,
    /// A raw block device; refused by validation.
    Block,
}

/// What happens to a volume when its claim is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    /// The data is deleted with the volume.
    #[default]
    Delete,
    /// The volume goes `Released` and its data is kept.
    Retain,
    /// Kubernetes' deprecated scrub-and-reuse; refused by validation.
    Recycle,
}

impl ReclaimPolicy {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimPolicy::Delete => "Delete",
            ReclaimPolicy::Retain => "Retain",
            ReclaimPolicy::Recycle => "Recycle",
        }
    }
}

/// When a class's claims are bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeBindingMode {
    /// As soon as the claim is created.
    #[default]
    Immediate,
    /// When the first pod using the claim is scheduled.
    WaitForFirstConsumer,
}

impl VolumeBindingMode {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeBindingMode::Immediate => "Immediate",
            VolumeBindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
        }
    }
}

/// Body of a `PersistentVolume` (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeBody {
    pub spec: PersistentVolumeSpec,
}

impl Body for PersistentVolumeBody {
    const KIND: Kind = Kind::PersistentVolume;
}

/// `PersistentVolume.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeSpec {
    /// Only `storage`.
    pub capacity: BTreeMap<String, Quantity>,
    pub access_modes: Vec<AccessMode>,
    /// `Retain` when absent for a volume made by hand, as Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_reclaim_policy: Option<ReclaimPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Only `Filesystem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<VolumeMode>,
    /// The claim this volume is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<ClaimRef>,
    /// The nodes that can reach this volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<VolumeNodeAffinity>,
    /// A directory on the node the affinity names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalVolumeSource>,
    /// A path on the host (single-node use, as in Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
    /// A volume of an external driver; shoal knows only `shoal.io/docker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi: Option<CsiVolumeSource>,
}

/// `PersistentVolume.spec.csi`: for driver `shoal.io/docker`, the Docker
/// volume named `volumeHandle`, made by the engine's volume driver
/// `volumeAttributes.driver` (`local` when absent) with the other
/// attributes as its options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsiVolumeSource {
    pub driver: String,
    pub volume_handle: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl CsiVolumeSource {
    /// The Docker volume driver and its options, for driver `shoal.io/docker`.
    pub fn docker_driver(&self) -> Option<(String, BTreeMap<String, String>)> {
        if self.driver != DOCKER_PROVISIONER {
            return None;
        }
        let mut options = self.volume_attributes.clone();
        let driver = options
            .remove(DOCKER_DRIVER_PARAMETER)
            .unwrap_or_else(|| "local".into());
        Some((driver, options))
    }
}

impl PersistentVolumeSpec {
    /// The volume's size in bytes, once validated (`capacity.storage`).
    pub fn capacity_bytes(&self) -> Option<u64> {
        self.capacity
            .get("storage")
            .and_then(|q| q.memory_bytes().ok())
    }

    /// The one node named by a `kubernetes.io/hostname In [node]` affinity, if so pinned.
    pub fn pinned_node(&self) -> Option<&str> {
        let terms = &self.node_affinity.as_ref()?.required.node_selector_terms;
        let [term] = terms.as_slice() else {
            return None;
        };
        term.match_expressions
            .iter()
            .find(|e| e.key == HOSTNAME_LABEL && e.values.len() == 1)
            .map(|e| e.values[0].as_str())
    }
}

/// The node label a local volume's affinity selects on.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// `PersistentVolume.spec.claimRef`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `PersistentVolume.spec.nodeAffinity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeNodeAffinity {
    pub required: NodeSelector,
}

/// `PersistentVolume.spec.local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalVolumeSource {
    /// An absolute path on the node.
    pub path: String,
}

/// Body of a `StorageClass` (cluster-scoped; no `spec`, as Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageClassBody {
    pub provisioner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// `Delete` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<ReclaimPolicy>,
    /// `Immediate` when absent (as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_binding_mode: Option<VolumeBindingMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_volume_expansion: Option<bool>,
}

impl Body for StorageClassBody {
    const KIND: Kind = Kind::StorageClass;
}
