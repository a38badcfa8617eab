//! crd: CustomResourceDefinitions (apiextensions.k8s.io/v1) and the
//! objects of the kinds they define.
//!
//! A definition is a stored kind like any other (`Kind::CustomResourceDefinition`),
//! checked here. Its objects are all stored under one kind,
//! `Kind::CustomObject`, with `PLURAL.GROUP/` folded into the key's name
//! (`CustomObject/NAMESPACE/websites.example.com/NAME`): the `Kind` enum is
//! Copy and its variants' positions are in stored keys, so a kind per
//! definition cannot be a variant, and the folded name keeps every store
//! path (Raft, the decoded mirror, watch, snapshots) unchanged. A prefix
//! scan of `CustomObject/` lists them; the API filters by definition.
//!
//! The object's own `apiVersion`, `kind` and `metadata.name` are the user's,
//! so a watch event or a GET shows exactly what Kubernetes would.

pub mod schema;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::resource::names::{is_dns_1035_label, is_dns_label};
use crate::resource::{Kind, Object, ObjectKey};

/// Why a definition or a custom object is refused: the field's path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Invalid {
    /// The field, such as `spec.versions[0].schema.openAPIV3Schema.properties.spec.type`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

fn invalid<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        path: path.into(),
        message: message.into(),
    })
}

/// The body of a CustomResourceDefinition (`spec`; `status` is the API's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrdBody {
    pub spec: CrdSpec,
}

/// `spec` of a CustomResourceDefinition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrdSpec {
    pub group: String,
    pub names: CrdNames,
    pub scope: String,
    pub versions: Vec<CrdVersion>,
    /// Only `false` (Kubernetes' v1 rule): unknown fields are pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_unknown_fields: Option<bool>,
    /// Only `strategy: None`: versions differ in `apiVersion` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
}

/// `spec.conversion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conversion {
    pub strategy: String,
}

/// `spec.names`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrdNames {
    pub plural: String,
    #[serde(default)]
    pub singular: String,
    pub kind: String,
    #[serde(default)]
    pub list_kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// One entry of `spec.versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrdVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<CrdValidation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresources: Option<Subresources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_printer_columns: Vec<PrinterColumn>,
}

/// `schema` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdValidation {
    #[serde(rename = "openAPIV3Schema")]
    pub open_api_v3_schema: Value,
}

/// `subresources` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subresources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleSubresource>,
}

/// `subresources.scale`: where the object keeps what an autoscaling/v1
/// `Scale` shows (`kubectl scale`, autoscalers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSubresource {
    /// The desired count, under `.spec` (`.spec.replicas`).
    pub spec_replicas_path: String,
    /// The observed count, under `.status`.
    pub status_replicas_path: String,
    /// The pods' label selector as a string, under `.spec` or `.status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector_path: Option<String>,
}

impl ScaleSubresource {
    /// Checks the paths as Kubernetes does; errors name the field under `p`.
    fn check(&self, p: &str) -> Result<(), Invalid> {
        let paths = [
            (
                "specReplicasPath",
                Some(&self.spec_replicas_path),
                &["spec"][..],
            ),
            (
                "statusReplicasPath",
                Some(&self.status_replicas_path),
                &["status"][..],
            ),
            (
                "labelSelectorPath",
                self.label_selector_path.as_ref(),
                &["spec", "status"][..],
            ),
        ];
        for (field, path, roots) in paths {
            let Some(path) = path else { continue };
            let fields = field_path(path).filter(|f| f.len() >= 2);
            if !fields.is_some_and(|f| roots.contains(&f[0].as_str())) {
                return invalid(
                    format!("{p}.{field}"),
                    format!(
                        "Invalid value: {path:?}: should be a json path under {} (fields only, \
                         such as .{}.replicas)",
                        roots
                            .iter()
                            .map(|r| format!(".{r}"))
                            .collect::<Vec<_>>()
                            .join(" or "),
                        roots[0]
                    ),
                );
            }
        }
        Ok(())
    }

