//! `ephemeral-storage` limits, enforced as the kubelet does: by eviction.
//! On a slow period (`agent.ephemeral_check_secs`) the agent measures the
//! local disk use of its pods that have a limit: each disk-backed emptyDir
//! and each running container's own writes (Docker's writable layer, the
//! process runtime's working directory). A pod over a limit is evicted:
//! phase Failed, reason `Evicted`, a message naming the use and the limit,
//! and a Warning event; the pod's sync then stops its containers.
//!
//! [`verdict`] decides from the measures alone (pure, unit-tested); the IO
//! around it is bounded: at most [`PODS_PER_PASS`] pods per pass (the rest
//! the next passes, in rotation) and [`ENTRIES_PER_DIR`] entries per
//! directory walk (a count cut short is a lower bound, which can only
//! evict later, never wrongly).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Ctx;
use super::events::{self, EventKind, PendingEvent};
use crate::resource::extended::EPHEMERAL_STORAGE;
use crate::resource::status::{PodPhase, PodStatus};
use crate::resource::types::{Body, PodBody, PodSpec, parse_memory_bytes};
use crate::resource::{Object, ObjectKey};
use crate::runtime::{ContainerState, LABEL_CONTAINER, LABEL_POD_UID};
use crate::store::{Command, Op, Precondition};

/// Most pods measured in one pass.
pub const PODS_PER_PASS: usize = 32;
/// Most entries one walk of a directory looks at.
pub const ENTRIES_PER_DIR: usize = 100_000;

/// A measured use against an optional limit, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The container's or volume's name.
    pub name: String,
    /// Bytes in use.
    pub used: u64,
    /// The limit, when set.
    pub limit: Option<u64>,
}

/// One pod's measured local disk use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDisk {
    /// Its disk-backed emptyDirs against their `sizeLimit`.
    pub empty_dirs: Vec<Use>,
    /// Its containers' own writes against their `ephemeral-storage` limit.
    pub containers: Vec<Use>,
}

/// Why the pod must be evicted, or `None`: first an emptyDir over its
/// `sizeLimit`, then the pod over the sum of its containers' limits
/// (emptyDirs and containers counted together, when any container has a
/// limit), then a container over its own, in the kubelet's order.
pub fn verdict(p: &PodDisk) -> Option<String> {
    for v in &p.empty_dirs {
        if let Some(limit) = v.limit.filter(|l| v.used > *l) {
            return Some(format!(
                "Usage of EmptyDir volume \"{}\" ({}) exceeds the limit \"{}\".",
                v.name,
                show(v.used),
                show(limit)
            ));
        }
    }
    let limits: Vec<u64> = p.containers.iter().filter_map(|c| c.limit).collect();
    if !limits.is_empty() {
        let limit = limits.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let used = p
            .empty_dirs
            .iter()
            .chain(&p.containers)
            .fold(0u64, |a, u| a.saturating_add(u.used));
        if used > limit {
            return Some(format!(
                "Pod ephemeral local storage usage ({}) exceeds the total limit of containers {}.",
                show(used),
                show(limit)
            ));
        }
    }
    for c in &p.containers {
        if let Some(limit) = c.limit.filter(|l| c.used > *l) {
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit \"{}\" (using {}).",
                c.name,
                show(limit),
                show(c.used)
            ));
        }
    }
    None
}

/// Bytes as a quantity: exact in the largest binary unit that divides
/// them, else in Mi with one decimal (a use is rarely round).
fn show(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    if bytes >= 1 << 20 {
        format!("{:.1}Mi", bytes as f64 / (1u64 << 20) as f64)
    } else {
        bytes.to_string()
    }
}

/// A container's `ephemeral-storage` limit in bytes.
fn container_limit(c: &crate::resource::types::Container) -> Option<u64> {
    let r = c.resources.as_ref()?;
    parse_memory_bytes(r.limits.get(EPHEMERAL_STORAGE)?.as_str()).ok()
}

