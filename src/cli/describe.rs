//! `shoal describe`: one object's fields, its conditions and its events.

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::resource::Kind;

use super::client::*;
use super::emit;
use super::objects::render_rows;
use crate::columns::cells::*;

pub(super) async fn describe(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: Option<String>,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or_else(|| "default".into());
    // A built-in kind, or else a custom one its definition names.
    let (obj, builtin, kind_name, namespaced) = match Kind::from_user(kind) {
        Some(k) => {
            let path = object_path(k, &ns, Some(name));
            let obj = client.send(reqwest::Method::GET, &path, None).await?;
            (obj, Some(k), k.as_str().to_string(), k.namespaced())
        }
        None => match super::custom::fetch(client, kind, name, &ns).await? {
            Some((obj, def)) => (obj, None, def.names.kind.clone(), def.namespaced),
            None => {
                kind_arg(kind)?;
                bail!("unknown kind {kind:?}")
            }
        },
    };
    let meta = s(&obj, &["metadata"]);
    let mut out = String::new();
    out.push_str(&format!(
        "Name:              {}\n",
        meta.get("name").and_then(Value::as_str).unwrap_or("")
    ));
    if namespaced {
        out.push_str(&format!(
            "Namespace:         {}\n",
            meta.get("namespace").and_then(Value::as_str).unwrap_or("")
        ));
    }
    out.push_str(&format!("Kind:              {kind_name}\n"));
    let kv = |m: &Value| -> String {
        let pairs: Vec<String> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        if pairs.is_empty() {
            "<none>".into()
        } else {
            pairs.join("\n                   ")
        }
    };
    out.push_str(&format!(
        "Labels:            {}\n",
        kv(s(meta, &["labels"]))
    ));
    out.push_str(&format!(
        "Annotations:       {}\n",
        kv(s(meta, &["annotations"]))
    ));
    out.push_str(&format!(
        "CreationTimestamp: {}\n",
        meta.get("creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("<unknown>")
    ));
    out.push_str(&format!(
        "ResourceVersion:   {}\n",
        meta.get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    ));
    out.push_str(&format!(
        "UID:               {}\n",
        meta.get("uid").and_then(Value::as_str).unwrap_or("")
    ));
    for section in ["spec", "data", "stringData", "status"] {
        if let Some(v) = obj.get(section) {
            let text = if matches!(section, "data" | "stringData") && builtin == Some(Kind::Secret)
            {
                // Secret values stay out of terminals and scrollback.
                let keys: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, val)| {
                        format!(
                            "  {k}: {} bytes (base64)",
                            val.as_str().map(str::len).unwrap_or(0)
                        )
                    })
                    .collect();
                keys.join("\n") + "\n"
            } else {
                let y = serde_saphyr::to_string(v).map_err(|e| anyhow!("yaml: {e}"))?;
                y.lines().map(|l| format!("  {l}\n")).collect()
            };
            let title = match section {
                "spec" => "Spec",
                "data" => "Data",
                "stringData" => "StringData",
                _ => "Status",
            };
            out.push_str(&format!("{title}:\n{text}"));
        }
    }
    if builtin == Some(Kind::ServiceAccount) {
        out.push_str(&super::accounts::describe_lines(&obj));
    }
    if namespaced && builtin != Some(Kind::Event) {
        let list = client
            .send(
                reqwest::Method::GET,
                &object_path(Kind::Event, &ns, None),
                None,
            )
            .await?;
        let mut rows = vec![vec![
            "Type".to_string(),
            "Reason".into(),
            "Age".into(),
            "From".into(),
            "Message".into(),
        ]];
        let mut about: Vec<&Value> = s(&list, &["items"])
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                s(e, &["involvedObject", "kind"]).as_str() == Some(kind_name.as_str())
                    && s(e, &["involvedObject", "name"]).as_str() == Some(name)
            })
            .collect();
        about.sort_by_key(|e| s(e, &["lastTimestamp"]).as_str().unwrap_or("").to_string());
        for e in about {
            let count = s(e, &["count"]).as_u64().unwrap_or(1);
            let age = since(e, &["lastTimestamp"]);
            rows.push(vec![
                s(e, &["type"]).as_str().unwrap_or("").to_string(),
                s(e, &["reason"]).as_str().unwrap_or("").to_string(),
                if count > 1 {
                    format!("{age} (x{count})")
                } else {
                    age
                },
                s(e, &["source", "host"]).as_str().unwrap_or("").to_string(),
                s(e, &["message"]).as_str().unwrap_or("").to_string(),
            ]);
        }
        if rows.len() == 1 {
            out.push_str("Events:            <none>\n");
        } else {
            out.push_str("Events:\n");
            for line in render_rows(&rows).lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out!("{out}");
    Ok(())
}
