//! Write-time policies applied to every new pod whoever creates it (the API
//! for a user's Pod, the ReplicaSet, Job, DaemonSet and StatefulSet
//! controllers for theirs), as Kubernetes' admission plugins do:
//! - LimitRanger: the namespace's LimitRange defaults fill in the requests
//!   and limits a container leaves out, then its bounds are checked;
//! - Priority: `priorityClassName` (or the cluster's default class) is
//!   resolved into `spec.priority` and `spec.preemptionPolicy`
//!   ([`priority`]);
//! - ResourceQuota: a new pod is charged to its namespace's quotas, in the
//!   write that creates it ([`quota`]).
//!
//! Deciding is pure ([`admit_pod`], [`admit_new_pod`]); [`policy`] reads
//! what it needs.

pub mod priority;
pub mod quota;

use std::collections::BTreeMap;

use crate::resource::types::{
    Body, Container, LimitRangeBody, LimitRangeItem, PodSpec, Quantity, ResourceRequirements,
};
use crate::resource::{Kind, Object};
use crate::store::Store;

pub use priority::PriorityClasses;
pub use quota::Quotas;

/// What a namespace's new pods are held to.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The namespace's LimitRange items, defaults applied.
    pub limits: Vec<LimitRangeItem>,
    /// The cluster's PriorityClasses.
    pub priorities: PriorityClasses,
    /// The namespace's ResourceQuotas, with what this write has charged.
    pub quotas: Quotas,
}

/// The policy for new pods of namespace `ns`. What the replica cannot read
/// counts as absent (the store's reader only fails when the node is broken);
/// a pod naming a class then fails to resolve it, which is the safe side.
pub fn policy(store: &Store, ns: &str) -> Policy {
    Policy {
        limits: ranges(store, ns),
        priorities: store
            .list(Kind::PriorityClass, None)
            .map(|(classes, _)| PriorityClasses::of(&classes))
            .unwrap_or_default(),
        quotas: store
            .list(Kind::ResourceQuota, Some(ns))
            .map(|(quotas, _)| Quotas::of(&quotas))
            .unwrap_or_default(),
    }
}

impl Policy {
    /// The writes that charge this write's new pods to their quotas; a
    /// creator adds them to the command that creates the pods.
    pub fn quota_ops(&self) -> Vec<crate::store::Op> {
        self.quotas.ops()
    }
}

/// Applies `policy` to a new pod's spec: its priority resolved, LimitRange
/// defaults filled, bounds checked. The error is Kubernetes' wording
/// without the `pods "NAME" is forbidden: ` its callers prefix.
pub fn admit_pod(spec: &mut PodSpec, policy: &Policy) -> Result<(), String> {
    policy.priorities.resolve(spec)?;
    limit_pod(spec, &policy.limits)
}

/// [`admit_pod`] for a pod about to be created, which is then charged to
/// the namespace's quotas; the caller writes [`Policy::quota_ops`] with it.
pub fn admit_new_pod(spec: &mut PodSpec, policy: &mut Policy) -> Result<(), String> {
    admit_pod(spec, policy)?;
    policy.quotas.charge(spec)
}

/// [`admit_pod`] (or, when `new`, [`admit_new_pod`]) on a Pod object's
/// spec, the error as Kubernetes words a refused create (`pods "NAME" is
/// forbidden: ...`).
pub fn admit_pod_object(pod: &mut Object, policy: &mut Policy, new: bool) -> Result<(), String> {
    let forbidden = |e: String| format!("pods {:?} is forbidden: {e}", pod.metadata.name);
    let mut body =
        crate::resource::types::PodBody::from_object(pod).map_err(|e| forbidden(e.to_string()))?;
    let before = body.spec.clone();
    if new {
        admit_new_pod(&mut body.spec, policy).map_err(forbidden)?;
    } else {
        admit_pod(&mut body.spec, policy).map_err(forbidden)?;
    }
    if body.spec != before {
        let spec = serde_json::to_value(&body.spec).map_err(|e| forbidden(e.to_string()))?;
        pod.body.insert("spec".into(), spec);
    }
    Ok(())
}

/// The LimitRange items of namespace `ns`, defaults applied; empty when
/// the replica cannot be read (a pod is then created unbounded, as when no
/// LimitRange exists: the store's reader only fails when the node is broken).
pub fn ranges(store: &Store, ns: &str) -> Vec<LimitRangeItem> {
    let Ok((objects, _)) = store.list(Kind::LimitRange, Some(ns)) else {
        return Vec::new();
    };
    items(&objects)
}

/// The items of these LimitRange objects, defaults applied.
pub fn items(objects: &[Object]) -> Vec<LimitRangeItem> {
    objects
        .iter()
        .filter_map(|o| LimitRangeBody::from_object(o).ok())
        .flat_map(|b| b.spec.limits)
        .map(|mut i| {
            i.set_defaults();
            i
        })
        .collect()
}

