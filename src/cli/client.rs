//! The HTTP client the commands share: errors typed by status, paths by kind.

use std::io::{Read, Write};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::resource::Kind;

pub(super) use crate::client::{Client, ClientError, object_path};

/// An error that may be the API's answer: a [`ClientError`] itself, or
/// one carried in an `anyhow::Error`.
pub(super) trait ApiAnswer {
    fn client_error(&self) -> Option<&ClientError>;
}

impl ApiAnswer for ClientError {
    fn client_error(&self) -> Option<&ClientError> {
        Some(self)
    }
}

impl ApiAnswer for anyhow::Error {
    fn client_error(&self) -> Option<&ClientError> {
        self.downcast_ref::<ClientError>()
    }
}

/// The HTTP status of an API error answer, `None` for other failures.
pub(super) fn http_status(e: &impl ApiAnswer) -> Option<u16> {
    e.client_error().and_then(ClientError::status)
}

/// Whether the server has no route for the path at all.
pub(super) fn no_route(e: &impl ApiAnswer) -> bool {
    e.client_error().is_some_and(ClientError::no_route)
}

/// Opens a streamed plain-text answer (logs); an error status becomes an
/// error with the API's message.
pub(super) async fn open_stream(client: &Client, path: &str) -> anyhow::Result<reqwest::Response> {
    let resp = client.call(reqwest::Method::GET, path, None, None).await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        bail!("{msg} (HTTP {})", status.as_u16());
    }
    Ok(resp)
}

/// Copies a streamed plain-text answer (logs) to stdout as it arrives.
pub(super) async fn stream_to_stdout(client: &Client, path: &str) -> anyhow::Result<()> {
    let mut resp = open_stream(client, path).await?;
    while let Some(chunk) = resp.chunk().await.context("reading the log stream")? {
        let mut out = std::io::stdout().lock();
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            // The reader went away (`| head`): that is not an error.
            return Ok(());
        }
    }
    Ok(())
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

pub(super) fn display_kind(kind: &str) -> String {
    let k = Kind::from_manifest(kind);
    match k {
        Some(Kind::Deployment) => "deployment.apps".into(),
        Some(Kind::ReplicaSet) => "replicaset.apps".into(),
        Some(Kind::DaemonSet) => "daemonset.apps".into(),
        Some(Kind::StatefulSet) => "statefulset.apps".into(),
        Some(Kind::ControllerRevision) => "controllerrevision.apps".into(),
        Some(Kind::Job) => "job.batch".into(),
        Some(Kind::CronJob) => "cronjob.batch".into(),
        Some(Kind::StorageClass) => "storageclass.storage.k8s.io".into(),
        Some(k) => k.as_str().to_ascii_lowercase(),
        None => kind.to_ascii_lowercase(),
    }
}
