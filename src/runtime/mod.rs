//! runtime: what the agent needs from a container engine, behind one trait,
//! and its two drivers: [`docker`] (the real Docker engine through bollard)
//! and [`process`] (plain host processes, for hosts without Docker and for
//! fast tests).
//!
//! The runtime only runs what it is told. Restart decisions, back-off and
//! probes belong to the agent: Docker's own restart policy is never set.

pub mod docker;
pub mod du;
pub mod metrics;
pub mod process;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

/// Label carrying the uid of the pod a container belongs to.
pub const LABEL_POD_UID: &str = "io.shoal.pod.uid";
/// Label carrying `namespace/name` of the pod.
pub const LABEL_POD: &str = "io.shoal.pod";
/// Label carrying the container's name within its pod.
pub const LABEL_CONTAINER: &str = "io.shoal.container";
/// Label set (to `true`) on a pod's sidecar containers, which are stopped
/// after its app containers when the pod goes.
pub const LABEL_SIDECAR: &str = "io.shoal.sidecar";
/// Label carrying the name of the node whose agent owns the container.
pub const LABEL_NODE: &str = "io.shoal.node";
/// Label carrying the id of the cluster whose agent owns the container: two
/// clusters on one engine may both have a node of the same name.
pub const LABEL_CLUSTER: &str = "io.shoal.cluster";
/// Label carrying how many times the container was restarted before this one.
pub const LABEL_RESTARTS: &str = "io.shoal.restarts";
/// Label carrying a hash of the container's spec, to notice a changed spec.
pub const LABEL_SPEC_HASH: &str = "io.shoal.spec-hash";

/// Errors of a runtime driver.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not present and could not be pulled.
    #[error("image {image}: {reason}")]
    ImagePull { image: String, reason: String },
    /// No such container.
    #[error("container {0} not found")]
    NotFound(String),
    /// The engine refused or failed the request.
    #[error("{op}: {msg}")]
    Engine { op: &'static str, msg: String },
    /// The spec cannot run as asked on this node (a user it may not run
    /// as); the agent reports it as Kubernetes' CreateContainerConfigError.
    #[error("{0}")]
    Config(String),
    /// The engine cannot be reached at all.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    /// A local file or process operation failed (process driver).
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
}

/// Which container runtime a node uses (`runtime` in the config, `--runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The local Docker engine, through its API.
    Docker,
    /// Host processes, one process group per container.
    Process,
}

impl RuntimeKind {
    /// `docker` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
        }
    }
}

/// A port to publish on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the host; 0 lets the engine pick a free one, which
    /// [`ContainerInfo::ports`] then reports.
    pub host_port: u16,
    /// Host IP to bind; `0.0.0.0` when empty.
    pub host_ip: String,
}

/// A mount into the container: a host path bound, or a named volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Path on the host; the volume's name when `volume` is set.
    pub host_path: String,
    /// A named volume the engine makes (if missing) with this driver and
    /// these options, instead of a bind mount of a host path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<NamedVolume>,
    /// Path in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// How the engine makes a named volume: its driver, the driver's options
/// and labels (shoal's, to find the volumes it had made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedVolume {
    /// The volume driver (`local`, or a plugin's name).
    pub driver: String,
    /// Passed to the driver as given (`type`, `o`, `device` for `local`).
    pub options: BTreeMap<String, String>,
    /// Set on the volume when the engine makes it.
    pub labels: BTreeMap<String, String>,
}

