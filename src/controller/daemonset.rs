//! The DaemonSet controller: one pod per eligible node (up, reported its
//! capacity, matching the template's `nodeSelector`; cordoned nodes
//! included, as Kubernetes), created already bound to its node so the
//! scheduler's scoring is skipped, but only where the node has room (a
//! node too full gets a `FailedPlacement` Warning event on the DaemonSet
//! and no pod). Pods on nodes that no longer match or no longer exist are
//! deleted; pods on a node that is down are left to node lifecycle, which
//! marks them Failed (NodeLost) after the grace, and a failed pod is
//! deleted and replaced only while its node is eligible.
//!
//! Templates are kept as ControllerRevisions (`{daemonset}-{hash}`,
//! numbered in `revision`), the DaemonSet's pods labelled with
//! `controller-revision-hash`, so `shoal rollout history|undo` read them
//! as they read a Deployment's ReplicaSets. `RollingUpdate` replaces pods
//! node by node within `maxUnavailable` (default 1) or, with `maxSurge`,
//! starts the new pod before deleting the node's old one; `OnDelete` gives
//! a node the new template only once the user deletes its pod.
//!
//! Deciding is [`plan`], pure; [`reconcile`] reads, plans and writes one
//! command per DaemonSet and pass, fenced on the DaemonSet's
//! resourceVersion. Pod names derive from the DaemonSet's uid, the node and
//! the template hash, so a deposed leader and its successor make the same
//! names and only one of them can create each pod.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::deployment::template_hash;
use super::job::{JobEvent, event};
use super::{ControllerError, PodView, fence};
use crate::resource::status::DaemonSetStatus;
use crate::resource::time::now_rfc3339;
use crate::resource::types::{
    Body, ControllerRevisionBody, DaemonSetBody, DaemonSetSpec, DaemonSetStrategyType, Taint,
    TaintEffect, untolerated,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::scheduler::{NodeFit, PodNeeds, node_fit, pod_needs};
use crate::store::{Command, Op, Precondition, Store};

/// The label tying a DaemonSet's pods and ControllerRevisions to one template.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// Nodes named in one FailedPlacement event; the rest are counted.
const EVENT_NODES: usize = 10;
/// Most pods one DaemonSet creates, and deletes, in a pass: one command
/// must stay well under the store's size limit on a large cluster; the
/// rest follows in the next passes.
const MAX_CHANGES_PER_PASS: usize = 500;

/// A node as the DaemonSet controller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DsNode {
    /// The Node object's name.
    pub name: String,
    /// Its labels, matched against the template's `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// Its taints: a daemon pod goes only where it tolerates them.
    pub taints: Vec<Taint>,
    /// Up in membership and has reported its capacity.
    pub up: bool,
    /// Why a daemon pod would not fit beside the node's other pods, if so.
    pub no_room: Option<String>,
}

/// One of the DaemonSet's pods.
#[derive(Debug, Clone, PartialEq)]
pub struct DsPod {
    /// Pod name.
    pub name: String,
    /// The node it is bound to.
    pub node: Option<String>,
    /// Its `controller-revision-hash` label.
    pub hash: String,
    /// Succeeded or Failed.
    pub terminal: bool,
    /// Ready condition True.
    pub ready: bool,
    /// Ready for minReadySeconds.
    pub available: bool,
    /// creationTimestamp, to keep the oldest of duplicates.
    pub created: String,
}

/// What one pass does to a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Nodes that get a pod of the current template.
    pub create: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Eligible nodes without a pod and without room for one: (node, why).
    pub no_room: Vec<(String, String)>,
    /// The status the DaemonSet has as read.
    pub status: DaemonSetStatus,
}

/// Whether the DaemonSet's pods belong on `node`: its node selector, its
/// required node affinity, and the node's NoSchedule and NoExecute taints
/// it must tolerate, as Kubernetes' DaemonSet controller decides.
fn eligible(spec: &DaemonSetSpec, node: &DsNode) -> bool {
    let pod = &spec.template.spec;
    let hard = [TaintEffect::NoSchedule, TaintEffect::NoExecute];
    node.up
        && pod
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_none_or(|a| a.required_matches(&node.name, &node.labels))
        && untolerated(&node.taints, &pod.tolerations, &hard).is_none()
}

