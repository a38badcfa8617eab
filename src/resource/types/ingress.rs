//! The Ingress and IngressClass kinds (`networking.k8s.io/v1`): HTTP routes by
//! host and path to Services, served by every node itself (`crate::ingress`).

use serde::{Deserialize, Serialize};

use super::Body;
use crate::resource::Kind;

/// The built-in class every node serves; the default when an Ingress names none.
pub const DEFAULT_INGRESS_CLASS: &str = "shoal";
/// The controller name an IngressClass must carry for shoal to serve it.
pub const INGRESS_CONTROLLER: &str = "shoal.io/ingress";
/// Annotation: the path sent upstream instead of the matched prefix.
pub const ANN_REWRITE_TARGET: &str = "shoal.io/rewrite-target";
/// Annotation: the largest request body accepted (`1m`, `512k`, `0` for no limit).
pub const ANN_PROXY_BODY_SIZE: &str = "shoal.io/proxy-body-size";
/// Annotation: seconds to wait for the upstream's response headers.
pub const ANN_PROXY_READ_TIMEOUT: &str = "shoal.io/proxy-read-timeout";
/// Annotation: seconds to wait for a connection to the upstream.
pub const ANN_PROXY_CONNECT_TIMEOUT: &str = "shoal.io/proxy-connect-timeout";
/// Annotation: `"false"` keeps plain HTTP served for hosts that have TLS.
pub const ANN_SSL_REDIRECT: &str = "shoal.io/ssl-redirect";
/// Annotation Kubernetes used before `spec.ingressClassName`; still honoured.
pub const ANN_LEGACY_CLASS: &str = "kubernetes.io/ingress.class";
/// Annotation on an IngressClass that makes it the default class.
pub const ANN_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
/// `proxy-body-size` when the annotation is absent: ingress-nginx's 1 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

/// Body of an `Ingress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressBody {
    #[serde(default)]
    pub spec: IngressSpec,
}

impl Body for IngressBody {
    const KIND: Kind = Kind::Ingress;
}

/// `Ingress.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressSpec {
    /// The IngressClass; the default class (`shoal`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    /// Where requests no rule matches go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<IngressBackend>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<IngressTls>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<IngressRule>,
}

/// Hosts served over TLS with the certificate of a `kubernetes.io/tls` Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressTls {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// One host's paths; no host matches every host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpIngressRuleValue>,
}

/// `rules[].http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpIngressRuleValue {
    #[serde(default)]
    pub paths: Vec<HttpIngressPath>,
}

/// One path and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpIngressPath {
    /// `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub path_type: PathType,
    pub backend: IngressBackend,
}

/// How a path matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathType {
    /// The request's path equals it.
    Exact,
    /// The request's path starts with it, element by element.
    #[default]
    Prefix,
    /// Treated as Prefix, as the Kubernetes documentation allows.
    ImplementationSpecific,
}

/// A Service and port, or a resource (which shoal refuses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<IngressServiceBackend>,
    /// Kept only so validation can refuse it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<serde_json::Value>,
}

/// `backend.service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressServiceBackend {
    pub name: String,
    #[serde(default)]
    pub port: ServiceBackendPort,
}

/// A Service's port by number or by name (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceBackendPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u16>,
}

/// Body of an `IngressClass` (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressClassBody {
    #[serde(default)]
    pub spec: IngressClassSpec,
}

impl Body for IngressClassBody {
    const KIND: Kind = Kind::IngressClass;
}

/// `IngressClass.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressClassSpec {
    /// Only `shoal.io/ingress` classes are served by shoal's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Kept, not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

impl IngressSpec {
    /// The class this Ingress asks for: `spec.ingressClassName`, else the
    /// legacy annotation, else none (the default class).
    pub fn class<'a>(
        &'a self,
        annotations: &'a std::collections::BTreeMap<String, String>,
    ) -> Option<&'a str> {
        self.ingress_class_name
            .as_deref()
            .or_else(|| annotations.get(ANN_LEGACY_CLASS).map(String::as_str))
    }
}

/// Parses a size as ingress-nginx does: bytes, or with `k`/`m`/`g` (powers
/// of 1024, either case); `0` means no limit (returned as `None`).
pub fn parse_body_size(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 1u64 << 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 1u64 << 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 1u64 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| {
        format!("{s:?} is not a size: use bytes or a number with k, m or g (such as 8m)")
    })?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    Ok((bytes != 0).then_some(bytes))
}

/// Parses a timeout annotation: whole seconds, 1 to 3600.
pub fn parse_timeout_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of seconds from 1 to 3600")),
    }
}
