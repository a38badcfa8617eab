//! `/v1/tokens`: API credentials with roles. The secret is made here,
//! returned once, and only its hash is stored (replicated like any object,
//! so every node can check a token without asking another).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, ApiState, list_body, put_op};
use crate::resource::types::{Role, TokenBody, TokenSpec};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};
use crate::store::{Command, Precondition};

/// The longest description kept, in bytes.
const MAX_DESCRIPTION: usize = 1024;

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateToken {
    name: String,
    role: String,
    #[serde(default)]
    description: Option<String>,
    /// Valid for this long; forever when absent.
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

fn invalid(field: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: {msg}"))
}

/// `POST /v1/tokens`: makes a token and returns it, the only time its
/// secret is shown.
pub(super) async fn create(State(s): State<ApiState>, body: Bytes) -> ApiResult<Response> {
    let req: CreateToken = serde_json::from_slice(&body).map_err(|e| invalid("body", e))?;
    if !crate::resource::names::is_dns_subdomain(&req.name) {
        return Err(invalid(
            "name",
            format!(
                "{:?} is not a valid token name: lower-case letters, digits, '-' and '.', \
                 at most 253",
                req.name
            ),
        ));
    }
    if req.name.starts_with(crate::resource::types::TOKEN_PREFIX) {
        return Err(invalid(
            "name",
            format!(
                "names starting with {:?} are ServiceAccounts' tokens, made by their controller",
                crate::resource::types::TOKEN_PREFIX
            ),
        ));
    }
    let role: Role = req.role.parse().map_err(|e| invalid("role", e))?;
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION)
    {
        return Err(invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION} bytes"),
        ));
    }
    let now = crate::resource::time::now_secs();
    let expires_at = match req.ttl_seconds {
        Some(0) => return Err(invalid("ttlSeconds", "must be at least 1")),
        Some(t) => Some(crate::resource::time::rfc3339(now.saturating_add(t))),
        None => None,
    };
    let (token, secret_sha256) = crate::resource::token::new_token(&req.name);
    let body = TokenBody {
        spec: TokenSpec {
            role,
            secret_sha256,
            description: req.description,
            expires_at: expires_at.clone(),
        },
    };
    let serde_json::Value::Object(body) = serde_json::to_value(&body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a token body is an object",
        ));
    };
    let key = ObjectKey::new(Kind::Token, "", &req.name);
    let obj = Object {
        api_version: Kind::Token.api_version().into(),
        kind: Kind::Token.as_str().into(),
        metadata: ObjectMeta {
            name: req.name.clone(),
            ..Default::default()
        },
        body,
    };
    let op = put_op(key, obj, Precondition::MustNotExist)?;
    s.store.write(Command { ops: vec![op] }).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": req.name,
            "role": role.as_str(),
            "expiresAt": expires_at,
            "token": token,
        })),
    )
        .into_response())
}

/// `GET /v1/tokens`: every token, without secrets (only hashes are kept).
pub(super) async fn list(State(s): State<ApiState>) -> ApiResult<Response> {
    s.store.barrier().await?;
    let (items, rev) = s.store.list(Kind::Token, None)?;
    Ok(list_body(Kind::Token, items, rev).into_response())
}
