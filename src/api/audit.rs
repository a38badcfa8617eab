//! The audit log: one JSON line per write request (who, from where, what,
//! when, with what result), refused ones included, in a file rotated by
//! size. Written by a thread of its own behind a bounded queue, so a slow
//! disk delays no request; what does not fit is counted and dropped.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};

use axum::http::Method;
use serde::Serialize;

use crate::resource::types::Role;

/// Records queued at most; beyond, records are dropped (and counted).
const QUEUE: usize = 1024;
/// Objects named in one record at most (an apply may carry hundreds).
const MAX_OBJECTS: usize = 64;

/// The objects a write touched, put into the response's extensions by the
/// handlers that know them (`/v1/apply`, `/v1/delete`).
#[derive(Debug, Clone, Default)]
pub struct Objects(pub Vec<String>);

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct Record {
    time: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    method: String,
    path: String,
    status: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    objects: Vec<String>,
}

impl Record {
    /// A record of a request that got `status`; `caller` (the token's name
    /// and role) is `None` when it was not authenticated.
    pub fn new(
        caller: Option<(&str, Role)>,
        addr: Option<SocketAddr>,
        method: &Method,
        path: &str,
        status: u16,
        mut objects: Vec<String>,
    ) -> Record {
        if objects.len() > MAX_OBJECTS {
            let more = objects.len() - MAX_OBJECTS;
            objects.truncate(MAX_OBJECTS);
            objects.push(format!("... and {more} more"));
        }
        Record {
            time: crate::resource::time::now_rfc3339(),
            user: caller.map_or_else(|| "unauthenticated".into(), |(name, _)| name.into()),
            role: caller.map(|(_, role)| role.as_str()),
            client: addr.map(|a| a.to_string()),
            method: method.to_string(),
            path: path.to_string(),
            status,
            objects,
        }
    }
}

/// Where audit records go.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: SyncSender<Record>,
}

impl Audit {
    /// Opens (creating, mode 0600) `path` and starts the writer; the file
    /// is rotated to `path.1` .. `path.{files-1}` past `max_bytes`.
    pub fn start(path: PathBuf, max_bytes: u64, files: usize) -> std::io::Result<Audit> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open(&path)?;
        let size = file.metadata()?.len();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Record>(QUEUE);
        let mut w = Writer {
            path,
            file,
            size,
            max_bytes: max_bytes.max(1),
            files: files.max(1),
        };
        std::thread::Builder::new()
            .name("shoal-audit".into())
            .spawn(move || {
                // Ends when every sender (the API state's clones) is gone.
                for r in rx {
                    if let Err(e) = w.write(&r) {
                        ::metrics::counter!(crate::api::metrics::AUDIT_ERRORS_TOTAL).increment(1);
                        tracing::warn!("audit log {}: {e}", w.path.display());
                    }
                }
            })?;
        Ok(Audit { tx })
    }

    /// Queues a record; drops it (counted) when the writer is behind.
    pub fn record(&self, r: Record) {
        match self.tx.try_send(r) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                ::metrics::counter!(crate::api::metrics::AUDIT_DROPPED_TOTAL).increment(1);
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    files: usize,
}

impl Writer {
    fn write(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotated(&self, i: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    }

    /// `audit.log` becomes `audit.log.1`, `.1` becomes `.2`, ...; the oldest
    /// beyond `files` is removed.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.files - 1;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.rotated(keep));
        for i in (1..keep).rev() {
            let from = self.rotated(i);
            if from.exists() {
                std::fs::rename(&from, self.rotated(i + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_rotate_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::start(path.clone(), 2_000, 3).unwrap();
        for i in 0..200 {
            audit.record(Record::new(
                Some(("ci", Role::Edit)),
                None,
                &Method::POST,
                &format!("/v1/apply?n={i}"),
                200,
                vec!["Deployment/default/web".into()],
            ));
            // The queue holds 1,024; pace so none are dropped.
            if i % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        drop(audit);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut total = 0;
        for p in [
            path.clone(),
            dir.path().join("audit.log.1"),
            dir.path().join("audit.log.2"),
        ] {
            let meta = std::fs::metadata(&p).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", p.display());
            assert!(
                meta.len() <= 2_000,
                "{} is {} bytes",
                p.display(),
                meta.len()
            );
            total += meta.len();
        }
        assert!(
            !dir.path().join("audit.log.3").exists(),
            "only 3 files kept"
        );
        assert!(total > 4_000, "the files hold records: {total}");
        let last = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(line["user"], "ci");
        assert_eq!(line["role"], "edit");
        assert_eq!(line["path"], "/v1/apply?n=199");
        assert_eq!(line["objects"][0], "Deployment/default/web");
    }
}
