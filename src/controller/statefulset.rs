//! The StatefulSet controller: pods `<set>-<ordinal>` for ordinals
//! `start..start+replicas` (`spec.ordinals.start`, 0 by default), each with its claims `<template>-<set>-<ordinal>` made
//! from `volumeClaimTemplates` before the pod and kept when the pod goes,
//! so a recreated `web-1` mounts `web-1`'s data again.
//!
//! `OrderedReady` creates ordinal N only once 0..N-1 are Ready and removes
//! from the highest ordinal, one at a time, while the rest are Ready;
//! `Parallel` does not wait. A pod is replaced only once it is gone or
//! finished: a pod on a node that is down keeps its name until node
//! lifecycle marks it Failed (NodeLost) or the user deletes it, so two
//! pods of one ordinal never exist as objects at once.
//!
//! Templates are ControllerRevisions (`{set}-{hash}`, shared with the
//! DaemonSet controller), the pods labelled with `controller-revision-hash`.
//! `RollingUpdate` deletes the highest ordinal at or above `partition`
//! that runs an old template once every pod is Ready (up to maxUnavailable
//! at once), and the create step brings it back on the new one; ordinals
//! below the partition are (re)created from `currentRevision`. `OnDelete`
//! gives a pod the new template only once the user deletes it.
//!
//! Deciding is [`plan`], pure; [`reconcile`] reads, plans and writes one
//! command per StatefulSet and pass, fenced on the set's resourceVersion,
//! every pod and claim created only if it does not exist yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::daemonset::{REVISION_HASH, revision_ops};
use super::deployment::template_hash;
use super::job::{JobEvent, event};
use super::{ControllerError, PodView, fence};
use crate::resource::status::StatefulSetStatus;
use crate::resource::time::now_rfc3339;
use crate::resource::types::{
    Body, ClaimRetention, ClaimVolume, ControllerRevisionBody, PodManagementPolicy,
    PodTemplateSpec, StatefulSetBody, StatefulSetSpec, StatefulSetStrategyType, Volume, claim_name,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// The label naming the pod, as Kubernetes sets it (a Service can select one pod).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Most pods one StatefulSet creates, and as many it deletes, in a pass
/// (Parallel): one command must stay well under the store's size limit;
/// the rest follows in the next passes.
const MAX_CREATES_PER_PASS: usize = 100;
/// Most orphaned claims marked in one pass.
const MAX_CLAIM_MARKS_PER_PASS: usize = 100;
/// Pods named in one event's message; the rest are counted.
const EVENT_PODS: usize = 10;

/// One of the set's pods as the plan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StsPod {
    /// Its ordinal; `None` for a pod whose name is not `<set>-<n>`.
    pub ordinal: Option<u32>,
    /// Pod name.
    pub name: String,
    /// Its `controller-revision-hash` label.
    pub hash: String,
    /// Succeeded or Failed.
    pub terminal: bool,
    /// Ready condition True.
    pub ready: bool,
    /// Ready for minReadySeconds.
    pub available: bool,
}

/// Where one of the set's claims stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Exists and is not being deleted.
    Live,
    /// Marked for deletion; goes once no pod uses it.
    Deleting,
}

/// What one pass does to a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Pods to create: (ordinal, template hash); their missing claims are
    /// in `create_claims`.
    pub create: Vec<(u32, String)>,
    /// Claims to create, by name (template, ordinal).
    pub create_claims: Vec<(String, u32)>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Claims of scaled-away ordinals to mark for deletion (whenScaled: Delete).
    pub delete_claims: Vec<String>,
    /// The status the set has as read.
    pub status: StatefulSetStatus,
}

/// The ordinal in `pod`'s name if it is `<set>-<n>` (no leading zeros).
pub fn ordinal_of(set: &str, pod: &str) -> Option<u32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

