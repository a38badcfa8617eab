//! Who a container runs as and what it may do: the pod's and the
//! containers' `securityContext`, the subset of Kubernetes' fields shoal
//! honours.

use serde::{Deserialize, Serialize};

/// A container's `securityContext`: the subset shoal honours. The manifest
/// check refuses Kubernetes' other fields by name before decoding, so a new
/// one is added here and dropped from that list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// The uid the container's process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The gid the container's process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Refuse to start the container if it would run as uid 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// `false` sets no_new_privs: setuid binaries and file capabilities
    /// give nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// Capabilities added to and dropped from the runtime's default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Every capability and every device: only where the node allows it
    /// (`agent.allow_privileged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// The container's root file system mounted read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// The seccomp filter; the pod's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    /// `Unmasked` leaves /proc unmasked: only with privileged nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<ProcMount>,
}

/// Linux capabilities to add and drop, by name (`NET_ADMIN`, or `ALL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// Which seccomp filter a container runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub profile_type: SeccompProfileType,
    /// A file under the node's `agent.seccomp_dir`, for `Localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// The kinds of seccomp profile Kubernetes names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfileType {
    RuntimeDefault,
    Unconfined,
    Localhost,
}

/// How /proc is mounted in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcMount {
    Default,
    Unmasked,
}

/// A namespaced kernel parameter set for the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

/// A pod's `securityContext`: defaults for its containers' own, and what
/// only the pod sets (groups, sysctls).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Owns the pod's writable volumes, and is a supplementary group of
    /// every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// `Always` or `OnRootMismatch`: shoal sets the ownership when it makes
    /// a volume, which satisfies both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<String>,
    /// Further groups of every container's process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    /// Namespaced kernel parameters: Kubernetes' safe set only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<Sysctl>,
}

impl SecurityContext {
    /// What a container runs with: its own fields, else the pod's (as Kubernetes merges them).
    pub fn effective(
        pod: Option<&PodSecurityContext>,
        c: Option<&SecurityContext>,
    ) -> SecurityContext {
        let pod = pod.cloned().unwrap_or_default();
        let c = c.cloned().unwrap_or_default();
        SecurityContext {
            run_as_user: c.run_as_user.or(pod.run_as_user),
            run_as_group: c.run_as_group.or(pod.run_as_group),
            run_as_non_root: c.run_as_non_root.or(pod.run_as_non_root),
            seccomp_profile: c.seccomp_profile.or(pod.seccomp_profile),
            ..c
        }
    }
}