/// Decides one pass for a DaemonSet whose current template hashes to
/// `hash`, from its nodes and pods. About `limit` pods are created and as
/// many deleted at most (a node's replacement is never split from the
/// deletion it needs); the rest is left to the next passes.
pub fn plan(
    spec: &DaemonSetSpec,
    hash: &str,
    nodes: &[DsNode],
    pods: &[DsPod],
    limit: usize,
) -> Plan {
    let mut p = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&DsPod>> = BTreeMap::new();
    // Nodes whose finished pod is not deleted this pass: their new pod
    // could have its name, so it waits too.
    let mut held: BTreeSet<&str> = BTreeSet::new();
    for pod in pods {
        match (&pod.node, pod.terminal) {
            // Finished or lost: replaced below if its node still wants one.
            (_, true) | (None, _) => {
                if p.delete.len() < limit {
                    p.delete.push(pod.name.clone());
                } else if let Some(n) = &pod.node {
                    held.insert(n.as_str());
                }
            }
            (Some(n), false) => by_node.entry(n.as_str()).or_default().push(pod),
        }
    }
    let node_of: HashMap<&str, &DsNode> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    // Pods where they do not belong: the node is gone or no longer
    // matches. A node merely down keeps them (node lifecycle decides).
    for (node, on) in &by_node {
        let stays = node_of
            .get(node)
            .is_some_and(|n| eligible(spec, n) || !n.up);
        if !stays {
            p.status.number_misscheduled += 1;
            let room = limit.saturating_sub(p.delete.len());
            p.delete
                .extend(on.iter().take(room).map(|pod| pod.name.clone()));
        }
    }
    let (max_surge, max_unavailable) = {
        let desired = nodes.iter().filter(|n| eligible(spec, n)).count();
        spec.surge_unavailable(u32::try_from(desired).unwrap_or(u32::MAX))
    };
    let rolling = spec.strategy() == DaemonSetStrategyType::RollingUpdate;
    // Per eligible node: its newest-template pod (oldest of duplicates),
    // its old pods.
    struct Slot<'a> {
        node: &'a DsNode,
        new: Option<&'a DsPod>,
        old: Vec<&'a DsPod>,
    }
    let mut slots = Vec::new();
    for node in nodes.iter().filter(|n| eligible(spec, n)) {
        let on = by_node.get(node.name.as_str()).cloned().unwrap_or_default();
        let mut new: Vec<&DsPod> = on.iter().copied().filter(|x| x.hash == hash).collect();
        new.sort_by(|a, b| {
            (!a.available, &a.created, &a.name).cmp(&(!b.available, &b.created, &b.name))
        });
        // Two of the current template on one node (a create raced a
        // delete): the best stays.
        for extra in new.iter().skip(1) {
            p.delete.push(extra.name.clone());
        }
        let old: Vec<&DsPod> = on.iter().copied().filter(|x| x.hash != hash).collect();
        let st = &mut p.status;
        st.desired_number_scheduled += 1;
        st.current_number_scheduled += u32::from(!on.is_empty());
        st.number_ready += u32::from(on.iter().any(|x| x.ready));
        st.number_available += u32::from(on.iter().any(|x| x.available));
        st.updated_number_scheduled += u32::from(!new.is_empty());
        slots.push(Slot {
            node,
            new: new.first().copied(),
            old,
        });
    }
    p.status.number_unavailable = p
        .status
        .desired_number_scheduled
        .saturating_sub(p.status.number_available);
    let mut unavailable = p.status.number_unavailable;
    let mut surging = slots
        .iter()
        .filter(|s| s.new.is_some_and(|n| !n.available) && !s.old.is_empty())
        .count() as u32;
    for s in &slots {
        if p.create.len() >= limit || p.delete.len() >= limit {
            break;
        }
        let node = &s.node.name;
        if held.contains(node.as_str()) {
            continue;
        }
        let want_pod = |p: &mut Plan| match &s.node.no_room {
            Some(why) => p.no_room.push((node.clone(), why.clone())),
            None => p.create.push(node.clone()),
        };
        match (s.new, s.old.is_empty()) {
            (None, true) => want_pod(&mut p),
            (Some(_), true) => {}
            (Some(new), false) => {
                // A surged pod took over, or OnDelete left an old one
                // beside a pod the user got replaced.
                if new.available || !rolling {
                    p.delete.extend(s.old.iter().map(|x| x.name.clone()));
                }
            }
            (None, false) if !rolling => {}
            (None, false) => {
                let old_available = s.old.iter().any(|x| x.available);
                if !old_available {
                    // Already down: replacing it costs no availability.
                    p.delete.extend(s.old.iter().map(|x| x.name.clone()));
                    want_pod(&mut p);
                } else if old_available && max_surge > 0 {
                    if surging < max_surge && s.node.no_room.is_none() {
                        surging += 1;
                        p.create.push(node.clone());
                    }
                } else if old_available && unavailable < max_unavailable {
                    unavailable += 1;
                    p.delete.extend(s.old.iter().map(|x| x.name.clone()));
                    want_pod(&mut p);
                }
            }
        }
    }
    p.delete.sort();
    p.delete.dedup();
    p
}

