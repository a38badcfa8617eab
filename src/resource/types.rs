//! Typed bodies of the kinds shoal stores: the common subset of Kubernetes'
//! specs. Every struct denies unknown fields and skips empty fields when
//! serialised, so an accepted manifest re-serialises to what was given.
//! `status` is never typed here: controllers write it as free-form JSON.
//!
//! Validation beyond what types express (ranges, references, selectors) lives
//! in `crate::manifest`; this module also holds the helpers both it and the
//! controllers need: [`LabelSelector::matches`], quantity parsing, base64.

mod apps;
mod autoscaling;
mod batch;
mod disruption;
mod limits;
mod podaffinity;
mod priority;
mod probes;
mod quantity;
mod quota;
mod rbac;
mod scheduling;
mod statefulset;
mod termination;
pub use apps::*;
pub use autoscaling::*;
mod dns;
mod ingress;
mod security;
mod serviceaccount;
mod storage;
pub use batch::*;
pub use disruption::*;
pub use dns::*;
pub use ingress::*;
pub use limits::*;
pub use podaffinity::*;
pub use priority::*;
pub use probes::*;
pub use quantity::*;
pub use quota::*;
pub use rbac::*;
pub use scheduling::*;
pub use security::*;
pub use serviceaccount::*;
pub use statefulset::*;
pub use storage::*;
pub use termination::*;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Kind, Object};

mod volumes;
pub use volumes::*;

/// A kind's typed body: everything in an object except `apiVersion`, `kind`,
/// `metadata` and `status`.
pub trait Body: Serialize + DeserializeOwned {
    /// The kind whose body this is.
    const KIND: Kind;

    /// Decodes an object's body, leaving out its free-form `status`.
    fn from_object(obj: &Object) -> Result<Self, serde_json::Error> {
        let mut body = obj.body.clone();
        body.remove("status");
        serde_json::from_value(Value::Object(body))
    }
}

// ---------------------------------------------------------------- bodies

/// Body of a `Namespace`: an optional, empty `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NamespaceSpec>,
}

/// `Namespace.spec`: Kubernetes' only field (`finalizers`) is not supported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {}

/// Body of a `Pod`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodBody {
    pub spec: PodSpec,
}

/// Body of a `Deployment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentBody {
    pub spec: DeploymentSpec,
}

/// Body of a `Node`: agents write its status; users only cordon it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NodeSpec>,
}

/// `Node.spec`: only `unschedulable` (cordon).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<bool>,
    /// Set with `shoal taint node`: pods that do not tolerate them stay off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// Body of a `ReplicaSet` (written by the deployment controller).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetBody {
    pub spec: ReplicaSetSpec,
}

/// `ReplicaSet.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
}

/// Body of a `Service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceBody {
    pub spec: ServiceSpec,
}

/// Body of a `ConfigMap` (no `spec`: its fields sit at the top level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapBody {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values are base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Body of a `Secret` (no `spec`). Validation folds `stringData` into `data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretBody {
    /// `Opaque` when absent; any string is accepted, as in Kubernetes.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Values are base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values in clear, write-only: merged into `data` (winning on conflicts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Body of a `Token`: an API credential. Only the SHA-256 of its secret is
/// stored; the secret is shown once, when the token is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenBody {
    pub spec: TokenSpec,
}

/// `Token.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    pub role: Role,
    /// Hex SHA-256 of the secret part of the token.
    pub secret_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RFC 3339; the token is refused from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// What an API credential may do. Kubernetes' default user-facing cluster
/// roles, narrowed: `edit` reads no Secrets and changes no nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, tokens and Raft membership included.
    Admin,
    /// Reads and writes workloads, config and Secrets (write only); no nodes, no tokens.
    Edit,
    /// Reads everything but Secrets and tokens; logs included.
    View,
    /// `/metrics` only, for a Prometheus scraper.
    Metrics,
}

impl Role {
    /// Every role, for help texts.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Edit, Role::View, Role::Metrics];

    /// The name used in flags and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Edit => "edit",
            Role::View => "view",
            Role::Metrics => "metrics",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use admin, edit, view or metrics"))
    }
}

/// Body of a `Job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobBody {
    pub spec: JobSpec,
}

