//! kube: the Kubernetes REST API next to `/v1`, on every node, so kubectl
//! and client libraries talk to any node of the cluster.
//!
//! It lives inside `api` because it is a second face of the same
//! handlers: objects are written through `/v1`'s create and replace (so
//! manifest validation, admission, quota and the immutable-field guard run
//! the same), read from the same store, watched through the same hub, and
//! the same bearer tokens and roles apply. What is its own: Kubernetes'
//! paths, `Status` errors, list and watch framing, PATCH, and discovery.

use axum::http::{HeaderMap, Method};
use axum::routing::any;

use super::*;

pub mod custom;
pub mod discovery;
pub mod patch;
pub mod path;
pub mod status;
pub mod table;

use super::writes::DryRun;
use path::{Target, qualified};
use status::{KubeError, Verb};

type KubeResult<T> = Result<T, KubeError>;

/// The query parameters Kubernetes' list, watch and write calls carry;
/// strings, so that an odd value is a Status, not an extractor's error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KubeQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<String>,
    dry_run: Option<String>,
}

/// What anyone may read, as Kubernetes' `system:public-info-viewer`:
/// kubectl (and the gcloud dispatcher in front of it) asks `/version`
/// before it sends credentials.
pub(super) fn public_routes() -> Router<ApiState> {
    Router::new().route("/version", get(version))
}

/// The routes behind authentication: discovery, OpenAPI and the objects.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api", get(core_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(group_list))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/api/v1/{*rest}", any(core_objects))
        .route("/apis/{group}/{version}/{*rest}", any(group_objects))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*rest}", get(openapi_group_version))
}

async fn version() -> Json<Value> {
    Json(discovery::version())
}

async fn core_versions(State(s): State<ApiState>) -> Json<Value> {
    Json(discovery::core_versions(&s.me.api_addr))
}

async fn core_resources() -> Response {
    resources("v1")
}

