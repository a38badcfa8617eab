//! One sync of one pod: compare its spec with the runtime's containers, act
//! on the difference (create, start, restart after back-off, kill on a failed
//! liveness probe, remove leftovers), then report the status through Raft if
//! it changed. The agent runs at most one sync per pod at a time, so slow
//! pulls or graceful stops of one pod never hold up another.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tracing::{debug, warn};

use super::Ctx;
use super::events::{EventKind, PendingEvent};
use super::hooks;
use super::plan::{self, Backoff, restarts_of, spec_hash};
use super::probe::{self, ProbeTarget};
use super::status::{self, ContainerView, Role};
use super::volumes;
use crate::resource::status::{PodPhase, PodStatus, StateTerminated};
use crate::resource::time::{now_rfc3339, now_secs, parse_rfc3339};
use crate::resource::types::{
    Body, Container, PodBody, PodSecurityContext, PodSpec, ProcMount, RestartPolicy,
    SeccompProfileType, SecurityContext, decode_base64,
};
use crate::resource::{Kind, Object, ObjectKey};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_NODE,
    LABEL_POD, LABEL_POD_UID, LABEL_RESTARTS, LABEL_SIDECAR, LABEL_SPEC_HASH, PortBinding,
    RuntimeError, Seccomp,
};
use crate::store::{Command, Op};
use tokio_util::task::AbortOnDropHandle;

/// Label with the pod's termination grace period, so an orphaned container
/// is stopped as gently as its pod asked even after the pod is gone.
pub const LABEL_GRACE: &str = "io.shoal.grace-seconds";

/// What the agent remembers about a pod between syncs. Lost on restart, as
/// the kubelet's is: back-off then starts afresh.
#[derive(Default)]
pub struct PodState {
    backoff: HashMap<String, Backoff>,
    pull_backoff: HashMap<String, (Backoff, String)>,
    last_terminated: HashMap<String, StateTerminated>,
    probes: HashMap<String, (String, AbortOnDropHandle<()>)>,
    /// Events written for this pod, for de-duplication.
    pub(super) events: super::events::Recent,
    last_written: Option<PodStatus>,
}

/// The pod's containers in the runtime, grouped by container name.
fn by_name(containers: &[ContainerInfo]) -> BTreeMap<String, Vec<ContainerInfo>> {
    let mut m: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
    for c in containers {
        let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
        m.entry(name).or_default().push(c.clone());
    }
    for v in m.values_mut() {
        // Newest first: most restarts, then latest created.
        v.sort_by(|a, b| {
            restarts_of(b)
                .cmp(&restarts_of(a))
                .then(b.created_at.cmp(&a.created_at))
        });
    }
    m
}

