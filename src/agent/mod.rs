//! agent: on every node, keeps the pods bound to it running through the
//! local runtime, and reports their true state.
//!
//! The loop is level-triggered: on any pod change in the local replica, on
//! a probe flip and on a periodic resync, it lists the pods bound here and
//! the runtime's containers labelled with this node, and hands each pod to
//! a sync (see [`pod`]) that acts on the difference. Containers labelled
//! with this node whose pod no longer exists are stopped and removed, but
//! only after a read barrier, so a replica still catching up never makes
//! the agent kill what it simply has not heard of yet. After a restart the
//! agent adopts the running containers it finds (the labels carry pod uid,
//! container name and restart count), rather than starting them again.

mod config;
mod env;
pub mod events;
pub mod eviction;
pub mod exec;
pub mod hooks;
mod hostns;
pub mod links;
pub mod logs;
pub mod metrics;
pub mod plan;
pub mod pod;
pub mod probe;
mod pullsecrets;
pub mod registration;
pub mod serviceaccount;
pub mod sessions;
pub mod status;
mod termination;
pub mod usage;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::resource::{Kind, Object};
use crate::runtime::{
    ContainerInfo, DynRuntime, LABEL_CLUSTER, LABEL_NODE, LABEL_POD, LABEL_POD_UID, LABEL_SIDECAR,
};
use crate::store::{NodeInfo, Store, StoreError};
pub use config::AgentConfig;

/// What every part of the agent shares.
pub struct Ctx {
    /// The local replica and the write path.
    pub store: Store,
    /// The container runtime.
    pub runtime: DynRuntime,
    /// This node's name (pods bind to it through `spec.nodeName`).
    pub node: String,
    /// The address other hosts reach this one at, reported as `hostIP`.
    pub host_ip: String,
    /// Settings.
    pub cfg: AgentConfig,
    /// Probe results by container id.
    pub probes: probe::ProbeTable,
    /// Wakes the loop (probe flips, finished syncs).
    pub wake: Arc<Notify>,
    /// For HTTP probes.
    pub http: reqwest::Client,
    /// Stop this node's pods after being cut off from the cluster this long
    /// (`scheduler.disconnected_pods = "stop"`); `None` keeps them running.
    pub stop_when_disconnected: Option<Duration>,
    /// The cluster DNS server containers get (as discovery decides it),
    /// and the cluster domain.
    pub cluster_dns: Option<(
        tokio::sync::watch::Receiver<crate::discovery::ContainerDns>,
        String,
    )>,
    /// Where pods' volumes live: `<data_dir>/volumes/<pod uid>/<volume>`.
    pub volumes_root: std::path::PathBuf,
    /// The cluster's id, once the replica has it; containers are labelled
    /// with it and only this cluster's are adopted or removed.
    cluster: std::sync::OnceLock<String>,
    /// This node's API as containers reach it, set once the API listens.
    pub api: std::sync::OnceLock<serviceaccount::ApiEndpoint>,
    /// This node's containers as the last sync listed them, and when:
    /// the usage sampler reads them instead of asking the engine again.
    pub listed: std::sync::RwLock<Option<(std::time::Instant, Arc<Vec<ContainerInfo>>)>>,
}

