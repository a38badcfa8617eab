//! The object model: every stored thing is an [`Object`] in Kubernetes' shape
//! (`apiVersion`, `kind`, `metadata`, and a kind-specific body), keyed by
//! ([`Kind`], namespace, name). Typed specs for each kind live in submodules
//! and are what validation and the controllers read.

pub mod downward;
pub mod extended;
pub mod names;
pub mod schedule;
pub mod selector;
pub mod status;
pub mod time;
pub mod token;
pub mod types;
pub mod usage;
pub mod view;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The namespace used when a namespaced object names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The namespace shoal keeps for itself; its uid is the cluster's id.
pub const SYSTEM_NAMESPACE: &str = "shoal-system";
/// Namespaces every cluster has from its first write and that cannot be deleted.
pub const BUILTIN_NAMESPACES: [&str; 2] = [DEFAULT_NAMESPACE, SYSTEM_NAMESPACE];

/// Every kind shoal stores, with its API group and whether it is namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    Pod,
    Deployment,
    Service,
    ConfigMap,
    Secret,
    Job,
    /// A host running a shoal agent; written by that agent.
    Node,
    /// Something that happened to an object (started, killed, probe failed, ...).
    Event,
    /// A set of identical pods: one revision of a Deployment's (written by
    /// its controller), or applied by a user.
    ReplicaSet,
    /// An API credential with a role; written only through `/v1/tokens`.
    Token,
    /// A Job run on a schedule.
    CronJob,
    /// One pod per eligible node.
    DaemonSet,
    /// One numbered pod template of a DaemonSet, written by its controller.
    ControllerRevision,
    /// A request for storage by a pod's owner.
    PersistentVolumeClaim,
    /// A piece of storage, provisioned for a claim or made by hand (cluster-scoped).
    PersistentVolume,
    /// How volumes of a kind are provisioned (cluster-scoped, storage.k8s.io/v1).
    /// The variants' positions are in stored keys: new kinds go after this.
    StorageClass,
    /// Numbered pods with stable names and claims of their own.
    StatefulSet,
    /// An identity for pods: its controller mints it an API token.
    ServiceAccount,
    /// How many of a set of pods evictions must leave healthy (policy/v1).
    PodDisruptionBudget,
    /// RBAC rules in a namespace (stored, not evaluated).
    Role,
    /// RBAC rules for the cluster (cluster-scoped; stored, not evaluated).
    ClusterRole,
    /// Grants a Role or ClusterRole in a namespace (stored, not evaluated).
    RoleBinding,
    /// Grants a ClusterRole everywhere (cluster-scoped; stored, not evaluated).
    ClusterRoleBinding,
    /// Defaults and bounds for new pods' resources in a namespace.
    LimitRange,
    /// Scales a Deployment or StatefulSet on its pods' resource usage.
    HorizontalPodAutoscaler,
    /// HTTP routes by host and path to Services, served by every node.
    Ingress,
    /// Which controller serves an Ingress (cluster-scoped); `shoal` is built in.
    IngressClass,
    /// A named scheduling priority for pods (cluster-scoped, scheduling.k8s.io/v1).
    PriorityClass,
    /// Caps on what a namespace's pods may request, charged at each creation.
    ResourceQuota,
    /// A user-defined kind (apiextensions.k8s.io/v1, cluster-scoped).
    CustomResourceDefinition,
    /// An object of a user-defined kind. Not in [`Kind::ALL`] (the built-in
    /// table): its key folds `PLURAL.GROUP/` into the name, see `crate::crd`.
    CustomObject,
}

