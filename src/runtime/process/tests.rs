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
