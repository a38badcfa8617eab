//! `shoal exec` on the process runtime: the command runs as the container's
//! user, with its environment and working directory, through pipes. There
//! is no terminal to give (`-t` is refused with a message); a session that
//! is dropped kills what it started.

use futures::StreamExt;
use tokio_util::io::ReaderStream;
use tokio_util::task::AbortOnDropHandle;

use super::*;
use crate::runtime::{ExecChunk, ExecControl, ExecRequest, ExecSession};

/// How long an ended command's exit status may take to be reaped.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Starts `req` in container `id`.
pub(super) async fn start(
    rt: &ProcessRuntime,
    id: &str,
    req: ExecRequest,
) -> Result<ExecSession, RuntimeError> {
    if req.tty {
        return Err(RuntimeError::Config(
            "the process runtime has no terminal to give a command: leave out -t (exec -t needs a node with the docker runtime)".into(),
        ));
    }
    let (stored, user, work_dir) = {
        let _g = rt.inner.lock.lock().await;
        let mut stored = rt
            .inner
            .load(id)
            .await
            .map_err(|e| e.into_runtime("exec", id))?;
        if rt.inner.current_state(&mut stored).await != ContainerState::Running {
            return Err(RuntimeError::Engine {
                op: "exec",
                msg: format!("container {id} is not running"),
            });
        }
        let (user, work_dir) = rt.inner.prepare(&mut stored).await?;
        (stored, user, work_dir)
    };
    let Some((program, args)) = req.cmd.split_first() else {
        return Err(RuntimeError::Engine {
            op: "exec",
            msg: format!("{id}: no command to run"),
        });
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    configure(&mut command, &stored, &work_dir, rt.inner.switch_to(user));
    command
        .stdin(if req.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| RuntimeError::Engine {
        op: "exec",
        msg: format!("{:?} in {id}: cannot run {program:?}: {e}", req.cmd),
    })?;
    let input = child
        .stdin
        .take()
        .map(|w| Box::pin(w) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RuntimeError::Engine {
            op: "exec",
            msg: format!("{id}: the command's output pipes are missing"),
        });
    };
    let out = ReaderStream::new(out).map(|r| {
        r.map(|data| ExecChunk {
            stderr: false,
            data,
        })
        .map_err(io_err("exec output"))
    });
    let err = ReaderStream::new(err).map(|r| {
        r.map(|data| ExecChunk { stderr: true, data })
            .map_err(io_err("exec output"))
    });
    let (tx, rx) = tokio::sync::watch::channel(None);
    let pid = child.id();
    // Owned by the session: dropping it drops the child, which kills it.
    let waiter = AbortOnDropHandle::new(tokio::spawn(async move {
        let code = child
            .wait()
            .await
            .map_err(|e| e.to_string())
            .and_then(|s| exit_code_of(s).ok_or_else(|| "no exit status".to_string()));
        if let Some(pid) = pid {
            kill_leftovers(pid);
        }
        let _ = tx.send(Some(code));
    }));
    Ok(ExecSession {
        output: Box::pin(futures::stream::select(out, err)),
        input,
        control: Box::new(ProcessExec {
            exit: rx,
            id: id.to_string(),
            _waiter: waiter,
        }),
    })
}

struct ProcessExec {
    exit: tokio::sync::watch::Receiver<Option<Result<i64, String>>>,
    id: String,
    _waiter: AbortOnDropHandle<()>,
}

#[async_trait::async_trait]
impl ExecControl for ProcessExec {
    async fn resize(&self, _width: u16, _height: u16) -> Result<(), RuntimeError> {
        // No terminal (refused at start): nothing to size.
        Ok(())
    }

    async fn exit_code(&self) -> Result<i64, RuntimeError> {
        let mut rx = self.exit.clone();
        let got = tokio::time::timeout(EXIT_WAIT, rx.wait_for(Option::is_some)).await;
        let engine = |msg: String| RuntimeError::Engine { op: "exec", msg };
        match got {
            Ok(Ok(v)) => match v.clone() {
                Some(Ok(code)) => Ok(code),
                Some(Err(e)) => Err(engine(format!("{}: {e}", self.id))),
                None => Err(engine(format!("{}: no exit status", self.id))),
            },
            Ok(Err(_)) => Err(engine(format!(
                "{}: the command was not waited for",
                self.id
            ))),
            Err(_) => Err(engine(format!(
                "{}: the command's output ended but it still runs",
                self.id
            ))),
        }
    }
}
