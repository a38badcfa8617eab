//! The process runtime's containers on disk and as processes: create,
//! start, watch, stop and remove one (`Inner`, the state behind
//! [`ProcessRuntime`]).

use super::*;

impl Inner {
    pub(super) fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(super) fn work_dir_of(&self, id: &str) -> PathBuf {
        self.pods_dir.join(id)
    }

    /// Who a spec's container runs as on this node, or why it may not run.
    pub(super) fn identity_for(&self, spec: &ContainerSpec) -> Result<Identity, RuntimeError> {
        let wanted = Wanted {
            uid: spec.run_as_user,
            gid: spec.run_as_group,
            non_root: spec.run_as_non_root,
        };
        self.users
            .decide(wanted, user::primary_gid)
            .map_err(RuntimeError::Config)
    }

    /// The user to switch to: `None` when the daemon cannot switch.
    pub(super) fn switch_to(&self, id: Identity) -> Option<Identity> {
        self.users.unprivileged.is_none().then_some(id)
    }

    /// The container's user and its working directory, made if missing
    /// (a container an older version created has none).
    pub(super) async fn prepare(
        &self,
        stored: &mut Stored,
    ) -> Result<(Identity, PathBuf), RuntimeError> {
        let id = match stored.state.user {
            Some(id) => id,
            None => self.identity_for(&stored.spec)?,
        };
        let work = self.work_dir_of(&stored.id);
        ensure_work_dir(&work, id, self.users.unprivileged.is_none())
            .await
            .map_err(io_err("create working directory"))?;
        Ok((id, work))
    }

    /// Pumps the output of the containers an earlier daemon started.
    pub(super) async fn adopt_output(self: Arc<Self>) {
        let running: Vec<(String, PathBuf)> = {
            let _g = self.lock.lock().await;
            let Ok(all) = self.load_all().await else {
                return;
            };
            let mut running = Vec::new();
            for mut stored in all {
                if self.current_state(&mut stored).await == ContainerState::Running {
                    running.push((stored.id.clone(), stored.dir.clone()));
                }
            }
            running
        };
        for (id, dir) in running {
            if !dir.join(LOG_FIFO).exists() {
                continue;
            }
            if let Err(e) = self.start_pump(&id, &dir) {
                tracing::warn!(%id, error = %e, "cannot pump the output of an adopted container");
            }
        }
    }

    pub(super) async fn load(&self, id: &str) -> Result<Stored, LoadError> {
        if !valid_id(id) {
            return Err(LoadError::NotFound);
        }
        let dir = self.dir_of(id);
        if let Some((spec, state)) = locked(&self.exited).get(id).cloned() {
            return Ok(Stored {
                id: id.to_string(),
                dir,
                spec,
                state,
            });
        }
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
        self.remember(id, &spec, &state);
        Ok(Stored {
            id: id.to_string(),
            dir,
            spec,
            state,
        })
    }

    pub(super) async fn save_state(&self, stored: &Stored) -> std::io::Result<()> {
        // Forgotten first: if the write fails, the next load reads the disk.
        locked(&self.exited).remove(&stored.id);
        write_json(&stored.dir.join(STATE_FILE), &stored.state).await?;
        self.remember(&stored.id, &stored.spec, &stored.state);
        Ok(())
    }

    /// Keeps an exited container's files in memory (see `Inner::exited`).
    fn remember(&self, id: &str, spec: &ContainerSpec, state: &StateFile) {
        if state.exit_code.is_some() || state.finished_at.is_some() {
            locked(&self.exited).insert(id.to_string(), (spec.clone(), state.clone()));
        }
    }

    /// Whether the process recorded as `pid` still runs.
    pub(super) fn alive(&self, id: &str, pid: u32, start_time: Option<u64>) -> bool {
        locked(&self.children).get(id) == Some(&pid) || live_process(pid, start_time).is_some()
    }

    /// The container's state now. Must be called with `lock` held: when it
    /// finds an adopted process gone it records when, so the time it reports
    /// stays the same from one call to the next.
    pub(super) async fn current_state(&self, stored: &mut Stored) -> ContainerState {
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

    pub(super) async fn info(&self, stored: &mut Stored) -> ContainerInfo {
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
            // A host process has no file of its own mounted for it.
            termination_message: None,
        }
    }

    /// Every readable container, corrupt ones reported once and skipped.
    /// Called with `lock` held.
    pub(super) async fn load_all(&self) -> Result<Vec<Stored>, RuntimeError> {
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

    pub(super) async fn is_running(&self, id: &str) -> bool {
        let _g = self.lock.lock().await;
        match self.load(id).await {
            Ok(mut stored) => self.current_state(&mut stored).await == ContainerState::Running,
            Err(_) => false,
        }
    }

    /// Waits until the recorded process is gone; false if `limit` passed first.
    pub(super) async fn wait_exit(
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
    pub(super) async fn terminate(
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
    pub(super) async fn watch_child(
        self: Arc<Self>,
        id: String,
        pid: u32,
        mut child: tokio::process::Child,
        drained: Option<tokio::sync::watch::Receiver<()>>,
    ) {
        let exit_code = match child.wait().await {
            Ok(status) => exit_code_of(status),
            Err(e) => {
                tracing::warn!(%id, pid, error = %e, "cannot wait for container process");
                None
            }
        };
        kill_leftovers(pid);
        // Its last words are in the log before anyone sees it exited.
        wait_drained(drained).await;
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

/// Removes working directories whose container is gone (the daemon died
/// between the two removals).
pub(super) fn remove_orphan_work_dirs(root: &Path, pods_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str() else { continue };
        if valid_id(id) && std::fs::symlink_metadata(root.join(id)).is_err() {
            let path = entry.path();
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove orphaned working directory");
            }
        }
    }
}

/// Removes what an interrupted create or remove left behind: such
/// directories start with a dot and are never containers.
pub(super) fn remove_leftovers(root: &Path) {
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
