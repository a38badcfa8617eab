//! The route table: every served Ingress's rules merged into one lookup by
//! host and path, built purely from the objects of the local replica and
//! the discovery endpoint table. Swapped whole on every change, so a
//! request holds the table it started with and open connections never see
//! a half-built one.
//!
//! Matching, as Kubernetes specifies it: an exact host beats a `*.` wildcard
//! (which matches exactly one label), which beats rules without a host;
//! within a host, an `Exact` path beats any `Prefix`, and the longest
//! prefix by path element wins (`/foo` matches `/foo` and `/foo/bar`, not
//! `/foobar`); the `defaultBackend` takes what nothing else does. Two
//! Ingresses claiming the same host, path and type: the older one wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::discovery::{Endpoint, ServiceTable};
use crate::resource::Object;
use crate::resource::types::{
    ANN_DEFAULT_CLASS, ANN_PROXY_BODY_SIZE, ANN_PROXY_CONNECT_TIMEOUT, ANN_PROXY_READ_TIMEOUT,
    ANN_REWRITE_TARGET, ANN_SSL_REDIRECT, Body, DEFAULT_BODY_LIMIT, DEFAULT_INGRESS_CLASS,
    INGRESS_CONTROLLER, IngressBackend, IngressBody, IngressClassBody, PathType, parse_body_size,
    parse_timeout_secs,
};

/// How long to wait for an upstream's response headers unless annotated (nginx's 60 s).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for an upstream connection unless annotated.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Service port as an Ingress names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    /// Namespace of the Ingress, hence of the Service.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port's number, or its name.
    pub port: PortRef,
}

impl BackendKey {
    /// `namespace/name`, as errors and metrics name a Service.
    pub fn service_label(&self) -> String {
        format!("{}/{}", self.namespace, self.service)
    }
}

/// A Service port by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

/// What one route does with a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Its index in the table (below [`RouteTable::route_count`]), for
    /// per-route state such as metric handles.
    pub id: usize,
    /// `namespace/name` of the Ingress the rule is from.
    pub ingress: String,
    /// The rule's host as written (`*` for none): a metrics label bounded by
    /// the objects, never by what clients send.
    pub host: String,
    /// The IngressClass serving it.
    pub class: String,
    /// The Service port requests go to.
    pub backend: BackendKey,
    /// The path that matched, normalised (no trailing `/`), for rewrites.
    pub matched: String,
    /// Requests with larger bodies get 413; `None` for no limit.
    pub body_limit: Option<u64>,
    /// Wait for the upstream's response headers.
    pub read_timeout: Duration,
    /// Wait for a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Replaces the matched prefix in the path sent upstream.
    pub rewrite_target: Option<String>,
    /// Plain HTTP requests get 308 to HTTPS (the host has TLS, not turned off).
    pub ssl_redirect: bool,
}

/// The routes of one host (or of every host).
#[derive(Debug, Clone, Default, PartialEq)]
struct HostRoutes {
    exact: HashMap<String, Arc<Route>>,
    /// Longest first, so the first that matches wins.
    prefixes: PrefixList,
}

impl HostRoutes {
    fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        if let Some(r) = self.exact.get(path) {
            return Some(r);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| prefix_matches(p, path))
            .map(|(_, r)| r)
    }
}

/// Whether a normalised prefix (`/` or `/a/b`, no trailing `/`) matches a
/// request path element-wise.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A `Prefix` path without its trailing slashes (Kubernetes ignores them):
/// `/foo/` is `/foo`, and `/` stays `/`.
fn normalise_prefix(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() { "/".into() } else { t.into() }
}

/// A certificate source: the Secret named in an Ingress's `tls`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlsSource {
    /// Namespace of the Ingress, hence of the Secret.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
}

/// An Ingress nodes do not serve, and why (for its status and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// `namespace/name`.
    pub ingress: String,
    /// Why it is not served.
    pub reason: String,
}