/// Syncs one pod. `containers` are the runtime's containers labelled with its uid.
pub async fn sync(ctx: &Ctx, pod: &Object, containers: Vec<ContainerInfo>, st: &mut PodState) {
    let Some(key) = pod.key() else { return };
    let spec = match PodBody::from_object(pod) {
        Ok(b) => b.spec,
        Err(e) => {
            warn!(pod = %key, "stored pod does not decode: {e}");
            return;
        }
    };
    let (spec, account_error) = super::serviceaccount::prepare(ctx, pod, spec);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut prev: PodStatus = pod.status_or_default();
    let deadline_passed = deadline_exceeded(&spec, &prev, now_secs());
    if deadline_passed {
        // Terminal from here on: the plan stops the containers, the status keeps the reason.
        prev.phase = Some(PodPhase::Failed);
        prev.reason = Some("DeadlineExceeded".into());
        prev.message = Some("Pod was active on the node longer than the specified deadline".into());
    }
    let policy = spec.restart_policy.unwrap_or_default();
    let grace = Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30));
    let pod_dir = ctx.pod_volumes_dir(&uid);
    let (mut volumes, claim_dirs) = prepare_volumes(ctx, pod, &spec, &prev, &pod_dir).await;
    if let Some(e) = account_error {
        volumes.insert(super::serviceaccount::VOLUME.into(), e);
    }
    let mut sync = PodSync {
        spec: &spec,
        pod,
        pod_dir,
        volumes,
        claim_dirs,
        prev: &prev,
        ctx,
        key: &key,
        uid: &uid,
        grace,
        security: spec.security_context.as_ref(),
        events: Vec::new(),
        waiting: HashMap::new(),
        acted: false,
    };

    if deadline_passed {
        sync.event(
            EventKind::Normal,
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline".into(),
        );
    }
    let groups = by_name(&containers);
    let probe_failed: HashMap<String, String> = containers
        .iter()
        .filter_map(|ci| {
            let why = ctx.probes.get(&ci.id).and_then(|p| p.failed)?;
            Some((ci.id.clone(), why))
        })
        .collect();
    let decided = plan::plan(&plan::Observed {
        pod_name: &key.name,
        spec: &spec,
        groups: &groups,
        prev: &prev,
        probe_failed: &probe_failed,
        backoff: &st.backoff,
        runtime: ctx.runtime.name(),
        cfg: &ctx.cfg,
        now: Instant::now(),
        wall_now: SystemTime::now(),
    });
    st.backoff.extend(decided.backoff);
    st.last_terminated.extend(decided.last_terminated);
    sync.waiting.extend(decided.waiting);
    for e in decided.events {
        // An event about one exited container (OOMKilled) is said once.
        let said = e
            .about
            .as_deref()
            .is_some_and(|id| st.events.seen_for(id, e.reason()));
        if !said {
            sync.events.push(e);
        }
    }
    for step in decided.steps {
        match step {
            plan::Step::Remove(ci) => sync.remove(ci).await,
            plan::Step::Stop {
                current,
                forget_probe,
            } => {
                sync.stop(current).await;
                if forget_probe {
                    ctx.probes.remove(&current.id);
                }
            }
            plan::Step::StartCreated { spec, current } => sync.start_created(spec, current).await,
            plan::Step::Create { spec, restarts } => sync.create(spec, restarts, st).await,
        }
    }

    let containers = if sync.acted {
        match ctx
            .runtime
            .list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid.clone())]))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                warn!(pod = %key, "cannot list containers: {e}");
                return;
            }
        }
    } else {
        containers
    };
    let groups = by_name(&containers);
    let waiting = std::mem::take(&mut sync.waiting);
    let mut events = std::mem::take(&mut sync.events);
    keep_probes(ctx, &spec, &groups, st);

    let init_policy = plan::init_policy(spec.restart_policy);
    let roles = spec
        .init_containers
        .iter()
        .map(|c| {
            let role = if c.is_sidecar() {
                Role::Sidecar
            } else {
                Role::Init
            };
            (c, role)
        })
        .chain(spec.containers.iter().map(|c| (c, Role::App)));
    let views: Vec<ContainerView<'_>> = roles
        .map(|(c, role)| {
            let cur = groups.get(&c.name).and_then(|v| v.first());
            let policy = match role {
                Role::App => policy,
                Role::Init => init_policy,
                Role::Sidecar => RestartPolicy::Always,
            };
            let will_restart = match cur.map(|ci| &ci.state) {
                Some(ContainerState::Exited { exit_code, .. }) => {
                    status::should_restart(policy, *exit_code)
                }
                _ => true,
            };
            ContainerView {
                spec: c,
                role,
                current: cur,
                restarts: cur.map(restarts_of).unwrap_or(0),
                probe: cur.and_then(|ci| ctx.probes.get(&ci.id)),
                waiting: waiting.get(&c.name).cloned(),
                last_terminated: st.last_terminated.get(&c.name).cloned().or_else(|| {
                    prev.container(&c.name)
                        .and_then(|s| s.last_state.as_ref())
                        .and_then(|s| s.terminated.clone())
                }),
                will_restart,
                runtime: ctx.runtime.name(),
            }
        })
        .collect();
    let (new, ready) = status::pod_status(&views, &prev, policy, &ctx.host_ip, &now_rfc3339());

    let mut status_op = None;
    if prev != new && st.last_written.as_ref() != Some(&new) {
        let was_ready = prev.is_ready();
        if was_ready && !ready {
            for v in &views {
                if let Some(why) = v.probe.as_ref().and_then(|p| p.unready_reason.clone()) {
                    events.push(PendingEvent::new(
                        EventKind::Warning,
                        "Unhealthy",
                        why,
                        &v.spec.name,
                    ));
                }
            }
        }
        status_op = Some(Op::SetStatus {
            key: key.clone(),
            uid: Some(uid.clone()),
            status: serde_json::to_vec(&new).unwrap_or_default(),
        });
    }
    // Status and events go in one command: one Raft write per change.
    let mut ops: Vec<Op> = status_op.into_iter().collect();
    let wrote_status = !ops.is_empty();
    ops.extend(super::events::ops(ctx, pod, &mut st.events, events));
    let n_events = (ops.len() - usize::from(wrote_status)) as u64;
    if ops.is_empty() {
        return;
    }
    match ctx.store.write(Command { ops }).await {
        Ok(_) => {
            if wrote_status {
                st.last_written = Some(new);
                ::metrics::counter!(crate::agent::metrics::STATUS_WRITES_TOTAL).increment(1);
            }
            ::metrics::counter!(crate::agent::metrics::EVENTS_TOTAL).increment(n_events);
        }
        Err(e) => debug!(pod = %key, "status write failed, will retry: {e}"),
    }
}