    /// What a `Scale` of `object` shows: desired and observed counts (0
    /// when unset, as Kubernetes) and the selector.
    pub fn read(&self, object: &Value) -> (i64, i64, Option<String>) {
        let int = |p: &str| column_value(object, p).and_then(Value::as_i64).unwrap_or(0);
        let selector = self
            .label_selector_path
            .as_deref()
            .and_then(|p| column_value(object, p))
            .and_then(Value::as_str)
            .map(str::to_string);
        (
            int(&self.spec_replicas_path),
            int(&self.status_replicas_path),
            selector,
        )
    }

    /// Sets the desired count in `object`, making the objects on the path.
    pub fn set_replicas(&self, object: &mut Value, replicas: i64) -> Result<(), String> {
        let fields = field_path(&self.spec_replicas_path)
            .ok_or_else(|| format!("bad specReplicasPath {:?}", self.spec_replicas_path))?;
        let mut v = object;
        for (i, f) in fields.iter().enumerate() {
            let Value::Object(map) = v else {
                return Err(format!("{}: not an object", fields[..i].join(".")));
            };
            if i + 1 == fields.len() {
                map.insert(f.clone(), replicas.into());
                return Ok(());
            }
            v = map.entry(f.clone()).or_insert_with(|| json!({}));
        }
        Ok(())
    }
}

/// A path of plain fields (`.spec.replicas`), as scale paths must be.
fn field_path(p: &str) -> Option<Vec<String>> {
    json_path(p)?
        .into_iter()
        .map(|s| match s {
            Step::Field(f) => Some(f),
            Step::Index(_) => None,
        })
        .collect()
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrinterColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    pub json_path: String,
}

/// Whether shoal serves `group` itself (the core group, its kinds' groups,
/// metrics and the meta groups): a definition may not claim it.
pub fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "metrics.k8s.io" | "meta.k8s.io" | "apidiscovery.k8s.io"
    ) || Kind::ALL.iter().any(|k| {
        k.api_version()
            .split_once('/')
            .is_some_and(|(g, _)| g == group)
    })
}

const MAX_VERSIONS: usize = 16;
const MAX_COLUMNS: usize = 32;
const MAX_NAMES: usize = 16;

fn is_kind_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphabetic()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// Checks a definition's body against `metadata.name` and returns it
/// canonical, with Kubernetes' defaults (`singular`, `listKind`) filled.
/// What depends on other definitions (name conflicts) is checked by the API.
pub fn check(name: &str, body: CrdBody) -> Result<CrdBody, Invalid> {
    let mut body = body;
    let spec = &mut body.spec;
    let group_ok = spec.group.len() <= 253
        && spec.group.split('.').all(is_dns_label)
        && spec.group.contains('.');
    if !group_ok {
        return invalid(
            "spec.group",
            format!(
                "{:?} must be a DNS subdomain with at least one dot (example.com)",
                spec.group
            ),
        );
    }
    if is_builtin_group(&spec.group) {
        return invalid(
            "spec.group",
            format!(
                "{:?} is served by shoal itself: a CustomResourceDefinition cannot claim it",
                spec.group
            ),
        );
    }
    check_names(&mut spec.names)?;
    let want = format!("{}.{}", spec.names.plural, spec.group);
    if name != want {
        return invalid(
            "metadata.name",
            format!("{name:?} must be spec.names.plural+\".\"+spec.group: {want:?}"),
        );
    }
    if !matches!(spec.scope.as_str(), "Namespaced" | "Cluster") {
        return invalid(
            "spec.scope",
            format!(
                "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                spec.scope
            ),
        );
    }
    if spec.preserve_unknown_fields == Some(true) {
        return invalid(
            "spec.preserveUnknownFields",
            "must be false: use x-kubernetes-preserve-unknown-fields in the schema",
        );
    }
    if let Some(c) = &spec.conversion
        && c.strategy != "None"
    {
        return invalid(
            "spec.conversion.strategy",
            format!(
                "{:?} is not supported by shoal: only \"None\" (versions differ in apiVersion only)",
                c.strategy
            ),
        );
    }
    check_versions(&spec.versions)?;
    Ok(body)
}

