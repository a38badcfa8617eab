//! PATCH bodies applied to a live object: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and Kubernetes' strategic merge patch, which merges
//! lists of objects by a key (containers by `name`, ...) instead of
//! replacing them. Pure: the handler reads the object, patches, validates
//! and writes it conditional on the version read.

use serde_json::{Map, Value};

use crate::resource::Kind;

/// Why a patch cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch is not valid: {0}")]
    Malformed(String),
    #[error("the JSON patch test at {path} failed")]
    TestFailed { path: String },
    #[error("the JSON patch path {path} does not exist in the object")]
    Missing { path: String },
}

/// The patch types kubectl sends, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    /// Server-side apply: not served.
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies `patch` of type `ty` to `target` (an object of `kind`).
pub fn apply(
    ty: PatchType,
    kind: Kind,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match ty {
        PatchType::Json => json_patch(target, patch),
        PatchType::Merge => Ok(merge_patch(target, patch)),
        PatchType::Strategic => strategic(kind, target, patch, &mut Vec::new()),
        PatchType::Apply => Err(PatchError::Malformed(
            "server-side apply is not supported by shoal yet; use client-side `kubectl apply`"
                .into(),
        )),
    }
}

/// RFC 7386: objects merge, `null` deletes, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The key entries of a list field are merged by, in Kubernetes' types,
/// for the kinds shoal serves; `None`: the list is replaced whole.
fn merge_key(kind: Kind, path: &[String], field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        // A Service's ports are keyed by port; a container's by containerPort.
        "ports" if kind == Kind::Service && path.len() == 1 && path[0] == "spec" => "port",
        "ports" => "containerPort",
        "conditions" => "type",
        _ => return None,
    })
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Strategic merge of `patch` into `target` at `path` (the field names
/// from the object's root).
fn strategic(
    kind: Kind,
    target: &Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Ok(patch.clone());
    };
    match p.get(DIRECTIVE).and_then(Value::as_str) {
        None | Some("merge") => {}
        Some("replace") => {
            let mut p = p.clone();
            p.remove(DIRECTIVE);
            return Ok(Value::Object(p));
        }
        Some("delete") => return Ok(Value::Null),
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown $patch directive {other:?} at {}",
                path.join(".")
            )));
        }
    }
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(ORDER_PREFIX) {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        path.push(k.clone());
        let live = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match (v, merge_key(kind, &path[..path.len() - 1], k)) {
            (Value::Array(items), Some(key)) => merge_list(kind, &live, items, key, path)?,
            (Value::Object(_), _) => strategic(kind, &live, v, path)?,
            _ => v.clone(),
        };
        path.pop();
        if merged.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), merged);
        }
    }
    if let Some(Value::Array(keep)) = p.get(RETAIN_KEYS) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Value::Object(out))
}

