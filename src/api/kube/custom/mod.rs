//! Objects of custom kinds at their Kubernetes paths
//! (`/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/status]]`), and the
//! discovery and OpenAPI entries of the definitions that make them.
//!
//! Definitions are read from the replica on each request, so a definition
//! written through any node is served by every node once replicated (a
//! barrier first when the path names one this replica lacks). Objects are
//! validated against their version's schema here, then written straight
//! to the store under `crd::object_key`: the built-in kinds' handlers
//! (manifest validation, admission) have nothing to say about them.

use super::*;
use crate::crd::{Definition, ServedVersion};

mod manifest;
mod scale;

pub(in crate::api) use manifest::ManifestObject;

/// The stored definitions; after a barrier when `fresh` (discovery right
/// after a definition was written through another node must see it).
pub(in crate::api) async fn definitions(s: &ApiState, fresh: bool) -> KubeResult<Vec<Definition>> {
    if fresh {
        read_barrier(s, None).await?;
    }
    let (items, _) = s
        .store
        .list_shared(Kind::CustomResourceDefinition, None)
        .map_err(ApiError::from)?;
    Ok(items
        .iter()
        .filter_map(|o| Definition::from_object(o))
        .collect())
}

/// The served versions of `group`, preferred (the storage version if
/// served) first.
fn group_versions<'a>(defs: &'a [Definition], group: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for d in defs.iter().filter(|d| d.group == group) {
        if let Some(v) = d.storage_version().filter(|v| v.served)
            && !out.contains(&v.name.as_str())
        {
            out.insert(0, &v.name);
        }
        for v in d.versions.iter().filter(|v| v.served) {
            if !out.contains(&v.name.as_str()) {
                out.push(&v.name);
            }
        }
    }
    out
}