impl Kind {
    /// All kinds, in the order `apply` stores them (namespaces first, pods last).
    pub const ALL: [Kind; 31] = [
        Kind::Namespace,
        Kind::CustomResourceDefinition,
        Kind::PriorityClass,
        Kind::ServiceAccount,
        Kind::ClusterRole,
        Kind::Role,
        Kind::ClusterRoleBinding,
        Kind::RoleBinding,
        Kind::LimitRange,
        Kind::ResourceQuota,
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
        Kind::IngressClass,
        Kind::Ingress,
        Kind::Deployment,
        Kind::Job,
        Kind::CronJob,
        Kind::DaemonSet,
        Kind::StatefulSet,
        Kind::PodDisruptionBudget,
        Kind::HorizontalPodAutoscaler,
        Kind::Pod,
        Kind::Node,
        Kind::Event,
        Kind::ReplicaSet,
        Kind::Token,
        Kind::ControllerRevision,
    ];

    /// Whether users write objects of this kind: Events are written by
    /// shoal itself, Tokens only through `/v1/tokens`; of a Node, users
    /// change only `spec` (cordon). A ReplicaSet is the user's unless a
    /// Deployment controls it (the API checks that per object);
    /// ControllerRevisions are written by the DaemonSet and StatefulSet
    /// controllers.
    pub fn user_writable(self) -> bool {
        !matches!(self, Kind::Event | Kind::Token | Kind::ControllerRevision)
    }

