//! A container's environment as the agent gives it: literal values,
//! ConfigMap and Secret references read from the local replica, the
//! downward API, and the namespace's service links.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Ctx;
use crate::resource::types::{Body as _, Container, decode_base64};
use crate::resource::{Kind, ObjectKey};

/// The container's environment: literal values, then ConfigMap and Secret
/// references read from the local replica. A missing reference that is not
/// optional is an error naming it, as Kubernetes' CreateContainerConfigError.
pub(super) fn resolve(
    ctx: &Ctx,
    ns: &str,
    c: &Container,
    facts: &crate::resource::downward::PodFacts<'_>,
    links: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    let data = |kind: Kind, name: &str| -> Result<Option<BTreeMap<String, String>>, String> {
        let obj = ctx
            .store
            .get(&ObjectKey::new(kind, ns, name))
            .map_err(|e| e.to_string())?;
        let Some(obj) = obj else { return Ok(None) };
        let mut out = BTreeMap::new();
        if let Some(Value::Object(m)) = obj.body.get("data") {
            for (k, v) in m {
                let Some(s) = v.as_str() else { continue };
                let value = if kind == Kind::Secret {
                    let bytes =
                        decode_base64(s).map_err(|e| format!("secret {name:?} key {k:?}: {e}"))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    s.to_string()
                };
                out.insert(k.clone(), value);
            }
        }
        Ok(Some(out))
    };
    let mut linked = if links {
        let (services, _) = ctx
            .store
            .list(Kind::Service, Some(ns))
            .map_err(|e| e.to_string())?;
        let bodies: Vec<(String, crate::resource::types::ServiceBody)> = services
            .iter()
            .filter_map(|o| {
                crate::resource::types::ServiceBody::from_object(o)
                    .ok()
                    .map(|b| (o.metadata.name.clone(), b))
            })
            .collect();
        super::links::service_links(bodies.iter().map(|(n, b)| (n.as_str(), b)))
    } else {
        Vec::new()
    };
    for from in &c.env_from {
        let (kind, r) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (Kind::ConfigMap, r),
            (None, Some(r)) => (Kind::Secret, r),
            (None, None) => continue,
        };
        match data(kind, &r.name)? {
            Some(m) => {
                for (k, v) in m {
                    env.push((format!("{}{k}", from.prefix.as_deref().unwrap_or("")), v));
                }
            }
            None if r.optional == Some(true) => {}
            None => {
                return Err(format!(
                    "{} {:?} not found",
                    kind.as_str().to_lowercase(),
                    r.name
                ));
            }
        }
    }
    for e in &c.env {
        if let Some(v) = &e.value {
            env.push((e.name.clone(), v.clone()));
            continue;
        }
        let Some(src) = &e.value_from else {
            env.push((e.name.clone(), String::new()));
            continue;
        };
        if let Some(f) = &src.field_ref {
            let field = crate::resource::downward::parse_field_path(&f.field_path, false)
                .map_err(|err| format!("env {}: {err}", e.name))?;
            env.push((
                e.name.clone(),
                crate::resource::downward::field_value(&field, facts),
            ));
            continue;
        }
        if let Some(r) = &src.resource_field_ref {
            let v = crate::resource::downward::resource_value(r, c, ctx.allocatable())
                .map_err(|err| format!("env {}: {err}", e.name))?;
            env.push((e.name.clone(), v));
            continue;
        }
        let (kind, sel) = match (&src.config_map_key_ref, &src.secret_key_ref) {
            (Some(s), _) => (Kind::ConfigMap, s),
            (None, Some(s)) => (Kind::Secret, s),
            (None, None) => continue,
        };
        match data(kind, &sel.name)?.and_then(|m| m.get(&sel.key).cloned()) {
            Some(v) => env.push((e.name.clone(), v)),
            None if sel.optional == Some(true) => {}
            None => {
                return Err(format!(
                    "couldn't find key {} in {} {:?} (for env {})",
                    sel.key,
                    kind.as_str(),
                    sel.name,
                    e.name
                ));
            }
        }
    }
    // The container's own variables win over the links, as in Kubernetes.
    linked.retain(|(name, _)| !env.iter().any(|(n, _)| n == name));
    linked.append(&mut env);
    Ok(linked)
}
