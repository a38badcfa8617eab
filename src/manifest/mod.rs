//! Manifest parsing and validation: YAML documents in Kubernetes' shape become
//! canonical [`Object`]s, or an error that names the document and the field.
//!
//! Each document is read into JSON, checked for Kubernetes fields shoal does
//! not support (so those get a clearer error than "unknown field"), decoded
//! through the typed bodies of [`crate::resource::types`] (unknown fields and
//! wrong types are errors with their path), checked semantically, and
//! re-serialised from the typed body so that what is stored is canonical.
//! `status` is free-form and never validated.

mod image;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::resource::types::{
    ConfigMapBody, Container, DeploymentBody, DeploymentSpec, IntOrString, JobBody, JobSpec,
    KeyToPath, LabelSelector, NamespaceBody, NodeBody, PodBody, PodSpec, PodTemplateSpec, Probe,
    Protocol, RestartPolicy, SecretBody, SelectorOperator, ServiceBody, ServiceSpec, ServiceType,
    StrategyType, decode_base64, encode_base64, parse_cpu_millis, parse_memory_bytes,
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
}

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
}

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
/// validated, canonical objects. Empty documents are skipped; the first
/// invalid document fails the whole file.
pub fn parse_manifests(text: &str) -> Result<Parsed, ManifestError> {
    // Kubernetes reads YAML 1.1: `0644` is octal (file modes), `yes` a boolean.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let mut seen: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    let docs = serde_saphyr::read_with_options::<_, Value>(&mut reader, options);
    for (i, doc) in docs.enumerate() {
        let n = i + 1;
        let value = doc.map_err(|e| ManifestError::Yaml {
            doc: n,
            message: yaml_message(&e.to_string()),
        })?;
        let (obj, obj_warnings) =
            object_from_value(value).map_err(|(object, f)| ManifestError::Invalid {
                doc: Some(n),
                object,
                path: f.path,
                message: f.message,
            })?;
        let label = object_label(&obj);
        warnings.extend(
            obj_warnings
                .into_iter()
                .map(|w| format!("document {n} ({label}): {w}")),
        );
        if let Some(key) = obj.key()
            && let Some(first) = seen.insert(key.clone(), n)
        {
            return Err(ManifestError::Duplicate {
                doc: n,
                first,
                object: key.to_string(),
            });
        }
        objects.push(obj);
    }
    if objects.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(Parsed { objects, warnings })
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
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
            serde_path_to_error::deserialize::<_, ObjectMeta>(m)
                .map_err(|e| with_label(serde_failure("metadata", e)))?
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
    format!(
        "{k} objects are written by shoal itself (agents and controllers) and cannot be applied"
    )
}

/// Validates an object and returns its normalised metadata and canonical body.
fn validate_parts(obj: &Object, ck: &mut Checker) -> Res<(ObjectMeta, Map<String, Value>)> {
    let kind = check_kind(&obj.kind, Some(&obj.api_version))?;
    let mut metadata = obj.metadata.clone();
    check_metadata(kind, &mut metadata)?;
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
        Kind::Node => encode(&decode::<NodeBody>(body)?)?,
        Kind::Event | Kind::ReplicaSet => return fail("kind", agent_written(kind)),
    };
    if let Some(status) = status {
        body.insert("status".into(), status);
    }
    Ok((metadata, body))
}

// ---------------------------------------------------------------- unsupported fields

/// Kubernetes fields outside shoal's subset, per place. They are refused with
/// "field not supported by shoal" rather than the generic "unknown field".
const META_UNSUPPORTED: &[&str] = &[
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "managedFields",
    "ownerReferences",
    "selfLink",
];
const TEMPLATE_META_UNSUPPORTED: &[&str] = &[
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];
const POD_SPEC_UNSUPPORTED: &[&str] = &[
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "imagePullSecrets",
    "initContainers",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "tolerations",
    "topologySpreadConstraints",
];
const CONTAINER_UNSUPPORTED: &[&str] = &[
    "lifecycle",
    "resizePolicy",
    "restartPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
];
const CONTAINER_PORT_UNSUPPORTED: &[&str] = &["hostIP"];
const ENV_SOURCE_UNSUPPORTED: &[&str] = &["fieldRef", "fileKeyRef", "resourceFieldRef"];
const RESOURCES_UNSUPPORTED: &[&str] = &["claims"];
const PROBE_UNSUPPORTED: &[&str] = &["grpc", "terminationGracePeriodSeconds"];
const VOLUME_MOUNT_UNSUPPORTED: &[&str] = &["mountPropagation", "recursiveReadOnly", "subPathExpr"];
const VOLUME_UNSUPPORTED: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "downwardAPI",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];
const SERVICE_SPEC_UNSUPPORTED: &[&str] = &[
    "allocateLoadBalancerNodePorts",
    "clusterIPs",
    "externalIPs",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "publishNotReadyAddresses",
    "sessionAffinity",
    "sessionAffinityConfig",
    "trafficDistribution",
];
const SERVICE_PORT_UNSUPPORTED: &[&str] = &["appProtocol"];
const JOB_SPEC_UNSUPPORTED: &[&str] = &[
    "backoffLimitPerIndex",
    "completionMode",
    "managedBy",
    "manualSelector",
    "maxFailedIndexes",
    "podFailurePolicy",
    "podReplacementPolicy",
    "selector",
    "successPolicy",
    "suspend",
];
const NAMESPACE_SPEC_UNSUPPORTED: &[&str] = &["finalizers"];

fn unsupported(map: &Map<String, Value>, path: &str, fields: &[&str]) -> Res {
    match map.keys().find(|k| fields.contains(&k.as_str())) {
        Some(k) => fail(join(path, k), "field not supported by shoal"),
        None => Ok(()),
    }
}

/// The mapping at `map[key]`, if it is one (wrong types are left to decoding).
fn sub<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

/// The mappings in the list at `map[key]`, with their indices.
fn items<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = (usize, &'a Map<String, Value>)> {
    map.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|m| (i, m)))
}

/// Walks the raw body where Kubernetes has fields shoal lacks.
fn check_unsupported(kind: Kind, body: &Map<String, Value>) -> Res {
    let Some(spec) = sub(body, "spec") else {
        return Ok(());
    };
    match kind {
        Kind::Namespace => unsupported(spec, "spec", NAMESPACE_SPEC_UNSUPPORTED),
        Kind::Pod => unsupported_pod_spec(spec, "spec"),
        Kind::Deployment => unsupported_template(spec, "spec.template"),
        Kind::Job => {
            unsupported(spec, "spec", JOB_SPEC_UNSUPPORTED)?;
            unsupported_template(spec, "spec.template")
        }
        Kind::Service => {
            unsupported(spec, "spec", SERVICE_SPEC_UNSUPPORTED)?;
            for (i, port) in items(spec, "ports") {
                unsupported(port, &format!("spec.ports[{i}]"), SERVICE_PORT_UNSUPPORTED)?;
            }
            Ok(())
        }
        Kind::ConfigMap | Kind::Secret | Kind::Node | Kind::Event | Kind::ReplicaSet => Ok(()),
    }
}

