//! `shoal port-forward POD|service/NAME [LOCAL:]REMOTE...`: a local
//! listener per port; each accepted connection becomes one upgraded API
//! connection, and the pod's node connects to the container's port. At most
//! [`MAX_CONNECTIONS`] connections per port are carried at once (the rest
//! wait in the listener's backlog). Runs until Ctrl-C.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::Client;
use crate::api::frames::{self, read_frame, write_frame};
use crate::resource::Kind;

/// Connections one forwarded port carries at once.
pub const MAX_CONNECTIONS: usize = 64;

/// What `shoal port-forward` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct ForwardArgs {
    /// `POD`, `pod/NAME` or `service/NAME` (a ready endpoint, chosen once).
    pub target: String,
    /// `[LOCAL:]REMOTE`: a local port (0 or none: the same as REMOTE; `:REMOTE` any free one).
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// One `[LOCAL:]REMOTE`; `None` for LOCAL means the same as REMOTE.
fn parse_port(s: &str) -> anyhow::Result<(Option<u16>, String)> {
    let (local, remote) = match s.split_once(':') {
        Some(("", r)) => (Some(0), r),
        Some((l, r)) => (
            Some(
                l.parse::<u16>()
                    .map_err(|_| anyhow!("{s:?}: local port {l:?} is not a port number"))?,
            ),
            r,
        ),
        None => (None, s),
    };
    if remote.is_empty() {
        bail!("{s:?}: no remote port");
    }
    Ok((local, remote.to_string()))
}

/// Runs `shoal port-forward`.
pub async fn port_forward(client: &Client, a: ForwardArgs) -> anyhow::Result<()> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let mut listeners = Vec::new();
    for spec in &a.ports {
        let (local, remote) = parse_port(spec)?;
        let (pod, port) = resolve(client, &ns, &a.target, &remote).await?;
        let local = local.unwrap_or(port);
        let l = TcpListener::bind((a.address.as_str(), local))
            .await
            .with_context(|| format!("listening on {}:{local}", a.address))?;
        let bound = l.local_addr().context("the listener's address")?;
        super::emit(format_args!(
            "Forwarding from {bound} -> {port} (pod/{pod})\n"
        ));
        let path = format!("/v1/namespaces/{ns}/pods/{pod}/portforward?port={port}");
        listeners.push(tokio::spawn(serve(client.clone(), l, path)));
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for l in listeners {
        l.abort();
    }
    Ok(())
}

/// The pod and container port `remote` means for `target`.
async fn resolve(
    client: &Client,
    ns: &str,
    target: &str,
    remote: &str,
) -> anyhow::Result<(String, u16)> {
    let number = || {
        remote
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow!("{remote:?} is not a port number"))
    };
    match target.split_once('/') {
        None => Ok((target.to_string(), number()?)),
        Some((k, name)) if Kind::from_user(k) == Some(Kind::Pod) => {
            Ok((name.to_string(), number()?))
        }
        Some((k, name)) if Kind::from_user(k) == Some(Kind::Service) => {
            let path = format!("/v1/namespaces/{ns}/endpoints/{name}");
            let e = client.send(reqwest::Method::GET, &path, None).await?;
            let ports = e["ports"].as_array().cloned().unwrap_or_default();
            let p = ports
                .iter()
                .find(|p| {
                    p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(remote)
                        || p["name"].as_str() == Some(remote)
                })
                .ok_or_else(|| anyhow!("service {name} has no port {remote}"))?;
            let ep = p["endpoints"]
                .as_array()
                .and_then(|eps| eps.iter().find(|ep| ep["pod"].is_string()))
                .ok_or_else(|| anyhow!("service {name} has no ready endpoint for port {remote}"))?;
            let pod = ep["pod"].as_str().unwrap_or_default().to_string();
            let port = ep["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| anyhow!("service {name}: endpoint {ep} has no port"))?;
            Ok((pod, port))
        }
        Some((k, _)) => bail!("port-forward to {k:?}: name a pod, pod/NAME or service/NAME"),
    }
}

/// Accepts connections, at most [`MAX_CONNECTIONS`] carried at once.
async fn serve(client: Client, l: TcpListener, path: String) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((sock, _)) = l.accept().await else {
            continue;
        };
        let (client, path) = (client.clone(), path.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = carry(&client, sock, &path).await {
                eprintln!("port-forward: {e:#}");
            }
        });
    }
}

/// Carries one connection until the remote side ends it.
async fn carry(client: &Client, sock: TcpStream, path: &str) -> anyhow::Result<()> {
    let up = client.upgrade(path, frames::UPGRADE).await?;
    let _ = sock.set_nodelay(true);
    let (mut sr, mut sw) = sock.into_split();
    let (mut ur, mut uw) = tokio::io::split(up);
    let up_dir = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = sr.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                let _ = write_frame(&mut uw, frames::STDIN_EOF, &[]).await;
                return;
            }
            if write_frame(&mut uw, frames::STDIN, &buf[..n])
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let down = async move {
        loop {
            match read_frame(&mut ur).await? {
                Some((frames::STDOUT, p)) => sw.write_all(&p).await?,
                Some((frames::ERROR, p)) => bail!("{}", String::from_utf8_lossy(&p)),
                Some((frames::EXIT, _)) | None => {
                    let _ = sw.shutdown().await;
                    return Ok(());
                }
                Some(_) => {}
            }
        }
    };
    // The remote side's end ends the connection; the local side's end only
    // closes the way there (a half-close, as HTTP/1.0 clients do).
    tokio::select! {
        r = down => r,
        () = async { up_dir.await; std::future::pending::<()>().await } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port("8080").unwrap(), (None, "8080".into()));
        assert_eq!(parse_port("9000:80").unwrap(), (Some(9000), "80".into()));
        assert_eq!(parse_port(":80").unwrap(), (Some(0), "80".into()));
        assert_eq!(parse_port("0:http").unwrap(), (Some(0), "http".into()));
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("80:").is_err());
    }
}
