//! The web UI at `/ui`: a one-page app of plain HTML, CSS and JavaScript
//! embedded in the binary (no framework, no CDN), and `GET /v1/watch`, one
//! watch stream over several kinds, because a browser holds at most six
//! HTTP/1.1 connections to a host and the UI follows a dozen kinds at once.
//!
//! The page itself needs no token (it holds nothing but code); every call
//! it makes goes through the API's authentication like any other client's.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiResult, ApiState, auth, watch_response};
use crate::resource::Kind;

/// The page: markup only; script and style come from the files below so
/// the Content-Security-Policy can forbid inline code.
const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Only this origin's own script, style and API; no frames, no forms
/// posted anywhere, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Kinds one `/v1/watch` may carry: what the UI shows. Secrets and tokens
/// are never among them, whatever the caller's role.
const WATCHABLE: &[Kind] = &[
    Kind::Node,
    Kind::Pod,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::Job,
    Kind::CronJob,
    Kind::Event,
    Kind::Service,
    Kind::HorizontalPodAutoscaler,
];

/// The asset routes; they sit outside the authentication layer.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
}

async fn index(h: HeaderMap) -> Response {
    asset(&h, INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js(h: HeaderMap) -> Response {
    asset(&h, APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css(h: HeaderMap) -> Response {
    asset(&h, APP_CSS, "text/css; charset=utf-8")
}

/// The entity tag of an asset: its content's hash, so a new binary's
/// assets are fetched again and an unchanged one costs a 304.
fn etag(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&d[..12]))
}

fn asset(req: &HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let tag = etag(body);
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load: an upgraded node serves its own page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WatchQuery {
    /// Comma-separated kinds (plural or short names).
    kinds: String,
    /// Events after this revision (the smallest of the lists' revisions).
    resource_version: Option<u64>,
}

/// The kinds a `kinds=` parameter names, each checked against what the
/// multi-kind watch carries and what `role` may read.
fn parse_kinds(kinds: &str, role: crate::resource::types::Role) -> Result<HashSet<Kind>, ApiError> {
    let mut out = HashSet::new();
    for word in kinds.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let kind = Kind::from_user(word).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("kinds: unknown resource type {word:?}"),
            )
        })?;
        if !WATCHABLE.contains(&kind) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "kinds: {word:?} cannot be watched here; watch /v1/{}?watch=true",
                    kind.plural()
                ),
            ));
        }
        if !auth::may_read(role, kind) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("role {} may not read {}", role.as_str(), kind.plural()),
            ));
        }
        out.insert(kind);
    }
    if out.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "kinds: name at least one resource type",
        ));
    }
    Ok(out)
}

/// `GET /v1/watch?kinds=pods,deployments&resourceVersion=N`: the events of
/// those kinds in every namespace, newline-delimited JSON as the
/// single-kind watch; ends with an `ERROR` line (code 410) when the client
/// fell behind and must list again.
pub(super) async fn watch_kinds(
    State(s): State<ApiState>,
    Extension(caller): Extension<auth::Caller>,
    Query(q): Query<WatchQuery>,
) -> ApiResult<Response> {
    let kinds = parse_kinds(&q.kinds, caller.role)?;
    let slot = s.slots.take(&caller.client, auth::Stream::Watch)?;
    let stream = s.store.watch(None, None, q.resource_version)?;
    Ok(watch_response(slot, stream, move |o| {
        o.kind().is_some_and(|k| kinds.contains(&k))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::Role;

    #[test]
    fn kinds_are_parsed_and_secrets_refused() {
        let k = parse_kinds("pods, deploy,sts", Role::View).expect("parsed");
        assert_eq!(
            k,
            HashSet::from([Kind::Pod, Kind::Deployment, Kind::StatefulSet])
        );
        assert_eq!(
            parse_kinds("pods,secrets", Role::Admin)
                .err()
                .map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_kinds("tokens", Role::Admin).err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_kinds("pods", Role::Metrics).err().map(|e| e.status),
            Some(StatusCode::FORBIDDEN)
        );
        assert!(parse_kinds(" , ", Role::Admin).is_err());
        assert!(parse_kinds("gizmos", Role::Admin).is_err());
    }

    #[test]
    fn assets_carry_type_policy_and_revalidate() {
        let r = asset(&HeaderMap::new(), APP_JS, "text/javascript; charset=utf-8");
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        let tag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(
            asset(&h, APP_JS, "text/javascript").status(),
            StatusCode::NOT_MODIFIED
        );
        // The page loads its code from files, never inline.
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="));
        assert!(INDEX_HTML.contains("/ui/app.js") && INDEX_HTML.contains("/ui/app.css"));
    }
}
