//! openAPIV3Schema as Kubernetes uses it for custom kinds: a structural
//! schema (every node typed) checked when a definition is written, then
//! objects defaulted, pruned of unknown fields and validated against it.
//!
//! Written here rather than taken from a JSON-schema crate: Kubernetes'
//! rules are not JSON Schema's (pruning, `nullable`, the `x-kubernetes-`
//! extensions, errors named by field path), and the subset is small.
//! Schemas come from users and, replicated, from peers: their depth, node
//! count and regular expressions are bounded.

use serde_json::{Map, Value};

use super::{Invalid, invalid};

/// Deepest nesting of schema nodes accepted.
pub const MAX_DEPTH: usize = 32;
/// Most schema nodes in one version's schema.
pub const MAX_NODES: usize = 4096;
/// Most bytes a `pattern`'s compiled program may take.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Most errors one object's validation reports.
const MAX_ERRORS: usize = 20;

/// Keywords a schema node may carry.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "default",
    "description",
    "format",
    "title",
    "example",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// Keywords Kubernetes takes that shoal refuses by name rather than ignore.
const UNSUPPORTED: &[&str] = &[
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "$ref",
    "uniqueItems",
    "multipleOf",
    "x-kubernetes-validations",
];

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

/// Checks that `schema` is a structural schema shoal can apply; `path`
/// names it in errors.
pub fn check(schema: &Value, path: &str) -> Result<(), Invalid> {
    let mut nodes = 0;
    node(schema, path, 0, &mut nodes)?;
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return invalid(format!("{path}.type"), "the root must be of type object");
    }
    Ok(())
}

fn node(s: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<(), Invalid> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return invalid(path, format!("the schema has more than {MAX_NODES} nodes"));
    }
    if depth > MAX_DEPTH {
        return invalid(
            path,
            format!("the schema is nested deeper than {MAX_DEPTH}"),
        );
    }
    let Some(m) = s.as_object() else {
        return invalid(path, "must be a schema (a mapping)");
    };
    for k in m.keys() {
        if UNSUPPORTED.contains(&k.as_str()) {
            return invalid(format!("{path}.{k}"), "is not supported by shoal yet");
        }
        if !KEYWORDS.contains(&k.as_str()) {
            return invalid(format!("{path}.{k}"), "unknown schema keyword");
        }
    }
    let flag = |k: &str| -> Result<bool, Invalid> {
        match m.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => invalid(format!("{path}.{k}"), "must be true or false"),
        }
    };
    let preserve = flag("x-kubernetes-preserve-unknown-fields")?;
    let int_or_string = flag("x-kubernetes-int-or-string")?;
    flag("nullable")?;
    let ty = match m.get("type") {
        None if preserve || int_or_string => None,
        None => {
            return invalid(
                format!("{path}.type"),
                "Required value: must not be empty for specified object fields (structural schema)",
            );
        }
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(t) => {
            return invalid(
                format!("{path}.type"),
                format!(
                    "Unsupported value: {t}: supported values: {}",
                    quoted(TYPES)
                ),
            );
        }
    };
    if let Some(p) = m.get("properties") {
        let Some(props) = p.as_object() else {
            return invalid(format!("{path}.properties"), "must be a mapping");
        };
        if ty != Some("object") {
            return invalid(
                format!("{path}.properties"),
                "only an object has properties",
            );
        }
        if m.contains_key("additionalProperties") {
            return invalid(
                format!("{path}.additionalProperties"),
                "properties and additionalProperties are mutually exclusive",
            );
        }
        for (name, sub) in props {
            node(sub, &format!("{path}.properties[{name}]"), depth + 1, nodes)?;
        }
    }
    match m.get("additionalProperties") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {}
        Some(sub) => node(
            sub,
            &format!("{path}.additionalProperties"),
            depth + 1,
            nodes,
        )?,
    }
    if let Some(r) = m.get("required") {
        let ok = r.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return invalid(format!("{path}.required"), "must be a list of field names");
        }
    }
    match (ty, m.get("items")) {
        (Some("array"), Some(items)) => node(items, &format!("{path}.items"), depth + 1, nodes)?,
        (Some("array"), None) => {
            return invalid(
                format!("{path}.items"),
                "Required value: must be specified for an array (structural schema)",
            );
        }
        (_, Some(_)) => return invalid(format!("{path}.items"), "only an array has items"),
        _ => {}
    }
    if let Some(e) = m.get("enum")
        && e.as_array().is_none_or(Vec::is_empty)
    {
        return invalid(format!("{path}.enum"), "must be a non-empty list");
    }
    if let Some(p) = m.get("pattern") {
        let Some(p) = p.as_str() else {
            return invalid(format!("{path}.pattern"), "must be a string");
        };
        compile(p).map_err(|e| Invalid {
            path: format!("{path}.pattern"),
            message: e,
        })?;
    }
    for k in ["minimum", "maximum"] {
        if m.get(k).is_some_and(|v| !v.is_number()) {
            return invalid(format!("{path}.{k}"), "must be a number");
        }
    }
    for k in [
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ] {
        if m.get(k).is_some_and(|v| v.as_u64().is_none()) {
            return invalid(format!("{path}.{k}"), "must be a non-negative integer");
        }
    }
    if let Some(d) = m.get("default") {
        let mut d = d.clone();
        let errs = validate(s, &mut d, "default");
        if let Some(e) = errs.first() {
            return invalid(
                format!("{path}.default"),
                format!("the default is invalid: {e}"),
            );
        }
    }
    Ok(())
}

