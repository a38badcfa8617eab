//! `shoal cp POD:PATH LOCAL` and `shoal cp LOCAL POD:PATH`: a file or a
//! directory tree, carried as a tar stream over an exec session (`tar -c`
//! in the container, `tar -x` into it), as kubectl does, so it works on
//! both runtimes and crosses nodes the way exec does, with exec's bounds and
//! backpressure. What comes out of a pod is untrusted: it is unpacked into
//! a temporary directory beside the destination (entries with `..`,
//! absolute paths or a path through a link are refused by the tar reader)
//! and renamed into place only once the remote `tar` succeeded, so a failed
//! copy leaves nothing half-written.

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

/// A remote path as the directory to run tar in and the name to copy.
fn split_remote(path: &str) -> anyhow::Result<(String, String)> {
    let p = std::path::Path::new(path);
    let name = match p.file_name() {
        Some(n) if !path.ends_with("/.") && !path.ends_with("/..") && path != ".." => {
            n.to_string_lossy().into_owned()
        }
        _ => bail!("cp: {path:?} must end in the name of a file or directory"),
    };
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_string_lossy().into_owned(),
        _ => ".".to_string(),
    };
    Ok((dir, name))
}

async fn download(client: &Client, t: &Target<'_>, path: &str, local: &str) -> anyhow::Result<()> {
    let (dir, name) = split_remote(path)?;
    let mut dest = std::path::PathBuf::from(local);
    if dest.is_dir() {
        dest.push(&name);
    }
    let dest_name = dest
        .file_name()
        .with_context(|| format!("{local}: not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dest.with_file_name(format!(".{dest_name}.shoal-cp-{}", std::process::id()));
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let copied = async {
        let archive = tmp.join("archive.tar");
        let mut file = std::fs::File::create(&archive)
            .with_context(|| format!("creating {}", archive.display()))?;
        // `./NAME`: a name that starts with a dash is not an option.
        let cmd = [
            "tar".to_string(),
            "-c".into(),
            "-f".into(),
            "-".into(),
            "-C".into(),
            dir.clone(),
            format!("./{name}"),
        ];
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
        drop(file);
        let root = tmp.join("root");
        std::fs::create_dir(&root).context("creating the unpack directory")?;
        let f = std::fs::File::open(&archive).context("reading the copy")?;
        tar::Archive::new(f)
            .unpack(&root)
            .with_context(|| format!("unpacking {path} from pod {}", t.pod))?;
        let got = root.join(&name);
        if std::fs::symlink_metadata(&got).is_err() {
            bail!("pod {} sent no {name:?} for {path}", t.pod);
        }
        if dest.is_file() || dest.is_symlink() {
            std::fs::remove_file(&dest).with_context(|| format!("replacing {}", dest.display()))?;
        }
        std::fs::rename(&got, &dest)
            .with_context(|| format!("moving the copy to {}", dest.display()))?;
        Ok(())
    };
    let r = copied.await;
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

async fn upload(client: &Client, t: &Target<'_>, local: &str, path: &str) -> anyhow::Result<()> {
    let (dir, name) = split_remote(path)?;
    let meta = std::fs::symlink_metadata(local).with_context(|| format!("reading {local}"))?;
    // The archive is made on disk first: a tree of any size, sent in frames.
    let archive = std::env::temp_dir().join(format!(".shoal-cp-{}.tar", std::process::id()));
    let made = (|| -> anyhow::Result<()> {
        let f = std::fs::File::create(&archive)
            .with_context(|| format!("creating {}", archive.display()))?;
        let mut b = tar::Builder::new(f);
        b.follow_symlinks(false);
        if meta.is_dir() {
            b.append_dir_all(&name, local)
        } else {
            b.append_path_with_name(local, &name)
        }
        .with_context(|| format!("packing {local}"))?;
        b.into_inner()
            .and_then(|f| f.sync_all())
            .with_context(|| format!("packing {local}"))
    })();
    let sent = async {
        made?;
        let file = tokio::fs::File::open(&archive)
            .await
            .with_context(|| format!("reading {}", archive.display()))?;
        // The directory is an argument, never part of the script. `-o`: the
        // files belong to whoever unpacks them, not to the uids of this host.
        let cmd = [
            "sh".to_string(),
            "-c".into(),
            "mkdir -p \"$0\" && exec tar -x -o -f - -C \"$0\"".into(),
            dir.clone(),
        ];
        send_file(client, t, &cmd, file, local).await
    };
    let r = sent.await;
    let _ = std::fs::remove_file(&archive);
    let code = r?;
    if code.0 != 0 {
        bail!(
            "writing {path} in pod {}: exit code {}: {}",
            t.pod,
            code.0,
            String::from_utf8_lossy(&code.1).trim()
        );
    }
    Ok(())
}

/// Runs `cmd` with `file` as its stdin; its exit code and (capped) stderr.
async fn send_file(
    client: &Client,
    t: &Target<'_>,
    cmd: &[String],
    mut file: tokio::fs::File,
    what: &str,
) -> anyhow::Result<(i32, Vec<u8>)> {
    let io = open(client, t, cmd, true, false, None).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let send = async move {
        let mut buf = vec![0u8; frames::MAX_PAYLOAD / 2];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .with_context(|| format!("reading {what}"))?;
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
    Ok((code, err.0))
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
        let split = |p: &str| split_remote(p).ok();
        assert_eq!(split("/etc/hosts"), Some(("/etc".into(), "hosts".into())));
        assert_eq!(split("big.bin"), Some((".".into(), "big.bin".into())));
        assert_eq!(split("/data/"), Some(("/".into(), "data".into())));
        assert_eq!(split("/"), None);
        assert_eq!(split("/tmp/.."), None);
        assert_eq!(split("/tmp/."), None);
        let mut c = Capped::default();
        c.write_all(&vec![b'x'; MAX_STDERR + 10]).expect("write");
        assert_eq!(c.0.len(), MAX_STDERR);
    }
}