impl Ctx {
    /// Builds the shared context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        runtime: DynRuntime,
        node: String,
        host_ip: String,
        cfg: AgentConfig,
        stop_when_disconnected: Option<Duration>,
        cluster_dns: Option<(
            tokio::sync::watch::Receiver<crate::discovery::ContainerDns>,
            String,
        )>,
        volumes_root: std::path::PathBuf,
    ) -> Arc<Ctx> {
        Arc::new(Ctx {
            store,
            runtime,
            node,
            host_ip,
            cfg,
            probes: probe::ProbeTable::default(),
            wake: Arc::new(Notify::new()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(10))
                .build()
                .unwrap_or_default(),
            stop_when_disconnected,
            cluster_dns,
            volumes_root,
            cluster: std::sync::OnceLock::new(),
            api: std::sync::OnceLock::new(),
            listed: std::sync::RwLock::new(None),
        })
    }

    /// The directory of one pod's volumes.
    pub fn pod_volumes_dir(&self, uid: &str) -> std::path::PathBuf {
        // A uid is the store's own hex-and-dash string; anything else
        // (which would be a bug) must still not name a path outside the root.
        let safe: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.volumes_root.join(safe)
    }

    /// Where Localhost seccomp profiles are read from.
    pub fn seccomp_dir(&self) -> std::path::PathBuf {
        self.cfg
            .seccomp_dir
            .clone()
            .unwrap_or_else(|| self.volumes_root.with_file_name("seccomp"))
    }

    /// Where local persistent volumes live: `<data_dir>/claims/<volume name>`.
    pub fn claims_root(&self) -> std::path::PathBuf {
        self.volumes_root.with_file_name("claims")
    }

    /// Bytes offered to local persistent volumes: `agent.volume_capacity`,
    /// else the data dir's free space rounded down to GiB (so the Node
    /// object is not rewritten at every byte written).
    pub fn volume_capacity(&self) -> u64 {
        if let Some(b) = self.cfg.volume_capacity {
            return b;
        }
        let dir = self.volumes_root.parent().unwrap_or(&self.volumes_root);
        nix::sys::statvfs::statvfs(dir)
            .map(|s| {
                let bytes = s.blocks_available().saturating_mul(s.fragment_size());
                bytes & !((1u64 << 30) - 1)
            })
            .unwrap_or(0)
    }

    /// This node's allocatable `(millicores, bytes)`: what a downward API
    /// limit that is not set reads, as in Kubernetes.
    pub fn allocatable(&self) -> (u64, u64) {
        registration::allocatable(&self.cfg)
    }

    /// The cluster id, reading the replica until it is known.
    pub fn cluster_id(&self) -> Option<&str> {
        if let Some(id) = self.cluster.get() {
            return Some(id);
        }
        let id = self.store.cluster_id()?;
        Some(self.cluster.get_or_init(|| id))
    }

    /// The DNS server and domain containers get; `Err(())` while that is
    /// still being decided.
    #[allow(clippy::result_unit_err)]
    pub fn container_dns(&self) -> Result<Option<(std::net::IpAddr, &str)>, ()> {
        use crate::discovery::ContainerDns;
        let Some((rx, domain)) = &self.cluster_dns else {
            return Ok(None);
        };
        match *rx.borrow() {
            ContainerDns::Deciding => Err(()),
            ContainerDns::Off => Ok(None),
            ContainerDns::At(ip) => Ok(Some((ip, domain.as_str()))),
        }
    }

    /// The labels that select this node's containers of this cluster.
    pub fn owned_labels(&self) -> Option<BTreeMap<String, String>> {
        let cluster = self.cluster_id()?;
        Some(BTreeMap::from([
            (LABEL_NODE.to_string(), self.node.clone()),
            (LABEL_CLUSTER.to_string(), cluster.to_string()),
        ]))
    }
}

/// Starts the agent; it runs until the task is aborted.
pub fn spawn(ctx: Arc<Ctx>, info: NodeInfo) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The disk checks end with the agent: aborting this task drops the guard.
        let _checks = AbortOnDrop(tokio::spawn(eviction::run(Arc::clone(&ctx))));
        run(ctx, info).await
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A pod's slot: its state while idle, `None` while a sync runs.
struct Slot {
    state: Option<pod::PodState>,
    again: bool,
    /// The version at which a sync last began on the pod finished and at
    /// rest (see [`settled`]), and when.
    settled: Option<(u64, std::time::Instant)>,
}

/// How long a finished pod at rest goes without a sync while nothing about
/// it changes. Its sync then has nothing to do; skipping it keeps a pass
/// proportional to the node's live pods, not to every pod it ever ran (a
/// Job of 1,000 completions otherwise slowed down as its pods piled up).
const SETTLED_RESYNC: Duration = Duration::from_secs(30);

/// Whether a pod is finished for good and at rest here: terminal in its
/// stored status, not being deleted, and none of its containers running or
/// about to start.
fn settled(pod: &Object, containers: &[ContainerInfo]) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status_or_default::<crate::resource::status::PodReadiness>()
            .is_terminal()
        && containers
            .iter()
            .all(|c| matches!(c.state, crate::runtime::ContainerState::Exited { .. }))
}

fn bound_here(p: &Object, node: &str) -> bool {
    p.body
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        == Some(node)
}

