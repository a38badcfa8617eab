//! Manifest parsing and validation: YAML documents in Kubernetes' shape become
//! canonical [`Object`]s, or an error that names the document and the field.
//!
//! Each document is read into JSON, checked for Kubernetes fields shoal does
//! not support (so those get a clearer error than "unknown field"), decoded
//! through the typed bodies of [`crate::resource::types`] (unknown fields and
//! wrong types are errors with their path), checked semantically, and
//! re-serialised from the typed body so that what is stored is canonical.
//! `status` is free-form and never validated.

mod autoscaling;
pub mod crds;
mod disruption;
mod hostns;
mod ingress;
mod limits;
mod meta;
mod pod;
mod priority;
mod quota;
mod rbac;
mod resources;
mod scheduling;
mod serviceaccount;
mod statefulset;
mod storage;
mod termination;
mod unsupported;
mod workloads;
use pod::*;
use storage::*;
use unsupported::*;
use workloads::*;

mod image;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use crate::resource::names::is_dns_subdomain;
use crate::resource::names::{is_dns_1035_label, is_dns_label};
use crate::resource::types::{
    CompletionMode, ConfigMapBody, Container, CronJobBody, DaemonSetBody, DeploymentBody,
    DeploymentSpec, DownwardApiFile, IntOrString, JobBody, JobSpec, KeyToPath, LabelSelector,
    NamespaceBody, NodeBody, ObjectFieldSelector, PodBody, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, Protocol, RestartPolicy, SecretBody, SecurityContext, SelectorOperator,
    ServiceBody, ServiceSpec, ServiceType, StrategyType, decode_base64, encode_base64,
    parse_cpu_millis, parse_memory_bytes,
};
use crate::resource::{DEFAULT_NAMESPACE, Kind, Object, ObjectKey, ObjectMeta};
use image::check_image_reference;

/// Result of parsing a manifest file: objects in file order plus warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The objects, validated and canonical, in the order of the file.
    pub objects: Vec<Object>,
    /// One line per field that is accepted but not acted on yet.
    pub warnings: Vec<String>,
    /// Documents of custom kinds, in file order, left as they are: their
    /// schema is a stored definition's, checked where the store is.
    pub custom: Vec<CustomDocument>,
}

pub use crds::CustomDocument;

