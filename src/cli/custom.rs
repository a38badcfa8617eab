//! `shoal get` of custom kinds: the name is resolved against the stored
//! CustomResourceDefinitions (plural, singular, short name, kind, or
//! `KIND.GROUP`) and the objects read at their Kubernetes path.

use anyhow::anyhow;
use serde_json::{Value, json};

use super::client::*;
use super::{Output, emit};
use crate::columns::render_rows;
use crate::crd::{Definition, ServedVersion};
use crate::resource::Object;

/// The definition that answers to `name`, if any is stored.
async fn definition(client: &Client, name: &str) -> anyhow::Result<Option<Definition>> {
    let resp = client
        .send(reqwest::Method::GET, "/v1/customresourcedefinitions", None)
        .await?;
    Ok(resp
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_value::<Object>(v.clone()).ok())
        .filter_map(|o| Definition::from_object(&o))
        .find(|d| d.answers_to(name)))
}

/// The version to read a definition's objects at: its storage version
/// when served, else the first served one.
fn served(def: &Definition) -> anyhow::Result<&ServedVersion> {
    def.storage_version()
        .filter(|v| v.served)
        .or_else(|| def.versions.iter().find(|v| v.served))
        .ok_or_else(|| anyhow!("{} serves no version", def.name))
}

/// The Kubernetes path of a definition's objects (in `ns` when namespaced
/// and given), or of one of them.
fn object_path(
    def: &Definition,
    version: &ServedVersion,
    ns: Option<&str>,
    name: Option<&str>,
) -> String {
    let mut path = format!("/apis/{}/{}", def.group, version.name);
    if let Some(ns) = ns.filter(|_| def.namespaced) {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push_str(&format!("/{}", def.names.plural));
    if let Some(n) = name {
        path.push_str(&format!("/{n}"));
    }
    path
}

/// One custom object and its definition, for `describe`; `None` when no
/// definition answers to `kind`.
pub(super) async fn fetch(
    client: &Client,
    kind: &str,
    name: &str,
    ns: &str,
) -> anyhow::Result<Option<(Value, Definition)>> {
    let Some(def) = definition(client, kind).await? else {
        return Ok(None);
    };
    let path = object_path(&def, served(&def)?, Some(ns), Some(name));
    let obj = client.send(reqwest::Method::GET, &path, None).await?;
    Ok(Some((obj, def)))
}

/// `shoal delete KIND NAME` for a custom kind; `Ok(false)` when no
/// definition answers to `kind`. An object holding finalizers is only
/// marked, and goes once its controller lets go.
pub(super) async fn delete(
    client: &Client,
    kind: &str,
    name: &str,
    ns: &str,
) -> anyhow::Result<bool> {
    let Some(def) = definition(client, kind).await? else {
        return Ok(false);
    };
    let path = object_path(&def, served(&def)?, Some(ns), Some(name));
    client.send(reqwest::Method::DELETE, &path, None).await?;
    outln!(
        "{}.{}/{name} deleted",
        def.names.kind.to_ascii_lowercase(),
        def.group
    );
    Ok(true)
}

/// `shoal get KIND [NAME]` for a custom kind; `Ok(false)` when no
/// definition answers to `kind`.
pub(super) async fn get(
    client: &Client,
    kind: &str,
    name: Option<&str>,
    ns: &str,
    all: bool,
    output: Output,
) -> anyhow::Result<bool> {
    let Some(def) = definition(client, kind).await? else {
        return Ok(false);
    };
    let version = served(&def)?;
    let path = object_path(
        &def,
        version,
        (!(all && name.is_none())).then_some(ns),
        name,
    );
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let items: Vec<Value> = match name {
        Some(_) => vec![resp.clone()],
        None => resp
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    };
    let whole = match name {
        Some(_) => resp,
        None => {
            json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
        }
    };
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&whole)?),
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(&whole).map_err(|e| anyhow!("yaml: {e}"))?
        ),
        Output::Table if items.is_empty() => {
            if all || !def.namespaced {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {ns} namespace.");
            }
        }
        Output::Table => {
            let with_ns = all && def.namespaced;
            out!(
                "{}",
                render_rows(&crate::crd::table_rows(&version.columns, &items, with_ns))
            );
        }
    }
    Ok(true)
}