/// Every route of the served Ingresses, with the endpoints behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTable {
    exact_hosts: HashMap<String, HostRoutes>,
    /// By the part after `*.`.
    wildcard_hosts: HashMap<String, HostRoutes>,
    any_host: HostRoutes,
    default_backend: Option<Arc<Route>>,
    /// Ready endpoints of every backend; absent when the Service or its
    /// port does not exist.
    pub endpoints: BTreeMap<BackendKey, Vec<Endpoint>>,
    /// Certificates by host (`*.example.com` for wildcards), in the order
    /// the Ingresses list them; the first for a host wins.
    pub tls: BTreeMap<String, TlsSource>,
    /// Ingresses left out, with the reason.
    pub ignored: Vec<Ignored>,
    /// How many routes there are (their ids are `0..route_count`).
    pub route_count: usize,
}

impl RouteTable {
    /// The route for a request's host (lower case, no port) and path.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        if let Some(r) = self.exact_hosts.get(host).and_then(|h| h.lookup(path)) {
            return Some(r);
        }
        if let Some((_, parent)) = host.split_once('.')
            && let Some(r) = self.wildcard_hosts.get(parent).and_then(|h| h.lookup(path))
        {
            return Some(r);
        }
        self.any_host.lookup(path).or(self.default_backend.as_ref())
    }

    /// The Secret holding the certificate for an SNI name.
    pub fn tls_for(&self, host: &str) -> Option<&TlsSource> {
        self.tls.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.tls.get(&format!("*.{parent}"))
        })
    }

    /// Every backend any route uses.
    pub fn backends(&self) -> BTreeSet<BackendKey> {
        let mut out = BTreeSet::new();
        let mut add = |h: &HostRoutes| {
            for r in h.exact.values() {
                out.insert(r.backend.clone());
            }
            for (_, r) in &h.prefixes {
                out.insert(r.backend.clone());
            }
        };
        self.exact_hosts.values().for_each(&mut add);
        self.wildcard_hosts.values().for_each(&mut add);
        add(&self.any_host);
        if let Some(d) = &self.default_backend {
            out.insert(d.backend.clone());
        }
        out
    }
}

/// Whether nodes serve an Ingress: the class it is served as, or why not.
pub fn served(ing: &Object, classes: &[Object]) -> Result<String, String> {
    let body = IngressBody::from_object(ing).map_err(|e| format!("does not decode: {e}"))?;
    served_class(ing, &body, classes)
}

/// The class an Ingress asks for is served by shoal: none (the default),
/// `shoal`, or an IngressClass naming shoal's controller. Returns the class
/// name, or why it is not served.
fn served_class(ing: &Object, body: &IngressBody, classes: &[Object]) -> Result<String, String> {
    let asked = body.spec.class(&ing.metadata.annotations);
    let Some(name) = asked else {
        // With another class marked default, Kubernetes would hand the
        // Ingress to it; shoal's built-in class is the default otherwise.
        let other_default = classes.iter().find(|c| {
            c.metadata
                .annotations
                .get(ANN_DEFAULT_CLASS)
                .map(String::as_str)
                == Some("true")
                && IngressClassBody::from_object(c)
                    .ok()
                    .and_then(|b| b.spec.controller)
                    .as_deref()
                    != Some(INGRESS_CONTROLLER)
        });
        return match other_default {
            Some(c) => Err(format!(
                "no class given and IngressClass {:?} is marked the default; it is not shoal's",
                c.metadata.name
            )),
            None => Ok(DEFAULT_INGRESS_CLASS.into()),
        };
    };
    if name == DEFAULT_INGRESS_CLASS {
        return Ok(name.into());
    }
    match classes.iter().find(|c| c.metadata.name == name) {
        None => Err(format!(
            "IngressClass {name:?} does not exist; shoal serves {DEFAULT_INGRESS_CLASS:?} and \
             classes whose controller is {INGRESS_CONTROLLER}"
        )),
        Some(c) => {
            let controller = IngressClassBody::from_object(c)
                .ok()
                .and_then(|b| b.spec.controller)
                .unwrap_or_default();
            if controller == INGRESS_CONTROLLER {
                Ok(name.into())
            } else {
                Err(format!(
                    "IngressClass {name:?} is for controller {controller:?}, not {INGRESS_CONTROLLER}"
                ))
            }
        }
    }
}

