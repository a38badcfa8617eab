//! `[agent]` settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Node agent settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Labels published on this node's Node object (for nodeSelector).
    pub labels: std::collections::BTreeMap<String, String>,
    /// CPU kept back from pods, as a Kubernetes quantity (`500m`, `1`).
    pub reserved_cpu: String,
    /// Memory kept back from pods, as a Kubernetes quantity (`256Mi`).
    pub reserved_memory: String,
    /// Most pods this node runs.
    pub max_pods: u32,
    /// Overrides the CPU capacity read from the host (a quantity: `4`, `3500m`).
    pub capacity_cpu: Option<String>,
    /// Overrides the memory capacity read from the host (a quantity: `8Gi`).
    pub capacity_memory: Option<String>,
    /// First restart delay of a crashed container, in milliseconds; doubles each restart.
    pub restart_backoff_initial_ms: u64,
    /// Longest restart delay, in milliseconds.
    pub restart_backoff_max_ms: u64,
    /// A container that ran this long (milliseconds) starts its back-off afresh.
    pub restart_backoff_reset_ms: u64,
    /// How often the agent compares every pod with the runtime even without news, in milliseconds.
    pub resync_ms: u64,
    /// Longest wait for an image pull, in seconds.
    pub image_pull_timeout_secs: u64,
    /// Events kept per pod; older ones are deleted.
    pub events_per_pod: usize,
    /// The user a process-runtime container runs as when its pod names
    /// none: a user name or `uid[:gid]`.
    pub process_run_as: String,
    /// Whether a process-runtime container may run as uid 0 or gid 0 on this node.
    pub process_allow_root: bool,
    /// Where the process runtime makes each container's working directory;
    /// `<data_dir>-pods` beside the data dir when unset. Never inside the
    /// data dir: that one only root may enter.
    pub process_pods_dir: Option<std::path::PathBuf>,
    /// Size at which a container's log file is rotated, in bytes (kubelet's containerLogMaxSize).
    pub log_max_bytes: u64,
    /// Log files kept per container, the current one included (kubelet's containerLogMaxFiles).
    pub log_max_files: u32,
    /// Bytes this node offers to local persistent volumes; the data dir's
    /// free space (rounded down to GiB) when unset.
    pub volume_capacity: Option<u64>,
    /// Whether pods may run privileged containers or with /proc unmasked
    /// here (Docker runtime only). Off: such a pod fails with an event.
    pub allow_privileged: bool,
    /// Where `seccompProfile.localhostProfile` files are looked up;
    /// `<data_dir>/seccomp` when unset (the kubelet's is
    /// /var/lib/kubelet/seccomp).
    pub seccomp_dir: Option<PathBuf>,
    /// Extended resources this node offers, by name (`example.com/dongle =
    /// 4`): published in the Node's capacity and allocatable and scheduled
    /// as whole counts; nothing checks that the devices exist.
    pub extended_resources: std::collections::BTreeMap<String, u64>,
    /// Ephemeral storage kept back from pods, as a Kubernetes quantity
    /// (`10Gi`): allocatable is the data dir's filesystem size less this.
    pub reserved_ephemeral_storage: String,
    /// How often pods' local disk use is measured against their
    /// `ephemeral-storage` limits, in seconds (0: never).
    pub ephemeral_check_secs: u64,
}

/// The smallest `log_max_bytes` accepted.
pub const MIN_LOG_MAX_BYTES: u64 = 1024;
/// The most `log_max_files` accepted.
pub const MAX_LOG_MAX_FILES: u32 = 100;

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            labels: Default::default(),
            reserved_cpu: "100m".into(),
            reserved_memory: "256Mi".into(),
            max_pods: 110,
            capacity_cpu: None,
            capacity_memory: None,
            restart_backoff_initial_ms: 10_000,
            restart_backoff_max_ms: 300_000,
            restart_backoff_reset_ms: 600_000,
            resync_ms: 1_000,
            image_pull_timeout_secs: 120,
            events_per_pod: 20,
            process_run_as: "nobody".into(),
            process_allow_root: false,
            process_pods_dir: None,
            log_max_bytes: crate::runtime::DEFAULT_LOG_MAX_BYTES,
            log_max_files: crate::runtime::DEFAULT_LOG_MAX_FILES,
            volume_capacity: None,
            allow_privileged: false,
            seccomp_dir: None,
            extended_resources: Default::default(),
            reserved_ephemeral_storage: "0".into(),
            ephemeral_check_secs: 10,
        }
    }
}

