//! `shoal get` of custom kinds: the name is resolved against the stored
//! CustomResourceDefinitions (plural, singular, short name, kind, or
//! `KIND.GROUP`) and the objects read at their Kubernetes path.

use anyhow::anyhow;
use serde_json::{Value, json};

use super::client::*;
use super::{Output, emit};
use crate::columns::render_rows;
use crate::crd::Definition;
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
    let version = def
        .storage_version()
        .filter(|v| v.served)
        .or_else(|| def.versions.iter().find(|v| v.served))
        .ok_or_else(|| anyhow!("{} serves no version", def.name))?;
    let mut path = format!("/apis/{}/{}", def.group, version.name);
    if def.namespaced && !(all && name.is_none()) {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push_str(&format!("/{}", def.names.plural));
    if let Some(n) = name {
        path.push_str(&format!("/{n}"));
    }
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
