//! scheduler: binds pending pods to nodes.
//!
//! [`schedule_pending`] is one pass over the local replica, meant to run on
//! the Raft leader: it reads the Node objects and every pod, accounts the
//! pods already bound, and places each pod without `spec.nodeName` with the
//! [`Placer`] (see there for filters and scoring). A
//! binding is a compare-and-set of the pod at the resourceVersion the pass
//! read, so a scheduler working from a stale view (a deposed leader, a pod
//! changed meanwhile) can never bind a pod twice or undo someone's change:
//! its write is refused and the pod is looked at again in the next pass.
//!
//! A pod that fits nowhere gets the `PodScheduled=False` condition with the
//! reason counts (`0/3 nodes: insufficient memory (2), cordoned (1)`) and a
//! `FailedScheduling` Warning event, each written only when the message
//! changes, so a cluster that stays full writes nothing pass after pass.

pub mod claims;
pub mod metrics;
mod placer;
mod preemption;
mod requests;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::resource::status::{Condition, NodeStatus, PodPhase, PodReadiness, PodStatus};
use crate::resource::time::now_rfc3339;
use crate::resource::types::{
    Affinity, QuantityError, TopologySpreadConstraint, parse_cpu_millis, parse_memory_bytes,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};
use crate::store::{Command, Op, Precondition, Store, StoreError, TxnError};

pub use placer::interpod::InterPod;
pub use placer::{NodeFit, OtherResources, Placer, PodNeeds, Strategy, Unschedulable};

use crate::resource::extended::{EPHEMERAL_STORAGE, is_extended, parse_count};

/// Commands of one pass in flight at once. The leader proposes one Raft
/// entry at a time and puts every command queued meanwhile into the next,
/// so commands in flight beyond the first make entries larger and fewer
/// (one log append and fsync each). Measured at 100,000 pods (means of
/// three runs on a busy 2-core machine): 2 in flight ~7,000/s, 4 ~7,900/s,
/// 8 ~8,600/s, 16 ~9,300/s. More also means another writer's command
/// queues behind more of ours, so 4.
const WRITES_IN_FLIGHT: usize = 4;
/// Batches the planner may prepare ahead of the writes.
const PLANNED_AHEAD: usize = 2;
/// Pods dropped from one command for conflicts before the rest of it is
/// left to the next pass: past a few, the pass's view is stale as a whole
/// (a deposed leader) and retrying pod by pod would cost a round each.
const MAX_DROPS_PER_BATCH: usize = 4;

/// What one scheduling pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Pods bound to a node.
    pub placed: usize,
    /// Pods that fit on no node (whether or not their status changed).
    pub unschedulable: usize,
    /// Pods whose binding or status write was refused because the pod
    /// changed since the pass read it; the next pass looks at them again.
    pub conflicts: usize,
    /// Pods evicted to make room for pods of higher priority.
    pub preempted: usize,
}