/// Adds the definitions' groups to `/apis`.
pub(super) fn add_groups(list: &mut Value, defs: &[Definition]) {
    let mut groups: Vec<&str> = defs.iter().map(|d| d.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    let Some(out) = list["groups"].as_array_mut() else {
        return;
    };
    for g in groups {
        let versions: Vec<Value> = group_versions(defs, g)
            .into_iter()
            .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
            .collect();
        let Some(preferred) = versions.first().cloned() else {
            continue;
        };
        out.push(json!({"name": g, "versions": versions, "preferredVersion": preferred}));
    }
}

const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/apis/GROUP/VERSION` of custom kinds; `None` when no definition serves it.
pub(super) fn resource_list(defs: &[Definition], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for d in defs.iter().filter(|d| d.group == group) {
        let Some(v) = d.served(version) else { continue };
        let mut r = json!({
            "name": d.names.plural,
            "singularName": d.names.singular,
            "namespaced": d.namespaced,
            "kind": d.names.kind,
            "verbs": VERBS,
        });
        if !d.names.short_names.is_empty() {
            r["shortNames"] = json!(d.names.short_names);
        }
        if !d.names.categories.is_empty() {
            r["categories"] = json!(d.names.categories);
        }
        resources.push(r);
        if v.status {
            resources.push(json!({
                "name": format!("{}/status", d.names.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.names.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if v.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", d.names.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": resources,
    }))
}

/// Adds the custom group versions to `/openapi/v3`, so kubectl finds the
/// `fieldValidation` parameter and leaves validation to the server.
pub(super) fn add_openapi_paths(root: &mut Value, defs: &[Definition]) {
    let Some(paths) = root["paths"].as_object_mut() else {
        return;
    };
    for d in defs {
        for v in d.versions.iter().filter(|v| v.served) {
            let p = format!("apis/{}/{}", d.group, v.name);
            // Definitions change at run time: the hash follows their names
            // and versions so a client's cached document is refreshed.
            let url = format!(
                "/openapi/v3/{p}?hash=shoal-{}-{}",
                env!("CARGO_PKG_VERSION"),
                defs.len()
            );
            paths.insert(p, json!({"serverRelativeURL": url}));
        }
    }
}

/// `/openapi/v3/apis/GROUP/VERSION` for custom kinds: their paths with
/// the `fieldValidation` parameter (no schemas: `kubectl explain` has
/// nothing to show for them yet).
pub(super) fn openapi_group_version(defs: &[Definition], gv: &str) -> Option<Value> {
    let (group, version) = gv.split_once('/')?;
    let mut paths = serde_json::Map::new();
    for d in defs.iter().filter(|d| d.group == group) {
        if d.served(version).is_none() {
            continue;
        }
        let base = format!("/apis/{gv}");
        let path = match d.namespaced {
            true => format!(
                "{base}/namespaces/{{namespace}}/{}/{{name}}",
                d.names.plural
            ),
            false => format!("{base}/{}/{{name}}", d.names.plural),
        };
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", d.names.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": d.names.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            path,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "shoal", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// What a custom path names.
struct Target {
    def: Definition,
    version: ServedVersion,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
    /// The path names the scale subresource.
    scale: bool,
}

impl Target {
    fn api_version(&self) -> String {
        self.def.api_version(&self.version.name)
    }

    fn key(&self, name: &str) -> ObjectKey {
        self.def.key(self.namespace.as_deref(), name)
    }

    /// The object as served at this version: versions of one definition
    /// differ in `apiVersion` only (conversion strategy None).
    fn shown(&self, mut o: Object) -> Object {
        o.api_version = self.api_version();
        o
    }

    fn details(&self, name: &str) -> Box<status::Details> {
        Box::new(status::Details {
            name: name.to_string(),
            group: self.def.group.clone(),
            kind: self.def.names.plural.clone(),
            uid: None,
            causes: Vec::new(),
        })
    }

    fn error(&self, code: StatusCode, name: &str, message: String) -> KubeError {
        KubeError {
            details: Some(self.details(name)),
            ..KubeError::new(code, message)
        }
    }

    fn not_found(&self, name: &str) -> KubeError {
        let msg = format!("{} {name:?} not found", self.def.name);
        self.error(StatusCode::NOT_FOUND, name, msg)
    }

    /// `Website.example.com "x" is invalid: spec.size: Invalid value: ...`
    fn invalid(&self, name: &str, errors: &[String]) -> KubeError {
        let what = format!("{}.{}", self.def.names.kind, self.def.group);
        let msg = match errors {
            [one] => format!("{what} {name:?} is invalid: {one}"),
            many => format!("{what} {name:?} is invalid: [{}]", many.join(", ")),
        };
        let mut e = self.error(StatusCode::UNPROCESSABLE_ENTITY, name, msg);
        if let Some(d) = e.details.as_mut() {
            d.causes = status::causes(errors);
        }
        e
    }

    /// A store error of a write, as Kubernetes words it.
    fn store_error(&self, name: &str, e: StoreError) -> KubeError {
        let what = &self.def.name;
        match &e {
            StoreError::Txn(TxnError::AlreadyExists { .. }) => self
                .error(
                    StatusCode::CONFLICT,
                    name,
                    format!("{what} {name:?} already exists"),
                )
                .with_reason("AlreadyExists"),
            StoreError::Txn(TxnError::NotFound { .. }) => self.not_found(name),
            StoreError::Txn(TxnError::Conflict { .. }) => self.error(
                StatusCode::CONFLICT,
                name,
                format!(
                    "Operation cannot be fulfilled on {what} {name:?}: the object has been \
                     modified; please apply your changes to the latest version and try again ({e})"
                ),
            ),
            _ => {
                let a = ApiError::from(e);
                self.error(a.status, name, a.message)
            }
        }
    }
}

impl KubeError {
    fn with_reason(mut self, reason: &'static str) -> KubeError {
        self.reason = reason;
        self
    }
}

/// Resolves `rest` against the definitions serving `group/version`; a
/// barrier and a second look when this replica knows none.
async fn target(s: &ApiState, group: &str, version: &str, rest: &str) -> KubeResult<Target> {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(KubeError::new(
            StatusCode::NOT_FOUND,
            format!("the server could not find the requested resource ({rest})"),
        ));
    }
    let (namespace, plural, tail) = match segs.as_slice() {
        ["namespaces", ns, plural, tail @ ..] => (Some(ns.to_string()), *plural, tail),
        [plural, tail @ ..] => (None, *plural, tail),
        [] => unreachable!("split yields at least one segment"),
    };
    let find = |defs: Vec<Definition>| {
        defs.into_iter().find_map(|d| {
            let v = d.served(version).cloned()?;
            (d.group == group && d.names.plural == plural).then_some((d, v))
        })
    };
    let found = match find(definitions(s, false).await?) {
        Some(f) => Some(f),
        None => find(definitions(s, true).await?),
    };
    let Some((def, version)) = found else {
        return Err(KubeError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the server could not find the requested resource ({plural} in {group}/{version})"
            ),
        ));
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(*sub)),
        _ => {
            return Err(KubeError::new(
                StatusCode::NOT_FOUND,
                format!("the server could not find the requested resource ({rest})"),
            ));
        }
    };
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(KubeError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{} is namespaced: use .../namespaces/NAMESPACE/{plural}/NAME",
                def.name
            ),
        ));
    }
    if !def.namespaced && namespace.is_some() {
        return Err(KubeError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{} is cluster-scoped: it has no namespace in its path",
                def.name
            ),
        ));
    }
    let (status, scale) = match sub {
        None => (false, false),
        Some("status") if version.status => (true, false),
        Some("scale") if version.scale.is_some() => (false, true),
        Some(other) => {
            return Err(KubeError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "the {other} subresource of {} is not served (its definition does not enable it)",
                    def.name
                ),
            ));
        }
    };
    Ok(Target {
        def,
        version,
        namespace,
        name,
        status,
        scale,
    })
}

/// Every call on custom objects.
pub(super) async fn objects(
    s: ApiState,
    group: &str,
    version: &str,
    rest: &str,
    call: Call,
) -> KubeResult<Response> {
    let t = target(&s, group, version, rest).await?;
    check_write(&call)?;
    super::refuse_dry_run(&call, "custom resources")?;
    if t.scale {
        return scale::serve(&s, &t, &call).await;
    }
    match (&call.method, t.name.clone(), t.status) {
        (&Method::GET, None, false) if is_watch(&call.query) => watch(s, t, &call),
        (&Method::GET, None, false) => list(&s, &t, &call).await,
        (&Method::GET, Some(name), _) => {
            let o = t.shown(live(&s, &t, &name).await?);
            Ok(match table::wanted(&call.headers) && !t.status {
                true => Json(table_of(&t, &[o], None)).into_response(),
                false => Json(o).into_response(),
            })
        }
        (&Method::POST, None, false) if t.namespace.is_some() || !t.def.namespaced => {
            let obj = prepare(&t, None, &call.body)?;
            let name = obj.metadata.name.clone();
            if t.namespace.is_some() {
                super::super::namespaces::admit(&s, &t.key(&name), &HashSet::new())
                    .await
                    .map_err(|e| t.error(e.status, &name, e.message))?;
            }
            let out = put(&s, &t, obj, crate::store::Precondition::MustNotExist).await?;
            Ok((StatusCode::CREATED, Json(out)).into_response())
        }
        (&Method::PUT, Some(name), status) => {
            let obj = prepare(&t, Some(&name), &call.body)?;
            let out = match status {
                true => set_status(&s, &t, obj).await?,
                false => replace(&s, &t, obj).await?,
            };
            Ok(Json(out).into_response())
        }
        (&Method::PATCH, Some(name), _) => patch_object(&s, &t, &name, &call).await,
        (&Method::DELETE, Some(name), false) => delete(&s, &t, &name, &call).await,
        _ => Err(KubeError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not supported on {} here", call.method, t.def.name),
        )),
    }
}

async fn live(s: &ApiState, t: &Target, name: &str) -> KubeResult<Object> {
    read_barrier(s, None).await?;
    s.store
        .get(&t.key(name))
        .map_err(ApiError::from)?
        .filter(|o| t.def.owns(o))
        .ok_or_else(|| t.not_found(name))
}

/// Parses, checks and defaults a body for `t` (`name`: the URL's). For a
/// status write only `status` is checked; otherwise `status` is kept out
/// when the definition makes it a subresource, as Kubernetes.
fn prepare(t: &Target, name: Option<&str>, body: &[u8]) -> KubeResult<Object> {
    let bad = |m: String| KubeError::new(StatusCode::BAD_REQUEST, m);
    let shown_name = name.unwrap_or_default();
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(bad("the body must be a JSON object".into()));
    };
    let want = t.api_version();
    if map.get("apiVersion").and_then(Value::as_str) != Some(want.as_str()) {
        return Err(t.invalid(
            shown_name,
            &[format!(
                "apiVersion: Invalid value: {}: must be {want:?}",
                shown(map.get("apiVersion"))
            )],
        ));
    }
    if map.get("kind").and_then(Value::as_str) != Some(t.def.names.kind.as_str()) {
        return Err(t.invalid(
            shown_name,
            &[format!(
                "kind: Invalid value: {}: must be {:?}",
                shown(map.get("kind")),
                t.def.names.kind
            )],
        ));
    }
    let meta = map.remove("metadata").unwrap_or_else(|| json!({}));
    let mut meta: crate::resource::ObjectMeta =
        serde_path_to_error::deserialize(meta).map_err(|e| {
            t.invalid(
                shown_name,
                &[format!("metadata.{}: {}", e.path(), e.inner())],
            )
        })?;
    if meta.name.is_empty()
        && let Some(n) = name
    {
        meta.name = n.to_string();
    }
    if let Some(n) = name
        && meta.name != n
    {
        return Err(bad(format!(
            "metadata.name: the body says {:?}, the URL says {n:?}",
            meta.name
        )));
    }
    match (&t.namespace, meta.namespace.as_deref()) {
        (Some(url), Some(body)) if url != body => {
            return Err(bad(format!(
                "metadata.namespace: the body says {body:?}, the URL says {url:?}"
            )));
        }
        (Some(url), None) => meta.namespace = Some(url.clone()),
        _ => {}
    }
    crate::manifest::crds::check_custom_metadata(&mut meta, t.def.namespaced)
        .map_err(|e| t.invalid(&meta.name, &[e.to_string()]))?;
    map.remove("apiVersion");
    map.remove("kind");
    let schema = &t.version.schema;
    let errors = if t.status {
        // Only the status is this write's.
        let mut st = map.remove("status").unwrap_or(Value::Null);
        let errors = match schema.pointer("/properties/status") {
            Some(sub) if !st.is_null() => crate::crd::schema::validate(sub, &mut st, "status"),
            _ => Vec::new(),
        };
        map.clear();
        if !st.is_null() {
            map.insert("status".into(), st);
        }
        errors
    } else {
        if t.version.status {
            map.remove("status");
        }
        let mut v = Value::Object(std::mem::take(&mut map));
        let errors = crate::crd::schema::validate(schema, &mut v, "");
        if let Value::Object(m) = v {
            map = m;
        }
        errors
    };
    if !errors.is_empty() {
        return Err(t.invalid(&meta.name, &errors));
    }
    Ok(Object {
        api_version: t.def.api_version(
            &t.def
                .storage_version()
                .map_or(t.version.name.clone(), |v| v.name.clone()),
        ),
        kind: t.def.names.kind.clone(),
        metadata: meta,
        body: map,
    })
}

fn shown(v: Option<&Value>) -> String {
    v.map_or_else(|| "null".to_string(), Value::to_string)
}

/// Writes an object (create or replace) and answers with it as stored.
async fn put(
    s: &ApiState,
    t: &Target,
    mut obj: Object,
    precondition: crate::store::Precondition,
) -> KubeResult<Object> {
    let name = obj.metadata.name.clone();
    obj.metadata.resource_version = None;
    obj.metadata.generation = None;
    obj.metadata.uid = None;
    obj.metadata.deletion_timestamp = None;
    // A Kubernetes write replaces the object: finalizers it leaves out go
    // (the store keeps a stored list a write leaves out).
    if obj.metadata.finalizers.is_none() {
        obj.metadata.finalizers = Some(Vec::new());
    }
    if obj.metadata.creation_timestamp.is_none() {
        obj.metadata.creation_timestamp = Some(crate::resource::time::now_rfc3339());
    }
    let object = serde_json::to_vec(&obj)
        .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let op = Op::Put {
        key: t.key(&name),
        object,
        precondition,
    };
    stored(s, t, &name, vec![op]).await
}

/// Runs a command and returns its first object as served at `t`'s version.
async fn stored(s: &ApiState, t: &Target, name: &str, ops: Vec<Op>) -> KubeResult<Object> {
    let out = s
        .store
        .write(Command { ops })
        .await
        .map_err(|e| t.store_error(name, e))?;
    let bytes = out
        .into_iter()
        .rev()
        .find(|o| o.key == t.key(name))
        .map(|o| o.object)
        .unwrap_or_default();
    let o: Object = serde_json::from_slice(&bytes)
        .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(t.shown(o))
}

fn precondition_of(t: &Target, obj: &Object) -> KubeResult<crate::store::Precondition> {
    Ok(match obj.metadata.resource_version.as_deref() {
        Some(rv) => crate::store::Precondition::Version(rv.parse().map_err(|_| {
            t.invalid(
                &obj.metadata.name,
                &[format!(
                    "metadata.resourceVersion: Invalid value: {rv:?}: not a number"
                )],
            )
        })?),
        None => crate::store::Precondition::MustExist,
    })
}

async fn replace(s: &ApiState, t: &Target, obj: Object) -> KubeResult<Object> {
    let p = precondition_of(t, &obj)?;
    put(s, t, obj, p).await
}

/// The status subresource: only `status` changes, conditional on the
/// body's resourceVersion when it names one.
async fn set_status(s: &ApiState, t: &Target, obj: Object) -> KubeResult<Object> {
    let name = obj.metadata.name.clone();
    let live = live(s, t, &name).await?;
    let status = obj.body.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut ops = Vec::new();
    if let crate::store::Precondition::Version(v) = precondition_of(t, &obj)? {
        ops.push(Op::Check {
            key: t.key(&name),
            version: v,
        });
    }
    ops.push(Op::SetStatus {
        key: t.key(&name),
        uid: live.metadata.uid.clone(),
        status: serde_json::to_vec(&status)
            .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    });
    stored(s, t, &name, ops).await
}

async fn delete(s: &ApiState, t: &Target, name: &str, call: &Call) -> KubeResult<Response> {
    let q = super::delete_options(call)?;
    let o = live(s, t, name).await?;
    // The built-in kinds' delete: an object holding finalizers is only
    // marked (its operator lets go, and the collector deletes it then),
    // and the propagation policy is honoured as for them.
    crate::api::delete(s.clone(), t.key(name), q)
        .await
        .map_err(|e| KubeError::new(e.status, e.message))?;
    let mut details = t.details(name);
    details.uid = o.metadata.uid;
    Ok(Json(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }))
    .into_response())
}

async fn patch_object(s: &ApiState, t: &Target, name: &str, call: &Call) -> KubeResult<Response> {
    let ct = call.content_type();
    let ty = match patch::PatchType::from_content_type(ct) {
        Some(ty @ (patch::PatchType::Json | patch::PatchType::Merge)) => ty,
        _ => {
            // As Kubernetes: custom kinds have no merge keys to merge by.
            return Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the patch Content-Type {ct:?} is not supported for custom resources: use \
                     application/merge-patch+json or application/json-patch+json"
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
        let live = t.shown(live(s, t, name).await?);
        let live_v = serde_json::to_value(&live)
            .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut out = patch::apply(ty, Kind::CustomObject, &live_v, &p).map_err(|e| match e {
            patch::PatchError::Malformed(_) => {
                KubeError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            _ => KubeError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        })?;
        // As for built-in kinds: unless the patch names a resourceVersion,
        // the write is conditional on the object patched here.
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
        let body = serde_json::to_vec(&out)
            .map_err(|e| KubeError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let obj = prepare(t, Some(name), &body)?;
        let r = match t.status {
            true => set_status(s, t, obj).await,
            false => replace(s, t, obj).await,
        };
        match r {
            Err(e) if e.code == StatusCode::CONFLICT && !locked && attempt < APPLY_ATTEMPTS => {}
            r => return r.map(|o| Json(o).into_response()),
        }
    }
}

async fn list(s: &ApiState, t: &Target, call: &Call) -> KubeResult<Response> {
    let sel = Selection::new(&call.query)?;
    read_barrier(s, None).await?;
    let (items, rev) = s
        .store
        .list(Kind::CustomObject, t.namespace.as_deref())
        .map_err(ApiError::from)?;
    let items: Vec<Object> = items
        .into_iter()
        .filter(|o| t.def.owns(o) && sel.matches(o))
        .map(|o| t.shown(o))
        .collect();
    if table::wanted(&call.headers) {
        return Ok(Json(table_of(t, &items, Some(rev))).into_response());
    }
    Ok(Json(json!({
        "apiVersion": t.api_version(),
        "kind": t.def.names.list_kind,
        "metadata": { "resourceVersion": rev.to_string() },
        "items": items,
    }))
    .into_response())
}

fn watch(s: ApiState, t: Target, call: &Call) -> KubeResult<Response> {
    let store = s.store.clone();
    let ns = t.namespace.clone();
    let t = Arc::new(t);
    let (t1, t2) = (t.clone(), t.clone());
    let spec = WatchSpec {
        // The store filters watches by built-in kind: custom objects are
        // picked out by the definition here.
        kind: None,
        namespace: t.namespace.clone(),
        list: Box::new(move || store.list(Kind::CustomObject, ns.as_deref())),
        show: Arc::new(move |o: &Object| t1.def.owns(o).then(|| t1.shown(o.clone()))),
        table: Arc::new(move |o: &Object| table_of(&t2, std::slice::from_ref(o), None)),
    };
    watch_with(s, call, spec)
}

/// A Table of custom objects: NAME, the version's printer columns (or
/// AGE when it has none), as Kubernetes prints them.
fn table_of(t: &Target, items: &[Object], rev: Option<u64>) -> Value {
    let cols = &t.version.columns;
    let mut columns = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "", "priority": 0})];
    if cols.is_empty() {
        columns.push(
            json!({"name": "Age", "type": "date", "format": "", "description": "",
            "priority": 0}),
        );
    }
    for c in cols {
        columns.push(json!({
            "name": c.name,
            "type": c.type_,
            "format": c.format.clone().unwrap_or_default(),
            "description": c.description.clone().unwrap_or_default(),
            "priority": c.priority.unwrap_or(0),
        }));
    }
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|o| {
            let v = serde_json::to_value(o).unwrap_or_default();
            let mut cells = vec![json!(o.metadata.name)];
            if cols.is_empty() {
                cells.push(json!(crate::columns::cells::age(&v)));
            }
            for c in cols {
                let cell = match crate::crd::column_value(&v, &c.json_path) {
                    None | Some(Value::Null) => Value::Null,
                    Some(Value::String(s)) if c.type_ == "date" => {
                        json!(crate::columns::cells::since(&json!({ "t": s }), &["t"]))
                    }
                    Some(x @ (Value::Object(_) | Value::Array(_))) => json!(x.to_string()),
                    Some(x) => x.clone(),
                };
                cells.push(cell);
            }
            cells
        })
        .collect();
    super::table::assemble(columns, rows, items, rev)
}
