//! `shoal cp POD:PATH LOCAL` and `shoal cp LOCAL POD:PATH`: one regular
//! file, carried over an exec session (`cat PATH` out of the container,
//! `sh -c 'cat > PATH'` into it), so it works on both runtimes and crosses
//! nodes the way exec does, with exec's bounds and backpressure. A file
//! read from a pod lands under a temporary name and is renamed only once
//! the remote `cat` succeeded: a failed copy leaves nothing half-written.

use std::io::Write;

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;

use super::client::Client;
use super::exec::{Target, open, relay};
use crate::api::frames::{self, write_frame};

/// At most this much of the remote command's stderr is kept for the error.
const MAX_STDERR: usize = 16 * 1024;

/// What `shoal cp` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct CpArgs {
    /// `POD:PATH` or a local file.
    pub src: String,
    /// `POD:PATH` or a local file.
    pub dst: String,
    /// The container, when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// `POD:PATH` as (pod, path); `None` for a local path.
fn remote(s: &str) -> Option<(&str, &str)> {
    let (pod, path) = s.split_once(':')?;
    // A local path may hold a colon too, but not before its first slash.
    (!pod.is_empty() && !pod.contains('/') && !path.is_empty()).then_some((pod, path))
}

/// Keeps the first [`MAX_STDERR`] bytes written to it.
#[derive(Default)]
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_STDERR.saturating_sub(self.0.len());
        self.0.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `shoal cp`.
pub async fn cp(client: &Client, a: CpArgs) -> anyhow::Result<()> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    match (remote(&a.src), remote(&a.dst)) {
        (Some((pod, path)), None) => {
            let t = Target {
                ns: &ns,
                pod,
                container: a.container.as_deref(),
            };
            download(client, &t, path, &a.dst).await
        }
        (None, Some((pod, path))) => {
            let t = Target {
                ns: &ns,
                pod,
                container: a.container.as_deref(),
            };
            upload(client, &t, &a.src, path).await
        }
        (Some(_), Some(_)) => {
            bail!("cp: one side must be local (POD:PATH LOCAL or LOCAL POD:PATH)")
        }
        (None, None) => bail!("cp: one side must be POD:PATH"),
    }
}

async fn download(client: &Client, t: &Target<'_>, path: &str, local: &str) -> anyhow::Result<()> {
    let dest = std::path::Path::new(local);
    let name = dest
        .file_name()
        .with_context(|| format!("{local}: not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dest.with_file_name(format!(".{name}.shoal-cp-{}", std::process::id()));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let cmd = ["cat".to_string(), "--".into(), path.to_string()];
    let copied = async {
        let mut io = open(client, t, &cmd, false, false, None).await?;
        let mut err = Capped::default();
        let code = relay(&mut io, &mut file, &mut err).await?;
        if code != 0 {
            bail!(
                "reading {path} in pod {}: exit code {code}: {}",
                t.pod,
                String::from_utf8_lossy(&err.0).trim()
            );
        }
        file.sync_all().context("writing the copy")?;
        Ok(())
    };
    match copied.await {
        Ok(()) => std::fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {local}", tmp.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

async fn upload(client: &Client, t: &Target<'_>, local: &str, path: &str) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(local)
        .await
        .with_context(|| format!("opening {local}"))?;
    if !file
        .metadata()
        .await
        .with_context(|| format!("reading {local}"))?
        .is_file()
    {
        bail!("cp: {local} is not a regular file (directories are not supported)");
    }
    // The path is an argument, never part of the script: no quoting to get wrong.
    let cmd = [
        "sh".to_string(),
        "-c".into(),
        "cat > \"$0\"".into(),
        path.to_string(),
    ];
    let io = open(client, t, &cmd, true, false, None).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let send = async move {
        let mut buf = vec![0u8; frames::MAX_PAYLOAD / 2];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .with_context(|| format!("reading {local}"))?;
            if n == 0 {
                write_frame(&mut wr, frames::STDIN_EOF, &[]).await?;
                return Ok::<_, anyhow::Error>(wr);
            }
            write_frame(&mut wr, frames::STDIN, &buf[..n]).await?;
        }
    };
    let mut err = Capped::default();
    let mut out = Capped::default();
    let (sent, code) = tokio::join!(send, relay(&mut rd, &mut out, &mut err));
    let code = code?;
    // The write half stays open until the exit came, so the session is whole.
    let _wr = sent?;
    if code != 0 {
        bail!(
            "writing {path} in pod {}: exit code {code}: {}",
            t.pod,
            String::from_utf8_lossy(&err.0).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_are_told_from_local_ones() {
        assert_eq!(remote("web:/tmp/x"), Some(("web", "/tmp/x")));
        assert_eq!(remote("web:x"), Some(("web", "x")));
        assert_eq!(remote("./a:b"), None);
        assert_eq!(remote("/tmp/a:b"), None);
        assert_eq!(remote("file"), None);
        assert_eq!(remote(":x"), None);
        assert_eq!(remote("web:"), None);
        let mut c = Capped::default();
        c.write_all(&vec![b'x'; MAX_STDERR + 10]).expect("write");
        assert_eq!(c.0.len(), MAX_STDERR);
    }
}