/// Whether a running pod has outlived its `activeDeadlineSeconds`, counted
/// from its start time, as the kubelet counts it.
fn deadline_exceeded(spec: &PodSpec, prev: &PodStatus, now: u64) -> bool {
    let (Some(limit), Some(start)) = (spec.active_deadline_seconds, prev.start_time.as_deref())
    else {
        return false;
    };
    !prev.is_terminal() && parse_rfc3339(start).is_some_and(|t| now >= t.saturating_add(limit))
}

/// Starts probe tasks for running containers that have probes; stops the rest.
fn keep_probes(
    ctx: &Ctx,
    spec: &PodSpec,
    groups: &BTreeMap<String, Vec<ContainerInfo>>,
    st: &mut PodState,
) {
    let mut keep = HashMap::new();
    // Regular init containers have no probes (validation refuses them).
    for c in spec.all_containers() {
        let Some(ci) = groups.get(&c.name).and_then(|v| v.first()) else {
            continue;
        };
        if ci.state != ContainerState::Running || !probe::has_probes(c) {
            continue;
        }
        match st.probes.remove(&c.name) {
            Some((id, guard)) if id == ci.id => {
                keep.insert(c.name.clone(), (id, guard));
            }
            old => {
                if let Some((id, _)) = old {
                    ctx.probes.remove(&id);
                }
                let target = ProbeTarget {
                    id: ci.id.clone(),
                    ip: ci.ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
                    container: c.clone(),
                };
                let task = tokio::spawn(probe::run(
                    target,
                    ctx.runtime.clone(),
                    ctx.probes.clone(),
                    ctx.wake.clone(),
                    ctx.http.clone(),
                ));
                keep.insert(
                    c.name.clone(),
                    (ci.id.clone(), AbortOnDropHandle::new(task)),
                );
            }
        }
    }
    for (_, (id, _)) in st.probes.drain() {
        ctx.probes.remove(&id);
    }
    st.probes = keep;
}

/// Sets up the pod's volumes (and brings their files up to date) on the
/// blocking pool; errors by volume name. Nothing on the process runtime,
/// which refuses containers that mount volumes.
async fn prepare_volumes(
    ctx: &Ctx,
    pod: &Object,
    spec: &PodSpec,
    prev: &PodStatus,
    pod_dir: &std::path::Path,
) -> (
    BTreeMap<String, volumes::VolumeError>,
    BTreeMap<String, volumes::ClaimMount>,
) {
    if spec.volumes.is_empty()
        || ctx.runtime.name() == crate::runtime::RuntimeKind::Process.as_str()
    {
        return Default::default();
    }
    let claims_root = ctx.claims_root();
    let store = ctx.store.clone();
    let pod = pod.clone();
    let spec_owned = spec.clone();
    let pod_ip = prev.pod_ip.clone().unwrap_or_default();
    let host_ip = ctx.host_ip.clone();
    let node = ctx.node.clone();
    let allocatable = ctx.allocatable();
    let dir = pod_dir.to_path_buf();
    let account_secret = crate::resource::types::token_secret_name(spec.account_name());
    let ca = ctx
        .api
        .get()
        .and_then(|a| a.ca_pem.clone())
        .map(String::into_bytes);
    let started = Instant::now();
    let job = tokio::task::spawn_blocking(move || {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let objs = StoreObjects {
            store: &store,
            ns: &ns,
            node: &node,
            claims_root: &claims_root,
        };
        let objs = super::serviceaccount::WithCa {
            inner: &objs,
            secret: account_secret,
            ca,
        };
        let dw = volumes::Downward {
            facts: pod_facts(&pod, &ns, &node, &pod_ip, &host_ip),
            spec: &spec_owned,
            allocatable,
        };
        volumes::host::prepare(&dir, &spec_owned, &objs, &dw)
    });
    match job.await {
        Ok(p) => {
            if p.updated > 0 {
                ::metrics::counter!(crate::agent::metrics::VOLUME_UPDATES_TOTAL)
                    .increment(p.updated);
            }
            ::metrics::histogram!(crate::agent::metrics::VOLUME_SYNC_SECONDS)
                .record(started.elapsed().as_secs_f64());
            (p.errors, p.claims)
        }
        Err(e) => (
            spec.volumes
                .iter()
                .map(|v| {
                    let msg = format!("volume set-up panicked: {e}");
                    (v.name.clone(), volumes::VolumeError::Mount(msg))
                })
                .collect(),
            BTreeMap::new(),
        ),
    }
}