fn check_names(n: &mut CrdNames) -> Result<(), Invalid> {
    if !is_dns_1035_label(&n.plural) {
        return invalid(
            "spec.names.plural",
            format!("{:?} must be a lowercase DNS-1035 label", n.plural),
        );
    }
    if !is_kind_name(&n.kind) {
        return invalid(
            "spec.names.kind",
            format!(
                "{:?} must be letters and digits, starting with a letter",
                n.kind
            ),
        );
    }
    if n.singular.is_empty() {
        n.singular = n.kind.to_ascii_lowercase();
    }
    if !is_dns_1035_label(&n.singular) {
        return invalid(
            "spec.names.singular",
            format!("{:?} must be a lowercase DNS-1035 label", n.singular),
        );
    }
    if n.list_kind.is_empty() {
        n.list_kind = format!("{}List", n.kind);
    }
    if !is_kind_name(&n.list_kind) || n.list_kind == n.kind {
        return invalid(
            "spec.names.listKind",
            format!(
                "{:?} must be letters and digits and differ from kind",
                n.list_kind
            ),
        );
    }
    for (field, list) in [
        ("shortNames", &n.short_names),
        ("categories", &n.categories),
    ] {
        if list.len() > MAX_NAMES {
            return invalid(
                format!("spec.names.{field}"),
                format!("at most {MAX_NAMES} entries"),
            );
        }
        for (i, s) in list.iter().enumerate() {
            if !is_dns_1035_label(s) {
                return invalid(
                    format!("spec.names.{field}[{i}]"),
                    format!("{s:?} must be a lowercase DNS-1035 label"),
                );
            }
            if list[..i].contains(s) {
                return invalid(
                    format!("spec.names.{field}[{i}]"),
                    format!("{s:?} is repeated"),
                );
            }
        }
    }
    // `shoal get NAME` and kubectl must resolve a name to one resource: the
    // built-in kinds' names and abbreviations stay theirs.
    let mut claimed = vec![("plural", &n.plural), ("singular", &n.singular)];
    claimed.extend(n.short_names.iter().map(|s| ("shortNames", s)));
    for (field, s) in claimed {
        if let Some(k) = Kind::from_user(s) {
            return invalid(
                format!("spec.names.{field}"),
                format!("{s:?} is a name of the built-in kind {k}"),
            );
        }
    }
    if Kind::from_manifest(&n.kind).is_some() {
        return invalid(
            "spec.names.kind",
            format!("{:?} is a built-in kind", n.kind),
        );
    }
    Ok(())
}

fn check_versions(versions: &[CrdVersion]) -> Result<(), Invalid> {
    if versions.is_empty() {
        return invalid("spec.versions", "Required value: at least one version");
    }
    if versions.len() > MAX_VERSIONS {
        return invalid("spec.versions", format!("at most {MAX_VERSIONS} versions"));
    }
    let storage = versions.iter().filter(|v| v.storage).count();
    if storage != 1 {
        return invalid(
            "spec.versions",
            format!("exactly one version must be the storage version, not {storage}"),
        );
    }
    if !versions.iter().any(|v| v.served) {
        return invalid("spec.versions", "at least one version must be served");
    }
    for (i, v) in versions.iter().enumerate() {
        let p = format!("spec.versions[{i}]");
        if !is_dns_1035_label(&v.name) {
            return invalid(
                format!("{p}.name"),
                format!(
                    "{:?} must be a lowercase DNS-1035 label (v1, v1beta1)",
                    v.name
                ),
            );
        }
        if versions[..i].iter().any(|o| o.name == v.name) {
            return invalid(format!("{p}.name"), format!("{:?} is repeated", v.name));
        }
        let Some(s) = &v.schema else {
            return invalid(
                format!("{p}.schema.openAPIV3Schema"),
                "Required value: schemas are required (structural, as Kubernetes' v1)",
            );
        };
        schema::check(
            &s.open_api_v3_schema,
            &format!("{p}.schema.openAPIV3Schema"),
        )?;
        if let Some(sub) = &v.subresources {
            if let Some(scale) = &sub.scale {
                scale.check(&format!("{p}.subresources.scale"))?;
            }
            if sub.status.as_ref().is_some_and(|m| !m.is_empty()) {
                return invalid(format!("{p}.subresources.status"), "must be {}");
            }
        }
        if v.additional_printer_columns.len() > MAX_COLUMNS {
            return invalid(
                format!("{p}.additionalPrinterColumns"),
                format!("at most {MAX_COLUMNS} columns"),
            );
        }
        for (j, c) in v.additional_printer_columns.iter().enumerate() {
            let cp = format!("{p}.additionalPrinterColumns[{j}]");
            if c.name.is_empty() {
                return invalid(format!("{cp}.name"), "Required value");
            }
            if !matches!(
                c.type_.as_str(),
                "string" | "integer" | "number" | "boolean" | "date"
            ) {
                return invalid(
                    format!("{cp}.type"),
                    format!(
                        "Unsupported value: {:?}: supported values: \"boolean\", \"date\", \
                         \"integer\", \"number\", \"string\"",
                        c.type_
                    ),
                );
            }
            if json_path(&c.json_path).is_none() {
                return invalid(
                    format!("{cp}.jsonPath"),
                    format!(
                        "{:?}: shoal takes a simple path of fields and indexes (.spec.replicas, \
                         .status.conditions[0].type)",
                        c.json_path
                    ),
                );
            }
        }
    }
    Ok(())
}

