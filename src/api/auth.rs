//! Who is calling and what they may do: bearer tokens (the node's static
//! `api.token`, or a `Token` object made by `shoal token create`), their
//! roles, and the per-client caps on long-lived streams.
//!
//! The decision is a pure function of the role, the method and the path
//! ([`authorize`]), so every rule is tested without a server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::resource::token::{secret_hash, split_token};
use crate::resource::types::{Body as _, Role, TokenBody};
use crate::resource::{Kind, ObjectKey};

/// The peer's address of a connection, plain or TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::NoDelay>>
    for ClientAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, super::tls::NoDelay>) -> Self {
        ClientAddr(*s.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::TlsListener>>
    for ClientAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, super::tls::TlsListener>) -> Self {
        ClientAddr(*s.remote_addr())
    }
}

/// The authenticated caller of a request, put into its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`api.token` for the node's static token;
    /// `anonymous` when the node has no token and listens on loopback).
    pub name: String,
    pub role: Role,
    /// Whom the per-client caps count against: the token's name, or the
    /// peer's IP address for anonymous callers.
    pub client: String,
    /// The peer's address, when the server knows it.
    pub addr: Option<SocketAddr>,
}

/// Why a request was refused: 401 (who are you?) or 403 (not allowed).
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Unauthenticated(String),
    Forbidden(String),
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        }
    }
}

/// Finds the caller of a request: the static token, a stored token, or
/// nobody. `now` is in seconds since the epoch (for expiry).
pub fn authenticate(
    s: &ApiState,
    headers: &HeaderMap,
    addr: Option<SocketAddr>,
    now: u64,
) -> Result<Caller, Denied> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = |name: &str, role| Caller {
        name: name.to_string(),
        role,
        client: match (role, name) {
            (_, "anonymous") => addr.map(|a| a.ip().to_string()).unwrap_or_default(),
            _ => name.to_string(),
        },
        addr,
    };
    let Some(given) = given else {
        if s.token.is_none() {
            // No credential configured: the node listens on loopback only
            // (the daemon refuses anything else), like `--dev`.
            return Ok(caller("anonymous", Role::Admin));
        }
        return Err(Denied::Unauthenticated(
            "missing bearer token (set --token or SHOAL_TOKEN)".into(),
        ));
    };
    if let Some(token) = &s.token
        && constant_time_eq(given.as_bytes(), token.as_bytes())
    {
        return Ok(caller("api.token", Role::Admin));
    }
    let wrong = || Denied::Unauthenticated("wrong or revoked bearer token".into());
    let (name, secret) = split_token(given).ok_or_else(wrong)?;
    // The local replica: a revocation takes effect here once replicated,
    // and a read never waits for the leader.
    let obj = s
        .store
        .get(&ObjectKey::new(Kind::Token, "", name))
        .ok()
        .flatten()
        .ok_or_else(wrong)?;
    let body = TokenBody::from_object(&obj).map_err(|_| wrong())?;
    if !constant_time_eq(
        secret_hash(secret).as_bytes(),
        body.spec.secret_sha256.as_bytes(),
    ) {
        return Err(wrong());
    }
    if let Some(exp) = &body.spec.expires_at
        && crate::resource::time::parse_rfc3339(exp).is_none_or(|e| e <= now)
    {
        return Err(Denied::Unauthenticated(format!(
            "token {name:?} expired at {exp}"
        )));
    }
    Ok(caller(name, body.spec.role))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a path names, for the rules.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Metrics,
    /// `/v1/raft`, `/v1/members`: the cluster's own state.
    Cluster,
    /// `/v1/apply`, `/v1/delete`: manifests, whose kinds the handler checks
    /// with [`may_write`].
    Manifests,
    /// Endpoints of Services.
    Endpoints,
    /// `/v1/encryption`: the keyring of Secrets at rest; admin only.
    Encryption,
    /// Kubernetes discovery and OpenAPI documents: readable by every role.
    Discovery,
    /// Objects of a kind (`None`: an unknown plural, a 404 later).
    Objects(Option<Kind>),
}

