//! The HorizontalPodAutoscaler controller: on the Raft leader, every
//! `sync` (5 s, the agents' default sampling resolution, against
//! Kubernetes' 15 s) it reads each HPA, its target (a Deployment or a
//! StatefulSet), the target's pods and their usage, decides with
//! Kubernetes' algorithm (`decide`, pure), and writes the target's
//! `spec.replicas` and the HPA's status, fenced on the versions it read.
//!
//! The usage comes from the nodes themselves through a [`UsageSource`]
//! (soft state, never stored). The recommendation and rescale history the
//! behavior's windows and policies read lives in this task's memory: a new
//! leader starts with none, so for one scale-down window after a leader
//! change it may scale down sooner than the old leader would have.

pub mod behavior;
pub mod decide;
pub mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tracing::{debug, info};

use self::behavior::History;
use self::decide::{Cond, Decision, PodFacts};
use super::job::{JobEvent, event};
use super::{ControllerError, fence, now_millis};
use crate::resource::status::{Condition, PodReadiness};
use crate::resource::time::now_rfc3339;
use crate::resource::types::{
    Body, HorizontalPodAutoscalerBody, HorizontalPodAutoscalerStatus, LabelSelector, PodBody,
};
use crate::resource::usage::PodSample;
use crate::resource::{Kind, Object, ObjectKey, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// How often HPAs are synced by default.
pub const SYNC: Duration = Duration::from_secs(5);

/// Where the autoscaler reads pods' usage: every live node's samples.
pub trait UsageSource: Send + Sync + 'static {
    /// The pods every reachable node reports now.
    fn pods(&self) -> BoxFuture<'_, Vec<PodSample>>;
}

/// Starts the HPA controller: it runs while this node leads.
pub fn spawn(
    store: Store,
    usage: Arc<dyn UsageSource>,
    sync: Duration,
) -> tokio::task::JoinHandle<()> {
    let s = store.clone();
    super::while_leading(store, "autoscaler", move || {
        run(s.clone(), usage.clone(), sync)
    })
}

async fn run(store: Store, usage: Arc<dyn UsageSource>, sync: Duration) {
    let mut memory: HashMap<String, History> = HashMap::new();
    let mut tick = tokio::time::interval(sync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pass(&store, usage.as_ref(), &mut memory).await;
    }
}

/// One pass over every HPA.
pub async fn pass(store: &Store, usage: &dyn UsageSource, memory: &mut HashMap<String, History>) {
    let Ok((hpas, _)) = store.list(Kind::HorizontalPodAutoscaler, None) else {
        return;
    };
    // The SuccessfulRescale events this controller wrote go with their object
    // (the StatefulSet pass already collects the StatefulSet's events).
    if let (Ok((events, _)), Ok((deployments, _))) = (
        store.list(Kind::Event, None),
        store.list(Kind::Deployment, None),
    ) {
        super::gc::collect(store, "HorizontalPodAutoscaler", &hpas, &events).await;
        super::gc::collect(store, "Deployment", &deployments, &events).await;
    }
    let live: std::collections::HashSet<&str> = hpas
        .iter()
        .filter_map(|h| h.metadata.uid.as_deref())
        .collect();
    memory.retain(|uid, _| live.contains(uid.as_str()));
    if hpas.is_empty() {
        return;
    }
    let samples: BTreeMap<(String, String), PodSample> = usage
        .pods()
        .await
        .into_iter()
        .map(|p| ((p.namespace.clone(), p.name.clone()), p))
        .collect();
    let shared = shared_targets(&hpas);
    for hpa in &hpas {
        let uid = hpa.metadata.uid.clone().unwrap_or_default();
        let history = memory.entry(uid).or_default();
        let r = match target_of(hpa) {
            Some(t) if shared.contains(&t) => ambiguous(store, hpa).await,
            _ => sync_one(store, hpa, &samples, history).await,
        };
        if let Err(e) = r {
            e.log("horizontalpodautoscaler", &hpa.metadata.name);
        }
    }
}