/// Why a pod needing `needs` does not fit on `fit` beside what is already
/// bound there (`used`), or None when it fits. Cordoning is not looked at:
/// daemon pods go to cordoned nodes too.
pub fn lacks_room(fit: &NodeFit, used: &Used, needs: &PodNeeds) -> Option<String> {
    if used.pods.saturating_add(1) > fit.max_pods {
        return Some(format!("too many pods (max {})", fit.max_pods));
    }
    if let Some(port) = needs
        .host_ports
        .iter()
        .find(|p| used.host_ports.contains(p))
    {
        return Some(format!("host port {port} in use"));
    }
    if used.cpu_millis.saturating_add(needs.cpu_millis) > fit.cpu_millis {
        return Some(format!(
            "insufficient cpu ({}m requested, {}m free)",
            needs.cpu_millis,
            fit.cpu_millis.saturating_sub(used.cpu_millis)
        ));
    }
    if used.memory_bytes.saturating_add(needs.memory_bytes) > fit.memory_bytes {
        return Some(format!(
            "insufficient memory ({} bytes requested, {} free)",
            needs.memory_bytes,
            fit.memory_bytes.saturating_sub(used.memory_bytes)
        ));
    }
    if let Some(name) = fit.other.short_of(&used.other, &needs.other) {
        return Some(format!("insufficient {name}"));
    }
    None
}

/// What the pods bound to a node take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Used {
    /// Pods.
    pub pods: u32,
    /// CPU requests, millicores.
    pub cpu_millis: u64,
    /// Memory requests, bytes.
    pub memory_bytes: u64,
    /// Host ports published.
    pub host_ports: Vec<u16>,
    /// Ephemeral storage and extended resources requested.
    pub other: crate::scheduler::OtherResources,
}