/// The scheduler's view of a Node object: allocatable cpu, memory, pods,
/// ephemeral storage and extended resources
/// (quantity strings; a missing or malformed one counts as 0, so nothing
/// fits it), labels and `spec.unschedulable`. `None` for anything but a Node
/// with `status.allocatable` (an agent that has not reported yet).
pub fn node_fit(node: &Object, alive: bool) -> Option<NodeFit> {
    if node.kind() != Some(Kind::Node) {
        return None;
    }
    let alloc = node.status::<NodeStatus>().ok()?.allocatable;
    if alloc.is_empty() {
        return None;
    }
    let quantity = |name: &str, parse: fn(&str) -> Result<u64, QuantityError>| {
        alloc
            .get(name)
            .and_then(quantity_str)
            .and_then(|q| parse(&q).ok())
            .unwrap_or(0)
    };
    Some(NodeFit {
        name: node.metadata.name.clone(),
        cpu_millis: quantity("cpu", parse_cpu_millis),
        memory_bytes: quantity("memory", parse_memory_bytes),
        // A pod count is a plain integer; a quantity parser would read
        // `1k` as 1024.
        max_pods: alloc
            .get("pods")
            .and_then(quantity_str)
            .and_then(|q| q.parse::<u32>().ok())
            .unwrap_or(0),
        labels: node.metadata.labels.clone(),
        taints: node
            .body
            .get("spec")
            .and_then(|s| s.get("taints"))
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
        unschedulable: node
            .body
            .get("spec")
            .and_then(|s| s.get("unschedulable"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        alive,
        other: OtherResources {
            ephemeral_bytes: quantity(EPHEMERAL_STORAGE, parse_memory_bytes),
            // A count that does not parse offers nothing, as a missing one.
            extended: alloc
                .iter()
                .filter(|(name, _)| is_extended(name))
                .filter_map(|(name, v)| Some((name.clone(), parse_count(&quantity_str(v)?).ok()?)))
                .collect(),
        },
    })
}

/// What a pod asks of a node: its containers' requests as
/// [`requests`] counts them, its
/// `nodeSelector`, node affinity, tolerations and host ports, and as group the name of its controlling
/// owner (the ownerReference with `controller: true`). `None` for anything
/// but a Pod with containers, or with a quantity that does not parse
/// (validation refuses those, so it means the object was not written
/// through the API).
pub fn pod_needs(pod: &Object) -> Option<PodNeeds> {
    let key = pod.key().filter(|k| k.kind == Kind::Pod)?;
    let spec = pod.body.get("spec")?;
    let containers = spec.get("containers")?.as_array()?;
    let requests = requests::effective_requests(spec, containers)?;
    let mut needs = PodNeeds {
        key,
        cpu_millis: requests.cpu,
        memory_bytes: requests.memory,
        other: requests.other,
        node_selector: Default::default(),
        host_ports: Vec::new(),
        group: pod
            .metadata
            .owner_references
            .iter()
            .find(|r| r.controller == Some(true))
            .map(|r| r.name.clone()),
        volume_nodes: None,
        node_affinity: match spec.get("affinity").and_then(|a| a.get("nodeAffinity")) {
            Some(v) => Some(std::sync::Arc::new(serde_json::from_value(v.clone()).ok()?)),
            None => None,
        },
        tolerations: match spec.get("tolerations") {
            Some(v) => serde_json::from_value(v.clone()).ok()?,
            None => Vec::new(),
        },
        labels: None,
        inter: inter_pod_rules(pod, spec)?,
    };
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let init = spec.get("initContainers").and_then(Value::as_array);
    for c in init.into_iter().flatten().chain(containers) {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut hp = p.get("hostPort").and_then(Value::as_u64).unwrap_or(0);
            // In the host's network every container port is a host port.
            if hp == 0 && host_network {
                hp = p.get("containerPort").and_then(Value::as_u64).unwrap_or(0);
            }
            if let Ok(hp @ 1..) = u16::try_from(hp) {
                needs.host_ports.push(hp);
            }
        }
    }
    if let Some(sel) = spec.get("nodeSelector").and_then(Value::as_object) {
        for (k, v) in sel {
            needs
                .node_selector
                .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    Some(needs)
}

/// A pod's pod affinity, anti-affinity and spread constraints, decoded
/// only when present; `None` (the outer) when they do not decode.
fn inter_pod_rules(pod: &Object, spec: &Value) -> Option<Option<std::sync::Arc<InterPod>>> {
    let affinity = spec.get("affinity");
    let has_pod_terms = affinity
        .is_some_and(|a| a.get("podAffinity").is_some() || a.get("podAntiAffinity").is_some());
    let spread = spec.get("topologySpreadConstraints");
    if !has_pod_terms && spread.is_none() {
        return Some(None);
    }
    let affinity: Option<Affinity> = match affinity {
        Some(a) if has_pod_terms => Some(serde_json::from_value(a.clone()).ok()?),
        _ => None,
    };
    let spread: Vec<TopologySpreadConstraint> = match spread {
        Some(s) => serde_json::from_value(s.clone()).ok()?,
        None => Vec::new(),
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(
        InterPod::of(affinity.as_ref(), &spread, ns, &pod.metadata.labels).map(std::sync::Arc::new),
    )
}

/// Whether the pod has finished for good (`status.phase` Succeeded or
/// Failed): it holds no resources and is never placed again.
pub fn is_terminal(pod: &Object) -> bool {
    pod.status_or_default::<PodReadiness>().is_terminal()
}

/// A quantity as JSON carries it: a string, or a bare number.
fn quantity_str(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

/// The node a pod is bound to, if any.
fn bound_node(pod: &Object) -> Option<&str> {
    pod.body
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// One scheduling pass over the local replica (after a read barrier, so it
/// sees every write committed before it, its own previous pass included).
///
/// Every pod without `spec.nodeName` that is not terminal is placed, oldest
/// first. Bindings are written `batch` pods per Raft command, each a `Put`
/// of the pod with `spec.nodeName` set and `Precondition::Version` of the
/// resourceVersion read. A pod that fits nowhere gets `phase: Pending` and
/// the condition `PodScheduled=False, reason Unschedulable` with the reason
/// counts as message, plus a `FailedScheduling` Warning event, both only
/// when the message differs from the stored condition's. `alive(name)` says
/// whether membership considers a node up.
///
/// `alive` is `Sync` so that the pass's future is `Send` and can run in a
/// spawned task (a plain `&dyn Fn` would make it `!Send`).
pub async fn schedule_pending(
    store: &Store,
    alive: &(dyn Fn(&str) -> bool + Sync),
    strategy: Strategy,
    batch: usize,
) -> Result<PassReport, StoreError> {
    let started = Instant::now();
    let batch = batch.max(1);
    store.barrier().await?;
    let (node_objects, _) = store.list(Kind::Node, None)?;
    let nodes: Vec<NodeFit> = node_objects
        .iter()
        .filter_map(|n| node_fit(n, alive(&n.metadata.name)))
        .collect();
    let volume_room: Vec<(String, u64)> = node_objects
        .iter()
        .map(|n| (n.metadata.name.clone(), claims::node_volume_bytes(n)))
        .collect();
    drop(node_objects);
    let host = local_node_name(store);

    // Listing, decoding and placing 100,000 pods is CPU work of a second or
    // so: it runs on a blocking thread, so it neither stalls the runtime's
    // workers (Raft heartbeats run there) nor waits for the writes, which
    // go out while the next batch is being planned.
    let (tx, mut rx) = mpsc::channel::<Vec<PodWrite>>(PLANNED_AHEAD);
    let planner = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            plan(&store, nodes, volume_room, strategy, batch, host, tx)
        })
    };
    let mut report = PassReport::default();
    let mut failure = None;
    let mut writes = JoinSet::new();
    while let Some(items) = rx.recv().await {
        while writes.len() >= WRITES_IN_FLIGHT {
            if let Some(r) = writes.join_next().await {
                collect(&mut report, &mut failure, r);
            }
        }
        if failure.is_some() {
            break;
        }
        writes.spawn(write_batch(store.clone(), items));
    }
    // Dropping the receiver stops a planner still running after a failure.
    drop(rx);
    while let Some(r) = writes.join_next().await {
        collect(&mut report, &mut failure, r);
    }
    let planned = match planner.await {
        Ok(p) => p?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            return Err(StoreError::Storage(format!(
                "scheduler pass cancelled: {e}"
            )));
        }
    };
    if let Some(e) = failure {
        return Err(e);
    }
    report.unschedulable = planned.unschedulable;
    let secs = started.elapsed().as_secs_f64();
    ::metrics::histogram!(metrics::PASS_SECONDS).record(secs);
    ::metrics::gauge!(metrics::PENDING_PODS).set(planned.pending as f64);
    ::metrics::counter!(metrics::PLACEMENTS_TOTAL).increment(report.placed as u64);
    ::metrics::counter!(metrics::UNSCHEDULABLE_TOTAL).increment(report.unschedulable as u64);
    ::metrics::counter!(metrics::CONFLICTS_TOTAL).increment(report.conflicts as u64);
    ::metrics::counter!(metrics::PREEMPTIONS_TOTAL).increment(report.preempted as u64);
    if report.placed > 0 || planned.newly_unschedulable > 0 || report.conflicts > 0 {
        info!(
            placed = report.placed,
            preempted = report.preempted,
            unschedulable = report.unschedulable,
            conflicts = report.conflicts,
            seconds = secs,
            "scheduling pass"
        );
    } else {
        debug!(
            pending = planned.pending,
            seconds = secs,
            "scheduling pass: nothing to do"
        );
    }
    Ok(report)
}

/// This node's name as Raft membership records it; events the scheduler
/// writes name it as their source host, so this node's agent sweeps them
/// like its own (by pod, by age, once the pod is gone).
fn local_node_name(store: &Store) -> Option<String> {
    let m = store.metrics();
    m.membership_config
        .membership()
        .get_node(&store.node_id())
        .map(|n| n.name.clone())
}

/// The writes about one pod, kept together so a refused one drops them all.
#[derive(Debug)]
struct PodWrite {
    pod: ObjectKey,
    /// The event written with an unschedulable pod's status.
    event: Option<ObjectKey>,
    /// Claims bound, volumes created and pods evicted with the pod's
    /// binding: the other objects the write is conditional on.
    touched: Vec<ObjectKey>,
    binds: bool,
    ops: Vec<Op>,
}

impl PodWrite {
    fn touches(&self, key: &ObjectKey) -> bool {
        self.pod == *key || self.event.as_ref() == Some(key) || self.touched.contains(key)
    }
}

/// What the planner saw.
#[derive(Debug, Default)]
struct Planned {
    pending: usize,
    unschedulable: usize,
    /// Unschedulable pods whose message changed (written this pass).
    newly_unschedulable: usize,
}

/// Lists the pods, places the pending ones and hands the writes over in
/// batches. Runs on a blocking thread.
fn plan(
    store: &Store,
    nodes: Vec<NodeFit>,
    volume_room: Vec<(String, u64)>,
    strategy: Strategy,
    batch: usize,
    host: Option<String>,
    tx: mpsc::Sender<Vec<PodWrite>>,
) -> Result<Planned, StoreError> {
    // Finished pods are most of a batch-heavy cluster: copy only the rest.
    let (shared, _) = store.list_shared(Kind::Pod, None)?;
    let pods: Vec<Object> = shared
        .iter()
        .filter(|p| !is_terminal(p))
        .map(|p| Object::clone(p))
        .collect();
    drop(shared);
    let mut storage = {
        let (claim_objects, _) = store.list(Kind::PersistentVolumeClaim, None)?;
        let (volumes, _) = store.list(Kind::PersistentVolume, None)?;
        let (classes, _) = store.list(Kind::StorageClass, None)?;
        let users: Vec<(&Object, Option<&str>)> = pods.iter().map(|p| (p, bound_node(p))).collect();
        claims::StorageView::new(&volume_room, claim_objects, &volumes, &classes, &users)
    };
    let mut placer = Placer::new(nodes, strategy);
    let mut pending = Vec::new();
    let mut unreadable: Option<ObjectKey> = None;
    let mut placed_by_hand = Vec::new();
    let mut all = Vec::with_capacity(pods.len());
    for pod in pods {
        let Some(needs) = pod_needs(&pod) else {
            unreadable = unreadable.or_else(|| pod.key());
            continue;
        };
        all.push((pod, needs));
    }
    // Pods are tracked for inter-pod rules only when some pod has them:
    // their labels are then copied once per pod, which the common pass
    // does without.
    if all.iter().any(|(_, n)| n.inter.is_some()) {
        placer.track_pods();
        for (pod, needs) in &mut all {
            needs.labels = Some(std::sync::Arc::new(pod.metadata.labels.clone()));
        }
    }
    // Bound pods are remembered as possible victims only below the
    // highest priority of a pending pod that may preempt: in a cluster
    // without priorities, none.
    let top = all
        .iter()
        .filter(|(p, _)| bound_node(p).is_none())
        .map(|(p, _)| preemption::priority_of(p))
        .filter(|(_, preempts)| *preempts)
        .map(|(v, _)| v)
        .max();
    let mut candidates = preemption::Candidates::new(store, top)?;
    for (pod, needs) in all {
        match bound_node(&pod) {
            Some(node) => {
                placer.add_bound(node, &needs);
                candidates.offer(&pod, &needs, node);
                if storage.has_unbound_claims(&pod) {
                    placed_by_hand.push(pod);
                }
            }
            None => pending.push((pod, needs)),
        }
    }
    if let Some(key) = unreadable {
        // Debug, not warn: the pass runs every half second.
        debug!(pod = %key, "a pod's spec cannot be read (bad quantity?); not scheduling it");
    }
    // Highest priority first, then oldest first, as Kubernetes' queue
    // orders; the list is in name order, which the sort (stable) keeps among
    // pods created in the same second.
    pending.sort_by_cached_key(|(p, _)| {
        (
            std::cmp::Reverse(preemption::priority_of(p).0),
            p.metadata.creation_timestamp.clone(),
        )
    });
    let mut planned = Planned {
        pending: pending.len(),
        ..Planned::default()
    };
    let now = now_rfc3339();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = Vec::with_capacity(batch.min(pending.len()));
    for pod in &placed_by_hand {
        if let Some(node) = bound_node(pod) {
            out.extend(bind_for_placed_pod(&mut storage, pod, node, &now));
        }
    }
    for (seq, (pod, mut needs)) in pending.into_iter().enumerate() {
        let pod_claims = claims::pod_claims(&pod);
        let ns = needs.key.namespace.clone();
        let (refused, provision) = match storage.verdict(&ns, &needs.key.name, &pod_claims) {
            claims::Verdict::Any => (None, Vec::new()),
            claims::Verdict::Only(v, p) => {
                needs.volume_nodes = Some(v);
                (None, p)
            }
            claims::Verdict::Refused(why) => (Some(why), Vec::new()),
            claims::Verdict::NextPass => continue,
        };
        let mut victims = Vec::new();
        let placed = match refused {
            Some(why) => Err(why),
            None => placer.place(&needs).or_else(|why| {
                let (priority, preempts) = preemption::priority_of(&pod);
                if !preempts || candidates.is_empty() {
                    return Err(why.to_string());
                }
                let Some(p) = placer.preempt(&needs, priority, candidates.by_node()) else {
                    return Err(why.to_string());
                };
                victims = candidates.take(&p);
                for v in &victims {
                    placer.remove_bound(&p.node, &v.needs);
                }
                placer.add_bound(&p.node, &needs);
                Ok(p.node)
            }),
        };
        let write = match placed {
            Ok(node) => {
                let volumes = provision
                    .iter()
                    .filter_map(|p| storage.binding_objects(p, &node, &now))
                    .collect::<Vec<_>>();
                storage.bound(&ns, &needs.key.name, &node, &pod_claims, &provision);
                let mut write = binding(pod, needs.key, &node, &now, volumes);
                if let Some(w) = write.as_mut().filter(|_| !victims.is_empty()) {
                    let stamp = nanos + seq as u128;
                    let name = |victim: &str| format!("{victim}.{stamp:x}");
                    candidates.evict(w, &victims, &node, &now, host.as_deref(), &name);
                }
                write
            }
            Err(why) => {
                planned.unschedulable += 1;
                let event_name = format!("{}.{:x}", needs.key.name, nanos + seq as u128);
                let w = unschedulable(&pod, needs.key, &why, &now, host.as_deref(), event_name);
                planned.newly_unschedulable += usize::from(w.is_some());
                w
            }
        };
        out.extend(write);
        if out.len() >= batch {
            let full = std::mem::replace(&mut out, Vec::with_capacity(batch));
            if tx.blocking_send(full).is_err() {
                // The writer gave up (a failed write); the pass is over.
                return Ok(planned);
            }
        }
    }
    if !out.is_empty() {
        let _ = tx.blocking_send(out);
    }
    Ok(planned)
}

/// The pod bound to `node`: a compare-and-set at the version the pass read;
/// with it, each claim it binds (at the version read) and its new volume
/// (which must not exist), so a stale pass binds nothing.
fn binding(
    mut pod: Object,
    key: ObjectKey,
    node: &str,
    now: &str,
    volumes: Vec<(Object, Object)>,
) -> Option<PodWrite> {
    let rv = pod.resource_version();
    pod.body
        .get_mut("spec")?
        .as_object_mut()?
        .insert("nodeName".into(), Value::String(node.to_string()));
    // A pod once found unschedulable keeps that condition until its agent
    // writes a status; Kubernetes' binding flips it at once, and so do we.
    if pod.body.contains_key("status") {
        let mut status: PodStatus = pod.status_or_default();
        mark_scheduled(&mut status, now);
        pod.set_status(&status);
    }
    let object = match serde_json::to_vec(&pod) {
        Ok(b) => b,
        Err(e) => {
            warn!(pod = %key, "cannot encode the binding: {e}");
            return None;
        }
    };
    let mut ops = vec![Op::Put {
        key: key.clone(),
        object,
        precondition: Precondition::Version(rv),
    }];
    let (claim_ops, touched) = claim_binding_ops(&key, volumes)?;
    ops.extend(claim_ops);
    Some(PodWrite {
        pod: key,
        event: None,
        touched,
        binds: true,
        ops,
    })
}

/// The writes that bind claims to their new volumes: each claim at the
/// version the pass read, each volume only if it does not exist yet.
fn claim_binding_ops(
    pod: &ObjectKey,
    volumes: Vec<(Object, Object)>,
) -> Option<(Vec<Op>, Vec<ObjectKey>)> {
    let mut ops = Vec::new();
    let mut touched = Vec::new();
    for (claim, volume) in volumes {
        let (Some(ck), Some(vk)) = (claim.key(), volume.key()) else {
            continue;
        };
        let (Ok(cb), Ok(vb)) = (serde_json::to_vec(&claim), serde_json::to_vec(&volume)) else {
            warn!(pod = %pod, "cannot encode a claim's binding");
            return None;
        };
        ops.push(Op::Put {
            key: ck.clone(),
            object: cb,
            precondition: Precondition::Version(claim.resource_version()),
        });
        ops.push(Op::Put {
            key: vk.clone(),
            object: vb,
            precondition: Precondition::MustNotExist,
        });
        touched.extend([ck, vk]);
    }
    Some((ops, touched))
}

/// For a pod that names its node itself (`spec.nodeName` in its manifest),
/// the claims it is the first to use are bound on that node, when it has
/// room; else they stay unbound and the agent says so (`FailedMount`).
fn bind_for_placed_pod(
    storage: &mut claims::StorageView,
    pod: &Object,
    node: &str,
    now: &str,
) -> Option<PodWrite> {
    let key = pod.key()?;
    let names = claims::pod_claims(pod);
    let claims::Verdict::Only(allowed, provision) =
        storage.verdict(&key.namespace, &key.name, &names)
    else {
        return None;
    };
    if provision.is_empty() || !allowed.allowed.contains(node) {
        return None;
    }
    let volumes = provision
        .iter()
        .filter_map(|p| storage.binding_objects(p, node, now))
        .collect();
    storage.bound(&key.namespace, &key.name, node, &names, &provision);
    let (ops, touched) = claim_binding_ops(&key, volumes)?;
    Some(PodWrite {
        pod: key,
        event: None,
        touched,
        binds: false,
        ops,
    })
}

/// Sets the PodScheduled condition to True where it says otherwise.
fn mark_scheduled(status: &mut PodStatus, now: &str) {
    for c in status
        .conditions
        .iter_mut()
        .filter(|c| c.type_ == "PodScheduled" && !c.is_true())
    {
        *c = Condition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(now.into()),
            ..Condition::default()
        };
    }
}

/// The status and event writes for a pod that fits nowhere, or `None` when
/// the stored condition already says exactly this.
fn unschedulable(
    pod: &Object,
    key: ObjectKey,
    message: &str,
    now: &str,
    host: Option<&str>,
    event_name: String,
) -> Option<PodWrite> {
    let status: PodStatus = pod.status_or_default();
    let prev = status.condition("PodScheduled");
    let was_false = prev.is_some_and(|c| c.status == "False");
    let same_message = was_false
        && prev.and_then(|c| c.reason.as_deref()) == Some("Unschedulable")
        && prev.and_then(|c| c.message.as_deref()) == Some(message);
    let pending = status.phase == Some(PodPhase::Pending);
    if same_message && pending {
        return None;
    }
    let since = prev
        .and_then(|c| c.last_transition_time.clone())
        .filter(|_| was_false)
        .unwrap_or_else(|| now.to_string());
    let condition = Condition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        last_transition_time: Some(since),
        ..Condition::default()
    };
    let mut new = status.clone();
    new.phase = Some(PodPhase::Pending);
    new.conditions.retain(|c| c.type_ != "PodScheduled");
    new.conditions.insert(0, condition);
    let status_bytes = serde_json::to_vec(&new).ok()?;
    let mut ops = vec![Op::SetStatus {
        key: key.clone(),
        uid: pod.metadata.uid.clone(),
        status: status_bytes,
    }];
    let mut event = None;
    if !same_message
        && let Some((ekey, bytes)) = pod_event(
            &key,
            pod.metadata.uid.as_deref(),
            ("FailedScheduling", "Warning"),
            message,
            now,
            host,
            event_name,
        )
    {
        ops.push(Op::Put {
            key: ekey.clone(),
            object: bytes,
            precondition: Precondition::None,
        });
        event = Some(ekey);
    }
    Some(PodWrite {
        pod: key,
        event,
        touched: Vec::new(),
        binds: false,
        ops,
    })
}

