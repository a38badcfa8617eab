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

/// A temporary directory other users may pass through (tempdir makes it
/// 0700), as the parent of a pods dir must be.
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    dir
}

fn options(dir: &tempfile::TempDir) -> ProcessOptions {
    ProcessOptions::new(dir.path().join("pods"))
}

fn runtime_with(edit: impl FnOnce(&mut ProcessOptions)) -> (tempfile::TempDir, ProcessRuntime) {
    let dir = open_tempdir();
    let mut opts = options(&dir);
    edit(&mut opts);
    let rt = ProcessRuntime::new(dir.path().join("process"), opts).expect("runtime");
    (dir, rt)
}

fn runtime() -> (tempfile::TempDir, ProcessRuntime) {
    runtime_with(|_| {})
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

    // A grace long enough that a loaded machine does not reach it: the
    // exit code says SIGTERM ended it (a kill after the grace is 137).
    let begun = Instant::now();
    rt.stop(&id, Duration::from_secs(20)).await.expect("stop");
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "SIGTERM was enough"
    );
    let state = rt.inspect(&id).await.expect("inspect").state;
    assert_eq!(exit_code(&state), Some(128 + 15), "ended by SIGTERM");
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
        ..Default::default()
    };
    assert_eq!(read_logs(&rt, &id, tail(1)).await, "out2\n");
    assert_eq!(read_logs(&rt, &id, tail(2)).await, "err1\nout2\n");
    assert_eq!(read_logs(&rt, &id, tail(0)).await, "");
    assert_eq!(read_logs(&rt, &id, tail(10)).await, all);
    // A follow of an exited container ends after what is there.
    let follow_done = LogOptions {
        tail: Some(1),
        follow: true,
        ..Default::default()
    };
    assert_eq!(read_logs(&rt, &id, follow_done).await, "out2\n");

    let id = run(&rt, &sh("slow", "echo a; sleep 0.4; echo b; sleep 0.2")).await;
    let follow = LogOptions {
        tail: None,
        follow: true,
        ..Default::default()
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

/// Byte offset where the last `n` lines of `file` begin.
fn tail_offset(file: &mut std::fs::File, n: u64) -> std::io::Result<u64> {
    let (_, offset) = tail_start(std::slice::from_mut(file), n)?;
    Ok(offset)
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
    let again =
        ProcessRuntime::new(dir.path().join("process"), options(&dir)).expect("second runtime");
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

    let again = ProcessRuntime::new(root.clone(), options(&dir)).expect("restart over garbage");
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
    let work = rt.inner.work_dir_of(&id);
    assert_eq!(text, format!("hello\noops\n{}\n", work.display()));
    let dir = rt.inner.dir_of(&id);

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
    assert!(!work.exists());
    assert!(matches!(
        rt.exec(&id, &cmd("true"), Duration::from_secs(1)).await,
        Err(RuntimeError::NotFound(_))
    ));
}

fn busybox(name: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        command: std::iter::once("/bin/busybox")
            .chain(args.iter().copied())
            .map(String::from)
            .collect(),
        ..sh(name, "")
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// The checks below switch users: only a root daemon can.
fn require_root() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "this test needs root (CI runs as root): it checks that containers run as other users"
    );
}