impl Used {
    fn add(&mut self, n: &PodNeeds) {
        self.pods += 1;
        self.cpu_millis = self.cpu_millis.saturating_add(n.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_add(n.memory_bytes);
        self.host_ports.extend(&n.host_ports);
        self.other.add(&n.other);
    }
}

/// The name of the DaemonSet's pod for `node` and template `hash`.
pub fn pod_name(ds: &str, uid: &str, node: &str, hash: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let d = Sha256::digest(format!("{uid}/{node}/{hash}").as_bytes());
    let suffix: String = d[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{ds}-{suffix}")
}

fn owner_ref(ds: &Object) -> OwnerReference {
    OwnerReference::to(ds, true)
}

/// The pod the DaemonSet runs on `node`, bound there.
fn new_pod(ds: &Object, spec: &DaemonSetSpec, hash: &str, node: &str) -> Result<Object, String> {
    let ns = ds
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let meta = spec.template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels;
    labels.insert(REVISION_HASH.into(), hash.into());
    let mut pod_spec = spec.template.spec.clone();
    pod_spec.node_name = Some(node.to_string());
    let pod_spec = serde_json::to_value(&pod_spec).map_err(|e| e.to_string())?;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    Ok(Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: pod_name(&ds.metadata.name, &uid, node, hash),
            namespace: Some(ns),
            labels,
            annotations: meta.annotations,
            creation_timestamp: Some(now_rfc3339()),
            owner_references: vec![owner_ref(ds)],
            ..Default::default()
        },
        body: json!({ "spec": pod_spec })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
}

/// A ControllerRevision's number.
pub fn revision_number(cr: &Object) -> u64 {
    ControllerRevisionBody::from_object(cr)
        .map(|b| b.revision)
        .unwrap_or(0)
}

/// What the DaemonSet pass reads besides the DaemonSets.
pub struct Inputs<'a> {
    /// Every pod.
    pub pods: &'a [Object],
    /// Every Node object.
    pub nodes: &'a [Object],
    /// Every ControllerRevision.
    pub revisions: &'a [Object],
    /// Every Event, to write a FailedPlacement only when its message changes.
    pub events: &'a [Object],
}

/// One pass over every DaemonSet; one whose sync failed waits out its back-off.
pub async fn reconcile(
    store: &Store,
    daemonsets: &[Object],
    input: Inputs<'_>,
    alive: &(dyn Fn(&str) -> bool + Sync),
    backoff: &mut super::Backoff,
) {
    if daemonsets.is_empty() {
        return;
    }
    // What every node's pods take, and each DaemonSet's own share of it,
    // so a DaemonSet's room check leaves its own pods out.
    let mut used: HashMap<&str, Used> = HashMap::new();
    let mut own: HashMap<(String, String), Used> = HashMap::new();
    let mut owned: HashMap<String, Vec<&Object>> = HashMap::new();
    for p in input.pods {
        let view = PodView::of(p);
        if let Some(owner) = view.as_ref().and_then(|v| v.owner.clone()) {
            owned.entry(owner).or_default().push(p);
        }
        let Some(v) = view.filter(|v| !v.terminal) else {
            continue;
        };
        let (Some(node), Some(needs)) = (
            p.body
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(|n| n.as_str()),
            pod_needs(p),
        ) else {
            continue;
        };
        used.entry(node).or_default().add(&needs);
        if let Some(o) = v.owner {
            own.entry((o, node.to_string())).or_default().add(&needs);
        }
    }
    let fits: Vec<(NodeFit, &Object)> = input
        .nodes
        .iter()
        .filter_map(|n| Some((node_fit(n, alive(&n.metadata.name))?, n)))
        .collect();
    let reported: BTreeSet<&str> = fits.iter().map(|(f, _)| f.name.as_str()).collect();
    for ds in daemonsets {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        if !backoff.ready(&uid) {
            continue;
        }
        let mine = owned.get(&uid).map(Vec::as_slice).unwrap_or_default();
        let ctx = Ctx {
            used: &used,
            own: &own,
            fits: &fits,
            nodes: input.nodes,
            reported: &reported,
        };
        match sync_one(store, ds, mine, &ctx, &input).await {
            Ok(()) => backoff.succeeded(&uid),
            Err(e) => {
                let wait = backoff.failed(&uid);
                let key = ds.key().map(|k| k.to_string()).unwrap_or_default();
                e.log("daemonset", &format!("{key} (next try in {wait:?})"));
            }
        }
    }
    let live: std::collections::HashSet<&str> = daemonsets
        .iter()
        .filter_map(|d| d.metadata.uid.as_deref())
        .collect();
    backoff.retain(&live);
}

struct Ctx<'a> {
    used: &'a HashMap<&'a str, Used>,
    own: &'a HashMap<(String, String), Used>,
    fits: &'a [(NodeFit, &'a Object)],
    nodes: &'a [Object],
    reported: &'a BTreeSet<&'a str>,
}