async fn run(ctx: Arc<Ctx>, info: NodeInfo) {
    info!(node = %ctx.node, runtime = ctx.runtime.name(), "agent started");
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, pod::PodState)>();
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<String>();
    let mut slots: HashMap<String, Slot> = HashMap::new();
    let mut removing: HashSet<String> = HashSet::new();
    let mut published = false;
    let mut foreign_checked = false;
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.cfg.resync_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(30));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = None;
    // ConfigMap and Secret changes only speed up the refresh of mounted
    // files: the periodic resync compares them anyway.
    let mut config_watch = None;
    let mut secret_watch = None;
    let mut connected_at = std::time::Instant::now();
    let mut stopped_for_disconnect = false;
    loop {
        if watch.is_none() {
            watch = ctx.store.watch(Some(Kind::Pod), None, None).ok();
        }
        if config_watch.is_none() {
            config_watch = ctx.store.watch(Some(Kind::ConfigMap), None, None).ok();
        }
        if secret_watch.is_none() {
            secret_watch = ctx.store.watch(Some(Kind::Secret), None, None).ok();
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.wake.notified() => {}
            _ = housekeeping.tick() => {
                published = false;
                if ctx.store.is_member() {
                    events::sweep(&ctx).await;
                }
            }
            ev = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Ok(ev) if !bound_here(&ev.object, &ctx.node) => continue,
                Ok(_) => {}
                Err(StoreError::Gone { .. }) => watch = None,
                Err(e) => {
                    debug!("pod watch ended: {e}");
                    watch = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            ev = next_event(&mut config_watch) => if ev.is_err() {
                config_watch = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            ev = next_event(&mut secret_watch) => if ev.is_err() {
                secret_watch = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            Some((uid, state)) = done_rx.recv() => {
                let again = match slots.get_mut(&uid) {
                    Some(slot) => {
                        slot.state = Some(state);
                        std::mem::take(&mut slot.again)
                    }
                    None => false,
                };
                if !again {
                    continue;
                }
            }
            Some(id) = gone_rx.recv() => {
                removing.remove(&id);
                continue;
            }
        }
        // Coalesce a burst of watch events into one pass.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if !ctx.store.is_member() {
            continue;
        }
        if let Some(after) = ctx.stop_when_disconnected {
            let reachable = matches!(
                tokio::time::timeout(Duration::from_secs(2), ctx.store.barrier()).await,
                Ok(Ok(()))
            );
            if reachable {
                connected_at = std::time::Instant::now();
                stopped_for_disconnect = false;
            } else if connected_at.elapsed() >= after {
                if !stopped_for_disconnect {
                    warn!(
                        "cut off from the cluster for {:?}: stopping this node's pods (scheduler.disconnected_pods = \"stop\")",
                        connected_at.elapsed()
                    );
                    stopped_for_disconnect = true;
                }
                stop_all(&ctx).await;
                continue;
            }
        }
        if !published {
            published = registration::publish(&ctx, &info).await;
        }
        if !foreign_checked && ctx.cluster_id().is_some() {
            foreign_checked = true;
            warn_foreign(&ctx).await;
        }
        pass(&ctx, &mut slots, &mut removing, &done_tx, &gone_tx).await;
    }
}

/// The next event of a watch that may be absent (then never).
async fn next_event(
    w: &mut Option<crate::store::WatchStream>,
) -> Result<Arc<crate::store::WatchEvent>, StoreError> {
    match w.as_mut() {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

fn pods_here(ctx: &Ctx) -> Option<Vec<Object>> {
    // Shared, then copied only for this node's pods: the list runs on every
    // pass and every pod change, and most of the cluster's pods are elsewhere.
    match ctx.store.list_shared(Kind::Pod, None) {
        Ok((pods, _)) => Some(
            pods.iter()
                .filter(|p| bound_here(p, &ctx.node))
                .map(|p| Object::clone(p))
                .collect(),
        ),
        Err(e) => {
            warn!("cannot list pods: {e}");
            None
        }
    }
}

/// Removes the directories of local volumes whose PersistentVolume is gone
/// (deleted under `Delete`); a `Released` one (`Retain`) keeps its data.
/// A directory is only made while its volume exists, and the replica only
/// moves forward, so a volume missing here after a read barrier was deleted.
async fn sweep_claims(ctx: &Arc<Ctx>) {
    let root = ctx.claims_root();
    let names: Vec<String> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warn!(dir = %root.display(), "cannot list local volumes: {e}");
            return;
        }
    };
    let gone = |ctx: &Ctx, name: &str| {
        let key = crate::resource::ObjectKey::new(Kind::PersistentVolume, "", name);
        matches!(ctx.store.get(&key), Ok(None))
    };
    if !names.iter().any(|n| gone(ctx, n)) {
        return;
    }
    if ctx.store.barrier().await.is_err() {
        return;
    }
    for name in names.into_iter().filter(|n| gone(ctx, n)) {
        let dir = volumes::local_volume_dir(&root, &name);
        let removed = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || std::fs::remove_dir_all(&dir)
        })
        .await;
        match removed {
            Ok(Ok(())) => {
                ::metrics::counter!(metrics::LOCAL_VOLUMES_REMOVED_TOTAL).increment(1);
                info!(dir = %dir.display(), "removed a local volume whose PersistentVolume was deleted");
            }
            Ok(Err(e)) => warn!(dir = %dir.display(), "cannot remove a deleted volume's data: {e}"),
            Err(e) => warn!("volume removal panicked: {e}"),
        }
    }
}

