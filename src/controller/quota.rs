//! ResourceQuota status: the leader recounts what each quota's namespace
//! uses from its pods that are not finished and writes `status.hard` and
//! `status.used` when they differ, conditional on the version read. The
//! charge at each pod's creation (`crate::admission::quota`) raises `used`;
//! this recount is what lowers it again when pods finish or go.

use std::collections::BTreeMap;

use tracing::{debug, warn};

use crate::admission::quota::recount;
use crate::resource::types::{Body, PodBody, ResourceQuotaBody, ResourceQuotaStatus};
use crate::resource::{Kind, Object};
use crate::store::{Command, Op, Store};

/// One recount of every quota.
pub async fn reconcile(store: &Store) {
    // Quotas before pods: a pod created with its charge after the quota
    // list is then either in the pod list or makes the write below fail
    // on the quota's version, so a recount never forgets a charged pod.
    let quotas = match store.list(Kind::ResourceQuota, None) {
        Ok((q, _)) if q.is_empty() => return,
        Ok((q, _)) => q,
        Err(e) => {
            warn!("resource quotas: cannot read the replica: {e}");
            return;
        }
    };
    let Ok((pods, _)) = store.list(Kind::Pod, None) else {
        warn!("resource quotas: cannot read the replica");
        return;
    };
    let mut by_ns: BTreeMap<&str, Vec<PodBody>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !crate::scheduler::is_terminal(p)) {
        let (Some(ns), Ok(body)) = (p.metadata.namespace.as_deref(), PodBody::from_object(p))
        else {
            continue;
        };
        by_ns.entry(ns).or_default().push(body);
    }
    for q in &quotas {
        write_status(store, q, &by_ns).await;
    }
}

async fn write_status(store: &Store, q: &Object, by_ns: &BTreeMap<&str, Vec<PodBody>>) {
    let (Ok(body), Some(key)) = (ResourceQuotaBody::from_object(q), q.key()) else {
        return;
    };
    let pods = by_ns.get(key.namespace.as_str()).into_iter().flatten();
    let next = recount(&body, pods.map(|p| &p.spec));
    let prev: ResourceQuotaStatus = q.status_or_default();
    if next == prev {
        return;
    }
    let Ok(status) = serde_json::to_vec(&next) else {
        return;
    };
    let ops = vec![
        Op::Check {
            key: key.clone(),
            version: q.resource_version(),
        },
        Op::SetStatus {
            key: key.clone(),
            uid: q.metadata.uid.clone(),
            status,
        },
    ];
    if let Err(e) = store.write(Command { ops }).await {
        // A pod charged meanwhile: the next pass counts again.
        debug!("resource quota {key}: status not written: {e}");
    }
}
