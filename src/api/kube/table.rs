//! `Table` answers (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! so `kubectl get` prints the columns `shoal get` prints.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::resource::{Kind, Object};

/// Whether the client asked for a `meta.k8s.io/v1` Table (kubectl offers
/// it first, then v1beta1, then plain JSON, which it is given otherwise).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let params: Vec<&str> = range.split(';').map(str::trim).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && params.contains(&"v=v1")
        })
}

/// A Table of `items` (all of `kind`); `rev` is the list's resourceVersion.
pub fn of(kind: Kind, items: &[Object], rev: Option<u64>) -> Value {
    let values: Vec<Value> = items
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    // kubectl adds the NAMESPACE column itself when listing across them.
    let mut rows = crate::columns::table_rows(kind, &values, false).into_iter();
    let header = rows.next().unwrap_or_default();
    let columns: Vec<Value> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "name": h,
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": 0,
            })
        })
        .collect();
    let rows = rows
        .map(|r| r.into_iter().map(Value::from).collect())
        .collect();
    assemble(columns, rows, items, rev)
}

/// The Table document of `rows` (one per item of `items`, in order) under
/// `columns`, each row carrying its object's metadata as kubectl expects.
pub fn assemble(
    columns: Vec<Value>,
    rows: Vec<Vec<Value>>,
    items: &[Object],
    rev: Option<u64>,
) -> Value {
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(items)
        .map(|(cells, o)| {
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.metadata,
                },
            })
        })
        .collect();
    let mut meta = json!({});
    if let Some(rev) = rev {
        meta["resourceVersion"] = rev.to_string().into();
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_and_answers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wanted(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wanted(&h));
        let pod: Object = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        let t = of(Kind::Pod, &[pod], Some(7));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["columnDefinitions"][0]["name"], "NAME");
        assert_eq!(t["rows"][0]["cells"][0], "p");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["a"], "b");
        let cols = t["columnDefinitions"].as_array().unwrap().len();
        assert_eq!(t["rows"][0]["cells"].as_array().unwrap().len(), cols);
    }
}
