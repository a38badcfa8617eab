//! Kubernetes' ResourceQuota admission: each new pod is charged to every
//! quota of its namespace, in the same Raft write that creates it. The
//! charge is a write of the quota's `status.used` conditional on the
//! version read, so two pods created at once through two nodes cannot both
//! take the last room: one write is refused and its creator reads again.
//! The leader's recount (`controller::quota`) gives room back when pods
//! finish or go.

use std::collections::BTreeMap;

use super::{amount, pod_totals, show};
use crate::resource::types::{
    Body, PodSpec, QUOTA_RESOURCES, ResourceQuotaBody, ResourceQuotaStatus,
};
use crate::resource::{Object, ObjectKey};
use crate::store::{Op, Precondition};

/// What a pod counts for against each quota resource.
pub fn usage(spec: &PodSpec) -> BTreeMap<String, u64> {
    // The API's defaulting: a container that sets only a limit requests it.
    let mut spec = spec.clone();
    for c in spec.containers.iter_mut().chain(&mut spec.init_containers) {
        if let Some(r) = c.resources.as_mut() {
            for (k, v) in r.limits.clone() {
                r.requests.entry(k).or_insert(v);
            }
        }
    }
    let (requests, limits) = pod_totals(&spec);
    let mut out: BTreeMap<String, u64> = requests
        .iter()
        .filter(|(k, _)| crate::resource::extended::is_extended(k))
        .map(|(k, v)| (format!("requests.{k}"), *v))
        .collect();
    let eph = crate::resource::extended::EPHEMERAL_STORAGE;
    for name in QUOTA_RESOURCES {
        let v = match name {
            "pods" | "count/pods" => 1,
            "cpu" | "requests.cpu" => requests.get("cpu").copied().unwrap_or(0),
            "memory" | "requests.memory" => requests.get("memory").copied().unwrap_or(0),
            "limits.cpu" => limits.get("cpu").copied().unwrap_or(0),
            "limits.memory" => limits.get("memory").copied().unwrap_or(0),
            "ephemeral-storage" | "requests.ephemeral-storage" => {
                requests.get(eph).copied().unwrap_or(0)
            }
            "limits.ephemeral-storage" => limits.get(eph).copied().unwrap_or(0),
            _ => continue,
        };
        out.insert(name.to_string(), v);
    }
    out
}

/// The underlying resource (`cpu`, `memory`, `ephemeral-storage`, an
/// extended resource) of a quota resource, for parsing and showing amounts
/// and for the containers that must set it; `None` for counts.
fn base(resource: &str) -> Option<&str> {
    if resource.ends_with("cpu") {
        Some("cpu")
    } else if resource.ends_with("memory") {
        Some("memory")
    } else if resource.ends_with(crate::resource::extended::EPHEMERAL_STORAGE) {
        Some(crate::resource::extended::EPHEMERAL_STORAGE)
    } else {
        resource
            .strip_prefix("requests.")
            .filter(|n| crate::resource::extended::is_extended(n))
    }
}

fn parse(resource: &str, q: &str) -> Option<u64> {
    match base(resource) {
        Some(b) => amount(b, &crate::resource::types::Quantity(q.to_string())),
        None => q.parse().ok(),
    }
}

fn display(resource: &str, v: u64) -> String {
    match base(resource) {
        Some(b) => show(b, v),
        None => v.to_string(),
    }
}

/// A namespace's quotas as admission reads them.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    list: Vec<Quota>,
}

#[derive(Debug, Clone)]
struct Quota {
    object: Object,
    key: ObjectKey,
    hard: BTreeMap<String, u64>,
    /// `status.used` as the pass read it, with this write's charges.
    used: BTreeMap<String, u64>,
    charged: bool,
}

impl Quotas {
    /// The quotas among `objects`, undecodable ones left out.
    pub fn of(objects: &[Object]) -> Quotas {
        let list = objects
            .iter()
            .filter_map(|o| {
                let body = ResourceQuotaBody::from_object(o).ok()?;
                let status: ResourceQuotaStatus = o.status_or_default();
                Some(Quota {
                    key: o.key()?,
                    hard: body
                        .spec
                        .hard
                        .iter()
                        .filter_map(|(k, q)| Some((k.clone(), parse(k, q.as_str())?)))
                        .collect(),
                    used: status
                        .used
                        .iter()
                        .filter_map(|(k, q)| Some((k.clone(), parse(k, q)?)))
                        .collect(),
                    object: o.clone(),
                    charged: false,
                })
            })
            .collect();
        Quotas { list }
    }

