//! Typed `status` of the kinds whose status shoal writes, in Kubernetes'
//! field names. Every struct keeps the fields it does not know in `extra`,
//! so a status written by a newer node passes through an older one intact.
//! Read with [`Object::status`], write with [`Object::set_status`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Object;

/// `Pod.status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// What a newer node may write that this one does not know.
    #[serde(other)]
    Unknown,
}

impl PodPhase {
    /// Succeeded or Failed: finished for good, never placed or started again.
    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }
}

/// One entry of a `status.conditions` list (pods, deployments, nodes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `PodScheduled`, `Available`, `Progressing`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// When the condition was last written (Deployments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Condition {
    /// Whether its status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The condition of a type in a list, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Where a container port is published on its node (shoal's own field:
/// other nodes' load balancers connect there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
}

/// `ContainerStatus.state` (and `lastState`): one of the three is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<StateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<StateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<StateTerminated>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A container waiting to run, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateWaiting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A running container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRunning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A container that exited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateTerminated {
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `Pod.status.containerStatuses`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Pod.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Why the pod is in this phase (`Evicted`, `NodeLost`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PodStatus {
    /// Succeeded or Failed.
    pub fn is_terminal(&self) -> bool {
        self.phase.is_some_and(PodPhase::is_terminal)
    }

    /// The condition of a type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }

    /// Its Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(Condition::is_true)
    }

    /// A container's status by name.
    pub fn container(&self, name: &str) -> Option<&ContainerStatus> {
        // Names are unique across the two lists.
        self.container_statuses
            .iter()
            .chain(&self.init_container_statuses)
            .find(|c| c.name == name)
    }
}

/// The phase and conditions of a pod's status alone: what the controllers,
/// the scheduler and the metrics read of every pod on every pass, without
/// decoding the container statuses they never look at.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodReadiness {
    #[serde(default)]
    pub phase: Option<PodPhase>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl PodReadiness {
    /// Succeeded or Failed.
    pub fn is_terminal(&self) -> bool {
        self.phase.is_some_and(PodPhase::is_terminal)
    }

    /// The condition of a type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }
}

/// `Deployment.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub updated_replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    #[serde(default)]
    pub available_replicas: u32,
    #[serde(default)]
    pub unavailable_replicas: u32,
    /// shoal's own: the counts (updated, ready, available, total) when
    /// progress was last seen, so a stall can be told from progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shoal_progress: Option<[u32; 4]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeploymentStatus {
    /// The condition of a type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }
}

/// `ReplicaSet.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    #[serde(default)]
    pub available_replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `DaemonSet.status`: counts of nodes, as Kubernetes'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    /// Nodes that should run the daemon pod.
    #[serde(default)]
    pub desired_number_scheduled: u32,
    /// Nodes that should run it and run at least one of its pods.
    #[serde(default)]
    pub current_number_scheduled: u32,
    /// Nodes that run one of its pods but should not.
    #[serde(default)]
    pub number_misscheduled: u32,
    /// Nodes that should run it and have a Ready pod of it.
    #[serde(default)]
    pub number_ready: u32,
    /// Nodes that should run it and run its current template.
    #[serde(default)]
    pub updated_number_scheduled: u32,
    /// Nodes that should run it and have a pod Ready for minReadySeconds.
    #[serde(default)]
    pub number_available: u32,
    /// desired - available.
    #[serde(default)]
    pub number_unavailable: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `StatefulSet.status`: counts of pods, as Kubernetes'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    /// Pods that exist and have not finished.
    #[serde(default)]
    pub replicas: u32,
    /// Of those, Ready.
    #[serde(default)]
    pub ready_replicas: u32,
    /// Of those, running `currentRevision`.
    #[serde(default)]
    pub current_replicas: u32,
    /// Of those, running `updateRevision`.
    #[serde(default)]
    pub updated_replicas: u32,
    /// Of those, Ready for minReadySeconds.
    #[serde(default)]
    pub available_replicas: u32,
    /// The revision (`<set>-<hash>`) the pods below the update run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The revision of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    /// Bumped when a revision's name is taken by another template, to
    /// salt the next hash (as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `Job.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// When the Job (last) started running pods (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the Job completed; unset for a Job that failed (as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Pods not yet finished.
    #[serde(default)]
    pub active: u32,
    /// Pods that succeeded (for an Indexed Job: indexes completed).
    #[serde(default)]
    pub succeeded: u32,
    /// Failed pods and, under restartPolicy OnFailure, container restarts.
    #[serde(default)]
    pub failed: u32,
    /// Active pods whose Ready condition is True.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<u32>,
    /// Indexed Jobs: the completed indexes, as Kubernetes writes them (`1,3-5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_indexes: Option<String>,
    /// Indexed Jobs with backoffLimitPerIndex: the indexes that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_indexes: Option<String>,
    /// `Complete`, `Failed`, `Suspended`, `SuccessCriteriaMet`, `FailureTarget`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl JobStatus {
    /// The condition of a type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }

    /// Whether a condition of this type is True.
    pub fn is(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(Condition::is_true)
    }

    /// Complete or Failed: the Job runs no pod again.
    pub fn is_finished(&self) -> bool {
        self.is("Complete") || self.is("Failed")
    }
}

