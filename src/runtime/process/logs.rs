//! A container's output: a FIFO the process writes to, a pump in the daemon
//! that copies it into size-capped, rotated files, and the reader behind
//! `logs` that reads across those files and follows rotations.
//!
//! The process never writes a log file itself, so the cap holds however fast
//! it writes. Its stdout and stderr are the FIFO opened read-write: with a
//! reader of its own, a write never fails with SIGPIPE while no daemon is
//! there to read (between a daemon's death and the next one's start it
//! blocks once the pipe's buffer is full, and the next daemon's pump picks
//! up where the last one stopped).

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;

use nix::fcntl::{Flock, FlockArg};

use super::*;

/// How long the watcher of a container that exited waits for the pump to
/// copy what is left in the pipe, before it records the exit anyway (a
/// process that escaped the group may hold the pipe open much longer).
const PUMP_DRAIN: Duration = Duration::from_secs(2);

/// The name of the `k`-th rotated log file (1 = the newest), or the current one for 0.
pub(super) fn log_name(k: u32) -> String {
    if k == 0 {
        LOG_FILE.to_string()
    } else {
        format!("{LOG_FILE}.{k}")
    }
}

/// Appends to a container's current log file and rotates it at the cap:
/// `output.log` → `output.log.1` → ... → `output.log.{max_files-1}`, the
/// oldest dropped.
pub(super) struct RotatingLog {
    dir: PathBuf,
    file: tokio::fs::File,
    size: u64,
    limits: LogLimits,
}

async fn open_current(dir: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(LOG_FILE))
        .await
}

impl RotatingLog {
    pub(super) async fn open(dir: &Path, limits: LogLimits) -> std::io::Result<RotatingLog> {
        let file = open_current(dir).await?;
        let size = file.metadata().await?.len();
        Ok(RotatingLog {
            dir: dir.to_path_buf(),
            file,
            size,
            limits,
        })
    }

    /// Writes `data`, rotating as often as it takes: no file grows past the cap.
    pub(super) async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let cap = self.limits.max_bytes.max(1);
        while !data.is_empty() {
            if self.size >= cap {
                self.rotate().await?;
            }
            let room = usize::try_from(cap - self.size).unwrap_or(usize::MAX);
            let (part, rest) = data.split_at(room.min(data.len()));
            self.file.write_all(part).await?;
            self.size += part.len() as u64;
            data = rest;
        }
        // tokio finishes a file write in the background: readers must see it now.
        self.file.flush().await
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let keep = self.limits.max_files.max(2);
        for k in (1..keep - 1).rev() {
            match tokio::fs::rename(self.dir.join(log_name(k)), self.dir.join(log_name(k + 1)))
                .await
            {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        tokio::fs::rename(self.dir.join(LOG_FILE), self.dir.join(log_name(1))).await?;
        self.file = open_current(&self.dir).await?;
        self.size = 0;
        ::metrics::counter!(crate::runtime::metrics::PROCESS_LOG_ROTATIONS_TOTAL).increment(1);
        Ok(())
    }
}

impl Inner {
    /// Starts copying a container's FIFO into its log, unless a pump
    /// already does (this daemon's, or another's that holds the lock).
    /// Returns what tells when the pump is done.
    pub(super) fn start_pump(
        self: &Arc<Self>,
        id: &str,
        dir: &Path,
    ) -> std::io::Result<Option<tokio::sync::watch::Receiver<()>>> {
        if let Some(done) = locked(&self.pumps).get(id) {
            return Ok(Some(done.clone()));
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join(LOG_LOCK))?;
        let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            // Another daemon on this root pumps it.
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(e.into()),
        };
        let rx = tokio::net::unix::pipe::OpenOptions::new().open_receiver(dir.join(LOG_FIFO))?;
        let (tx, done) = tokio::sync::watch::channel(());
        locked(&self.pumps).insert(id.to_string(), done.clone());
        let waiter = done.clone();
        let inner = Arc::clone(self);
        let (id, dir) = (id.to_string(), dir.to_path_buf());
        tokio::spawn(async move {
            inner.pump(&id, &dir, rx).await;
            let mut pumps = locked(&inner.pumps);
            if pumps.get(&id).is_some_and(|d| d.same_channel(&done)) {
                pumps.remove(&id);
            }
            drop(pumps);
            drop(lock);
            drop(tx);
        });
        Ok(Some(waiter))
    }

