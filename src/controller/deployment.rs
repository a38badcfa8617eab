//! The Deployment controller, as Kubernetes': one ReplicaSet per pod
//! template (named `{deployment}-{hash}`, the hash also labelling its pods
//! as `pod-template-hash`), revisions numbered in the annotation
//! `deployment.kubernetes.io/revision`, and a rolling update that never
//! lets the pods exceed `replicas + maxSurge` nor the available ones fall
//! below `replicas - maxUnavailable`. `Recreate` stops the old pods first.
//!
//! A rollout that makes no progress for `progressDeadlineSeconds` is
//! marked failed (`Progressing` False, `ProgressDeadlineExceeded`) and
//! stops where it is: the old pods keep serving until the template
//! changes again (`shoal rollout undo`). Paused deployments are left
//! alone. Old ReplicaSets beyond `revisionHistoryLimit` are deleted once
//! they have no pods.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::info;

use super::confighash;
use super::replicaset::owned_sets;
use super::{PodView, fence, now_secs, pods_by_owner};
use crate::resource::status::{Condition, DeploymentStatus};
use crate::resource::time::now_rfc3339;
use crate::resource::types::{Body, DeploymentBody, PodTemplateSpec, ReplicaSetBody, StrategyType};
use crate::resource::{Kind, Object, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// The annotation holding revision numbers.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label that ties a ReplicaSet and its pods to one template.
pub const TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation whose text `rollout history` shows.
pub(crate) const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The hash of a pod template (without its own hash label).
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        m.labels.remove(TEMPLATE_HASH);
        // Empty metadata and none at all are the same template.
        if m.labels.is_empty() && m.annotations.is_empty() && m.creation_timestamp.is_none() {
            t.metadata = None;
        }
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..5])
}

fn revision(o: &Object) -> u64 {
    o.metadata
        .annotations
        .get(REVISION)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Counts of one ReplicaSet's live pods.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    active: u32,
    ready: u32,
    available: u32,
}

fn counts(rs: &Object, by_owner: &BTreeMap<String, Vec<&PodView>>, min_ready: u64) -> Counts {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let mut c = Counts::default();
    for p in by_owner
        .get(&uid)
        .into_iter()
        .flatten()
        .filter(|p| !p.terminal)
    {
        c.active += 1;
        c.ready += u32::from(p.ready);
        c.available += u32::from(p.available(min_ready));
    }
    c
}

fn spec_replicas(rs: &Object) -> u32 {
    ReplicaSetBody::from_object(rs)
        .map(|b| b.spec.replicas)
        .unwrap_or(0)
}

/// The ConfigMaps and Secrets (opened) of the cluster by (kind, namespace,
/// name): their resourceVersion and [`confighash::content`].
pub type ConfigIndex = BTreeMap<(Kind, String, String), (u64, BTreeMap<String, String>)>;

/// What the deployment pass knows of the cluster's configuration.
#[derive(Debug, Default)]
pub struct Configs {
    /// Every readable ConfigMap and Secret.
    pub index: ConfigIndex,
    /// Secrets (namespace, name) that did not open: a Deployment reading
    /// one waits, rather than roll to a hash computed without it.
    pub unreadable: std::collections::BTreeSet<(String, String)>,
}

impl Configs {
    /// Indexes listed ConfigMaps and (opened) Secrets.
    pub fn new(
        objects: &[Object],
        unreadable: std::collections::BTreeSet<(String, String)>,
    ) -> Configs {
        let index = objects
            .iter()
            .filter_map(|o| {
                let k = o.key()?;
                Some((
                    (k.kind, k.namespace, k.name),
                    (o.resource_version(), confighash::content(o)),
                ))
            })
            .collect();
        Configs { index, unreadable }
    }
}

/// One pass over every Deployment.
pub async fn reconcile(
    store: &Store,
    deployments: &[Object],
    sets: &[Object],
    pods: &[PodView],
    configs: &Configs,
) {
    let by_owner = pods_by_owner(pods);
    for d in deployments {
        if let Err(e) = sync_one(store, d, sets, &by_owner, configs).await {
            let key = d.key().map(|k| k.to_string()).unwrap_or_default();
            e.log("deployment", &key);
        }
    }
}