/// Why a manifest or an object was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A document is not valid YAML.
    #[error("document {doc}: invalid YAML: {message}")]
    Yaml {
        /// 1-based index among the file's non-empty documents.
        doc: usize,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An object is invalid; `path` names the field (empty for the whole document).
    #[error("{}{}", location(*.doc, .object.as_deref()), field_message(.path, .message))]
    Invalid {
        /// 1-based document index when the object came from a file.
        doc: Option<usize>,
        /// `Kind name`, when known.
        object: Option<String>,
        /// The field's path, such as `spec.template.spec.containers[0].image`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The same object appears twice in one file.
    #[error("document {doc} ({object}): the same object as document {first}")]
    Duplicate {
        /// The later document.
        doc: usize,
        /// The earlier document.
        first: usize,
        /// The object's key.
        object: String,
    },
    /// The file holds no object at all.
    #[error("no objects in the manifest (it is empty or holds only comments)")]
    Empty,
    /// Several problems, in document order, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ManifestError>),
}

/// Most problems one document reports: past these, the rest is noise.
const MAX_PROBLEMS_PER_DOCUMENT: usize = 32;
/// Most problems one file reports.
const MAX_PROBLEMS: usize = 200;

fn location(doc: Option<usize>, object: Option<&str>) -> String {
    match (doc, object) {
        (Some(d), Some(o)) => format!("document {d} ({o}): "),
        (Some(d), None) => format!("document {d}: "),
        (None, Some(o)) => format!("{o}: "),
        (None, None) => String::new(),
    }
}

fn field_message(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

/// Parses a file of `---`-separated YAML documents (block or flow style) into
/// validated, canonical objects. Empty documents are skipped; an invalid
/// document fails the whole file, which reports every problem it finds in
/// every document (see [`document_problems`]), up to [`MAX_PROBLEMS`].
pub fn parse_manifests(text: &str) -> Result<Parsed, ManifestError> {
    // Kubernetes reads YAML 1.1: `0644` is octal (file modes), `yes` a boolean.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let mut seen: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    let mut problems: Vec<ManifestError> = Vec::new();
    let mut custom = Vec::new();
    let docs = serde_saphyr::read_with_options::<_, Value>(&mut reader, options);
    for (i, doc) in docs.enumerate() {
        let n = i + 1;
        let value = match doc {
            Ok(v) => v,
            Err(e) => {
                // The parser cannot resume after a syntax error.
                problems.push(ManifestError::Yaml {
                    doc: n,
                    message: yaml_message(&e.to_string()),
                });
                break;
            }
        };
        if crds::is_custom_document(&value) {
            custom.push(CustomDocument { doc: n, value });
            continue;
        }
        let (obj, obj_warnings) =
            match object_from_value(value.clone()) {
                Ok(v) => v,
                Err(first) => {
                    problems.extend(document_problems(value, first).into_iter().map(
                        |(object, f)| ManifestError::Invalid {
                            doc: Some(n),
                            object,
                            path: f.path,
                            message: f.message,
                        },
                    ));
                    if problems.len() >= MAX_PROBLEMS {
                        break;
                    }
                    continue;
                }
            };
        let label = object_label(&obj);
        warnings.extend(
            obj_warnings
                .into_iter()
                .map(|w| format!("document {n} ({label}): {w}")),
        );
        if let Some(key) = obj.key()
            && let Some(first) = seen.insert(key.clone(), n)
        {
            problems.push(ManifestError::Duplicate {
                doc: n,
                first,
                object: key.to_string(),
            });
            continue;
        }
        objects.push(obj);
    }
    match problems.len() {
        0 if objects.is_empty() && custom.is_empty() => Err(ManifestError::Empty),
        0 => Ok(Parsed {
            objects,
            warnings,
            custom,
        }),
        1 => Err(problems.remove(0)),
        _ => Err(ManifestError::Many(problems)),
    }
}

/// Every problem of one invalid document, `first` being the first found.
/// Validation stops at the first problem, so the offending field is taken
/// out of the document and the rest validated again, until it passes or a
/// problem cannot be taken out that way: its field is not in the document
/// (a missing one) or taking it out only moves the complaint to its absence.
fn document_problems(
    mut value: Value,
    first: (Option<String>, Failure),
) -> Vec<(Option<String>, Failure)> {
    let mut out = vec![first];
    let mut removed: Vec<String> = Vec::new();
    while out.len() < MAX_PROBLEMS_PER_DOCUMENT {
        let path = &out[out.len() - 1].1.path;
        if path.is_empty() || !remove_path(&mut value, path) {
            break;
        }
        removed.push(path.clone());
        match object_from_value(value.clone()) {
            Ok(_) => break,
            Err(next) => {
                if follows_from(&next.1, &removed, &out) {
                    break;
                }
                out.push(next);
            }
        }
    }
    out
}

/// Whether `next` only follows from taking fields out: its path is one of
/// them or holds one (`volumes[0]` has no source once `volumes[0].nfs` is
/// gone), or a problem reported names it (`imagee: did you mean image`).
/// Then validation can go no further without guessing.
fn follows_from(
    next: &Failure,
    removed: &[String],
    reported: &[(Option<String>, Failure)],
) -> bool {
    let p = &next.path;
    let holds =
        |r: &String| r == p || r.starts_with(&format!("{p}.")) || r.starts_with(&format!("{p}["));
    let field = p.rsplit(['.', ']']).next().unwrap_or(p);
    removed.iter().any(holds)
        || (!field.is_empty()
            && reported
                .iter()
                .any(|(_, f)| f.message.contains(&format!("`{field}`"))))
}

/// Removes the field at a problem's path (`spec.containers[0].image`) from
/// a document; false when there is no such field, or the path ends at a
/// list item. A key holding a dot (an annotation) cannot be told from
/// nesting, so it is not found.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut steps: Vec<(&str, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            steps.push((key, None));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            match idx.trim_end_matches(']').parse::<usize>() {
                Ok(i) => steps.push(("", Some(i))),
                Err(_) => return false,
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut at = value;
    for (key, idx) in parents {
        let next = match idx {
            Some(i) => at.get_mut(*i),
            None => at.get_mut(*key),
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    // A whole list item is not taken out: the items after it would move,
    // and the paths of their problems with them.
    match (last, at) {
        ((key, None), Value::Object(m)) => m.remove(*key).is_some(),
        _ => false,
    }
}

/// Validate one object that arrives as JSON (PUT/POST bodies); returns warnings.
/// Also normalises: fills `metadata.namespace` with "default" for namespaced
/// kinds, clears it for cluster-scoped ones, folds a Secret's `stringData`
/// into `data`, and re-serialises the body through the typed struct so it is
/// canonical. `status` is kept as it is. On error the object is unchanged.
pub fn validate_object(obj: &mut Object) -> Result<Vec<String>, ManifestError> {
    let label = object_label(obj);
    let mut ck = Checker::default();
    let (metadata, body) = validate_parts(obj, &mut ck).map_err(|f| ManifestError::Invalid {
        doc: None,
        object: Some(label),
        path: f.path,
        message: f.message,
    })?;
    obj.metadata = metadata;
    obj.body = body;
    autoscaling::store_as_v2(obj);
    Ok(ck.warnings)
}

/// Like [`validate_object`] for a raw JSON body, so that errors in `metadata`,
/// `apiVersion` and `kind` also name their path; returns the canonical object.
pub fn object_from_json(value: Value) -> Result<(Object, Vec<String>), ManifestError> {
    object_from_value(value).map_err(|(object, f)| ManifestError::Invalid {
        doc: None,
        object,
        path: f.path,
        message: f.message,
    })
}

/// The parser's message on one line, without hints meant for programmers.
fn yaml_message(s: &str) -> String {
    let s = s.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn object_label(obj: &Object) -> String {
    if obj.metadata.name.is_empty() {
        obj.kind.clone()
    } else {
        format!("{} {}", obj.kind, obj.metadata.name)
    }
}

// ---------------------------------------------------------------- failures

/// An error inside one object: the field's path and what is wrong.
#[derive(Debug)]
struct Failure {
    path: String,
    message: String,
}

type Res<T = ()> = Result<T, Failure>;

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Res<T> {
    Err(Failure {
        path: path.into(),
        message: message.into(),
    })
}

/// Appends a map key to a path: `a.b`, or `a["app.kubernetes.io/name"]` for
/// keys that are not plain identifiers.
fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// Turns a typed-decoding error into a failure whose path ends at the field.
fn serde_failure(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> Failure {
    let mut path = prefix.to_string();
    let mut last_key: Option<&str> = None;
    for seg in e.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                path = format!("{path}[{index}]");
                last_key = None;
            }
            serde_path_to_error::Segment::Map { key } => {
                path = join(&path, key);
                last_key = Some(key);
            }
            serde_path_to_error::Segment::Enum { .. } => {}
            serde_path_to_error::Segment::Unknown => {
                path = join(&path, "?");
                last_key = None;
            }
        }
    }
    let inner = e.inner().to_string();
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        if last_key != Some(field) {
            path = join(&path, field);
        }
        let mut message = "unknown field".to_string();
        if let Some(s) = suggestion(field, &backticked(expected)) {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
        return Failure { path, message };
    }
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return Failure {
            path: join(&path, field),
            message: "missing required field".to_string(),
        };
    }
    Failure {
        path,
        message: inner,
    }
}

/// The names between backticks in serde's "expected one of `a`, `b`".
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The closest candidate to a misspelt name, if one is close enough.
fn suggestion<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn decode<T: DeserializeOwned>(body: Map<String, Value>) -> Res<T> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| serde_failure("", e))
}