/// (namespace, kind, name) of the HPA's target.
fn target_of(hpa: &Object) -> Option<(String, String, String)> {
    let b = HorizontalPodAutoscalerBody::from_object(hpa).ok()?;
    let ns = hpa.metadata.namespace.clone().unwrap_or_default();
    let t = b.spec.scale_target_ref;
    Some((ns, t.kind, t.name))
}

/// Targets more than one HPA names: none of them may act, as Kubernetes'
/// AmbiguousSelector (two deciders would fight over one count).
fn shared_targets(hpas: &[Object]) -> std::collections::HashSet<(String, String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut shared = std::collections::HashSet::new();
    for t in hpas.iter().filter_map(target_of) {
        if !seen.insert(t.clone()) {
            shared.insert(t);
        }
    }
    shared
}

async fn ambiguous(store: &Store, hpa: &Object) -> Result<(), ControllerError> {
    let prev: HorizontalPodAutoscalerStatus = hpa.status_or_default();
    let d = Decision {
        desired: prev.desired_replicas,
        rescale: None,
        current_metrics: Vec::new(),
        conditions: vec![Cond {
            type_: "ScalingActive",
            status: false,
            reason: "AmbiguousSelector",
            message: "another HorizontalPodAutoscaler targets the same object; neither scales it"
                .into(),
        }],
    };
    let status = next_status(&prev, hpa, prev.current_replicas, &d, &now_rfc3339());
    write_status(store, hpa, &prev, status, Vec::new()).await
}

/// The target's replica count (spec, default 1) and pod selector.
fn scale_of(target: &Object) -> (u32, Option<LabelSelector>) {
    let spec = target.body.get("spec");
    let replicas = spec
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_u64)
        .map_or(1, |r| u32::try_from(r).unwrap_or(u32::MAX));
    let selector = spec
        .and_then(|s| s.get("selector"))
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    (replicas, selector)
}

/// What an HPA scales: a Deployment or a StatefulSet (`spec.replicas`,
/// `spec.selector`), or a custom object through its definition's scale
/// subresource.
struct ScaleTarget {
    object: Object,
    key: ObjectKey,
    scale: Option<crate::crd::ScaleSubresource>,
}

impl ScaleTarget {
    /// The target `r` names in `namespace`, or why it cannot be scaled.
    fn find(
        store: &Store,
        namespace: &str,
        r: &crate::resource::types::CrossVersionObjectReference,
    ) -> Result<Result<ScaleTarget, String>, ControllerError> {
        let missing = || format!("{} {:?} not found", r.kind.to_ascii_lowercase(), r.name);
        let builtin = match r.kind.as_str() {
            "Deployment" => Some(Kind::Deployment),
            "StatefulSet" => Some(Kind::StatefulSet),
            _ => None,
        };
        if let Some(kind) =
            builtin.filter(|_| r.api_version.as_deref().is_none_or(|v| v == "apps/v1"))
        {
            let key = ObjectKey::new(kind, namespace, &r.name);
            return Ok(match store.get(&key)? {
                Some(object) => Ok(ScaleTarget {
                    object,
                    key,
                    scale: None,
                }),
                None => Err(missing()),
            });
        }
        let (group, version) = r
            .api_version
            .as_deref()
            .and_then(|v| v.split_once('/'))
            .unwrap_or(("", ""));
        let defs = store.list(Kind::CustomResourceDefinition, None)?.0;
        let found = defs
            .iter()
            .filter_map(crate::crd::Definition::from_object)
            .find_map(|d| {
                if d.group != group || d.names.kind != r.kind {
                    return None;
                }
                let scale = d
                    .served(version)
                    .or_else(|| d.storage_version())
                    .and_then(|v| v.scale.clone())?;
                Some((d.key(Some(namespace), &r.name), scale))
            });
        let Some((key, scale)) = found else {
            return Ok(Err(format!(
                "no CustomResourceDefinition serves {} in {group}/{version} with a scale subresource",
                r.kind
            )));
        };
        Ok(match store.get(&key)? {
            Some(object) => Ok(ScaleTarget {
                object,
                key,
                scale: Some(scale),
            }),
            None => Err(missing()),
        })
    }

