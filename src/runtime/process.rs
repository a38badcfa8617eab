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
//!   on one FIFO that the daemon copies into the container's log (see
//!   [`logs`]), rotated at `agent.log_max_bytes` and `agent.log_max_files`.
//! - It runs as the spec's `run_as_user`/`run_as_group`, else as the node's
//!   `agent.process_run_as` (`nobody` by default); uid and gid 0 only where
//!   `agent.process_allow_root` is set (see [`user`]). The daemon drops the
//!   privileges between fork and exec (setgid, setgroups, setuid).
//! - No volumes: a spec with mounts is refused (`RuntimeError::Config`),
//!   never run without them. A host process shares the host's mount
//!   namespace, and giving it its own needs root and `unshare` between fork
//!   and exec, which this driver does not do.
//! - Not isolated and not limited: CPU and memory limits, DNS settings
//!   and port bindings are ignored. The process binds its ports on the host
//!   itself and has no IP of its own. Memory is not capped with `RLIMIT_AS`
//!   either: address space is not memory use (runtimes reserve far more than
//!   they touch), so such a cap kills healthy programs at random.
//! - Like a container's pid namespace, the process group dies with its
//!   leader: whatever the leader forked is killed when it exits.
//!
//! Each container's files are in `root/<id>/`, inside the node's private
//! data dir (0700, root's): `spec.json` (which holds Secret values),
//! `state.json`, the FIFO `output.fifo`, the pump's lock and the log files
//! `output.log`, `output.log.1`, ... All 0600: the container's user cannot
//! read them, and needs none of them. What the container may use is its
//! working directory, `pods_dir/<id>/`, owned by its user (0750); `pods_dir`
//! lies outside the data dir (0711: users pass through it but cannot list
//! it). The state is written atomically and after every change of
//! life, so a daemon that is killed and restarted adopts the processes still
//! running: a recorded pid counts as the same process only while its start
//! time (and the boot id) still match, which keeps a reused pid from passing
//! for the container. The exit code of a process that ends while no daemon
//! waits for it cannot be known and is reported as `None`.

/// Most entries one disk-use walk of a working directory looks at.
const DU_MAX_ENTRIES: usize = 100_000;

mod attach;
mod exec;
mod lifecycle;
pub mod logs;
mod procfs;
mod security;
pub use procfs::{clock_ticks_per_sec, page_size_bytes, self_stat};
mod stats;
pub mod user;
use logs::*;
use procfs::*;
use stats::*;
pub use user::{Identity, resolve_user};
use user::{UserPolicy, Wanted};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    AttachRequest, ContainerInfo, ContainerSpec, ContainerState, ExecOutput, ExecSession,
    LogLimits, LogOptions, LogStream, PortBinding, Runtime, RuntimeError, Stats,
};
use security::refuse_unhonoured;

const SPEC_FILE: &str = "spec.json";
const STATE_FILE: &str = "state.json";
const LOG_FILE: &str = "output.log";
const LOG_FIFO: &str = "output.fifo";
const LOG_LOCK: &str = "output.lock";

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
    /// Who it runs as, decided at create; `None` in a container an older
    /// version created, which is then decided at start.
    user: Option<Identity>,
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

/// The fields of `/proc/<pid>/stat` (read with the `procfs` crate) the
/// driver and the daemon's own `process_*` metrics use; times in clock
/// ticks, memory in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// R, S, D, Z, ...
    pub state: char,
    /// Process group.
    pub pgrp: i32,
    /// User time.
    pub utime: u64,
    /// System time.
    pub stime: u64,
    /// Waited-for children's user time.
    pub cutime: u64,
    /// Waited-for children's system time.
    pub cstime: u64,
    /// Threads.
    pub threads: u64,
    /// Start, in ticks after boot.
    pub start_time: u64,
    /// Virtual memory, bytes.
    pub vsize: u64,
    /// Resident set, pages.
    pub rss_pages: u64,
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

/// How the process driver runs its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Where each container's working directory is made, owned by the user
    /// it runs as. Outside the private data dir: every user must be able
    /// to pass through all of its parents.
    pub pods_dir: PathBuf,
    /// The user a container runs as when its spec names none: a user name
    /// or `uid[:gid]` (`agent.process_run_as`).
    pub run_as: String,
    /// Whether a container may run as uid 0 or gid 0 (`agent.process_allow_root`).
    pub allow_root: bool,
    /// Rotation of each container's log.
    pub log_limits: LogLimits,
    /// Whether pods may ask for the host's namespaces (`agent.allow_privileged`).
    pub allow_host_namespaces: bool,
}