async fn group_list(State(s): State<ApiState>) -> Response {
    let mut list = discovery::group_list(s.usage.is_some());
    match custom::definitions(&s, true).await {
        Ok(defs) => {
            custom::add_groups(&mut list, &defs);
            Json(list).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn group_resources(
    State(s): State<ApiState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    let gv = format!("{group}/{version}");
    if gv == discovery::METRICS_GROUP_VERSION && s.usage.is_none() {
        return resources("");
    }
    if !crate::crd::is_builtin_group(&group) {
        return match custom::definitions(&s, true).await {
            Ok(defs) => match custom::resource_list(&defs, &group, &version) {
                Some(v) => Json(v).into_response(),
                None => resources(&gv),
            },
            Err(e) => e.into_response(),
        };
    }
    resources(&gv)
}

fn resources(gv: &str) -> Response {
    match discovery::resource_list(gv) {
        Some(v) => Json(v).into_response(),
        None => KubeError::new(
            StatusCode::NOT_FOUND,
            format!("the server could not find the requested resource (group version {gv})"),
        )
        .into_response(),
    }
}

async fn openapi_root(State(s): State<ApiState>) -> Response {
    let mut root = discovery::openapi_root();
    match custom::definitions(&s, false).await {
        Ok(defs) => {
            custom::add_openapi_paths(&mut root, &defs);
            Json(root).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn openapi_group_version(State(s): State<ApiState>, Path(rest): Path<String>) -> Response {
    let gv = match rest
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", "v1"] => "v1".to_string(),
        ["apis", g, v] => format!("{g}/{v}"),
        _ => String::new(),
    };
    let custom = match discovery::openapi_group_version(&gv) {
        Some(v) => return Json(v).into_response(),
        None => match custom::definitions(&s, true).await {
            Ok(defs) => custom::openapi_group_version(&defs, &gv),
            Err(e) => return e.into_response(),
        },
    };
    match custom {
        Some(v) => Json(v).into_response(),
        None => KubeError::new(
            StatusCode::NOT_FOUND,
            format!("no OpenAPI document for {rest}"),
        )
        .into_response(),
    }
}

/// One request on objects, whatever its path's group.
struct Call {
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    query: KubeQuery,
    body: Bytes,
    caller: auth::Caller,
}

impl Call {
    /// The request's `Content-Type`, "" when absent or not text.
    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[allow(clippy::too_many_arguments)]
async fn core_objects(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Path(rest): Path<String>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<KubeQuery>,
    body: Bytes,
) -> Response {
    let call = Call {
        method,
        uri,
        headers,
        query,
        body,
        caller,
    };
    objects(s, "v1", &rest, call)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[allow(clippy::too_many_arguments)]
async fn group_objects(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Path((group, version, rest)): Path<(String, String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<KubeQuery>,
    body: Bytes,
) -> Response {
    let call = Call {
        method,
        uri,
        headers,
        query,
        body,
        caller,
    };
    objects(s, &format!("{group}/{version}"), &rest, call)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn method_not_allowed(t: &Target, method: &Method) -> KubeError {
    KubeError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not supported on {}{} by shoal",
            qualified(t.kind),
            if t.name.is_some() { "" } else { " collections" }
        ),
    )
}

async fn objects(s: ApiState, gv: &str, rest: &str, call: Call) -> KubeResult<Response> {
    if let Some((group, version)) = gv.split_once('/')
        && !crate::crd::is_builtin_group(group)
    {
        return custom::objects(s, group, version, rest, call).await;
    }
    let t = path::parse(gv, rest)?;
    if let (Some("log"), Kind::Pod, &Method::GET, Some(ns), Some(name)) = (
        t.subresource.as_deref(),
        t.kind,
        &call.method,
        &t.namespace,
        &t.name,
    ) {
        return pod_log(s, ns, name, &call).await;
    }
    if let (Some("eviction"), Kind::Pod, &Method::POST, Some(ns), Some(name)) = (
        t.subresource.as_deref(),
        t.kind,
        &call.method,
        &t.namespace,
        &t.name,
    ) {
        // kubectl drain evicts through here (it finds `pods/eviction` in
        // discovery): the same decision as `/v1`'s, disruption budgets
        // and Deployment strategies honoured, 429 while they forbid it.
        check_write(&call)?;
        refuse_dry_run(&call, "evictions")?;
        super::eviction::evict(&s, ns, name, &call.body)
            .await
            .map_err(|e| KubeError::from_api(e, Kind::Pod, name, Verb::Write))?;
        return Ok((
            StatusCode::CREATED,
            Json(json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": { "name": name, "kind": "pods" },
            })),
        )
            .into_response());
    }
    if let Some(sub) = &t.subresource {
        return Err(KubeError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the {sub} subresource of {} is not served at the Kubernetes path yet",
                qualified(t.kind)
            ),
        ));
    }
    let write = check_write(&call)?;
    if write && !t.kind.user_writable() {
        return Err(method_not_allowed(&t, &call.method));
    }
    match (&call.method, t.name.clone()) {
        (&Method::GET, None) if is_watch(&call.query) => watch(s, &t, &call),
        (&Method::GET, None) => list(&s, gv, &t, &call).await,
        (&Method::GET, Some(name)) => {
            let o = get_live(&s, &t, &name).await?;
            Ok(match table::wanted(&call.headers) {
                true => Json(table::of(t.kind, &[o], None)).into_response(),
                false => Json(o).into_response(),
            })
        }
        (&Method::POST, None) if t.namespace.is_some() || !t.kind.namespaced() => {
            let dry = dry_run(&call)?;
            create(s, &t, call.body, dry).await
        }
        (&Method::PUT, Some(name)) => {
            let key = key_of(&t, &name);
            let dry = dry_run(&call)?;
            let body = match serde_json::from_slice::<Value>(&call.body) {
                Ok(mut v) => {
                    as_update(t.kind, &mut v);
                    Bytes::from(serde_json::to_vec(&v).map_err(|e| {
                        KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                    })?)
                }
                // The write path reports what is wrong with it.
                Err(_) => call.body,
            };
            super::writes::replace(s, key, body, dry)
                .await
                .map_err(|e| KubeError::from_api(e, t.kind, &name, Verb::Write))
        }
        (&Method::PATCH, Some(name)) => patch_object(s, &t, &name, &call).await,
        (&Method::DELETE, Some(name)) => delete(s, &t, &name, &call).await,
        _ => Err(method_not_allowed(&t, &call.method)),
    }
}

/// The call's `dryRun` (`All` or none; anything else refused).
fn dry_run(call: &Call) -> KubeResult<DryRun> {
    DryRun::parse(call.query.dry_run.as_deref())
        .map_err(|m| KubeError::new(StatusCode::BAD_REQUEST, m))
}

/// Refuses a dry run where shoal cannot decide one without writing.
fn refuse_dry_run(call: &Call, what: &str) -> KubeResult<()> {
    match dry_run(call)? {
        DryRun::No => Ok(()),
        DryRun::All => Err(KubeError::new(
            StatusCode::BAD_REQUEST,
            format!("dryRun is not supported on {what} by shoal: nothing was written"),
        )),
    }
}

/// Refuses what shoal cannot do with a write (an unknown dryRun value; a
/// body that is not JSON); whether the call writes.
fn check_write(call: &Call) -> KubeResult<bool> {
    let write = !matches!(call.method, Method::GET | Method::HEAD);
    if write {
        dry_run(call)?;
    }
    if matches!(call.method, Method::POST | Method::PUT) {
        let ct = call
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if !is_json(ct) {
            // kubectl's typed commands (`create namespace`, `create secret`)
            // send protobuf, which shoal does not decode.
            return Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("shoal reads JSON bodies only, not {ct:?}"),
            ));
        }
    }
    Ok(write)
}

fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media == "application/json" || media.ends_with("+json")
}

