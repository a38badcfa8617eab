//! Rollouts when configuration changes (which Kubernetes does not do): the
//! Deployment controller stamps the hash of the ConfigMap and Secret content
//! a pod template reads at container start (`env.valueFrom`, `envFrom`,
//! volumes mounted with `subPath`) as the template annotation
//! [`CONFIG_HASH`]. A change to that content changes the template's hash, so
//! the ordinary revision and rolling-update machinery rolls the pods at the
//! Deployment's own pace. Mounted files without `subPath` are updated in
//! place and are not hashed. `shoal.io/restart-on-config-change: "false"` on
//! the Deployment (or its template) opts out.
//!
//! The Deployment itself is never written: the annotation exists only in the
//! ReplicaSets and pods, so the controller never fights `rollout undo` or
//! the user over it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::resource::types::PodTemplateSpec;
use crate::resource::{Kind, Object, ObjectMeta};

/// The pod-template annotation holding the configuration's hash.
pub const CONFIG_HASH: &str = "shoal.io/config-hash";
/// The opt-out annotation (value `"false"`).
pub const RESTART_ON_CONFIG_CHANGE: &str = "shoal.io/restart-on-config-change";

/// What a template reads of one ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Reads {
    /// Every key (envFrom, a subPath mount).
    All,
    /// One key (env.valueFrom).
    Key(String),
}

/// The ConfigMap and Secret content a template reads, by (kind, name).
fn references(t: &PodTemplateSpec) -> BTreeMap<(Kind, String), BTreeSet<Reads>> {
    let mut refs: BTreeMap<(Kind, String), BTreeSet<Reads>> = BTreeMap::new();
    let mut add = |kind: Kind, name: &str, r: Reads| {
        refs.entry((kind, name.to_string())).or_default().insert(r);
    };
    let mut sub_path_volumes = BTreeSet::new();
    for c in t.spec.all_containers() {
        for from in &c.env_from {
            if let Some(r) = &from.config_map_ref {
                add(Kind::ConfigMap, &r.name, Reads::All);
            }
            if let Some(r) = &from.secret_ref {
                add(Kind::Secret, &r.name, Reads::All);
            }
        }
        for e in &c.env {
            let Some(src) = &e.value_from else { continue };
            if let Some(s) = &src.config_map_key_ref {
                add(Kind::ConfigMap, &s.name, Reads::Key(s.key.clone()));
            }
            if let Some(s) = &src.secret_key_ref {
                add(Kind::Secret, &s.name, Reads::Key(s.key.clone()));
            }
        }
        for m in &c.volume_mounts {
            if m.sub_path.as_deref().is_some_and(|p| !p.is_empty()) {
                sub_path_volumes.insert(m.name.clone());
            }
        }
    }
    for v in &t.spec.volumes {
        if !sub_path_volumes.contains(&v.name) {
            continue;
        }
        if let Some(cm) = &v.config_map {
            add(Kind::ConfigMap, &cm.name, Reads::All);
        }
        if let Some(s) = &v.secret {
            add(Kind::Secret, &s.secret_name, Reads::All);
        }
    }
    refs
}

/// The ConfigMaps and Secrets whose content [`config_hash`] reads.
pub fn referenced(t: &PodTemplateSpec) -> Vec<(Kind, String)> {
    references(t).into_keys().collect()
}

fn opted_out(meta: &ObjectMeta, t: &PodTemplateSpec) -> bool {
    let off = |a: &BTreeMap<String, String>| {
        a.get(RESTART_ON_CONFIG_CHANGE).map(String::as_str) == Some("false")
    };
    off(&meta.annotations) || t.metadata.as_ref().is_some_and(|m| off(&m.annotations))
}

/// The keys and values of a ConfigMap (`data` and `binaryData`) or a Secret
/// (`data`, opened), as the pods would read them.
pub fn content(o: &Object) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(m)) = o.body.get(field) {
            for (k, v) in m {
                if let Some(s) = v.as_str() {
                    out.insert(format!("{field}/{k}"), s.to_string());
                }
            }
        }
    }
    out
}

/// The content of a ConfigMap or Secret by (kind, name), if it exists.
pub type Lookup<'a> = dyn Fn(Kind, &str) -> Option<BTreeMap<String, String>> + 'a;

/// The hash to stamp on `t` of a Deployment with metadata `meta`, given
/// the namespace's ConfigMaps and Secrets by (kind, name) as [`content`]
/// gives them; `None` when the template reads none or opted out.
pub fn config_hash(meta: &ObjectMeta, t: &PodTemplateSpec, lookup: &Lookup<'_>) -> Option<String> {
    if opted_out(meta, t) {
        return None;
    }
    let refs = references(t);
    if refs.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for ((kind, name), reads) in &refs {
        h.update(kind.as_str().as_bytes());
        h.update([0]);
        h.update(name.as_bytes());
        h.update([0]);
        let Some(data) = lookup(*kind, name) else {
            // Absent (optional, or not yet written) hashes apart from empty.
            h.update(b"\x01absent\0");
            continue;
        };
        for r in reads {
            match r {
                Reads::All => {
                    for (k, v) in &data {
                        h.update(k.as_bytes());
                        h.update([0]);
                        h.update(v.as_bytes());
                        h.update([0]);
                    }
                }
                Reads::Key(k) => {
                    h.update(k.as_bytes());
                    h.update([0]);
                    let v = data
                        .get(&format!("data/{k}"))
                        .or_else(|| data.get(&format!("binaryData/{k}")));
                    match v {
                        Some(v) => h.update(v.as_bytes()),
                        None => h.update(b"\x01absent"),
                    }
                    h.update([0]);
                }
            }
        }
        h.update([0xff]);
    }
    Some(hex::encode(&h.finalize()[..8]))
}

/// The template the Deployment's ReplicaSet is made from: `t` with the
/// configuration hash stamped (or any stale stamp removed when there is
/// none, as after `rollout undo` copied an old ReplicaSet's template).
pub fn effective_template(t: &PodTemplateSpec, hash: Option<&str>) -> PodTemplateSpec {
    let mut t = t.clone();
    match hash {
        Some(h) => {
            t.metadata
                .get_or_insert_with(Default::default)
                .annotations
                .insert(CONFIG_HASH.into(), h.into());
        }
        None => {
            if let Some(m) = t.metadata.as_mut() {
                m.annotations.remove(CONFIG_HASH);
            }
        }
    }
    t
}

#[cfg(test)]
mod tests;