    async fn pump(&self, id: &str, dir: &Path, mut rx: tokio::net::unix::pipe::Receiver) {
        let mut log = match RotatingLog::open(dir, self.log_limits).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot open container log; its output is dropped");
                None
            }
        };
        let mut buf = vec![0u8; LOG_CHUNK];
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot read container output");
                    return;
                }
            };
            ::metrics::counter!(crate::runtime::metrics::PROCESS_LOG_BYTES_TOTAL)
                .increment(n as u64);
            // On a write error keep draining, so the process never blocks
            // on a full pipe because the disk is.
            if let Some(l) = &mut log
                && let Err(e) = l.write(&buf[..n]).await
            {
                tracing::warn!(%id, error = %e, "cannot write container log; its output is dropped");
                log = None;
            }
        }
    }

    /// Whether output may still arrive: the process runs or its pump has not drained yet.
    pub(super) async fn producing(&self, id: &str) -> bool {
        locked(&self.pumps).contains_key(id) || self.is_running(id).await
    }
}

/// Waits until a pump is done, at most [`PUMP_DRAIN`].
pub(super) async fn wait_drained(done: Option<tokio::sync::watch::Receiver<()>>) {
    if let Some(mut done) = done {
        // Err once the pump dropped its sender: it has finished.
        let _ =
            tokio::time::timeout(PUMP_DRAIN, async { while done.changed().await.is_ok() {} }).await;
    }
}

