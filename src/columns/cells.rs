//! Reading an object's fields for a table row: by path, its status typed,
//! ages and durations as kubectl prints them.

use serde_json::Value;

/// The value at `path` in an object, `null` where a step is missing.
pub(crate) fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur
}

/// An object's `status` as the typed struct of its kind; the default when
/// it has none or it does not decode (a table shows what it can).
pub(crate) fn status_of<T: serde::de::DeserializeOwned + Default>(o: &Value) -> T {
    o.get("status")
        .and_then(|st| T::deserialize(st).ok())
        .unwrap_or_default()
}

/// How long ago the object was created, as kubectl prints it.
pub(crate) fn age(v: &Value) -> String {
    since(v, &["metadata", "creationTimestamp"])
}

/// How long ago the timestamp at `path` was, as kubectl prints it.
pub(crate) fn since(v: &Value, path: &[&str]) -> String {
    let Some(ts) = s(v, path).as_str() else {
        return "<unknown>".into();
    };
    let Some(then) = crate::resource::time::parse_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    human_duration(now.saturating_sub(then))
}

/// Seconds as kubectl's short durations: `90s`, `5m`, `3h`, `2d`.
pub(crate) fn human_duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A table row's first cells: the namespace (when shown) and the name.
pub(crate) fn name_cells(it: &Value, with_ns: bool) -> Vec<String> {
    let cell = |path: &[&str]| s(it, path).as_str().unwrap_or("").to_string();
    let mut row = Vec::new();
    if with_ns {
        row.push(cell(&["metadata", "namespace"]));
    }
    row.push(cell(&["metadata", "name"]));
    row
}

/// A map of strings as kubectl prints a selector: `k=v,k2=v2`, or `<none>`.
pub(crate) fn pairs(v: &Value) -> String {
    let all: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if all.is_empty() {
        "<none>".into()
    } else {
        all.join(",")
    }
}