/// Removes the Docker volumes the engine made for `shoal.io/docker`
/// volumes whose PersistentVolume is gone (deleted under `Delete`), as
/// [`sweep_claims`] does for directories. One a container still uses is
/// refused by the engine and tried again on a later pass.
async fn sweep_docker_volumes(ctx: &Arc<Ctx>) {
    let label = crate::resource::types::DOCKER_VOLUME_LABEL;
    let Ok(list) = ctx.runtime.list_volumes(label).await else {
        return;
    };
    let gone = |pv: &str| {
        let key = crate::resource::ObjectKey::new(Kind::PersistentVolume, "", pv);
        matches!(ctx.store.get(&key), Ok(None))
    };
    if !list.iter().any(|(_, pv)| gone(pv)) || ctx.store.barrier().await.is_err() {
        return;
    }
    for (name, _) in list.iter().filter(|(_, pv)| gone(pv)) {
        match ctx.runtime.remove_volume(name).await {
            Ok(()) => {
                info!(volume = %name, "removed a Docker volume whose PersistentVolume was deleted")
            }
            Err(e) => debug!(volume = %name, "Docker volume not removed yet: {e}"),
        }
    }
}

async fn pass(
    ctx: &Arc<Ctx>,
    slots: &mut HashMap<String, Slot>,
    removing: &mut HashSet<String>,
    done_tx: &mpsc::UnboundedSender<(String, pod::PodState)>,
    gone_tx: &mpsc::UnboundedSender<String>,
) {
    let Some(mine) = ctx.owned_labels() else {
        debug!("the cluster id is not known yet; containers are left alone");
        return;
    };
    if ctx.container_dns().is_err() {
        debug!("the containers' DNS address is being decided; no pod is synced yet");
        return;
    }
    let Some(mut pods) = pods_here(ctx) else {
        return;
    };
    let containers = match ctx.runtime.list(&mine).await {
        Ok(c) => c,
        Err(e) => {
            warn!(runtime = ctx.runtime.name(), "cannot list containers: {e}");
            return;
        }
    };
    if let Ok(mut l) = ctx.listed.write() {
        *l = Some((std::time::Instant::now(), Arc::new(containers.clone())));
    }
    let mut by_uid: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    for c in containers {
        let uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
        by_uid.entry(uid).or_default().push(c);
    }
    let volume_dirs = match volumes::host::pod_dirs(&ctx.volumes_root) {
        Ok(d) => d,
        Err(e) => {
            warn!(dir = %ctx.volumes_root.display(), "cannot list pods' volumes: {e}");
            Vec::new()
        }
    };
    let is_live =
        |pods: &[Object], uid: &str| pods.iter().any(|p| p.metadata.uid.as_deref() == Some(uid));
    let orphans = by_uid
        .keys()
        .chain(volume_dirs.iter())
        .any(|uid| !is_live(&pods, uid));
    let mut orphans_checked = true;
    if orphans {
        // Before killing anything, make sure the replica has every write the
        // leader had committed: the "missing" pod may just not be here yet.
        if let Err(e) = ctx.store.barrier().await {
            orphans_checked = false;
            debug!("read barrier failed, orphans left for later: {e}");
            by_uid.retain(|uid, _| {
                pods.iter()
                    .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
            });
        } else if let Some(fresh) = pods_here(ctx) {
            pods = fresh;
        }
    }
    let live: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    // A pod's volumes go once it is gone and none of its containers is left
    // (a container being removed still has them mounted).
    let stale: Vec<std::path::PathBuf> = volume_dirs
        .iter()
        .filter(|uid| !live.contains(*uid) && !by_uid.contains_key(*uid))
        .map(|uid| ctx.pod_volumes_dir(uid))
        .collect();
    if orphans_checked {
        sweep_claims(ctx).await;
        sweep_docker_volumes(ctx).await;
    }
    if !stale.is_empty() && orphans_checked {
        tokio::task::spawn_blocking(move || {
            for dir in stale {
                match volumes::host::remove_pod_dir(&dir) {
                    Ok(()) => {
                        info!(dir = %dir.display(), "removed the volumes of a pod that is gone")
                    }
                    Err(e) => {
                        warn!(dir = %dir.display(), "cannot remove a gone pod's volumes: {e}")
                    }
                }
            }
        });
    }
    let leaving = leaving_pods(&by_uid, &live);
    for pod in pods {
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        let containers = by_uid.remove(&uid).unwrap_or_default();
        let name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name
        );
        // A pod recreated under the name of one whose containers are still
        // here (a StatefulSet's web-1, pinned to its claim's node) starts
        // once they are gone: two of one name never run side by side.
        if containers.is_empty() && leaving.contains(&name) {
            debug!(pod = %name, "waiting for the previous pod of this name to stop");
            continue;
        }
        let slot = slots.entry(uid.clone()).or_insert(Slot {
            state: Some(pod::PodState::default()),
            again: false,
            settled: None,
        });
        let version = pod.resource_version();
        let at_rest = settled(&pod, &containers);
        if at_rest
            && slot.state.is_some()
            && slot
                .settled
                .is_some_and(|(v, at)| v == version && at.elapsed() < SETTLED_RESYNC)
        {
            continue;
        }
        let Some(mut state) = slot.state.take() else {
            slot.again = true;
            continue;
        };
        slot.settled = at_rest.then(|| (version, std::time::Instant::now()));
        let ctx = ctx.clone();
        let done = done_tx.clone();
        let span = tracing::info_span!(
            "pod_sync",
            pod = %format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name
            )
        );
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                pod::sync(&ctx, &pod, containers, &mut state).await;
                let _ = done.send((uid, state));
            },
            span,
        ));
    }
    // Forget pods that are gone (dropping their state stops their probes).
    slots.retain(|uid, slot| live.contains(uid) || slot.state.is_none());
    for (_, list) in by_uid {
        // A gone pod's sidecars outlive its app containers, as the kubelet
        // stops them: they go on a later pass, once no app container is left.
        let apps_left = list.iter().any(|c| !is_sidecar(c));
        for c in list.into_iter().filter(|c| !apps_left || !is_sidecar(c)) {
            if !removing.insert(c.id.clone()) {
                continue;
            }
            let ctx = ctx.clone();
            let gone = gone_tx.clone();
            tokio::spawn(async move {
                remove_orphan(&ctx, &c).await;
                let _ = gone.send(c.id);
            });
        }
    }
}