impl AgentConfig {
    /// Checks the runtime settings that serde cannot; the message names the field.
    pub fn validate_runtime(&self, data_dir: &Path) -> Result<(), String> {
        let (user, gid) = crate::runtime::process::user::parse_user_spec(&self.process_run_as)
            .map_err(|e| format!("agent.process_run_as {e}"))?;
        let numeric_root =
            matches!(user, crate::runtime::process::user::UserPart::Uid(0)) || gid == Some(0);
        if numeric_root && !self.process_allow_root {
            return Err(format!(
                "agent.process_run_as {:?} is root but agent.process_allow_root is false",
                self.process_run_as
            ));
        }
        if self.log_max_bytes < MIN_LOG_MAX_BYTES {
            return Err(format!(
                "agent.log_max_bytes must be at least {MIN_LOG_MAX_BYTES}, not {}",
                self.log_max_bytes
            ));
        }
        if !(2..=MAX_LOG_MAX_FILES).contains(&self.log_max_files) {
            return Err(format!(
                "agent.log_max_files must be between 2 and {MAX_LOG_MAX_FILES}, not {}",
                self.log_max_files
            ));
        }
        for name in self.extended_resources.keys() {
            crate::resource::extended::check_name(name)
                .map_err(|e| format!("agent.extended_resources: {e}"))?;
        }
        crate::resource::types::parse_memory_bytes(&self.reserved_ephemeral_storage).map_err(
            |e| {
                format!(
                    "agent.reserved_ephemeral_storage {:?}: {e}",
                    self.reserved_ephemeral_storage
                )
            },
        )?;
        let pods = self.pods_dir(data_dir)?;
        if pods.starts_with(data_dir) {
            return Err(format!(
                "agent.process_pods_dir {} lies inside the data dir {}, which only root may \
                 enter: containers running as other users could not reach it",
                pods.display(),
                data_dir.display()
            ));
        }
        Ok(())
    }

    /// Where the process runtime makes containers' working directories.
    pub fn pods_dir(&self, data_dir: &Path) -> Result<PathBuf, String> {
        if let Some(d) = &self.process_pods_dir {
            return Ok(d.clone());
        }
        match (data_dir.parent(), data_dir.file_name()) {
            (Some(parent), Some(name)) => {
                let mut name = name.to_os_string();
                name.push("-pods");
                Ok(parent.join(name))
            }
            _ => Err(format!(
                "agent.process_pods_dir cannot default to a sibling of the data dir {}: set it",
                data_dir.display()
            )),
        }
    }

    /// The log rotation every runtime applies.
    pub fn log_limits(&self) -> crate::runtime::LogLimits {
        crate::runtime::LogLimits {
            max_bytes: self.log_max_bytes,
            max_files: self.log_max_files,
        }
    }

    /// The process runtime's options.
    pub fn process_options(
        &self,
        data_dir: &Path,
    ) -> Result<crate::runtime::process::ProcessOptions, String> {
        Ok(crate::runtime::process::ProcessOptions {
            pods_dir: self.pods_dir(data_dir)?,
            run_as: self.process_run_as.clone(),
            allow_root: self.process_allow_root,
            log_limits: self.log_limits(),
            allow_host_namespaces: self.allow_privileged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_settings_are_checked() {
        let data = Path::new("/var/lib/shoal");
        let ok = AgentConfig::default();
        ok.validate_runtime(data).expect("defaults");
        assert_eq!(
            ok.pods_dir(data).expect("default pods dir"),
            Path::new("/var/lib/shoal-pods")
        );
        type Edit = fn(&mut AgentConfig);
        let cases: [(Edit, &str); 7] = [
            (
                |c| c.process_run_as = "0".into(),
                "agent.process_run_as \"0\" is root",
            ),
            (|c| c.process_run_as = "1000:0".into(), "is root"),
            (|c| c.process_run_as = "a b".into(), "agent.process_run_as"),
            (
                |c| c.log_max_bytes = 10,
                "agent.log_max_bytes must be at least 1024",
            ),
            (
                |c| c.log_max_files = 1,
                "agent.log_max_files must be between 2",
            ),
            (
                |c| c.log_max_files = 1000,
                "agent.log_max_files must be between 2",
            ),
            (
                |c| c.process_pods_dir = Some("/var/lib/shoal/pods".into()),
                "lies inside the data dir",
            ),
        ];
        for (edit, want) in cases {
            let mut c = AgentConfig::default();
            edit(&mut c);
            let e = c.validate_runtime(data).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
        let mut root = AgentConfig {
            process_run_as: "0:0".into(),
            process_allow_root: true,
            ..AgentConfig::default()
        };
        root.validate_runtime(data).expect("root when allowed");
        root.process_pods_dir = Some("/srv/pods".into());
        assert_eq!(root.pods_dir(data).expect("set"), Path::new("/srv/pods"));
        assert!(AgentConfig::default().pods_dir(Path::new("/")).is_err());
    }
}