/// Decides one pass for the set `name` whose template hashes to `update`,
/// whose pods below the partition keep `current`, from its pods and the
/// states of the claims that exist (by name).
pub fn plan(
    name: &str,
    spec: &StatefulSetSpec,
    update: &str,
    current: &str,
    pods: &[StsPod],
    claims: &BTreeMap<String, ClaimState>,
) -> Plan {
    let mut p = Plan::default();
    let range = spec.ordinal_range();
    let (start, end) = (range.start, range.end);
    let ordered = spec.policy() == PodManagementPolicy::OrderedReady;
    let rolling = spec.strategy() == StatefulSetStrategyType::RollingUpdate;
    let partition = spec.partition();
    let templates: Vec<&str> = spec
        .volume_claim_templates
        .iter()
        .map(|t| t.metadata.name.as_str())
        .collect();

    // The live pod of each ordinal; a second object of one ordinal cannot
    // exist (one name), so only foreign names and finished pods go here.
    let mut by_ordinal: BTreeMap<u32, &StsPod> = BTreeMap::new();
    for pod in pods {
        match pod.ordinal {
            None => p.delete.push(pod.name.clone()),
            Some(_) if pod.terminal => p.delete.push(pod.name.clone()),
            Some(o) => {
                by_ordinal.insert(o, pod);
            }
        }
    }
    for pod in by_ordinal.values() {
        let st = &mut p.status;
        st.replicas += 1;
        st.ready_replicas += u32::from(pod.ready);
        st.available_replicas += u32::from(pod.available);
        st.current_replicas += u32::from(pod.hash == current);
        st.updated_replicas += u32::from(pod.hash == update);
    }

    // Create: in ordinal order; OrderedReady stops at the first ordinal
    // that is missing, finished or not Ready.
    let mut all_ready = true;
    for o in range.clone() {
        if p.create.len() >= MAX_CREATES_PER_PASS {
            all_ready = false;
            break;
        }
        match by_ordinal.get(&o) {
            Some(pod) if pod.ready => continue,
            Some(_) => {
                all_ready = false;
                if ordered {
                    break;
                }
                continue;
            }
            None => all_ready = false,
        }
        let finished = pods.iter().any(|x| x.ordinal == Some(o) && x.terminal);
        // A finished pod still holds the name this pass; a claim being
        // deleted (scaled away earlier) must go before a new one is made.
        let claims_deleting = templates
            .iter()
            .any(|t| claims.get(&claim_name(t, name, o)) == Some(&ClaimState::Deleting));
        if !finished && !claims_deleting {
            for t in &templates {
                if !claims.contains_key(&claim_name(t, name, o)) {
                    p.create_claims.push((t.to_string(), o));
                }
            }
            let hash = if rolling && o < partition {
                current
            } else {
                update
            };
            p.create.push((o, hash.to_string()));
        }
        if ordered {
            break;
        }
    }

    // Scale down: ordinals outside start..start+replicas (above it after a
    // scale down, below it after start grew), highest first; with
    // OrderedReady one at a time and only while the rest are Ready.
    let condemned: Vec<&StsPod> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| !range.contains(o))
        .map(|(_, pod)| *pod)
        .collect();
    if !condemned.is_empty() && (!ordered || all_ready) {
        let take = if ordered { 1 } else { condemned.len() };
        p.delete
            .extend(condemned.iter().take(take).map(|x| x.name.clone()));
    }
    // Claims of ordinals no pod will hold again, once their pod is gone.
    if spec.retention().1 == ClaimRetention::Delete {
        for (claim, state) in claims {
            if *state == ClaimState::Deleting {
                continue;
            }
            let scaled_away = templates.iter().any(|t| {
                claim
                    .strip_prefix(t)
                    .and_then(|r| r.strip_prefix('-'))
                    .and_then(|r| ordinal_of(name, r))
                    .is_some_and(|o| {
                        !range.contains(&o) && !pods.iter().any(|x| x.ordinal == Some(o))
                    })
            });
            if scaled_away {
                p.delete_claims.push(claim.clone());
            }
        }
    }

    // Rolling update: once every wanted pod is there and Ready and nothing
    // is being scaled away, the highest outdated ordinals at or above the
    // partition go (the create step brings them back on `update`).
    if rolling && all_ready && condemned.is_empty() {
        let budget = spec.max_unavailable() as usize;
        let outdated = by_ordinal
            .range(partition.max(start)..end.max(partition.max(start)))
            .rev()
            .filter(|(_, pod)| pod.hash != update)
            .take(budget)
            .map(|(_, pod)| pod.name.clone());
        p.delete.extend(outdated);
    }
    p.delete.sort();
    p.delete.dedup();
    p.delete.truncate(MAX_CREATES_PER_PASS);
    p.delete_claims.truncate(MAX_CREATES_PER_PASS);

    let st = &mut p.status;
    let replicas = end - start;
    let done = st.updated_replicas == replicas && st.ready_replicas == replicas;
    st.update_revision = Some(format!("{name}-{update}"));
    st.current_revision = Some(if done || current == update {
        format!("{name}-{update}")
    } else {
        format!("{name}-{current}")
    });
    p
}