/// The disk-backed emptyDirs of a spec with their `sizeLimit`.
fn disk_empty_dirs(spec: &PodSpec) -> Vec<(String, Option<u64>)> {
    spec.volumes
        .iter()
        .filter_map(|v| {
            let e = v.empty_dir.as_ref()?;
            if e.medium.as_deref() == Some("Memory") {
                return None;
            }
            let limit = e
                .size_limit
                .as_ref()
                .and_then(|q| parse_memory_bytes(q.as_str()).ok());
            Some((v.name.clone(), limit))
        })
        .collect()
}

/// Whether anything in the spec limits local disk use.
fn has_limits(spec: &PodSpec) -> bool {
    spec.containers.iter().any(|c| container_limit(c).is_some())
        || disk_empty_dirs(spec).iter().any(|(_, l)| l.is_some())
}

/// Runs the checks until the task is dropped.
pub async fn run(ctx: Arc<Ctx>) {
    if ctx.cfg.ephemeral_check_secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(ctx.cfg.ephemeral_check_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    loop {
        tick.tick().await;
        if ctx.store.is_member() {
            next = pass(&ctx, next).await;
        }
    }
}

/// One pass over at most [`PODS_PER_PASS`] pods with limits, from the
/// `from`-th; returns where the next pass starts.
async fn pass(ctx: &Ctx, from: usize) -> usize {
    let Some(pods) = super::pods_here(ctx) else {
        return from;
    };
    let mut limited: Vec<(Object, PodSpec)> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !p.status_or_default::<PodStatus>().is_terminal())
        .filter_map(|p| {
            let spec = PodBody::from_object(&p).ok()?.spec;
            has_limits(&spec).then_some((p, spec))
        })
        .collect();
    if limited.is_empty() {
        return 0;
    }
    limited.sort_by(|a, b| a.0.metadata.name.cmp(&b.0.metadata.name));
    let from = from % limited.len();
    let listed = ctx
        .listed
        .read()
        .ok()
        .and_then(|l| l.as_ref().map(|(_, c)| Arc::clone(c)));
    let Some(listed) = listed else {
        return from;
    };
    let take = limited.len().min(PODS_PER_PASS);
    for k in 0..take {
        let (pod, spec) = &limited[(from + k) % limited.len()];
        let disk = measure(ctx, pod, spec, &listed).await;
        if let Some(message) = verdict(&disk) {
            evict(ctx, pod, message).await;
        }
    }
    (from + take) % limited.len()
}

/// The pod's disk use now.
async fn measure(
    ctx: &Ctx,
    pod: &Object,
    spec: &PodSpec,
    listed: &[crate::runtime::ContainerInfo],
) -> PodDisk {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pod_dir = ctx.pod_volumes_dir(&uid);
    let mut empty_dirs = Vec::new();
    for (name, limit) in disk_empty_dirs(spec) {
        let dir = super::volumes::volume_dir(&pod_dir, &name);
        let walked = tokio::task::spawn_blocking(move || {
            crate::runtime::du::dir_bytes(&dir, ENTRIES_PER_DIR).0
        });
        let used = walked.await.unwrap_or(0);
        empty_dirs.push(Use { name, used, limit });
    }
    let mut containers = Vec::new();
    // App containers only: init containers have finished by the time a
    // pod runs long enough to fill a disk.
    for c in &spec.containers {
        let running = listed.iter().filter(|ci| {
            ci.state == ContainerState::Running
                && ci.labels.get(LABEL_POD_UID) == Some(&uid)
                && ci.labels.get(LABEL_CONTAINER) == Some(&c.name)
        });
        let mut used = 0u64;
        for ci in running {
            match ctx.runtime.disk_usage(&ci.id).await {
                Ok(b) => used = used.saturating_add(b.unwrap_or(0)),
                Err(e) => warn!(container = %ci.id, "cannot measure disk use: {e}"),
            }
        }
        containers.push(Use {
            name: c.name.clone(),
            used,
            limit: container_limit(c),
        });
    }
    PodDisk {
        empty_dirs,
        containers,
    }
}

