//! The process driver: every container is a plain process on the host, for
//! hosts without Docker and for fast tests.
//!
//! What a "container" is here:
//!
//! - The image is only a label: `ensure_image` accepts any reference and the
//!   driver runs the spec's `command` followed by its `args` directly on the
//!   host (so `command` must be set: there is no image entrypoint to fall
//!   back to).
//! - The process gets a cleared environment holding only the daemon's `PATH`
//!   and the spec's `env`, its own process group (so a stop reaches the
//!   children it forked), stdin from `/dev/null`, and stdout and stderr both
//!   appended to one log file.
//! - Not isolated and not limited: CPU and memory limits, mounts, DNS settings
//!   and port bindings are ignored. The process binds its ports on the host
//!   itself and has no IP of its own. Memory is not capped with `RLIMIT_AS`
//!   either: address space is not memory use (runtimes reserve far more than
//!   they touch), so such a cap kills healthy programs at random.
//! - Like a container's pid namespace, the process group dies with its
//!   leader: whatever the leader forked is killed when it exits.
//!
//! Each container lives in `root/<id>/`: `spec.json`, `state.json` and
//! `output.log`. The state is written atomically and after every change of
//! life, so a daemon that is killed and restarted adopts the processes still
//! running: a recorded pid counts as the same process only while its start
//! time (and the boot id) still match, which keeps a reused pid from passing
//! for the container. The exit code of a process that ends while no daemon
//! waits for it cannot be known and is reported as `None`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp, getpid};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    ContainerInfo, ContainerSpec, ContainerState, ExecOutput, LogOptions, LogStream, PortBinding,
    Runtime, RuntimeError, Stats,
};

const SPEC_FILE: &str = "spec.json";
const STATE_FILE: &str = "state.json";
const LOG_FILE: &str = "output.log";

/// An exec's output is kept for probes and messages, not as a data channel.
const EXEC_OUTPUT_LIMIT: usize = 4096;

/// How often `stop` looks whether the process is gone: short, because a
/// stop holds up the agent's reconcile of the pod.
const EXIT_POLL: Duration = Duration::from_millis(25);

/// How long a SIGKILLed process may take to disappear before `stop` gives up
/// (a process stuck in uninterruptible sleep ignores even SIGKILL for a while).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often a followed log is read for new output.
const LOG_POLL: Duration = Duration::from_millis(150);

/// Read size for log files.
const LOG_CHUNK: usize = 64 * 1024;

/// Linux's user-visible clock tick rate, fixed by its ABI; only used when
/// the auxiliary vector cannot be read.
const DEFAULT_CLK_TCK: u64 = 100;
const DEFAULT_PAGE_SIZE: u64 = 4096;

/// Auxiliary vector keys (`<elf.h>`): the kernel hands every process these
/// values, which spares a libc dependency for `sysconf`.
const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// The mutable part of a container, as stored in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct StateFile {
    created_at: Option<SystemTime>,
    /// Pid of the process group leader, once started.
    pid: Option<u32>,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot): with the
    /// boot id, tells the container's process from a later one with its pid.
    start_time: Option<u64>,
    boot_id: Option<String>,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    exit_code: Option<i64>,
}

/// One container as read from disk.
struct Stored {
    id: String,
    dir: PathBuf,
    spec: ContainerSpec,
    state: StateFile,
}

/// Why a container could not be read.
enum LoadError {
    NotFound,
    Corrupt(String),
}

impl LoadError {
    fn into_runtime(self, op: &'static str, id: &str) -> RuntimeError {
        match self {
            LoadError::NotFound => RuntimeError::NotFound(id.to_string()),
            LoadError::Corrupt(msg) => RuntimeError::Engine { op, msg },
        }
    }
}

/// The fields of `/proc/<pid>/stat` the driver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    state: char,
    pgrp: i32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
    start_time: u64,
    rss_pages: u64,
}

