//! Commands on objects: apply, get, delete, events, members, raft status; and the tables they print.

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::resource::Kind;

use super::client::*;
use super::{Output, emit};
use crate::columns::cells::*;

pub(super) async fn apply(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/apply", Some(body))
        .await
        .with_context(|| format!("apply {file}"))?;
    for w in resp
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("Warning: {w}");
        }
    }
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let outcome = match r.get("outcome").and_then(Value::as_str).unwrap_or("") {
            "Created" => "created",
            "Updated" => "configured",
            "Unchanged" => "unchanged",
            o => o,
        };
        outln!("{}/{name} {outcome}", display_kind(kind));
    }
    Ok(())
}

pub(super) async fn get(
    client: &Client,
    kind: &str,
    name: Option<&str>,
    namespace: Option<String>,
    all: bool,
    output: Output,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or_else(|| "default".into());
    // Endpoints are derived per node, not stored: their own paths and table.
    let stored = if matches!(kind, "endpoints" | "ep") {
        None
    } else if let Some(k) = Kind::from_user(kind) {
        Some(k)
    } else if super::custom::get(client, kind, name, &ns, all, output).await? {
        return Ok(());
    } else {
        Some(kind_arg(kind)?)
    };
    let path = match (stored, name) {
        (Some(k), None) if all => format!("/v1/{}", k.plural()),
        (Some(k), _) => object_path(k, &ns, name),
        (None, Some(n)) => format!("/v1/namespaces/{ns}/endpoints/{n}"),
        (None, None) if all => "/v1/endpoints".to_string(),
        (None, None) => format!("/v1/namespaces/{ns}/endpoints"),
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let items: Vec<Value> = if name.is_some() {
        vec![resp.clone()]
    } else {
        resp.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match output {
        Output::Json => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Yaml => {
            let v = if name.is_some() {
                resp
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            out!(
                "{}",
                serde_saphyr::to_string(&v).map_err(|e| anyhow!("yaml: {e}"))?
            );
        }
        Output::Table => {
            if items.is_empty() {
                if all || stored.is_some_and(|k| !k.namespaced()) {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            out!(
                "{}",
                match stored {
                    Some(k) => table(k, &items, all),
                    None => endpoints_table(&items, all),
                }
            );
        }
    }
    Ok(())
}

/// `get endpoints` as a table: each Service's ready endpoints as the
/// answering node reaches them.
pub(super) fn endpoints_table(items: &[Value], all: bool) -> String {
    let mut rows = vec![Vec::new()];
    if all {
        rows[0].push("NAMESPACE".to_string());
    }
    rows[0].extend(["NAME", "ENDPOINTS"].map(String::from));
    for it in items {
        let mut row = name_cells(it, all);
        let eps: Vec<String> = s(it, &["ports"])
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p.get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .map(|e| {
                format!(
                    "{}:{}",
                    e.get("ip").and_then(Value::as_str).unwrap_or("?"),
                    e.get("port").and_then(Value::as_u64).unwrap_or(0)
                )
            })
            .collect();
        row.push(if eps.is_empty() {
            "<none>".into()
        } else {
            eps.join(",")
        });
        rows.push(row);
    }
    render_rows(&rows)
}

pub(super) use crate::columns::render_rows;

pub(super) fn table(kind: Kind, items: &[Value], with_ns: bool) -> String {
    render_rows(&crate::columns::table_rows(kind, items, with_ns))
}

/// `/ip4/10.0.0.1/tcp/7946` as `10.0.0.1:7946`; other addresses as they are.
pub(super) fn host_port(multiaddr: &str) -> String {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "dns" | "dns4", host, "tcp", port, ..] => format!("{host}:{port}"),
        ["", "ip6", host, "tcp", port, ..] => format!("[{host}]:{port}"),
        _ => multiaddr.to_string(),
    }
}

pub(super) async fn members(client: &Client, output: Output) -> anyhow::Result<()> {
    let resp = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&resp)?),
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(&resp).map_err(|e| anyhow!("yaml: {e}"))?
        ),
        Output::Table => {
            let mut rows = vec![
                ["NAME", "ADDRESS", "STATE", "INCARNATION", "RAFT", "SINCE"]
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>(),
            ];
            for m in s(&resp, &["items"]).as_array().into_iter().flatten() {
                let meta = s(m, &["meta"]);
                let name = s(meta, &["name"]).as_str().unwrap_or("?");
                let name = if m["isSelf"] == true {
                    format!("{name} (this node)")
                } else {
                    name.to_string()
                };
                let since = m["since"].as_u64().unwrap_or(0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                rows.push(vec![
                    name,
                    meta["p2pAddrs"][0]
                        .as_str()
                        .map(host_port)
                        .unwrap_or_else(|| "?".into()),
                    m["state"].as_str().unwrap_or("?").to_string(),
                    m["incarnation"].as_u64().unwrap_or(0).to_string(),
                    // A down member's last published role is stale, not a fact.
                    if matches!(m["state"].as_str(), Some("down" | "left")) {
                        "-".to_string()
                    } else {
                        s(meta, &["raftRole"]).as_str().unwrap_or("?").to_string()
                    },
                    if since == 0 {
                        "-".into()
                    } else {
                        human_duration(now.saturating_sub(since))
                    },
                ]);
            }
            out!("{}", render_rows(&rows));
        }
    }
    Ok(())
}