fn target(path: &str) -> Target {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["metrics"] => Target::Metrics,
        // Resource usage is read-only and holds no secrets, as /metrics.
        ["apis", "metrics.k8s.io", ..] => Target::Metrics,
        ["v1", "raft" | "members", ..] => Target::Cluster,
        ["v1", "apply" | "delete"] => Target::Manifests,
        ["v1", "endpoints", ..] => Target::Endpoints,
        ["v1", "encryption", ..] => Target::Encryption,
        ["v1", "namespaces", _, "endpoints", ..] => Target::Endpoints,
        ["v1", "namespaces", _, plural, ..] => Target::Objects(Kind::from_user(plural)),
        ["v1", "namespaces", ..] => Target::Objects(Some(Kind::Namespace)),
        ["v1", plural, ..] => Target::Objects(Kind::from_user(plural)),
        // The Kubernetes paths (api::kube): the same kinds, the same rules.
        ["api", "v1", "namespaces", _, plural, ..] => kube_objects("v1", plural),
        ["api", "v1", plural, ..] => kube_objects("v1", plural),
        ["apis", g, v, "namespaces", _, plural, ..] => kube_objects(&format!("{g}/{v}"), plural),
        ["apis", g, v, plural, ..] => kube_objects(&format!("{g}/{v}"), plural),
        ["version" | "api" | "apis" | "openapi", ..] => Target::Discovery,
        _ => Target::Objects(None),
    }
}

/// A Kubernetes resource path's kind; a namespace's own subresources
/// (`namespaces/NS/status`) are the namespace's.
fn kube_objects(group_version: &str, plural: &str) -> Target {
    match plural {
        "status" | "finalize" if group_version == "v1" => Target::Objects(Some(Kind::Namespace)),
        // Any group shoal does not serve itself is a custom kind's (crate::crd).
        _ if group_version
            .split_once('/')
            .is_some_and(|(g, _)| !crate::crd::is_builtin_group(g)) =>
        {
            Target::Objects(Some(Kind::CustomObject))
        }
        p => Target::Objects(super::kube::path::kind_at(group_version, p)),
    }
}

/// Whether `role` may read objects of `kind`.
pub fn may_read(role: Role, kind: Kind) -> bool {
    match role {
        Role::Admin => true,
        Role::Edit | Role::View => !matches!(kind, Kind::Secret | Kind::Token),
        Role::Metrics => false,
    }
}

/// Whether `role` may create, change or delete objects of `kind`.
pub fn may_write(role: Role, kind: Kind) -> bool {
    match role {
        Role::Admin => true,
        // Volumes, classes and definitions of kinds are the cluster's, as
        // in Kubernetes' edit role.
        Role::Edit => !matches!(
            kind,
            Kind::Node
                | Kind::Token
                | Kind::PersistentVolume
                | Kind::StorageClass
                | Kind::CustomResourceDefinition
        ),
        Role::View | Role::Metrics => false,
    }
}

/// Decides whether `role` may make this request. Pure: the rules of the
/// roles, in one place.
pub fn authorize(role: Role, method: &Method, path: &str) -> Result<(), Denied> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let ok = match (target(path), role) {
        (_, Role::Admin) => true,
        (Target::Metrics, _) => read,
        (_, Role::Metrics) | (Target::Encryption, _) => false,
        (Target::Cluster | Target::Endpoints | Target::Discovery, _) => read,
        (Target::Manifests, r) => r == Role::Edit,
        (Target::Objects(None), _) => true,
        (Target::Objects(Some(k)), r) if read => may_read(r, k),
        (Target::Objects(Some(k)), r) => may_write(r, k),
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "role {} may not {method} {path}",
            role.as_str()
        )))
    }
}