/// A container's log files, oldest first, opened now.
pub(super) fn open_log_files(dir: &Path) -> std::io::Result<Vec<std::fs::File>> {
    let mut rotated: Vec<u32> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(k) = name
            .to_str()
            .and_then(|n| n.strip_prefix(LOG_FILE))
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|k| *k > 0)
        {
            rotated.push(k);
        }
    }
    rotated.sort_unstable_by(|a, b| b.cmp(a));
    let mut files = Vec::new();
    for k in rotated.into_iter().chain([0]) {
        match std::fs::File::open(dir.join(log_name(k))) {
            Ok(f) => files.push(f),
            // Rotated away meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

/// Where the last `n` lines of the files read one after the other begin:
/// (index of the file, offset in it).
pub(super) fn tail_start(files: &mut [std::fs::File], n: u64) -> std::io::Result<(usize, u64)> {
    let mut lens = Vec::with_capacity(files.len());
    for f in files.iter() {
        lens.push(f.metadata()?.len());
    }
    let last = files.len().saturating_sub(1);
    if n == 0 {
        return Ok((last, lens.last().copied().unwrap_or(0)));
    }
    let mut newlines = 0u64;
    // The stream's final newline ends the last line; it does not start one.
    let mut at_end = true;
    let mut buf = vec![0u8; LOG_CHUNK];
    for i in (0..files.len()).rev() {
        let mut pos = lens[i];
        while pos > 0 {
            let size = usize::try_from(pos.min(LOG_CHUNK as u64)).unwrap_or(LOG_CHUNK);
            pos -= size as u64;
            files[i].seek(SeekFrom::Start(pos))?;
            files[i].read_exact(&mut buf[..size])?;
            for j in (0..size).rev() {
                let final_byte = std::mem::take(&mut at_end);
                if buf[j] == b'\n' && !final_byte {
                    newlines += 1;
                    if newlines == n {
                        return Ok((i, pos + j as u64 + 1));
                    }
                }
            }
        }
    }
    Ok((0, 0))
}

/// How often a follower looks for the file after its own when rotations
/// keep moving the files under it; past that it polls again later.
const SUCCESSOR_ATTEMPTS: usize = 8;

/// State of a log stream between items.
pub(super) struct LogReader {
    pub(super) file: tokio::fs::File,
    /// The files after `file`, oldest first, as they were when the stream began.
    pub(super) rest: VecDeque<std::fs::File>,
    pub(super) dir: PathBuf,
    pub(super) inner: Arc<Inner>,
    pub(super) id: String,
    pub(super) follow: bool,
    /// The container has ended: read to the end of the files, then stop.
    pub(super) draining: bool,
}

impl LogReader {
    pub(super) async fn next(mut self) -> Option<(Result<Bytes, RuntimeError>, Option<LogReader>)> {
        loop {
            let mut buf = vec![0u8; LOG_CHUNK];
            match self.file.read(&mut buf).await {
                Err(e) => {
                    return Some((
                        Err(RuntimeError::Io {
                            op: "read container log",
                            source: e,
                        }),
                        None,
                    ));
                }
                Ok(0) => {
                    if let Some(f) = self.rest.pop_front() {
                        self.file = tokio::fs::File::from_std(f);
                        continue;
                    }
                    if !self.follow {
                        return None;
                    }
                    match self.successor().await {
                        Ok(Some(f)) => {
                            self.file = f;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            return Some((
                                Err(RuntimeError::Io {
                                    op: "follow container log",
                                    source: e,
                                }),
                                None,
                            ));
                        }
                    }
                    if self.draining {
                        return None;
                    }
                    // Whatever it wrote before it exited is in the files by
                    // now: one more pass to the end reads all of it.
                    if !self.inner.producing(&self.id).await {
                        self.draining = true;
                        continue;
                    }
                    tokio::time::sleep(LOG_POLL).await;
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Some((Ok(Bytes::from(buf)), Some(self)));
                }
            }
        }
    }

    /// The file written after the one being read, once that one has been
    /// rotated; `None` while it is still the current one (or while a
    /// rotation is under way: the caller looks again after its poll).
    async fn successor(&self) -> std::io::Result<Option<tokio::fs::File>> {
        let ours = self.file.metadata().await?;
        let same = |m: &std::fs::Metadata| m.ino() == ours.ino() && m.dev() == ours.dev();
        let at = |k: u32| {
            let path = self.dir.join(log_name(k));
            async move {
                match tokio::fs::metadata(path).await {
                    Ok(m) => Ok(Some(m)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        // A rotation renames files one step older while this looks: a name
        // opened may by then hold a newer file than the one after ours.
        // Rotations only move files up, so ours still where it was found
        // once the next name is open proves the file opened is the next.
        for _ in 0..SUCCESSOR_ATTEMPTS {
            match at(0).await? {
                Some(m) if same(&m) => return Ok(None),
                Some(_) => {}
                // Between two renames of a rotation: look again later.
                None => return Ok(None),
            }
            let mut oldest = None;
            let mut found = None;
            for k in 1.. {
                match at(k).await? {
                    Some(m) if same(&m) => {
                        found = Some(k);
                        break;
                    }
                    Some(_) => oldest = Some(k),
                    None => break,
                }
            }
            let Some(k) = found else {
                // Ours was rotated out already (this reader fell behind by
                // more than the files kept): every file left is newer.
                return open_if_there(&self.dir.join(log_name(oldest.unwrap_or(0)))).await;
            };
            let next = open_if_there(&self.dir.join(log_name(k - 1))).await?;
            if at(k).await?.is_some_and(|m| same(&m)) {
                return Ok(next);
            }
        }
        Ok(None)
    }
}

async fn open_if_there(path: &Path) -> std::io::Result<Option<tokio::fs::File>> {
    match tokio::fs::File::open(path).await {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