    /// Charges a new pod to every quota, or says why it may not be
    /// created, in Kubernetes' words (without the `pods "NAME" is
    /// forbidden: ` its callers prefix). Nothing is charged on refusal.
    pub fn charge(&mut self, spec: &PodSpec) -> Result<(), String> {
        if self.list.is_empty() {
            return Ok(());
        }
        let need = usage(spec);
        for q in &self.list {
            check_specified(&q.key.name, &q.hard, spec)?;
            let mut over = Vec::new();
            for (resource, limit) in &q.hard {
                let Some(used) = q.used.get(resource) else {
                    return Err(format!(
                        "status unknown for quota: {}, resource: {resource}",
                        q.key.name
                    ));
                };
                let want = need.get(resource.as_str()).copied().unwrap_or(0);
                if want > 0 && used.saturating_add(want) > *limit {
                    over.push((resource, want, *used, *limit));
                }
            }
            if !over.is_empty() {
                let (mut requested, mut used, mut limited) = (Vec::new(), Vec::new(), Vec::new());
                for (r, w, u, l) in over {
                    requested.push(format!("{r}={}", display(r, w)));
                    used.push(format!("{r}={}", display(r, u)));
                    limited.push(format!("{r}={}", display(r, l)));
                }
                return Err(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    q.key.name,
                    requested.join(","),
                    used.join(","),
                    limited.join(",")
                ));
            }
        }
        for q in &mut self.list {
            for resource in q.hard.keys() {
                let want = need.get(resource.as_str()).copied().unwrap_or(0);
                if let Some(u) = q.used.get_mut(resource) {
                    *u = u.saturating_add(want);
                }
            }
            q.charged = true;
        }
        Ok(())
    }

    /// The writes of this write's charges: each charged quota with its new
    /// `status.used`, at the version read.
    pub fn ops(&self) -> Vec<Op> {
        self.list
            .iter()
            .filter(|q| q.charged)
            .filter_map(|q| {
                let mut o = q.object.clone();
                let mut status: ResourceQuotaStatus = o.status_or_default();
                status.used = q
                    .used
                    .iter()
                    .map(|(k, v)| (k.clone(), display(k, *v)))
                    .collect();
                o.set_status(&status);
                Some(Op::Put {
                    key: q.key.clone(),
                    object: serde_json::to_vec(&o).ok()?,
                    precondition: Precondition::Version(q.object.resource_version()),
                })
            })
            .collect()
    }
}

/// As Kubernetes: a quota on a resource needs every container to say how
/// much of it it takes (after LimitRange defaults), or the sum means nothing.
fn check_specified(name: &str, hard: &BTreeMap<String, u64>, spec: &PodSpec) -> Result<(), String> {
    let mut missing = Vec::new();
    for resource in hard.keys() {
        let (Some(b), limit) = (base(resource), resource.starts_with("limits.")) else {
            continue;
        };
        let without: Vec<&str> = spec
            .containers
            .iter()
            .chain(&spec.init_containers)
            .filter(|c| {
                let r = c.resources.as_ref();
                let has = |m: Option<&BTreeMap<String, crate::resource::types::Quantity>>| {
                    m.is_some_and(|m| m.contains_key(b))
                };
                let limits = has(r.map(|r| &r.limits));
                if limit {
                    !limits
                } else {
                    !limits && !has(r.map(|r| &r.requests))
                }
            })
            .map(|c| c.name.as_str())
            .collect();
        if !without.is_empty() {
            missing.push(format!("{resource} for: {}", without.join(",")));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "failed quota: {name}: must specify {}",
            missing.join("; ")
        ))
    }
}