    /// The name as it appears in a manifest's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Node => "Node",
            Kind::Event => "Event",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Token => "Token",
            Kind::DaemonSet => "DaemonSet",
            Kind::ControllerRevision => "ControllerRevision",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::StorageClass => "StorageClass",
            Kind::StatefulSet => "StatefulSet",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::Role => "Role",
            Kind::ClusterRole => "ClusterRole",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
            Kind::LimitRange => "LimitRange",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::PriorityClass => "PriorityClass",
            Kind::ResourceQuota => "ResourceQuota",
            Kind::CustomResourceDefinition => "CustomResourceDefinition",
            Kind::CustomObject => "CustomObject",
        }
    }

    /// The lower-case plural used in URLs (`/v1/namespaces/default/pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::Service => "services",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Node => "nodes",
            Kind::Event => "events",
            Kind::ReplicaSet => "replicasets",
            Kind::Token => "tokens",
            Kind::DaemonSet => "daemonsets",
            Kind::ControllerRevision => "controllerrevisions",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::PersistentVolume => "persistentvolumes",
            Kind::StorageClass => "storageclasses",
            Kind::StatefulSet => "statefulsets",
            Kind::ServiceAccount => "serviceaccounts",
            Kind::PodDisruptionBudget => "poddisruptionbudgets",
            Kind::Role => "roles",
            Kind::ClusterRole => "clusterroles",
            Kind::RoleBinding => "rolebindings",
            Kind::ClusterRoleBinding => "clusterrolebindings",
            Kind::LimitRange => "limitranges",
            Kind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::PriorityClass => "priorityclasses",
            Kind::ResourceQuota => "resourcequotas",
            Kind::CustomResourceDefinition => "customresourcedefinitions",
            Kind::CustomObject => "customobjects",
        }
    }

    /// The `apiVersion` Kubernetes uses for this kind, the only one accepted.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace
            | Kind::Pod
            | Kind::Service
            | Kind::ConfigMap
            | Kind::Secret
            | Kind::Node
            | Kind::Event
            | Kind::PersistentVolumeClaim
            | Kind::PersistentVolume
            | Kind::ServiceAccount
            | Kind::LimitRange
            | Kind::ResourceQuota => "v1",
            Kind::StorageClass => "storage.k8s.io/v1",
            Kind::PriorityClass => "scheduling.k8s.io/v1",
            Kind::Ingress | Kind::IngressClass => "networking.k8s.io/v1",
            Kind::Deployment
            | Kind::ReplicaSet
            | Kind::DaemonSet
            | Kind::ControllerRevision
            | Kind::StatefulSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Token => "shoal.io/v1",
            Kind::CustomResourceDefinition => "apiextensions.k8s.io/v1",
            // Each custom object carries its own; this is only a placeholder
            // for messages, never served (CustomObject is not in ALL).
            Kind::CustomObject => "shoal.io/v1",
            Kind::PodDisruptionBudget => "policy/v1",
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
                "rbac.authorization.k8s.io/v1"
            }
            // autoscaling/v1 is accepted too and converted (manifest).
            Kind::HorizontalPodAutoscaler => "autoscaling/v2",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Namespace
                | Kind::Node
                | Kind::Token
                | Kind::PersistentVolume
                | Kind::StorageClass
                | Kind::ClusterRole
                | Kind::ClusterRoleBinding
                | Kind::IngressClass
                | Kind::PriorityClass
                | Kind::CustomResourceDefinition
        )
    }

    /// Parses a kind as a user types it: `Pod`, `pod`, `pods`, `po`, `deploy`, ...
    pub fn from_user(s: &str) -> Option<Kind> {
        let l = s.to_ascii_lowercase();
        let k = match l.as_str() {
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            "pod" | "pods" | "po" => Kind::Pod,
            "deployment" | "deployments" | "deploy" => Kind::Deployment,
            "service" | "services" | "svc" => Kind::Service,
            "configmap" | "configmaps" | "cm" => Kind::ConfigMap,
            "secret" | "secrets" => Kind::Secret,
            "job" | "jobs" => Kind::Job,
            "cronjob" | "cronjobs" | "cj" => Kind::CronJob,
            "node" | "nodes" | "no" => Kind::Node,
            "event" | "events" | "ev" => Kind::Event,
            "replicaset" | "replicasets" | "rs" => Kind::ReplicaSet,
            "token" | "tokens" => Kind::Token,
            "daemonset" | "daemonsets" | "ds" => Kind::DaemonSet,
            "controllerrevision" | "controllerrevisions" => Kind::ControllerRevision,
            "persistentvolumeclaim" | "persistentvolumeclaims" | "pvc" => {
                Kind::PersistentVolumeClaim
            }
            "persistentvolume" | "persistentvolumes" | "pv" => Kind::PersistentVolume,
            "storageclass" | "storageclasses" | "sc" => Kind::StorageClass,
            "statefulset" | "statefulsets" | "sts" => Kind::StatefulSet,
            "serviceaccount" | "serviceaccounts" | "sa" => Kind::ServiceAccount,
            "poddisruptionbudget" | "poddisruptionbudgets" | "pdb" => Kind::PodDisruptionBudget,
            "role" | "roles" => Kind::Role,
            "clusterrole" | "clusterroles" => Kind::ClusterRole,
            "rolebinding" | "rolebindings" => Kind::RoleBinding,
            "clusterrolebinding" | "clusterrolebindings" => Kind::ClusterRoleBinding,
            "limitrange" | "limitranges" | "limits" => Kind::LimitRange,
            "horizontalpodautoscaler" | "horizontalpodautoscalers" | "hpa" => {
                Kind::HorizontalPodAutoscaler
            }
            "ingress" | "ingresses" | "ing" => Kind::Ingress,
            "ingressclass" | "ingressclasses" => Kind::IngressClass,
            "priorityclass" | "priorityclasses" | "pc" => Kind::PriorityClass,
            "resourcequota" | "resourcequotas" | "quota" => Kind::ResourceQuota,
            "customresourcedefinition" | "customresourcedefinitions" | "crd" | "crds" => {
                Kind::CustomResourceDefinition
            }
            _ => return None,
        };
        Some(k)
    }

    /// Parses the exact manifest spelling (`Deployment`), nothing looser.
    pub fn from_manifest(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The abbreviations `from_user` takes for this kind, as Kubernetes'
    /// discovery lists them (`po`, `deploy`, ...).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Pod => &["po"],
            Kind::Deployment => &["deploy"],
            Kind::Service => &["svc"],
            Kind::ConfigMap => &["cm"],
            Kind::CronJob => &["cj"],
            Kind::Node => &["no"],
            Kind::Event => &["ev"],
            Kind::ReplicaSet => &["rs"],
            Kind::DaemonSet => &["ds"],
            Kind::PersistentVolumeClaim => &["pvc"],
            Kind::PersistentVolume => &["pv"],
            Kind::StorageClass => &["sc"],
            Kind::StatefulSet => &["sts"],
            Kind::ServiceAccount => &["sa"],
            Kind::PodDisruptionBudget => &["pdb"],
            Kind::LimitRange => &["limits"],
            Kind::HorizontalPodAutoscaler => &["hpa"],
            Kind::Ingress => &["ing"],
            Kind::PriorityClass => &["pc"],
            Kind::ResourceQuota => &["quota"],
            Kind::CustomResourceDefinition => &["crd", "crds"],
            _ => &[],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an object lives: its kind, namespace ("" for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// Builds a key, dropping the namespace for cluster-scoped kinds.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        let namespace = if kind.namespaced() {
            namespace.to_string()
        } else {
            String::new()
        };
        ObjectKey {
            kind,
            namespace,
            name: name.to_string(),
        }
    }

    /// The byte key in the store: `Kind/namespace/name`, so a prefix scan lists a kind.
    pub fn storage_key(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.kind.as_str(), self.namespace, self.name).into_bytes()
    }

    /// The prefix shared by every object of a kind (and namespace, when given).
    pub fn storage_prefix(kind: Kind, namespace: Option<&str>) -> Vec<u8> {
        match namespace {
            Some(ns) if kind.namespaced() => format!("{}/{}/", kind.as_str(), ns).into_bytes(),
            _ => format!("{}/", kind.as_str()).into_bytes(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Kubernetes' `metadata`, the subset shoal keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    /// The prefix a name was generated from, when the manifest gave no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The Raft index of the write that last changed this object, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Set when a deletion has begun that takes time (a namespace emptying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The objects this one belongs to (a pod to its ReplicaSet, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// What must let go before the object may go (only the system sets
    /// them: `kubernetes.io/pvc-protection` on claims). A write without the
    /// field keeps the stored list and an empty list clears it, so a user's
    /// re-apply never drops one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
}

impl ObjectMeta {
    /// The owner reference marked as the controller, if any.
    pub fn controller_ref(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|r| r.controller == Some(true))
    }
}

/// A link from an object to the object that manages it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Kubernetes' foreground-deletion hint; kept, not acted on (in a
    /// foreground delete every dependent holds its owner back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerReference {
    /// A reference to `owner` (its apiVersion, kind, name and uid), marked
    /// as its controller or not.
    pub fn to(owner: &Object, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.metadata.name.clone(),
            uid: owner.metadata.uid.clone().unwrap_or_default(),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }
}

/// One stored object: the envelope plus a kind-specific body (`spec`, `status`,
/// `data`, ...) kept as JSON so the store stays independent of kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

impl Object {
    /// The object's kind, if it is one shoal knows.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_manifest(&self.kind)
    }

    /// The object's key; `None` for an unknown kind.
    pub fn key(&self) -> Option<ObjectKey> {
        let kind = self.kind()?;
        let ns = self
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        Some(ObjectKey::new(kind, ns, &self.metadata.name))
    }

    /// The resourceVersion as a number (0 when absent or malformed).
    pub fn resource_version(&self) -> u64 {
        self.metadata
            .resource_version
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Whether two objects say the same thing, ignoring what the store assigns
    /// (uid, resourceVersion, generation, creationTimestamp) and status.
    pub fn same_desired_state(&self, other: &Object) -> bool {
        let strip = |o: &Object| {
            let mut body = o.body.clone();
            body.remove("status");
            (
                o.api_version.clone(),
                o.metadata.labels.clone(),
                o.metadata.annotations.clone(),
                // Owners decide its collection: a write that only drops
                // one (an orphaning delete) is a change.
                o.metadata.owner_references.clone(),
                body,
            )
        };
        strip(self) == strip(other)
    }
}
