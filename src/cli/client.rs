//! The HTTP client the commands share: errors typed by status, paths by kind.

use std::io::{Read, Write};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::resource::Kind;

/// An error answer of the API, typed so callers can react to its status
/// (409: reread and retry; 404: gone).
#[derive(Debug)]
pub(super) struct HttpError {
    status: u16,
    message: String,
    /// Whether a handler answered (with its JSON error), rather than the
    /// router finding no route for the path.
    routed: bool,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

impl std::error::Error for HttpError {}

/// The HTTP status of an API error answer, `None` for other failures.
pub(super) fn http_status(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<HttpError>().map(|h| h.status)
}

/// Whether the server has no route for the path at all.
pub(super) fn no_route(e: &anyhow::Error) -> bool {
    e.downcast_ref::<HttpError>()
        .is_some_and(|h| h.status == 404 && !h.routed)
}

/// A small HTTP client for the API.
pub(super) struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(addr: &str, token: Option<String>) -> anyhow::Result<Client> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, http, token })
    }

    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let resp = self.call(method.clone(), path, body).await?;
        let status = resp.status();
        let text = resp.text().await.context("reading the API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let api_error = value.get("error").and_then(Value::as_str);
            let routed = api_error.is_some();
            let mut message = api_error
                .map(str::to_string)
                .unwrap_or_else(|| text.trim().to_string());
            if message.is_empty() {
                // A route the server does not have answers with an empty body.
                message = format!(
                    "{method} {path}: {}",
                    status.canonical_reason().unwrap_or("failed")
                );
            }
            return Err(HttpError {
                status: status.as_u16(),
                message,
                routed,
            }
            .into());
        }
        Ok(value)
    }

    /// Copies a streamed plain-text answer (logs) to stdout as it arrives.
    pub(super) async fn stream_to_stdout(&self, path: &str) -> anyhow::Result<()> {
        let mut resp = self.call(reqwest::Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        while let Some(chunk) = resp.chunk().await.context("reading the log stream")? {
            let mut out = std::io::stdout().lock();
            if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                // The reader went away (`| head`): that is not an error.
                return Ok(());
            }
        }
        Ok(())
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the shoal API at {} (is `shoal agent` running? set --addr or SHOAL_ADDR)", self.base)
            } else if e.is_timeout() {
                anyhow!("the shoal API at {} did not answer in time", self.base)
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })
    }
}

pub(super) fn read_file_arg(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))
    }
}

pub(super) fn kind_arg(s: &str) -> anyhow::Result<Kind> {
    Kind::from_user(s).ok_or_else(|| {
        anyhow!(
            "unknown kind {s:?}; known: {}",
            Kind::ALL
                .iter()
                .map(|k| k.plural())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub(super) fn object_path(kind: Kind, ns: &str, name: Option<&str>) -> String {
    let base = if kind.namespaced() {
        format!("/v1/namespaces/{ns}/{}", kind.plural())
    } else {
        format!("/v1/{}", kind.plural())
    };
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}

pub(super) fn display_kind(kind: &str) -> String {
    let k = Kind::from_manifest(kind);
    match k {
        Some(Kind::Deployment) => "deployment.apps".into(),
        Some(Kind::ReplicaSet) => "replicaset.apps".into(),
        Some(Kind::Job) => "job.batch".into(),
        Some(k) => k.as_str().to_ascii_lowercase(),
        None => kind.to_ascii_lowercase(),
    }
}
