//! `shoal attach POD [-c C] [-i] [-t]`: the output of a container's main
//! process from now on, and its stdin with `-i`, through any node. Ctrl-C
//! without a terminal detaches and leaves the container running (exit 0);
//! when the process ends, its exit code becomes this process's.

use super::client::Client;
use super::exec::{RawMode, RemoteExit, pod_name, relay, spawn_input, terminal_size};

/// What `shoal attach` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// `POD` or `pod/NAME`.
    pub pod: String,
    /// The container, when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass this process's stdin to the container's (it needs `stdin: true`).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Use the container's terminal (it needs `tty: true`; raw mode here).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The pod's namespace (`default` when not given).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Runs `shoal attach`.
pub async fn attach(client: &Client, a: AttachArgs) -> anyhow::Result<()> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let pod = pod_name(&a.pod, "attach to")?;
    let size = if a.tty { terminal_size() } else { None };
    let at = client
        .attach(&ns, &pod, a.container.as_deref(), a.stdin, size)
        .await?;
    if a.tty && !at.tty {
        // kubectl's words: a warning, and the attach goes on without.
        eprintln!(
            "Unable to use a TTY - container {} did not allocate one",
            at.container
        );
    }
    // A container with a terminal has one output stream whatever was
    // asked (kubectl forces -t for it too).
    let tty = at.tty;
    if tty && a.stdin {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let _raw = match tty && a.stdin {
        true => RawMode::enable(),
        false => None,
    };
    let (mut rd, wr) = tokio::io::split(at.io);
    let tasks = spawn_input(wr, a.stdin, tty);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let result = tokio::select! {
        r = relay(&mut rd, &mut out, &mut err) => r,
        // In raw mode Ctrl-C is a byte for the container, not a signal here.
        _ = tokio::signal::ctrl_c() => Ok(0),
    };
    for t in tasks {
        t.abort();
    }
    match result? {
        0 => Ok(()),
        code => Err(RemoteExit(code).into()),
    }
}