/// A quota's status counted from the specs of its namespace's pods that
/// are not finished, as the leader's recount writes it.
pub fn recount<'a>(
    body: &ResourceQuotaBody,
    pods: impl Iterator<Item = &'a PodSpec>,
) -> ResourceQuotaStatus {
    let mut used: BTreeMap<String, u64> = body.spec.hard.keys().map(|k| (k.clone(), 0)).collect();
    for spec in pods {
        let need = usage(spec);
        for (k, u) in used.iter_mut() {
            *u = u.saturating_add(need.get(k.as_str()).copied().unwrap_or(0));
        }
    }
    ResourceQuotaStatus {
        hard: body
            .spec
            .hard
            .iter()
            .map(|(k, q)| (k.clone(), q.as_str().to_string()))
            .collect(),
        used: used
            .into_iter()
            .map(|(k, v)| {
                let shown = display(&k, v);
                (k, shown)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quota(hard: serde_json::Value, used: Option<serde_json::Value>) -> Object {
        let mut o = json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "compute", "namespace": "team", "resourceVersion": "7"},
            "spec": {"hard": hard},
        });
        if let Some(u) = used {
            o["status"] = json!({ "used": u });
        }
        serde_json::from_value(o).expect("quota")
    }

    fn pod(mut containers: serde_json::Value) -> PodSpec {
        for c in containers.as_array_mut().into_iter().flatten() {
            c["image"] = json!("busybox");
        }
        serde_json::from_value(json!({ "containers": containers })).expect("spec")
    }

    fn used_after(ops: &[Op]) -> serde_json::Value {
        let [
            Op::Put {
                object,
                precondition,
                ..
            },
        ] = ops
        else {
            panic!("one quota write expected: {ops:?}");
        };
        assert_eq!(
            *precondition,
            Precondition::Version(7),
            "fenced on the version read"
        );
        let o: serde_json::Value = serde_json::from_slice(object).expect("json");
        o["status"]["used"].clone()
    }

    #[test]
    fn pods_are_charged_until_the_quota_is_full() {
        let mut q = Quotas::of(&[quota(
            json!({"pods": "3", "requests.cpu": "1", "limits.memory": "1Gi"}),
            Some(json!({"pods": "1", "requests.cpu": "200m", "limits.memory": "0"})),
        )]);
        let p = pod(
            json!([{"name": "c", "resources": {"limits": {"cpu": "300m", "memory": "256Mi"}}}]),
        );
        q.charge(&p).expect("first");
        q.charge(&p).expect("second");
        assert_eq!(
            used_after(&q.ops()),
            json!({"pods": "3", "requests.cpu": "800m", "limits.memory": "512Mi"})
        );
        let e = q.charge(&p).expect_err("full");
        assert_eq!(
            e,
            "exceeded quota: compute, requested: pods=1,requests.cpu=300m, used: \
             pods=3,requests.cpu=800m, limited: pods=3,requests.cpu=1"
        );
    }

    #[test]
    fn containers_must_say_what_the_quota_counts() {
        let mut q = Quotas::of(&[quota(
            json!({"requests.cpu": "2", "limits.memory": "1Gi"}),
            Some(json!({"requests.cpu": "0", "limits.memory": "0"})),
        )]);
        let e = q
            .charge(&pod(
                json!([{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}]),
            ))
            .expect_err("unspecified");
        assert_eq!(
            e,
            "failed quota: compute: must specify limits.memory for: a,b; requests.cpu for: a"
        );
        assert!(q.ops().is_empty(), "nothing charged on refusal");
    }

    #[test]
    fn extended_resources_and_ephemeral_storage_are_charged() {
        let mut q = Quotas::of(&[quota(
            json!({"requests.example.com/dongle": "2", "limits.ephemeral-storage": "1Gi"}),
            Some(json!({"requests.example.com/dongle": "0", "limits.ephemeral-storage": "0"})),
        )]);
        let p = pod(json!([{"name": "c", "resources": {"limits": {
            "example.com/dongle": "1", "ephemeral-storage": "512Mi"}}}]));
        q.charge(&p).expect("first");
        q.charge(&p).expect("second");
        assert_eq!(
            used_after(&q.ops()),
            json!({"requests.example.com/dongle": "2", "limits.ephemeral-storage": "1Gi"})
        );
        let e = q.charge(&p).expect_err("full");
        assert_eq!(
            e,
            "exceeded quota: compute, requested: limits.ephemeral-storage=512Mi,\
             requests.example.com/dongle=1, used: limits.ephemeral-storage=1Gi,\
             requests.example.com/dongle=2, limited: limits.ephemeral-storage=1Gi,\
             requests.example.com/dongle=2"
        );
        let e = q
            .charge(&pod(json!([{"name": "a"}])))
            .expect_err("unspecified");
        assert!(
            e.contains(
                "must specify limits.ephemeral-storage for: a; requests.example.com/dongle for: a"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_quota_not_yet_counted_admits_nothing() {
        let mut q = Quotas::of(&[quota(json!({"pods": "10"}), None)]);
        let e = q.charge(&pod(json!([{"name": "a"}]))).expect_err("unknown");
        assert_eq!(e, "status unknown for quota: compute, resource: pods");
    }

    #[test]
    fn the_recount_sums_requests_limits_and_pods() {
        let body = ResourceQuotaBody::from_object(&quota(
            json!({"pods": "10", "cpu": "4", "limits.cpu": "8"}),
            None,
        ))
        .expect("body");
        let a = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}]),
        );
        let b = pod(json!([{"name": "b", "resources": {"limits": {"cpu": "500m"}}}]));
        let s = recount(&body, [&a, &b].into_iter());
        assert_eq!(
            serde_json::to_value(&s.used).expect("json"),
            json!({"pods": "2", "cpu": "750m", "limits.cpu": "1500m"})
        );
        assert_eq!(s.hard["cpu"], "4");
    }
}