/// The DaemonSet's view of the nodes: up, labels, room for one more pod.
fn ds_nodes(ds: &Object, spec: &DaemonSetSpec, hash: &str, ctx: &Ctx<'_>) -> Vec<DsNode> {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let probe = new_pod(ds, spec, hash, "").ok();
    let needs = probe.as_ref().and_then(pod_needs);
    let mut out: Vec<DsNode> = ctx
        .fits
        .iter()
        .map(|(fit, _)| {
            let mut used = ctx.used.get(fit.name.as_str()).cloned().unwrap_or_default();
            if let Some(mine) = ctx.own.get(&(uid.clone(), fit.name.clone())) {
                used.pods = used.pods.saturating_sub(mine.pods);
                used.cpu_millis = used.cpu_millis.saturating_sub(mine.cpu_millis);
                used.memory_bytes = used.memory_bytes.saturating_sub(mine.memory_bytes);
                used.host_ports.retain(|p| !mine.host_ports.contains(p));
            }
            DsNode {
                name: fit.name.clone(),
                labels: fit.labels.clone(),
                taints: fit.taints.clone(),
                up: fit.alive,
                no_room: match &needs {
                    Some(n) => lacks_room(fit, &used, n),
                    None => Some("the pod template's resources do not parse".into()),
                },
            }
        })
        .collect();
    // A Node that has not reported its capacity yet is there but not up
    // for daemon pods: its pods stay, none are added.
    for n in ctx.nodes {
        if !ctx.reported.contains(n.metadata.name.as_str()) {
            out.push(DsNode {
                name: n.metadata.name.clone(),
                labels: n.metadata.labels.clone(),
                taints: Vec::new(),
                up: false,
                no_room: None,
            });
        }
    }
    out
}