/// The middleware: authenticates, authorizes, and passes the [`Caller`]
/// on to the handler; every write is recorded in the audit log.
pub(super) async fn middleware(
    State(s): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (decided, caller) =
        match authenticate(&s, req.headers(), addr, crate::resource::time::now_secs()) {
            Ok(c) => (authorize(c.role, &method, &path), Some(c)),
            Err(d) => (Err(d), None),
        };
    let audit = s.audit.clone();
    let response = match (decided, &caller) {
        (Ok(()), Some(caller)) => {
            req.extensions_mut().insert(caller.clone());
            next.run(req).await
        }
        (Err(d), _) => {
            let reason = match &d {
                Denied::Unauthenticated(_) => "unauthenticated",
                Denied::Forbidden(_) => "forbidden",
            };
            ::metrics::counter!(crate::api::metrics::DENIED_TOTAL, "reason" => reason).increment(1);
            ApiError::from(d).into_response()
        }
        (Ok(()), None) => ApiError::new(StatusCode::UNAUTHORIZED, "no caller").into_response(),
    };
    if let Some(audit) = audit
        && !matches!(method, Method::GET | Method::HEAD)
    {
        let objects = response
            .extensions()
            .get::<super::audit::Objects>()
            .map(|o| o.0.clone())
            .unwrap_or_default();
        audit.record(super::audit::Record::new(
            caller.as_ref().map(|c| (c.name.as_str(), c.role)),
            addr,
            &method,
            &path,
            response.status().as_u16(),
            objects,
        ));
    }
    response
}

/// Kinds of long-lived streams a client may hold only so many of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Watch,
    LogFollow,
}

impl Stream {
    fn what(self) -> &'static str {
        match self {
            Stream::Watch => "watches",
            Stream::LogFollow => "log follows",
        }
    }
}

