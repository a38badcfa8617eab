//! `shoal attach` on the Docker engine: the container's own attach
//! endpoint, streaming only from now on (no replay of old output), with
//! its stdin when the container keeps one open.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{AttachContainerOptions, ResizeContainerTTYOptions};
use futures::StreamExt;

use super::{map_err, other_err};
use crate::runtime::{AttachRequest, ExecChunk, ExecControl, ExecSession, RuntimeError};

/// How long the engine may take to report the exit code of a container
/// whose attached output ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Attaches to container `id`'s main process.
pub(super) async fn start(
    docker: &Docker,
    id: &str,
    req: AttachRequest,
) -> Result<ExecSession, RuntimeError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| map_err("inspect container", id, e))?;
    let config = info.config.unwrap_or_default();
    if req.stdin && config.open_stdin != Some(true) {
        return Err(RuntimeError::Config(format!(
            "{id}: the container keeps no stdin open (stdin: true in its spec)"
        )));
    }
    let tty = config.tty == Some(true);
    let attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                // Kubernetes' attach shows output from now on, never the log.
                logs: false,
                stream: true,
                stdin: req.stdin,
                stdout: true,
                stderr: true,
                detach_keys: None,
            }),
        )
        .await
        .map_err(|e| map_err("attach container", id, e))?;
    let control = DockerAttach {
        docker: docker.clone(),
        container: id.to_string(),
    };
    if let (true, Some((w, h))) = (tty, req.size) {
        control.resize(w, h).await?;
    }
    let cid = id.to_string();
    let output = attached.output.map(move |item| {
        item.map(|out| ExecChunk {
            stderr: matches!(out, bollard::container::LogOutput::StdErr { .. }),
            data: out.into_bytes(),
        })
        .map_err(|e| other_err("attach output", &cid, e))
    });
    Ok(ExecSession {
        output: Box::pin(output),
        input: req.stdin.then_some(attached.input),
        control: Box::new(control),
    })
}

/// One attached container.
struct DockerAttach {
    docker: Docker,
    container: String,
}

#[async_trait::async_trait]
impl ExecControl for DockerAttach {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        // The container's own terminal: an attach has no exec to resize.
        self.docker
            .resize_container_tty(
                &self.container,
                ResizeContainerTTYOptions {
                    w: i32::from(width),
                    h: i32::from(height),
                },
            )
            .await
            .map_err(|e| map_err("resize container", &self.container, e))
    }

    async fn exit_code(&self) -> Result<i64, RuntimeError> {
        let deadline = tokio::time::Instant::now() + EXIT_WAIT;
        loop {
            let info = self
                .docker
                .inspect_container(&self.container, None)
                .await
                .map_err(|e| map_err("inspect container", &self.container, e))?;
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) {
                return state.exit_code.ok_or_else(|| RuntimeError::Engine {
                    op: "attach",
                    msg: format!("{}: the engine reported no exit code", self.container),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Engine {
                    op: "attach",
                    msg: format!(
                        "{}: the attached output ended but the container still runs",
                        self.container
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