fn encode<T: Serialize>(body: &T) -> Res<Map<String, Value>> {
    match serde_json::to_value(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => fail(
            "",
            "internal error: the body did not serialise to a mapping",
        ),
        Err(e) => fail("", format!("internal error: {e}")),
    }
}

/// Collects warnings for fields that are accepted but not acted on yet.
#[derive(Default)]
struct Checker {
    warnings: Vec<String>,
}

impl Checker {
    fn not_acted_on(&mut self, path: &str) {
        self.warnings
            .push(format!("{path}: accepted but not acted on yet"));
    }

    fn warn(&mut self, path: &str, message: &str) {
        self.warnings.push(format!("{path}: {message}"));
    }
}

// ---------------------------------------------------------------- envelope

fn supported_kinds() -> String {
    Kind::ALL
        .iter()
        .filter(|k| k.user_writable())
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds and validates an object from one document; on error also returns
/// the `Kind name` label when it could be read.
fn object_from_value(value: Value) -> Result<(Object, Vec<String>), (Option<String>, Failure)> {
    let Value::Object(mut map) = value else {
        let found = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "a mapping",
        };
        return Err((
            None,
            Failure {
                path: String::new(),
                message: format!(
                    "expected a mapping with apiVersion, kind and metadata, found {found}"
                ),
            },
        ));
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind_str = map.get("kind").and_then(Value::as_str).map(str::to_string);
    let label = match (&kind_str, &name) {
        (Some(k), Some(n)) => Some(format!("{k} {n}")),
        (Some(k), None) => Some(k.clone()),
        _ => None,
    };
    let with_label = |f: Failure| (label.clone(), f);

    let kind = take_string(&mut map, "kind").map_err(with_label)?;
    let api_version = take_string(&mut map, "apiVersion").map_err(with_label)?;
    let Some(kind) = kind else {
        return Err(with_label(Failure {
            path: "kind".into(),
            message: format!(
                "missing: every object needs a kind (shoal supports {})",
                supported_kinds()
            ),
        }));
    };
    let known = check_kind(&kind, api_version.as_deref()).map_err(with_label)?;
    let Some(api_version) = api_version else {
        return Err(with_label(Failure {
            path: "apiVersion".into(),
            message: format!("missing: {kind} needs apiVersion {:?}", known.api_version()),
        }));
    };
    let metadata = match map.remove("metadata") {
        None | Some(Value::Null) => {
            return Err(with_label(Failure {
                path: "metadata.name".into(),
                message: "missing: every object needs metadata with a name".into(),
            }));
        }
        Some(m) => {
            if let Value::Object(fields) = &m {
                unsupported(fields, "metadata", META_UNSUPPORTED).map_err(with_label)?;
            }
            let mut meta = serde_path_to_error::deserialize::<_, ObjectMeta>(m)
                .map_err(|e| with_label(serde_failure("metadata", e)))?;
            if let Some(kind) = Kind::from_manifest(&kind) {
                generate_name(kind, &mut meta).map_err(with_label)?;
            }
            meta
        }
    };
    let mut obj = Object {
        api_version,
        kind,
        metadata,
        body: map,
    };
    let mut ck = Checker::default();
    let (metadata, body) = validate_parts(&obj, &mut ck).map_err(with_label)?;
    obj.metadata = metadata;
    obj.body = body;
    autoscaling::store_as_v2(&mut obj);
    Ok((obj, ck.warnings))
}

/// Removes a string field from the document; `None` when absent or null.
fn take_string(map: &mut Map<String, Value>, field: &str) -> Res<Option<String>> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => fail(field, format!("must be a string, found {other}")),
    }
}