fn compile(p: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("not a regular expression shoal can use: {e}"))
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `schema`'s defaults to `value`, prunes the fields it does not
/// know, and returns what is wrong, Kubernetes-style (`spec.size:
/// Invalid value: ...`). `path` names `value` (`""` for an object's root,
/// whose `apiVersion`, `kind` and `metadata` are left alone).
pub fn validate(schema: &Value, value: &mut Value, path: &str) -> Vec<String> {
    let mut errors = Errors::default();
    walk(schema, value, path, &mut errors);
    let mut list = errors.list;
    list.truncate(MAX_ERRORS);
    list
}

/// What one validation found, and the patterns it compiled: each once per
/// object, however many values it checks.
#[derive(Default)]
struct Errors {
    list: Vec<String>,
    patterns: std::collections::HashMap<String, Option<regex::Regex>>,
}

impl Errors {
    fn push(&mut self, e: String) {
        self.list.push(e);
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// The compiled pattern; `None` for one that does not compile (the
    /// definition's check refused those: a peer's bytes, then).
    fn pattern(&mut self, p: &str) -> Option<&regex::Regex> {
        if !self.patterns.contains_key(p) {
            self.patterns.insert(p.to_string(), compile(p).ok());
        }
        self.patterns.get(p).and_then(Option::as_ref)
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 64 {
        format!("{}...", &s[..s.floor_char_boundary(64)])
    } else {
        s
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(s: &Value, v: &mut Value, path: &str, errors: &mut Errors) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    let Some(m) = s.as_object() else { return };
    let at = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if m.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!(
                "{at}: Invalid value: \"null\": {at} in body must not be null"
            ));
        }
        return;
    }
    let int_or_string = m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let ty = m.get("type").and_then(Value::as_str);
    let actual = type_of(v);
    let type_ok = match ty {
        _ if int_or_string => matches!(actual, "integer" | "string"),
        None => true,
        Some("number") => matches!(actual, "integer" | "number"),
        Some(t) => t == actual,
    };
    if !type_ok {
        let want = if int_or_string {
            "integer or string"
        } else {
            ty.unwrap_or("")
        };
        errors.push(format!(
            "{at}: Invalid value: {:?}: {at} in body must be of type {want}: {:?}",
            actual,
            shown(v)
        ));
        return;
    }
    if let Some(e) = m.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        let allowed: Vec<String> = e.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{at}: Unsupported value: {}: supported values: {}",
            shown(v),
            allowed.join(", ")
        ));
    }
    match v {
        Value::String(s) => string(m, s, at, errors),
        Value::Number(n) => number(m, n, at, errors),
        Value::Array(items) => {
            bounds(m, "minItems", "maxItems", items.len(), "items", at, errors);
            if let Some(is) = m.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(is, item, &format!("{at}[{i}]"), errors);
                }
            }
        }
        Value::Object(o) => object(m, o, path, errors),
        _ => {}
    }
}

