//! The Docker driver: runs containers on the local Docker engine through
//! bollard.
//!
//! Docker's restart policy is always `no`: shoal's agent owns every restart
//! decision, and a container Docker restarted behind its back would confuse
//! the agent's bookkeeping (restart counts, back-off, probes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;

use super::{
    AttachRequest, ContainerInfo, ContainerSpec, ContainerState, ExecOutput, ExecRequest,
    ExecSession, LogLimits, LogOptions, LogStream, PortBinding, RegistryAuth, Runtime,
    RuntimeError, Seccomp, Stats,
};

mod attach;
mod cgroup;
mod create;
mod disk;
mod exec;
mod exited;
mod pull;
mod termination;
use create::create_body;

/// Where the engine is looked for when `DOCKER_HOST` is unset (bollard's default too).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long `connect` and `ping` wait for the engine before calling it unavailable;
/// a wedged daemon otherwise holds the caller for bollard's two-minute default.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// bollard's own per-request timeout (waiting for response headers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Default limit for an image pull: a registry that is unreachable in a way
/// that does not fail fast (a black-holed route) would otherwise hang the pod.
const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// An exec's output is kept for probes and messages, not as a data channel.
const EXEC_OUTPUT_LIMIT: usize = 4096;

/// How many containers `list` inspects at once.
const LIST_INSPECT_CONCURRENCY: usize = 8;

/// Docker's "no time" value in StartedAt/FinishedAt of a container that never ran.
const ZERO_TIME_PREFIX: &str = "0001-01-01";

/// The Docker runtime: a handle on one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// Where the engine was reached, for messages.
    host: String,
    /// Longest time an image pull may take before `ensure_image` reports it
    /// as failed; the pull itself may go on in the engine.
    pub pull_timeout: Duration,
    /// The size cap of each container's `json-file` log.
    pub log_limits: LogLimits,
    /// Whether privileged containers, unmasked /proc and the host's
    /// namespaces may run here.
    pub allow_privileged: bool,
    /// Exited containers already inspected, shared by the clones.
    exited: Arc<exited::ExitedCache>,
}

/// The largest seccomp profile file read for a container.
const MAX_SECCOMP_PROFILE_BYTES: u64 = 1024 * 1024;

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST`, else
    /// `unix:///var/run/docker.sock`) and checks that it answers, so a node
    /// without a working engine learns it at start-up rather than on its first
    /// pod.
    pub async fn connect() -> Result<DockerRuntime, RuntimeError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let docker = Docker::connect_with_defaults().map_err(|e| {
            RuntimeError::Unavailable(format!("cannot use Docker engine at {host}: {e}"))
        })?;
        let rt = DockerRuntime {
            docker,
            host,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            log_limits: LogLimits::default(),
            allow_privileged: false,
            exited: Arc::default(),
        };
        rt.ping().await?;
        // bollard speaks the newest API by default; older engines (Debian's
        // 20.10 speaks 1.41) refuse such requests, so speak theirs.
        let docker = tokio::time::timeout(PING_TIMEOUT, rt.docker.clone().negotiate_version())
            .await
            .map_err(|_| rt.unavailable("did not answer the version request"))?
            .map_err(|e| rt.unavailable(&format!("version request failed: {e}")))?;
        Ok(DockerRuntime { docker, ..rt })
    }

    /// Sets how long `ensure_image` waits for a pull.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> DockerRuntime {
        self.pull_timeout = timeout;
        self
    }

    /// Sets the rotation of the containers it creates from now on.
    pub fn with_log_limits(mut self, limits: LogLimits) -> DockerRuntime {
        self.log_limits = limits;
        self
    }

    /// Lets privileged containers run on this node (`agent.allow_privileged`).
    pub fn with_allow_privileged(mut self, allow: bool) -> DockerRuntime {
        self.allow_privileged = allow;
        self
    }

    /// The engine's `seccomp=` option: Docker takes the profile's JSON
    /// itself, not a path, so a Localhost profile is read here.
    async fn seccomp_option(&self, spec: &ContainerSpec) -> Result<Option<String>, RuntimeError> {
        let path = match &spec.seccomp {
            None | Some(Seccomp::RuntimeDefault) => return Ok(None),
            Some(Seccomp::Unconfined) => return Ok(Some("seccomp=unconfined".into())),
            Some(Seccomp::Localhost(path)) => path,
        };
        let fail = |e: String| RuntimeError::Config(format!("seccomp profile {path}: {e}"));
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if meta.len() > MAX_SECCOMP_PROFILE_BYTES {
            return Err(fail(format!(
                "{} bytes, more than the {MAX_SECCOMP_PROFILE_BYTES} accepted",
                meta.len()
            )));
        }
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| fail(format!("not JSON: {e}")))?;
        Ok(Some(format!("seccomp={text}")))
    }

    /// Refuses a runAsNonRoot container whose user would be root: the
    /// spec's uid, else the image's `User` (as the kubelet does, a user
    /// name cannot be verified and is refused too).
    async fn check_non_root(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if !spec.run_as_non_root {
            return Ok(());
        }
        let user = match spec.run_as_user {
            Some(uid) => uid.to_string(),
            None => self
                .docker
                .inspect_image(&spec.image)
                .await
                .map_err(|e| other_err("inspect image", &spec.image, e))?
                .config
                .and_then(|c| c.user)
                .unwrap_or_default(),
        };
        image_user_is_non_root(&user).map_err(RuntimeError::Config)
    }

    fn unavailable(&self, what: &str) -> RuntimeError {
        RuntimeError::Unavailable(format!(
            "Docker engine at {} {what} (is dockerd running?)",
            self.host
        ))
    }
}

