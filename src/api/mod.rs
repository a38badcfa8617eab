//! api: the HTTP interface of every node (axum). JSON in and out; watches as
//! newline-delimited JSON. Reads are linearizable unless `?consistent=false`;
//! writes at any node are forwarded to the Raft leader by the store.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::warn;

mod admission;
pub mod audit;
pub mod auth;
mod config;
mod crds;
mod encryption;
mod endpoints;
mod eviction;
mod exec;
pub mod frames;
mod immutable;
pub mod kube;
mod manifests;
pub mod metrics;
mod namespaces;
mod propagation;
mod services;
pub mod tls;
mod tokens;
mod ui;
mod usage;
mod writes;
use endpoints::*;
use manifests::*;
use services::*;
use writes::*;

pub use config::{ApiConfig, TlsMode};
pub use encryption::EncryptionView;

use crate::agent::logs::{LogService, LogsError};
use crate::manifest::{self, ManifestError};
use crate::resource::types::{Body as _, ServiceBody, ServiceType};
use crate::resource::{Kind, Object, ObjectKey};
use crate::store::RaftStatus;
use crate::store::{Command, NodeInfo, Op, OpOutcome, Outcome, Store, StoreError, TxnError};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    me: NodeInfo,
    token: Option<Arc<str>>,
    audit: Option<audit::Audit>,
    slots: auth::Slots,
    max_body: usize,
    prometheus: Option<PrometheusHandle>,
    logs: Option<Arc<LogService>>,
    exec: Option<Arc<crate::agent::exec::ExecService>>,
    membership: Option<crate::membership::Membership>,
    discovery: crate::discovery::DiscoveryConfig,
    services: Option<tokio::sync::watch::Receiver<Arc<crate::discovery::ServiceTable>>>,
    usage: Option<Arc<crate::agent::usage::UsageService>>,
}

impl ApiState {
    /// State for one node's API.
    pub fn new(store: Store, me: NodeInfo, cfg: &ApiConfig) -> ApiState {
        ApiState {
            store,
            me,
            token: cfg.token.as_deref().map(Arc::from),
            audit: None,
            slots: auth::Slots::new(cfg.max_watches_per_client, cfg.max_log_follows_per_client),
            max_body: cfg.max_body_bytes,
            prometheus: metrics::recorder(),
            logs: None,
            exec: None,
            membership: None,
            discovery: Default::default(),
            services: None,
            usage: None,
        }
    }

    /// Allocates cluster IPs and node ports from `cfg`, and serves
    /// `/v1/.../endpoints` from `table` (when this node runs discovery).
    pub fn with_services(
        mut self,
        cfg: crate::discovery::DiscoveryConfig,
        table: Option<tokio::sync::watch::Receiver<Arc<crate::discovery::ServiceTable>>>,
    ) -> ApiState {
        self.discovery = cfg;
        self.services = table;
        self
    }

    /// Serves `/v1/members` from this membership.
    pub fn with_membership(mut self, m: crate::membership::Membership) -> ApiState {
        self.membership = Some(m);
        self
    }

    /// Records every write request in this audit log.
    pub fn with_audit(mut self, audit: audit::Audit) -> ApiState {
        self.audit = Some(audit);
        self
    }

    /// Runs `exec` sessions through this service.
    pub fn with_exec(mut self, exec: Arc<crate::agent::exec::ExecService>) -> ApiState {
        self.exec = Some(exec);
        self
    }

    /// Serves resource metrics (`/apis/metrics.k8s.io`, the container
    /// series of `/metrics`) from this service.
    pub fn with_usage(mut self, usage: Arc<crate::agent::usage::UsageService>) -> ApiState {
        self.usage = Some(usage);
        self
    }

    /// Serves pod logs through this service.
    pub fn with_logs(mut self, logs: Arc<LogService>) -> ApiState {
        self.logs = Some(logs);
        self
    }
}