impl ProcStat {
    /// A zombie has finished running; only its parent's wait is missing.
    fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The process driver.
///
/// Cheap to clone; clones share their bookkeeping. Only one daemon should
/// own a root at a time: two would both record exits and race on cleanup.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

struct Inner {
    root: PathBuf,
    boot_id: Option<String>,
    clk_tck: u64,
    page_size: u64,
    /// Held across every read-modify-write of a state file, and across
    /// create's name check, so a start, an exit and an adoption check never
    /// overwrite each other's update.
    lock: tokio::sync::Mutex<()>,
    /// Children this runtime spawned whose exit is not recorded yet (id →
    /// pid). Between the reap and the record the pid is gone from /proc, so
    /// /proc alone would call the container exited without its exit code.
    children: Mutex<HashMap<String, u32>>,
    /// Corrupt directories already reported: the agent lists every few
    /// seconds and one warning each is enough.
    warned: Mutex<HashSet<PathBuf>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: every update is a
    // single insert or remove.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(op: &'static str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { op, source }
}

impl ProcessRuntime {
    /// Opens (creating it if needed) the directory holding this driver's
    /// containers; containers left there by an earlier daemon are adopted.
    pub fn new(root: PathBuf) -> Result<ProcessRuntime, RuntimeError> {
        std::fs::create_dir_all(&root).map_err(io_err("create process runtime root"))?;
        // Absolute, so a container's default working directory does not
        // depend on the daemon's.
        let root = std::fs::canonicalize(&root).map_err(io_err("resolve process runtime root"))?;
        remove_leftovers(&root);
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(ProcessRuntime {
            inner: Arc::new(Inner {
                root,
                boot_id,
                clk_tck: auxv_value(AT_CLKTCK)
                    .filter(|&v| v > 0)
                    .unwrap_or(DEFAULT_CLK_TCK),
                page_size: auxv_value(AT_PAGESZ)
                    .filter(|&v| v > 0)
                    .unwrap_or(DEFAULT_PAGE_SIZE),
                lock: tokio::sync::Mutex::new(()),
                children: Mutex::new(HashMap::new()),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }
}

/// Removes what an interrupted create or remove left behind: such
/// directories start with a dot and are never containers.
fn remove_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            let path = entry.path();
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover directory");
            }
        }
    }
}

/// Reads one entry of this process's auxiliary vector.
fn auxv_value(key: u64) -> Option<u64> {
    const W: usize = std::mem::size_of::<usize>();
    let data = std::fs::read("/proc/self/auxv").ok()?;
    for pair in data.chunks_exact(2 * W) {
        let k = usize::from_ne_bytes(pair[..W].try_into().ok()?) as u64;
        let v = usize::from_ne_bytes(pair[W..].try_into().ok()?) as u64;
        if k == key {
            return Some(v);
        }
        if k == 0 {
            break;
        }
    }
    None
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3.
    let num = |field: usize| -> Option<u64> { f.get(field - 3)?.parse().ok() };
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(5 - 3)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        cutime: num(16)?,
        cstime: num(17)?,
        start_time: num(22)?,
        rss_pages: num(24)?,
    })
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process `pid` if it is still the one recorded (same start time) and
/// has not finished.
fn live_process(pid: u32, start_time: Option<u64>) -> Option<ProcStat> {
    let st = read_stat(pid)?;
    if !st.is_live() {
        return None;
    }
    match start_time {
        Some(t) if t != st.start_time => None,
        _ => Some(st),
    }
}

/// `exit_code` of an exit status the way shells and Docker report it.
fn exit_code_of(status: ExitStatus) -> Option<i64> {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
}

/// Sends `sig` to the container process `pid` and its group, after checking
/// that `pid` is still the recorded process. `Ok(false)` when it is gone.
fn signal_container(pid: u32, start_time: Option<u64>, sig: Signal) -> Result<bool, Errno> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(false);
    };
    // A corrupt state file must never turn a stop into a signal to init or
    // to the daemon itself.
    if raw <= 1 || Pid::from_raw(raw) == getpid() {
        return Ok(false);
    }
    let Some(st) = live_process(pid, start_time) else {
        return Ok(false);
    };
    let result = if st.pgrp == raw && Pid::from_raw(st.pgrp) != getpgrp() {
        killpg(Pid::from_raw(raw), sig)
    } else {
        // It left the group it was started in: reach at least the process.
        kill(Pid::from_raw(raw), sig)
    };
    match result {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Kills what is left of a process group whose leader has exited. Its pid
/// cannot be handed out again while the group has members, so this reaches
/// only the leader's leftovers.
fn kill_leftovers(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 || Pid::from_raw(raw) == getpgrp() {
        return;
    }
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
}

/// Byte offset where the last `n` lines of `file` begin.
fn tail_offset(file: &mut std::fs::File, n: u64) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut newlines = 0u64;
    let mut buf = vec![0u8; LOG_CHUNK];
    while pos > 0 {
        let size = usize::try_from(pos.min(LOG_CHUNK as u64)).unwrap_or(LOG_CHUNK);
        pos -= size as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..size])?;
        for i in (0..size).rev() {
            let at = pos + i as u64;
            // The final newline ends the last line; it does not start one.
            if buf[i] == b'\n' && at + 1 != len {
                newlines += 1;
                if newlines == n {
                    return Ok(at + 1);
                }
            }
        }
    }
    Ok(0)
}

/// Ids come from API callers: anything that is not one plain directory
/// name below the root cannot be a container.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && !id.contains('/') && !id.contains('\0')
}

async fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    // A name of its own per write: two writers (a second runtime on the same
    // root, as after a restart) must never interleave in one temp file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let tmp = PathBuf::from(tmp);
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(data).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

async fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &data).await
}

/// The environment and directory a container's processes (and its execs) run with.
fn configure(cmd: &mut tokio::process::Command, stored: &Stored) {
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(stored.spec.env.iter().map(|(k, v)| (k, v)));
    let dir = match stored.spec.working_dir.as_deref() {
        Some(d) if !d.is_empty() => stored.dir.join(d),
        _ => stored.dir.clone(),
    };
    cmd.current_dir(dir);
    cmd.stdin(Stdio::null());
    cmd.process_group(0);
    // The daemon runs with umask 077 so its data dir stays private; a pod's
    // processes get the usual 022.
    // SAFETY: umask(2) is async-signal-safe and touches no memory, so it
    // may run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        });
    }
}

impl Inner {
    fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    async fn load(&self, id: &str) -> Result<Stored, LoadError> {
        if !valid_id(id) {
            return Err(LoadError::NotFound);
        }
        let dir = self.dir_of(id);
        let read = |name: &'static str| {
            let path = dir.join(name);
            async move {
                match tokio::fs::read(&path).await {
                    Ok(data) => Ok(Some(data)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(LoadError::Corrupt(format!(
                        "cannot read {}: {e}",
                        path.display()
                    ))),
                }
            }
        };
        let spec = read(SPEC_FILE).await?;
        let state = read(STATE_FILE).await?;
        let (spec, state) = match (spec, state) {
            (Some(spec), Some(state)) => (spec, state),
            _ => {
                return match tokio::fs::metadata(&dir).await {
                    Ok(_) => Err(LoadError::Corrupt(format!(
                        "{}: {SPEC_FILE} or {STATE_FILE} missing",
                        dir.display()
                    ))),
                    Err(_) => Err(LoadError::NotFound),
                };
            }
        };
        let spec: ContainerSpec = serde_json::from_slice(&spec)
            .map_err(|e| LoadError::Corrupt(format!("{}/{SPEC_FILE}: {e}", dir.display())))?;
        let state: StateFile = serde_json::from_slice(&state)
            .map_err(|e| LoadError::Corrupt(format!("{}/{STATE_FILE}: {e}", dir.display())))?;
        Ok(Stored {
            id: id.to_string(),
            dir,
            spec,
            state,
        })
    }