/// Applies `items` to a new pod's spec: fills defaults, then checks every
/// bound. The error is Kubernetes' wording, every violation joined.
pub fn limit_pod(spec: &mut PodSpec, items: &[LimitRangeItem]) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    let containers = items.iter().filter(|i| i.type_ == "Container");
    for item in containers.clone() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut())
        {
            fill_defaults(c, item);
        }
    }
    let mut problems = Vec::new();
    for item in containers {
        for c in spec.containers.iter().chain(&spec.init_containers) {
            check(
                "Container",
                item,
                &requests_of(c.resources.as_ref()),
                &limits_of(c.resources.as_ref()),
                &mut problems,
            );
        }
    }
    for item in items.iter().filter(|i| i.type_ == "Pod") {
        let (requests, limits) = pod_totals(spec);
        check("Pod", item, &requests, &limits, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// The default limit and request for each resource the container leaves
/// out; a request defaults from an existing limit first, as the API does.
fn fill_defaults(c: &mut Container, item: &LimitRangeItem) {
    if item.default.is_empty() && item.default_request.is_empty() {
        return;
    }
    let r = c
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    // A container that sets only a limit asks for it (the API's own
    // defaulting, before any range), not for the range's default request.
    let own_limits = r.limits.clone();
    for (k, v) in &item.default_request {
        if !r.requests.contains_key(k) {
            let value = own_limits.get(k).cloned().unwrap_or_else(|| v.clone());
            r.requests.insert(k.clone(), value);
        }
    }
    for (k, v) in &item.default {
        r.limits.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// A resource's amount in base units (millicores, bytes).
fn amount(resource: &str, q: &Quantity) -> Option<u64> {
    match resource {
        "cpu" => q.cpu_millis().ok(),
        "memory" | crate::resource::extended::EPHEMERAL_STORAGE => {
            crate::resource::types::parse_memory_bytes(q.as_str()).ok()
        }
        n if crate::resource::extended::is_extended(n) => {
            crate::resource::extended::parse_count(q.as_str()).ok()
        }
        _ => None,
    }
}

fn requests_of(r: Option<&ResourceRequirements>) -> BTreeMap<String, u64> {
    per_resource(r.map(|r| &r.requests))
}

fn limits_of(r: Option<&ResourceRequirements>) -> BTreeMap<String, u64> {
    per_resource(r.map(|r| &r.limits))
}

fn per_resource(m: Option<&BTreeMap<String, Quantity>>) -> BTreeMap<String, u64> {
    m.into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), amount(k, q)?)))
        .collect()
}

/// A pod's requests and limits as Kubernetes counts them for a Pod item:
/// the app containers summed, or the largest init container if larger.
fn pod_totals(spec: &PodSpec) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let total = |get: fn(Option<&ResourceRequirements>) -> BTreeMap<String, u64>| {
        let mut sum: BTreeMap<String, u64> = BTreeMap::new();
        for c in &spec.containers {
            for (k, v) in get(c.resources.as_ref()) {
                *sum.entry(k).or_default() += v;
            }
        }
        for c in &spec.init_containers {
            for (k, v) in get(c.resources.as_ref()) {
                let e = sum.entry(k).or_default();
                *e = (*e).max(v);
            }
        }
        sum
    };
    (total(requests_of), total(limits_of))
}

/// Shows an amount as the user would write it.
fn show(resource: &str, v: u64) -> String {
    match resource {
        "cpu" if v.is_multiple_of(1000) => (v / 1000).to_string(),
        "cpu" => format!("{v}m"),
        n if crate::resource::extended::is_extended(n) => v.to_string(),
        _ if v.is_multiple_of(1 << 30) && v > 0 => format!("{}Gi", v >> 30),
        _ if v.is_multiple_of(1 << 20) && v > 0 => format!("{}Mi", v >> 20),
        _ => v.to_string(),
    }
}

fn check(
    what: &str,
    item: &LimitRangeItem,
    requests: &BTreeMap<String, u64>,
    limits: &BTreeMap<String, u64>,
    problems: &mut Vec<String>,
) {
    for (k, q) in &item.min {
        let Some(min) = amount(k, q) else { continue };
        match requests.get(k) {
            None => problems.push(format!(
                "minimum {k} usage per {what} is {}.  No request is specified",
                q.as_str()
            )),
            Some(r) if *r < min => problems.push(format!(
                "minimum {k} usage per {what} is {}, but request is {}",
                q.as_str(),
                show(k, *r)
            )),
            _ => {}
        }
    }
    for (k, q) in &item.max {
        let Some(max) = amount(k, q) else { continue };
        match limits.get(k) {
            None => problems.push(format!(
                "maximum {k} usage per {what} is {}.  No limit is specified",
                q.as_str()
            )),
            Some(l) if *l > max => problems.push(format!(
                "maximum {k} usage per {what} is {}, but limit is {}",
                q.as_str(),
                show(k, *l)
            )),
            _ => {}
        }
    }
    for (k, q) in &item.max_limit_request_ratio {
        let Ok(ratio) = q.as_str().parse::<f64>() else {
            continue;
        };
        match (requests.get(k), limits.get(k)) {
            (Some(&r), Some(&l)) if r > 0 => {
                let got = l as f64 / r as f64;
                if got > ratio {
                    problems.push(format!(
                        "{k} max limit to request ratio per {what} is {}, but provided ratio is {got:.6}",
                        q.as_str()
                    ));
                }
            }
            (_, None) => problems.push(format!(
                "{k} max limit to request ratio per {what} is {}, but no limit is specified",
                q.as_str()
            )),
            _ => problems.push(format!(
                "{k} max limit to request ratio per {what} is {}, but no request is specified or request is 0",
                q.as_str()
            )),
        }
    }
}

#[cfg(test)]
mod tests;