/// Marks the pod Failed/Evicted with the message and records the event, in
/// one write at the version read (a pod changed meanwhile is measured
/// again next pass).
async fn evict(ctx: &Ctx, pod: &Object, message: String) {
    let Some(key): Option<ObjectKey> = pod.key() else {
        return;
    };
    let mut status: PodStatus = pod.status_or_default();
    status.phase = Some(PodPhase::Failed);
    status.reason = Some("Evicted".into());
    status.message = Some(message.clone());
    let mut updated = pod.clone();
    updated.set_status(&status);
    let Ok(bytes) = serde_json::to_vec(&updated) else {
        return;
    };
    let mut ops = vec![Op::Put {
        key: key.clone(),
        object: bytes,
        precondition: Precondition::Version(pod.resource_version()),
    }];
    let event = PendingEvent::new(EventKind::Warning, "Evicted", message.clone(), "");
    ops.extend(events::ops(
        ctx,
        pod,
        &mut events::Recent::default(),
        vec![event],
    ));
    match ctx.store.write(Command { ops }).await {
        Ok(_) => {
            info!(pod = %key, "evicted: {message}");
            ctx.wake.notify_one();
        }
        Err(e) => warn!(pod = %key, "cannot evict yet: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    fn u(name: &str, used: u64, limit: Option<u64>) -> Use {
        Use {
            name: name.into(),
            used,
            limit,
        }
    }

    #[test]
    fn limits_are_summed_over_the_pod() {
        let p = PodDisk {
            empty_dirs: vec![u("cache", 5 * MI, Some(10 * MI))],
            containers: vec![u("a", 3 * MI, Some(10 * MI)), u("b", 50 * MI, None)],
        };
        // 58Mi used against the 10Mi sum of limits: the pod is over.
        assert!(verdict(&p).is_some_and(|m| m.starts_with("Pod ephemeral")));
        let p = PodDisk {
            empty_dirs: vec![u("cache", 5 * MI, None)],
            containers: vec![u("a", 3 * MI, Some(10 * MI)), u("b", MI, Some(MI))],
        };
        assert_eq!(verdict(&p), None);
        let none = PodDisk {
            empty_dirs: vec![u("big", 900 * MI, None)],
            containers: vec![u("a", 900 * MI, None)],
        };
        assert_eq!(verdict(&none), None, "no limit, no eviction");
    }

    #[test]
    fn the_kubelets_order_and_messages() {
        let p = PodDisk {
            empty_dirs: vec![u("scratch", 20 * MI, Some(10 * MI))],
            containers: vec![u("a", 30 * MI, Some(10 * MI))],
        };
        assert_eq!(
            verdict(&p).as_deref(),
            Some("Usage of EmptyDir volume \"scratch\" (20Mi) exceeds the limit \"10Mi\".")
        );
        let p = PodDisk {
            empty_dirs: vec![u("scratch", 8 * MI, None)],
            containers: vec![u("a", 2 * MI + 1, Some(10 * MI))],
        };
        assert_eq!(
            verdict(&p).as_deref(),
            Some(
                "Pod ephemeral local storage usage (10.0Mi) exceeds the total limit of containers 10Mi."
            )
        );
        let p = PodDisk {
            empty_dirs: vec![],
            containers: vec![u("a", 12 * MI, Some(10 * MI)), u("b", 0, Some(100 * MI))],
        };
        assert_eq!(
            verdict(&p).as_deref(),
            Some("Container a exceeded its local ephemeral storage limit \"10Mi\" (using 12Mi).")
        );
    }

    #[test]
    fn quantities_read_well() {
        assert_eq!(show(10 * MI), "10Mi");
        assert_eq!(show(1 << 30), "1Gi");
        assert_eq!(show(3 * 1024), "3Ki");
        assert_eq!(show(MI + MI / 2 + 7), "1.5Mi");
        assert_eq!(show(500), "500");
    }
}
