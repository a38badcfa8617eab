//! `shoal exec POD [-c C] [-i] [-t] -- CMD ARGS...`: runs a command in a
//! pod's container through any node; the remote exit code becomes this
//! process's. With `-t` the local terminal is put in raw mode (restored on
//! every way out: the guard's drop runs on return, error and panic), so
//! Ctrl-C reaches the remote command as a byte, and size changes follow.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

use super::client::Client;
use crate::api::frames::{self, read_frame, write_frame};
use crate::resource::Kind;

/// What `shoal exec` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// `POD` or `pod/NAME`.
    pub pod: String,
    /// The container, when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass this process's stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal (raw mode here while it runs).
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The remote command's exit code, not 0; `main` exits with it quietly.
#[derive(Debug)]
pub struct RemoteExit(pub i32);

impl std::fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command terminated with exit code {}", self.0)
    }
}

impl std::error::Error for RemoteExit {}

/// Runs `shoal exec`.
pub async fn exec(client: &Client, a: ExecArgs) -> anyhow::Result<()> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let pod = pod_name(&a.pod, "exec in")?;
    let size = if a.tty { terminal_size() } else { None };
    let target = Target {
        ns: &ns,
        pod: &pod,
        container: a.container.as_deref(),
    };
    let io = open(client, &target, &a.command, a.stdin, a.tty, size).await?;
    // Raw only when this side is a terminal: piped input stays as it is.
    let _raw = match a.tty && a.stdin {
        true => RawMode::enable(),
        false => None,
    };
    let (mut rd, wr) = tokio::io::split(io);
    let tasks = spawn_input(wr, a.stdin, a.tty);
    let result = relay(&mut rd, &mut std::io::stdout(), &mut std::io::stderr()).await;
    for t in tasks {
        t.abort();
    }
    match result? {
        0 => Ok(()),
        code => Err(RemoteExit(code).into()),
    }
}

/// The pod `arg` names (`POD` or `pod/NAME`); `what` starts the message
/// for another kind.
pub(super) fn pod_name(arg: &str, what: &str) -> anyhow::Result<String> {
    match arg.split_once('/') {
        Some((k, name)) if Kind::from_user(k) == Some(Kind::Pod) => Ok(name.to_string()),
        Some((k, _)) => bail!("{what} {k:?}: name a pod (POD or pod/NAME)"),
        None => Ok(arg.to_string()),
    }
}

/// Starts what feeds a session: this process's stdin when `stdin`, the
/// terminal's size changes when `tty`. Abort the tasks once it ends.
pub(super) fn spawn_input<W>(wr: W, stdin: bool, tty: bool) -> Vec<tokio::task::JoinHandle<()>>
where
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let wr = Arc::new(Mutex::new(wr));
    let mut tasks = Vec::new();
    if stdin {
        let wr = wr.clone();
        tasks.push(tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                // A failed read ends the input as end-of-file would.
                let n: usize = stdin.read(&mut buf).await.unwrap_or_default();
                let mut w = wr.lock().await;
                if n == 0 {
                    let _ = write_frame(&mut *w, frames::STDIN_EOF, &[]).await;
                    return;
                }
                if write_frame(&mut *w, frames::STDIN, &buf[..n])
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    if tty {
        tasks.push(tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((w, h)) = terminal_size() {
                    let mut wr = wr.lock().await;
                    let p = frames::resize_payload(w, h);
                    if write_frame(&mut *wr, frames::RESIZE, &p).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }
    tasks
}

/// The container a session runs in.
pub(super) struct Target<'a> {
    pub ns: &'a str,
    pub pod: &'a str,
    pub container: Option<&'a str>,
}

/// Starts `cmd` in the target's container; the connection then carries frames.
pub(super) async fn open(
    client: &Client,
    t: &Target<'_>,
    cmd: &[String],
    stdin: bool,
    tty: bool,
    size: Option<(u16, u16)>,
) -> anyhow::Result<reqwest::Upgraded> {
    let json = serde_json::to_vec(cmd).context("encoding the command")?;
    let mut path = format!(
        "/v1/namespaces/{}/pods/{}/exec?command={}&stdin={stdin}&tty={tty}",
        t.ns,
        t.pod,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
    );
    if let Some(c) = t.container {
        path.push_str(&format!("&container={c}"));
    }
    if let Some((w, h)) = size {
        path.push_str(&format!("&width={w}&height={h}"));
    }
    Ok(client.upgrade(&path, frames::UPGRADE).await?)
}

/// Copies output frames to `out` and `err` until the exit code comes.
pub(super) async fn relay<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<i32> {
    loop {
        let Some((kind, p)) = read_frame(rd).await.context("reading the session")? else {
            bail!("the node closed the session before the command ended");
        };
        match kind {
            frames::STDOUT => out.write_all(&p).and_then(|_| out.flush())?,
            frames::STDERR => err.write_all(&p).and_then(|_| err.flush())?,
            frames::EXIT => {
                let code = <[u8; 8]>::try_from(p.as_slice())
                    .map(i64::from_be_bytes)
                    .map_err(|_| anyhow::anyhow!("a malformed exit frame"))?;
                // Exit codes are 0..=255; anything else still means failure.
                return Ok(i32::try_from(code).unwrap_or(1));
            }
            frames::ERROR => bail!("{}", String::from_utf8_lossy(&p)),
            other => bail!("an unexpected frame of kind {other} from the node"),
        }
    }
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The local terminal's (columns, rows), when stdout or stdin is one.
pub(super) fn terminal_size() -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    for fd in [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()] {
        let mut ws = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which outlives the call.
        if unsafe { tiocgwinsz(fd, &mut ws) }.is_ok() && ws.ws_col > 0 && ws.ws_row > 0 {
            return Some((ws.ws_col, ws.ws_row));
        }
    }
    None
}

/// The local terminal in raw mode; dropping it restores the old mode.
pub(super) struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// `None` when stdin is not a terminal.
    pub(super) fn enable() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