    /// The desired count and the pods' selector, as a `Scale` shows them.
    fn current(&self) -> (u32, Option<LabelSelector>) {
        let Some(scale) = &self.scale else {
            return scale_of(&self.object);
        };
        let v = serde_json::to_value(&self.object).unwrap_or(Value::Null);
        let (want, _, selector) = scale.read(&v);
        (
            u32::try_from(want).unwrap_or(0),
            selector.and_then(|s| crate::resource::selector::parse(&s).ok()),
        )
    }

    /// The object with `replicas` as its desired count, its status left
    /// out (the store keeps the stored one).
    fn rescaled(&self, replicas: u32) -> Result<Vec<u8>, ControllerError> {
        let mut copy = self.object.clone();
        copy.body.remove("status");
        let mut v = serde_json::to_value(&copy).map_err(|e| e.to_string())?;
        match &self.scale {
            Some(scale) => scale.set_replicas(&mut v, i64::from(replicas))?,
            None => {
                if let Some(Value::Object(spec)) = v.get_mut("spec") {
                    spec.insert("replicas".into(), json!(replicas));
                }
            }
        }
        Ok(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
    }
}

/// What the calculation needs of one pod.
pub fn pod_facts(pod: &Object, sample: Option<&PodSample>) -> PodFacts {
    let status: PodReadiness = pod.status_or_default();
    let ready = status.condition("Ready").is_some_and(Condition::is_true);
    let sum = |get: fn(&crate::resource::types::ResourceRequirements) -> Option<u64>| {
        let body = PodBody::from_object(pod).map_err(|_| "(unreadable spec)".to_string())?;
        body.spec.containers.iter().try_fold(0u64, |acc, c| {
            let r = c
                .resources
                .as_ref()
                .and_then(get)
                .ok_or_else(|| c.name.clone())?;
            Ok(acc.saturating_add(r))
        })
    };
    let usage = |f: fn(&crate::resource::usage::ContainerSample) -> u64| {
        sample.map(|s| s.containers.iter().map(f).sum::<u64>())
    };
    PodFacts {
        name: pod.metadata.name.clone(),
        ignored: pod.metadata.deletion_timestamp.is_some() || status.is_terminal(),
        unready: !ready,
        cpu_request: sum(|r| r.cpu_request_millis()),
        memory_request: sum(|r| r.memory_request_bytes()),
        cpu_usage: usage(|c| c.cpu_nanocores / 1_000_000),
        memory_usage: usage(|c| c.memory_bytes),
    }
}

fn owner_ref(o: &Object) -> OwnerReference {
    OwnerReference::to(o, true)
}

/// The status after a decision: conditions keep their transition time
/// unless their status flips, as Kubernetes'.
fn next_status(
    prev: &HorizontalPodAutoscalerStatus,
    hpa: &Object,
    current: u32,
    d: &Decision,
    now: &str,
) -> HorizontalPodAutoscalerStatus {
    let mut s = prev.clone();
    s.observed_generation = hpa.metadata.generation;
    s.current_replicas = current;
    s.desired_replicas = d.desired;
    if !d.current_metrics.is_empty() {
        s.current_metrics = d.current_metrics.clone();
    }
    if d.rescale.is_some() {
        s.last_scale_time = Some(now.to_string());
    }
    for Cond {
        type_,
        status,
        reason,
        message,
    } in &d.conditions
    {
        let status = if *status { "True" } else { "False" };
        let kept = s
            .conditions
            .iter()
            .find(|c| c.type_ == *type_)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone());
        s.conditions.retain(|c| c.type_ != *type_);
        s.conditions.push(Condition {
            type_: type_.to_string(),
            status: status.into(),
            reason: Some(reason.to_string()),
            message: Some(message.clone()),
            last_transition_time: Some(kept.unwrap_or_else(|| now.to_string())),
            ..Default::default()
        });
    }
    let order = |t: &str| {
        ["AbleToScale", "ScalingActive", "ScalingLimited"]
            .iter()
            .position(|x| *x == t)
            .unwrap_or(3)
    };
    s.conditions.sort_by_key(|c| order(&c.type_));
    s
}