impl Body for NamespaceBody {
    const KIND: Kind = Kind::Namespace;
}
impl Body for PodBody {
    const KIND: Kind = Kind::Pod;
}
impl Body for DeploymentBody {
    const KIND: Kind = Kind::Deployment;
}
impl Body for NodeBody {
    const KIND: Kind = Kind::Node;
}
impl Body for ReplicaSetBody {
    const KIND: Kind = Kind::ReplicaSet;
}
impl Body for ServiceBody {
    const KIND: Kind = Kind::Service;
}
impl Body for ConfigMapBody {
    const KIND: Kind = Kind::ConfigMap;
}
impl Body for SecretBody {
    const KIND: Kind = Kind::Secret;
}
impl Body for JobBody {
    const KIND: Kind = Kind::Job;
}
impl Body for TokenBody {
    const KIND: Kind = Kind::Token;
}

// ---------------------------------------------------------------- pods

/// `PodSpec`, the subset shoal runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    pub containers: Vec<Container>,
    /// Run one at a time, in order, each to success before `containers`
    /// start; one with `restartPolicy: Always` is a sidecar, kept running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// `Always` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<u64>,
    /// Seconds from the pod's start after which its node stops it as
    /// Failed, `DeadlineExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    /// The containers' host name; the pod's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Binds the pod to this node, bypassing the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// With a headless Service of this name, the pod's DNS name is
    /// `POD.SUBDOMAIN.NAMESPACE.svc.DOMAIN`, which its container sees as
    /// its fully qualified name (a StatefulSet's pods get `serviceName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// `ClusterFirst` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<DnsPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// Extra lines of the containers' /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// Whether containers get the namespace's service link variables; on
    /// when absent, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    /// The ServiceAccount the pod runs as; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The deprecated alias of `serviceAccountName`; must match it if both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Whether the account's token is mounted; wins over the account's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Filled from the class when the pod is created; a user may only
    /// repeat that value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<PreemptionPolicy>,
    /// The host's network namespace (pod IP = host IP); privileged nodes only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// The host's PID namespace; privileged nodes only.
    #[serde(
        default,
        rename = "hostPID",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub host_pid: bool,
    /// The host's IPC namespace; privileged nodes only.
    #[serde(
        default,
        rename = "hostIPC",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub host_ipc: bool,
    /// All containers of the pod in one PID namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_process_namespace: bool,
    /// `kubernetes.io/dockerconfigjson` Secrets to pull its images with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<NameRef>,
}

/// A pod's restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// A container's own restart policy: only on an init container, where
/// `Always` makes it a sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerRestartPolicy {
    Always,
}

impl PodSpec {
    /// The ServiceAccount the pod runs as (`default` when it names none).
    pub fn account_name(&self) -> &str {
        self.service_account_name
            .as_deref()
            .or(self.service_account.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_ACCOUNT)
    }

    /// The init containers, then the app containers: every container a pod runs.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers.iter().chain(&self.containers)
    }

    /// A container of the pod by name, init containers included.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.all_containers().find(|c| c.name == name)
    }
}

/// One container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// Only on an init container: `Always` makes it a sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<ContainerRestartPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Keep a stdin open for the main process (`shoal attach -i` writes to it).
    // Skipped when false so that pods stored before these fields keep their
    // spec hash (a changed hash would replace their containers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin: bool,
    /// Close that stdin once the first attached client detaches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    /// Give the main process a terminal (needs `stdin`, as in Kubernetes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Where the container may write why it ended (`/dev/termination-log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Option<TerminationMessagePolicy>,
}

impl Container {
    /// An init container that keeps running beside the app's (`restartPolicy: Always`).
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy == Some(ContainerRestartPolicy::Always)
    }
}

/// When the runtime pulls an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// One environment variable: a literal `value` or a reference in `valueFrom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from (exactly one field set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    /// A field of the pod (downward API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's resource limit or request (downward API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
}

/// A field of the pod, by path (`metadata.name`, `metadata.labels['app']`, `status.podIP`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectFieldSelector {
    pub field_path: String,
    /// Only `v1`, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// A container's resource (`limits.cpu`, `requests.memory`, ...), divided by `divisor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFieldSelector {
    /// Required in a volume; the container itself in `env` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    pub resource: String,
    /// `1` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisor: Option<Quantity>,
}

/// One key of a named ConfigMap or Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// All keys of a ConfigMap or Secret as environment variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFromSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<NameRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NameRef>,
}

/// A reference by name to a ConfigMap or Secret in the pod's namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A port a container listens on, optionally published on the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    /// 0 means none, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `TCP` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// CPU and memory requests and limits (the only resources shoal knows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

impl ResourceRequirements {
    /// The CPU request in millicores, falling back to the limit as Kubernetes does.
    pub fn cpu_request_millis(&self) -> Option<u64> {
        let q = self
            .requests
            .get("cpu")
            .or_else(|| self.limits.get("cpu"))?;
        q.cpu_millis().ok()
    }