fn unsupported_template(spec: &Map<String, Value>, path: &str) -> Res {
    let Some(template) = sub(spec, "template") else {
        return Ok(());
    };
    if let Some(meta) = sub(template, "metadata") {
        unsupported(meta, &join(path, "metadata"), TEMPLATE_META_UNSUPPORTED)?;
    }
    match sub(template, "spec") {
        Some(pod) => unsupported_pod_spec(pod, &join(path, "spec")),
        None => Ok(()),
    }
}

fn unsupported_pod_spec(spec: &Map<String, Value>, path: &str) -> Res {
    unsupported(spec, path, POD_SPEC_UNSUPPORTED)?;
    for (i, c) in items(spec, "containers") {
        let cp = format!("{path}.containers[{i}]");
        unsupported(c, &cp, CONTAINER_UNSUPPORTED)?;
        for (j, port) in items(c, "ports") {
            unsupported(
                port,
                &format!("{cp}.ports[{j}]"),
                CONTAINER_PORT_UNSUPPORTED,
            )?;
        }
        for (j, env) in items(c, "env") {
            if let Some(from) = sub(env, "valueFrom") {
                unsupported(
                    from,
                    &format!("{cp}.env[{j}].valueFrom"),
                    ENV_SOURCE_UNSUPPORTED,
                )?;
            }
        }
        if let Some(r) = sub(c, "resources") {
            unsupported(r, &format!("{cp}.resources"), RESOURCES_UNSUPPORTED)?;
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(p) = sub(c, probe) {
                unsupported(p, &format!("{cp}.{probe}"), PROBE_UNSUPPORTED)?;
            }
        }
        for (j, m) in items(c, "volumeMounts") {
            unsupported(
                m,
                &format!("{cp}.volumeMounts[{j}]"),
                VOLUME_MOUNT_UNSUPPORTED,
            )?;
        }
    }
    for (i, v) in items(spec, "volumes") {
        unsupported(v, &format!("{path}.volumes[{i}]"), VOLUME_UNSUPPORTED)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- names

const DNS_LABEL_RULE: &str = "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const DNS_1035_RULE: &str = "a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
const DNS_SUBDOMAIN_RULE: &str = "a DNS-1123 subdomain: at most 253 characters, dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit";

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns_1035_label(s: &str) -> bool {
    is_dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

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
        Kind::ConfigMap | Kind::Secret | Kind::Node | Kind::Event | Kind::ReplicaSet => {
            (is_dns_subdomain(name), DNS_SUBDOMAIN_RULE)
        }
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

fn check_metadata(kind: Kind, meta: &mut ObjectMeta) -> Res {
    if meta.name.is_empty() {
        return fail("metadata.name", "missing: every object needs a name");
    }
    check_object_name(kind, &meta.name)?;
    if kind.namespaced() {
        match meta.namespace.as_deref() {
            None | Some("") => meta.namespace = Some(DEFAULT_NAMESPACE.to_string()),
            Some(ns) => check_dns_label("metadata.namespace", ns)?,
        }
    } else {
        meta.namespace = None;
    }
    check_labels("metadata.labels", &meta.labels)?;
    check_annotations("metadata.annotations", &meta.annotations)
}

// ---------------------------------------------------------------- pods

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn check_pod_spec(spec: &PodSpec, path: &str, owner: Kind, ck: &mut Checker) -> Res {
    if spec.containers.is_empty() {
        return fail(
            format!("{path}.containers"),
            "at least one container is required",
        );
    }
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        check_dns_label(&format!("{vp}.name"), &v.name)?;
        if !volumes.insert(v.name.as_str()) {
            return fail(
                format!("{vp}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        let sources = [
            v.host_path.is_some(),
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if sources != 1 {
            let what = if sources == 0 { "no" } else { "more than one" };
            return fail(
                vp,
                format!(
                    "{what} volume source: set exactly one of hostPath, emptyDir, configMap or secret"
                ),
            );
        }
        if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return fail(format!("{vp}.hostPath.path"), "must be an absolute path");
            }
            if let Some(t) = &h.path_type {
                if !HOST_PATH_TYPES.contains(&t.as_str()) {
                    return fail(
                        format!("{vp}.hostPath.type"),
                        format!(
                            "unknown type {t:?}: expected one of {}",
                            HOST_PATH_TYPES[1..].join(", ")
                        ),
                    );
                }
                ck.not_acted_on(&format!("{vp}.hostPath.type"));
            }
        }
        if let Some(e) = &v.empty_dir {
            if let Some(m) = &e.medium {
                if !m.is_empty() && m != "Memory" {
                    return fail(
                        format!("{vp}.emptyDir.medium"),
                        format!("unknown medium {m:?}: expected \"\" or \"Memory\""),
                    );
                }
                ck.not_acted_on(&format!("{vp}.emptyDir.medium"));
            }
            if let Some(q) = &e.size_limit {
                let p = format!("{vp}.emptyDir.sizeLimit");
                q.memory_bytes().or_else(|e| fail(&p, e.to_string()))?;
                ck.not_acted_on(&p);
            }
        }
        if let Some(c) = &v.config_map {
            check_dns_subdomain(&format!("{vp}.configMap.name"), &c.name)?;
            check_key_paths(&format!("{vp}.configMap"), &c.items, c.default_mode)?;
        }
        if let Some(s) = &v.secret {
            check_dns_subdomain(&format!("{vp}.secret.secretName"), &s.secret_name)?;
            check_key_paths(&format!("{vp}.secret"), &s.items, s.default_mode)?;
        }
    }

    let mut names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        check_dns_label(&format!("{cp}.name"), &c.name)?;
        if !names.insert(c.name.as_str()) {
            return fail(
                format!("{cp}.name"),
                format!("duplicate container name {:?}", c.name),
            );
        }
        for (j, port) in c.ports.iter().enumerate() {
            let pp = format!("{cp}.ports[{j}]");
            if port.container_port == 0 {
                return fail(format!("{pp}.containerPort"), "must be between 1 and 65535");
            }
            if let Some(name) = &port.name {
                check_port_name(&format!("{pp}.name"), name)?;
                if !port_names.insert(name.as_str()) {
                    return fail(
                        format!("{pp}.name"),
                        format!("duplicate port name {name:?} in this pod"),
                    );
                }
            }
            let proto = port.protocol.unwrap_or_default();
            if let Some(hp) = port.host_port.filter(|hp| *hp != 0)
                && !host_ports.insert((hp, protocol_name(proto)))
            {
                return fail(
                    format!("{pp}.hostPort"),
                    format!(
                        "host port {hp}/{} is used twice in this pod",
                        protocol_name(proto)
                    ),
                );
            }
        }
        check_container(c, &cp, &volumes, ck)?;
    }

    let rp_path = format!("{path}.restartPolicy");
    match (owner, spec.restart_policy) {
        (Kind::Deployment, Some(rp)) if rp != RestartPolicy::Always => {
            return fail(
                rp_path,
                format!("{rp:?} is not allowed in a Deployment: only Always"),
            );
        }
        (Kind::Job, None) => {
            return fail(
                rp_path,
                "missing: a Job's pod template needs restartPolicy OnFailure or Never",
            );
        }
        (Kind::Job, Some(RestartPolicy::Always)) => {
            return fail(
                rp_path,
                "Always is not allowed in a Job: use OnFailure or Never",
            );
        }
        _ => {}
    }
    if spec.node_name.as_deref() == Some("") {
        return fail(format!("{path}.nodeName"), "must not be empty when given");
    }
    check_labels(&format!("{path}.nodeSelector"), &spec.node_selector)
}

fn check_key_paths(path: &str, items: &[KeyToPath], default_mode: Option<u32>) -> Res {
    if let Some(m) = default_mode {
        check_mode(&format!("{path}.defaultMode"), m)?;
    }
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{path}.items[{i}]");
        check_config_key(&format!("{ip}.key"), &item.key)?;
        check_relative_path(&format!("{ip}.path"), &item.path)?;
        if let Some(m) = item.mode {
            check_mode(&format!("{ip}.mode"), m)?;
        }
    }
    Ok(())
}

fn check_mode(path: &str, mode: u32) -> Res {
    if mode > 0o777 {
        return fail(
            path,
            format!("{mode} is not a file mode: must be between 0 and 0777 (511)"),
        );
    }
    Ok(())
}

fn check_relative_path(path: &str, p: &str) -> Res {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|part| part == "..") {
        return fail(path, format!("{p:?} must be a relative path without '..'"));
    }
    Ok(())
}