/// Route options an Ingress's annotations set (validation already refused
/// bad values; a value that still does not parse falls back to the default).
struct Options {
    body_limit: Option<u64>,
    read_timeout: Duration,
    connect_timeout: Duration,
    rewrite_target: Option<String>,
    ssl_redirect: bool,
}

fn options(ing: &Object) -> Options {
    let ann = &ing.metadata.annotations;
    let secs = |k: &str, d: Duration| {
        ann.get(k)
            .and_then(|v| parse_timeout_secs(v).ok())
            .map_or(d, Duration::from_secs)
    };
    Options {
        body_limit: match ann.get(ANN_PROXY_BODY_SIZE) {
            Some(v) => parse_body_size(v).unwrap_or(Some(DEFAULT_BODY_LIMIT)),
            None => Some(DEFAULT_BODY_LIMIT),
        },
        read_timeout: secs(ANN_PROXY_READ_TIMEOUT, DEFAULT_READ_TIMEOUT),
        connect_timeout: secs(ANN_PROXY_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT),
        rewrite_target: ann.get(ANN_REWRITE_TARGET).cloned(),
        ssl_redirect: ann.get(ANN_SSL_REDIRECT).map(String::as_str) != Some("false"),
    }
}

fn backend_key(namespace: &str, b: &IngressBackend) -> Option<BackendKey> {
    let s = b.service.as_ref()?;
    let port = match (&s.port.number, &s.port.name) {
        (Some(n), _) => PortRef::Number(*n),
        (None, Some(name)) => PortRef::Name(name.clone()),
        (None, None) => return None,
    };
    Some(BackendKey {
        namespace: namespace.into(),
        service: s.name.clone(),
        port,
    })
}

/// Prefix routes of one host, as `(normalised prefix, route)`.
type PrefixList = Vec<(String, Arc<Route>)>;