/// `pods/NAME/log`: `/v1`'s log stream; its query parameters are
/// Kubernetes' (container, follow, tailLines, previous, sinceSeconds,
/// timestamps).
async fn pod_log(s: ApiState, ns: &str, name: &str, call: &Call) -> KubeResult<Response> {
    let q = Query::<LogQuery>::try_from_uri(&call.uri)
        .map_err(|e| KubeError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    super::pod_log(
        State(s),
        Extension(call.caller.clone()),
        Path((ns.to_string(), name.to_string())),
        q,
    )
    .await
    .map_err(KubeError::from)
}

fn key_of(t: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(t.kind, t.namespace.as_deref().unwrap_or(""), name)
}

fn is_watch(q: &KubeQuery) -> bool {
    matches!(q.watch.as_deref(), Some("true" | "1"))
}

async fn get_live(s: &ApiState, t: &Target, name: &str) -> KubeResult<Object> {
    let api = |e: ApiError| KubeError::from_api(e, t.kind, name, Verb::Read);
    read_barrier(s, None).await.map_err(api)?;
    s.store
        .get(&key_of(t, name))
        .map_err(|e| api(e.into()))?
        .ok_or_else(|| KubeError::not_found(t.kind, name))
}

/// Label and field selectors of a list or watch.
struct Selection {
    labels: Option<crate::resource::types::LabelSelector>,
    fields: Vec<FieldTerm>,
}

/// One `fieldSelector` term: a dotted path equal (or not) to a value.
#[derive(Debug, PartialEq, Eq)]
struct FieldTerm {
    path: String,
    value: String,
    equal: bool,
}

impl Selection {
    fn new(q: &KubeQuery) -> KubeResult<Selection> {
        let labels = match q.label_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(sel) => Some(crate::resource::selector::parse(sel).map_err(|e| {
                KubeError::new(StatusCode::BAD_REQUEST, format!("labelSelector: {e}"))
            })?),
            None => None,
        };
        let fields = match q.field_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(f) => parse_fields(f)?,
            None => Vec::new(),
        };
        Ok(Selection { labels, fields })
    }

    fn matches(&self, o: &Object) -> bool {
        if let Some(l) = &self.labels
            && !l.matches(&o.metadata.labels)
        {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        let v = serde_json::to_value(o).unwrap_or_default();
        self.fields.iter().all(|f| {
            let pointer = format!("/{}", f.path.replace('.', "/"));
            // A field that is absent compares as "" (Kubernetes' unset).
            let actual = match v.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == f.value) == f.equal
        })
    }
}

/// Parses `metadata.name=web,status.phase!=Running`. Any field path is
/// accepted (Kubernetes takes a list per kind; this is a superset).
fn parse_fields(s: &str) -> KubeResult<Vec<FieldTerm>> {
    s.split(',')
        .map(|term| {
            let bad = || {
                KubeError::new(
                    StatusCode::BAD_REQUEST,
                    format!("fieldSelector: {term:?} is not FIELD=VALUE or FIELD!=VALUE"),
                )
            };
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, v, true)
            } else {
                return Err(bad());
            };
            let path = path.trim();
            if path.is_empty() || !path.split('.').all(|s| !s.is_empty()) {
                return Err(bad());
            }
            Ok(FieldTerm {
                path: path.to_string(),
                value: value.trim().to_string(),
                equal,
            })
        })
        .collect()
}

