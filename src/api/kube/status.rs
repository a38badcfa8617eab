//! Errors as Kubernetes' `Status` objects: kubectl and client libraries
//! read `reason` (NotFound, AlreadyExists, Conflict, ...) and `code`, and
//! print `message` after "Error from server (REASON):".

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::path::{PathError, qualified};
use crate::api::ApiError;
use crate::resource::Kind;

/// A failed Kubernetes API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// The object concerned, when there is one (boxed: errors stay small).
    pub details: Option<Box<Details>>,
}

/// `Status.details`: which object the error is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// The resource's plural, as Kubernetes puts it here.
    pub kind: String,
    /// The object's uid (a delete's answer; kubectl waits on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// What is wrong, field by field: kubectl prints an `Invalid` error's
    /// causes and nothing of its message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// One `Status.details.causes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

/// Causes of `field: message` lines (`spec.replicas: Invalid value: ...`),
/// each split at its first `": "` when what precedes is a field path.
pub fn causes(errors: &[String]) -> Vec<Cause> {
    errors
        .iter()
        .map(|e| {
            let (field, message) = match e.split_once(": ") {
                Some((f, m)) if !f.is_empty() && !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => (String::new(), e.clone()),
            };
            Cause {
                reason: "FieldValueInvalid",
                message,
                field,
            }
        })
        .collect()
}

impl Details {
    /// Details naming the object `name` of `kind`.
    pub fn of(kind: Kind, name: &str) -> Details {
        Details {
            name: name.to_string(),
            group: kind
                .api_version()
                .split_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: kind.plural().to_string(),
            uid: None,
            causes: Vec::new(),
        }
    }
}

/// The `reason` Kubernetes gives a status code.
pub fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// What a request was doing, so a bare status becomes Kubernetes' message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Read,
    Create,
    Write,
}

impl KubeError {
    /// An error with the usual reason for `code`.
    pub fn new(code: StatusCode, message: impl Into<String>) -> KubeError {
        KubeError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
        }
    }

    /// `deployments.apps "web" not found`, as kubectl prints it.
    pub fn not_found(kind: Kind, name: &str) -> KubeError {
        KubeError {
            details: Some(Box::new(Details::of(kind, name))),
            ..KubeError::new(
                StatusCode::NOT_FOUND,
                format!("{} {name:?} not found", qualified(kind)),
            )
        }
    }

    /// Maps shoal's own API error for a request on `kind`/`name` (what a
    /// create's 409 means differs from an update's).
    pub fn from_api(e: ApiError, kind: Kind, name: &str, verb: Verb) -> KubeError {
        let what = qualified(kind);
        let (reason, message) = match (e.status.as_u16(), verb) {
            (404, _) => ("NotFound", format!("{what} {name:?} not found")),
            (409, Verb::Create) if e.message.contains("already exists") => {
                ("AlreadyExists", format!("{what} {name:?} already exists"))
            }
            (409, _) if e.message.contains("conflict") || e.message.contains("version") => (
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {what} {name:?}: the object has been \
                     modified; please apply your changes to the latest version and try again ({})",
                    e.message
                ),
            ),
            (422, _) => (
                "Invalid",
                format!("{what} {name:?} is invalid: {}", e.message),
            ),
            (code, _) => (reason_for(e.status), {
                let _ = code;
                e.message.clone()
            }),
        };
        let mut details = Details::of(kind, name);
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            // The manifest's errors lead with the object ("Kind name: ").
            let label = format!("{kind} {name}: ");
            let what = e.message.strip_prefix(&label).unwrap_or(&e.message);
            details.causes = causes(&[what.to_string()]);
        }
        KubeError {
            code: e.status,
            reason,
            message,
            details: Some(Box::new(details)),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            v["details"] = serde_json::to_value(d).unwrap_or_default();
        }
        v
    }
}

impl From<PathError> for KubeError {
    fn from(e: PathError) -> KubeError {
        KubeError::new(StatusCode::NOT_FOUND, e.to_string())
    }
}

impl From<ApiError> for KubeError {
    fn from(e: ApiError) -> KubeError {
        KubeError::new(e.status, e.message)
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        (self.code, Json(self.to_status())).into_response()
    }
}

/// `Status` Success for a delete, naming the object (and its uid) gone.
pub fn success(kind: Kind, name: &str, uid: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": Details { uid, ..Details::of(kind, name) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, msg: &str) -> ApiError {
        ApiError::new(StatusCode::from_u16(code).unwrap(), msg)
    }

    #[test]
    fn reasons_follow_kubernetes() {
        let e = KubeError::from_api(api(404, "x"), Kind::Deployment, "web", Verb::Read);
        assert_eq!(e.reason, "NotFound");
        assert_eq!(e.message, r#"deployments.apps "web" not found"#);
        let s = e.to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["details"]["kind"], "deployments");

        let e = KubeError::from_api(
            api(409, "Pod/default/p: already exists"),
            Kind::Pod,
            "p",
            Verb::Create,
        );
        assert_eq!((e.reason, e.code.as_u16()), ("AlreadyExists", 409));
        assert_eq!(e.message, r#"pods "p" already exists"#);

        let e = KubeError::from_api(
            api(409, "conflict: expected version 3, found 5"),
            Kind::Service,
            "s",
            Verb::Write,
        );
        assert_eq!(e.reason, "Conflict");

        let e = KubeError::from_api(
            api(422, "spec.replicas: expected an integer"),
            Kind::Deployment,
            "web",
            Verb::Create,
        );
        assert_eq!(e.reason, "Invalid");
        assert!(e.message.contains("spec.replicas"), "{}", e.message);

        let e = KubeError::from(api(401, "missing bearer token"));
        assert_eq!(e.reason, "Unauthorized");
        assert_eq!(KubeError::from(api(400, "x")).reason, "BadRequest");
        assert_eq!(reason_for(StatusCode::GONE), "Expired");
    }

    #[test]
    fn invalid_errors_carry_their_causes() {
        let e = KubeError::from_api(
            api(422, "Deployment web: spec.replicas: expected an integer"),
            Kind::Deployment,
            "web",
            Verb::Write,
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas", "{s}");
        assert_eq!(
            s["details"]["causes"][0]["message"], "expected an integer",
            "{s}"
        );
        let c = causes(&["not a field path: x".to_string()]);
        assert_eq!(
            (c[0].field.as_str(), c[0].message.as_str()),
            ("", "not a field path: x")
        );
    }

    #[test]
    fn success_names_the_object() {
        let s = success(Kind::Service, "web", Some("u1".into()));
        assert_eq!(s["details"]["uid"], "u1");
        assert_eq!(s["status"], "Success");
        assert_eq!(s["details"]["name"], "web");
    }
}
