//! `shoal logs`: one pod's container, or every container of the pods a
//! Deployment or a label selector picks, each line then prefixed with
//! `[pod/NAME/CONTAINER]` as kubectl's `--prefix`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;

use super::client::{Client, open_stream, stream_to_stdout};
use super::jobs;
use crate::resource::types::{Body as _, DeploymentBody, LabelSelector, PodBody};
use crate::resource::{Kind, Object};

/// A line longer than this is cut and written in pieces, each prefixed: one
/// pod writing without newlines cannot grow the CLI's memory.
const MAX_LINE: usize = 64 * 1024;

/// What `shoal logs` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// `POD`, `pod/NAME`, `job/NAME` or `deployment/NAME`; none with `-l`.
    pub target: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// The container, when the pod has several (all of them for
    /// `deployment/NAME` and `-l` when unset).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The last terminated instance of the container, before its restart.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only lines newer than this (`90`, `90s`, `5m`, `2h`).
    #[arg(long, value_parser = super::parse_secs)]
    pub since: Option<u64>,
    /// Put the time each line was written before it.
    #[arg(long)]
    pub timestamps: bool,
    /// Pods whose labels match (`app=web`, `tier!=db`, `canary`, `!canary`, comma-separated).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// At most this many containers' logs at once; a follow of more is refused.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Runs `shoal logs`.
pub async fn logs(client: &Client, a: LogsArgs) -> anyhow::Result<()> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let pods: Vec<Object> = match (&a.selector, a.target.as_deref()) {
        (Some(_), Some(t)) => bail!("logs: give either {t:?} or -l, not both"),
        (None, None) => bail!("logs: name a pod (POD, job/NAME, deployment/NAME) or give -l"),
        (Some(sel), None) => {
            let sel = parse_selector(sel)?;
            selected(client, &ns, &sel).await?
        }
        (None, Some(t)) => match t.split_once('/') {
            Some((k, name)) if Kind::from_user(k) == Some(Kind::Deployment) => {
                let d = client.get(Kind::Deployment, &ns, name).await?;
                let body = DeploymentBody::from_object(&d)
                    .with_context(|| format!("deployment {name} does not decode"))?;
                selected(client, &ns, &body.spec.selector).await?
            }
            Some((k, name)) if Kind::from_user(k) == Some(Kind::Job) => {
                let pod = jobs::job_pod(client, &ns, name).await?;
                return stream_to_stdout(client, &log_path(&ns, &pod, a.container.as_deref(), &a))
                    .await;
            }
            Some((k, name)) if Kind::from_user(k) == Some(Kind::Pod) => {
                let path = log_path(&ns, name, a.container.as_deref(), &a);
                return stream_to_stdout(client, &path).await;
            }
            Some((k, _)) => {
                bail!("logs of {k:?}: name a pod, pod/NAME, job/NAME or deployment/NAME")
            }
            None => {
                let path = log_path(&ns, t, a.container.as_deref(), &a);
                return stream_to_stdout(client, &path).await;
            }
        },
    };
    let sources = sources(&pods, a.container.as_deref());
    if sources.is_empty() {
        bail!("no pods in namespace {ns} match");
    }
    if a.max_log_requests == 0 {
        bail!("--max-log-requests must be at least 1");
    }
    if a.follow && sources.len() > a.max_log_requests {
        bail!(
            "following {} log streams, but at most {} at once are allowed: narrow the selector or raise --max-log-requests",
            sources.len(),
            a.max_log_requests
        );
    }
    let out = Arc::new(Mutex::new(()));
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(sources)
        .map(|(pod, container)| {
            let path = log_path(&ns, &pod, Some(&container), &a);
            let prefix = format!("[pod/{pod}/{container}] ");
            let out = out.clone();
            async move { prefixed(client, &path, &prefix, &out).await }
        })
        .buffer_unordered(a.max_log_requests)
        .collect()
        .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// The pods of `ns` whose labels `sel` matches, by name.
async fn selected(client: &Client, ns: &str, sel: &LabelSelector) -> anyhow::Result<Vec<Object>> {
    let mut pods: Vec<Object> = client
        .list(Kind::Pod, Some(ns))
        .await?
        .into_iter()
        .filter(|p| sel.matches(&p.metadata.labels))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(pods)
}