/// An event about the pod `key` (of `uid`), `(reason, type)`, in
/// Kubernetes' shape, from the scheduler.
fn pod_event(
    key: &ObjectKey,
    uid: Option<&str>,
    (reason, type_): (&str, &str),
    message: &str,
    now: &str,
    host: Option<&str>,
    name: String,
) -> Option<(ObjectKey, Vec<u8>)> {
    let mut source = Map::new();
    source.insert("component".into(), json!("shoal-scheduler"));
    if let Some(h) = host {
        source.insert("host".into(), json!(h));
    }
    let body = json!({
        "involvedObject": {
            "kind": "Pod",
            "namespace": key.namespace,
            "name": key.name,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": source,
    });
    let Value::Object(body) = body else {
        return None;
    };
    let ekey = ObjectKey::new(Kind::Event, &key.namespace, &name);
    let obj = Object {
        api_version: "v1".into(),
        kind: "Event".into(),
        metadata: ObjectMeta {
            name,
            namespace: Some(key.namespace.clone()),
            creation_timestamp: Some(now.to_string()),
            ..Default::default()
        },
        body,
    };
    let bytes = serde_json::to_vec(&obj).ok()?;
    Some((ekey, bytes))
}

/// What one command's writes achieved.
#[derive(Debug, Default)]
struct Written {
    placed: usize,
    conflicts: usize,
    preempted: usize,
}

/// Writes one batch as one command. A pod the store refuses (changed or
/// deleted since the pass read it) is dropped and the rest retried; after
/// [`MAX_DROPS_PER_BATCH`] the rest is left to the next pass.
async fn write_batch(store: Store, mut items: Vec<PodWrite>) -> Result<Written, StoreError> {
    let mut dropped = 0;
    loop {
        if items.is_empty() {
            return Ok(Written {
                conflicts: dropped,
                ..Written::default()
            });
        }
        let ops = items.iter().flat_map(|w| w.ops.iter().cloned()).collect();
        match store.write(Command { ops }).await {
            Ok(_) => {
                // The scheduler deletes pods only to preempt them.
                let preempted = items
                    .iter()
                    .flat_map(|w| &w.ops)
                    .filter(|o| matches!(o, Op::Delete { key, .. } if key.kind == Kind::Pod))
                    .count();
                return Ok(Written {
                    placed: items.iter().filter(|w| w.binds).count(),
                    conflicts: dropped,
                    preempted,
                });
            }
            Err(StoreError::Txn(e)) => {
                let key = match &e {
                    TxnError::Conflict { key, .. }
                    | TxnError::NotFound { key }
                    | TxnError::AlreadyExists { key }
                    | TxnError::Invalid { key, .. } => key,
                    // Batches are bounded in pods, each far below the limit.
                    TxnError::TooLarge { .. } | TxnError::QuotaExceeded { .. } => {
                        return Err(StoreError::Txn(e));
                    }
                };
                match items.iter().position(|w| w.touches(key)) {
                    Some(i) if dropped < MAX_DROPS_PER_BATCH => {
                        debug!("scheduler write refused, retrying without it: {e}");
                        items.swap_remove(i);
                        dropped += 1;
                    }
                    _ => {
                        debug!(
                            pods = items.len(),
                            "scheduler batch refused again, left to the next pass: {e}"
                        );
                        return Ok(Written {
                            conflicts: dropped + items.len(),
                            ..Written::default()
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn collect(
    report: &mut PassReport,
    failure: &mut Option<StoreError>,
    r: Result<Result<Written, StoreError>, tokio::task::JoinError>,
) {
    match r {
        Ok(Ok(w)) => {
            report.placed += w.placed;
            report.conflicts += w.conflicts;
            report.preempted += w.preempted;
        }
        Ok(Err(e)) => {
            failure.get_or_insert(e);
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            failure.get_or_insert(StoreError::Storage(format!(
                "scheduler write cancelled: {e}"
            )));
        }
    }
}

#[cfg(test)]
mod tests;