fn string(m: &Map<String, Value>, s: &str, at: &str, errors: &mut Errors) {
    bounds(
        m,
        "minLength",
        "maxLength",
        s.chars().count(),
        "characters",
        at,
        errors,
    );
    if let Some(p) = m.get("pattern").and_then(Value::as_str) {
        // One that does not compile refuses the value rather than let it through.
        let ok = errors.pattern(p).is_some_and(|re| re.is_match(s));
        if !ok {
            errors.push(format!(
                "{at}: Invalid value: {s:?}: {at} in body should match '{p}'"
            ));
        }
    }
}

fn number(m: &Map<String, Value>, n: &serde_json::Number, at: &str, errors: &mut Errors) {
    let Some(x) = n.as_f64() else { return };
    let exclusive = |k: &str| m.get(k) == Some(&Value::Bool(true));
    if let Some(min) = m.get("minimum").and_then(Value::as_f64) {
        let bad = if exclusive("exclusiveMinimum") {
            x <= min
        } else {
            x < min
        };
        if bad {
            let rel = if exclusive("exclusiveMinimum") {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(format!(
                "{at}: Invalid value: {n}: {at} in body should be {rel} {min}"
            ));
        }
    }
    if let Some(max) = m.get("maximum").and_then(Value::as_f64) {
        let bad = if exclusive("exclusiveMaximum") {
            x >= max
        } else {
            x > max
        };
        if bad {
            let rel = if exclusive("exclusiveMaximum") {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(format!(
                "{at}: Invalid value: {n}: {at} in body should be {rel} {max}"
            ));
        }
    }
}

fn bounds(
    m: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    len: usize,
    what: &str,
    at: &str,
    errors: &mut Errors,
) {
    let len = len as u64;
    if let Some(min) = m.get(min_key).and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!(
            "{at}: Invalid value: {len}: {at} in body should have at least {min} {what}"
        ));
    }
    if let Some(max) = m.get(max_key).and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!(
            "{at}: Too long: {at} in body may not have more than {max} {what}"
        ));
    }
}

fn object(m: &Map<String, Value>, o: &mut Map<String, Value>, path: &str, errors: &mut Errors) {
    let root = path.is_empty();
    let at = if root { "<root>" } else { path };
    let props = m.get("properties").and_then(Value::as_object);
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    // Defaults first, so `required` and the checks below see them.
    if let Some(props) = props {
        for (name, sub) in props {
            if let Some(d) = sub.get("default")
                && o.get(name)
                    .is_none_or(|v| v.is_null() && sub.get("nullable") != Some(&Value::Bool(true)))
            {
                o.insert(name.clone(), d.clone());
            }
        }
    }
    if let Some(req) = m.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if root && matches!(r, "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if !o.contains_key(r) {
                errors.push(format!("{}: Required value", join(path, r)));
            }
        }
    }
    let n = o.len();
    bounds(
        m,
        "minProperties",
        "maxProperties",
        n,
        "properties",
        at,
        errors,
    );
    let additional = m.get("additionalProperties");
    let keys: Vec<String> = o.keys().cloned().collect();
    for k in keys {
        if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let sub = match (props.and_then(|p| p.get(&k)), additional) {
            (Some(sub), _) => Some(sub),
            (None, Some(a)) if a.is_object() => Some(a),
            (None, Some(Value::Bool(true))) => None,
            (None, _) if preserve => None,
            // Pruned, as Kubernetes does for a structural schema.
            (None, _) => {
                o.remove(&k);
                continue;
            }
        };
        if let (Some(sub), Some(v)) = (sub, o.get_mut(&k)) {
            walk(sub, v, &join(path, &k), errors);
        }
    }
}

#[cfg(test)]
mod tests;