/// Resolves a manifest's `kind`, checking its `apiVersion` when given.
fn check_kind(kind: &str, api_version: Option<&str>) -> Res<Kind> {
    let Some(k) = Kind::from_manifest(kind) else {
        let hint = match Kind::ALL
            .iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(kind))
        {
            Some(k) => format!(" (did you mean {:?}?)", k.as_str()),
            None => String::new(),
        };
        let version = match api_version {
            Some(v) => format!(" (apiVersion {v:?})"),
            None => String::new(),
        };
        return fail(
            "kind",
            format!(
                "unknown kind {kind:?}{version}{hint}: not supported by shoal; supported kinds are {}",
                supported_kinds()
            ),
        );
    };
    if let Some(v) = api_version
        && v != k.api_version()
        && !autoscaling::is_v1(k, v)
    {
        return fail(
            "apiVersion",
            format!(
                "{v:?} is not supported for {kind}: use {:?}",
                k.api_version()
            ),
        );
    }
    if !k.user_writable() {
        return fail("kind", agent_written(k));
    }
    Ok(k)
}

fn agent_written(k: Kind) -> String {
    if k == Kind::Token {
        return "Token objects are made with `shoal token create` (POST /v1/tokens), which \
                returns the secret once; they cannot be applied"
            .into();
    }
    format!(
        "{k} objects are written by shoal itself (agents and controllers) and cannot be applied"
    )
}