fn is_sidecar(c: &ContainerInfo) -> bool {
    c.labels.get(LABEL_SIDECAR).is_some_and(|v| v == "true")
}

/// The pods (`namespace/name`) that still have containers here under a
/// uid no live pod has: they are being removed.
fn leaving_pods(
    by_uid: &HashMap<String, Vec<ContainerInfo>>,
    live: &HashSet<String>,
) -> HashSet<String> {
    by_uid
        .iter()
        .filter(|(uid, _)| !live.contains(*uid))
        .flat_map(|(_, list)| list.iter().filter_map(|c| c.labels.get(LABEL_POD).cloned()))
        .collect()
}

/// Stops every running container of this node (kept, not removed: the
/// pods may still be this node's when it reconnects).
async fn stop_all(ctx: &Ctx) {
    let Some(mine) = ctx.owned_labels() else {
        return;
    };
    let Ok(list) = ctx.runtime.list(&mine).await else {
        return;
    };
    for c in list
        .iter()
        .filter(|c| c.state == crate::runtime::ContainerState::Running)
    {
        if let Err(e) = ctx.runtime.stop(&c.id, grace_of(c)).await {
            warn!(container = %c.name, "stop failed: {e}");
        }
    }
}

/// Stops (each with its pod's grace, all within `budget`) and removes every
/// container this node owns; for a node leaving the cluster.
pub async fn remove_all(ctx: &Ctx, budget: Duration) {
    let Some(mine) = ctx.owned_labels() else {
        return;
    };
    let Ok(list) = ctx.runtime.list(&mine).await else {
        return;
    };
    if list.is_empty() {
        return;
    }
    info!(
        containers = list.len(),
        "left the cluster: removing this node's containers (their pods are replaced elsewhere)"
    );
    let deadline = tokio::time::Instant::now() + budget;
    let jobs = list.iter().map(|c| async move {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        stop_and_remove(ctx, c, grace_of(c).min(left)).await;
    });
    futures::future::join_all(jobs).await;
}