    async fn save_state(&self, stored: &Stored) -> std::io::Result<()> {
        write_json(&stored.dir.join(STATE_FILE), &stored.state).await
    }

    /// Whether the process recorded as `pid` still runs.
    fn alive(&self, id: &str, pid: u32, start_time: Option<u64>) -> bool {
        locked(&self.children).get(id) == Some(&pid) || live_process(pid, start_time).is_some()
    }

    /// The container's state now. Must be called with `lock` held: when it
    /// finds an adopted process gone it records when, so the time it reports
    /// stays the same from one call to the next.
    async fn current_state(&self, stored: &mut Stored) -> ContainerState {
        let st = &stored.state;
        if st.exit_code.is_some() || st.finished_at.is_some() {
            return ContainerState::Exited {
                exit_code: st.exit_code,
                oom_killed: false,
                finished_at: st.finished_at,
            };
        }
        let Some(pid) = st.pid else {
            return ContainerState::Created;
        };
        let same_boot = match (&st.boot_id, &self.boot_id) {
            (Some(recorded), Some(now)) => recorded == now,
            _ => true,
        };
        if same_boot && self.alive(&stored.id, pid, st.start_time) {
            return ContainerState::Running;
        }
        let now = SystemTime::now();
        stored.state.finished_at = Some(now);
        if let Err(e) = self.save_state(stored).await {
            tracing::warn!(id = %stored.id, error = %e, "cannot record the end of an adopted process");
        }
        ContainerState::Exited {
            exit_code: None,
            oom_killed: false,
            finished_at: Some(now),
        }
    }

    async fn info(&self, stored: &mut Stored) -> ContainerInfo {
        let state = self.current_state(stored).await;
        ContainerInfo {
            id: stored.id.clone(),
            name: if stored.spec.name.is_empty() {
                stored.id.clone()
            } else {
                stored.spec.name.clone()
            },
            image: stored.spec.image.clone(),
            labels: stored.spec.labels.clone(),
            state,
            started_at: stored.state.started_at,
            created_at: stored.state.created_at,
            ip: None,
            // A host process listens on the host: each port is its own.
            ports: stored
                .spec
                .ports
                .iter()
                .map(|p| PortBinding {
                    container_port: p.container_port,
                    host_port: p.container_port,
                    host_ip: String::new(),
                })
                .collect(),
        }
    }

    /// Every readable container, corrupt ones reported once and skipped.
    /// Called with `lock` held.
    async fn load_all(&self) -> Result<Vec<Stored>, RuntimeError> {
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(io_err("list containers"))?;
        let mut out = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_err("list containers"))?
        {
            let name = entry.file_name();
            let Some(id) = name.to_str() else { continue };
            if !valid_id(id) || !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match self.load(id).await {
                Ok(stored) => out.push(stored),
                // Removed while listing.
                Err(LoadError::NotFound) => {}
                Err(LoadError::Corrupt(msg)) => {
                    if locked(&self.warned).insert(entry.path()) {
                        tracing::warn!(%msg, "skipping unreadable process container");
                    }
                }
            }
        }
        Ok(out)
    }

    async fn is_running(&self, id: &str) -> bool {
        let _g = self.lock.lock().await;
        match self.load(id).await {
            Ok(mut stored) => self.current_state(&mut stored).await == ContainerState::Running,
            Err(_) => false,
        }
    }

    /// Waits until the recorded process is gone; false if `limit` passed first.
    async fn wait_exit(
        &self,
        id: &str,
        pid: u32,
        start_time: Option<u64>,
        limit: Duration,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.alive(id, pid, start_time) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(EXIT_POLL.min(deadline - now)).await;
        }
    }

    /// Kills the container's process and waits for it to be gone.
    async fn terminate(
        &self,
        id: &str,
        pid: u32,
        start_time: Option<u64>,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let signal_err = |e: Errno| RuntimeError::Engine {
            op: "stop container",
            msg: format!("cannot signal process {pid} of {id}: {e}"),
        };
        if !grace.is_zero() {
            signal_container(pid, start_time, Signal::SIGTERM).map_err(signal_err)?;
        }
        if !self.wait_exit(id, pid, start_time, grace).await {
            signal_container(pid, start_time, Signal::SIGKILL).map_err(signal_err)?;
            if !self.wait_exit(id, pid, start_time, KILL_WAIT).await {
                return Err(RuntimeError::Engine {
                    op: "stop container",
                    msg: format!(
                        "process {pid} of {id} still runs {} s after SIGKILL",
                        KILL_WAIT.as_secs()
                    ),
                });
            }
        }
        kill_leftovers(pid);
        Ok(())
    }

    /// Records how a child of this runtime ended, once it has.
    async fn watch_child(self: Arc<Self>, id: String, pid: u32, mut child: tokio::process::Child) {
        let exit_code = match child.wait().await {
            Ok(status) => exit_code_of(status),
            Err(e) => {
                tracing::warn!(%id, pid, error = %e, "cannot wait for container process");
                None
            }
        };
        kill_leftovers(pid);
        let _g = self.lock.lock().await;
        match self.load(&id).await {
            // Only if it was not restarted meanwhile (by another runtime on this root).
            Ok(mut stored) if stored.state.pid == Some(pid) => {
                stored.state.exit_code = exit_code;
                stored.state.finished_at = Some(SystemTime::now());
                if let Err(e) = self.save_state(&stored).await {
                    tracing::warn!(%id, error = %e, "cannot record container exit");
                }
            }
            Ok(_) | Err(LoadError::NotFound) => {}
            Err(LoadError::Corrupt(msg)) => {
                tracing::warn!(%id, %msg, "cannot record container exit");
            }
        }
        let mut children = locked(&self.children);
        if children.get(&id) == Some(&pid) {
            children.remove(&id);
        }
    }
}