/// Validates an object and returns its normalised metadata and canonical body.
fn validate_parts(obj: &Object, ck: &mut Checker) -> Res<(ObjectMeta, Map<String, Value>)> {
    let kind = check_kind(&obj.kind, Some(&obj.api_version))?;
    let mut metadata = obj.metadata.clone();
    meta::check_metadata(kind, kind.namespaced(), &mut metadata)?;
    let mut body = obj.body.clone();
    let status = body.remove("status");
    check_unsupported(kind, &body)?;
    let mut body = match kind {
        Kind::Namespace => encode(&decode::<NamespaceBody>(body)?)?,
        Kind::Pod => {
            let b: PodBody = decode(body)?;
            check_pod_spec(&b.spec, "spec", Kind::Pod, ck)?;
            encode(&b)?
        }
        Kind::Deployment => {
            let b: DeploymentBody = decode(body)?;
            check_deployment(&b.spec, ck)?;
            encode(&b)?
        }
        Kind::Service => {
            let b: ServiceBody = decode(body)?;
            check_service(&b.spec, ck)?;
            encode(&b)?
        }
        Kind::ConfigMap => {
            let b: ConfigMapBody = decode(body)?;
            check_config_map(&b)?;
            encode(&b)?
        }
        Kind::Secret => {
            let mut b: SecretBody = decode(body)?;
            check_secret(&mut b)?;
            encode(&b)?
        }
        Kind::Job => {
            let b: JobBody = decode(body)?;
            check_job(&b.spec, ck)?;
            encode(&b)?
        }
        Kind::ReplicaSet => encode(&check_replica_set(decode(body)?, ck)?)?,
        Kind::CronJob => {
            let b: CronJobBody = decode(body)?;
            check_cron_job(&b, ck)?;
            encode(&b)?
        }
        Kind::DaemonSet => {
            let b: DaemonSetBody = decode(body)?;
            check_daemon_set(&b.spec, ck)?;
            encode(&b)?
        }
        Kind::StatefulSet => {
            let b: crate::resource::types::StatefulSetBody = decode(body)?;
            statefulset::check_stateful_set(&b.spec, ck)?;
            encode(&b)?
        }
        Kind::ServiceAccount => {
            let b = decode(body)?;
            serviceaccount::check_service_account(&b, &metadata, ck)?;
            encode(&b)?
        }
        Kind::Role => {
            let b = decode(body)?;
            rbac::check_role(&b, ck)?;
            encode(&b)?
        }
        Kind::ClusterRole => {
            let b = decode(body)?;
            rbac::check_cluster_role(&b, ck)?;
            encode(&b)?
        }
        Kind::RoleBinding | Kind::ClusterRoleBinding => {
            let b = decode(body)?;
            rbac::check_binding(&b, kind, ck)?;
            encode(&b)?
        }
        Kind::LimitRange => {
            let b = decode(body)?;
            limits::check_limit_range(&b)?;
            encode(&b)?
        }
        Kind::PodDisruptionBudget => {
            let b = decode(body)?;
            disruption::check_disruption_budget(&b, ck)?;
            encode(&b)?
        }
        Kind::Ingress => {
            let b = decode(body)?;
            ingress::check_ingress(&b, &metadata, ck)?;
            encode(&b)?
        }
        Kind::IngressClass => {
            let b = decode(body)?;
            ingress::check_ingress_class(&b, &metadata, ck)?;
            encode(&b)?
        }
        Kind::PersistentVolumeClaim => {
            let b = decode(body)?;
            check_claim(&b)?;
            encode(&b)?
        }
        Kind::PersistentVolume => {
            let b = decode(body)?;
            check_volume(&b, &metadata)?;
            encode(&b)?
        }
        Kind::StorageClass => {
            let mut b = decode(body)?;
            check_storage_class(&mut b, &metadata)?;
            encode(&b)?
        }
        Kind::HorizontalPodAutoscaler => autoscaling::check(&obj.api_version, body)?,
        Kind::PriorityClass => priority::check(&metadata, body)?,
        Kind::ResourceQuota => quota::check(body)?,
        Kind::Node => encode(&decode::<NodeBody>(body)?)?,
        Kind::Event | Kind::ControllerRevision => return fail("kind", agent_written(kind)),
        Kind::Token => return fail("kind", agent_written(kind)),
        Kind::CustomResourceDefinition | Kind::CustomObject => crds::check(kind, &metadata, body)?,
    };
    if let Some(status) = status {
        body.insert("status".into(), status);
    }
    Ok((metadata, body))
}