/// Says once which containers carry this node's name but another cluster's
/// id (or none, from a version before cluster ids): they are left alone.
async fn warn_foreign(ctx: &Ctx) {
    let Some(cluster) = ctx.cluster_id() else {
        return;
    };
    let by_name = BTreeMap::from([(LABEL_NODE.to_string(), ctx.node.clone())]);
    let Ok(list) = ctx.runtime.list(&by_name).await else {
        return;
    };
    let foreign: Vec<&str> = list
        .iter()
        .filter(|c| c.labels.get(LABEL_CLUSTER).map(String::as_str) != Some(cluster))
        .map(|c| c.name.as_str())
        .collect();
    if !foreign.is_empty() {
        warn!(
            cluster,
            containers = ?foreign,
            "containers labelled for a node named {} but not for this cluster are left alone \
             (another cluster on this engine, or made before cluster ids): remove them yourself if they are stale",
            ctx.node
        );
    }
}

/// The termination grace its pod gave a container (30 s, Kubernetes'
/// default, when the label is missing).
fn grace_of(c: &ContainerInfo) -> Duration {
    let secs = c
        .labels
        .get(pod::LABEL_GRACE)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Stops a container within `grace` (its preStop hook first) and removes
/// it; `true` once removed.
async fn stop_and_remove(ctx: &Ctx, c: &ContainerInfo, grace: Duration) -> bool {
    let (left, failed) = hooks::pre_stop(c, grace, &ctx.runtime, &ctx.http).await;
    if let Some(why) = failed {
        // The pod is gone: no object to hang an event on.
        warn!(container = %c.name, "preStop hook failed: {why}");
    }
    if let Err(e) = ctx.runtime.stop(&c.id, left).await {
        warn!(container = %c.name, "stop failed: {e}");
    }
    match ctx.runtime.remove(&c.id).await {
        Ok(()) => true,
        Err(e) => {
            warn!(container = %c.name, "remove failed: {e}");
            false
        }
    }
}

/// Stops (with its pod's grace period) and removes a container whose pod is gone.
async fn remove_orphan(ctx: &Ctx, c: &ContainerInfo) {
    info!(container = %c.name, "removing a container whose pod is gone");
    ctx.probes.remove(&c.id);
    if stop_and_remove(ctx, c, grace_of(c)).await {
        ::metrics::counter!(metrics::ORPHANS_REMOVED_TOTAL).increment(1);
    }
}

#[cfg(test)]
mod leaving_tests {
    use super::*;

    fn ctr(uid: &str, pod: &str) -> ContainerInfo {
        ContainerInfo {
            id: format!("{uid}-c"),
            name: format!("{uid}-c"),
            image: "busybox".into(),
            labels: BTreeMap::from([
                (LABEL_POD_UID.to_string(), uid.to_string()),
                (LABEL_POD.to_string(), pod.to_string()),
            ]),
            state: crate::runtime::ContainerState::Running,
            started_at: None,
            created_at: None,
            ip: None,
            ports: Vec::new(),
            termination_message: None,
        }
    }

    #[test]
    fn only_pods_whose_containers_have_no_live_uid_are_leaving() {
        let by_uid = HashMap::from([
            ("old".to_string(), vec![ctr("old", "default/web-1")]),
            ("live".to_string(), vec![ctr("live", "default/web-0")]),
        ]);
        let live = HashSet::from(["live".to_string(), "new".to_string()]);
        assert_eq!(
            leaving_pods(&by_uid, &live),
            HashSet::from(["default/web-1".to_string()])
        );
        let all = HashSet::from(["old".to_string(), "live".to_string()]);
        assert!(leaving_pods(&by_uid, &all).is_empty());
    }
}