    /// The memory request in bytes, falling back to the limit as Kubernetes does.
    pub fn memory_request_bytes(&self) -> Option<u64> {
        let q = self
            .requests
            .get("memory")
            .or_else(|| self.limits.get("memory"))?;
        q.memory_bytes().ok()
    }
}

// ---------------------------------------------------------------- workloads

/// The `metadata` of a pod template: labels and annotations only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Accepted because generated manifests carry `creationTimestamp: null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// A pod template inside a Deployment or Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    pub spec: PodSpec,
}

impl PodTemplateSpec {
    /// The template's labels (empty when it has no metadata).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata
            .as_ref()
            .map(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

/// `DeploymentSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
    /// 10 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<u32>,
    /// 600 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// How a Deployment replaces old pods with new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<StrategyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// `RollingUpdate` or `Recreate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrategyType {
    #[default]
    RollingUpdate,
    Recreate,
}

/// The pace of a rolling update: counts or percentages of `replicas`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// 25% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// 25% when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Kubernetes' label selector: all `matchLabels` and all `matchExpressions` must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// Whether the selector has no condition (and so would select everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether a set of labels satisfies every condition of the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelectorRequirement {
    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => v.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => v.is_some(),
            SelectorOperator::DoesNotExist => v.is_none(),
        }
    }
}

/// The operator of a selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

// ---------------------------------------------------------------- services

/// `ServiceSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Pods with all these labels are the endpoints; empty selects none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// `ClusterIP` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Accepted and kept; shoal has no virtual IPs yet.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// `None` (the default) or `ClientIP`: each node's balancer sends a
    /// client address's connections to the endpoint it used last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
}

/// `Service.spec.sessionAffinityConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinityConfig {
    #[serde(default, rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// `sessionAffinityConfig.clientIP`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIpConfig {
    /// How long a client's endpoint is kept since its last connection
    /// (10800 when absent, as Kubernetes; at most 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10_800;

impl ServiceSpec {
    /// How long a ClientIP affinity lasts; `None` without affinity.
    pub fn client_ip_affinity(&self) -> Option<std::time::Duration> {
        if self.session_affinity.as_deref() != Some("ClientIP") {
            return None;
        }
        let secs = self
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
        Some(std::time::Duration::from_secs(
            u64::try_from(secs).unwrap_or(0),
        ))
    }
}

/// How a Service is exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    #[serde(rename = "ClusterIP")]
    ClusterIp,
    /// Also on a port of every node.
    NodePort,
    /// Served as `NodePort`: shoal has no external load balancer to provision.
    LoadBalancer,
}

/// One port of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    /// `port` when absent; a name refers to a container port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// `TCP` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

// ---------------------------------------------------------------- IntOrString

/// Kubernetes' `IntOrString`: a port number or port name, a count or a percentage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl IntOrString {
    /// Resolves a count or percentage against a total; percentages round up
    /// when `round_up`, down otherwise (Kubernetes rounds maxSurge up and
    /// maxUnavailable down). `None` for a malformed string.
    pub fn scaled_value(&self, total: u32, round_up: bool) -> Option<u32> {
        match self {
            IntOrString::Int(i) => u32::try_from(*i).ok(),
            IntOrString::String(s) => {
                let pct: u64 = s.strip_suffix('%')?.parse().ok()?;
                let prod = pct * u64::from(total);
                let v = if round_up {
                    prod.div_ceil(100)
                } else {
                    prod / 100
                };
                u32::try_from(v).ok()
            }
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"a 32-bit integer"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"a 32-bit integer"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------- base64

/// Encodes bytes as standard, padded base64 (as Kubernetes stores Secret data).
pub fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard, padded base64, ignoring line breaks (as Kubernetes does).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, Base64Error> {
    use base64::Engine as _;
    let clean: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    if !clean.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
                Base64Error::Padding
            }
            base64::DecodeError::InvalidByte(_, c)
            | base64::DecodeError::InvalidLastSymbol(_, c) => Base64Error::Character(char::from(c)),
            base64::DecodeError::InvalidLength(_) => Base64Error::Length,
        })
}

/// Why a string is not valid base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// Length not a multiple of 4.
    #[error("invalid base64: length is not a multiple of 4 (padding with '=' is required)")]
    Length,
    /// `=` in the wrong place.
    #[error("invalid base64: misplaced '=' padding")]
    Padding,
    /// A character outside the standard alphabet.
    #[error("invalid base64: unexpected character {0:?}")]
    Character(char),
}

#[cfg(test)]
mod tests;