// ---------------------------------------------------------------- names

const DNS_LABEL_RULE: &str = "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const DNS_1035_RULE: &str = "a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
const REPLICASET_RULE: &str = "a DNS-1123 label of at most 57 characters (lowercase letters, digits and '-', starting and ending with a letter or digit), so its pods' names (NAME-xxxxx) fit";
const CRONJOB_RULE: &str = "a DNS-1123 label of at most 52 characters (lowercase letters, digits and '-', starting and ending with a letter or digit), so its Jobs' names fit";
const DAEMONSET_RULE: &str = "a DNS-1123 label of at most 57 characters (lowercase letters, digits and '-', starting and ending with a letter or digit), so its pods' names (NAME-xxxxx) fit";
const STATEFULSET_RULE: &str = "a DNS-1123 label of at most 52 characters (lowercase letters, digits and '-', starting and ending with a letter or digit), so its revisions' names (NAME-xxxxxxxxxx) fit";
const DNS_SUBDOMAIN_RULE: &str = "a DNS-1123 subdomain: at most 253 characters, dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit";

fn check_dns_label(path: &str, s: &str) -> Res {
    if is_dns_label(s) {
        Ok(())
    } else {
        fail(
            path,
            format!("{s:?} is not valid: it must be {DNS_LABEL_RULE}"),
        )
    }
}

fn check_dns_subdomain(path: &str, s: &str) -> Res {
    if is_dns_subdomain(s) {
        Ok(())
    } else {
        fail(
            path,
            format!("{s:?} is not valid: it must be {DNS_SUBDOMAIN_RULE}"),
        )
    }
}

/// The rule for each kind's names. Pods, Deployments and Jobs are labels
/// because their names become host names and label values; Services are
/// DNS-1035 labels because they become DNS names (`NAME.NAMESPACE.svc.shoal`).
fn check_object_name(kind: Kind, name: &str) -> Res {
    let (ok, rule) = match kind {
        Kind::Namespace | Kind::Pod | Kind::Deployment | Kind::Job => {
            (is_dns_label(name), DNS_LABEL_RULE)
        }
        Kind::Service => (is_dns_1035_label(name), DNS_1035_RULE),
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => (
            rbac::is_path_segment_name(name),
            "a path segment name: at most 253 characters, not \".\" or \"..\", without '/' or '%'",
        ),
        // Its pods are named NAME-xxxxx, which must still be a label.
        Kind::ReplicaSet => (is_dns_label(name) && name.len() <= 57, REPLICASET_RULE),
        // Its Jobs are named `{name}-{minutes}`, which must stay a label.
        Kind::CronJob => (is_dns_label(name) && name.len() <= 52, CRONJOB_RULE),
        // Its pods are named NAME-xxxxx too.
        Kind::DaemonSet => (is_dns_label(name) && name.len() <= 57, DAEMONSET_RULE),
        // Its revisions are named NAME-<10 hex digits>, its pods NAME-ORDINAL.
        Kind::StatefulSet => (is_dns_label(name) && name.len() <= 52, STATEFULSET_RULE),
        Kind::ConfigMap
        | Kind::Secret
        | Kind::Node
        | Kind::Event
        | Kind::Token
        | Kind::ControllerRevision
        | Kind::PersistentVolumeClaim
        | Kind::PersistentVolume
        | Kind::StorageClass
        | Kind::ServiceAccount
        | Kind::PodDisruptionBudget
        | Kind::LimitRange
        | Kind::HorizontalPodAutoscaler
        | Kind::Ingress
        | Kind::IngressClass
        | Kind::PriorityClass
        | Kind::ResourceQuota
        | Kind::CustomResourceDefinition
        | Kind::CustomObject => (is_dns_subdomain(name), DNS_SUBDOMAIN_RULE),
    };
    if ok {
        Ok(())
    } else {
        fail(
            "metadata.name",
            format!("{name:?} is not a valid {kind} name: it must be {rule}"),
        )
    }
}

