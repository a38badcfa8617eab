//! controller: the cluster-wide loops, run only on the Raft leader. They
//! start when this node gains leadership and stop when it loses it. Every
//! pass reads the leader's replica (which has every committed write) and
//! writes through Raft with preconditions on what it read, so a deposed
//! leader still running a pass cannot act twice.
//!
//! One pass, on any change and every half second: node lifecycle (pods of
//! nodes down past `scheduler.pod_eviction_grace_ms` are marked Failed,
//! reason NodeLost), garbage collection by owner, Deployments (ReplicaSets
//! per template, rolling update), CronJobs (a Job per scheduled time), Jobs
//! (pods until completions succeed),
//! ReplicaSets (pods), DaemonSets (a pod bound to each eligible node),
//! StatefulSets (numbered pods with their claims), then the scheduler
//! (binds pending pods). ServiceAccounts (a `default` per namespace, a
//! token per account) come right after namespaces.

pub mod confighash;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod finalizers;
pub mod gc;
pub mod hpa;
pub mod ingress;
pub mod job;
pub mod metrics;
pub mod namespaces;
pub mod nodes;
pub mod quota;
pub mod replicaset;
pub mod secrets;
pub mod serviceaccounts;
pub mod statefulset;
pub mod storage;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::membership::Membership;
pub use crate::resource::time::now_secs;
pub use crate::resource::view::PodView;
use crate::resource::{Kind, Object};
use crate::scheduler::{self, Strategy};
use crate::store::{Op, Store};

/// Scheduler and controller settings (`[scheduler]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// `pack` (most allocated, the default) or `spread` (least allocated).
    pub strategy: Strategy,
    /// A node down this long (milliseconds) loses its pods to replacements.
    pub pod_eviction_grace_ms: u64,
    /// What a node cut off from the majority does with its pods: `keep`
    /// them running (the default, as Kubernetes and Nomad) or `stop` them
    /// after `disconnected_stop_after_ms`.
    pub disconnected_pods: DisconnectedPods,
    /// With `disconnected_pods = "stop"`: how long to wait, in milliseconds.
    pub disconnected_stop_after_ms: u64,
    /// The most pods one ReplicaSet is given, whatever its `spec.replicas`
    /// asks: one write must not be able to flood the cluster.
    pub max_replicas: u32,
    /// A Job's back-off after its first failed pod, in milliseconds,
    /// doubling per failure up to six minutes (Kubernetes' 10 s).
    pub job_backoff_ms: u64,
}

/// What a disconnected node does with its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisconnectedPods {
    /// Keep running them.
    #[default]
    Keep,
    /// Stop them after a while.
    Stop,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            strategy: Strategy::Pack,
            pod_eviction_grace_ms: 5_000,
            disconnected_pods: DisconnectedPods::Keep,
            disconnected_stop_after_ms: 60_000,
            max_replicas: 10_000,
            job_backoff_ms: 10_000,
        }
    }
}

/// Why one object's reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The object (or what the controller built from it) is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The write was refused or did not reach a quorum.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl ControllerError {
    /// Another writer got there first (a conflict on a fenced write): the
    /// next pass reads again; nothing is wrong.
    pub fn is_race(&self) -> bool {
        use crate::store::{StoreError, TxnError};
        matches!(
            self,
            ControllerError::Store(StoreError::Txn(
                TxnError::Conflict { .. }
                    | TxnError::AlreadyExists { .. }
                    | TxnError::NotFound { .. }
            ))
        )
    }

    /// Logs a failed reconcile of `key`: a lost race at DEBUG, anything else
    /// at WARN, so a reconcile that keeps failing is seen.
    pub fn log(&self, controller: &str, key: &str) {
        if self.is_race() {
            tracing::debug!(
                controller,
                object = key,
                "reconcile lost a race, retried next pass: {self}"
            );
        } else {
            tracing::warn!(controller, object = key, "reconcile failed: {self}");
        }
    }
}

impl From<String> for ControllerError {
    fn from(s: String) -> Self {
        ControllerError::Invalid(s)
    }
}