async fn list(s: &ApiState, gv: &str, t: &Target, call: &Call) -> KubeResult<Response> {
    let sel = Selection::new(&call.query)?;
    read_barrier(s, None).await?;
    let (items, rev) = s
        .store
        .list(t.kind, t.namespace.as_deref())
        .map_err(ApiError::from)?;
    let items: Vec<Object> = items.into_iter().filter(|o| sel.matches(o)).collect();
    if table::wanted(&call.headers) {
        return Ok(Json(table::of(t.kind, &items, Some(rev))).into_response());
    }
    Ok(Json(json!({
        "apiVersion": gv,
        "kind": format!("{}List", t.kind.as_str()),
        "metadata": { "resourceVersion": rev.to_string() },
        "items": items,
    }))
    .into_response())
}

/// One watch event line as Kubernetes frames it.
fn event_line(kind: &str, object: &impl Serialize) -> Bytes {
    let mut l = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    l.push(b'\n');
    Bytes::from(l)
}

/// `?watch=true`: without a resourceVersion (or with 0), the current
/// objects as ADDED and then every change, as Kubernetes; from a version,
/// the changes after it, or one ERROR event with a 410 `Status` when the
/// version has left the node's history (the client lists again).
fn watch(s: ApiState, t: &Target, call: &Call) -> KubeResult<Response> {
    let (kind, ns, store) = (t.kind, t.namespace.clone(), s.store.clone());
    let spec = WatchSpec {
        kind: Some(kind),
        namespace: t.namespace.clone(),
        list: Box::new(move || store.list(kind, ns.as_deref())),
        show: Arc::new(|o: &Object| Some(o.clone())),
        table: Arc::new(move |o: &Object| table::of(kind, std::slice::from_ref(o), None)),
    };
    watch_with(s, call, spec)
}

/// Lists the objects a watch starts with, and the revision they are at.
pub(super) type ListFn = Box<dyn FnOnce() -> Result<(Vec<Object>, u64), StoreError> + Send>;
/// An object as a watch shows it; `None`: not this watch's.
pub(super) type ShowFn = Arc<dyn Fn(&Object) -> Option<Object> + Send + Sync>;

/// Which store events a watch sends and how it shows each object.
pub(super) struct WatchSpec {
    /// The store's filter: a kind (`None`: every kind) and a namespace.
    pub kind: Option<Kind>,
    pub namespace: Option<String>,
    /// The current objects and the revision they are at (a watch without
    /// a resourceVersion starts with them).
    pub list: ListFn,
    /// The object as this watch shows it; `None`: not this watch's.
    pub show: ShowFn,
    /// A one-row Table of an object, when the client asked for Tables.
    pub table: Arc<dyn Fn(&Object) -> Value + Send + Sync>,
}