/// A login to one image registry, from a `kubernetes.io/dockerconfigjson`
/// Secret. Debug leaves the secrets out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry it is for (`docker.io`, `registry.example:5000`).
    pub server: String,
    /// The user name, when it logs in with a password.
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
    /// An identity token, in place of a user name and password.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Engine-side name (unique on the node).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Replaces the image's entrypoint when non-empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when non-empty.
    pub args: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Labels set on the container (pod uid, node, ...).
    pub labels: BTreeMap<String, String>,
    /// Ports to publish.
    pub ports: Vec<PortBinding>,
    /// CPU limit in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// DNS servers for the container's resolv.conf.
    pub dns_servers: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// resolv.conf `options` (`ndots:2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// /etc/hosts entries: (host name, address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, String)>,
    /// The container's host name (the pod's name, as Kubernetes sets it).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The domain the host name is qualified with (`/etc/hosts` lists
    /// `hostname.domainname`); a pod with a `subdomain` gets
    /// `SUBDOMAIN.NAMESPACE.svc.DOMAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// The uid to run as; the image's user (Docker) or the node's
    /// `agent.process_run_as` (processes) when `None`.
    #[serde(default)]
    pub run_as_user: Option<u32>,
    /// The gid to run as; only with `run_as_user`.
    #[serde(default)]
    pub run_as_group: Option<u32>,
    /// Refuse to create the container if it would run as uid 0.
    #[serde(default)]
    pub run_as_non_root: bool,
    /// Further groups of the process (the pod's supplementalGroups and fsGroup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<u32>,
    /// Set no_new_privs (allowPrivilegeEscalation: false).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Capabilities added to the runtime's default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it (`ALL` for every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Every capability and device; the runtime refuses it unless the node
    /// allows privileged containers.
    #[serde(default)]
    pub privileged: bool,
    /// The root file system read-only.
    #[serde(default)]
    pub read_only_root: bool,
    /// The seccomp filter asked for; the runtime's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// /proc without its masked paths (procMount: Unmasked); privileged nodes only.
    #[serde(default)]
    pub unmasked_proc: bool,
    /// Namespaced kernel parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Keep the main process's stdin open for attached clients.
    #[serde(default)]
    pub stdin: bool,
    /// Close that stdin once the first attached client detaches.
    #[serde(default)]
    pub stdin_once: bool,
    /// Give the main process a terminal.
    #[serde(default)]
    pub tty: bool,
    /// The host's network namespace (`hostNetwork`); the runtime refuses
    /// it, as the other host namespaces, unless the node allows privileged pods.
    #[serde(default)]
    pub host_network: bool,
    /// The host's PID namespace (`hostPID`).
    #[serde(default)]
    pub host_pid: bool,
    /// The host's IPC namespace (`hostIPC`).
    #[serde(default)]
    pub host_ipc: bool,
    /// The container (engine id) whose PID namespace this one joins
    /// (`shareProcessNamespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace_of: Option<String>,
}

impl ContainerSpec {
    /// The host namespaces it asks for, as the pod spec names them.
    pub fn host_namespaces(&self) -> Vec<&'static str> {
        [
            (self.host_network, "hostNetwork"),
            (self.host_pid, "hostPID"),
            (self.host_ipc, "hostIPC"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Both runtimes' refusal of what only a node with `agent.allow_privileged`
/// may run (`what`: the fields asked for, `privileged: true`, ...).
pub(crate) fn not_allowed_here(what: &[String]) -> Result<(), String> {
    match what.len() {
        0 => Ok(()),
        n => Err(format!(
            "{} {} not allowed on this node (agent.allow_privileged is false)",
            what.join(", "),
            if n == 1 { "is" } else { "are" }
        )),
    }
}

/// Which seccomp filter a container asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// The runtime's default profile (Docker's; a host process has none,
    /// and the process runtime refuses rather than pretend).
    RuntimeDefault,
    /// No filter at all.
    Unconfined,
    /// A profile file on the node (an absolute path under `agent.seccomp_dir`).
    Localhost(String),
}

/// Default size of one container log file before it is rotated (kubelet's `containerLogMaxSize`).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of log files kept per container, the current one included (kubelet's `containerLogMaxFiles`).
pub const DEFAULT_LOG_MAX_FILES: u32 = 5;

/// How much log a container may keep on disk: `max_files` files of at most
/// `max_bytes` each, the oldest dropped when the current one is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Size at which the current file is rotated.
    pub max_bytes: u64,
    /// Files kept, the current one included (at least 2).
    pub max_files: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            max_files: DEFAULT_LOG_MAX_FILES,
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running now.
    Running,
    /// Ran and stopped.
    Exited {
        /// Exit code; `None` when it cannot be known (process adopted after a restart).
        exit_code: Option<i64>,
        /// Killed by the kernel for exceeding its memory limit.
        oom_killed: bool,
        /// When it stopped.
        finished_at: Option<SystemTime>,
    },
}

/// What the runtime knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Engine id.
    pub id: String,
    /// Engine-side name.
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
    /// When it last started.
    pub started_at: Option<SystemTime>,
    /// When it was created.
    pub created_at: Option<SystemTime>,
    /// Its own IP address, when it has one (Docker bridge); `None` for host processes.
    pub ip: Option<String>,
    /// Container ports published on the host, with the host port each got.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// What an exited container left in its termination message file (or,
    /// when it asked for it, its log's tail), at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message: Option<String>,
}

/// Label naming the host file bind-mounted as the container's
/// termination message file.
pub const TERMINATION_LOG_LABEL: &str = "io.shoal.termination-log";
/// Label set when the message falls back to the log's tail on failure.
pub const TERMINATION_FALLBACK_LABEL: &str = "io.shoal.termination-fallback";

/// Which part of a container's log to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Only the last N lines; all when `None`.
    pub tail: Option<u64>,
    /// Keep the stream open and send new output as it comes.
    pub follow: bool,
    /// Only lines written at or after this time, in seconds since the epoch.
    pub since_unix: Option<i64>,
    /// Put the engine's RFC 3339 time before each line.
    pub timestamps: bool,
}