/// Counts each client's open streams so one client cannot take a node's
/// whole allowance (the node-wide cap is the store's).
#[derive(Debug, Clone)]
pub struct Slots {
    limits: HashMap<Stream, usize>,
    held: Arc<Mutex<HashMap<(String, Stream), usize>>>,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    key: (String, Stream),
    held: Arc<Mutex<HashMap<(String, Stream), usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Slots {
    /// Caps per client: `watches` concurrent watches, `follows` log follows.
    pub fn new(watches: usize, follows: usize) -> Slots {
        Slots {
            limits: HashMap::from([(Stream::Watch, watches), (Stream::LogFollow, follows)]),
            held: Default::default(),
        }
    }

    /// Takes a slot for `client`, or says which cap it hit (429).
    pub fn take(&self, client: &str, stream: Stream) -> Result<Slot, ApiError> {
        let limit = self.limits.get(&stream).copied().unwrap_or(0);
        let key = (client.to_string(), stream);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key.clone()).or_insert(0);
        if *n >= limit {
            let label = match stream {
                Stream::Watch => "watch",
                Stream::LogFollow => "log_follow",
            };
            ::metrics::counter!(crate::api::metrics::CLIENT_STREAM_REFUSALS_TOTAL, "stream" => label)
                .increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "client {client:?} already holds {n} {} on this node, the most one \
                     client may (api.max_{}_per_client); close some first",
                    stream.what(),
                    match stream {
                        Stream::Watch => "watches",
                        Stream::LogFollow => "log_follows",
                    }
                ),
            ));
        }
        *n += 1;
        Ok(Slot {
            key,
            held: self.held.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(role: Role, m: Method, p: &str) -> bool {
        authorize(role, &m, p).is_ok()
    }

    #[test]
    fn roles_table() {
        use Role::*;
        let get = || Method::GET;
        let put = || Method::PUT;
        let post = || Method::POST;
        let del = || Method::DELETE;
        // (role, method, path, allowed)
        let cases: Vec<(Role, Method, &str, bool)> = vec![
            (Admin, del(), "/v1/nodes/n1", true),
            (View, get(), "/apis/metrics.k8s.io/v1beta1/nodes", true),
            (Metrics, get(), "/apis/metrics.k8s.io/v1beta1/pods", true),
            (Edit, post(), "/apis/metrics.k8s.io/v1beta1/pods", false),
            (Admin, get(), "/v1/namespaces/default/secrets/s", true),
            (Admin, post(), "/v1/tokens", true),
            (Edit, get(), "/v1/namespaces/default/pods", true),
            (Edit, get(), "/v1/namespaces/default/pods/p/log", true),
            (Edit, post(), "/v1/apply", true),
            (Edit, post(), "/v1/delete", true),
            (Edit, put(), "/v1/namespaces/default/deployments/web", true),
            (Edit, post(), "/v1/namespaces/default/pods/p/eviction", true),
            (Edit, post(), "/v1/namespaces/default/secrets", true),
            (Edit, get(), "/v1/namespaces/default/secrets", false),
            (Edit, get(), "/v1/namespaces/default/secrets/s", false),
            (Edit, get(), "/v1/secrets", false),
            (Edit, get(), "/v1/secret", false),
            (Admin, post(), "/v1/encryption/rotate-key", true),
            (Admin, get(), "/v1/encryption", true),
            (Edit, post(), "/v1/encryption/rotate-key", false),
            (Edit, get(), "/v1/encryption", false),
            (View, get(), "/v1/encryption", false),
            (Edit, put(), "/v1/nodes/n1", false),
            (
                Edit,
                post(),
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                false,
            ),
            (
                Edit,
                post(),
                "/apis/example.com/v1/namespaces/default/websites",
                true,
            ),
            (
                View,
                get(),
                "/apis/example.com/v1/namespaces/default/websites",
                true,
            ),
            (
                View,
                post(),
                "/apis/example.com/v1/namespaces/default/websites",
                false,
            ),
            (View, del(), "/apis/example.com/v1/websites/w", false),
            (Edit, del(), "/v1/nodes/n1", false),
            (Edit, get(), "/v1/nodes", true),
            (Edit, get(), "/v1/tokens", false),
            (Edit, post(), "/v1/tokens", false),
            (Edit, put(), "/v1/namespaces/prod", true),
            (
                Edit,
                put(),
                "/v1/namespaces/default/persistentvolumeclaims/c",
                true,
            ),
            (Edit, del(), "/v1/namespaces/default/pvc/c", true),
            (Edit, put(), "/v1/persistentvolumes/pv1", false),
            (Edit, post(), "/v1/storageclasses", false),
            (Edit, get(), "/v1/storageclasses", true),
            (Admin, put(), "/v1/storageclasses/fast", true),
            (Edit, get(), "/v1/raft", true),
            (View, get(), "/v1/namespaces/default/pods", true),
            (View, get(), "/v1/namespaces/default/pods/p/log", true),
            (View, get(), "/v1/namespaces/default/configmaps/c", true),
            (View, get(), "/v1/namespaces/default/secrets/s", false),
            (View, get(), "/v1/namespaces/default/endpoints", true),
            (View, get(), "/metrics", true),
            (View, post(), "/v1/apply", false),
            (View, del(), "/v1/namespaces/default/pods/p", false),
            (
                View,
                post(),
                "/v1/namespaces/default/pods/p/eviction",
                false,
            ),
            (View, get(), "/v1/tokens/t", false),
            // exec changes what runs: the role that may change workloads.
            (Edit, post(), "/v1/namespaces/default/pods/p/exec", true),
            (View, post(), "/v1/namespaces/default/pods/p/exec", false),
            (Metrics, post(), "/v1/namespaces/default/pods/p/exec", false),
            // So does attach: its stdin is the main process's.
            (Edit, post(), "/v1/namespaces/default/pods/p/attach", true),
            (View, post(), "/v1/namespaces/default/pods/p/attach", false),
            (
                Metrics,
                post(),
                "/v1/namespaces/default/pods/p/attach",
                false,
            ),
            (Metrics, get(), "/metrics", true),
            (Metrics, get(), "/v1/namespaces/default/pods", false),
            (Metrics, get(), "/v1/raft", false),
            (Metrics, post(), "/metrics", false),
        ];
        for (role, m, path, want) in cases {
            assert_eq!(ok(role, m.clone(), path), want, "{role:?} {m} {path}");
        }
    }

    #[test]
    fn every_role_is_refused_secrets_but_admin() {
        for r in Role::ALL {
            assert_eq!(may_read(r, Kind::Secret), r == Role::Admin, "{r:?}");
            assert_eq!(may_write(r, Kind::Token), r == Role::Admin, "{r:?}");
        }
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn slots_cap_per_client_and_free_on_drop() {
        let slots = Slots::new(2, 1);
        let a1 = slots.take("a", Stream::Watch).unwrap();
        let _a2 = slots.take("a", Stream::Watch).unwrap();
        assert!(slots.take("a", Stream::Watch).is_err());
        let _b = slots
            .take("b", Stream::Watch)
            .expect("another client has its own cap");
        let _f = slots.take("a", Stream::LogFollow).unwrap();
        assert!(slots.take("a", Stream::LogFollow).is_err());
        drop(a1);
        assert!(slots.take("a", Stream::Watch).is_ok());
    }
}