fn owner_ref(set: &Object, controller: bool) -> OwnerReference {
    OwnerReference::to(set, controller)
}

fn namespace(o: &Object) -> String {
    o.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

/// The pod of `ordinal`, from `template` (hash `hash`), mounting its claims.
pub fn new_pod(
    set: &Object,
    spec: &StatefulSetSpec,
    template: &PodTemplateSpec,
    hash: &str,
    ordinal: u32,
) -> Result<Object, String> {
    let name = format!("{}-{ordinal}", set.metadata.name);
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels;
    labels.insert(REVISION_HASH.into(), hash.into());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let mut pod_spec = template.spec.clone();
    if spec.service_name.is_some() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    for t in &spec.volume_claim_templates {
        pod_spec.volumes.retain(|v| v.name != t.metadata.name);
        pod_spec.volumes.push(Volume {
            name: t.metadata.name.clone(),
            persistent_volume_claim: Some(ClaimVolume {
                claim_name: claim_name(&t.metadata.name, &set.metadata.name, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    let pod_spec = serde_json::to_value(&pod_spec).map_err(|e| e.to_string())?;
    Ok(Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name,
            namespace: Some(namespace(set)),
            labels,
            annotations: meta.annotations,
            creation_timestamp: Some(now_rfc3339()),
            owner_references: vec![owner_ref(set, true)],
            ..Default::default()
        },
        body: json!({ "spec": pod_spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
}

/// The claim template `template` makes for `ordinal`. It is owned by the
/// set (not as controller) only when the set's claims go with it.
pub fn new_claim(
    set: &Object,
    spec: &StatefulSetSpec,
    template: &str,
    ordinal: u32,
) -> Result<Object, String> {
    let t = spec
        .volume_claim_templates
        .iter()
        .find(|t| t.metadata.name == template)
        .ok_or_else(|| format!("no claim template {template:?}"))?;
    let mut labels = t.metadata.labels.clone();
    labels.extend(spec.selector.match_labels.clone());
    let owners = if spec.retention().0 == ClaimRetention::Delete {
        vec![owner_ref(set, false)]
    } else {
        Vec::new()
    };
    let body = json!({ "spec": t.spec });
    Ok(Object {
        api_version: "v1".into(),
        kind: "PersistentVolumeClaim".into(),
        metadata: ObjectMeta {
            name: claim_name(template, &set.metadata.name, ordinal),
            namespace: Some(namespace(set)),
            labels,
            annotations: t.metadata.annotations.clone(),
            creation_timestamp: Some(now_rfc3339()),
            owner_references: owners,
            ..Default::default()
        },
        body: body.as_object().cloned().unwrap_or_default(),
    })
}

/// The claim marked for deletion, as the API marks one (the storage
/// controller deletes it once no pod uses it).
fn claim_mark(claim: &Object) -> Result<Op, ControllerError> {
    Ok(super::finalizers::mark(
        claim,
        claim.key().ok_or("claim key")?,
        Precondition::Version(claim.resource_version()),
    )?)
}

/// Why deleting `pod` without `--force` is refused, if it is: a
/// StatefulSet's pod, not finished, on a node that `node_up` says is not
/// reachable. Its container may still run there, and deleting the object
/// lets the set start a second pod of that ordinal elsewhere.
pub fn delete_needs_force(pod: &Object, node_up: impl Fn(&str) -> bool) -> Option<String> {
    let owner = pod
        .metadata
        .controller_ref()
        .filter(|r| r.kind == "StatefulSet")?;
    let view = PodView::of(pod)?;
    let node = view.node.filter(|_| !view.terminal)?;
    if node_up(&node) {
        return None;
    }
    Some(format!(
        "pod {:?} of statefulset {:?} is on node {node:?}, which is not reachable: its \
         container may still run there, and deleting the pod lets the StatefulSet start \
         another {} elsewhere. Wait until node lifecycle marks it Failed (NodeLost), or \
         delete it with --force if the node is known to be down",
        view.name, owner.name, view.name
    ))
}

/// Most salts tried for a revision name before giving up for this pass.
const MAX_COLLISIONS_PER_PASS: u32 = 16;

/// The template's hash salted with a collision count (the plain hash at 0,
/// so sets that never collided keep their revision names).
pub fn salted_hash(template: &PodTemplateSpec, collisions: u32) -> String {
    let plain = template_hash(template);
    if collisions == 0 {
        return plain;
    }
    let d = Sha256::digest(format!("{plain}/{collisions}").as_bytes());
    hex::encode(&d[..5])
}

/// The hash naming the set's revision of `template` and the collision
/// count that gives it, as Kubernetes' collisionCount: starting from the
/// count in the status, a revision name held by another object (a deleted
/// set's leftover, or another template) moves on to the next salt instead
/// of failing every pass on a name that exists.
pub fn revision_hash(
    set: &Object,
    template: &PodTemplateSpec,
    collisions: u32,
    revisions: &[Object],
) -> (String, u32) {
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let ns = namespace(set);
    let want = template_hash(template);
    let mut c = collisions;
    loop {
        let hash = salted_hash(template, c);
        let name = format!("{}-{hash}", set.metadata.name);
        let taken = revisions.iter().find(|r| {
            r.metadata.name == name && r.metadata.namespace.as_deref().unwrap_or("default") == ns
        });
        let ours = |r: &Object| {
            super::owned_by(r) == Some(uid)
                && r.metadata.labels.get(REVISION_HASH).map(String::as_str) == Some(hash.as_str())
                && revision_template(uid, &hash, std::slice::from_ref(r))
                    .is_some_and(|t| template_hash(&t) == want)
        };
        match taken {
            Some(r) if !ours(r) && c < collisions.saturating_add(MAX_COLLISIONS_PER_PASS) => {
                c = c.saturating_add(1);
            }
            _ => return (hash, c),
        }
    }
}

/// What the StatefulSet pass reads besides the sets.
pub struct Inputs<'a> {
    /// Every pod.
    pub pods: &'a [Object],
    /// Every claim.
    pub claims: &'a [Object],
    /// Every ControllerRevision.
    pub revisions: &'a [Object],
}

/// One pass over every StatefulSet; one whose sync failed waits out its
/// back-off. Claims owned by a set that is gone are marked for deletion.
pub async fn reconcile(
    store: &Store,
    sets: &[Object],
    input: Inputs<'_>,
    backoff: &mut super::Backoff,
) {
    let live: std::collections::HashSet<&str> = sets
        .iter()
        .filter_map(|d| d.metadata.uid.as_deref())
        .collect();
    orphaned_claims(store, &live, input.claims).await;
    let mut owned: HashMap<&str, Vec<&Object>> = HashMap::new();
    for p in input.pods {
        if let Some(owner) = super::owned_by(p) {
            owned.entry(owner).or_default().push(p);
        }
    }
    for set in sets {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        if !backoff.ready(&uid) {
            continue;
        }
        let mine = owned
            .get(uid.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        match sync_one(store, set, mine, &input).await {
            Ok(()) => backoff.succeeded(&uid),
            Err(e) => {
                let wait = backoff.failed(&uid);
                let key = set.key().map(|k| k.to_string()).unwrap_or_default();
                e.log("statefulset", &format!("{key} (next try in {wait:?})"));
            }
        }
    }
    backoff.retain(&live);
}

/// Marks the claims of deleted sets whose policy was whenDeleted: Delete
/// (they carry the set as a non-controlling owner).
async fn orphaned_claims(store: &Store, live: &std::collections::HashSet<&str>, claims: &[Object]) {
    let orphaned = claims.iter().filter(|c| {
        c.metadata.deletion_timestamp.is_none()
            && c.metadata
                .owner_references
                .iter()
                .any(|r| r.kind == "StatefulSet" && !live.contains(r.uid.as_str()))
    });
    for c in orphaned.take(MAX_CLAIM_MARKS_PER_PASS) {
        let Ok(op) = claim_mark(c) else { continue };
        if let Err(e) = store.write(Command { ops: vec![op] }).await {
            tracing::debug!("statefulset: marking an orphaned claim: {e}");
        }
    }
}

/// The template of the set's revision `hash`, if it is kept.
fn revision_template(uid: &str, hash: &str, revisions: &[Object]) -> Option<PodTemplateSpec> {
    let cr = revisions.iter().find(|r| {
        super::owned_by(r) == Some(uid)
            && r.metadata.labels.get(REVISION_HASH).map(String::as_str) == Some(hash)
    })?;
    let body = ControllerRevisionBody::from_object(cr).ok()?;
    serde_json::from_value(body.data.get("spec")?.get("template")?.clone()).ok()
}

async fn sync_one(
    store: &Store,
    set: &Object,
    mine: &[&Object],
    input: &Inputs<'_>,
) -> Result<(), ControllerError> {
    let Some(key) = set.key() else { return Ok(()) };
    let body = StatefulSetBody::from_object(set).map_err(|e| format!("{key}: {e}"))?;
    let spec = &body.spec;
    let name = &set.metadata.name;
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let min_ready = u64::from(spec.min_ready_seconds.unwrap_or(0));
    let prev: StatefulSetStatus = set.status_or_default();
    let (update, collisions) = revision_hash(
        set,
        &spec.template,
        prev.collision_count.unwrap_or(0),
        input.revisions,
    );
    // The revision pods below the partition keep: the one the status
    // names, if its template is still kept.
    let current_template = prev
        .current_revision
        .as_deref()
        .and_then(|r| r.strip_prefix(name.as_str()))
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|h| Some((h.to_string(), revision_template(&uid, h, input.revisions)?)));
    let (current, current_tpl) = match &current_template {
        Some((h, t)) => (h.clone(), t),
        None => (update.clone(), &spec.template),
    };
    let pods: Vec<StsPod> = mine
        .iter()
        .filter_map(|o| {
            let v = PodView::of(o)?;
            Some(StsPod {
                ordinal: ordinal_of(name, &v.name),
                available: v.available(min_ready),
                name: v.name,
                hash: o
                    .metadata
                    .labels
                    .get(REVISION_HASH)
                    .cloned()
                    .unwrap_or_default(),
                terminal: v.terminal,
                ready: v.ready,
            })
        })
        .collect();
    let ns = namespace(set);
    let prefixes: Vec<String> = spec
        .volume_claim_templates
        .iter()
        .map(|t| format!("{}-{name}-", t.metadata.name))
        .collect();
    let claim_objs: BTreeMap<String, &Object> = input
        .claims
        .iter()
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|c| prefixes.iter().any(|p| c.metadata.name.starts_with(p)))
        .map(|c| (c.metadata.name.clone(), c))
        .collect();
    let claims: BTreeMap<String, ClaimState> = claim_objs
        .iter()
        .map(|(n, c)| {
            let state = if c.metadata.deletion_timestamp.is_some() {
                ClaimState::Deleting
            } else {
                ClaimState::Live
            };
            (n.clone(), state)
        })
        .collect();
    let mut plan = plan(name, spec, &update, &current, &pods, &claims);
    plan.status.observed_generation = Some(set.metadata.generation.unwrap_or(1));
    plan.status.collision_count = Some(collisions);

    let versions: HashMap<&str, u64> = mine
        .iter()
        .map(|o| (o.metadata.name.as_str(), o.resource_version()))
        .collect();
    let running: BTreeSet<&str> = pods
        .iter()
        .filter(|p| !p.terminal)
        .map(|p| p.hash.as_str())
        .chain([current.as_str()])
        .collect();
    let mut ops = revision_ops(
        set,
        owner_ref(set, true),
        &spec.template,
        spec.revision_history_limit,
        &update,
        input.revisions,
        &running,
    )?;
    for pod in &plan.delete {
        ops.push(Op::Delete {
            key: ObjectKey::new(Kind::Pod, &ns, pod),
            precondition: Precondition::Version(versions.get(pod.as_str()).copied().unwrap_or(0)),
        });
    }
    for claim in &plan.delete_claims {
        if let Some(c) = claim_objs.get(claim) {
            ops.push(claim_mark(c)?);
        }
    }
    // Claims first: the scheduler places a pod only once its claims exist.
    for (template, ordinal) in &plan.create_claims {
        let c = new_claim(set, spec, template, *ordinal)?;
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::PersistentVolumeClaim, &ns, &c.metadata.name),
            object: serde_json::to_vec(&c).map_err(|e| e.to_string())?,
            precondition: Precondition::MustNotExist,
        });
    }
    let mut policy = crate::admission::policy(store, &ns);
    for (ordinal, hash) in &plan.create {
        let template = if *hash == update {
            &spec.template
        } else {
            current_tpl
        };
        let mut pod = new_pod(set, spec, template, hash, *ordinal)?;
        if let Err(e) = crate::admission::admit_pod_object(&mut pod, &mut policy, true) {
            super::failed_create(store, set, &key, &e, "statefulset-controller").await;
            return Err(e.into());
        }
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::Pod, &ns, &pod.metadata.name),
            object: serde_json::to_vec(&pod).map_err(|e| e.to_string())?,
            precondition: Precondition::MustNotExist,
        });
    }
    ops.extend(policy.quota_ops());
    // One event per reason, rewritten: as Kubernetes' SuccessfulCreate and
    // SuccessfulDelete, without one object per pod.
    let created: Vec<String> = plan
        .create
        .iter()
        .map(|(o, _)| format!("{name}-{o}"))
        .collect();
    for (reason, verb, pods) in [
        ("SuccessfulCreate", "create", &created),
        ("SuccessfulDelete", "delete", &plan.delete),
    ] {
        if pods.is_empty() {
            continue;
        }
        let mut named: Vec<String> = pods.iter().take(EVENT_PODS).cloned().collect();
        if pods.len() > EVENT_PODS {
            named.push(format!("and {} more", pods.len() - EVENT_PODS));
        }
        let e = JobEvent {
            warning: false,
            reason,
            message: format!(
                "{verb} Pod {} in StatefulSet {name} successful",
                named.join(", ")
            ),
        };
        ops.push(event(
            set,
            &key,
            &e,
            &now_rfc3339(),
            owner_ref(set, true),
            "statefulset-controller",
        )?);
    }
    if !set.body.contains_key("status") || prev != plan.status {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: Some(uid),
            status: serde_json::to_vec(&plan.status).map_err(|e| e.to_string())?,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    let n =
        plan.create.len() + plan.delete.len() + plan.create_claims.len() + plan.delete_claims.len();
    ops.insert(0, fence(set)?);
    store.write(Command { ops }).await?;
    ::metrics::counter!(crate::controller::metrics::STATEFULSET_CHANGES_TOTAL).increment(n as u64);
    Ok(())
}

#[cfg(test)]
mod tests;