async fn sync_one(
    store: &Store,
    ds: &Object,
    mine: &[&Object],
    ctx: &Ctx<'_>,
    input: &Inputs<'_>,
) -> Result<(), ControllerError> {
    let Some(key) = ds.key() else { return Ok(()) };
    let body = DaemonSetBody::from_object(ds).map_err(|e| format!("{key}: {e}"))?;
    let spec = &body.spec;
    let hash = template_hash(&spec.template);
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let min_ready = u64::from(spec.min_ready_seconds.unwrap_or(0));
    let pods: Vec<DsPod> = mine
        .iter()
        .filter_map(|o| {
            let v = PodView::of(o)?;
            Some(DsPod {
                available: v.available(min_ready),
                name: v.name,
                node: v.node,
                hash: o
                    .metadata
                    .labels
                    .get(REVISION_HASH)
                    .cloned()
                    .unwrap_or_default(),
                terminal: v.terminal,
                ready: v.ready,
                created: v.created,
            })
        })
        .collect();
    let versions: HashMap<&str, u64> = mine
        .iter()
        .map(|o| (o.metadata.name.as_str(), o.resource_version()))
        .collect();
    let nodes = ds_nodes(ds, spec, &hash, ctx);
    let mut plan = plan(spec, &hash, &nodes, &pods, MAX_CHANGES_PER_PASS);
    plan.status.observed_generation = Some(ds.metadata.generation.unwrap_or(1));

    let mut ops = Vec::new();
    let running: BTreeSet<&str> = pods
        .iter()
        .filter(|p| !p.terminal)
        .map(|p| p.hash.as_str())
        .collect();
    ops.extend(revision_ops(
        ds,
        owner_ref(ds),
        &spec.template,
        spec.revision_history_limit,
        &hash,
        input.revisions,
        &running,
    )?);
    for name in &plan.delete {
        ops.push(Op::Delete {
            key: ObjectKey::new(Kind::Pod, &key.namespace, name),
            precondition: Precondition::Version(versions.get(name.as_str()).copied().unwrap_or(0)),
        });
    }
    let mut policy = crate::admission::policy(store, &key.namespace);
    for node in &plan.create {
        let mut pod = new_pod(ds, spec, &hash, node)?;
        if let Err(e) = crate::admission::admit_pod_object(&mut pod, &mut policy, true) {
            super::failed_create(store, ds, &key, &e, "daemonset-controller").await;
            return Err(e.into());
        }
        ops.push(Op::Put {
            key: ObjectKey::new(Kind::Pod, &key.namespace, &pod.metadata.name),
            object: serde_json::to_vec(&pod).map_err(|e| e.to_string())?,
            precondition: Precondition::MustNotExist,
        });
    }
    ops.extend(policy.quota_ops());
    if !plan.no_room.is_empty() {
        let mut named: Vec<String> = plan
            .no_room
            .iter()
            .take(EVENT_NODES)
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        if plan.no_room.len() > EVENT_NODES {
            named.push(format!("and {} more", plan.no_room.len() - EVENT_NODES));
        }
        let e = JobEvent {
            warning: true,
            reason: "FailedPlacement",
            message: format!("no room for a daemon pod on {}", named.join(", ")),
        };
        let ev_name = format!("{}.daemonset.failedplacement", key.name);
        let same = input.events.iter().any(|o| {
            o.metadata.name == ev_name
                && o.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                && o.body.get("message").and_then(|m| m.as_str()) == Some(e.message.as_str())
        });
        if !same {
            ops.push(event(
                ds,
                &key,
                &e,
                &now_rfc3339(),
                owner_ref(ds),
                "daemonset-controller",
            )?);
        }
    }
    let prev: DaemonSetStatus = ds.status_or_default();
    if !ds.body.contains_key("status") || prev != plan.status {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: Some(uid),
            status: serde_json::to_vec(&plan.status).map_err(|e| e.to_string())?,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    let n = plan.create.len() + plan.delete.len();
    ops.insert(0, fence(ds)?);
    store.write(Command { ops }).await?;
    ::metrics::counter!(crate::controller::metrics::DAEMONSET_CHANGES_TOTAL).increment(n as u64);
    Ok(())
}

/// The writes that keep a DaemonSet's or StatefulSet's history: a ControllerRevision for
/// a new template, the newest number for a template that came back (undo),
/// and old revisions beyond `revisionHistoryLimit` deleted once no pod runs them.
pub(super) fn revision_ops(
    ds: &Object,
    owner: OwnerReference,
    template: &crate::resource::types::PodTemplateSpec,
    history_limit: Option<u32>,
    hash: &str,
    all: &[Object],
    running: &BTreeSet<&str>,
) -> Result<Vec<Op>, ControllerError> {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let ns = ds
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mine: Vec<&Object> = all
        .iter()
        .filter(|r| super::owned_by(r) == Some(uid.as_str()))
        .collect();
    let max = mine.iter().map(|r| revision_number(r)).max().unwrap_or(0);
    let current = mine
        .iter()
        .find(|r| r.metadata.labels.get(REVISION_HASH).map(String::as_str) == Some(hash));
    let mut ops = Vec::new();
    match current {
        None => {
            let body = ControllerRevisionBody {
                data: json!({ "spec": { "template": template } }),
                revision: max + 1,
            };
            let cr = Object {
                api_version: "apps/v1".into(),
                kind: "ControllerRevision".into(),
                metadata: ObjectMeta {
                    name: format!("{}-{hash}", ds.metadata.name),
                    namespace: Some(ns.clone()),
                    labels: BTreeMap::from([(REVISION_HASH.to_string(), hash.to_string())]),
                    annotations: ds
                        .metadata
                        .annotations
                        .get(super::deployment::CHANGE_CAUSE)
                        .map(|c| {
                            BTreeMap::from([(
                                super::deployment::CHANGE_CAUSE.to_string(),
                                c.clone(),
                            )])
                        })
                        .unwrap_or_default(),
                    creation_timestamp: Some(now_rfc3339()),
                    owner_references: vec![owner],
                    ..Default::default()
                },
                body: serde_json::to_value(&body)
                    .map_err(|e| e.to_string())?
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            };
            ops.push(Op::Put {
                key: ObjectKey::new(Kind::ControllerRevision, &ns, &cr.metadata.name),
                object: serde_json::to_vec(&cr).map_err(|e| e.to_string())?,
                precondition: Precondition::MustNotExist,
            });
        }
        Some(cr) if revision_number(cr) < max => {
            let mut copy = (*cr).clone();
            copy.body.insert("revision".into(), json!(max + 1));
            ops.push(Op::Put {
                key: cr.key().ok_or("controllerrevision key")?,
                object: serde_json::to_vec(&copy).map_err(|e| e.to_string())?,
                precondition: Precondition::Version(cr.resource_version()),
            });
        }
        Some(_) => {}
    }
    let limit = history_limit.unwrap_or(10) as usize;
    let mut old: Vec<&&Object> = mine
        .iter()
        .filter(|r| {
            let h = r
                .metadata
                .labels
                .get(REVISION_HASH)
                .map(String::as_str)
                .unwrap_or("");
            h != hash && !running.contains(h)
        })
        .collect();
    if old.len() > limit {
        old.sort_by_key(|r| revision_number(r));
        for r in old.iter().take(old.len() - limit) {
            if let Some(k) = r.key() {
                ops.push(Op::Delete {
                    key: k,
                    precondition: Precondition::Version(r.resource_version()),
                });
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests;