/// Serves the API on `listener` until the task is aborted; over TLS with
/// `tls` when given.
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, state: ApiState) {
    let app = router(state).into_make_service_with_connect_info::<auth::ClientAddr>();
    let r = match tls {
        // Sessions (exec, port-forward) carry small writes that must not
        // wait for Nagle.
        None => axum::serve(tls::NoDelay(listener), app).await,
        Some(cfg) => match tls::TlsListener::new(listener, cfg) {
            Ok(l) => axum::serve(l, app).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = r {
        warn!("API server stopped: {e}");
    }
}

/// The routes, for tests that drive the API without a socket.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v1/raft", get(raft_status))
        .route("/v1/members", get(members))
        .route("/v1/apply", post(apply))
        .route("/v1/endpoints", get(endpoints_all))
        .route("/v1/namespaces/{ns}/endpoints", get(endpoints_ns))
        .route("/v1/namespaces/{ns}/endpoints/{name}", get(endpoints_one))
        .route("/v1/delete", post(delete_manifest))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/encryption", get(encryption::status))
        .route("/v1/encryption/rotate-key", post(encryption::rotate_key))
        .route("/v1/{plural}", get(list_all).post(create_any))
        .route(
            "/v1/{plural}/{name}",
            get(get_cluster_scoped)
                .put(replace_cluster_scoped)
                .delete(delete_cluster_scoped),
        )
        .route(
            "/v1/namespaces/{name}",
            get(get_namespace)
                .put(replace_namespace)
                .delete(delete_namespace),
        )
        .route("/v1/namespaces/{ns}/{plural}", get(list_ns).post(create_ns))
        .route(
            "/v1/namespaces/{ns}/{plural}/{name}",
            get(get_one).put(replace_one).delete(delete_one),
        )
        .route("/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route("/v1/namespaces/{ns}/pods/{name}/exec", post(exec::pod_exec))
        .route(
            "/v1/namespaces/{ns}/pods/{name}/attach",
            post(exec::pod_attach),
        )
        .route(
            "/v1/namespaces/{ns}/pods/{name}/portforward",
            post(exec::pod_port_forward),
        )
        .route(
            "/v1/namespaces/{ns}/pods/{name}/eviction",
            post(eviction::evict_pod),
        )
        .merge(usage::routes())
        .merge(kube::routes())
        .route("/v1/watch", get(ui::watch_kinds))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .route("/healthz", get(healthz))
        .merge(kube::public_routes())
        .merge(ui::routes())
        .layer(middleware::from_fn(request_span))
        .layer(DefaultBodyLimit::max(state.max_body))
        .with_state(state)
}

/// Runs each request in a span naming its method and path, so what a
/// handler logs says which request it was serving.
async fn request_span(req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "api",
        method = %req.method(),
        path = %req.uri().path()
    );
    next.run(req).instrument(span).await
}

/// An API error: an HTTP status and a one-line message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "code": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Txn(TxnError::Conflict { .. })
            | StoreError::Txn(TxnError::AlreadyExists { .. }) => StatusCode::CONFLICT,
            StoreError::Txn(TxnError::NotFound { .. }) => StatusCode::NOT_FOUND,
            StoreError::Txn(TxnError::Invalid { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::Txn(TxnError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            // The cluster, not the request, is out of room (any size is refused).
            StoreError::Txn(TxnError::QuotaExceeded { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::Gone { .. } => StatusCode::GONE,
            StoreError::TooManyWatches { .. } => StatusCode::TOO_MANY_REQUESTS,
            e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ManifestError> for ApiError {
    fn from(e: ManifestError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn healthz(State(s): State<ApiState>) -> Response {
    if !s.store.is_member() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not a member of a cluster yet\n",
        )
            .into_response();
    }
    match s.store.leader() {
        Some(_) => (StatusCode::OK, "ok\n").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n").into_response(),
    }
}

async fn metrics_text(State(s): State<ApiState>) -> Response {
    match &s.prometheus {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            metrics::render(h, &s.store, s.membership.as_ref(), &s.me.name)
                + &usage::prometheus_text(&s),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
        .into_response(),
    }
}

/// `GET /v1/raft`: this node's view of the Raft group.
#[derive(Serialize)]
struct RaftView {
    node: NodeInfo,
    #[serde(flatten)]
    status: RaftStatus,
}

async fn raft_status(State(s): State<ApiState>) -> Json<RaftView> {
    Json(RaftView {
        node: s.me.clone(),
        status: s.store.status(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    namespace: Option<String>,
    watch: Option<bool>,
    resource_version: Option<u64>,
    consistent: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteQuery {
    resource_version: Option<u64>,
    consistent: Option<bool>,
    /// Delete a StatefulSet's pod even though its node is not reachable.
    force: Option<bool>,
    /// What happens to the object's dependents (`Background` when absent).
    propagation_policy: Option<propagation::Policy>,
    /// `All`: decide, write nothing (Kubernetes' dry run).
    dry_run: Option<String>,
}

impl WriteQuery {
    /// The query's `dryRun`: `All`, or none; anything else is refused.
    fn dry_run(&self) -> ApiResult<writes::DryRun> {
        writes::DryRun::parse(self.dry_run.as_deref())
            .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))
    }
}

fn kind_of(plural: &str) -> ApiResult<Kind> {
    Kind::from_user(plural).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown resource type {plural:?}"),
        )
    })
}

async fn read_barrier(s: &ApiState, consistent: Option<bool>) -> ApiResult<()> {
    if consistent != Some(false) {
        s.store.barrier().await?;
    }
    Ok(())
}

fn list_body(kind: Kind, items: Vec<Object>, rev: u64) -> Json<serde_json::Value> {
    Json(json!({
        "apiVersion": "v1",
        "kind": format!("{}List", kind.as_str()),
        "metadata": { "resourceVersion": rev.to_string() },
        "items": items,
    }))
}

async fn list(
    s: ApiState,
    caller: &auth::Caller,
    kind: Kind,
    ns: Option<String>,
    q: ListQuery,
) -> ApiResult<Response> {
    if q.watch == Some(true) {
        let slot = s.slots.take(&caller.client, auth::Stream::Watch)?;
        return watch(s, slot, kind, ns, q.resource_version);
    }
    read_barrier(&s, q.consistent).await?;
    let (items, rev) = s.store.list(kind, ns.as_deref())?;
    Ok(list_body(kind, items, rev).into_response())
}

fn watch(
    s: ApiState,
    slot: auth::Slot,
    kind: Kind,
    ns: Option<String>,
    from: Option<u64>,
) -> ApiResult<Response> {
    let ns = ns.filter(|_| kind.namespaced());
    let stream = s.store.watch(Some(kind), ns, from)?;
    Ok(watch_response(slot, stream, |_| true))
}

/// A watch as newline-delimited JSON: the events of `stream` whose object
/// `keep` accepts, then, if the stream falls behind, an `ERROR` line with
/// code 410 (list again) and the end.
fn watch_response(
    slot: auth::Slot,
    mut stream: crate::store::WatchStream,
    keep: impl Fn(&Object) -> bool + Send + 'static,
) -> Response {
    let body = async_stream_body(
        async move |tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>| {
            // Held while the stream runs: the client's watch slot.
            let _slot = slot;
            loop {
                // A client that went away frees its slot (and the store's
                // watch) now, not at the next event, which may never come.
                let next = tokio::select! {
                    next = stream.next() => next,
                    () = tx.closed() => return,
                };
                let mut line = match next {
                    Ok(ev) if keep(&ev.object) => serde_json::to_vec(&*ev).unwrap_or_default(),
                    Ok(_) => continue,
                    Err(e) => {
                        // Tell the watcher to list again, then end the stream.
                        let err = json!({ "type": "ERROR", "error": e.to_string(), "code": 410 });
                        let mut l = serde_json::to_vec(&err).unwrap_or_default();
                        l.push(b'\n');
                        let _ = tx.send(Ok(Bytes::from(l))).await;
                        return;
                    }
                };
                line.push(b'\n');
                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                    return;
                }
            }
        },
    );
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// `GET /v1/members`: every member this node's gossip knows, itself included.
async fn members(State(s): State<ApiState>) -> ApiResult<Response> {
    let Some(m) = &s.membership else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "membership is not running on this node",
        ));
    };
    Ok(Json(json!({"kind": "MemberList", "items": m.members()})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    container: Option<String>,
    #[serde(default)]
    follow: bool,
    tail_lines: Option<u64>,
    #[serde(default)]
    previous: bool,
    since_seconds: Option<u64>,
    #[serde(default)]
    timestamps: bool,
}

/// `GET .../pods/{name}/log`: the container's output as plain text, from
/// whichever node runs the pod; `follow=true` keeps streaming.
async fn pod_log(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let slot = match q.follow {
        true => Some(s.slots.take(&caller.client, auth::Stream::LogFollow)?),
        false => None,
    };
    let Some(logs) = &s.logs else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node serves no logs",
        ));
    };
    let since_unix = q.since_seconds.map(|secs| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        i64::try_from(now.saturating_sub(secs)).unwrap_or(0)
    });
    let opts = crate::runtime::LogOptions {
        tail: q.tail_lines,
        // The previous instance has stopped: there is nothing to follow.
        follow: q.follow && !q.previous,
        since_unix,
        timestamps: q.timestamps,
    };
    let stream = logs
        .stream(&ns, &name, q.container.as_deref(), opts, q.previous)
        .await
        .map_err(|e| match e {
            LogsError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            LogsError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            LogsError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
        })?;
    let body = Body::from_stream(futures::StreamExt::map(stream, move |r| {
        // The follow slot lives as long as the stream.
        let _ = &slot;
        r.map_err(|e| std::io::Error::other(e.to_string()))
    }));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// A streaming body fed by a task; the task ends when the client goes away.
fn async_stream_body<F, Fut>(f: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // One line queued: a watcher that does not read holds at most that and
    // the socket's buffers (64 queued 900-KB objects per watcher took a node
    // to gigabytes). One that falls behind the history is ended with 410.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(f(tx));
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn list_all(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Path(plural): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let kind = kind_of(&plural)?;
    let ns = q.namespace.clone();
    list(s, &caller, kind, ns, q).await
}

async fn list_ns(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let kind = kind_of(&plural)?;
    list(s, &caller, kind, Some(ns), q).await
}

async fn get_object(
    s: &ApiState,
    key: ObjectKey,
    consistent: Option<bool>,
) -> ApiResult<Json<Object>> {
    read_barrier(s, consistent).await?;
    match s.store.get(&key)? {
        Some(o) => Ok(Json(o)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{key} not found"),
        )),
    }
}

async fn get_one(
    State(s): State<ApiState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Json<Object>> {
    let key = ObjectKey::new(kind_of(&plural)?, &ns, &name);
    get_object(&s, key, q.consistent).await
}

/// The key of a cluster-scoped object named in `/v1/{plural}/{name}`.
fn cluster_key(plural: &str, name: &str) -> ApiResult<ObjectKey> {
    let kind = kind_of(plural)?;
    if kind.namespaced() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{kind} is namespaced: use /v1/namespaces/{{namespace}}/{}/{name}",
                kind.plural()
            ),
        ));
    }
    Ok(ObjectKey::new(kind, "", name))
}