/// One step of a printer column's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// Parses the JSONPath subset printer columns use: `.a.b[0].c`, with
/// `{...}` braces allowed around it.
fn json_path(p: &str) -> Option<Vec<Step>> {
    let p = p.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|q| q.strip_suffix('}'))
        .unwrap_or(p);
    let mut rest = p.strip_prefix('.')?;
    let mut steps = Vec::new();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let field = &rest[..end];
        if !field.is_empty() {
            if !field
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                return None;
            }
            steps.push(Step::Field(field.to_string()));
        }
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            steps.push(Step::Index(r[..close].parse().ok()?));
            rest = &r[close + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            if r.is_empty() || r.starts_with(['.', '[']) {
                return None;
            }
            rest = r;
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(steps)
}

/// The value a printer column shows for an object (`None`: the cell is empty).
pub fn column_value<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = object;
    for step in json_path(path)? {
        v = match step {
            Step::Field(f) => v.get(f.as_str())?,
            Step::Index(i) => v.get(i)?,
        };
    }
    Some(v)
}

/// The rows `shoal get` prints for custom objects (header first): NAME
/// (after NAMESPACE when `with_ns`), then the printer columns, or AGE when
/// the version has none, as kubectl prints them.
pub fn table_rows(columns: &[PrinterColumn], items: &[Value], with_ns: bool) -> Vec<Vec<String>> {
    use crate::columns::cells::{age, name_cells, since};
    let mut header = Vec::new();
    if with_ns {
        header.push("NAMESPACE".to_string());
    }
    header.push("NAME".to_string());
    if columns.is_empty() {
        header.push("AGE".to_string());
    }
    header.extend(columns.iter().map(|c| c.name.to_ascii_uppercase()));
    let mut rows = vec![header];
    for it in items {
        let mut row = name_cells(it, with_ns);
        if columns.is_empty() {
            row.push(age(it));
        }
        for c in columns {
            row.push(match column_value(it, &c.json_path) {
                None | Some(Value::Null) => "<none>".to_string(),
                Some(Value::String(t)) if c.type_ == "date" => since(&json!({ "t": t }), &["t"]),
                Some(Value::String(t)) => t.clone(),
                Some(x) => x.to_string(),
            });
        }
        rows.push(row);
    }
    rows
}

/// One version of a definition, as served.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// The version's `openAPIV3Schema`.
    pub schema: Value,
    /// Whether `status` is a subresource (then writes of the object keep it).
    pub status: bool,
    /// The scale subresource, when enabled.
    pub scale: Option<ScaleSubresource>,
    pub columns: Vec<PrinterColumn>,
}

/// A stored definition, read for serving its objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// `PLURAL.GROUP`, the definition's name and its objects' key prefix.
    pub name: String,
    pub group: String,
    pub names: CrdNames,
    pub namespaced: bool,
    pub versions: Vec<ServedVersion>,
}

impl Definition {
    /// Reads a stored definition (`None` for one that does not decode,
    /// which validation made impossible when it was written).
    pub fn from_object(o: &Object) -> Option<Definition> {
        let body: CrdBody = serde_json::from_value(Value::Object(without_status(&o.body))).ok()?;
        let s = body.spec;
        Some(Definition {
            name: o.metadata.name.clone(),
            namespaced: s.scope == "Namespaced",
            versions: s
                .versions
                .into_iter()
                .map(|v| ServedVersion {
                    status: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
                    scale: v.subresources.as_ref().and_then(|s| s.scale.clone()),
                    schema: v
                        .schema
                        .map(|s| s.open_api_v3_schema)
                        .unwrap_or(Value::Null),
                    name: v.name,
                    served: v.served,
                    storage: v.storage,
                    columns: v.additional_printer_columns,
                })
                .collect(),
            group: s.group,
            names: s.names,
        })
    }