#[tokio::test]
async fn runs_as_the_configured_user_and_cannot_read_its_spec() {
    require_root();
    use std::os::unix::fs::MetadataExt;
    let nobody = resolve_user("nobody").expect("the host has a nobody user");
    let (dir, rt) = runtime();
    // No user asked for: the node's process_run_as.
    let id = run(
        &rt,
        &busybox("who", &["sh", "-c", "id -u; id -g; touch mine && echo ok"]),
    )
    .await;
    wait_exited(&rt, &id).await;
    assert_eq!(
        read_logs(&rt, &id, LogOptions::default()).await,
        format!("{}\n{}\nok\n", nobody.uid, nobody.gid)
    );
    let work = rt.inner.work_dir_of(&id);
    let meta = std::fs::metadata(&work).expect("work dir");
    assert_eq!((meta.uid(), meta.gid()), (nobody.uid, nobody.gid));
    assert_eq!(mode_of(&work), 0o750);
    assert_eq!(
        std::fs::metadata(work.join("mine"))
            .expect("its file")
            .uid(),
        nobody.uid
    );
    // Its spec, state and logs stay root's alone.
    let cdir = rt.inner.dir_of(&id);
    assert_eq!(mode_of(&dir.path().join("process")), 0o700);
    assert_eq!(mode_of(&cdir), 0o700);
    for f in [SPEC_FILE, STATE_FILE, LOG_FILE, LOG_FIFO] {
        assert_eq!(mode_of(&cdir.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode_of(&dir.path().join("pods")), 0o711);

    // A secret in the spec is out of the container's reach.
    let spec = ContainerSpec {
        env: vec![("SPEC".into(), String::new())],
        ..busybox(
            "snoop",
            &["sh", "-c", "cat \"$SPEC\" && echo READ || echo DENIED"],
        )
    };
    let id = rt.create(&spec).await.expect("create");
    let spec_path = rt.inner.dir_of(&id).join(SPEC_FILE);
    // Point it at its own spec file (absolute host path).
    let mut stored: ContainerSpec =
        serde_json::from_slice(&std::fs::read(&spec_path).expect("read spec")).expect("json");
    stored.env = vec![("SPEC".into(), spec_path.display().to_string())];
    std::fs::write(&spec_path, serde_json::to_vec(&stored).expect("json")).expect("write spec");
    rt.start(&id).await.expect("start");
    wait_exited(&rt, &id).await;
    let out = read_logs(&rt, &id, LogOptions::default()).await;
    assert!(out.ends_with("DENIED\n"), "{out}");

    // Asked for: its own uid and gid, for the process and its execs.
    let spec = ContainerSpec {
        run_as_user: Some(1234),
        run_as_group: Some(4321),
        run_as_non_root: true,
        ..busybox("asked", &["sh", "-c", "id -u; id -g; id -G; sleep 30"])
    };
    let id = run(&rt, &spec).await;
    wait_log(&rt, &id, "4321\n4321\n").await;
    assert_eq!(
        read_logs(&rt, &id, LogOptions::default()).await,
        "1234\n4321\n4321\n",
        "no supplementary group of the daemon's is kept"
    );
    let out = rt
        .exec(
            &id,
            &["/bin/busybox".into(), "id".into(), "-u".into()],
            Duration::from_secs(5),
        )
        .await
        .expect("exec");
    assert_eq!(out.output, b"1234\n");
    rt.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn root_is_refused_unless_the_node_allows_it() {
    require_root();
    let (_dir, rt) = runtime();
    let as_root = ContainerSpec {
        run_as_user: Some(0),
        ..busybox("root", &["id", "-u"])
    };
    match rt.create(&as_root).await {
        Err(RuntimeError::Config(msg)) => {
            assert!(msg.contains("agent.process_allow_root"), "{msg}")
        }
        other => panic!("uid 0 on a node that does not allow root: {other:?}"),
    }
    let root_group = ContainerSpec {
        run_as_user: Some(1000),
        run_as_group: Some(0),
        ..busybox("rootgroup", &["id", "-u"])
    };
    assert!(matches!(
        rt.create(&root_group).await,
        Err(RuntimeError::Config(_))
    ));
    assert!(
        rt.list(&BTreeMap::new()).await.expect("list").is_empty(),
        "nothing was created"
    );
    // A root default needs the node's consent at start-up.
    let dir = open_tempdir();
    let refused = ProcessRuntime::new(
        dir.path().join("process"),
        ProcessOptions {
            run_as: "root".into(),
            ..options(&dir)
        },
    );
    match refused {
        Err(RuntimeError::Engine { msg, .. }) => {
            assert!(msg.contains("process_allow_root"), "{msg}")
        }
        other => panic!("{other:?}"),
    }

    let (_dir, allowed) = runtime_with(|o| o.allow_root = true);
    let id = run(&allowed, &as_root).await;
    wait_exited(&allowed, &id).await;
    assert_eq!(read_logs(&allowed, &id, LogOptions::default()).await, "0\n");
    // runAsNonRoot wins over the node's permission.
    let non_root = ContainerSpec {
        run_as_non_root: true,
        ..as_root.clone()
    };
    match allowed
        .create(&ContainerSpec {
            name: "nr".into(),
            ..non_root
        })
        .await
    {
        Err(RuntimeError::Config(msg)) => assert!(msg.contains("runAsNonRoot"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_pods_dir_other_users_cannot_reach_is_refused() {
    require_root();
    let private = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    match ProcessRuntime::new(
        private.path().join("process"),
        ProcessOptions::new(private.path().join("pods")),
    ) {
        Err(RuntimeError::Engine { msg, .. }) => {
            assert!(msg.contains("keeps other users out"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

/// Sizes of the container's log files.
fn log_sizes(rt: &ProcessRuntime, id: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(rt.inner.dir_of(id))
        .expect("read dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(LOG_FILE)
                .then(|| (name, e.metadata().expect("stat").len()))
        })
        .collect();
    out.sort();
    out
}

const SMALL_LOGS: LogLimits = LogLimits {
    max_bytes: 4096,
    max_files: 3,
};

#[tokio::test]
async fn logs_are_rotated_at_the_cap_and_read_across_files() {
    let (_dir, rt) = runtime_with(|o| o.log_limits = SMALL_LOGS);
    // 3,000 numbered lines, about 40 KB: ten times the cap.
    let script = "i=0; while [ $i -lt 3000 ]; do echo \"line $i of the test\"; i=$((i+1)); done";
    let id = run(&rt, &sh("chatty", script)).await;
    wait_exited(&rt, &id).await;
    let sizes = log_sizes(&rt, &id);
    let names: Vec<&str> = sizes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [LOG_FILE, "output.log.1", "output.log.2"],
        "{sizes:?}"
    );
    for (name, size) in &sizes {
        assert!(*size <= SMALL_LOGS.max_bytes, "{name}: {size} bytes");
    }
    let total: u64 = sizes.iter().map(|(_, s)| s).sum();
    assert!(total <= 3 * 4096, "{total} bytes on disk");
    // Rotated full: only the current file may be short.
    assert_eq!(sizes[1].1, 4096);
    assert_eq!(sizes[2].1, 4096);

    let all = read_logs(&rt, &id, LogOptions::default()).await;
    assert_eq!(all.len() as u64, total);
    assert!(
        all.ends_with("line 2999 of the test\n"),
        "{}",
        &all[all.len() - 60..]
    );
    // What is kept is the end of the output, whole lines after the first cut one.
    let lines: Vec<&str> = all.lines().skip(1).collect();
    let first: u64 = lines[0]
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("numbered");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line {} of the test", first + i as u64));
    }
    let tail = |n| LogOptions {
        tail: Some(n),
        follow: false,
        ..Default::default()
    };
    assert_eq!(
        read_logs(&rt, &id, tail(2)).await,
        "line 2998 of the test\nline 2999 of the test\n"
    );
    // A tail that reaches back over a rotation.
    let current = sizes[0].1 as usize;
    let lines_in_current = all[all.len() - current..].matches('\n').count() as u64;
    let across = read_logs(&rt, &id, tail(lines_in_current + 3)).await;
    assert!(across.len() > current, "the tail starts in output.log.1");
    assert!(all.ends_with(&across));
    assert_eq!(across.matches('\n').count() as u64, lines_in_current + 3);
    assert_eq!(read_logs(&rt, &id, tail(1_000_000)).await, all);
}

#[tokio::test]
async fn follow_keeps_going_across_rotations() {
    let (_dir, rt) = runtime_with(|o| o.log_limits = SMALL_LOGS);
    // 16 bursts of 60 lines (about 1 KB each), a pause between: the log
    // rotates every few bursts while a follower reads.
    let script = "b=0; while [ $b -lt 16 ]; do i=0; while [ $i -lt 60 ]; do \
                  echo \"burst $b line $i\"; i=$((i+1)); done; b=$((b+1)); sleep 0.25; done";
    let id = run(&rt, &sh("bursts", script)).await;
    let follow = LogOptions {
        tail: None,
        follow: true,
        ..Default::default()
    };
    let mut stream = rt.logs(&id, follow).await.expect("logs");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("log chunk"));
        }
    })
    .await
    .expect("the follow ends when the container does");
    let text = String::from_utf8(out).expect("utf-8");
    let want: String = (0..16)
        .flat_map(|b| (0..60).map(move |i| format!("burst {b} line {i}\n")))
        .collect();
    assert!(want.len() > 3 * 4096, "more output than the files keep");
    assert_eq!(text, want, "every line once, in order");
    let total: u64 = log_sizes(&rt, &id).iter().map(|(_, s)| s).sum();
    assert!(total <= 3 * 4096, "{total} bytes on disk");
}

#[test]
fn tail_start_spans_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |parts: &[&str]| -> Vec<std::fs::File> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, p).expect("write");
                std::fs::File::open(&path).expect("open")
            })
            .collect()
    };
    let start = |parts: &[&str], n| tail_start(&mut open(parts), n).expect("tail");
    assert_eq!(start(&["a\nb\n", "c\nd\n"], 1), (1, 2));
    // The end of one file is the start of the next.
    assert_eq!(start(&["a\nb\n", "c\nd\n"], 2), (0, 4));
    assert_eq!(start(&["a\nb\n", "c\nd\n"], 3), (0, 2));
    assert_eq!(start(&["a\nb\n", "c\nd\n"], 9), (0, 0));
    // A line cut by a rotation is one line.
    assert_eq!(start(&["a\nb", "c\nd\n"], 2), (0, 2));
    assert_eq!(start(&["a\nb\n", ""], 1), (0, 2));
    assert_eq!(start(&["a\nb\n", "c"], 1), (0, 4));
    assert_eq!(start(&["a\n", "b\n"], 0), (1, 2));
    assert_eq!(start(&[], 3), (0, 0));
}