/// The downward API's view of a pod.
fn pod_facts<'a>(
    pod: &'a Object,
    ns: &'a str,
    node: &'a str,
    pod_ip: &'a str,
    host_ip: &'a str,
) -> crate::resource::downward::PodFacts<'a> {
    crate::resource::downward::PodFacts {
        name: &pod.metadata.name,
        namespace: ns,
        uid: pod.metadata.uid.as_deref().unwrap_or_default(),
        labels: Some(&pod.metadata.labels),
        annotations: Some(&pod.metadata.annotations),
        node_name: node,
        pod_ip,
        host_ip,
    }
}

/// ConfigMaps, Secrets and claims of one namespace, read from the local replica.
struct StoreObjects<'a> {
    store: &'a crate::store::Store,
    ns: &'a str,
    /// This node's name: a claim's volume must live here.
    node: &'a str,
    /// `<data_dir>/claims`.
    claims_root: &'a std::path::Path,
}

impl StoreObjects<'_> {
    fn read(&self, kind: Kind, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let obj = self
            .store
            .get(&ObjectKey::new(kind, self.ns, name))
            .map_err(|e| e.to_string())?;
        let Some(obj) = obj else { return Ok(None) };
        let mut out = BTreeMap::new();
        let what = kind.as_str().to_lowercase();
        let mut add = |field: &str, base64: bool| -> Result<(), String> {
            if let Some(Value::Object(m)) = obj.body.get(field) {
                for (k, v) in m {
                    let Some(s) = v.as_str() else { continue };
                    let bytes = if base64 {
                        decode_base64(s).map_err(|e| format!("{what} {name:?} key {k:?}: {e}"))?
                    } else {
                        s.as_bytes().to_vec()
                    };
                    out.insert(k.clone(), bytes);
                }
            }
            Ok(())
        };
        if kind == Kind::Secret {
            add("data", true)?;
        } else {
            add("data", false)?;
            add("binaryData", true)?;
        }
        Ok(Some(out))
    }
}

impl volumes::Objects for StoreObjects<'_> {
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.read(Kind::ConfigMap, name)
    }
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.read(Kind::Secret, name)
    }
    fn claim_dir(&self, claim: &str) -> Result<std::path::PathBuf, volumes::VolumeError> {
        let (volume, pv) = self.bound_volume(claim)?;
        if let Some(l) = &pv.spec.local {
            return Ok(std::path::PathBuf::from(&l.path));
        }
        if let Some(h) = &pv.spec.host_path {
            return Ok(std::path::PathBuf::from(&h.path));
        }
        Ok(volumes::local_volume_dir(self.claims_root, &volume))
    }
    fn claim_volume(
        &self,
        claim: &str,
    ) -> Result<Option<(String, crate::runtime::NamedVolume)>, volumes::VolumeError> {
        let (volume, pv) = self.bound_volume(claim)?;
        let Some(csi) = &pv.spec.csi else {
            return Ok(None);
        };
        let Some((driver, options)) = csi.docker_driver() else {
            return Err(volumes::VolumeError::Mount(format!(
                "persistentvolume {volume:?}: csi driver {:?} is not one shoal has",
                csi.driver
            )));
        };
        let labels = BTreeMap::from([(
            crate::resource::types::DOCKER_VOLUME_LABEL.to_string(),
            volume,
        )]);
        let nv = crate::runtime::NamedVolume {
            driver,
            options,
            labels,
        };
        Ok(Some((csi.volume_handle.clone(), nv)))
    }
}