impl From<&str> for ControllerError {
    fn from(s: &str) -> Self {
        ControllerError::Invalid(s.to_string())
    }
}

const PASS_EVERY: Duration = Duration::from_millis(500);

/// Per-object retry delays: an object whose sync failed is left alone until
/// its delay has passed, doubling up to a minute, so a write that cannot
/// succeed is not re-proposed on every pass (the Raft log grew 1.4 GB in
/// 30 s that way).
#[derive(Debug, Default)]
pub struct Backoff {
    waits: std::collections::HashMap<String, (std::time::Instant, Duration)>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Backoff {
    /// Whether the object (by uid) may be synced now.
    pub fn ready(&self, uid: &str) -> bool {
        self.waits
            .get(uid)
            .is_none_or(|(until, _)| std::time::Instant::now() >= *until)
    }

    /// Records a failed sync: the next is due after a doubled delay.
    pub fn failed(&mut self, uid: &str) -> Duration {
        let delay = match self.waits.get(uid) {
            Some((_, d)) => (*d * 2).min(BACKOFF_MAX),
            None => BACKOFF_FIRST,
        };
        self.waits
            .insert(uid.to_string(), (std::time::Instant::now() + delay, delay));
        delay
    }

    /// Records a successful sync.
    pub fn succeeded(&mut self, uid: &str) {
        self.waits.remove(uid);
    }

    /// Forgets objects that no longer exist, so the map stays as small as the cluster.
    pub fn retain(&mut self, live: &std::collections::HashSet<&str>) {
        self.waits.retain(|uid, _| live.contains(uid.as_str()));
    }
}

/// Starts the manager: it runs the controllers while this node leads.
pub fn spawn(
    store: Store,
    membership: Membership,
    cfg: SchedulerConfig,
) -> tokio::task::JoinHandle<()> {
    let s = store.clone();
    while_leading(store, "controllers and scheduler", move || {
        run(s.clone(), membership.clone(), cfg.clone())
    })
}

/// Runs the task `start` makes while this node is the Raft leader: started
/// when it becomes leader, aborted when it stops being one (or when the
/// returned handle is aborted: the task is held in a guard, so it cannot
/// keep the store and its files open). Leadership is read on every Raft
/// metrics change and every second.
pub fn while_leading<F, Fut>(
    store: Store,
    what: &'static str,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut running: Option<tokio_util::task::AbortOnDropHandle<()>> = None;
        let mut metrics = store.raft().metrics();
        loop {
            let leading = store.leader().map(|(id, _)| id) == Some(store.node_id());
            match (&running, leading) {
                (None, true) => {
                    info!("leading: {what} start");
                    running = Some(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                        start(),
                    )));
                }
                (Some(_), false) => {
                    info!("no longer leading: {what} stop");
                    running = None;
                }
                _ => {}
            }
            tokio::select! {
                r = metrics.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

async fn run(store: Store, membership: Membership, cfg: SchedulerConfig) {
    let mut lifecycle = nodes::Lifecycle::default();
    let mut backoff = Backoff::default();
    let mut job_backoff = Backoff::default();
    let mut cron_backoff = Backoff::default();
    let mut ds_backoff = Backoff::default();
    let mut sts_backoff = Backoff::default();
    let mut rotation = secrets::Rotation::default();
    let mut sweep = AccountSweep::default();
    let mut collector = gc::Collector::default();
    let mut watch = None;
    loop {
        if watch.is_none() {
            watch = store.watch(None, None, None).ok();
        }
        let started = std::time::Instant::now();
        tracing::Instrument::instrument(
            pass(
                &store,
                &membership,
                &cfg,
                &mut lifecycle,
                &mut backoff,
                &mut job_backoff,
                &mut cron_backoff,
                &mut ds_backoff,
                &mut sts_backoff,
                &mut rotation,
                &mut sweep,
                &mut collector,
            ),
            tracing::info_span!("controller_pass"),
        )
        .await;
        ::metrics::histogram!(metrics::PASS_SECONDS).record(started.elapsed().as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(PASS_EVERY) => {}
            ev = async {
                match watch.as_mut() {
                    Some(w) => w.next().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if ev.is_err() {
                    watch = None;
                }
                // Let a burst of changes land before the next pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pass(
    store: &Store,
    membership: &Membership,
    cfg: &SchedulerConfig,
    lifecycle: &mut nodes::Lifecycle,
    backoff: &mut Backoff,
    job_backoff: &mut Backoff,
    cron_backoff: &mut Backoff,
    ds_backoff: &mut Backoff,
    sts_backoff: &mut Backoff,
    rotation: &mut secrets::Rotation,
    sweep: &mut AccountSweep,
    collector: &mut gc::Collector,
) {
    let list = |k: Kind| store.list(k, None).map(|(v, _)| v);
    let (Ok(node_objs), Ok(pod_objs)) = (list(Kind::Node), list(Kind::Pod)) else {
        warn!("controllers: cannot read the replica");
        return;
    };
    namespaces::reconcile(store).await;
    secrets::reconcile(store, rotation).await;
    accounts(store, sweep).await;
    storage::reconcile(store, &pod_objs).await;
    disruption::reconcile(store, &pod_objs).await;
    quota::reconcile(store).await;
    collector.reconcile(store).await;
    let health = crate::membership::node_health(membership);
    // A pass runs every PASS_EVERY anyway, so the time until the next
    // node's grace ends needs no timer of its own.
    let _next_eviction = lifecycle
        .reconcile(store, &node_objs, &pod_objs, &health, cfg)
        .await;
    if let (Ok(deployments), Ok(sets)) = (list(Kind::Deployment), list(Kind::ReplicaSet)) {
        gc::collect(store, "Deployment", &deployments, &sets).await;
        gc::collect(store, "ReplicaSet", &sets, &pod_objs).await;
        let pods: Vec<PodView> = pod_objs.iter().filter_map(PodView::of).collect();
        // Without the configuration a template hash would be wrong, and a
        // wrong hash is a rollout: no deployment pass then.
        match configs(store, &deployments) {
            Ok(configs) => {
                deployment::reconcile(store, &managed(&deployments), &sets, &pods, &configs).await;
            }
            Err(e) => warn!("deployments: cannot read ConfigMaps and Secrets: {e}"),
        }
    }
    // Events are listed once per pass, like pods: the replica's decoded
    // mirror makes a list a copy, but a Job of thousands of pods leaves
    // thousands of events, and every controller below reads them.
    let events = list(Kind::Event);
    if let (Ok(crons), Ok(jobs)) = (list(Kind::CronJob), list(Kind::Job)) {
        gc::collect(store, "CronJob", &crons, &jobs).await;
        cronjob::reconcile(store, &managed(&crons), &jobs, now_secs(), cron_backoff).await;
    }
    // Read again: the CronJob pass may have created Jobs. Pods are not: a
    // pod created since the pass began is seen by the next pass, and every
    // write below is conditional on the versions it read.
    if let Ok(jobs) = list(Kind::Job) {
        let pods = &pod_objs;
        gc::collect(store, "Job", &jobs, pods).await;
        if let Ok(events) = &events {
            gc::collect(store, "Job", &jobs, events).await;
            if let Ok(crons) = list(Kind::CronJob) {
                gc::collect(store, "CronJob", &crons, events).await;
            }
        }
        let settings = job::Settings {
            backoff_base_ms: cfg.job_backoff_ms,
            max_parallelism: cfg.max_replicas,
        };
        job::reconcile(store, &managed(&jobs), pods, settings, job_backoff).await;
    }
    // Read again: the deployment pass may have created or scaled ReplicaSets.
    if let Ok(sets) = list(Kind::ReplicaSet) {
        let pods: Vec<PodView> = pod_objs.iter().filter_map(PodView::of).collect();
        replicaset::reconcile(store, &pods, &managed(&sets), cfg.max_replicas, backoff).await;
    }
    let alive = |name: &str| health.get(name).is_some_and(|h| h.is_up());
    if let (Ok(sets), Ok(revisions), Ok(events)) = (
        list(Kind::DaemonSet),
        list(Kind::ControllerRevision),
        &events,
    ) {
        gc::collect(store, "DaemonSet", &sets, &pod_objs).await;
        gc::collect(store, "DaemonSet", &sets, &revisions).await;
        gc::collect(store, "DaemonSet", &sets, events).await;
        let input = daemonset::Inputs {
            pods: &pod_objs,
            nodes: &node_objs,
            revisions: &revisions,
            events,
        };
        daemonset::reconcile(store, &managed(&sets), input, &alive, ds_backoff).await;
    }
    if let (Ok(sets), Ok(claims), Ok(revisions), Ok(events)) = (
        list(Kind::StatefulSet),
        list(Kind::PersistentVolumeClaim),
        list(Kind::ControllerRevision),
        &events,
    ) {
        gc::collect(store, "StatefulSet", &sets, &pod_objs).await;
        gc::collect(store, "StatefulSet", &sets, &revisions).await;
        gc::collect(store, "StatefulSet", &sets, events).await;
        let input = statefulset::Inputs {
            pods: &pod_objs,
            claims: &claims,
            revisions: &revisions,
        };
        statefulset::reconcile(store, &managed(&sets), input, sts_backoff).await;
    }
    ingress::reconcile(store, &node_objs, &alive).await;
    if let Err(e) = scheduler::schedule_pending(store, &alive, cfg.strategy, 1000).await {
        warn!("scheduler pass: {e}");
    }
}

/// The owners a workload controller manages now. One marked for deletion
/// (waiting for its finalizers, or for its dependents in a foreground
/// delete) is left alone, as Kubernetes' controllers leave it, so it makes
/// no new dependents while the garbage collector deletes them; the
/// collectors above still see it, so its dependents are not orphaned.
fn managed(owners: &[Object]) -> std::borrow::Cow<'_, [Object]> {
    if owners
        .iter()
        .all(|o| o.metadata.deletion_timestamp.is_none())
    {
        return std::borrow::Cow::Borrowed(owners);
    }
    owners
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect()
}

/// ServiceAccounts: their Tokens and Secrets collected once the account is
/// gone (which revokes the token), then defaults and tokens made.
/// When the account controller last looked through every Secret for
/// token Secrets whose account is gone, and which accounts there were.
#[derive(Debug, Default)]
struct AccountSweep {
    last: Option<(std::time::Instant, Vec<String>)>,
}

/// How long the Secrets are not looked through again while the accounts
/// stay the same: a Secret's account only goes by being deleted, which
/// changes the accounts and sweeps at once; the period is a safety net.
const ACCOUNT_SWEEP_EVERY: Duration = Duration::from_secs(60);

async fn accounts(store: &Store, sweep: &mut AccountSweep) {
    let list = |k: Kind| store.list(k, None).map(|(v, _)| v);
    let (Ok(namespaces), Ok(accounts), Ok(tokens)) = (
        list(Kind::Namespace),
        list(Kind::ServiceAccount),
        list(Kind::Token),
    ) else {
        warn!("serviceaccounts: cannot read the replica");
        return;
    };
    gc::collect(store, "ServiceAccount", &accounts, &tokens).await;
    // Listing every Secret is a parse per Secret: not on every pass (a
    // pass runs on every write), only when an account went or came, or
    // once a minute.
    let uids: Vec<String> = accounts
        .iter()
        .filter_map(|a| a.metadata.uid.clone())
        .collect();
    let due = sweep
        .last
        .as_ref()
        .is_none_or(|(at, seen)| *seen != uids || at.elapsed() >= ACCOUNT_SWEEP_EVERY);
    if due {
        match store.list_sealed() {
            Ok(secrets) => {
                gc::collect(store, "ServiceAccount", &accounts, &secrets).await;
                sweep.last = Some((std::time::Instant::now(), uids));
            }
            Err(e) => warn!("serviceaccounts: cannot read the Secrets: {e}"),
        }
    }
    serviceaccounts::reconcile(store, &namespaces, &accounts).await;
}

/// The ConfigMaps and (opened) Secrets the Deployments' templates read,
/// fetched by name: only those decide a config hash, and opening every
/// Secret of the cluster each pass would cost a decryption per Secret per
/// pass (a pass runs on every write).
fn configs(
    store: &Store,
    deployments: &[Object],
) -> Result<deployment::Configs, crate::store::StoreError> {
    let mut wanted = std::collections::BTreeSet::new();
    for d in deployments {
        let (Ok(body), Some(ns)) = (
            <crate::resource::types::DeploymentBody as crate::resource::types::Body>::from_object(
                d,
            ),
            d.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        for (kind, name) in confighash::referenced(&body.spec.template) {
            wanted.insert(crate::resource::ObjectKey::new(kind, ns, &name));
        }
    }
    let mut objects = Vec::with_capacity(wanted.len());
    let mut unreadable = std::collections::BTreeSet::new();
    for key in wanted {
        if key.kind != Kind::Secret {
            objects.extend(store.get(&key)?);
            continue;
        }
        let Some(mut s) = store.get_sealed(&key)? else {
            continue;
        };
        match store.open_secret(&mut s) {
            Ok(()) => objects.push(s),
            Err(e) => {
                tracing::debug!("{e}");
                unreadable.insert((key.namespace, key.name));
            }
        }
    }
    Ok(deployment::Configs::new(&objects, unreadable))
}

/// Milliseconds since the epoch now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The uid of the object's controlling owner.
pub fn owned_by(o: &Object) -> Option<&str> {
    o.metadata.controller_ref().map(|r| r.uid.as_str())
}

/// Pods grouped by their controlling owner's uid.
pub fn pods_by_owner(pods: &[PodView]) -> BTreeMap<String, Vec<&PodView>> {
    let mut m: BTreeMap<String, Vec<&PodView>> = BTreeMap::new();
    for p in pods {
        if let Some(o) = &p.owner {
            m.entry(o.clone()).or_default().push(p);
        }
    }
    m
}

/// A `FailedCreate` Warning event on a workload whose new pod was refused
/// (a full quota, a LimitRange bound), as Kubernetes writes it: the reason
/// shows in `describe`, not only in the leader's log. `component` is the
/// event's source (`job-controller`, ...).
pub(super) async fn failed_create(
    store: &Store,
    owner: &Object,
    key: &crate::resource::ObjectKey,
    why: &str,
    component: &str,
) {
    let e = job::JobEvent {
        warning: true,
        reason: "FailedCreate",
        message: format!("Error creating: {why}"),
    };
    let reference = crate::resource::OwnerReference::to(owner, false);
    let now = crate::resource::time::now_rfc3339();
    if let Ok(op) = job::event(owner, key, &e, &now, reference, component) {
        let _ = store.write(crate::store::Command { ops: vec![op] }).await;
    }
}

/// An operation that changes nothing but fails the whole command unless
/// `o` is still at the resourceVersion it was read at.
pub fn fence(o: &Object) -> Result<Op, String> {
    Ok(Op::Check {
        key: o.key().ok_or("object of unknown kind")?,
        version: o.resource_version(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ObjectKey;
    use crate::store::{StoreError, TxnError};

    #[test]
    fn lost_races_are_told_from_failures() {
        let key = ObjectKey::new(Kind::ReplicaSet, "default", "web-1");
        let conflict = ControllerError::Store(StoreError::Txn(TxnError::Conflict {
            key: key.clone(),
            expected: 3,
            actual: 4,
        }));
        assert!(conflict.is_race());
        let too_large = ControllerError::Store(StoreError::Txn(TxnError::TooLarge {
            bytes: 10,
            limit: 1,
        }));
        assert!(!too_large.is_race());
        assert!(!ControllerError::from("deployment key").is_race());
    }
}