/// The HTTP status of an engine reply, when the error is one.
fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Maps an engine error for an operation on container `id`: a 404 is
/// `NotFound`, a connection failure is `Unavailable`, anything else `Engine`.
fn map_err(op: &'static str, id: &str, e: DockerError) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404, ..
        } => RuntimeError::NotFound(id.to_string()),
        other => other_err(op, id, other),
    }
}

/// Maps an engine error without giving 404 a special meaning.
fn other_err(op: &'static str, subject: &str, e: DockerError) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Engine {
            op,
            msg: format!("{subject}: {message} (HTTP {status_code})"),
        },
        DockerError::HyperLegacyError { err } if err.is_connect() => {
            RuntimeError::Unavailable(format!("{op} {subject}: {err}"))
        }
        DockerError::SocketNotFoundError(path) => {
            RuntimeError::Unavailable(format!("{op} {subject}: no Docker socket at {path}"))
        }
        other => RuntimeError::Engine {
            op,
            msg: format!("{subject}: {other}"),
        },
    }
}

/// An image reference with an explicit tag: pulling a bare name would make the
/// engine fetch every tag of the repository.
fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Whether a Docker `User` (`uid`, `uid:gid`, `name`, `name:group`, or
/// empty for root) is certainly not root.
fn image_user_is_non_root(user: &str) -> Result<(), String> {
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<u32>() {
        Ok(0) => Err("container has runAsNonRoot and its user is root (uid 0)".into()),
        Ok(_) => Ok(()),
        Err(_) if name.is_empty() || name == "root" => {
            Err("container has runAsNonRoot and its image will run as root".into())
        }
        Err(_) => Err(format!(
            "container has runAsNonRoot and its image has a non-numeric user ({name}): \
             cannot verify it is not root; set runAsUser"
        )),
    }
}

/// Turns Docker's view of a container into shoal's.
fn to_info(fallback_id: &str, c: ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let config = c.config.unwrap_or_default();
    let running = state.running.unwrap_or(false)
        || matches!(
            state.status,
            Some(
                ContainerStateStatusEnum::RUNNING
                    | ContainerStateStatusEnum::PAUSED
                    | ContainerStateStatusEnum::RESTARTING
            )
        );
    let shoal_state = if running {
        ContainerState::Running
    } else if state.status == Some(ContainerStateStatusEnum::CREATED) {
        ContainerState::Created
    } else {
        ContainerState::Exited {
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            finished_at: state.finished_at.as_deref().and_then(parse_rfc3339),
        }
    };
    let ports = published_ports(c.network_settings.as_ref());
    let labels: BTreeMap<String, String> = config
        .labels
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    let ip = c.network_settings.and_then(|ns| {
        let nets = ns.networks?;
        // The default bridge first: that is the network shoal's containers
        // are created on; any other non-empty address after it.
        let bridge = nets.get("bridge").and_then(|n| n.ip_address.clone());
        bridge.filter(|ip| !ip.is_empty()).or_else(|| {
            let mut names: Vec<&String> = nets.keys().collect();
            names.sort();
            names
                .into_iter()
                .filter_map(|n| nets.get(n).and_then(|e| e.ip_address.clone()))
                .find(|ip| !ip.is_empty())
        })
    });
    ContainerInfo {
        id: c.id.unwrap_or_else(|| fallback_id.to_string()),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        // The reference it was created from; `c.image` is only the image id.
        image: config.image.or(c.image).unwrap_or_default(),
        termination_message: match &shoal_state {
            ContainerState::Exited { exit_code, .. } => {
                termination::termination_message(&labels, *exit_code, c.log_path.as_deref())
            }
            _ => None,
        },
        labels,
        state: shoal_state,
        started_at: state.started_at.as_deref().and_then(parse_rfc3339),
        created_at: c.created.as_deref().and_then(parse_rfc3339),
        ip,
        ports,
    }
}

/// The host ports the engine bound, from `NetworkSettings.Ports`
/// (`"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}, ...]`).
fn published_ports(ns: Option<&bollard::models::NetworkSettings>) -> Vec<PortBinding> {
    let Some(map) = ns.and_then(|n| n.ports.as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<PortBinding> = map
        .iter()
        .filter_map(|(key, bound)| {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if proto != "tcp" {
                return None;
            }
            let container_port: u16 = port.parse().ok()?;
            // IPv4 and IPv6 bindings usually share the port; the first will do.
            let b = bound.as_ref()?.iter().find(|b| {
                b.host_port
                    .as_deref()
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some()
            })?;
            Some(PortBinding {
                container_port,
                host_port: b.host_port.as_deref()?.parse().ok()?,
                host_ip: b.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by_key(|p| p.container_port);
    out
}

/// Parses Docker's RFC 3339 timestamps (`2024-05-01T10:20:30.123456789Z`,
/// or with a `+02:00` offset). Docker's zero time (year 1) and anything else
/// before 1970 mean "never" and give `None`, as does anything malformed.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if s.is_empty() || s.starts_with(ZERO_TIME_PREFIX) {
        return None;
    }
    crate::resource::time::parse_rfc3339_time(s)
}

/// Seconds for messages: `1` for one second, `0.5` for half of one.
fn secs_text(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn host_address_for_containers(&self) -> Option<std::net::IpAddr> {
        let net = match self
            .docker
            .inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    "container DNS is off: the Docker engine's \"bridge\" network cannot be \
                     inspected ({e}); set discovery.container_dns to an address of this host \
                     that containers reach"
                );
                return None;
            }
        };
        let configs = net.ipam.and_then(|i| i.config).unwrap_or_default();
        let gateway = configs.iter().find_map(|c| c.gateway.clone());
        let subnet = configs.iter().find_map(|c| c.subnet.clone());
        let if_name = net
            .options
            .as_ref()
            .and_then(|o| o.get(BRIDGE_NAME_OPTION).cloned())
            .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        let facts = BridgeFacts {
            gateway: gateway.as_deref(),
            interface_addrs: &interface_ipv4_addrs(&if_name),
            subnet: subnet.as_deref(),
        };
        match bridge_host_address(&facts) {
            Ok((ip, source)) => {
                tracing::info!(%ip, source, "containers reach this host at the bridge address");
                Some(ip)
            }
            Err(why) => {
                tracing::warn!(
                    "container DNS is off: {why} (bridge interface {if_name}); set \
                     discovery.container_dns to an address of this host that containers reach"
                );
                None
            }
        }
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.unavailable(&format!("does not answer: {e}"))),
            Err(_) => Err(self.unavailable(&format!(
                "did not answer within {} s",
                PING_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn ensure_image(&self, image: &str, always_pull: bool) -> Result<(), RuntimeError> {
        self.pull_image(image, always_pull, None).await
    }

    async fn ensure_image_with(
        &self,
        image: &str,
        always_pull: bool,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), RuntimeError> {
        self.pull_image(image, always_pull, auth).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut opts = CreateContainerOptionsBuilder::default();
        if !spec.name.is_empty() {
            opts = opts.name(&spec.name);
        }
        self.check_non_root(spec).await?;
        create::refuse_unallowed(spec, self.allow_privileged).map_err(RuntimeError::Config)?;
        let seccomp = self.seccomp_option(spec).await?;
        match self
            .docker
            .create_container(
                Some(opts.build()),
                create_body(spec, self.log_limits, seccomp),
            )
            .await
        {
            Ok(resp) => Ok(resp.id),
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(RuntimeError::Engine {
                op: "create container",
                msg: format!("a container named {} already exists: {message}", spec.name),
            }),
            // The only thing create can miss is the image: the agent ensures
            // it first, so it vanished in between; report it as a pull problem.
            Err(DockerError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => Err(RuntimeError::ImagePull {
                image: spec.image.clone(),
                reason: format!("not present when creating {}: {message}", spec.name),
            }),
            Err(e) => Err(other_err("create container", &spec.name, e)),
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.exited.forget(id);
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| map_err("start container", id, e))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let t = i32::try_from(secs).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(t).build();
        // The engine answers only once the container is down, which can take
        // the whole grace period: give the request that long plus a margin.
        let needed = Duration::from_secs(secs.saturating_add(30));
        let docker = if needed > REQUEST_TIMEOUT {
            self.docker.clone().with_timeout(needed)
        } else {
            self.docker.clone()
        };
        match docker.stop_container(id, Some(opts)).await {
            // 304 (already stopped) is success in bollard already.
            Ok(()) => Ok(()),
            // Gone already: what stop wanted.
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(other_err("stop container", id, e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.exited.forget(id);
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // Someone else is already removing it: the outcome is the same.
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                ref message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(other_err("remove container", id, e)),
        }
    }

    async fn list_volumes(&self, key: &str) -> Result<Vec<(String, String)>, RuntimeError> {
        let filters = HashMap::from([("label", vec![key])]);
        let opts = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| other_err("list volumes", key, e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                let value = v.labels.get(key)?.clone();
                Some((v.name, value))
            })
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(other_err("remove volume", name, e)),
        }
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if !labels.is_empty() {
            filters.insert(
                "label".to_string(),
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            );
        }
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| other_err("list containers", "with labels", e))?;
        let listed: HashSet<&str> = summaries.iter().filter_map(|s| s.id.as_deref()).collect();
        self.exited.prune(labels, &listed);
        // The list reply has no exit code, OOM flag or times: inspect each,
        // except exited containers inspected before (they do not change).
        let todo: Vec<(String, Option<ContainerInfo>)> = summaries
            .iter()
            .filter_map(|s| {
                let id = s.id.clone()?;
                let known = (s.state == Some(ContainerSummaryStateEnum::EXITED))
                    .then(|| self.exited.get(&id, s.status.as_deref()))
                    .flatten();
                Some((id, known))
            })
            .collect();
        let results: Vec<Result<Option<ContainerInfo>, RuntimeError>> = futures::stream::iter(todo)
            .map(|(id, known)| async move {
                if known.is_some() {
                    return Ok(known);
                }
                match self.inspect_raw(&id).await {
                    Ok(c) => {
                        let info = to_info(&id, c);
                        self.exited.keep(&info);
                        Ok(Some(info))
                    }
                    // Removed between list and inspect: it is not there.
                    Err(e) if status_of(&e) == Some(404) => Ok(None),
                    Err(e) => Err(other_err("inspect container", &id, e)),
                }
            })
            .buffered(LIST_INSPECT_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            if let Some(info) = r? {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn disk_usage(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        self.writable_layer_bytes(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let c = self
            .inspect_raw(id)
            .await
            .map_err(|e| map_err("inspect container", id, e))?;
        Ok(to_info(id, c))
    }

    async fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        // The log request only fails once polled; check the container first
        // so a wrong id is an error of this call, not of the stream.
        self.inspect_raw(id)
            .await
            .map_err(|e| map_err("container logs", id, e))?;
        let tail = opts
            .tail
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".to_string());
        // The engine takes an i32; a time past 2038 means "nothing yet" anyway.
        let since = opts
            .since_unix
            .map(|t| i32::try_from(t.max(0)).unwrap_or(i32::MAX))
            .unwrap_or(0);
        let log_opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(opts.follow)
            .tail(&tail)
            .since(since)
            .timestamps(opts.timestamps)
            .build();
        let id = id.to_string();
        let stream = self.docker.logs(&id, Some(log_opts)).map(move |item| {
            item.map(|out| out.into_bytes())
                .map_err(|e| map_err("container logs", &id, e))
        });
        Ok(Box::pin(stream))
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let cid = id.to_string();
        if let Ok(Some(s)) = tokio::task::spawn_blocking(move || cgroup::read(&cid)).await {
            return Ok(s);
        }
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        let s = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(map_err("container stats", id, e)),
            None => {
                return Err(RuntimeError::Engine {
                    op: "container stats",
                    msg: format!("{id}: the engine sent no stats"),
                });
            }
        };
        let cpu_total_nanos = s
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let memory_bytes = s
            .memory_stats
            .map(|m| {
                let usage = m.usage.unwrap_or(0);
                // As `docker stats` does: page cache that can be dropped is
                // not the container's own use (cgroup v1 name, then v2 name).
                let inactive = m.stats.as_ref().and_then(|st| {
                    st.get("total_inactive_file")
                        .or_else(|| st.get("inactive_file"))
                        .copied()
                });
                match inactive {
                    Some(i) if i < usage => usage - i,
                    _ => usage,
                }
            })
            .unwrap_or(0);
        Ok(Stats {
            cpu_total_nanos,
            memory_bytes,
        })
    }

    async fn exec_interactive(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        exec::start(&self.docker, id, req).await
    }

    async fn attach(&self, id: &str, req: AttachRequest) -> Result<ExecSession, RuntimeError> {
        attach::start(&self.docker, id, req).await
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let run = async {
            let created = self
                .docker
                .create_exec(
                    id,
                    CreateExecOptions {
                        cmd: Some(cmd.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| map_err("create exec", id, e))?;
            let started = self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(|e| map_err("start exec", id, e))?;
            let mut output = Vec::new();
            if let StartExecResults::Attached {
                output: mut out, ..
            } = started
            {
                while let Some(item) = out.next().await {
                    let chunk = item.map_err(|e| other_err("exec output", id, e))?;
                    // Keep reading past the limit: a command blocked on a full
                    // pipe would never finish.
                    let room = EXEC_OUTPUT_LIMIT.saturating_sub(output.len());
                    let bytes = chunk.into_bytes();
                    output.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            // The exit code can lag the end of the output a little.
            loop {
                let info = self
                    .docker
                    .inspect_exec(&created.id)
                    .await
                    .map_err(|e| other_err("inspect exec", id, e))?;
                if info.running != Some(true) {
                    let exit_code = info.exit_code.ok_or_else(|| RuntimeError::Engine {
                        op: "exec",
                        msg: format!("{cmd:?} in {id}: the engine reported no exit code"),
                    })?;
                    return Ok(ExecOutput { exit_code, output });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            // Docker cannot kill an exec: the command may still run inside.
            Err(_) => Err(RuntimeError::Engine {
                op: "exec",
                msg: format!("{cmd:?} in {id} timed out after {} s", secs_text(timeout)),
            }),
        }
    }
}

/// The option naming the Linux bridge behind a Docker bridge network.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// The bridge Docker's default network uses when the option is absent.
const DEFAULT_BRIDGE: &str = "docker0";

/// What the engine and the host say about the default bridge network.
struct BridgeFacts<'a> {
    /// IPAM's gateway: missing on some engines (Debian's dockerd 20.10).
    gateway: Option<&'a str>,
    /// The IPv4 addresses the bridge interface holds on this host.
    interface_addrs: &'a [std::net::Ipv4Addr],
    /// IPAM's subnet, e.g. `172.17.0.0/16`.
    subnet: Option<&'a str>,
}

/// The host's address on the bridge and where it came from: IPAM's gateway,
/// else the bridge interface's address inside the subnet, else the subnet's
/// first host (where Docker puts the gateway when it assigns one itself).
fn bridge_host_address(f: &BridgeFacts<'_>) -> Result<(std::net::IpAddr, &'static str), String> {
    if let Some(ip) = f.gateway.and_then(|g| g.parse().ok()) {
        return Ok((ip, "ipam gateway"));
    }
    let subnet = f.subnet.and_then(parse_ipv4_cidr);
    let in_subnet = |ip: &std::net::Ipv4Addr| match subnet {
        Some((net, bits)) => same_network(*ip, net, bits),
        None => true,
    };
    if let Some(ip) = f.interface_addrs.iter().find(|ip| in_subnet(ip)) {
        return Ok(((*ip).into(), "bridge interface"));
    }
    match subnet {
        Some((net, bits)) if bits <= 30 => {
            let first = u32::from(net) & mask(bits);
            Ok((
                std::net::Ipv4Addr::from(first + 1).into(),
                "subnet's first host",
            ))
        }
        Some(_) => Err(format!(
            "the bridge subnet {} has no room for a gateway",
            f.subnet.unwrap_or_default()
        )),
        None => Err(format!(
            "the bridge network reports no gateway, the bridge interface has no IPv4 \
             address and the subnet {:?} is not an IPv4 CIDR",
            f.subnet
        )),
    }
}

fn mask(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    }
}

fn same_network(ip: std::net::Ipv4Addr, net: std::net::Ipv4Addr, bits: u8) -> bool {
    u32::from(ip) & mask(bits) == u32::from(net) & mask(bits)
}

fn parse_ipv4_cidr(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let bits: u8 = bits.parse().ok()?;
    (bits <= 32).then_some(())?;
    Some((ip.parse().ok()?, bits))
}

/// The IPv4 addresses an interface of this host holds (none when it does not exist).
fn interface_ipv4_addrs(name: &str) -> Vec<std::net::Ipv4Addr> {
    crate::net::host_ipv4_addrs()
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, ip)| ip)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        gateway: Option<&'a str>,
        interface_addrs: &'a [std::net::Ipv4Addr],
        subnet: Option<&'a str>,
    ) -> BridgeFacts<'a> {
        BridgeFacts {
            gateway,
            interface_addrs,
            subnet,
        }
    }

    #[test]
    fn the_bridge_address_comes_from_ipam_then_the_interface_then_the_subnet() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        // Docker 28 reports the gateway.
        let got = bridge_host_address(&facts(Some("172.17.0.1"), &[], Some("172.17.0.0/16")));
        assert_eq!(got, Ok((ip("172.17.0.1"), "ipam gateway")));
        // Debian's dockerd 20.10 reports only the subnet: docker0's own address.
        let docker0 = [
            "10.9.0.1".parse().expect("ip"),
            "172.18.5.1".parse().expect("ip"),
        ];
        let got = bridge_host_address(&facts(None, &docker0, Some("172.18.0.0/16")));
        assert_eq!(got, Ok((ip("172.18.5.1"), "bridge interface")));
        // No interface either (another network namespace): the subnet's first host.
        let got = bridge_host_address(&facts(None, &[], Some("172.17.0.0/16")));
        assert_eq!(got, Ok((ip("172.17.0.1"), "subnet's first host")));
        assert!(bridge_host_address(&facts(None, &[], Some("10.0.0.8/31"))).is_err());
        let err = bridge_host_address(&facts(None, &[], None)).expect_err("nothing to go on");
        assert!(err.contains("no gateway"), "{err}");
    }

    fn secs(t: SystemTime) -> (u64, u32) {
        let d = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch");
        (d.as_secs(), d.subsec_nanos())
    }

    #[test]
    fn parses_docker_timestamps() {
        let t = parse_rfc3339("2026-11-27T02:10:25.86405365Z").expect("parses");
        assert_eq!(secs(t), (1_795_745_425, 864_053_650));
        let t = parse_rfc3339("1970-01-01T00:00:00Z").expect("parses");
        assert_eq!(secs(t), (0, 0));
        let t = parse_rfc3339("2000-03-01T01:00:00+01:00").expect("parses");
        assert_eq!(secs(t), (951_868_800, 0));
        let t = parse_rfc3339("2024-02-29T23:59:59.1234567891-00:30").expect("parses");
        assert_eq!(secs(t), (1_709_251_199 + 1800, 123_456_789));
    }

    #[test]
    fn zero_and_bad_timestamps_are_none() {
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339(""), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01X00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00+0100"), None);
    }

    #[test]
    fn bare_names_get_latest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("a/b:1"), "a/b:1");
        assert_eq!(
            with_default_tag("localhost:5000/img"),
            "localhost:5000/img:latest"
        );
        assert_eq!(with_default_tag("img@sha256:abc"), "img@sha256:abc");
    }
}