/// Merges a list of objects by `key`: an entry whose key matches a live
/// one is merged into it, `$patch: delete` removes it, new ones are
/// appended; `$patch: replace` anywhere replaces the whole list.
fn merge_list(
    kind: Kind,
    live: &Value,
    items: &[Value],
    key: &str,
    path: &mut Vec<String>,
) -> Result<Value, PatchError> {
    if items
        .iter()
        .any(|i| i.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
    {
        let kept = items
            .iter()
            .filter(|i| i.get(DIRECTIVE).is_none())
            .cloned()
            .collect();
        return Ok(Value::Array(kept));
    }
    let mut out: Vec<Value> = live.as_array().cloned().unwrap_or_default();
    for item in items {
        let Some(id) = item.get(key) else {
            // Not an object with the key (a list of scalars, or a malformed
            // entry): Kubernetes refuses the patch rather than guess.
            return Err(PatchError::Malformed(format!(
                "an entry of {} has no {key:?}",
                path.join(".")
            )));
        };
        let at = out.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
        match (at, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => out[i] = strategic(kind, &out[i], item, path)?,
            (None, false) => {
                let fresh = strategic(kind, &Value::Null, item, path)?;
                out.push(fresh);
            }
        }
    }
    Ok(Value::Array(out))
}

/// RFC 6902 on a copy of `target`; all operations or none.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Malformed("a JSON patch is an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let field = |name: &str| {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError::Malformed(format!("an operation has no {name:?}")))
        };
        let path = field("path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Malformed(format!("{path}: the operation has no value")))
        };
        match field("op")? {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, field("from")?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let from = field("from")?;
                let v = pointer(&doc, from)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                if *pointer(&doc, path)? != value()? {
                    return Err(PatchError::TestFailed { path: path.into() });
                }
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "unknown operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

/// A JSON pointer's tokens, `~1` and `~0` unescaped.
fn tokens(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| PatchError::Malformed(format!("path {path:?} does not start with '/'")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn pointer<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, PatchError> {
    doc.pointer(path)
        .ok_or_else(|| PatchError::Missing { path: path.into() })
}

/// The parent container of `path` and the last token.
fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), PatchError> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| PatchError::Malformed("the whole document cannot be the target".into()))?;
    let mut cur = doc;
    for t in &toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Missing { path: path.into() })?;
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let (container, last) = parent(doc, path)?;
    match container {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| PatchError::Missing { path: path.into() })?
            };
            a.insert(i, value);
        }
        _ => return Err(PatchError::Missing { path: path.into() }),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (container, last) = parent(doc, path)?;
    let missing = || PatchError::Missing { path: path.into() };
    match container {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "a:1", "ports": [{"containerPort": 80}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "s:1"}
            ]}}}
        })
    }

    #[test]
    fn merge_patch_merges_objects_and_replaces_lists() {
        let p = json!({"metadata": {"labels": {"tier": null, "new": "x"}},
                       "spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}});
        let out = apply(PatchType::Merge, Kind::Deployment, &deployment(), &p).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "new": "x"}));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only"}])
        );
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        // What `kubectl apply` sends after an image edit.
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{"name": "web", "image": "a:2",
                            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                            "env": [{"name": "B", "value": "3"}]}]}}}});
        let out = apply(PatchType::Strategic, Kind::Deployment, &deployment(), &p).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().unwrap().len(), 2, "{cs}");
        assert_eq!(cs[0]["image"], "a:2");
        assert_eq!(cs[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(
            cs[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
        );
        assert_eq!(cs[1], json!({"name": "side", "image": "s:1"}));
        assert!(!out.to_string().contains("$setElementOrder"));
    }

    #[test]
    fn strategic_directives() {
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "side", "$patch": "delete"},
            {"name": "new", "image": "n:1"}]}}}});
        let out = apply(PatchType::Strategic, Kind::Deployment, &deployment(), &p).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "new"]);
        // null deletes a field; $patch: replace replaces a map.
        let p = json!({"metadata": {"labels": {"$patch": "replace", "only": "1"}},
                       "spec": {"replicas": null}});
        let out = apply(PatchType::Strategic, Kind::Deployment, &deployment(), &p).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"only": "1"}));
        assert!(out["spec"].get("replicas").is_none());
        // $retainKeys drops the keys it does not name.
        let p = json!({"spec": {"$retainKeys": ["template"], "template": {}}});
        let out = apply(PatchType::Strategic, Kind::Deployment, &deployment(), &p).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["spec"].get("template").is_some());
        let bad = json!({"spec": {"$patch": "explode"}});
        assert!(apply(PatchType::Strategic, Kind::Deployment, &deployment(), &bad).is_err());
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let p = json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}});
        let out = apply(PatchType::Strategic, Kind::Service, &svc, &p).unwrap();
        assert_eq!(
            out["spec"]["ports"][1],
            json!({"port": 443, "name": "https", "targetPort": 8443})
        );
        assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_operations() {
        let p = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/labels/a~1b", "value": "x"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "z"}},
            {"op": "test", "path": "/spec/replicas", "value": 5},
            {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/copied"},
        ]);
        let out = apply(PatchType::Json, Kind::Deployment, &deployment(), &p).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["metadata"]["labels"]["a/b"], "x");
        assert_eq!(out["metadata"]["labels"]["copied"], "web");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["name"],
            "z"
        );
        let failed = json!([{"op": "test", "path": "/spec/replicas", "value": 9}]);
        assert_eq!(
            apply(PatchType::Json, Kind::Deployment, &deployment(), &failed),
            Err(PatchError::TestFailed {
                path: "/spec/replicas".into()
            })
        );
        let missing = json!([{"op": "remove", "path": "/spec/nope"}]);
        assert!(matches!(
            apply(PatchType::Json, Kind::Deployment, &deployment(), &missing),
            Err(PatchError::Missing { .. })
        ));
        assert!(json_patch(&deployment(), &json!({"op": "add"})).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::Strategic)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert!(apply(PatchType::Apply, Kind::Pod, &json!({}), &json!({})).is_err());
    }
}