fn check_container(c: &Container, cp: &str, volumes: &BTreeSet<&str>, ck: &mut Checker) -> Res {
    if c.image.trim().is_empty() {
        return fail(
            format!("{cp}.image"),
            "missing: every container needs an image",
        );
    }
    if c.image.chars().any(char::is_whitespace) {
        return fail(
            format!("{cp}.image"),
            format!("{:?} must not contain whitespace", c.image),
        );
    }
    if let Some(dir) = &c.working_dir
        && (!dir.starts_with('/') || dir.split('/').any(|part| part == ".."))
    {
        return fail(
            format!("{cp}.workingDir"),
            format!("{dir:?} must be an absolute path without '..'"),
        );
    }
    if let Err(why) = check_image_reference(&c.image) {
        return fail(
            format!("{cp}.image"),
            format!("{:?} is not a valid image reference: {why}", c.image),
        );
    }

    for (j, e) in c.env.iter().enumerate() {
        let ep = format!("{cp}.env[{j}]");
        if e.name.is_empty()
            || e.name.contains('=')
            || !e.name.bytes().all(|b| b.is_ascii_graphic())
        {
            return fail(
                format!("{ep}.name"),
                format!(
                    "{:?} is not a valid variable name: printable characters other than '=' and spaces",
                    e.name
                ),
            );
        }
        if let Some(from) = &e.value_from {
            if e.value.is_some() {
                return fail(
                    format!("{ep}.valueFrom"),
                    "may not be set together with value",
                );
            }
            let refs = [&from.config_map_key_ref, &from.secret_key_ref];
            match refs.iter().filter(|r| r.is_some()).count() {
                0 => {
                    return fail(
                        format!("{ep}.valueFrom"),
                        "set configMapKeyRef or secretKeyRef",
                    );
                }
                1 => {}
                _ => {
                    return fail(
                        format!("{ep}.valueFrom"),
                        "set only one of configMapKeyRef and secretKeyRef",
                    );
                }
            }
            for (field, r) in [
                ("configMapKeyRef", &from.config_map_key_ref),
                ("secretKeyRef", &from.secret_key_ref),
            ] {
                if let Some(r) = r {
                    let rp = format!("{ep}.valueFrom.{field}");
                    check_dns_subdomain(&format!("{rp}.name"), &r.name)?;
                    check_config_key(&format!("{rp}.key"), &r.key)?;
                }
            }
        }
    }
    for (j, e) in c.env_from.iter().enumerate() {
        let ep = format!("{cp}.envFrom[{j}]");
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), None) => check_dns_subdomain(&format!("{ep}.configMapRef.name"), &r.name)?,
            (None, Some(r)) => check_dns_subdomain(&format!("{ep}.secretRef.name"), &r.name)?,
            _ => {
                return fail(ep, "set exactly one of configMapRef and secretRef");
            }
        }
    }

    if let Some(r) = &c.resources {
        let rp = format!("{cp}.resources");
        for (section, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in map {
                let qp = join(&format!("{rp}.{section}"), name);
                match name.as_str() {
                    "cpu" => parse_cpu_millis(q.as_str()).map(|_| ()),
                    "memory" => parse_memory_bytes(q.as_str()).map(|_| ()),
                    _ => {
                        return fail(qp, "resource not supported by shoal (only cpu and memory)");
                    }
                }
                .or_else(|e| fail(&qp, e.to_string()))?;
            }
        }
        for name in ["cpu", "memory"] {
            if let (Some(req), Some(lim)) = (r.requests.get(name), r.limits.get(name)) {
                let parse = if name == "cpu" {
                    parse_cpu_millis
                } else {
                    parse_memory_bytes
                };
                if parse(req.as_str()).ok() > parse(lim.as_str()).ok() {
                    return fail(
                        format!("{rp}.requests.{name}"),
                        format!("request {req} must not exceed the limit {lim}"),
                    );
                }
            }
        }
    }

    let port_names: BTreeSet<&str> = c.ports.iter().filter_map(|p| p.name.as_deref()).collect();
    for (field, probe, single_success) in [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ] {
        if let Some(p) = probe {
            check_probe(p, &format!("{cp}.{field}"), &port_names, single_success)?;
        }
    }

    let mut mount_paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        if !volumes.contains(m.name.as_str()) {
            return fail(
                format!("{mp}.name"),
                format!("no volume named {:?} in the pod's volumes", m.name),
            );
        }
        if !m.mount_path.starts_with('/') {
            return fail(format!("{mp}.mountPath"), "must be an absolute path");
        }
        if !mount_paths.insert(m.mount_path.trim_end_matches('/')) {
            return fail(
                format!("{mp}.mountPath"),
                format!("{:?} is mounted twice in this container", m.mount_path),
            );
        }
        if let Some(sp) = &m.sub_path {
            check_relative_path(&format!("{mp}.subPath"), sp)?;
        }
    }

    if c.image_pull_policy.is_some() {
        ck.not_acted_on(&format!("{cp}.imagePullPolicy"));
    }
    Ok(())
}