impl ProcessOptions {
    /// The defaults, with the working directories in `pods_dir`.
    pub fn new(pods_dir: PathBuf) -> ProcessOptions {
        ProcessOptions {
            pods_dir,
            run_as: "nobody".into(),
            allow_root: false,
            log_limits: LogLimits::default(),
            allow_host_namespaces: false,
        }
    }
}

struct Inner {
    root: PathBuf,
    pods_dir: PathBuf,
    users: UserPolicy,
    log_limits: LogLimits,
    allow_host_namespaces: bool,
    /// Pumps copying a container's output (id → ends when the pump does).
    pumps: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
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
    /// Containers that have exited, as last read or written: their files
    /// change again only through this runtime (a start or a removal), so a
    /// list need not read them back from disk. Without it every list read
    /// two files per container the node ever kept, and a node that had run
    /// hundreds of a Job's pods spent its passes on file reads.
    exited: Mutex<HashMap<String, (ContainerSpec, StateFile)>>,
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
    /// Opens (creating them if needed) the directory holding this driver's
    /// containers and the one holding their working directories; containers
    /// left there by an earlier daemon are adopted (their output pumped
    /// again). Must be called within a tokio runtime.
    pub fn new(root: PathBuf, opts: ProcessOptions) -> Result<ProcessRuntime, RuntimeError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| RuntimeError::Engine {
            op: "open process runtime",
            msg: format!("needs a tokio runtime: {e}"),
        })?;
        let config = |msg: String| RuntimeError::Engine {
            op: "open process runtime",
            msg,
        };
        let default =
            resolve_user(&opts.run_as).map_err(|e| config(format!("agent.process_run_as {e}")))?;
        let euid = nix::unistd::geteuid().as_raw();
        let unprivileged = (euid != 0).then(|| Identity {
            uid: euid,
            gid: nix::unistd::getegid().as_raw(),
        });
        if unprivileged.is_none() && !opts.allow_root && (default.uid == 0 || default.gid == 0) {
            return Err(config(format!(
                "agent.process_run_as {:?} is root (uid {} gid {}) but agent.process_allow_root \
                 is false: name another user, or allow root",
                opts.run_as, default.uid, default.gid
            )));
        }
        if let Some(own) = unprivileged {
            tracing::info!(
                uid = own.uid,
                gid = own.gid,
                "the daemon is not root: process containers run as its own user, not agent.process_run_as"
            );
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io_err("create process runtime root"))?;
        // Absolute, so paths in messages do not depend on the daemon's directory.
        let root = std::fs::canonicalize(&root).map_err(io_err("resolve process runtime root"))?;
        // Private whatever made it: the containers' specs hold Secret values.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("set mode of process runtime root"))?;
        let pods_dir = open_pods_dir(&opts.pods_dir, unprivileged.is_none())?;
        lifecycle::remove_leftovers(&root);
        lifecycle::remove_orphan_work_dirs(&root, &pods_dir);
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let rt = ProcessRuntime {
            inner: Arc::new(Inner {
                root,
                pods_dir,
                users: UserPolicy {
                    default,
                    allow_root: opts.allow_root,
                    unprivileged,
                },
                log_limits: opts.log_limits,
                allow_host_namespaces: opts.allow_host_namespaces,
                pumps: Mutex::new(HashMap::new()),
                boot_id,
                clk_tck: clock_ticks_per_sec(),
                page_size: page_size_bytes(),
                lock: tokio::sync::Mutex::new(()),
                children: Mutex::new(HashMap::new()),
                warned: Mutex::new(HashSet::new()),
                exited: Mutex::new(HashMap::new()),
            }),
        };
        handle.spawn(Arc::clone(&rt.inner).adopt_output());
        Ok(rt)
    }
}