async fn get_cluster_scoped(
    State(s): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Json<Object>> {
    get_object(&s, cluster_key(&plural, &name)?, q.consistent).await
}

async fn replace_cluster_scoped(
    State(s): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    replace(s, cluster_key(&plural, &name)?, body, writes::DryRun::No).await
}

async fn delete_cluster_scoped(
    State(s): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Response> {
    delete(s, cluster_key(&plural, &name)?, q).await
}

async fn get_namespace(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Json<Object>> {
    get_object(&s, ObjectKey::new(Kind::Namespace, "", &name), q.consistent).await
}

/// What a URL says about the object in a request body.
struct UrlScope<'a> {
    kind: Kind,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

/// Parses a JSON object body, fills name and namespace from the URL when the
/// body leaves them out, validates it and checks it agrees with the URL.
fn object_from_body(body: &Bytes, url: UrlScope<'_>) -> ApiResult<Object> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body is not JSON: {e}"),
        )
    })?;
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        if let Some(name) = url.name {
            meta.entry("name").or_insert_with(|| name.into());
        }
        if let Some(ns) = url.namespace.filter(|_| url.kind.namespaced()) {
            meta.entry("namespace").or_insert_with(|| ns.into());
        }
    }
    let (obj, _warnings) = manifest::object_from_json(value)?;
    if obj.kind() != Some(url.kind) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "kind: the body is a {:?}, the URL says {}",
                obj.kind, url.kind
            ),
        ));
    }
    if let Some(ns) = url.namespace.filter(|_| url.kind.namespaced())
        && obj.metadata.namespace.as_deref() != Some(ns)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "metadata.namespace: the body says {:?}, the URL says {ns:?}",
                obj.metadata.namespace
            ),
        ));
    }
    if let Some(name) = url.name
        && obj.metadata.name != name
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "metadata.name: the body says {:?}, the URL says {name:?}",
                obj.metadata.name
            ),
        ));
    }
    Ok(obj)
}