pub(super) async fn events(
    client: &Client,
    namespace: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let path = if all {
        "/v1/events".to_string()
    } else {
        object_path(Kind::Event, namespace.as_deref().unwrap_or("default"), None)
    };
    let resp = client.send(reqwest::Method::GET, &path, None).await?;
    let mut items: Vec<Value> = s(&resp, &["items"]).as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No events found");
        return Ok(());
    }
    items.sort_by_key(|e| s(e, &["lastTimestamp"]).as_str().unwrap_or("").to_string());
    out!("{}", table(Kind::Event, &items, all));
    Ok(())
}

pub(super) async fn delete_one(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: Option<String>,
    force: bool,
    cascade: &str,
) -> anyhow::Result<()> {
    let ns = namespace.unwrap_or_else(|| "default".into());
    if Kind::from_user(kind).is_none() && super::custom::delete(client, kind, name, &ns).await? {
        return Ok(());
    }
    let kind = kind_arg(kind)?;
    let mut path = object_path(kind, &ns, Some(name));
    let mut query = Vec::new();
    if force {
        query.push("force=true".to_string());
    }
    match cascade {
        "orphan" => query.push("propagationPolicy=Orphan".into()),
        "foreground" => query.push("propagationPolicy=Foreground".into()),
        _ => {}
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    client.send(reqwest::Method::DELETE, &path, None).await?;
    outln!("{}/{name} deleted", display_kind(kind.as_str()));
    Ok(())
}

pub(super) async fn delete_file(client: &Client, file: &str) -> anyhow::Result<()> {
    let body = read_file_arg(file)?;
    let resp = client
        .send(reqwest::Method::POST, "/v1/delete", Some(body))
        .await?;
    for r in resp
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        outln!("{}/{name} deleted", display_kind(kind));
    }
    let missing: Vec<String> = resp
        .get("notFound")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                display_kind(r.get("kind").and_then(Value::as_str).unwrap_or("")),
                r.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!("not found: {}", missing.join(", "));
    }
    Ok(())
}

pub(super) async fn raft_status(client: &Client) -> anyhow::Result<()> {
    let v = client.send(reqwest::Method::GET, "/v1/raft", None).await?;
    let leader = v.get("leader").and_then(Value::as_u64);
    let name_of = |id: u64| -> String {
        for group in ["voters", "learners"] {
            for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
                if e.get(0).and_then(Value::as_u64) == Some(id) {
                    let n = e.get(1).cloned().unwrap_or(Value::Null);
                    return n
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                }
            }
        }
        "?".into()
    };
    outln!(
        "node:    {} ({})",
        s(&v, &["node", "name"]).as_str().unwrap_or(""),
        v.get("state").and_then(Value::as_str).unwrap_or("")
    );
    outln!(
        "term:    {}",
        v.get("term").and_then(Value::as_u64).unwrap_or(0)
    );
    outln!(
        "cluster: {}",
        v.get("cluster_id")
            .and_then(Value::as_str)
            .unwrap_or("<not yet known>")
    );
    match leader {
        Some(id) => outln!("leader:  {} ({id})", name_of(id)),
        None => outln!("leader:  <none>"),
    }
    let idx = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into())
    };
    outln!(
        "log:     last {}  applied {}  purged {}  snapshot {}",
        idx("last_log_index"),
        idx("last_applied"),
        idx("last_purged"),
        idx("snapshot_index")
    );
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ROLE".into(),
        "NODE ID".into(),
        "PEER ID".into(),
        "API".into(),
    ]];
    for (group, role) in [("voters", "voter"), ("learners", "learner")] {
        for e in v.get(group).and_then(Value::as_array).into_iter().flatten() {
            let id = e.get(0).and_then(Value::as_u64).unwrap_or(0);
            let n = e.get(1).cloned().unwrap_or(Value::Null);
            let role = if Some(id) == leader {
                "voter (leader)"
            } else {
                role
            };
            rows.push(vec![
                n.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                role.to_string(),
                id.to_string(),
                n.get("peer_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                n.get("api_addr")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ]);
        }
    }
    out!("{}", render_rows(&rows));
    Ok(())
}