/// Builds the table from Ingresses, IngressClasses and the endpoint table.
pub fn build(ingresses: &[Object], classes: &[Object], services: &ServiceTable) -> RouteTable {
    let mut t = RouteTable::default();
    // Oldest first, so that on a conflict the older Ingress keeps its route.
    let mut sorted: Vec<&Object> = ingresses.iter().collect();
    sorted.sort_by(|a, b| {
        let ts = |o: &Object| o.metadata.creation_timestamp.clone().unwrap_or_default();
        (ts(a), &a.metadata.namespace, &a.metadata.name).cmp(&(
            ts(b),
            &b.metadata.namespace,
            &b.metadata.name,
        ))
    });
    // Prefix routes per host in arrival order; sorted by length at the end.
    let mut prefixes: HashMap<(u8, String), PrefixList> = HashMap::new();
    let mut next_id = 0usize;
    for ing in sorted {
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        let label = format!("{ns}/{}", ing.metadata.name);
        if ing.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let body = match IngressBody::from_object(ing) {
            Ok(b) => b,
            Err(e) => {
                t.ignored.push(Ignored {
                    ingress: label,
                    reason: format!("does not decode: {e}"),
                });
                continue;
            }
        };
        let class = match served_class(ing, &body, classes) {
            Ok(c) => c,
            Err(reason) => {
                t.ignored.push(Ignored {
                    ingress: label,
                    reason,
                });
                continue;
            }
        };
        let opts = options(ing);
        let tls_hosts: BTreeSet<&str> = body
            .spec
            .tls
            .iter()
            .flat_map(|x| x.hosts.iter().map(String::as_str))
            .collect();
        for x in &body.spec.tls {
            let Some(secret) = &x.secret_name else {
                continue;
            };
            for h in &x.hosts {
                t.tls.entry(h.clone()).or_insert_with(|| TlsSource {
                    namespace: ns.into(),
                    secret: secret.clone(),
                });
            }
        }
        let mut route = |host: &str, matched: String, backend: BackendKey| {
            next_id += 1;
            Route {
                id: next_id - 1,
                ingress: label.clone(),
                host: host.into(),
                class: class.clone(),
                backend,
                matched,
                body_limit: opts.body_limit,
                read_timeout: opts.read_timeout,
                connect_timeout: opts.connect_timeout,
                rewrite_target: opts.rewrite_target.clone(),
                ssl_redirect: opts.ssl_redirect && tls_hosts.contains(host),
            }
        };
        if let Some(d) = &body.spec.default_backend
            && t.default_backend.is_none()
            && let Some(k) = backend_key(ns, d)
        {
            t.default_backend = Some(Arc::new(route("*", "/".into(), k)));
        }
        for rule in &body.spec.rules {
            let host = rule.host.clone().unwrap_or_default();
            let (bucket, key) = match host.strip_prefix("*.") {
                Some(parent) => (1u8, parent.to_string()),
                None if host.is_empty() => (2u8, String::new()),
                None => (0u8, host.clone()),
            };
            let label_host = if host.is_empty() { "*" } else { host.as_str() };
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let Some(k) = backend_key(ns, &p.backend) else {
                    continue;
                };
                let raw = p.path.as_deref().unwrap_or("/");
                match p.path_type {
                    PathType::Exact => {
                        let routes = match bucket {
                            0 => t.exact_hosts.entry(key.clone()).or_default(),
                            1 => t.wildcard_hosts.entry(key.clone()).or_default(),
                            _ => &mut t.any_host,
                        };
                        routes
                            .exact
                            .entry(raw.to_string())
                            .or_insert_with(|| Arc::new(route(label_host, raw.into(), k)));
                    }
                    PathType::Prefix | PathType::ImplementationSpecific => {
                        let norm = normalise_prefix(raw);
                        let list = prefixes.entry((bucket, key.clone())).or_default();
                        if !list.iter().any(|(p, _)| *p == norm) {
                            let r = Arc::new(route(label_host, norm.clone(), k));
                            list.push((norm, r));
                        }
                    }
                }
            }
        }
    }
    for ((bucket, key), mut list) in prefixes {
        // Stable: equal lengths are distinct paths, so order among them
        // does not matter for matching.
        list.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        let routes = match bucket {
            0 => t.exact_hosts.entry(key).or_default(),
            1 => t.wildcard_hosts.entry(key).or_default(),
            _ => &mut t.any_host,
        };
        routes.prefixes = list;
    }
    t.route_count = next_id;
    for k in t.backends() {
        if let Some(eps) = resolve(services, &k) {
            t.endpoints.insert(k, eps);
        }
    }
    t
}

/// The ready endpoints of a Service port, `None` when the Service or the
/// port does not exist.
fn resolve(services: &ServiceTable, k: &BackendKey) -> Option<Vec<Endpoint>> {
    let svc = services.get(&k.namespace, &k.service)?;
    let port = svc.ports.iter().find(|p| match &k.port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })?;
    Some(port.endpoints.clone())
}

/// The path sent upstream: the rewrite target in place of the matched
/// prefix (`/app` → `/` turns `/app/x` into `/x`), or the path unchanged.
pub fn rewrite(route: &Route, path: &str) -> String {
    let Some(target) = &route.rewrite_target else {
        return path.to_string();
    };
    let rest = if route.matched == "/" {
        path.strip_prefix('/').unwrap_or(path)
    } else {
        path.strip_prefix(route.matched.as_str())
            .map(|r| r.strip_prefix('/').unwrap_or(r))
            .unwrap_or("")
    };
    if rest.is_empty() {
        target.clone()
    } else if target.ends_with('/') {
        format!("{target}{rest}")
    } else {
        format!("{target}/{rest}")
    }
}

#[cfg(test)]
mod tests;