fn put_op(
    key: ObjectKey,
    mut obj: Object,
    precondition: crate::store::Precondition,
) -> ApiResult<Op> {
    // The store assigns these; a client's copy must not leak into the stored object.
    obj.metadata.resource_version = None;
    obj.metadata.generation = None;
    obj.metadata.uid = None;
    obj.metadata.deletion_timestamp = None;
    // Status is written by nodes and controllers through the store, never
    // by a client's write of the object: the stored status is kept.
    obj.body.remove("status");
    if obj.metadata.creation_timestamp.is_none() {
        obj.metadata.creation_timestamp = Some(crate::resource::time::now_rfc3339());
    }
    let object = serde_json::to_vec(&obj)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Op::Put {
        key,
        object,
        precondition,
    })
}

/// A ReplicaSet a Deployment controls is written by that Deployment's
/// controller: a user's write would drop the owner reference and leave its
/// pods to nobody. For a ReplicaSet, gives the precondition that keeps the
/// object as read here (the user's own, or absent) until the write lands.
fn user_set_precondition(
    s: &ApiState,
    key: &ObjectKey,
) -> ApiResult<Option<crate::store::Precondition>> {
    if key.kind != Kind::ReplicaSet {
        return Ok(None);
    }
    let Some(live) = s.store.get(key)? else {
        return Ok(Some(crate::store::Precondition::MustNotExist));
    };
    if let Some(owner) = live.metadata.controller_ref() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "replicaset {} is controlled by {} {}, whose controller writes it: change the {} instead",
                key.name, owner.kind, owner.name, owner.kind
            ),
        ));
    }
    Ok(Some(crate::store::Precondition::Version(
        live.resource_version(),
    )))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteResult {
    kind: Kind,
    namespace: String,
    name: String,
    outcome: Outcome,
    resource_version: u64,
}