impl StoreObjects<'_> {
    /// The volume a claim is bound to (its name and body), or why the claim
    /// cannot be mounted here now.
    fn bound_volume(
        &self,
        claim: &str,
    ) -> Result<(String, crate::resource::types::PersistentVolumeBody), volumes::VolumeError> {
        use crate::resource::types::{Body, PersistentVolumeBody, PersistentVolumeClaimBody};
        let mount = volumes::VolumeError::Mount;
        let get = |kind, ns: &str, name: &str| {
            self.store
                .get(&ObjectKey::new(kind, ns, name))
                .map_err(|e| mount(e.to_string()))
        };
        let Some(c) = get(Kind::PersistentVolumeClaim, self.ns, claim)? else {
            return Err(volumes::VolumeError::Config(format!(
                "persistentvolumeclaim {claim:?} not found"
            )));
        };
        let body = PersistentVolumeClaimBody::from_object(&c)
            .map_err(|e| mount(format!("persistentvolumeclaim {claim:?}: {e}")))?;
        let Some(volume) = body.spec.volume_name.filter(|v| !v.is_empty()) else {
            return Err(mount(format!(
                "persistentvolumeclaim {claim:?} is not bound to a volume yet"
            )));
        };
        let Some(pv) = get(Kind::PersistentVolume, "", &volume)? else {
            return Err(mount(format!("persistentvolume {volume:?} not found")));
        };
        let pv = PersistentVolumeBody::from_object(&pv)
            .map_err(|e| mount(format!("persistentvolume {volume:?}: {e}")))?;
        if let Some(n) = pv.spec.pinned_node()
            && n != self.node
        {
            return Err(mount(format!(
                "persistentvolume {volume:?} lives on node {n:?}, not on this one"
            )));
        }
        Ok((volume, pv))
    }
}

/// The actions of one sync, and what they produced.
struct PodSync<'a> {
    spec: &'a PodSpec,
    pod: &'a Object,
    /// Where the pod's volumes live on this node.
    pod_dir: std::path::PathBuf,
    /// Volumes that cannot be used now, by name.
    volumes: BTreeMap<String, volumes::VolumeError>,
    /// The directories of the pod's claims, by claim name.
    claim_dirs: BTreeMap<String, volumes::ClaimMount>,
    prev: &'a PodStatus,
    ctx: &'a Ctx,
    key: &'a ObjectKey,
    uid: &'a str,
    grace: Duration,
    /// The pod's securityContext, which its containers' own fields override.
    security: Option<&'a PodSecurityContext>,
    events: Vec<PendingEvent>,
    waiting: HashMap<String, (String, String)>,
    acted: bool,
}

