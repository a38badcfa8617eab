//! `shoal exec` on the Docker engine: a `docker exec` whose input and
//! output stay attached while the caller streams them.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;

use super::{map_err, other_err};
use crate::runtime::{ExecChunk, ExecControl, ExecRequest, ExecSession, RuntimeError};

/// Starts `req` in container `id`, attached.
pub(super) async fn start(
    docker: &Docker,
    id: &str,
    req: ExecRequest,
) -> Result<ExecSession, RuntimeError> {
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(req.cmd.clone()),
                attach_stdin: Some(req.stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(req.tty),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| map_err("create exec", id, e))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: req.tty,
                output_capacity: Some(EXEC_LINE_CAPACITY),
            }),
        )
        .await
        .map_err(|e| map_err("start exec", id, e))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(RuntimeError::Engine {
            op: "start exec",
            msg: format!("{id}: the engine did not attach the command's output"),
        });
    };
    let control = DockerExec {
        docker: docker.clone(),
        exec_id: created.id,
        container: id.to_string(),
    };
    if let (true, Some((w, h))) = (req.tty, req.size) {
        control.resize(w, h).await?;
    }
    let cid = id.to_string();
    let output = output.map(move |item| {
        item.map(|out| ExecChunk {
            stderr: matches!(out, bollard::container::LogOutput::StdErr { .. }),
            data: out.into_bytes(),
        })
        .map_err(|e| other_err("exec output", &cid, e))
    });
    Ok(ExecSession {
        output: Box::pin(output),
        input: req.stdin.then_some(input),
        control: Box::new(control),
    })
}

/// The longest piece of an interactive command's output the engine's
/// decoder holds before handing it on.
const EXEC_LINE_CAPACITY: usize = 64 * 1024;

/// How long the engine may take to report an ended command's exit code.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);

/// One `docker exec` instance.
struct DockerExec {
    docker: Docker,
    exec_id: String,
    container: String,
}

#[async_trait::async_trait]
impl ExecControl for DockerExec {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.docker
            .resize_exec(&self.exec_id, ResizeExecOptions { width, height })
            .await
            .map_err(|e| map_err("resize exec", &self.container, e))
    }

    async fn exit_code(&self) -> Result<i64, RuntimeError> {
        let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
        loop {
            let info = self
                .docker
                .inspect_exec(&self.exec_id)
                .await
                .map_err(|e| other_err("inspect exec", &self.container, e))?;
            if info.running != Some(true) {
                return info.exit_code.ok_or_else(|| RuntimeError::Engine {
                    op: "exec",
                    msg: format!("{}: the engine reported no exit code", self.container),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Engine {
                    op: "exec",
                    msg: format!(
                        "{}: the command's output ended but it still runs",
                        self.container
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
