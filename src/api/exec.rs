//! `POST .../pods/{name}/exec`: runs a command in a pod's container on
//! whichever node runs it; `POST .../pods/{name}/attach` attaches to the
//! container's main process there; `POST .../pods/{name}/portforward`
//! connects to one of its ports from there. The HTTP connection is upgraded (`Upgrade:
//! shoal-exec`) and then carries [`super::frames`] both ways: stdin and
//! terminal sizes in, output and finally the exit code out.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

use super::frames::{self, read_frame, write_frame};
use super::{ApiError, ApiResult, ApiState, auth};
use crate::agent::exec::{ExecConn, ExecError, ExecService, MAX_WRITE};
use crate::runtime::ExecRequest;

#[derive(Debug, Deserialize)]
pub(super) struct ExecQuery {
    container: Option<String>,
    /// The command as a JSON array of strings, base64url-encoded.
    command: String,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    tty: bool,
    width: Option<u16>,
    height: Option<u16>,
}

/// Decodes the `command` parameter.
fn command_of(raw: &str) -> ApiResult<Vec<String>> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, format!("command: {m}"));
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|e| bad(format!("not base64url: {e}")))?;
    let cmd: Vec<String> = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("not a JSON list of strings: {e}")))?;
    if cmd.is_empty() {
        return Err(bad("empty: name the command to run".into()));
    }
    Ok(cmd)
}

/// This node's exec service; 503 on a node that runs none.
fn exec_service(s: &ApiState) -> ApiResult<&Arc<ExecService>> {
    s.exec.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs no exec service",
        )
    })
}

pub(super) async fn pod_exec(
    State(s): State<ApiState>,
    Extension(_caller): Extension<auth::Caller>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ExecQuery>,
    req: Request,
) -> ApiResult<Response> {
    let exec = exec_service(&s)?;
    check_upgrade(&req, "exec")?;
    let cmd = command_of(&q.command)?;
    let size = q.width.zip(q.height);
    let conn = exec
        .open(
            &ns,
            &name,
            q.container.as_deref(),
            ExecRequest {
                cmd,
                stdin: q.stdin,
                tty: q.tty,
                size,
            },
        )
        .await
        .map_err(api_error)?;
    ::metrics::counter!(crate::api::metrics::EXEC_SESSIONS_TOTAL).increment(1);
    Ok(upgraded(req, conn, &ns, &name))
}

#[derive(Debug, Deserialize)]
pub(super) struct AttachQuery {
    container: Option<String>,
    #[serde(default)]
    stdin: bool,
    width: Option<u16>,
    height: Option<u16>,
}

/// `POST .../pods/{name}/attach`: to the container's main process, on
/// whichever node runs it; the 101 names the container and says whether it
/// has a terminal, which decides how the client shows its output (a
/// terminal's output is one stream, as kubectl forces `-t` for it).
pub(super) async fn pod_attach(
    State(s): State<ApiState>,
    Extension(_caller): Extension<auth::Caller>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<AttachQuery>,
    req: Request,
) -> ApiResult<Response> {
    let exec = exec_service(&s)?;
    check_upgrade(&req, "attach")?;
    let size = q.width.zip(q.height);
    let at = exec
        .attach(&ns, &name, q.container.as_deref(), q.stdin, size)
        .await
        .map_err(api_error)?;
    ::metrics::counter!(crate::api::metrics::ATTACH_SESSIONS_TOTAL).increment(1);
    let mut resp = upgraded(req, at.conn, &ns, &name);
    let h = resp.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&at.container) {
        h.insert(frames::ATTACH_CONTAINER_HEADER, v);
    }
    h.insert(
        frames::ATTACH_TTY_HEADER,
        header::HeaderValue::from_static(if at.tty { "true" } else { "false" }),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub(super) struct PortQuery {
    port: u16,
}

/// `POST .../pods/{name}/portforward?port=N`: one TCP connection to the
/// pod's port, made from the pod's node, carried as an upgraded connection
/// (stdin frames are the bytes sent, stdout frames the bytes received).
pub(super) async fn pod_port_forward(
    State(s): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PortQuery>,
    req: Request,
) -> ApiResult<Response> {
    let exec = exec_service(&s)?;
    check_upgrade(&req, "port-forward")?;
    if q.port == 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "port: 0 is no port"));
    }
    let conn = exec
        .open_port(&ns, &name, q.port)
        .await
        .map_err(api_error)?;
    ::metrics::counter!(crate::api::metrics::PORT_FORWARD_CONNECTIONS_TOTAL).increment(1);
    Ok(upgraded(req, conn, &ns, &name))
}