impl PodSync<'_> {
    fn event(&mut self, kind: EventKind, reason: &str, message: String) {
        self.events
            .push(PendingEvent::new(kind, reason, message, ""));
    }

    async fn stop(&mut self, ci: &ContainerInfo) {
        self.acted = true;
        let (left, failed) =
            hooks::pre_stop(ci, self.grace, &self.ctx.runtime, &self.ctx.http).await;
        if let Some(why) = failed {
            let name = ci.labels.get(LABEL_CONTAINER).unwrap_or(&ci.name);
            self.event(
                EventKind::Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed for container {name}: {why}"),
            );
        }
        if let Err(e) = self.ctx.runtime.stop(&ci.id, left).await {
            warn!(pod = %self.key, container = %ci.name, "stop failed: {e}");
        }
    }

    /// Runs the container's postStart hook once it has started (see [`hooks::after_start`]).
    async fn post_start(&mut self, c: &Container, id: &str) {
        let ctx = self.ctx;
        if let Some(why) = hooks::after_start(c, id, &ctx.runtime, &ctx.http, self.grace).await {
            self.event(
                EventKind::Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed for container {}: {why}", c.name),
            );
        }
    }

    async fn remove(&mut self, ci: &ContainerInfo) {
        self.acted = true;
        self.ctx.probes.remove(&ci.id);
        if ci.state == ContainerState::Running {
            self.stop(ci).await;
        }
        if let Err(e) = self.ctx.runtime.remove(&ci.id).await {
            warn!(pod = %self.key, container = %ci.name, "remove failed: {e}");
        }
    }

    async fn start_created(&mut self, c: &Container, ci: &ContainerInfo) {
        self.acted = true;
        match self.ctx.runtime.start(&ci.id).await {
            Ok(()) => {
                self.event(
                    EventKind::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                self.post_start(c, &ci.id).await;
            }
            Err(e) => {
                self.fail(c, "RunContainerError", format!("{e}"));
                self.remove(ci).await;
            }
        }
    }

    fn fail(&mut self, c: &Container, reason: &str, msg: String) {
        self.event(EventKind::Warning, "Failed", format!("{reason}: {msg}"));
        self.waiting
            .insert(c.name.clone(), (reason.to_string(), msg));
    }

    async fn create(&mut self, c: &Container, restarts: u32, st: &mut PodState) {
        self.acted = true;
        let ctx = self.ctx;
        if let Some((b, msg)) = st.pull_backoff.get(&c.name)
            && Instant::now() < b.until
        {
            self.waiting
                .insert(c.name.clone(), ("ImagePullFailed".into(), msg.clone()));
            return;
        }
        if self.spec.hostname.is_some()
            && ctx.runtime.name() == crate::runtime::RuntimeKind::Process.as_str()
        {
            let msg = "the process runtime cannot give a host process a host name of its own \
                       (spec.hostname): run this pod on a node with the docker runtime";
            return self.fail(c, "CreateContainerConfigError", msg.into());
        }
        // Never a container without the volumes it asked for.
        let mounts = match self.mounts(c) {
            Ok(m) => m,
            Err(e) => return self.fail(c, e.reason(), e.to_string()),
        };
        let pod_ip = self.prev.pod_ip.clone().unwrap_or_default();
        let ns = &self.key.namespace;
        let facts = pod_facts(self.pod, ns, &ctx.node, &pod_ip, &ctx.host_ip);
        let links = self.spec.enable_service_links != Some(false);
        let env = match super::env::resolve(ctx, ns, c, &facts, links) {
            Ok(env) => env,
            Err(msg) => return self.fail(c, "CreateContainerConfigError", msg),
        };
        let always = matches!(
            c.image_pull_policy,
            Some(crate::resource::types::ImagePullPolicy::Always)
        );
        if let Err(e) = super::pullsecrets::ensure_image(ctx, self.spec, ns, &c.image, always).await
        {
            let msg = match &e {
                RuntimeError::ImagePull { reason, .. } => {
                    format!("Failed to pull image {:?}: {reason}", c.image)
                }
                other => format!("Failed to pull image {:?}: {other}", c.image),
            };
            let prev = st.pull_backoff.get(&c.name).map(|(b, _)| b.clone());
            let mut b = plan::next_backoff(
                prev.as_ref(),
                "",
                Duration::ZERO,
                Duration::ZERO,
                &ctx.cfg,
                Instant::now(),
            );
            if let Some(p) = prev {
                b.delay = (p.delay * 2).min(Duration::from_millis(ctx.cfg.restart_backoff_max_ms));
                b.until = Instant::now() + b.delay;
            }
            st.pull_backoff.insert(c.name.clone(), (b, msg.clone()));
            ::metrics::counter!(crate::agent::metrics::IMAGE_PULL_FAILURES_TOTAL).increment(1);
            return self.fail(c, "ImagePullFailed", msg);
        }
        st.pull_backoff.remove(&c.name);
        let mut cspec = self.container_spec(c, restarts, env);
        cspec.mounts = mounts;
        if let Err(msg) = super::hostns::apply(ctx, self.spec, self.uid, &c.name, &mut cspec).await
        {
            return self.fail(c, "CreateContainerError", msg);
        }
        if let Err(msg) =
            super::termination::termination_log(self.ctx, self.uid, c, restarts, &mut cspec)
        {
            return self.fail(c, "CreateContainerConfigError", msg);
        }
        let id = match ctx.runtime.create(&cspec).await {
            Ok(id) => id,
            Err(RuntimeError::Config(msg)) => {
                return self.fail(c, "CreateContainerConfigError", msg);
            }
            Err(e) => return self.fail(c, "CreateContainerError", e.to_string()),
        };
        match ctx.runtime.start(&id).await {
            Ok(()) => {
                ::metrics::counter!(crate::agent::metrics::CONTAINER_STARTS_TOTAL).increment(1);
                self.event(
                    EventKind::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                self.post_start(c, &id).await;
            }
            Err(e) => {
                self.fail(c, "RunContainerError", e.to_string());
                if let Err(e) = ctx.runtime.remove(&id).await {
                    warn!(pod = %self.key, "cannot remove a container that failed to start: {e}");
                }
            }
        }
    }

    /// The container's bind mounts, or why it cannot have them now.
    fn mounts(&self, c: &Container) -> Result<Vec<crate::runtime::Mount>, volumes::VolumeError> {
        // The account's: a missing one holds every container, mounting or not.
        if let Some(e) = self.volumes.get(super::serviceaccount::VOLUME) {
            return Err(e.clone());
        }
        if c.volume_mounts.is_empty() {
            return Ok(Vec::new());
        }
        if self.ctx.runtime.name() == crate::runtime::RuntimeKind::Process.as_str() {
            let names: Vec<&str> = c.volume_mounts.iter().map(|m| m.name.as_str()).collect();
            return Err(volumes::VolumeError::Config(format!(
                "the process runtime cannot mount volumes (container {} mounts {}): \
                 run this pod on a node with the docker runtime",
                c.name,
                names.join(", ")
            )));
        }
        for m in &c.volume_mounts {
            if let Some(e) = self.volumes.get(&m.name) {
                return Err(e.clone());
            }
        }
        let planned = volumes::container_mounts(self.spec, c, &self.pod_dir, &self.claim_dirs)
            .map_err(volumes::VolumeError::Mount)?;
        volumes::host::resolve_mounts(&planned)
    }

    fn container_spec(
        &self,
        c: &Container,
        restarts: u32,
        env: Vec<(String, String)>,
    ) -> ContainerSpec {
        let mut labels = BTreeMap::from([
            (LABEL_POD_UID.to_string(), self.uid.to_string()),
            (
                LABEL_POD.to_string(),
                format!("{}/{}", self.key.namespace, self.key.name),
            ),
            (LABEL_CONTAINER.to_string(), c.name.clone()),
            (LABEL_NODE.to_string(), self.ctx.node.clone()),
            (
                LABEL_CLUSTER.to_string(),
                self.ctx.cluster_id().unwrap_or_default().to_string(),
            ),
            (LABEL_RESTARTS.to_string(), restarts.to_string()),
            (LABEL_SPEC_HASH.to_string(), spec_hash(c)),
            (LABEL_GRACE.to_string(), self.grace.as_secs().to_string()),
        ]);
        if c.is_sidecar() {
            labels.insert(LABEL_SIDECAR.to_string(), "true".to_string());
        }
        if let Some(hook) = hooks::pre_stop_label(c) {
            labels.insert(hooks::LABEL_PRE_STOP.to_string(), hook);
        }
        let uid8: String = self
            .uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let limits = c.resources.as_ref().map(|r| &r.limits);
        let sc = SecurityContext::effective(self.security, c.security_context.as_ref());
        // Validated as 0..=i32::MAX when the pod was stored.
        let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        let cluster = match self.ctx.container_dns() {
            Ok(Some((ip, domain))) => Some(crate::discovery::container_resolver(
                ip,
                domain,
                &self.key.namespace,
            )),
            _ => None,
        };
        let policy = super::hostns::dns_policy(self.spec);
        let dns = plan::pod_dns(policy, self.spec.dns_config.as_ref(), cluster);
        ContainerSpec {
            name: format!(
                "shoal_{}_{}_{}_{}_{}",
                self.key.namespace, self.key.name, c.name, restarts, uid8
            ),
            image: c.image.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            env,
            labels,
            // Every declared port is published (on an engine-chosen port
            // unless the pod asked for one): container addresses do not
            // route between hosts, so that is how other nodes' load
            // balancers reach this pod.
            ports: c
                .ports
                .iter()
                .map(|p| PortBinding {
                    container_port: p.container_port,
                    host_port: p.host_port.unwrap_or(0),
                    host_ip: publish_ip(&self.ctx.host_ip),
                })
                .collect(),
            cpu_limit_millis: limits
                .and_then(|l| l.get("cpu"))
                .and_then(|q| q.cpu_millis().ok()),
            memory_limit_bytes: limits
                .and_then(|l| l.get("memory"))
                .and_then(|q| q.memory_bytes().ok()),
            working_dir: c.working_dir.clone(),
            stdin: c.stdin,
            stdin_once: c.stdin_once,
            tty: c.tty,
            host_network: self.spec.host_network,
            host_pid: self.spec.host_pid,
            host_ipc: self.spec.host_ipc,
            pid_namespace_of: None,
            mounts: Vec::new(),
            dns_servers: dns.servers,
            dns_search: dns.search,
            dns_options: dns.options,
            extra_hosts: self
                .spec
                .host_aliases
                .iter()
                .flat_map(|a| a.hostnames.iter().map(|h| (h.clone(), a.ip.clone())))
                .collect(),
            // A host name is one DNS label: at most 63 bytes.
            hostname: Some(
                self.spec
                    .hostname
                    .clone()
                    .unwrap_or_else(|| self.key.name.chars().take(63).collect()),
            ),
            domainname: self.spec.subdomain.as_ref().and_then(|sub| {
                let (_, domain) = self.ctx.cluster_dns.as_ref()?;
                Some(format!("{sub}.{}.svc.{domain}", self.key.namespace))
            }),
            run_as_user: id(sc.run_as_user),
            run_as_group: id(sc.run_as_group),
            run_as_non_root: sc.run_as_non_root == Some(true),
            supplemental_groups: self
                .security
                .map(|p| {
                    // fsGroup is a supplementary group too, as in Kubernetes.
                    let mut groups: Vec<u32> = p
                        .supplemental_groups
                        .iter()
                        .chain(p.fs_group.as_ref())
                        .filter_map(|g| id(Some(*g)))
                        .collect();
                    groups.sort_unstable();
                    groups.dedup();
                    groups
                })
                .unwrap_or_default(),
            no_new_privileges: sc.allow_privilege_escalation == Some(false),
            // Upper case, as containerd and Docker read them (`drop: [all]`).
            cap_add: sc
                .capabilities
                .as_ref()
                .map(|c| c.add.iter().map(|n| n.to_ascii_uppercase()).collect())
                .unwrap_or_default(),
            cap_drop: sc
                .capabilities
                .as_ref()
                .map(|c| c.drop.iter().map(|n| n.to_ascii_uppercase()).collect())
                .unwrap_or_default(),
            privileged: sc.privileged == Some(true),
            read_only_root: sc.read_only_root_filesystem == Some(true),
            seccomp: sc.seccomp_profile.as_ref().map(|p| match p.profile_type {
                SeccompProfileType::RuntimeDefault => Seccomp::RuntimeDefault,
                SeccompProfileType::Unconfined => Seccomp::Unconfined,
                // Checked as a relative path without `..` when stored.
                SeccompProfileType::Localhost => Seccomp::Localhost(
                    self.ctx
                        .seccomp_dir()
                        .join(p.localhost_profile.as_deref().unwrap_or_default())
                        .to_string_lossy()
                        .into_owned(),
                ),
            }),
            unmasked_proc: sc.proc_mount == Some(ProcMount::Unmasked),
            sysctls: self
                .security
                .map(|p| {
                    p.sysctls
                        .iter()
                        .map(|s| (s.name.clone(), s.value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The host address to publish ports on: the one other hosts reach this
/// one at, or every address when that is not a plain IP.
fn publish_ip(host_ip: &str) -> String {
    match host_ip.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hash_changes_with_the_image() {
        let a = Container {
            name: "c".into(),
            image: "one".into(),
            ..Default::default()
        };
        let b = Container {
            image: "two".into(),
            ..a.clone()
        };
        assert_ne!(spec_hash(&a), spec_hash(&b));
        assert_eq!(spec_hash(&a), spec_hash(&a.clone()));
    }

    #[test]
    fn the_deadline_counts_from_the_start_time() {
        let spec = PodSpec {
            active_deadline_seconds: Some(60),
            ..PodSpec::default()
        };
        let mut st = PodStatus {
            start_time: Some("2026-01-01T00:00:00Z".into()),
            ..PodStatus::default()
        };
        let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert!(!deadline_exceeded(&spec, &st, start + 59));
        assert!(deadline_exceeded(&spec, &st, start + 60));
        assert!(!deadline_exceeded(&PodSpec::default(), &st, start + 600));
        st.phase = Some(PodPhase::Succeeded);
        assert!(
            !deadline_exceeded(&spec, &st, start + 600),
            "a finished pod stays as it is"
        );
        st = PodStatus::default();
        assert!(
            !deadline_exceeded(&spec, &st, start + 600),
            "not started yet"
        );
    }
}