/// State of a log stream between items.
struct LogReader {
    file: tokio::fs::File,
    inner: Arc<Inner>,
    id: String,
    follow: bool,
    /// The container has ended: read to the end of the file, then stop.
    draining: bool,
}

impl LogReader {
    async fn next(mut self) -> Option<(Result<Bytes, RuntimeError>, Option<LogReader>)> {
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
                    if !self.follow || self.draining {
                        return None;
                    }
                    // Whatever it wrote before it exited is in the file by
                    // now: one more pass to the end reads all of it.
                    if !self.inner.is_running(&self.id).await {
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
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        match tokio::fs::metadata(&self.inner.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(RuntimeError::Unavailable(format!(
                "{} is not a directory",
                self.inner.root.display()
            ))),
            Err(e) => Err(RuntimeError::Unavailable(format!(
                "{}: {e}",
                self.inner.root.display()
            ))),
        }
    }

    /// Always succeeds: the image of a process container is only a label.
    async fn ensure_image(&self, _image: &str, _always_pull: bool) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        if spec.command.is_empty() && spec.args.is_empty() {
            return Err(RuntimeError::Engine {
                op: "create container",
                msg: "the process runtime needs a command".into(),
            });
        }
        let inner = &self.inner;
        let _g = inner.lock.lock().await;
        if !spec.name.is_empty() {
            let existing = inner.load_all().await?;
            if existing.iter().any(|c| c.spec.name == spec.name) {
                return Err(RuntimeError::Engine {
                    op: "create container",
                    msg: format!("a container named {} already exists", spec.name),
                });
            }
        }
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if tokio::fs::symlink_metadata(inner.dir_of(&id))
                .await
                .is_err()
            {
                break id;
            }
        };
        // Built under a dot-name and renamed into place, so a crash never
        // leaves a half-written container for the next daemon to trip on.
        let tmp = inner.root.join(format!(".creating-{id}"));
        let build = async {
            tokio::fs::create_dir(&tmp).await?;
            write_json(&tmp.join(SPEC_FILE), spec).await?;
            let state = StateFile {
                created_at: Some(SystemTime::now()),
                ..StateFile::default()
            };
            write_json(&tmp.join(STATE_FILE), &state).await?;
            tokio::fs::rename(&tmp, inner.dir_of(&id)).await
        };
        if let Err(e) = build.await {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(RuntimeError::Io {
                op: "create container",
                source: e,
            });
        }
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let _g = inner.lock.lock().await;
        let mut stored = inner
            .load(id)
            .await
            .map_err(|e| e.into_runtime("start container", id))?;
        // Starting a running container is a no-op, as in Docker.
        if inner.current_state(&mut stored).await == ContainerState::Running {
            return Ok(());
        }
        let argv: Vec<&String> = stored
            .spec
            .command
            .iter()
            .chain(stored.spec.args.iter())
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(RuntimeError::Engine {
                op: "start container",
                msg: "the process runtime needs a command".into(),
            });
        };
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(stored.dir.join(LOG_FILE))
        };
        let stdout = open_log().map_err(io_err("open container log"))?;
        let stderr = stdout.try_clone().map_err(io_err("open container log"))?;
        let spawned = {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            configure(&mut cmd, &stored);
            cmd.stdout(stdout).stderr(stderr).kill_on_drop(false);
            cmd.spawn()
            // The command, holding the parent's copies of the log file, is
            // dropped here.
        };
        let child = spawned.map_err(|e| RuntimeError::Engine {
            op: "start container",
            msg: format!("{id}: cannot run {program:?}: {e}"),
        })?;
        let Some(pid) = child.id() else {
            // Unreachable in practice: only a completed wait clears the pid.
            return Err(RuntimeError::Engine {
                op: "start container",
                msg: format!("{id}: the process has no pid"),
            });
        };
        // Not reaped before `watch_child` waits, so /proc still has it even
        // if it has already exited.
        let start_time = read_stat(pid).map(|s| s.start_time);
        stored.state = StateFile {
            created_at: stored.state.created_at,
            pid: Some(pid),
            start_time,
            boot_id: inner.boot_id.clone(),
            started_at: Some(SystemTime::now()),
            finished_at: None,
            exit_code: None,
        };
        if let Err(e) = inner.save_state(&stored).await {
            // A process nobody can find again must not keep running.
            kill_leftovers(pid);
            let mut child = child;
            let _ = child.wait().await;
            return Err(RuntimeError::Io {
                op: "record container start",
                source: e,
            });
        }
        locked(&inner.children).insert(id.to_string(), pid);
        tokio::spawn(Arc::clone(inner).watch_child(id.to_string(), pid, child));
        Ok(())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let (pid, start_time) = {
            let _g = inner.lock.lock().await;
            let mut stored = match inner.load(id).await {
                Ok(s) => s,
                // Gone already: what stop wanted (as the Docker driver does).
                Err(LoadError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into_runtime("stop container", id)),
            };
            match (inner.current_state(&mut stored).await, stored.state.pid) {
                (ContainerState::Running, Some(pid)) => (pid, stored.state.start_time),
                _ => return Ok(()),
            }
        };
        inner.terminate(id, pid, start_time, grace).await?;
        // An adopted process has no watcher: record its end now.
        let _g = inner.lock.lock().await;
        if let Ok(mut stored) = inner.load(id).await {
            inner.current_state(&mut stored).await;
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let guard = loop {
            let guard = inner.lock.lock().await;
            let (pid, start_time) = match inner.load(id).await {
                Ok(mut stored) => {
                    match (inner.current_state(&mut stored).await, stored.state.pid) {
                        (ContainerState::Running, Some(pid)) => (pid, stored.state.start_time),
                        _ => break guard,
                    }
                }
                Err(LoadError::NotFound) => return Ok(()),
                // Unreadable: nothing to stop that can be found, but the
                // directory can still go.
                Err(LoadError::Corrupt(_)) => break guard,
            };
            // The watcher of a child needs the lock to record its exit.
            drop(guard);
            inner.terminate(id, pid, start_time, Duration::ZERO).await?;
            // Look again: it may have been restarted meanwhile.
        };
        let dir = inner.dir_of(id);
        // Renamed out of the way first so no list sees it half deleted.
        let trash = inner
            .root
            .join(format!(".removing-{id}-{:08x}", rand::random::<u32>()));
        match tokio::fs::rename(&dir, &trash).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(RuntimeError::Io {
                    op: "remove container",
                    source: e,
                });
            }
        }
        drop(guard);
        locked(&inner.warned).remove(&dir);
        tokio::fs::remove_dir_all(&trash)
            .await
            .map_err(io_err("remove container"))
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let inner = &self.inner;
        let _g = inner.lock.lock().await;
        let mut out = Vec::new();
        for mut stored in inner.load_all().await? {
            if labels
                .iter()
                .all(|(k, v)| stored.spec.labels.get(k) == Some(v))
            {
                out.push(inner.info(&mut stored).await);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let inner = &self.inner;
        let _g = inner.lock.lock().await;
        let mut stored = inner
            .load(id)
            .await
            .map_err(|e| e.into_runtime("inspect container", id))?;
        Ok(inner.info(&mut stored).await)
    }

    async fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        let path = {
            let _g = self.inner.lock.lock().await;
            let stored = self
                .inner
                .load(id)
                .await
                .map_err(|e| e.into_runtime("container logs", id))?;
            stored.dir.join(LOG_FILE)
        };
        let opened = tokio::task::spawn_blocking(move || {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                // Never started: no output yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let offset = match opts.tail {
                Some(n) => tail_offset(&mut file, n)?,
                None => 0,
            };
            file.seek(SeekFrom::Start(offset))?;
            Ok(Some(file))
        })
        .await
        .map_err(|e| RuntimeError::Engine {
            op: "container logs",
            msg: format!("{id}: {e}"),
        })?
        .map_err(io_err("open container log"))?;
        let Some(file) = opened else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let reader = LogReader {
            file: tokio::fs::File::from_std(file),
            inner: Arc::clone(&self.inner),
            id: id.to_string(),
            follow: opts.follow,
            draining: false,
        };
        Ok(Box::pin(futures::stream::unfold(Some(reader), |r| async {
            r?.next().await
        })))
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let inner = &self.inner;
        let (pid, start_time) = {
            let _g = inner.lock.lock().await;
            let mut stored = inner
                .load(id)
                .await
                .map_err(|e| e.into_runtime("container stats", id))?;
            match (inner.current_state(&mut stored).await, stored.state.pid) {
                (ContainerState::Running, Some(pid)) => (pid, stored.state.start_time),
                // Like Docker: a container that does not run uses nothing.
                _ => return Ok(Stats::default()),
            }
        };
        let (clk_tck, page_size) = (inner.clk_tck, inner.page_size);
        tokio::task::spawn_blocking(move || group_stats(pid, start_time, clk_tck, page_size))
            .await
            .map_err(|e| RuntimeError::Engine {
                op: "container stats",
                msg: format!("{id}: {e}"),
            })
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let stored = {
            let _g = self.inner.lock.lock().await;
            let mut stored = self
                .inner
                .load(id)
                .await
                .map_err(|e| e.into_runtime("exec", id))?;
            if self.inner.current_state(&mut stored).await != ContainerState::Running {
                return Err(RuntimeError::Engine {
                    op: "exec",
                    msg: format!("container {id} is not running"),
                });
            }
            stored
        };
        let Some((program, args)) = cmd.split_first() else {
            return Err(RuntimeError::Engine {
                op: "exec",
                msg: format!("{id}: no command to run"),
            });
        };
        // One pipe for both streams keeps their interleaving, as a terminal would.
        let (tx, mut rx) = tokio::net::unix::pipe::pipe().map_err(io_err("exec pipe"))?;
        let out_fd = tx.into_blocking_fd().map_err(io_err("exec pipe"))?;
        let err_fd = out_fd.try_clone().map_err(io_err("exec pipe"))?;
        let spawned = {
            let mut command = tokio::process::Command::new(program);
            command.args(args);
            configure(&mut command, &stored);
            command
                .stdout(Stdio::from(out_fd))
                .stderr(Stdio::from(err_fd))
                .kill_on_drop(true);
            command.spawn()
            // Dropping the command closes our write ends, so the pipe ends
            // when the command's processes are gone.
        };
        let mut child = spawned.map_err(|e| RuntimeError::Engine {
            op: "exec",
            msg: format!("{cmd:?} in {id}: cannot run {program:?}: {e}"),
        })?;
        let pid = child.id();
        let work = async {
            let read = async {
                let mut output = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = rx.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(output);
                    }
                    // Keep reading past the limit: a command blocked on a
                    // full pipe would never finish.
                    let room = EXEC_OUTPUT_LIMIT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
            };
            let wait = async {
                let status = child.wait().await;
                // What it left in the background would hold the pipe open.
                if let Some(pid) = pid {
                    kill_leftovers(pid);
                }
                status
            };
            tokio::join!(read, wait)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok((output, status)) => {
                let status = status.map_err(io_err("wait for exec"))?;
                let output = output.map_err(io_err("read exec output"))?;
                let exit_code = exit_code_of(status).ok_or_else(|| RuntimeError::Engine {
                    op: "exec",
                    msg: format!("{cmd:?} in {id}: no exit status"),
                })?;
                Ok(ExecOutput { exit_code, output })
            }
            Err(_) => {
                if let Some(pid) = pid {
                    kill_leftovers(pid);
                }
                // Reap it; kill_on_drop covers one that outlives this wait.
                let _ = tokio::time::timeout(KILL_WAIT, child.wait()).await;
                Err(RuntimeError::Engine {
                    op: "exec",
                    msg: format!(
                        "{cmd:?} in {id} timed out after {} s",
                        timeout.as_secs_f64()
                    ),
                })
            }
        }
    }
}