impl From<OpOutcome> for WriteResult {
    fn from(o: OpOutcome) -> Self {
        WriteResult {
            kind: o.key.kind,
            namespace: o.key.namespace,
            name: o.key.name,
            outcome: o.outcome,
            resource_version: o.resource_version,
        }
    }
}

async fn delete(s: ApiState, key: ObjectKey, q: WriteQuery) -> ApiResult<Response> {
    if q.force != Some(true) {
        refuse_unforced_pod_delete(&s, &key)?;
    }
    let precondition = match q.resource_version {
        Some(v) => crate::store::Precondition::Version(v),
        None => crate::store::Precondition::MustExist,
    };
    let dry = q.dry_run()?;
    let orphaning = propagation::orphans(&q);
    let foreground = q.propagation_policy == Some(propagation::Policy::Foreground)
        && crate::controller::finalizers::holds_deletion(key.kind);
    let mut attempt = 0;
    let out = loop {
        attempt += 1;
        // Orphaning strips the owner from its dependents in the delete's
        // own command when they fit, so no controller sees the owner
        // without its children in between.
        let (strips, together) = match orphaning {
            true => propagation::strip_ops(&s, &key)?,
            false => (Vec::new(), true),
        };
        if !together && dry == writes::DryRun::No {
            propagation::write_apart(&s, strips.clone()).await?;
        }
        let op = if key.kind == Kind::Namespace {
            match namespaces::delete_op(&s, &key.name, precondition)? {
                Some(op) => op,
                None => return Ok(Json(json!({ "results": [] })).into_response()),
            }
        } else if key.kind == Kind::PersistentVolumeClaim {
            match claim_delete_op(&s, &key, precondition)? {
                Some(op) => op,
                None => return Ok(Json(json!({ "results": [] })).into_response()),
            }
        } else if foreground {
            match propagation::foreground_op(&s, &key, precondition)? {
                Some(op) => op,
                None => return Ok(Json(json!({ "results": [] })).into_response()),
            }
        } else {
            match finalized_delete_op(&s, &key, precondition)? {
                Some(op) => op,
                None => return Ok(Json(json!({ "results": [] })).into_response()),
            }
        };
        // Marking a namespace Terminating is conditional on the copy read
        // here; the namespace controller's status write in between is no
        // reason to fail the user's delete (t20 saw it at random). The same
        // holds for a claim the scheduler binds meanwhile, and for any
        // object with finalizers that is marked rather than deleted.
        // So is a dependent an orphaning strips, written meanwhile.
        let marking = matches!(op, Op::Put { .. }) || orphaning;
        let mut ops = match together {
            true => strips,
            false => Vec::new(),
        };
        ops.push(op);
        match writes::commit(&s, Command { ops }, dry).await {
            Err(StoreError::Txn(TxnError::Conflict { .. }))
                if marking && q.resource_version.is_none() && attempt < APPLY_ATTEMPTS =>
            {
                s.store.barrier().await?;
            }
            r => break r?,
        }
    };
    if key.kind == Kind::CustomResourceDefinition && dry == writes::DryRun::No {
        crds::delete_objects(&s, &key.name).await?;
    }
    // The dependents an orphaning changed are not the caller's object.
    let results: Vec<WriteResult> = out
        .into_iter()
        .filter(|o| o.key == key)
        .map(Into::into)
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// Refuses (409) to delete a StatefulSet's pod whose node this node's
/// membership does not see up, unless forced: see
/// `statefulset::delete_needs_force`.
fn refuse_unforced_pod_delete(s: &ApiState, key: &ObjectKey) -> ApiResult<()> {
    if key.kind != Kind::Pod {
        return Ok(());
    }
    let (Some(m), Some(pod)) = (&s.membership, s.store.get(key)?) else {
        return Ok(());
    };
    let health = crate::membership::node_health(m);
    let up = |n: &str| health.get(n).is_some_and(|h| h.is_up());
    match crate::controller::statefulset::delete_needs_force(&pod, up) {
        Some(why) => Err(ApiError::new(StatusCode::CONFLICT, why)),
        None => Ok(()),
    }
}

/// Deleting an object that holds finalizers only marks it
/// (`deletionTimestamp`), as Kubernetes: it goes once whoever put them
/// there has removed them all (the controller manager deletes it then).
/// `None` when it is already marked; a plain delete for the rest.
fn finalized_delete_op(
    s: &ApiState,
    key: &ObjectKey,
    precondition: crate::store::Precondition,
) -> ApiResult<Option<Op>> {
    let plain = Op::Delete {
        key: key.clone(),
        precondition,
    };
    if !crate::controller::finalizers::holds_deletion(key.kind) {
        return Ok(Some(plain));
    }
    let Some(obj) = s.store.get(key)? else {
        return Ok(Some(plain));
    };
    if obj.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
        return Ok(Some(plain));
    }
    mark_op(&obj, key, precondition)
}