fn new_replicaset(
    d: &Object,
    body: &DeploymentBody,
    hash: &str,
    revision: u64,
    replicas: u32,
) -> Result<Object, String> {
    let ns = d
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut template = body.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels.insert(TEMPLATE_HASH.into(), hash.into());
    meta.creation_timestamp = None;
    let mut selector = body.spec.selector.clone();
    selector
        .match_labels
        .insert(TEMPLATE_HASH.into(), hash.into());
    let rs = ReplicaSetBody {
        spec: crate::resource::types::ReplicaSetSpec {
            replicas,
            selector,
            template: template.clone(),
            min_ready_seconds: body.spec.min_ready_seconds,
        },
    };
    let mut labels = template.labels();
    labels.insert(TEMPLATE_HASH.into(), hash.into());
    let mut annotations = BTreeMap::from([(REVISION.to_string(), revision.to_string())]);
    if let Some(c) = d.metadata.annotations.get(CHANGE_CAUSE) {
        annotations.insert(CHANGE_CAUSE.into(), c.clone());
    }
    let body = serde_json::to_value(&rs).map_err(|e| e.to_string())?;
    Ok(Object {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        metadata: ObjectMeta {
            name: format!("{}-{hash}", d.metadata.name),
            namespace: Some(ns),
            labels,
            annotations,
            creation_timestamp: Some(now_rfc3339()),
            owner_references: vec![OwnerReference::to(d, true)],
            ..Default::default()
        },
        body: body.as_object().cloned().unwrap_or_default(),
    })
}

/// A Put of `rs` with a new replica count, conditional on what was read.
fn scale(rs: &Object, replicas: u32) -> Result<Op, String> {
    let mut copy = rs.clone();
    copy.body.remove("status");
    if let Some(Value::Object(spec)) = copy.body.get_mut("spec") {
        spec.insert("replicas".into(), json!(replicas));
    }
    Ok(Op::Put {
        key: rs.key().ok_or("replicaset key")?,
        object: serde_json::to_vec(&copy).map_err(|e| e.to_string())?,
        precondition: Precondition::Version(rs.resource_version()),
    })
}