fn check_probe(p: &Probe, path: &str, port_names: &BTreeSet<&str>, single_success: bool) -> Res {
    let handlers = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
    ]
    .into_iter()
    .filter(|h| *h)
    .count();
    if handlers != 1 {
        let what = if handlers == 0 { "no" } else { "more than one" };
        return fail(
            path,
            format!("{what} handler: set exactly one of httpGet, tcpSocket or exec"),
        );
    }
    if let Some(h) = &p.http_get {
        check_probe_port(&format!("{path}.httpGet.port"), &h.port, port_names)?;
        for (i, header) in h.http_headers.iter().enumerate() {
            if header.name.is_empty() || !header.name.bytes().all(|b| b.is_ascii_graphic()) {
                return fail(
                    format!("{path}.httpGet.httpHeaders[{i}].name"),
                    format!("{:?} is not a valid header name", header.name),
                );
            }
        }
    }
    if let Some(t) = &p.tcp_socket {
        check_probe_port(&format!("{path}.tcpSocket.port"), &t.port, port_names)?;
    }
    if let Some(e) = &p.exec
        && e.command.is_empty()
    {
        return fail(format!("{path}.exec.command"), "must not be empty");
    }
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("failureThreshold", p.failure_threshold),
        ("successThreshold", p.success_threshold),
    ] {
        if v == Some(0) {
            return fail(format!("{path}.{field}"), "must be at least 1");
        }
    }
    if single_success && p.success_threshold.is_some_and(|s| s != 1) {
        return fail(
            format!("{path}.successThreshold"),
            "must be 1 for liveness and startup probes",
        );
    }
    Ok(())
}

fn check_port_number(path: &str, port: &IntOrString) -> Res {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(()),
        IntOrString::Int(n) => fail(path, format!("{n} must be between 1 and 65535")),
        IntOrString::String(s) => check_port_name(path, s),
    }
}

fn check_probe_port(path: &str, port: &IntOrString, port_names: &BTreeSet<&str>) -> Res {
    check_port_number(path, port)?;
    match port {
        IntOrString::String(s) if !port_names.contains(s.as_str()) => fail(
            path,
            format!("no port named {s:?} in this container's ports"),
        ),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- workloads

fn check_template_metadata(t: &PodTemplateSpec, path: &str) -> Res {
    if let Some(m) = &t.metadata {
        check_labels(&format!("{path}.metadata.labels"), &m.labels)?;
        check_annotations(&format!("{path}.metadata.annotations"), &m.annotations)?;
    }
    Ok(())
}

fn check_selector(sel: &LabelSelector, path: &str) -> Res {
    check_labels(&format!("{path}.matchLabels"), &sel.match_labels)?;
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let rp = format!("{path}.matchExpressions[{i}]");
        check_qualified_name(&format!("{rp}.key"), &r.key)?;
        match r.operator {
            SelectorOperator::In | SelectorOperator::NotIn => {
                if r.values.is_empty() {
                    return fail(
                        format!("{rp}.values"),
                        format!("must not be empty for operator {:?}", r.operator),
                    );
                }
                for (j, v) in r.values.iter().enumerate() {
                    check_label_value(&format!("{rp}.values[{j}]"), v)?;
                }
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist => {
                if !r.values.is_empty() {
                    return fail(
                        format!("{rp}.values"),
                        format!("must be empty for operator {:?}", r.operator),
                    );
                }
            }
        }
    }
    Ok(())
}

fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn is_zero(v: &IntOrString) -> bool {
    matches!(v, IntOrString::Int(0)) || matches!(v, IntOrString::String(s) if s == "0%")
}

/// A count (>= 0) or a whole percentage; `max_percent` bounds percentages.
fn check_count_or_percent(path: &str, v: &IntOrString, max_percent: Option<u64>) -> Res {
    match v {
        IntOrString::Int(n) if *n < 0 => fail(path, format!("{n} must not be negative")),
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(s) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok());
            match pct {
                None => fail(
                    path,
                    format!("{s:?} must be a whole number or a percentage such as \"25%\""),
                ),
                Some(p) if max_percent.is_some_and(|m| p > m) => {
                    fail(path, format!("{s:?} must be at most 100%"))
                }
                Some(_) => Ok(()),
            }
        }
    }
}

/// Kubernetes' `replicas` is an int32.
const MAX_REPLICAS: u32 = i32::MAX as u32;

fn check_deployment(spec: &DeploymentSpec, ck: &mut Checker) -> Res {
    if let Some(r) = spec.replicas
        && r > MAX_REPLICAS
    {
        return fail(
            "spec.replicas",
            format!("{r} is over {MAX_REPLICAS}, the largest a Kubernetes int32 holds"),
        );
    }
    check_selector(&spec.selector, "spec.selector")?;
    if spec.selector.is_empty() {
        return fail(
            "spec.selector",
            "empty: set matchLabels or matchExpressions (an empty selector would select every pod)",
        );
    }
    check_template_metadata(&spec.template, "spec.template")?;
    let labels = spec.template.labels();
    if labels.is_empty() {
        return fail(
            "spec.template.metadata.labels",
            "missing: the pod template needs labels that spec.selector matches",
        );
    }
    if !spec.selector.matches(&labels) {
        return fail(
            "spec.selector",
            format!("does not match template labels {}", format_labels(&labels)),
        );
    }
    if let Some(st) = &spec.strategy
        && let Some(ru) = &st.rolling_update
    {
        let rp = "spec.strategy.rollingUpdate";
        if st.strategy_type == Some(StrategyType::Recreate) {
            return fail(rp, "may not be set when type is Recreate");
        }
        if let Some(v) = &ru.max_surge {
            check_count_or_percent(&format!("{rp}.maxSurge"), v, None)?;
        }
        if let Some(v) = &ru.max_unavailable {
            check_count_or_percent(&format!("{rp}.maxUnavailable"), v, Some(100))?;
        }
        if ru.max_surge.as_ref().is_some_and(is_zero)
            && ru.max_unavailable.as_ref().is_some_and(is_zero)
        {
            return fail(
                format!("{rp}.maxUnavailable"),
                "may not be 0 when maxSurge is 0",
            );
        }
    }
    if let Some(pd) = spec.progress_deadline_seconds {
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if pd <= min_ready {
            return fail(
                "spec.progressDeadlineSeconds",
                format!("must be greater than minReadySeconds ({min_ready})"),
            );
        }
    }
    check_pod_spec(
        &spec.template.spec,
        "spec.template.spec",
        Kind::Deployment,
        ck,
    )
}

fn check_job(spec: &JobSpec, ck: &mut Checker) -> Res {
    if spec.active_deadline_seconds == Some(0) {
        return fail("spec.activeDeadlineSeconds", "must be at least 1");
    }
    check_template_metadata(&spec.template, "spec.template")?;
    check_pod_spec(&spec.template.spec, "spec.template.spec", Kind::Job, ck)
}

// ---------------------------------------------------------------- services, config