    /// The served version `name`.
    pub fn served(&self, name: &str) -> Option<&ServedVersion> {
        self.versions.iter().find(|v| v.served && v.name == name)
    }

    /// The version objects are stored at.
    pub fn storage_version(&self) -> Option<&ServedVersion> {
        self.versions.iter().find(|v| v.storage)
    }

    /// `GROUP/VERSION`.
    pub fn api_version(&self, version: &str) -> String {
        format!("{}/{version}", self.group)
    }

    /// The key of object `name` (in `namespace` for a namespaced kind).
    pub fn key(&self, namespace: Option<&str>, name: &str) -> ObjectKey {
        let ns = if self.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        object_key(&self.name, ns, name)
    }

    /// Whether a stored custom object is one of this definition's.
    pub fn owns(&self, o: &Object) -> bool {
        o.kind == self.names.kind
            && o.api_version.split_once('/').map(|(g, _)| g) == Some(&self.group)
    }

    /// Whether `name` (a plural, singular, short name or `kind.group`)
    /// names this resource, as `shoal get` and kubectl resolve it.
    pub fn answers_to(&self, name: &str) -> bool {
        let l = name.to_ascii_lowercase();
        l == self.names.plural
            || l == self.names.singular
            || l == self.names.kind.to_ascii_lowercase()
            || self.names.short_names.contains(&l)
            || l == self.name
            || l == format!("{}.{}", self.names.kind.to_ascii_lowercase(), self.group)
    }
}

/// Custom objects with their keys, for those whose definition is among
/// `defs` (an object's key needs its definition's plural).
pub fn keyed(objects: Vec<Object>, defs: &[Definition]) -> Vec<(ObjectKey, Object)> {
    objects
        .into_iter()
        .filter_map(|o| {
            let d = defs.iter().find(|d| d.owns(&o))?;
            Some((d.key(o.metadata.namespace.as_deref(), &o.metadata.name), o))
        })
        .collect()
}

/// The key of a custom object: `PLURAL.GROUP/NAME` as the key's name.
pub fn object_key(definition: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::CustomObject,
        namespace: namespace.to_string(),
        name: format!("{definition}/{name}"),
    }
}

/// Whether a custom object's key belongs to definition `name` (`PLURAL.GROUP`).
pub fn key_in(key: &ObjectKey, definition: &str) -> bool {
    key.kind == Kind::CustomObject
        && key
            .name
            .split_once('/')
            .is_some_and(|(d, _)| d == definition)
}

fn without_status(body: &Map<String, Value>) -> Map<String, Value> {
    let mut b = body.clone();
    b.remove("status");
    b
}

/// The status a definition is given when it is written: its names are
/// accepted (conflicts are refused before) and it is established at once,
/// since every node serves it from the replicated store.
pub fn accepted_status(body: &CrdBody, now: &str) -> Value {
    let cond = |ty: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": "True", "lastTransitionTime": now,
               "reason": reason, "message": message})
    };
    let stored: Vec<&str> = body
        .spec
        .versions
        .iter()
        .filter(|v| v.storage)
        .map(|v| v.name.as_str())
        .collect();
    json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": body.spec.names,
        "storedVersions": stored,
    })
}

/// Names two definitions of the same group may not share; `None` if they
/// are apart.
pub fn conflict(a: &CrdSpec, b: &CrdSpec) -> Option<String> {
    if a.group != b.group {
        return None;
    }
    let names = |n: &CrdNames| {
        let mut v = vec![n.plural.clone(), n.singular.clone()];
        v.extend(n.short_names.iter().cloned());
        v
    };
    if a.names.kind == b.names.kind {
        return Some(format!("kind {:?}", a.names.kind));
    }
    let theirs = names(&b.names);
    names(&a.names)
        .into_iter()
        .find(|n| theirs.contains(n))
        .map(|n| format!("name {n:?}"))
}

#[cfg(test)]
mod tests;