fn watch_with(s: ApiState, call: &Call, spec: WatchSpec) -> KubeResult<Response> {
    let sel = Selection::new(&call.query)?;
    let from = match call.query.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            KubeError::new(
                StatusCode::BAD_REQUEST,
                format!("resourceVersion: {v:?} is not a number"),
            )
        })?),
    };
    let timeout = match call.query.timeout_seconds.as_deref() {
        None | Some("") => None,
        Some(v) => Some(std::time::Duration::from_secs(v.parse::<u64>().map_err(
            |_| {
                KubeError::new(
                    StatusCode::BAD_REQUEST,
                    format!("timeoutSeconds: {v:?} is not a number"),
                )
            },
        )?)),
    };
    let as_table = table::wanted(&call.headers);
    let (show, to_table) = (spec.show, spec.table);
    // Each event's object as the client asked for it: the object, or a
    // one-row Table of it; `None` when the watch does not send it.
    let framed = move |ty: &str, o: &Object| {
        let o = show(o).filter(|o| sel.matches(o))?;
        Some(match as_table {
            true => event_line(ty, &to_table(&o)),
            false => event_line(ty, &o),
        })
    };
    let slot = s.slots.take(&call.caller.client, auth::Stream::Watch)?;
    let (initial, start) = match from {
        Some(v) => (Vec::new(), v),
        None => (spec.list)().map_err(ApiError::from)?,
    };
    let stream = match s.store.watch(spec.kind, spec.namespace, Some(start)) {
        Ok(st) => Ok(st),
        Err(StoreError::Gone { requested, oldest }) => Err(KubeError::new(
            StatusCode::GONE,
            format!("too old resource version: {requested} ({oldest})"),
        )),
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let body = async_stream_body(
        async move |tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>| {
            let _slot = slot;
            let mut stream = match stream {
                Ok(st) => st,
                Err(gone) => {
                    let _ = tx.send(Ok(event_line("ERROR", &gone.to_status()))).await;
                    return;
                }
            };
            for line in initial.iter().filter_map(|o| framed("ADDED", o)) {
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            let end = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(end);
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    () = tx.closed() => return,
                    () = &mut end => return,
                };
                let line = match next {
                    Ok(ev) => {
                        let kind = match ev.event_type {
                            crate::store::EventType::Added => "ADDED",
                            crate::store::EventType::Modified => "MODIFIED",
                            crate::store::EventType::Deleted => "DELETED",
                        };
                        match framed(kind, &ev.object) {
                            Some(line) => line,
                            None => continue,
                        }
                    }
                    Err(e) => {
                        let gone = KubeError::new(StatusCode::GONE, e.to_string());
                        let _ = tx.send(Ok(event_line("ERROR", &gone.to_status()))).await;
                        return;
                    }
                };
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        },
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn create(s: ApiState, t: &Target, body: Bytes, dry: DryRun) -> KubeResult<Response> {
    // For the messages only: the handler parses and validates the body.
    let name = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    super::writes::create(s, t.kind, t.namespace.clone(), body, dry)
        .await
        .map_err(|e| KubeError::from_api(e, t.kind, &name, Verb::Create))
}

async fn delete(s: ApiState, t: &Target, name: &str, call: &Call) -> KubeResult<Response> {
    let q = delete_options(call)?;
    let live = get_live(&s, t, name).await?;
    super::delete(s, key_of(t, name), q)
        .await
        .map_err(|e| KubeError::from_api(e, t.kind, name, Verb::Write))?;
    Ok(Json(status::success(t.kind, name, live.metadata.uid)).into_response())
}

/// A delete's DeleteOptions body as the write query of shoal's delete:
/// the precondition and `propagationPolicy` (or the older
/// `orphanDependents`) are honoured; the grace period is shoal's own.
fn delete_options(call: &Call) -> KubeResult<WriteQuery> {
    let body = &call.body;
    let bad = |m: String| KubeError::new(StatusCode::BAD_REQUEST, m);
    let options = match body.is_empty() {
        true => Value::Null,
        false => {
            serde_json::from_slice::<Value>(body).map_err(|e| bad(format!("DeleteOptions: {e}")))?
        }
    };
    let rv = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                bad(format!(
                    "preconditions.resourceVersion: {v:?} is not a number"
                ))
            })
        })
        .transpose()?;
    let policy = match options.get("propagationPolicy").and_then(Value::as_str) {
        Some(p) => Some(
            super::propagation::Policy::parse(p)
                .map_err(|e| KubeError::new(e.status, e.message))?,
        ),
        None if options.get("orphanDependents").and_then(Value::as_bool) == Some(true) => {
            Some(super::propagation::Policy::Orphan)
        }
        None => None,
    };
    // kubectl sends a delete's dryRun in the body (`"dryRun": ["All"]`);
    // other clients put it in the query.
    let dry_run = match options.get("dryRun") {
        None | Some(Value::Null) => call.query.dry_run.clone(),
        Some(Value::Array(v)) if v.is_empty() => call.query.dry_run.clone(),
        Some(Value::Array(v)) if v.len() == 1 && v[0] == "All" => Some("All".to_string()),
        Some(other) => {
            return Err(bad(format!(
                "dryRun: Unsupported value: {other}: supported values: \"All\""
            )));
        }
    };
    Ok(WriteQuery {
        resource_version: rv,
        consistent: None,
        force: None,
        propagation_policy: policy,
        dry_run,
    })
}