fn failed_get_scale(msg: String) -> Decision {
    Decision {
        desired: 0,
        rescale: None,
        current_metrics: Vec::new(),
        conditions: vec![Cond {
            type_: "AbleToScale",
            status: false,
            reason: "FailedGetScale",
            message: format!(
                "the HPA controller was unable to get the target's current scale: {msg}"
            ),
        }],
    }
}

async fn sync_one(
    store: &Store,
    hpa: &Object,
    samples: &BTreeMap<(String, String), PodSample>,
    history: &mut History,
) -> Result<(), ControllerError> {
    let key = hpa.key().ok_or("hpa key")?;
    let body = HorizontalPodAutoscalerBody::from_object(hpa).map_err(|e| format!("{key}: {e}"))?;
    let prev: HorizontalPodAutoscalerStatus = hpa.status_or_default();
    let now = now_rfc3339();
    let target_ref = &body.spec.scale_target_ref;
    let target = match ScaleTarget::find(store, &key.namespace, target_ref)? {
        Ok(t) => t,
        Err(why) => {
            let d = failed_get_scale(why);
            let status = next_status(&prev, hpa, 0, &d, &now);
            return write_status(store, hpa, &prev, status, Vec::new()).await;
        }
    };
    let (current, selector) = target.current();
    let pods: Vec<PodFacts> = match &selector {
        Some(sel) if !sel.is_empty() => store
            .list(Kind::Pod, Some(&key.namespace))?
            .0
            .iter()
            .filter(|p| sel.matches(&p.metadata.labels))
            .map(|p| {
                pod_facts(
                    p,
                    samples.get(&(key.namespace.clone(), p.metadata.name.clone())),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let now_ms = now_millis();
    let d = decide::decide(&body.spec, current, &pods, history, now_ms);
    let status = next_status(&prev, hpa, current, &d, &now);
    let mut ops = Vec::new();
    if let Some(reason) = &d.rescale {
        ops.push(Op::Put {
            key: target.key.clone(),
            object: target.rescaled(d.desired)?,
            precondition: Precondition::Version(target.object.resource_version()),
        });
        let ev = JobEvent {
            warning: false,
            reason: "SuccessfulRescale",
            message: format!("New size: {}; reason: {reason}", d.desired),
        };
        ops.push(event(
            hpa,
            &key,
            &ev,
            &now,
            owner_ref(hpa),
            "horizontal-pod-autoscaler",
        )?);
        ops.push(event(
            &target.object,
            &target.key,
            &ev,
            &now,
            owner_ref(&target.object),
            "horizontal-pod-autoscaler",
        )?);
    }
    let rescaled = !ops.is_empty();
    write_status(store, hpa, &prev, status, ops).await?;
    if rescaled {
        info!(hpa = %key, from = current, to = d.desired, "rescaled");
        let keep = behavior::Behavior::from_spec(body.spec.behavior.as_ref()).longest_period_ms();
        history.record_scale(current, d.desired, now_ms, keep);
    }
    Ok(())
}

async fn write_status(
    store: &Store,
    hpa: &Object,
    prev: &HorizontalPodAutoscalerStatus,
    status: HorizontalPodAutoscalerStatus,
    mut ops: Vec<Op>,
) -> Result<(), ControllerError> {
    let key = hpa.key().ok_or("hpa key")?;
    if *prev != status {
        ops.push(Op::SetStatus {
            key,
            uid: hpa.metadata.uid.clone(),
            status: serde_json::to_vec(&status).map_err(|e| e.to_string())?,
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    ops.insert(0, fence(hpa)?);
    debug!(ops = ops.len(), "hpa write");
    store.write(Command { ops }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::usage::ContainerSample;

    fn obj(v: Value) -> Object {
        serde_json::from_value(v).expect("object")
    }

    fn pod(status: Value) -> Object {
        obj(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"containers": [
                {"name": "app", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "side", "image": "x", "resources": {"limits": {"cpu": "50m"}}}
            ]},
            "status": status
        }))
    }

    fn sample() -> PodSample {
        let c = |name: &str, cpu, mem| ContainerSample {
            name: name.into(),
            cpu_nanocores: cpu,
            memory_bytes: mem,
            cpu_seconds_total: 0.0,
        };
        PodSample {
            namespace: "default".into(),
            name: "web-1".into(),
            timestamp_ms: 0,
            window_ms: 5000,
            containers: vec![
                c("app", 120_000_000, 1 << 20),
                c("side", 5_000_000, 1 << 20),
            ],
        }
    }

    #[test]
    fn pod_facts_sum_requests_with_limits_as_fallback_and_usage_in_millicores() {
        let ready =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        let f = pod_facts(&pod(ready), Some(&sample()));
        assert_eq!(
            f.cpu_request,
            Ok(150),
            "the sidecar's limit stands for its request"
        );
        assert_eq!(
            f.memory_request,
            Err("side".into()),
            "side has no memory request"
        );
        assert_eq!((f.cpu_usage, f.memory_usage), (Some(125), Some(2 << 20)));
        assert!(!f.unready && !f.ignored);
        let f = pod_facts(&pod(json!({"phase": "Pending"})), None);
        assert!(f.unready);
        assert_eq!(f.cpu_usage, None);
        assert!(pod_facts(&pod(json!({"phase": "Failed"})), None).ignored);
    }

    #[test]
    fn the_scale_of_a_deployment_or_statefulset_is_its_spec() {
        let sts = obj(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}}}
        }));
        let (n, sel) = scale_of(&sts);
        assert_eq!(n, 3);
        let sel = sel.expect("selector");
        assert!(sel.matches(&BTreeMap::from([("app".into(), "db".into())])));
        let bare = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": {}}),
        );
        assert_eq!(scale_of(&bare).0, 1, "replicas default to 1");
    }

    #[test]
    fn two_hpas_on_one_target_are_both_held() {
        let h = |name: &str, target: &str| {
            obj(json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target}, "maxReplicas": 3}
            }))
        };
        let shared = shared_targets(&[h("a", "web"), h("b", "web"), h("c", "api")]);
        let key = |t: &str| {
            (
                "default".to_string(),
                "Deployment".to_string(),
                t.to_string(),
            )
        };
        assert!(shared.contains(&key("web")));
        assert!(!shared.contains(&key("api")));
    }

    #[test]
    fn status_keeps_transition_times_until_a_condition_flips() {
        let hpa = obj(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "w", "namespace": "default", "generation": 2}
        }));
        let d = |active: bool| Decision {
            desired: 2,
            rescale: None,
            current_metrics: Vec::new(),
            conditions: vec![Cond {
                type_: "ScalingActive",
                status: active,
                reason: if active {
                    "ValidMetricFound"
                } else {
                    "FailedGetResourceMetric"
                },
                message: String::new(),
            }],
        };
        let s1 = next_status(&Default::default(), &hpa, 2, &d(true), "t1");
        let s2 = next_status(&s1, &hpa, 2, &d(true), "t2");
        assert_eq!(s2.conditions[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(s2, s1, "an unchanged pass writes nothing");
        let s3 = next_status(&s2, &hpa, 2, &d(false), "t3");
        assert_eq!(s3.conditions[0].last_transition_time.as_deref(), Some("t3"));
        assert_eq!(s3.observed_generation, Some(2));
        assert_eq!(s3.last_scale_time, None);
    }
}