fn check_service(spec: &ServiceSpec, ck: &mut Checker) -> Res {
    check_labels("spec.selector", &spec.selector)?;
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if spec.ports.is_empty() && !headless {
        return fail("spec.ports", "at least one port is required");
    }
    let exposed = matches!(
        spec.service_type,
        Some(ServiceType::NodePort | ServiceType::LoadBalancer)
    );
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if port.port == 0 {
            return fail(format!("{pp}.port"), "must be between 1 and 65535");
        }
        match &port.name {
            Some(n) => {
                check_dns_label(&format!("{pp}.name"), n)?;
                if !names.insert(n.as_str()) {
                    return fail(format!("{pp}.name"), format!("duplicate port name {n:?}"));
                }
            }
            None if spec.ports.len() > 1 => {
                return fail(
                    format!("{pp}.name"),
                    "missing: required when the service has more than one port",
                );
            }
            None => {}
        }
        let proto = port.protocol.unwrap_or_default();
        if proto != Protocol::Tcp {
            return fail(
                format!("{pp}.protocol"),
                format!(
                    "{} is not supported: shoal's service proxy carries TCP only",
                    protocol_name(proto)
                ),
            );
        }
        if !ports.insert(port.port) {
            return fail(
                format!("{pp}.port"),
                format!("port {} is listed twice", port.port),
            );
        }
        if let Some(t) = &port.target_port {
            check_port_number(&format!("{pp}.targetPort"), t)?;
        }
        if port.node_port.is_some() && !exposed {
            return fail(
                format!("{pp}.nodePort"),
                "may only be set when type is NodePort or LoadBalancer",
            );
        }
    }
    // Friendlier than a refusal: manifests written for clouds keep working,
    // and Kubernetes itself serves a LoadBalancer as NodePort when no
    // provider exists.
    if spec.service_type == Some(ServiceType::LoadBalancer) {
        ck.warn(
            "spec.type",
            "LoadBalancer is served as NodePort (shoal provisions no external load balancer)",
        );
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && ip != "None"
        && ip.parse::<std::net::Ipv4Addr>().is_err()
    {
        return fail(
            "spec.clusterIP",
            format!("{ip:?} is neither an IPv4 address nor \"None\""),
        );
    }
    Ok(())
}

const MAX_DATA_BYTES: usize = 1024 * 1024;

fn check_config_map(cm: &ConfigMapBody) -> Res {
    let mut size = 0;
    for (k, v) in &cm.data {
        check_config_key(&join("data", k), k)?;
        size += k.len() + v.len();
    }
    for (k, v) in &cm.binary_data {
        let p = join("binaryData", k);
        check_config_key(&p, k)?;
        if cm.data.contains_key(k) {
            return fail(p, "the same key is also in data");
        }
        let bytes = decode_base64(v).or_else(|e| fail(&p, e.to_string()))?;
        size += k.len() + bytes.len();
    }
    if size > MAX_DATA_BYTES {
        return fail("data", "data and binaryData together must be at most 1 MiB");
    }
    Ok(())
}