/// Makes a Kubernetes update (PUT, or a patch applied to the live object)
/// what shoal's write path expects. `deletionTimestamp` is the server's
/// (the store keeps the one it has), so it goes. And a Kubernetes update
/// replaces the object, so finalizers it leaves out are removed (how
/// operators let go: a patch to `finalizers: null`, or a PUT without
/// them), while shoal's own writes keep a stored list a write leaves out:
/// say it with an empty list. Only on the kinds that take finalizers from
/// users; the others' are shoal's.
fn as_update(kind: Kind, object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.remove("deletionTimestamp");
    if crate::controller::finalizers::holds_deletion(kind)
        && meta.get("finalizers").is_none_or(Value::is_null)
    {
        meta.insert("finalizers".into(), Value::Array(Vec::new()));
    }
}

async fn patch_object(s: ApiState, t: &Target, name: &str, call: &Call) -> KubeResult<Response> {
    let dry = dry_run(call)?;
    let ct = call.content_type();
    let ty = match patch::PatchType::from_content_type(ct) {
        Some(patch::PatchType::Apply) => {
            return Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "server-side apply (application/apply-patch+yaml) is not supported by shoal yet; \
                 use client-side `kubectl apply`",
            ));
        }
        Some(ty) => ty,
        None => {
            return Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the patch Content-Type {ct:?} is not one of application/json-patch+json, \
                     application/merge-patch+json, application/strategic-merge-patch+json"
                ),
            ));
        }
    };
    let p: Value = serde_json::from_slice(&call.body).map_err(|e| {
        KubeError::new(
            StatusCode::BAD_REQUEST,
            format!("the patch is not JSON: {e}"),
        )
    })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = get_live(&s, t, name).await?;
        let live_v = serde_json::to_value(&live)
            .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut out = patch::apply(ty, t.kind, &live_v, &p).map_err(|e| match e {
            patch::PatchError::Malformed(_) => {
                KubeError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            _ => KubeError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        })?;
        // A patch that names a resourceVersion is the client's own lock;
        // otherwise the write is conditional on the object patched here.
        let locked =
            out.pointer("/metadata/resourceVersion") != live_v.pointer("/metadata/resourceVersion");
        if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut)
            && !locked
        {
            meta.insert(
                "resourceVersion".into(),
                live.resource_version().to_string().into(),
            );
        }
        if let Some(o) = out.as_object_mut() {
            o.remove("status");
        }
        as_update(t.kind, &mut out);
        let body = serde_json::to_vec(&out)
            .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        match super::writes::replace(s.clone(), key_of(t, name), Bytes::from(body), dry).await {
            Err(e)
                if e.status == StatusCode::CONFLICT
                    && !locked
                    && e.message.contains("resourceVersion")
                    && attempt < APPLY_ATTEMPTS => {}
            r => return r.map_err(|e| KubeError::from_api(e, t.kind, name, Verb::Write)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors() {
        let f = parse_fields("metadata.name=web,spec.nodeName!=n1").unwrap();
        assert_eq!(
            f,
            vec![
                FieldTerm {
                    path: "metadata.name".into(),
                    value: "web".into(),
                    equal: true
                },
                FieldTerm {
                    path: "spec.nodeName".into(),
                    value: "n1".into(),
                    equal: false
                },
            ]
        );
        assert!(parse_fields("metadata.name").is_err());
        assert!(parse_fields("metadata..name=x").is_err());
        let sel = Selection {
            labels: Some(crate::resource::selector::parse("app=web").unwrap()),
            fields: parse_fields("metadata.name=a,spec.nodeName=").unwrap(),
        };
        let obj = |name: &str, app: &str, node: Option<&str>| {
            let mut v = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": app}}, "spec": {}});
            if let Some(n) = node {
                v["spec"]["nodeName"] = n.into();
            }
            serde_json::from_value::<Object>(v).unwrap()
        };
        assert!(sel.matches(&obj("a", "web", None)));
        assert!(
            !sel.matches(&obj("a", "web", Some("n1"))),
            "unset compares as empty"
        );
        assert!(!sel.matches(&obj("b", "web", None)));
        assert!(!sel.matches(&obj("a", "db", None)));
    }

    #[test]
    fn bodies_must_be_json() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/vnd.kubernetes.protobuf"));
        assert!(!is_json("application/yaml"));
    }

    #[test]
    fn watch_events_are_framed_as_kubernetes() {
        let l = event_line("ADDED", &json!({"kind": "Pod"}));
        assert!(l.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v, json!({"type": "ADDED", "object": {"kind": "Pod"}}));
    }
}