/// CPU time and resident memory of every process in the container's group,
/// which is as close to a container's cgroup as plain processes get.
fn group_stats(pid: u32, start_time: Option<u64>, clk_tck: u64, page_size: u64) -> Stats {
    let Some(leader) = live_process(pid, start_time) else {
        return Stats::default();
    };
    let tick_nanos = 1_000_000_000 / clk_tck.max(1);
    let mut acc = (0u64, 0u64);
    let mut add = |st: &ProcStat| {
        // Time of reaped children is in their parent's cutime/cstime.
        let ticks = st.utime + st.stime + st.cutime + st.cstime;
        acc.0 = acc.0.saturating_add(ticks.saturating_mul(tick_nanos));
        acc.1 = acc.1.saturating_add(st.rss_pages.saturating_mul(page_size));
    };
    let pgid = i32::try_from(pid).ok().filter(|&p| p == leader.pgrp);
    match (pgid, std::fs::read_dir("/proc")) {
        (Some(pgid), Ok(entries)) => {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(other) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(st) = read_stat(other)
                    && st.pgrp == pgid
                {
                    add(&st);
                }
            }
        }
        // It left its group: only the process itself can be told apart.
        _ => add(&leader),
    }
    Stats {
        cpu_total_nanos: acc.0,
        memory_bytes: acc.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sh(name: &str, script: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "ignored:latest".into(),
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            labels: labels(&[("test", "process"), ("name", name)]),
            ..ContainerSpec::default()
        }
    }

    fn runtime() -> (tempfile::TempDir, ProcessRuntime) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = ProcessRuntime::new(dir.path().join("process")).expect("runtime");
        (dir, rt)
    }

    async fn run(rt: &ProcessRuntime, spec: &ContainerSpec) -> String {
        let id = rt.create(spec).await.expect("create");
        rt.start(&id).await.expect("start");
        id
    }

    async fn wait_exited(rt: &ProcessRuntime, id: &str) -> ContainerState {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = rt.inspect(id).await.expect("inspect").state;
            if matches!(state, ContainerState::Exited { .. }) {
                return state;
            }
            assert!(Instant::now() < deadline, "{id} still {state:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_logs(rt: &ProcessRuntime, id: &str, opts: LogOptions) -> String {
        let mut stream = rt.logs(id, opts).await.expect("logs");
        let mut out = Vec::new();
        let collect = async {
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.expect("log chunk"));
            }
        };
        tokio::time::timeout(Duration::from_secs(5), collect)
            .await
            .expect("log stream ends");
        String::from_utf8(out).expect("utf-8 logs")
    }

    /// Waits until the container's log holds `text`, so a test acts only
    /// once the script got that far.
    async fn wait_log(rt: &ProcessRuntime, id: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !read_logs(rt, id, LogOptions::default())
            .await
            .contains(text)
        {
            assert!(Instant::now() < deadline, "{id} never logged {text:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn exit_code(state: &ContainerState) -> Option<i64> {
        match state {
            ContainerState::Exited { exit_code, .. } => *exit_code,
            other => panic!("not exited: {other:?}"),
        }
    }

    #[tokio::test]
    async fn run_list_stop_remove() {
        let (_dir, rt) = runtime();
        assert_eq!(rt.name(), "process");
        rt.ping().await.expect("ping");
        rt.ensure_image("anything/at:all", true)
            .await
            .expect("any image");
        let spec = ContainerSpec {
            command: vec!["/bin/sh".into(), "-c".into()],
            args: vec!["sleep 30".into()],
            ..sh("sleeper", "")
        };
        let id = rt.create(&spec).await.expect("create");
        assert_eq!(id.len(), 16);
        let info = rt.inspect(&id).await.expect("inspect");
        assert_eq!(info.state, ContainerState::Created);
        assert!(info.created_at.is_some());
        rt.start(&id).await.expect("start");
        rt.start(&id)
            .await
            .expect("starting a running container is a no-op");

        let found = rt
            .list(&labels(&[("test", "process"), ("name", "sleeper")]))
            .await
            .expect("list");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, id);
        assert_eq!(found[0].name, "sleeper");
        assert_eq!(found[0].image, "ignored:latest");
        assert_eq!(found[0].state, ContainerState::Running);
        assert!(found[0].started_at.is_some());
        assert_eq!(found[0].ip, None);
        let none = rt.list(&labels(&[("name", "other")])).await.expect("list");
        assert!(none.is_empty());

        let stats = rt.stats(&id).await.expect("stats");
        assert!(stats.memory_bytes > 0, "{stats:?}");

        let begun = Instant::now();
        rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
        assert!(
            begun.elapsed() < Duration::from_secs(1),
            "SIGTERM was enough"
        );
        let state = rt.inspect(&id).await.expect("inspect").state;
        assert_eq!(exit_code(&state), Some(128 + 15));
        rt.stop(&id, Duration::from_secs(1))
            .await
            .expect("stop is idempotent");
        assert_eq!(rt.stats(&id).await.expect("stats"), Stats::default());

        let dir = rt.inner.dir_of(&id);
        assert!(dir.is_dir());
        rt.remove(&id).await.expect("remove");
        assert!(!dir.exists());
        assert!(matches!(
            rt.inspect(&id).await,
            Err(RuntimeError::NotFound(_))
        ));
        rt.remove(&id).await.expect("removing twice is fine");
        rt.stop(&id, Duration::ZERO)
            .await
            .expect("stop of unknown id");
        assert!(matches!(
            rt.start(&id).await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn ignored_term_gets_killed_after_grace() {
        let (_dir, rt) = runtime();
        let id = run(&rt, &sh("stubborn", "trap '' TERM; echo ready; sleep 30")).await;
        wait_log(&rt, &id, "ready").await;
        let begun = Instant::now();
        rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
        let took = begun.elapsed();
        assert!(took >= Duration::from_secs(1), "stopped after {took:?}");
        assert!(took < Duration::from_secs(3), "stopped after {took:?}");
        let state = rt.inspect(&id).await.expect("inspect").state;
        assert_eq!(exit_code(&state), Some(128 + 9));
    }

    #[tokio::test]
    async fn exit_code_is_recorded() {
        let (_dir, rt) = runtime();
        let id = run(&rt, &sh("three", "exit 3")).await;
        let state = wait_exited(&rt, &id).await;
        assert!(matches!(
            state,
            ContainerState::Exited {
                exit_code: Some(3),
                oom_killed: false,
                finished_at: Some(_),
            }
        ));
        // Restart of an exited container runs it again.
        rt.start(&id).await.expect("restart");
        assert_eq!(exit_code(&wait_exited(&rt, &id).await), Some(3));
    }

    #[tokio::test]
    async fn create_checks_command_and_name() {
        let (_dir, rt) = runtime();
        let empty = ContainerSpec {
            name: "empty".into(),
            image: "x".into(),
            ..ContainerSpec::default()
        };
        match rt.create(&empty).await {
            Err(RuntimeError::Engine { msg, .. }) => {
                assert!(msg.contains("needs a command"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        rt.create(&sh("twin", "true")).await.expect("first");
        assert!(matches!(
            rt.create(&sh("twin", "true")).await,
            Err(RuntimeError::Engine { .. })
        ));
        let missing = rt
            .create(&ContainerSpec {
                command: vec!["/nonexistent/program".into()],
                ..sh("missing", "")
            })
            .await
            .expect("create");
        assert!(matches!(
            rt.start(&missing).await,
            Err(RuntimeError::Engine { .. })
        ));
        assert_eq!(
            rt.inspect(&missing).await.expect("inspect").state,
            ContainerState::Created
        );
    }

    #[tokio::test]
    async fn logs_tail_and_follow() {
        let (_dir, rt) = runtime();
        let id = run(&rt, &sh("talker", "echo out1; echo err1 >&2; echo out2")).await;
        wait_exited(&rt, &id).await;
        let all = read_logs(&rt, &id, LogOptions::default()).await;
        assert_eq!(all, "out1\nerr1\nout2\n");
        let tail = |n| LogOptions {
            tail: Some(n),
            follow: false,
        };
        assert_eq!(read_logs(&rt, &id, tail(1)).await, "out2\n");
        assert_eq!(read_logs(&rt, &id, tail(2)).await, "err1\nout2\n");
        assert_eq!(read_logs(&rt, &id, tail(0)).await, "");
        assert_eq!(read_logs(&rt, &id, tail(10)).await, all);
        // A follow of an exited container ends after what is there.
        let follow_done = LogOptions {
            tail: Some(1),
            follow: true,
        };
        assert_eq!(read_logs(&rt, &id, follow_done).await, "out2\n");

        let id = run(&rt, &sh("slow", "echo a; sleep 0.4; echo b; sleep 0.2")).await;
        let follow = LogOptions {
            tail: None,
            follow: true,
        };
        assert_eq!(read_logs(&rt, &id, follow).await, "a\nb\n");
        assert!(matches!(
            rt.inspect(&id).await.expect("inspect").state,
            ContainerState::Exited { .. }
        ));
        assert!(matches!(
            rt.logs("0123456789abcdef", LogOptions::default()).await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[test]
    fn tail_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let offset = |content: &str, n| {
            std::fs::write(&path, content).expect("write");
            let mut f = std::fs::File::open(&path).expect("open");
            tail_offset(&mut f, n).expect("tail")
        };
        assert_eq!(offset("", 3), 0);
        assert_eq!(offset("a\nb\nc\n", 1), 4);
        assert_eq!(offset("a\nb\nc", 1), 4);
        assert_eq!(offset("a\nb\nc", 2), 2);
        assert_eq!(offset("a\nb\nc\n", 5), 0);
        assert_eq!(offset("a\n\n\n", 2), 2);
    }

    #[tokio::test]
    async fn second_runtime_adopts_running_process() {
        let (dir, rt) = runtime();
        let id = run(&rt, &sh("adoptee", "sleep 30")).await;
        let again = ProcessRuntime::new(dir.path().join("process")).expect("second runtime");
        let found = again
            .list(&labels(&[("name", "adoptee")]))
            .await
            .expect("list");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, id);
        assert_eq!(found[0].state, ContainerState::Running);
        assert!(again.stats(&id).await.expect("stats").memory_bytes > 0);
        again
            .stop(&id, Duration::from_secs(1))
            .await
            .expect("stop adopted");
        // Which runtime records the end first is a race; both say exited.
        wait_exited(&again, &id).await;
        wait_exited(&rt, &id).await;
        again.remove(&id).await.expect("remove");
    }

    #[tokio::test]
    async fn reused_pid_is_not_the_container() {
        let (_dir, rt) = runtime();
        let id = rt.create(&sh("ghost", "true")).await.expect("create");
        // Pretend the container's process had this test's pid: a live process,
        // but started at another time.
        let me = std::process::id();
        let real = read_stat(me).expect("own stat").start_time;
        let path = rt.inner.dir_of(&id).join(STATE_FILE);
        let write = |start_time| {
            let state = StateFile {
                created_at: Some(SystemTime::now()),
                pid: Some(me),
                start_time: Some(start_time),
                started_at: Some(SystemTime::now()),
                ..StateFile::default()
            };
            std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write")
        };
        write(real);
        assert_eq!(
            rt.inspect(&id).await.expect("inspect").state,
            ContainerState::Running
        );
        write(real + 1);
        let state = rt.inspect(&id).await.expect("inspect").state;
        assert!(matches!(
            state,
            ContainerState::Exited {
                exit_code: None,
                finished_at: Some(_),
                ..
            }
        ));
        // The end, once noticed, stays where it was.
        assert_eq!(rt.inspect(&id).await.expect("inspect").state, state);
    }

    #[tokio::test]
    async fn corrupt_directories_are_skipped() {
        let (dir, rt) = runtime();
        let good = rt.create(&sh("good", "true")).await.expect("create");
        let root = dir.path().join("process");
        let bad = root.join("badbadbadbadbad0");
        std::fs::create_dir(&bad).expect("mkdir");
        std::fs::write(bad.join(SPEC_FILE), "{}").expect("write");
        std::fs::write(bad.join(STATE_FILE), "garbage").expect("write");
        std::fs::create_dir(root.join("emptyemptyempty0")).expect("mkdir");
        std::fs::write(root.join("stray-file"), "x").expect("write");

        let again = ProcessRuntime::new(root.clone()).expect("restart over garbage");
        for r in [&rt, &again] {
            let all = r.list(&BTreeMap::new()).await.expect("list");
            assert_eq!(all.len(), 1);
            assert_eq!(all[0].id, good);
        }
        assert!(matches!(
            rt.inspect("badbadbadbadbad0").await,
            Err(RuntimeError::Engine { .. })
        ));
        assert!(matches!(
            rt.inspect("../process").await,
            Err(RuntimeError::NotFound(_))
        ));
        rt.remove("badbadbadbadbad0").await.expect("remove corrupt");
        assert!(!bad.exists());
    }

    #[tokio::test]
    async fn exec_runs_with_container_env() {
        let (_dir, rt) = runtime();
        let spec = ContainerSpec {
            env: vec![("GREETING".into(), "hello".into())],
            ..sh("execs", "sleep 30")
        };
        let id = run(&rt, &spec).await;
        let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];

        let out = rt
            .exec(
                &id,
                &cmd("echo $GREETING; echo oops >&2; pwd; exit 4"),
                Duration::from_secs(5),
            )
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 4);
        let text = String::from_utf8(out.output).expect("utf-8");
        let dir = rt.inner.dir_of(&id);
        assert_eq!(text, format!("hello\noops\n{}\n", dir.display()));

        let big = rt
            .exec(
                &id,
                &cmd("head -c 100000 /dev/zero"),
                Duration::from_secs(5),
            )
            .await
            .expect("exec");
        assert_eq!(big.exit_code, 0);
        assert_eq!(big.output.len(), EXEC_OUTPUT_LIMIT);

        // A background leftover does not hold the exec open.
        let bg = rt
            .exec(&id, &cmd("sleep 30 & echo started"), Duration::from_secs(5))
            .await
            .expect("exec");
        assert_eq!(bg.output, b"started\n");

        let begun = Instant::now();
        match rt
            .exec(&id, &cmd("sleep 30"), Duration::from_millis(300))
            .await
        {
            Err(RuntimeError::Engine { msg, .. }) => assert!(msg.contains("timed out"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(begun.elapsed() < Duration::from_secs(3));

        rt.remove(&id).await.expect("remove running");
        assert!(!dir.exists());
        assert!(matches!(
            rt.exec(&id, &cmd("true"), Duration::from_secs(1)).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
}