fn check_secret(s: &mut SecretBody) -> Res {
    if s.secret_type.as_deref() == Some("") {
        return fail("type", "must not be empty when given");
    }
    let mut size = 0;
    let mut canonical = BTreeMap::new();
    for (k, v) in &s.data {
        let p = join("data", k);
        check_config_key(&p, k)?;
        let bytes = decode_base64(v).or_else(|e| fail(&p, e.to_string()))?;
        size += k.len() + bytes.len();
        canonical.insert(k.clone(), encode_base64(&bytes));
    }
    for (k, v) in &s.string_data {
        check_config_key(&join("stringData", k), k)?;
        size += k.len() + v.len();
        canonical.insert(k.clone(), encode_base64(v.as_bytes()));
    }
    if size > MAX_DATA_BYTES {
        return fail("data", "data and stringData together must be at most 1 MiB");
    }
    s.data = canonical;
    s.string_data.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::Body;

    const CRONJOB: &str = include_str!("../../tests/fixtures/k8s-examples/cronjob.yaml");
    const EXEC_LIVENESS: &str =
        include_str!("../../tests/fixtures/k8s-examples/exec-liveness.yaml");
    const GUESTBOOK_DEPLOYMENT: &str =
        include_str!("../../tests/fixtures/k8s-examples/guestbook-frontend-deployment.yaml");
    const GUESTBOOK_SERVICE: &str =
        include_str!("../../tests/fixtures/k8s-examples/guestbook-frontend-service.yaml");
    const HPA: &str = include_str!("../../tests/fixtures/k8s-examples/hpa-php-apache.yaml");
    const HTTP_LIVENESS: &str =
        include_str!("../../tests/fixtures/k8s-examples/http-liveness.yaml");
    const JOB: &str = include_str!("../../tests/fixtures/k8s-examples/job.yaml");
    const NGINX: &str = include_str!("../../tests/fixtures/k8s-examples/nginx-deployment.yaml");
    const PHP_APACHE: &str = include_str!("../../tests/fixtures/k8s-examples/php-apache.yaml");
    const TCP_LIVENESS: &str =
        include_str!("../../tests/fixtures/k8s-examples/tcp-liveness-readiness.yaml");

    fn err(text: &str) -> String {
        match parse_manifests(text) {
            Ok(p) => panic!("expected an error, got {:?}", p.objects),
            Err(e) => e.to_string(),
        }
    }

    fn ok(text: &str) -> Parsed {
        match parse_manifests(text) {
            Ok(p) => p,
            Err(e) => panic!("expected success, got: {e}"),
        }
    }

    const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
";

    /// DEPLOYMENT with `from` replaced by `to` (which must occur).
    fn deployment_with(from: &str, to: &str) -> String {
        assert!(DEPLOYMENT.contains(from), "{from:?} not in the template");
        DEPLOYMENT.replacen(from, to, 1)
    }

    #[test]
    fn accepts_the_kubernetes_examples() {
        for (name, text, kinds) in [
            ("exec-liveness", EXEC_LIVENESS, &["Pod"][..]),
            (
                "guestbook-deployment",
                GUESTBOOK_DEPLOYMENT,
                &["Deployment"],
            ),
            ("guestbook-service", GUESTBOOK_SERVICE, &["Service"]),
            ("http-liveness", HTTP_LIVENESS, &["Pod"]),
            ("job", JOB, &["Job"]),
            ("nginx", NGINX, &["Deployment"]),
            ("php-apache", PHP_APACHE, &["Deployment", "Service"]),
            ("tcp-liveness", TCP_LIVENESS, &["Pod"]),
        ] {
            let parsed = parse_manifests(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got: Vec<&str> = parsed.objects.iter().map(|o| o.kind.as_str()).collect();
            assert_eq!(got, kinds, "{name}");
            assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
            for o in &parsed.objects {
                assert_eq!(o.metadata.namespace.as_deref(), Some("default"), "{name}");
            }
        }
    }

    #[test]
    fn example_contents_survive() {
        let p = ok(HTTP_LIVENESS);
        let pod = PodBody::from_object(&p.objects[0]).unwrap();
        let probe = pod.spec.containers[0].liveness_probe.as_ref().unwrap();
        let http = probe.http_get.as_ref().unwrap();
        assert_eq!(http.port, IntOrString::Int(8080));
        assert_eq!(http.http_headers[0].value, "Awesome");
        assert_eq!(probe.period_seconds, Some(3));

        let p = ok(GUESTBOOK_DEPLOYMENT);
        let d = DeploymentBody::from_object(&p.objects[0]).unwrap();
        let res = d.spec.template.spec.containers[0]
            .resources
            .as_ref()
            .unwrap();
        assert_eq!(res.cpu_request_millis(), Some(100));
        assert_eq!(res.memory_request_bytes(), Some(100 << 20));

        let p = ok(JOB);
        let j = JobBody::from_object(&p.objects[0]).unwrap();
        assert_eq!(j.spec.backoff_limit, Some(4));
        assert_eq!(
            j.spec.template.spec.restart_policy,
            Some(RestartPolicy::Never)
        );
    }

    #[test]
    fn refuses_cronjob_naming_kind_and_api_version() {
        let e = err(CRONJOB);
        assert!(
            e.starts_with("document 1 (CronJob hello): kind: unknown kind \"CronJob\""),
            "{e}"
        );
        assert!(e.contains("batch/v1beta1"), "{e}");
        assert!(e.contains("Deployment"), "lists supported kinds: {e}");
    }

    #[test]
    fn refuses_hpa_as_unsupported_kind() {
        let e = err(HPA);
        assert!(
            e.starts_with(
                "document 1 (HorizontalPodAutoscaler php-apache): kind: unknown kind \"HorizontalPodAutoscaler\""
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = err(&deployment_with("image: busybox", "imagee: busybox"));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.template.spec.containers[0].imagee: unknown field (did you mean `image`?)"
        );
        let e = err(&deployment_with(
            "replicas: 2",
            "replicas: 2\n  colour: blue",
        ));
        assert_eq!(e, "document 1 (Deployment web): spec.colour: unknown field");
        let e = err(&deployment_with(
            "name: web\nspec",
            "name: web\n  nmespace: x\nspec",
        ));
        assert!(
            e.starts_with("document 1 (Deployment web): metadata.nmespace: unknown field"),
            "{e}"
        );
        let e = err(&deployment_with(
            "kind: Deployment",
            "kind: Deployment\nspecs: {}",
        ));
        assert!(e.contains("): specs: unknown field"), "{e}");
    }

    #[test]
    fn kubernetes_fields_outside_the_subset_are_named() {
        let e = err(&deployment_with(
            "    spec:\n",
            "    spec:\n      affinity: {}\n",
        ));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.template.spec.affinity: field not supported by shoal"
        );
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        securityContext: {runAsUser: 1}",
        ));
        assert!(
            e.ends_with(
                "spec.template.spec.containers[0].securityContext: field not supported by shoal"
            ),
            "{e}"
        );
        let e = err(&deployment_with(
            "    spec:\n",
            "    spec:\n      volumes: [{name: data, persistentVolumeClaim: {claimName: c}}]\n",
        ));
        assert!(
            e.ends_with(
                "spec.template.spec.volumes[0].persistentVolumeClaim: field not supported by shoal"
            ),
            "{e}"
        );
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, generateName: p-}\nspec: {containers: [{name: a, image: b}]}\n",
        );
        assert!(
            e.ends_with("metadata.generateName: field not supported by shoal"),
            "{e}"
        );
        let e = err(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], sessionAffinity: None}\n",
        );
        assert!(
            e.ends_with("spec.sessionAffinity: field not supported by shoal"),
            "{e}"
        );
    }

    #[test]
    fn mistyped_field_names_its_path() {
        let e = err(&deployment_with("replicas: 2", "replicas: three"));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.replicas: invalid type: string \"three\", expected u32"
        );
        let e = err(&deployment_with("labels: {app: web}", "labels: {app: 3}"));
        assert!(
            e.contains(
                "spec.template.metadata.labels.app: invalid type: integer `3`, expected a string"
            ),
            "{e}"
        );
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        ports: [{containerPort: 70000}]",
        ));
        assert!(
            e.contains("spec.template.spec.containers[0].ports[0].containerPort: invalid value: integer `70000`"),
            "{e}"
        );
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        imagePullPolicy: Sometimes",
        ));
        assert!(
            e.contains("containers[0].imagePullPolicy: unknown variant `Sometimes`"),
            "{e}"
        );
    }

    #[test]
    fn missing_required_fields() {
        let e = err("kind: Pod\nmetadata: {name: p}\n");
        assert!(
            e.ends_with("(Pod p): apiVersion: missing: Pod needs apiVersion \"v1\""),
            "{e}"
        );
        let e = err("apiVersion: v1\nmetadata: {name: p}\n");
        assert!(e.starts_with("document 1: kind: missing"), "{e}");
        let e = err("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a, image: b}]}\n");
        assert!(
            e.starts_with("document 1 (Pod): metadata.name: missing"),
            "{e}"
        );
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: a, image: b}]}\n",
        );
        assert!(
            e.starts_with("document 1 (Pod): metadata.name: missing"),
            "{e}"
        );
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n",
        );
        assert_eq!(
            e,
            "document 1 (Pod p): spec.containers[0].image: missing required field"
        );
        let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
        assert_eq!(e, "document 1 (Pod p): spec: missing required field");
        let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n");
        assert_eq!(
            e,
            "document 1 (Pod p): spec.containers: at least one container is required"
        );
        let e = err("- a\n- b\n");
        assert!(e.starts_with("document 1: expected a mapping"), "{e}");
    }

    #[test]
    fn wrong_api_version_names_the_expected_one() {
        let e = err(&deployment_with("apps/v1", "extensions/v1beta1"));
        assert_eq!(
            e,
            "document 1 (Deployment web): apiVersion: \"extensions/v1beta1\" is not supported for Deployment: use \"apps/v1\""
        );
        let e = err(&JOB.replace("batch/v1", "batch/v1beta1"));
        assert!(e.contains("apiVersion: \"batch/v1beta1\""), "{e}");
        assert!(e.contains("use \"batch/v1\""), "{e}");
        let e = err(&deployment_with("kind: Deployment", "kind: deployment"));
        assert!(e.contains("(did you mean \"Deployment\"?)"), "{e}");
    }

    #[test]
    fn names_are_dns_labels_or_subdomains() {
        let e = err(&deployment_with("name: web", "name: Web_1"));
        assert!(
            e.contains("metadata.name: \"Web_1\" is not a valid Deployment name: it must be a DNS-1123 label"),
            "{e}"
        );
        let long = "a".repeat(64);
        let e = err(&deployment_with("name: web", &format!("name: {long}")));
        assert!(e.contains("DNS-1123 label"), "{e}");
        let e = err(
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n",
        );
        assert!(e.contains("DNS-1035 label"), "{e}");
        ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app.config}\ndata: {a: b}\n");
        let e = err(&deployment_with(
            "name: web",
            "name: web\n  namespace: Prod",
        ));
        assert!(
            e.contains("metadata.namespace: \"Prod\" is not valid"),
            "{e}"
        );
        let e = err(&deployment_with(
            "name: web",
            "name: web\n  labels: {\"bad key!\": x}",
        ));
        assert!(
            e.contains("metadata.labels[\"bad key!\"]: invalid key"),
            "{e}"
        );
        let e = err(&deployment_with(
            "name: web",
            "name: web\n  labels: {app: \"a b\"}",
        ));
        assert!(
            e.contains("metadata.labels.app: invalid label value"),
            "{e}"
        );
    }

    #[test]
    fn flow_style() {
        let p = ok(
            r#"{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: prod}, data: {a: "1", b: two,},}"#,
        );
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.objects[0].metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(p.objects[0].body["data"]["b"], "two");
        assert_eq!(ok(EXEC_LIVENESS).objects[0].metadata.name, "liveness-exec");
    }

    #[test]
    fn multiple_documents_skip_empty_ones() {
        let text = format!(
            "---\n# just a comment\n---\n{DEPLOYMENT}\n---\n---\n# nothing\n{GUESTBOOK_SERVICE}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: prod, namespace: ignored}}\n...\n"
        );
        let p = ok(&text);
        let keys: Vec<String> = p
            .objects
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "Deployment/default/web",
                "Service/default/frontend",
                "Namespace/prod"
            ]
        );
        assert_eq!(p.objects[2].metadata.namespace, None);
    }

    #[test]
    fn a_bad_image_reference_is_refused_with_its_path() {
        let e = err(&deployment_with(
            "image: busybox",
            "image: ../../etc/passwd",
        ));
        assert!(
            e.starts_with(
                "document 1 (Deployment web): spec.template.spec.containers[0].image: \"../../etc/passwd\" is not a valid image reference"
            ),
            "{e}"
        );
    }

    #[test]
    fn working_dirs_are_absolute() {
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        workingDir: ../../../etc",
        ));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.template.spec.containers[0].workingDir: \"../../../etc\" must be an absolute path without '..'"
        );
    }

    #[test]
    fn replicas_past_int32_are_refused_with_their_path() {
        let e = err(&deployment_with("replicas: 2", "replicas: 2147483648"));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.replicas: 2147483648 is over 2147483647, the largest a Kubernetes int32 holds"
        );
        let e = err(&deployment_with("replicas: 2", "replicas: 4294967296"));
        assert!(e.contains("spec.replicas"), "{e}");
    }

    #[test]
    fn invalid_second_document_fails_the_file() {
        let text = format!(
            "{NGINX}---\n{}",
            deployment_with("replicas: 2", "replicas: -1")
        );
        let e = err(&text);
        assert!(
            e.starts_with("document 2 (Deployment web): spec.replicas: invalid value"),
            "{e}"
        );
        let e = err(&format!("{NGINX}---\nkind: [unclosed\n"));
        assert!(e.starts_with("document 2: invalid YAML: "), "{e}");
        assert!(e.contains("line"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn duplicate_objects_and_empty_files() {
        let e = err(&format!("{NGINX}---\n{NGINX}"));
        assert_eq!(
            e,
            "document 2 (Deployment/default/nginx-deployment): the same object as document 1"
        );
        assert!(matches!(
            parse_manifests("---\n# nothing\n---\n"),
            Err(ManifestError::Empty)
        ));
        assert!(matches!(parse_manifests(""), Err(ManifestError::Empty)));
        let e = err("a: 1\na: 2\n");
        assert!(
            e.starts_with("document 1: invalid YAML: duplicate mapping key"),
            "{e}"
        );
    }

    #[test]
    fn selector_must_match_template_labels() {
        let e = err(&deployment_with(
            "labels: {app: web}",
            "labels: {app: webb}",
        ));
        assert_eq!(
            e,
            "document 1 (Deployment web): spec.selector: does not match template labels {app=webb}"
        );
        ok(&deployment_with(
            "matchLabels: {app: web}",
            "matchExpressions: [{key: app, operator: In, values: [web, api]}]",
        ));
        let e = err(&deployment_with(
            "matchLabels: {app: web}",
            "matchExpressions: [{key: app, operator: Exists, values: [web]}]",
        ));
        assert!(
            e.contains("spec.selector.matchExpressions[0].values: must be empty"),
            "{e}"
        );
        let e = err(&deployment_with(
            "matchLabels: {app: web}",
            "matchLabels: {}",
        ));
        assert!(e.contains("spec.selector: empty"), "{e}");
    }

    #[test]
    fn secrets_need_base64_and_fold_string_data() {
        let e = err(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: not base64!}\n",
        );
        assert!(
            e.starts_with("document 1 (Secret s): data.password: invalid base64"),
            "{e}"
        );
        let p = ok(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata:\n  a: |\n    Zm9v\n    YmFy\nstringData: {b: hi}\n",
        );
        let body = &p.objects[0].body;
        assert_eq!(body["data"]["a"], "Zm9vYmFy");
        assert_eq!(body["data"]["b"], "aGk=");
        assert!(body.get("stringData").is_none());
        assert_eq!(body["type"], "Opaque");
        let e = err(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData: {x: \"@@@@\"}\n",
        );
        assert!(e.contains("binaryData.x: invalid base64"), "{e}");
    }

    #[test]
    fn quantities_are_checked() {
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        resources: {limits: {memory: 12MB}}",
        ));
        assert!(
            e.contains("spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"12MB\""),
            "{e}"
        );
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        resources: {requests: {cpu: 2}, limits: {cpu: 500m}}",
        ));
        assert!(
            e.contains("resources.requests.cpu: request 2 must not exceed the limit 500m"),
            "{e}"
        );
        let e = err(&deployment_with(
            "image: busybox",
            "image: busybox\n        resources: {limits: {nvidia.com/gpu: 1}}",
        ));
        assert!(
            e.contains("resources.limits[\"nvidia.com/gpu\"]: resource not supported by shoal"),
            "{e}"
        );
        let p = ok(&deployment_with(
            "image: busybox",
            "image: busybox\n        resources: {requests: {cpu: 0.5, memory: 1e3}}",
        ));
        let req = &p.objects[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"];
        assert_eq!(req["cpu"], "0.5");
        assert_eq!(req["memory"], "1000");
    }

    #[test]
    fn warnings_for_fields_not_acted_on() {
        let text = TCP_LIVENESS.replace(
            "image: registry.k8s.io/goproxy:0.1",
            "image: registry.k8s.io/goproxy:0.1\n    imagePullPolicy: IfNotPresent",
        );
        let p = ok(&text);
        assert_eq!(
            p.warnings,
            [
                "document 1 (Pod goproxy): spec.containers[0].imagePullPolicy: accepted but not acted on yet"
            ]
        );
        let p = ok(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer, clusterIP: 10.0.0.1, ports: [{port: 80, nodePort: 30080}]}\n",
        );
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("spec.type: LoadBalancer is served as NodePort"));
        let e = err(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0, ports: [{port: 80}]}\n",
        );
        assert!(e.contains("spec.clusterIP"), "{e}");
    }

    #[test]
    fn pod_semantics() {
        let pod = |spec: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n")
        };
        let e = err(&pod(
            "{containers: [{name: a, image: b}, {name: a, image: c}]}",
        ));
        assert!(
            e.ends_with("spec.containers[1].name: duplicate container name \"a\""),
            "{e}"
        );
        let e = err(&pod(
            "{containers: [{name: a, image: b, ports: [{containerPort: 0}]}]}",
        ));
        assert!(
            e.ends_with("spec.containers[0].ports[0].containerPort: must be between 1 and 65535"),
            "{e}"
        );
        let e = err(&pod(
            "{restartPolicy: Sometimes, containers: [{name: a, image: b}]}",
        ));
        assert!(
            e.contains("spec.restartPolicy: unknown variant `Sometimes`"),
            "{e}"
        );
        let e = err(&pod(
            "{containers: [{name: a, image: b, livenessProbe: {tcpSocket: {port: http}}}]}",
        ));
        assert!(
            e.ends_with(
                "livenessProbe.tcpSocket.port: no port named \"http\" in this container's ports"
            ),
            "{e}"
        );
        let e = err(&pod(
            "{containers: [{name: a, image: b, readinessProbe: {periodSeconds: 3}}]}",
        ));
        assert!(
            e.ends_with(
                "readinessProbe: no handler: set exactly one of httpGet, tcpSocket or exec"
            ),
            "{e}"
        );
        let e = err(&pod(
            "{containers: [{name: a, image: b, volumeMounts: [{name: data, mountPath: /data}]}]}",
        ));
        assert!(
            e.ends_with("volumeMounts[0].name: no volume named \"data\" in the pod's volumes"),
            "{e}"
        );
        let e = err(&pod(
            "{volumes: [{name: v}], containers: [{name: a, image: b}]}",
        ));
        assert!(e.contains("spec.volumes[0]: no volume source"), "{e}");
        let e = err(&pod(
            "{containers: [{name: a, image: b, env: [{name: X, value: z, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}",
        ));
        assert!(
            e.ends_with("env[0].valueFrom: may not be set together with value"),
            "{e}"
        );
        let e = err(&pod(
            "{containers: [{name: a, image: b, env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}]}",
        ));
        assert!(
            e.ends_with("env[0].valueFrom.fieldRef: field not supported by shoal"),
            "{e}"
        );
        let p = ok(&pod(
            "{volumes: [{name: cfg, configMap: {name: c, defaultMode: 0644}}, {name: d, emptyDir: {}}], containers: [{name: a, image: b, volumeMounts: [{name: cfg, mountPath: /etc/c}, {name: d, mountPath: /d}], livenessProbe: {httpGet: {port: http, path: /}}, ports: [{name: http, containerPort: 80}]}]}",
        ));
        assert_eq!(
            p.objects[0].body["spec"]["volumes"][0]["configMap"]["defaultMode"],
            420
        );
    }

    #[test]
    fn workload_restart_policies() {
        let e = err(&deployment_with(
            "    spec:\n",
            "    spec:\n      restartPolicy: Never\n",
        ));
        assert!(e.ends_with("spec.template.spec.restartPolicy: Never is not allowed in a Deployment: only Always"), "{e}");
        let e = err(&JOB.replace("      restartPolicy: Never\n", ""));
        assert!(e.ends_with("spec.template.spec.restartPolicy: missing: a Job's pod template needs restartPolicy OnFailure or Never"), "{e}");
        let e = err(&JOB.replace("restartPolicy: Never", "restartPolicy: Always"));
        assert!(e.contains("Always is not allowed in a Job"), "{e}");
    }

    #[test]
    fn kubectl_generated_manifests_are_accepted() {
        // What `kubectl create deployment --dry-run=client -o yaml` prints.
        let text = "apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
";
        let p = ok(text);
        let o = &p.objects[0];
        assert_eq!(o.body["status"], serde_json::json!({}));
        assert_eq!(o.body["spec"]["strategy"], serde_json::json!({}));
        assert!(
            o.body["spec"]["template"]["metadata"]
                .get("creationTimestamp")
                .is_none()
        );
    }

    #[test]
    fn round_trip() {
        let all = [
            EXEC_LIVENESS,
            GUESTBOOK_DEPLOYMENT,
            GUESTBOOK_SERVICE,
            HTTP_LIVENESS,
            JOB,
            NGINX,
            PHP_APACHE,
            TCP_LIVENESS,
        ]
        .join("\n---\n");
        let first = ok(&all);
        // Through YAML...
        let yaml: Vec<String> = first
            .objects
            .iter()
            .map(|o| serde_saphyr::to_string(o).unwrap())
            .collect();
        let second = ok(&yaml.join("---\n"));
        assert_eq!(first.objects, second.objects);
        // ...and through JSON, as the API receives objects.
        for o in &first.objects {
            let json = serde_json::to_value(o).unwrap();
            let mut again: Object = serde_json::from_value(json.clone()).unwrap();
            assert!(validate_object(&mut again).unwrap().is_empty());
            assert_eq!(&again, o);
            let (from_json, _) = object_from_json(json).unwrap();
            assert_eq!(&from_json, o);
        }
    }

    #[test]
    fn validate_object_normalises() {
        let mut pod: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "b", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "anything": [1, 2, {"goes": true}]},
        }))
        .unwrap();
        assert!(validate_object(&mut pod).unwrap().is_empty());
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.body["status"]["anything"][2]["goes"], true);

        let mut ns: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prod", "namespace": "default"},
        }))
        .unwrap();
        validate_object(&mut ns).unwrap();
        assert_eq!(ns.metadata.namespace, None);

        let mut bad = pod.clone();
        bad.body["spec"]["containers"][0]["imagee"] = serde_json::json!("x");
        bad.metadata.namespace = None;
        let before = bad.clone();
        let e = validate_object(&mut bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "Pod p: spec.containers[0].imagee: unknown field (did you mean `image`?)"
        );
        assert_eq!(bad, before, "unchanged on error");

        let mut job: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1beta1", "kind": "Job", "metadata": {"name": "j"},
        }))
        .unwrap();
        let e = validate_object(&mut job).unwrap_err().to_string();
        assert!(e.starts_with("Job j: apiVersion: \"batch/v1beta1\""), "{e}");

        let e = object_from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labelz": {}},
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("ConfigMap c: metadata.labelz: unknown field (did you mean `labels`?)"),
            "{e}"
        );
    }

    #[test]
    fn services() {
        let svc = |spec: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {spec}\n")
        };
        let e = err(&svc("{ports: [{port: 80}, {port: 81}]}"));
        assert!(
            e.ends_with(
                "spec.ports[0].name: missing: required when the service has more than one port"
            ),
            "{e}"
        );
        let e = err(&svc("{ports: [{port: 53, protocol: UDP}]}"));
        assert!(e.ends_with("spec.ports[0].protocol: UDP is not supported: shoal's service proxy carries TCP only"), "{e}");
        let e = err(&svc("{ports: [{port: 80, nodePort: 30000}]}"));
        assert!(
            e.ends_with(
                "spec.ports[0].nodePort: may only be set when type is NodePort or LoadBalancer"
            ),
            "{e}"
        );
        let e = err(&svc("{type: ExternalName, ports: [{port: 80}]}"));
        assert!(
            e.contains("spec.type: unknown variant `ExternalName`"),
            "{e}"
        );
        let e = err(&svc("{ports: []}"));
        assert!(
            e.ends_with("spec.ports: at least one port is required"),
            "{e}"
        );
        let p = ok(&svc(
            "{ports: [{name: http, port: 80, targetPort: http}, {name: https, port: 443, targetPort: 8443}]}",
        ));
        assert_eq!(p.objects[0].body["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(p.objects[0].body["spec"]["ports"][1]["targetPort"], 8443);
    }
}