fn api_error(e: ExecError) -> ApiError {
    match e {
        ExecError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        ExecError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        ExecError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

fn check_upgrade(req: &Request, what: &str) -> ApiResult<()> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if upgrade != Some(frames::UPGRADE) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{what} needs the connection upgraded (Upgrade: {}), as `shoal {what}` does",
                frames::UPGRADE
            ),
        ));
    }
    Ok(())
}

/// Answers 101 and carries the session once the connection is upgraded.
fn upgraded(mut req: Request, conn: ExecConn, ns: &str, name: &str) -> Response {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => bridge(hyper_util::rt::TokioIo::new(up), conn).await,
            Err(e) => {
                warn!("exec: the connection was not upgraded: {e}");
                conn.close().await;
            }
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static(frames::UPGRADE),
    );
    resp.extensions_mut()
        .insert(super::audit::Objects(vec![format!("pods/{ns}/{name}")]));
    resp
}

/// Carries one session between the client's connection and the command.
async fn bridge<S>(io: S, conn: ExecConn)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(conn);
    let (mut rd, mut wr) = tokio::io::split(io);
    let input = {
        let conn = conn.clone();
        async move {
            // Until the client goes away; a failed write to the command
            // (it exited) only ends the input.
            let mut open = true;
            loop {
                let frame = match read_frame(&mut rd).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return,
                    Err(e) => {
                        debug!("exec: reading the client: {e}");
                        return;
                    }
                };
                let r = match frame {
                    (frames::STDIN, data) if open => {
                        let mut r = Ok(());
                        for chunk in data.chunks(MAX_WRITE) {
                            ::metrics::counter!(crate::api::metrics::EXEC_BYTES_TOTAL, "direction" => "in")
                                .increment(chunk.len() as u64);
                            r = conn.write(chunk.to_vec(), false).await;
                            if r.is_err() {
                                break;
                            }
                        }
                        r
                    }
                    (frames::STDIN_EOF, _) if open => {
                        open = false;
                        conn.write(Vec::new(), true).await
                    }
                    (frames::RESIZE, p) => match frames::parse_resize(&p) {
                        Some((w, h)) => conn.resize(w, h).await,
                        None => Ok(()),
                    },
                    // Input after end-of-file, or a kind only a node sends.
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    debug!("exec: input: {e}");
                    open = false;
                }
            }
        }
    };
    let output = async {
        loop {
            let out = match conn.read().await {
                Ok(o) => o,
                Err(e) => {
                    let _ = write_frame(&mut wr, frames::ERROR, e.to_string().as_bytes()).await;
                    return;
                }
            };
            let n = (out.stdout.len() + out.stderr.len()) as u64;
            ::metrics::counter!(crate::api::metrics::EXEC_BYTES_TOTAL, "direction" => "out")
                .increment(n);
            let sent = async {
                if !out.stdout.is_empty() {
                    write_frame(&mut wr, frames::STDOUT, &out.stdout).await?;
                }
                if !out.stderr.is_empty() {
                    write_frame(&mut wr, frames::STDERR, &out.stderr).await?;
                }
                if let Some(code) = out.exit {
                    write_frame(&mut wr, frames::EXIT, &code.to_be_bytes()).await?;
                }
                Ok::<(), std::io::Error>(())
            };
            if sent.await.is_err() || out.exit.is_some() {
                return;
            }
        }
    };
    tokio::select! {
        () = output => {}
        () = input => conn.close().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_decode_or_say_why_not() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        assert_eq!(
            command_of(&enc(r#"["sh","-c","echo hi"]"#)).expect("ok"),
            ["sh", "-c", "echo hi"]
        );
        for (raw, why) in [
            ("***".to_string(), "base64url"),
            (enc("{}"), "JSON list"),
            (enc("[]"), "empty"),
        ] {
            let e = command_of(&raw).expect_err(&raw);
            assert!(e.message.contains(why), "{raw}: {}", e.message);
        }
    }
}