/// The write that marks `obj` (stored under `key`) for deletion, at the
/// client's version if it gave one; `None` when it is already marked.
fn mark_op(
    obj: &Object,
    key: &ObjectKey,
    precondition: crate::store::Precondition,
) -> ApiResult<Option<Op>> {
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let version = match precondition {
        crate::store::Precondition::Version(v) => v,
        _ => obj.resource_version(),
    };
    crate::controller::finalizers::mark(
        obj,
        key.clone(),
        crate::store::Precondition::Version(version),
    )
    .map(Some)
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// Deleting a claim only marks it (`deletionTimestamp`, Kubernetes'
/// `kubernetes.io/pvc-protection`): the storage controller deletes it once
/// no pod uses it. `None` when it is already marked.
fn claim_delete_op(
    s: &ApiState,
    key: &ObjectKey,
    precondition: crate::store::Precondition,
) -> ApiResult<Option<Op>> {
    let Some(claim) = s.store.get(key)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("persistentvolumeclaim {:?} not found", key.name),
        ));
    };
    mark_op(&claim, key, precondition)
}

async fn delete_one(
    State(s): State<ApiState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Response> {
    let key = ObjectKey::new(kind_of(&plural)?, &ns, &name);
    delete(s, key, q).await
}

async fn delete_namespace(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Response> {
    delete(s, ObjectKey::new(Kind::Namespace, "", &name), q).await
}
