//! `shoal attach` on a host process: its output from now on, read where
//! the daemon's pump writes it (the container's log files, followed), so
//! an attach never takes bytes from `logs` or from another attach. There
//! is no stdin to give: the process's is /dev/null (see `security.rs`).

use futures::StreamExt;

use super::ProcessRuntime;
use crate::runtime::{
    AttachRequest, ContainerState, ExecChunk, ExecControl, ExecSession, LogOptions, Runtime,
    RuntimeError,
};

/// How long the exit code of a process whose output ended may take to be
/// recorded (the watcher lets the pump drain first).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Attaches to the output of container `id`'s main process.
pub(super) async fn start(
    rt: &ProcessRuntime,
    id: &str,
    req: AttachRequest,
) -> Result<ExecSession, RuntimeError> {
    if req.stdin {
        return Err(RuntimeError::Config(
            "the process runtime gives a container no stdin: attach -i needs a node with the docker runtime".into(),
        ));
    }
    if rt.inspect(id).await?.state != ContainerState::Running {
        return Err(RuntimeError::Engine {
            op: "attach",
            msg: format!("{id}: the container is not running"),
        });
    }
    let logs = rt
        .logs(
            id,
            LogOptions {
                tail: Some(0),
                follow: true,
                ..LogOptions::default()
            },
        )
        .await?;
    // One FIFO carries both stdout and stderr: no way to tell them apart.
    let output = logs.map(|b| {
        b.map(|data| ExecChunk {
            stderr: false,
            data,
        })
    });
    Ok(ExecSession {
        output: Box::pin(output),
        input: None,
        control: Box::new(ProcessAttach {
            rt: rt.clone(),
            id: id.to_string(),
        }),
    })
}

/// One attached host process.
struct ProcessAttach {
    rt: ProcessRuntime,
    id: String,
}

#[async_trait::async_trait]
impl ExecControl for ProcessAttach {
    async fn resize(&self, _width: u16, _height: u16) -> Result<(), RuntimeError> {
        // No terminal to resize; a client may still send its size.
        Ok(())
    }

    async fn exit_code(&self) -> Result<i64, RuntimeError> {
        let deadline = tokio::time::Instant::now() + EXIT_WAIT;
        loop {
            match self.rt.inspect(&self.id).await?.state {
                ContainerState::Exited { exit_code, .. } => {
                    // Unknown only for a process adopted after a restart.
                    return exit_code.ok_or_else(|| RuntimeError::Engine {
                        op: "attach",
                        msg: format!("{}: the exit code was not recorded", self.id),
                    });
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(RuntimeError::Engine {
                        op: "attach",
                        msg: format!("{}: the output ended but the process still runs", self.id),
                    });
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
}