async fn sync_one(
    store: &Store,
    d: &Object,
    all_sets: &[Object],
    by_owner: &BTreeMap<String, Vec<&PodView>>,
    configs: &Configs,
) -> Result<(), super::ControllerError> {
    let key = d.key().ok_or("deployment key")?;
    let mut body = DeploymentBody::from_object(d).map_err(|e| e.to_string())?;
    // The template the pods get carries the hash of the configuration they
    // read, so a change to it is a new template (see confighash).
    for (kind, name) in confighash::referenced(&body.spec.template) {
        if kind == Kind::Secret
            && configs
                .unreadable
                .contains(&(key.namespace.clone(), name.clone()))
        {
            return Err(format!("Secret {name:?} does not open; not rolling until it does").into());
        }
    }
    let lookup = |kind: Kind, name: &str| {
        configs
            .index
            .get(&(kind, key.namespace.clone(), name.to_string()))
            .map(|(_, c)| c.clone())
    };
    let config_hash = confighash::config_hash(&d.metadata, &body.spec.template, &lookup);
    body.spec.template =
        confighash::effective_template(&body.spec.template, config_hash.as_deref());
    let spec = &body.spec;
    let replicas = spec.replicas.unwrap_or(1);
    let min_ready = u64::from(spec.min_ready_seconds.unwrap_or(0));
    let hash = template_hash(&spec.template);
    let owned = owned_sets(d, all_sets);
    let max_revision = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let new_rs = owned
        .iter()
        .copied()
        .find(|rs| rs.metadata.labels.get(TEMPLATE_HASH) == Some(&hash));
    let old: Vec<&Object> = owned
        .iter()
        .copied()
        .filter(|rs| rs.metadata.labels.get(TEMPLATE_HASH) != Some(&hash))
        .collect();
    let prev_status: DeploymentStatus = d.status_or_default();
    let generation = d.metadata.generation.unwrap_or(1);
    let paused = spec.paused == Some(true);
    let deadline = u64::from(spec.progress_deadline_seconds.unwrap_or(600));
    let failed = prev_status
        .condition("Progressing")
        .and_then(|c| c.reason.as_deref())
        == Some("ProgressDeadlineExceeded")
        && prev_status.observed_generation == Some(generation);

    let mut ops: Vec<Op> = Vec::new();
    let mut current_revision = new_rs.map(revision).unwrap_or(0);
    // Replica counts after this pass's changes, for the status.
    let new_counts = new_rs
        .map(|rs| counts(rs, by_owner, min_ready))
        .unwrap_or_default();
    let old_counts: Vec<Counts> = old
        .iter()
        .map(|rs| counts(rs, by_owner, min_ready))
        .collect();
    let old_spec_total: u32 = old.iter().map(|rs| spec_replicas(rs)).sum();

    if !paused && !failed {
        let strategy = spec
            .strategy
            .as_ref()
            .and_then(|s| s.strategy_type)
            .unwrap_or_default();
        match new_rs {
            None => {
                // A new template: its ReplicaSet starts at what the strategy allows now.
                let initial = match strategy {
                    StrategyType::Recreate => {
                        if old_spec_total == 0 && old_counts.iter().all(|c| c.active == 0) {
                            replicas
                        } else {
                            0
                        }
                    }
                    StrategyType::RollingUpdate => {
                        if old_spec_total == 0 {
                            replicas
                        } else {
                            let (surge, _) = surge_unavailable(&body, replicas);
                            (replicas + surge)
                                .saturating_sub(old_spec_total)
                                .min(replicas)
                        }
                    }
                };
                current_revision = max_revision + 1;
                let rs = new_replicaset(d, &body, &hash, current_revision, initial)?;
                info!(deployment = %key, replicaset = %rs.metadata.name, revision = current_revision, "new ReplicaSet");
                // Made from the configuration read: fenced on it too.
                if config_hash.is_some() {
                    for (k, name) in confighash::referenced(&body.spec.template) {
                        if let Some((version, _)) =
                            configs.index.get(&(k, key.namespace.clone(), name.clone()))
                        {
                            ops.push(Op::Check {
                                key: crate::resource::ObjectKey::new(k, &key.namespace, &name),
                                version: *version,
                            });
                        }
                    }
                }
                ops.push(Op::Put {
                    key: rs.key().ok_or("replicaset key")?,
                    object: serde_json::to_vec(&rs).map_err(|e| e.to_string())?,
                    precondition: Precondition::MustNotExist,
                });
                for rs in &old {
                    if strategy == StrategyType::Recreate && spec_replicas(rs) > 0 {
                        ops.push(scale(rs, 0)?);
                    }
                }
            }
            Some(nrs) => {
                if revision(nrs) < max_revision {
                    // An old template came back (undo): it becomes the newest revision.
                    current_revision = max_revision + 1;
                    let mut copy = nrs.clone();
                    copy.body.remove("status");
                    copy.metadata
                        .annotations
                        .insert(REVISION.into(), current_revision.to_string());
                    ops.push(Op::Put {
                        key: nrs.key().ok_or("replicaset key")?,
                        object: serde_json::to_vec(&copy).map_err(|e| e.to_string())?,
                        precondition: Precondition::Version(nrs.resource_version()),
                    });
                } else {
                    ops.extend(roll(
                        &body,
                        replicas,
                        strategy,
                        nrs,
                        new_counts,
                        &old,
                        &old_counts,
                    )?);
                }
            }
        }
    }

    // Old ReplicaSets beyond the history limit go once they are empty.
    let limit = spec.revision_history_limit.unwrap_or(10) as usize;
    let mut empty_old: Vec<&Object> = old
        .iter()
        .zip(&old_counts)
        .filter(|(rs, c)| spec_replicas(rs) == 0 && c.active == 0)
        .map(|(rs, _)| *rs)
        .collect();
    if empty_old.len() > limit {
        empty_old.sort_by_key(|rs| revision(rs));
        for rs in empty_old.iter().take(empty_old.len() - limit) {
            if let Some(k) = rs.key() {
                ops.push(Op::Delete {
                    key: k,
                    precondition: Precondition::Version(rs.resource_version()),
                });
            }
        }
    }

    // The deployment's own revision annotation follows its newest ReplicaSet.
    if current_revision > 0 && revision(d) != current_revision {
        let mut copy = d.clone();
        copy.body.remove("status");
        copy.metadata
            .annotations
            .insert(REVISION.into(), current_revision.to_string());
        ops.push(Op::Put {
            key: key.clone(),
            object: serde_json::to_vec(&copy).map_err(|e| e.to_string())?,
            precondition: Precondition::Version(d.resource_version()),
        });
    }

    let status = deployment_status(
        d,
        &body,
        replicas,
        new_counts,
        &old_counts,
        failed,
        deadline,
        new_rs.is_some(),
        !ops.is_empty(),
    );
    if prev_status != status {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: d.metadata.uid.clone(),
            status: serde_json::to_vec(&status).map_err(|e| e.to_string())?,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    // Unless this already rewrites the deployment, fence on it.
    if !ops
        .iter()
        .any(|o| matches!(o, Op::Put { key: k, .. } if *k == key))
    {
        ops.insert(0, fence(d)?);
    }
    store.write(Command { ops }).await?;
    Ok(())
}

/// maxSurge and maxUnavailable resolved against the replica count.
pub(crate) fn surge_unavailable(body: &DeploymentBody, replicas: u32) -> (u32, u32) {
    let ru = body
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let pct25 = crate::resource::types::IntOrString::String("25%".into());
    let surge = ru
        .max_surge
        .unwrap_or(pct25.clone())
        .scaled_value(replicas, true)
        .unwrap_or(1);
    let mut unavailable = ru
        .max_unavailable
        .unwrap_or(pct25)
        .scaled_value(replicas, false)
        .unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// One step of the rollout: scale the new ReplicaSet up within the surge,
/// and old ones down while enough pods stay available.
fn roll(
    body: &DeploymentBody,
    replicas: u32,
    strategy: StrategyType,
    nrs: &Object,
    new_counts: Counts,
    old: &[&Object],
    old_counts: &[Counts],
) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    let new_spec = spec_replicas(nrs);
    let old_spec: Vec<u32> = old.iter().map(|rs| spec_replicas(rs)).collect();
    let old_total: u32 = old_spec.iter().sum();
    if strategy == StrategyType::Recreate {
        if old_total > 0 {
            for (rs, n) in old.iter().zip(&old_spec) {
                if *n > 0 {
                    ops.push(scale(rs, 0)?);
                }
            }
        } else if old_counts.iter().all(|c| c.active == 0) && new_spec != replicas {
            ops.push(scale(nrs, replicas)?);
        }
        return Ok(ops);
    }
    if old_total == 0 {
        // Nothing to replace: plain scaling.
        if new_spec != replicas {
            ops.push(scale(nrs, replicas)?);
        }
        return Ok(ops);
    }
    let (surge, unavailable) = surge_unavailable(body, replicas);
    let max_total = replicas + surge;
    let min_available = replicas.saturating_sub(unavailable);
    // Scale up the new ReplicaSet within the surge.
    let total = new_spec + old_total;
    let mut target_new = new_spec;
    if new_spec < replicas && total < max_total {
        target_new = (new_spec + (max_total - total)).min(replicas);
    } else if new_spec > replicas {
        target_new = replicas;
    }
    if target_new != new_spec {
        ops.push(scale(nrs, target_new)?);
    }
    // Scale old ones down: first what is not available anyway, then healthy
    // pods while the available total stays at least replicas - maxUnavailable.
    let available_all: u32 =
        new_counts.available + old_counts.iter().map(|c| c.available).sum::<u32>();
    let new_unavailable = new_spec.saturating_sub(new_counts.available);
    let mut cleanup = (new_spec + old_total)
        .saturating_sub(min_available)
        .saturating_sub(new_unavailable);
    let mut can_remove = available_all.saturating_sub(min_available);
    let mut next: Vec<u32> = old_spec.clone();
    for (i, c) in old_counts.iter().enumerate() {
        let unhealthy = next[i].saturating_sub(c.available);
        let d = unhealthy.min(cleanup);
        next[i] -= d;
        cleanup -= d;
    }
    for (i, c) in old_counts.iter().enumerate() {
        let healthy = next[i].min(c.available);
        let d = healthy.min(can_remove);
        next[i] -= d;
        can_remove -= d;
    }
    for ((rs, before), after) in old.iter().zip(&old_spec).zip(&next) {
        if before != after {
            ops.push(scale(rs, *after)?);
        }
    }
    Ok(ops)
}

#[allow(clippy::too_many_arguments)]
fn deployment_status(
    d: &Object,
    body: &DeploymentBody,
    replicas: u32,
    new_counts: Counts,
    old_counts: &[Counts],
    failed: bool,
    deadline: u64,
    has_new: bool,
    acting: bool,
) -> DeploymentStatus {
    let prev: DeploymentStatus = d.status_or_default();
    let generation = d.metadata.generation.unwrap_or(1);
    let total: u32 = new_counts.active + old_counts.iter().map(|c| c.active).sum::<u32>();
    let ready: u32 = new_counts.ready + old_counts.iter().map(|c| c.ready).sum::<u32>();
    let available: u32 = new_counts.available + old_counts.iter().map(|c| c.available).sum::<u32>();
    let (_, unavailable_allowed) = surge_unavailable(body, replicas);
    let now = now_rfc3339();
    let complete = has_new
        && new_counts.active == replicas
        && total == replicas
        && new_counts.available == replicas;
    let counts = [new_counts.active, ready, available, total];
    let last_update = prev
        .condition("Progressing")
        .and_then(|c| c.last_update_time.clone());
    let same_generation = prev.observed_generation == Some(generation);
    // Progress is any change in counts, any write, or a new generation.
    let progressed = acting || !same_generation || prev.shoal_progress != Some(counts);
    let last_update = match last_update {
        Some(t) if !progressed => t,
        _ => now.clone(),
    };
    let stalled = !complete
        && !failed
        && crate::resource::time::parse_rfc3339(&last_update)
            .is_some_and(|t| now_secs().saturating_sub(t) > deadline);
    let rs_name = format!("{}-{}", d.metadata.name, template_hash(&body.spec.template));
    let (prog_status, reason, message) = if failed || stalled {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    // A condition keeps its transition time while its status holds.
    let keep_time = |kind: &str, status: &str| -> String {
        prev.condition(kind)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone())
    };
    let avail_ok = available >= replicas.saturating_sub(unavailable_allowed);
    let avail_status = if avail_ok { "True" } else { "False" };
    DeploymentStatus {
        observed_generation: Some(generation),
        replicas: total,
        updated_replicas: new_counts.active,
        ready_replicas: ready,
        available_replicas: available,
        unavailable_replicas: replicas.saturating_sub(available),
        shoal_progress: Some(counts),
        conditions: vec![
            Condition {
                type_: "Available".into(),
                status: avail_status.into(),
                reason: Some(
                    if avail_ok {
                        "MinimumReplicasAvailable"
                    } else {
                        "MinimumReplicasUnavailable"
                    }
                    .into(),
                ),
                last_transition_time: Some(keep_time("Available", avail_status)),
                ..Condition::default()
            },
            Condition {
                type_: "Progressing".into(),
                status: prog_status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_update_time: Some(last_update.clone()),
                last_transition_time: Some(keep_time("Progressing", prog_status)),
                ..Condition::default()
            },
        ],
        extra: prev.extra.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_ignores_its_own_label() {
        let mut t = PodTemplateSpec::default();
        let h = template_hash(&t);
        t.metadata
            .get_or_insert_with(Default::default)
            .labels
            .insert(TEMPLATE_HASH.into(), "x".into());
        assert_eq!(template_hash(&t), h);
        t.spec.restart_policy = Some(crate::resource::types::RestartPolicy::Always);
        assert_ne!(template_hash(&t), h);
    }
}