/// Resource use of a running container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Total CPU time used, in nanoseconds.
    pub cpu_total_nanos: u64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
}

/// What an exec in a container produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i64,
    /// Its stdout and stderr, interleaved, truncated to a few KiB.
    pub output: Vec<u8>,
}

/// What [`Runtime::exec_interactive`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// Whether the caller sends input.
    pub stdin: bool,
    /// Whether the command gets a terminal (output then comes as one stream).
    pub tty: bool,
    /// The terminal's first size, (columns, rows).
    pub size: Option<(u16, u16)>,
}

/// What [`Runtime::attach`] asks of a running container's main process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Whether the caller sends input to its stdin.
    pub stdin: bool,
    /// The terminal's size, (columns, rows), when the container has one.
    pub size: Option<(u16, u16)>,
}

/// A piece of an interactive command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecChunk {
    /// From stderr (else stdout, or the terminal).
    pub stderr: bool,
    /// The bytes.
    pub data: Bytes,
}

/// Controls a running interactive command.
#[async_trait::async_trait]
pub trait ExecControl: Send + Sync {
    /// Sets the terminal's size, (columns, rows).
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError>;
    /// The command's exit code, once its output has ended.
    async fn exit_code(&self) -> Result<i64, RuntimeError>;
}

/// A command running in a container, its output as it comes.
pub struct ExecSession {
    /// Its stdout and stderr.
    pub output: Pin<Box<dyn Stream<Item = Result<ExecChunk, RuntimeError>> + Send>>,
    /// Its stdin, when asked for; shut down to send end-of-file.
    pub input: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    /// Resize and exit code.
    pub control: Box<dyn ExecControl>,
}

/// A stream of log bytes.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;

/// A container engine as the agent uses it.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `docker` or `process`.
    fn name(&self) -> &'static str;

    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;

    /// The host's address as this runtime's containers reach it (the
    /// Docker bridge gateway); `None` when containers share the host's
    /// network.
    async fn host_address_for_containers(&self) -> Option<std::net::IpAddr> {
        None
    }

    /// Makes the image available: used if present, else pulled (always pulled
    /// when `always_pull`); `RuntimeError::ImagePull` when neither works.
    async fn ensure_image(&self, image: &str, always_pull: bool) -> Result<(), RuntimeError>;

    /// As [`Runtime::ensure_image`], pulling with these registry
    /// credentials (a pod's `imagePullSecrets`); a runtime that pulls
    /// nothing has no use for them.
    async fn ensure_image_with(
        &self,
        image: &str,
        always_pull: bool,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), RuntimeError> {
        let _ = auth;
        self.ensure_image(image, always_pull).await
    }

    /// Creates a container (not started); returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// Stops a container: SIGTERM, then SIGKILL once `grace` has passed.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a container (killing it if it still runs).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// The named volumes carrying label `key`, with that label's value (a
    /// runtime without named volumes has none).
    async fn list_volumes(&self, key: &str) -> Result<Vec<(String, String)>, RuntimeError> {
        let _ = key;
        Ok(Vec::new())
    }

    /// Removes a named volume; one already gone is no error.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let _ = name;
        Ok(())
    }

    /// Every container (running or not) carrying all of these labels.
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// One container's current state.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;

    /// The container's stdout and stderr.
    async fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, RuntimeError>;

    /// Current resource use.
    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError>;

    /// Bytes the container has written to its own writable layer or
    /// working directory (not its volumes), for `ephemeral-storage`
    /// limits; `None` where the runtime cannot tell.
    async fn disk_usage(&self, _id: &str) -> Result<Option<u64>, RuntimeError> {
        Ok(None)
    }

    /// Starts a command inside the container whose input and output the
    /// caller streams (`shoal exec`).
    async fn exec_interactive(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        let _ = (id, req);
        Err(RuntimeError::Config(format!(
            "the {} runtime cannot run a command inside a running container: exec needs a node with the docker runtime",
            self.name()
        )))
    }

    /// Attaches to the container's main process (`shoal attach`): its
    /// output from now on, its stdin when asked for and the container has
    /// one open.
    async fn attach(&self, id: &str, req: AttachRequest) -> Result<ExecSession, RuntimeError> {
        let _ = (id, req);
        Err(RuntimeError::Config(format!(
            "the {} runtime cannot attach to a container",
            self.name()
        )))
    }

    /// Runs a command inside the container, waiting at most `timeout`.
    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError>;
}

/// A shared runtime handle.
pub type DynRuntime = Arc<dyn Runtime>;