/// Creates the directory of the containers' working directories (0711 and
/// the daemon's: users pass through, none lists it). A root daemon checks
/// that every user can reach it, since its containers run as other users.
fn open_pods_dir(dir: &Path, root_daemon: bool) -> Result<PathBuf, RuntimeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
        .map_err(io_err("create process pods dir"))?;
    let dir = std::fs::canonicalize(dir).map_err(io_err("resolve process pods dir"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
        .map_err(io_err("set mode of process pods dir"))?;
    if root_daemon {
        for parent in dir.ancestors().skip(1) {
            let mode = std::fs::metadata(parent)
                .map_err(io_err("check process pods dir"))?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                return Err(RuntimeError::Engine {
                    op: "open process runtime",
                    msg: format!(
                        "{} (mode {:04o}) keeps other users out of {}, so containers running \
                         as other users could not use their working directories: give it o+x, \
                         or set agent.process_pods_dir outside it (never inside the data dir)",
                        parent.display(),
                        mode & 0o7777,
                        dir.display()
                    ),
                });
            }
        }
    }
    Ok(dir)
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
    // 0600 whatever the umask: the spec holds Secret values.
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    f.write_all(data).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

async fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &data).await
}

/// The environment, directory and user a container's processes (and its
/// execs) run with. `user` is `None` when the daemon cannot switch users.
fn configure(
    cmd: &mut tokio::process::Command,
    stored: &Stored,
    work_dir: &Path,
    user: Option<Identity>,
) {
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(stored.spec.env.iter().map(|(k, v)| (k, v)));
    let dir = match stored.spec.working_dir.as_deref() {
        Some(d) if !d.is_empty() => Path::new(d),
        _ => work_dir,
    };
    cmd.current_dir(dir);
    // std sets the gid, drops the supplementary groups and sets the uid in
    // the child before it changes directory and execs: the directory is
    // entered as the container's user already.
    if let Some(id) = user {
        cmd.gid(id.gid);
        cmd.uid(id.uid);
    }
    cmd.stdin(Stdio::null());
    cmd.process_group(0);
    let no_new_privs = stored.spec.no_new_privileges;
    // The daemon runs with umask 077 so its data dir stays private; a pod's
    // processes get the usual 022.
    // SAFETY: umask(2) and prctl(2) are async-signal-safe and touch no
    // memory, so they may run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            if no_new_privs {
                nix::sys::prctl::set_no_new_privs().map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// Makes a container's working directory, owned by its user (0750).
async fn ensure_work_dir(dir: &Path, id: Identity, chown: bool) -> std::io::Result<()> {
    match tokio::fs::DirBuilder::new().mode(0o750).create(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if chown {
        // Only root may create entries in the pods dir, so this is the
        // directory just made, never a link a container planted.
        std::os::unix::fs::lchown(dir, Some(id.uid), Some(id.gid))?;
    }
    Ok(())
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
        if let Some(m) = spec.mounts.first() {
            return Err(RuntimeError::Config(format!(
                "the process runtime cannot mount volumes ({} wants {} at {})",
                spec.name, m.host_path, m.container_path
            )));
        }
        let inner = &self.inner;
        let user = inner.identity_for(spec)?;
        security::refuse_host_namespaces(spec, inner.allow_host_namespaces)
            .and_then(|()| refuse_unhonoured(spec, user))
            .map_err(RuntimeError::Config)?;
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
            tokio::fs::DirBuilder::new()
                .mode(0o700)
                .create(&tmp)
                .await?;
            write_json(&tmp.join(SPEC_FILE), spec).await?;
            let state = StateFile {
                created_at: Some(SystemTime::now()),
                user: Some(user),
                ..StateFile::default()
            };
            write_json(&tmp.join(STATE_FILE), &state).await?;
            nix::unistd::mkfifo(
                &tmp.join(LOG_FIFO),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )?;
            tokio::fs::rename(&tmp, inner.dir_of(&id)).await?;
            // Made after the rename: a daemon starting meanwhile removes
            // working directories without a container.
            ensure_work_dir(
                &inner.work_dir_of(&id),
                user,
                inner.users.unprivileged.is_none(),
            )
            .await
        };
        if let Err(e) = build.await {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            let _ = tokio::fs::remove_dir_all(inner.dir_of(&id)).await;
            let _ = tokio::fs::remove_dir_all(inner.work_dir_of(&id)).await;
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
        let argv: Vec<String> = stored
            .spec
            .command
            .iter()
            .chain(stored.spec.args.iter())
            .cloned()
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(RuntimeError::Engine {
                op: "start container",
                msg: "the process runtime needs a command".into(),
            });
        };
        let (user, work_dir) = inner.prepare(&mut stored).await?;
        let fifo = stored.dir.join(LOG_FIFO);
        if let Err(e) = nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            && e != Errno::EEXIST
        {
            return Err(RuntimeError::Io {
                op: "create container output pipe",
                source: e.into(),
            });
        }
        // Read-write: the process is a reader of its own output too, so it
        // never gets SIGPIPE while no daemon reads (see `logs`). Opened
        // before the pump's reader, which would see end-of-file without a writer.
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .map_err(io_err("open container output pipe"))?;
        let err = out
            .try_clone()
            .map_err(io_err("open container output pipe"))?;
        let drained = inner
            .start_pump(id, &stored.dir)
            .map_err(io_err("pump container output"))?;
        let spawned = {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            configure(&mut cmd, &stored, &work_dir, inner.switch_to(user));
            cmd.stdout(out).stderr(err).kill_on_drop(false);
            cmd.spawn()
            // The command, holding the parent's copies of the pipe, is
            // dropped here: the pump sees the end once the process's are gone.
        };
        let child = spawned.map_err(|e| RuntimeError::Engine {
            op: "start container",
            msg: format!(
                "{id}: cannot run {program:?} as uid {} gid {}: {e}",
                user.uid, user.gid
            ),
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
            user: Some(user),
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
        tokio::spawn(Arc::clone(inner).watch_child(id.to_string(), pid, child, drained));
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
        locked(&inner.exited).remove(id);
        drop(guard);
        locked(&inner.warned).remove(&dir);
        match tokio::fs::remove_dir_all(inner.work_dir_of(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::Io {
                    op: "remove working directory",
                    source: e,
                });
            }
            _ => {}
        }
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
        if opts.since_unix.is_some() || opts.timestamps {
            // The pump copies bytes, not lines with times: there is nothing to filter by.
            return Err(RuntimeError::Config(
                "the process runtime keeps no times for log lines: --since and --timestamps need a node with the docker runtime".into(),
            ));
        }
        let dir = {
            let _g = self.inner.lock.lock().await;
            let stored = self
                .inner
                .load(id)
                .await
                .map_err(|e| e.into_runtime("container logs", id))?;
            stored.dir
        };
        let files_dir = dir.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let mut files = open_log_files(&files_dir)?;
            if files.is_empty() {
                // Never started: no output yet.
                return Ok(None);
            }
            let (first, offset) = match opts.tail {
                Some(n) => tail_start(&mut files, n)?,
                None => (0, 0),
            };
            let mut files: std::collections::VecDeque<std::fs::File> =
                files.into_iter().skip(first).collect();
            let Some(mut file) = files.pop_front() else {
                return Ok(None);
            };
            file.seek(SeekFrom::Start(offset))?;
            for f in files.iter_mut() {
                f.seek(SeekFrom::Start(0))?;
            }
            Ok(Some((file, files)))
        })
        .await
        .map_err(|e| RuntimeError::Engine {
            op: "container logs",
            msg: format!("{id}: {e}"),
        })?
        .map_err(io_err("open container log"))?;
        let Some((file, rest)) = opened else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let reader = LogReader {
            file: tokio::fs::File::from_std(file),
            rest,
            dir,
            inner: Arc::clone(&self.inner),
            id: id.to_string(),
            follow: opts.follow,
            draining: false,
        };
        Ok(Box::pin(futures::stream::unfold(Some(reader), |r| async {
            r?.next().await
        })))
    }

    async fn disk_usage(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        // The working directory is all a host process writes of its own.
        let dir = self.inner.work_dir_of(id);
        let walked =
            tokio::task::spawn_blocking(move || super::du::dir_bytes(&dir, DU_MAX_ENTRIES));
        match walked.await {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(e) => Err(RuntimeError::Engine {
                op: "measure disk use",
                msg: format!("{id}: {e}"),
            }),
        }
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

    async fn exec_interactive(
        &self,
        id: &str,
        req: crate::runtime::ExecRequest,
    ) -> Result<crate::runtime::ExecSession, RuntimeError> {
        exec::start(self, id, req).await
    }

    async fn attach(&self, id: &str, req: AttachRequest) -> Result<ExecSession, RuntimeError> {
        attach::start(self, id, req).await
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let (stored, user, work_dir) = {
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
            let (user, work_dir) = self.inner.prepare(&mut stored).await?;
            (stored, user, work_dir)
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
            configure(&mut command, &stored, &work_dir, self.inner.switch_to(user));
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

#[cfg(test)]
mod tests;