/// Kubernetes' "name" part of a qualified name or label value.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn check_qualified_name(path: &str, key: &str) -> Res {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return fail(
            path,
            format!("invalid key {key:?}: the prefix before '/' must be {DNS_SUBDOMAIN_RULE}"),
        );
    }
    if !is_label_name(name) {
        return fail(
            path,
            format!(
                "invalid key {key:?}: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (with an optional DNS prefix and '/')"
            ),
        );
    }
    Ok(())
}

fn check_label_value(path: &str, value: &str) -> Res {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        fail(
            path,
            format!(
                "invalid label value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ),
        )
    }
}

fn check_labels(path: &str, labels: &BTreeMap<String, String>) -> Res {
    for (k, v) in labels {
        let p = join(path, k);
        check_qualified_name(&p, k)?;
        check_label_value(&p, v)?;
    }
    Ok(())
}

fn check_annotations(path: &str, annotations: &BTreeMap<String, String>) -> Res {
    let mut size = 0;
    for (k, v) in annotations {
        check_qualified_name(&join(path, k), k)?;
        size += k.len() + v.len();
    }
    if size > 256 * 1024 {
        return fail(path, "total size must be at most 256 KiB");
    }
    Ok(())
}

/// IANA service name, the form of named ports.
fn check_port_name(path: &str, s: &str) -> Res {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        fail(
            path,
            format!(
                "{s:?} is not a valid port name: at most 15 lowercase letters, digits and '-', with at least one letter"
            ),
        )
    }
}

/// A key of a ConfigMap or Secret (it becomes a file name).
fn check_config_key(path: &str, key: &str) -> Res {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        fail(
            path,
            format!("invalid key {key:?}: at most 253 letters, digits, '-', '_' or '.'"),
        )
    }
}

/// Characters of a generated name's suffix, as Kubernetes' (no vowels, so
/// no words; no look-alikes).
const GENERATED_SUFFIX: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// With `generateName` and no name, names the object: the prefix (cut so
/// the name fits the kind's rule) and five random characters, as the
/// Kubernetes API server does on create. Each apply of such a document
/// makes a new object, as `kubectl create` does.
fn generate_name(kind: Kind, meta: &mut ObjectMeta) -> Res {
    let Some(prefix) = meta.generate_name.clone() else {
        return Ok(());
    };
    if !meta.name.is_empty() {
        return Ok(());
    }
    let max = match kind {
        Kind::ReplicaSet | Kind::DaemonSet => 57,
        Kind::CronJob | Kind::StatefulSet => 52,
        Kind::Namespace | Kind::Pod | Kind::Deployment | Kind::Job | Kind::Service => 63,
        _ => 253,
    };
    let keep = prefix.len().min(max - 5);
    let mut name: String = prefix.chars().take(keep).collect();
    for _ in 0..5 {
        let i = rand::random::<u32>() as usize % GENERATED_SUFFIX.len();
        name.push(GENERATED_SUFFIX[i] as char);
    }
    check_object_name(kind, &name).map_err(|f| Failure {
        path: "metadata.generateName".into(),
        message: format!("{prefix:?} cannot start a valid name: {}", f.message),
    })?;
    meta.name = name;
    Ok(())
}

#[cfg(test)]
mod tests;