/// A reference to another object (`CronJob.status.active`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CronJob.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    /// Its Jobs that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ObjectReference>,
    /// The latest scheduled time a Job was created for (RFC 3339): the
    /// value every creation is conditional on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When one of its Jobs last completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Node.status`: what an agent publishes about its host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Quantities by resource name (`cpu`, `memory`, `pods`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Value>,
    /// What pods may use of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_info: Option<NodeInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of a node's addresses (`InternalIP`, `Hostname`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

/// `Node.status.nodeInfo`: what runs the node, and how peers reach it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `docker` or `process`.
    #[serde(default)]
    pub runtime: String,
    #[serde(default)]
    pub shoal_version: String,
    /// Its libp2p PeerId, base58.
    #[serde(default)]
    pub peer_id: String,
    #[serde(default)]
    pub p2p_addrs: Vec<String>,
    #[serde(default)]
    pub api_addr: String,
    #[serde(default)]
    pub operating_system: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Namespace.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NamespaceStatus {
    /// A status with this phase.
    pub fn phase(phase: &str) -> NamespaceStatus {
        NamespaceStatus {
            phase: Some(phase.into()),
            ..NamespaceStatus::default()
        }
    }
}

/// `PersistentVolumeClaim.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimStatus {
    /// `Pending`, `Bound` or `Lost`; `Pending` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The bound volume's access modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<crate::resource::types::AccessMode>,
    /// The bound volume's capacity (`storage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `PersistentVolume.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeStatus {
    /// `Pending`, `Available`, `Bound`, `Released` or `Failed`; `Available` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why it is in that phase, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `PodDisruptionBudget.status`, as the disruption controller writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    /// Evictions allowed right now.
    #[serde(default)]
    pub disruptions_allowed: u32,
    /// Covered pods that are ready.
    #[serde(default)]
    pub current_healthy: u32,
    /// How many must stay ready.
    #[serde(default)]
    pub desired_healthy: u32,
    /// How many covered pods there should be (their controllers' replicas).
    #[serde(default)]
    pub expected_pods: u32,
    /// `DisruptionAllowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Ingress.status`: where the Ingress is reachable (written by the leader).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressStatus {
    #[serde(default)]
    pub load_balancer: IngressLoadBalancerStatus,
}

/// `Ingress.status.loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressLoadBalancerStatus {
    /// One entry per node address that serves the Ingress.
    #[serde(default)]
    pub ingress: Vec<IngressLoadBalancerIngress>,
}

/// One address an Ingress is served at.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressLoadBalancerIngress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Why a stored status does not decode.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: status does not decode: {source}")]
pub struct StatusError {
    kind: String,
    name: String,
    source: serde_json::Error,
}

impl Object {
    /// The object's status as `T`; the default when it has none yet.
    pub fn status<T: DeserializeOwned + Default>(&self) -> Result<T, StatusError> {
        match self.body.get("status") {
            None | Some(Value::Null) => Ok(T::default()),
            Some(v) => T::deserialize(v).map_err(|source| StatusError {
                kind: self.kind.clone(),
                name: self.metadata.name.clone(),
                source,
            }),
        }
    }

    /// The object's status as `T`, or the default when it has none or it
    /// does not decode (readers that decide on status, such as the
    /// controllers, treat a garbled status as none).
    pub fn status_or_default<T: DeserializeOwned + Default>(&self) -> T {
        self.status().unwrap_or_default()
    }

    /// Replaces the object's status.
    pub fn set_status<T: Serialize>(&mut self, status: &T) {
        let v = serde_json::to_value(status).unwrap_or(Value::Null);
        self.body.insert("status".into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_and_phases_pass_through() {
        let v = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastProbeTime": null}],
            "podIP": "10.1.2.3",
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "main", "image": "i", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                "imageID": "sha256:abc"
            }]
        });
        let s: PodStatus = serde_json::from_value(v.clone()).unwrap();
        assert!(s.is_ready() && !s.is_terminal());
        assert_eq!(s.container("main").map(|c| c.restart_count), Some(2));
        assert_eq!(serde_json::to_value(&s).unwrap(), v, "nothing lost");

        let newer: PodStatus = serde_json::from_value(json!({"phase": "Hibernating"})).unwrap();
        assert_eq!(newer.phase, Some(PodPhase::Unknown));
        assert!(!newer.is_terminal());
    }

    #[test]
    fn objects_read_and_write_status() {
        let mut o: Object = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {}
        }))
        .unwrap();
        assert_eq!(
            o.status::<DeploymentStatus>().unwrap(),
            DeploymentStatus::default()
        );
        let s = DeploymentStatus {
            replicas: 3,
            available_replicas: 2,
            ..Default::default()
        };
        o.set_status(&s);
        assert_eq!(o.status::<DeploymentStatus>().unwrap(), s);
        o.body.insert("status".into(), json!({"replicas": "three"}));
        let e = o.status::<DeploymentStatus>().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Deployment web: status does not decode"),
            "{e}"
        );
        assert_eq!(
            o.status_or_default::<DeploymentStatus>(),
            DeploymentStatus::default()
        );
    }
}