/// (pod, container) pairs to read: `container` of each pod that has it, or
/// every container of each.
fn sources(pods: &[Object], container: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in pods {
        let Ok(body) = PodBody::from_object(p) else {
            continue;
        };
        for c in body.spec.all_containers() {
            if container.is_none_or(|want| want == c.name) {
                out.push((p.metadata.name.clone(), c.name.clone()));
            }
        }
    }
    out
}

fn log_path(ns: &str, pod: &str, container: Option<&str>, a: &LogsArgs) -> String {
    let mut path = format!(
        "/v1/namespaces/{ns}/pods/{pod}/log?follow={}&previous={}&timestamps={}",
        a.follow, a.previous, a.timestamps
    );
    if let Some(t) = a.tail {
        path.push_str(&format!("&tailLines={t}"));
    }
    if let Some(s) = a.since {
        path.push_str(&format!("&sinceSeconds={s}"));
    }
    if let Some(c) = container {
        path.push_str(&format!("&container={c}"));
    }
    path
}

/// Copies one log to stdout a whole line at a time, each line prefixed, so
/// lines of concurrent pods do not interleave mid-line.
async fn prefixed(
    client: &Client,
    path: &str,
    prefix: &str,
    out: &Mutex<()>,
) -> anyhow::Result<()> {
    let mut resp = open_stream(client, path)
        .await
        .map_err(|e| anyhow!("{}{e}", prefix.trim_end()))?;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the log stream")? {
        pending.extend_from_slice(&chunk);
        let lines = take_lines(&mut pending, MAX_LINE);
        if !lines.is_empty() && !write_prefixed(out, prefix, &lines) {
            return Ok(());
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        write_prefixed(out, prefix, &[pending]);
    }
    Ok(())
}

/// Splits off the complete lines of `buf` (and pieces of `max` bytes of a
/// longer line), each with its newline; the rest stays in `buf`.
fn take_lines(buf: &mut Vec<u8>, max: usize) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    loop {
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i < max => lines.push(buf.drain(..=i).collect()),
            _ if buf.len() >= max => {
                let mut piece: Vec<u8> = buf.drain(..max).collect();
                piece.push(b'\n');
                lines.push(piece);
            }
            _ => return lines,
        }
    }
}

/// Writes lines with their prefix under the lock; false once stdout is gone.
fn write_prefixed(out: &Mutex<()>, prefix: &str, lines: &[Vec<u8>]) -> bool {
    let _held = out.lock();
    let mut stdout = std::io::stdout().lock();
    for l in lines {
        if stdout
            .write_all(prefix.as_bytes())
            .and_then(|_| stdout.write_all(l))
            .is_err()
        {
            return false;
        }
    }
    stdout.flush().is_ok()
}

/// Parses kubectl's equality-based selector: `k=v`, `k==v`, `k!=v`, `k`,
/// `!k`, joined by commas (all must hold).
pub fn parse_selector(s: &str) -> anyhow::Result<LabelSelector> {
    Ok(crate::resource::selector::parse(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn selectors_parse_and_match() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let cases: &[(&str, bool, bool)] = &[
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app=web,tier=front", true, false),
            ("app=web, tier=back", false, false),
        ];
        for (s, on_web, on_db) in cases {
            let sel = parse_selector(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.matches(&web), *on_web, "{s} on web");
            assert_eq!(sel.matches(&db), *on_db, "{s} on db");
        }
        for bad in ["", "app=web,", "app in (web)", "=web", "a=b=c", "!"] {
            assert!(parse_selector(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn lines_are_split_whole_and_long_ones_cut() {
        let mut buf = b"one\ntwo\nthr".to_vec();
        assert_eq!(
            take_lines(&mut buf, 64),
            vec![b"one\n".to_vec(), b"two\n".to_vec()]
        );
        assert_eq!(buf, b"thr");
        let mut long = b"abcdefgh\nxy".to_vec();
        assert_eq!(
            take_lines(&mut long, 3),
            vec![b"abc\n".to_vec(), b"def\n".to_vec(), b"gh\n".to_vec()]
        );
        assert_eq!(long, b"xy");
    }
}
