//! The Docker driver against the real engine: lifecycle, exit codes, OOM
//! kills, failed pulls, logs, exec and stats. Needs dockerd; without it every
//! test fails (never skips) with "Docker engine not reachable: start dockerd".

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::free_port;
use common::images::{ensure_busybox_image, require_docker};
use futures::StreamExt;
use shoal::runtime::docker::DockerRuntime;
use shoal::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_NODE, LABEL_POD_UID, LogOptions, Mount,
    PortBinding, Runtime, RuntimeError, Seccomp,
};

/// Connects to the engine and makes sure the test image is there.
async fn runtime() -> DockerRuntime {
    require_docker();
    let rt = DockerRuntime::connect()
        .await
        .unwrap_or_else(|e| panic!("Docker engine not reachable: start dockerd ({e})"));
    tokio::task::spawn_blocking(ensure_busybox_image)
        .await
        .expect("image helper");
    rt
}

/// A container name no other test (or earlier run) uses.
fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("shoal-t40-{}-{nanos}-{test}", std::process::id())
}

/// Removes the named containers when the test ends, passed or not.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&self.0)
            .output();
    }
}

/// A busybox container spec: `command` becomes the entrypoint, `args` the cmd.
fn spec(name: &str, command: &[&str], args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: ensure_busybox_image(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn sh(name: &str, script: &str) -> ContainerSpec {
    spec(name, &["sh", "-c"], &[script])
}

/// Creates and starts a container, registering it for cleanup.
async fn run(rt: &DockerRuntime, cleanup: &mut Cleanup, s: &ContainerSpec) -> String {
    cleanup.0.push(s.name.clone());
    let id = rt.create(s).await.expect("create");
    rt.start(&id).await.expect("start");
    id
}

async fn wait_exited(rt: &DockerRuntime, id: &str, timeout: Duration) -> ContainerInfo {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let info = rt.inspect(id).await.expect("inspect");
        if matches!(info.state, ContainerState::Exited { .. }) {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still {:?} after {timeout:?}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_logs(rt: &DockerRuntime, id: &str, opts: LogOptions) -> String {
    let mut stream = rt.logs(id, opts).await.expect("logs");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("log chunk"));
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn lifecycle_create_list_stop_remove() {
    let rt = runtime().await;
    let name = unique("life");
    let mut cleanup = Cleanup(Vec::new());
    let mut s = spec(&name, &["sleep"], &["300"]);
    let labels: BTreeMap<String, String> = [
        (LABEL_POD_UID.to_string(), name.clone()),
        (LABEL_NODE.to_string(), "t40".to_string()),
    ]
    .into();
    s.labels = labels.clone();
    let id = run(&rt, &mut cleanup, &s).await;

    let found = rt.list(&labels).await.expect("list");
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c.id, id);
    assert_eq!(c.name, name);
    assert_eq!(c.image, s.image);
    assert_eq!(c.state, ContainerState::Running);
    for (k, v) in &labels {
        assert_eq!(c.labels.get(k), Some(v), "label {k}");
    }
    assert!(c.started_at.is_some() && c.created_at.is_some(), "{c:?}");
    let ip = c.ip.as_deref().expect("a bridge IP");
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "ip {ip}");
    // A label that only this one has narrows the list to it; another value matches none.
    let mut other = labels.clone();
    other.insert(LABEL_NODE.to_string(), "elsewhere".to_string());
    assert!(rt.list(&other).await.expect("list").is_empty());

    // Same name again: a clear engine error the agent can act on.
    match rt.create(&s).await {
        Err(RuntimeError::Engine { msg, .. }) => assert!(msg.contains("already exists"), "{msg}"),
        other => panic!("second create with the same name: {other:?}"),
    }

    // `sleep` as pid 1 ignores SIGTERM, so this also checks the SIGKILL after the grace.
    let t0 = std::time::Instant::now();
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let info = rt.inspect(&id).await.expect("inspect");
    match info.state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            finished_at,
        } => {
            assert_eq!(exit_code, Some(137));
            assert!(!oom_killed);
            let f = finished_at.expect("finished_at");
            assert!(f >= info.started_at.expect("started_at"));
        }
        other => panic!("after stop: {other:?}"),
    }
    let listed = rt.list(&labels).await.expect("list");
    assert!(
        matches!(listed[0].state, ContainerState::Exited { .. }),
        "{listed:?}"
    );
    // Stopping a stopped container is fine.
    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stop again");

    rt.remove(&id).await.expect("remove");
    assert!(rt.list(&labels).await.expect("list").is_empty());
    // Removing and stopping what is gone is fine; inspecting it is NotFound.
    rt.remove(&id).await.expect("remove again");
    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stop removed");
    assert!(matches!(
        rt.inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test]
async fn missing_container_is_not_found() {
    let rt = runtime().await;
    let ghost = unique("ghost");
    assert!(matches!(
        rt.inspect(&ghost).await,
        Err(RuntimeError::NotFound(id)) if id == ghost
    ));
    assert!(matches!(
        rt.start(&ghost).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        rt.logs(&ghost, LogOptions::default()).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        rt.stats(&ghost).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        rt.exec(&ghost, &strings(&["true"]), Duration::from_secs(5))
            .await,
        Err(RuntimeError::NotFound(_))
    ));
    rt.stop(&ghost, Duration::from_secs(1))
        .await
        .expect("stop of a missing container");
    rt.remove(&ghost)
        .await
        .expect("remove of a missing container");
}

#[tokio::test]
async fn created_container_is_created() {
    let rt = runtime().await;
    let name = unique("created");
    let cleanup = Cleanup(vec![name.clone()]);
    let id = rt
        .create(&spec(&name, &["true"], &[]))
        .await
        .expect("create");
    assert_eq!(
        rt.inspect(&id).await.expect("inspect").state,
        ContainerState::Created
    );
    assert!(rt.inspect(&id).await.expect("inspect").started_at.is_none());
    rt.remove(&id).await.expect("remove");
    drop(cleanup);
}

#[tokio::test]
async fn exit_code_is_reported() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let id = run(&rt, &mut cleanup, &sh(&unique("exit3"), "exit 3")).await;
    let info = wait_exited(&rt, &id, Duration::from_secs(30)).await;
    match info.state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            finished_at,
        } => {
            assert_eq!(exit_code, Some(3));
            assert!(!oom_killed);
            assert!(finished_at.is_some());
        }
        other => panic!("{other:?}"),
    }
}

/// `list` remembers exited containers instead of inspecting them on every
/// call: what it returns must still follow the engine when something outside
/// shoal starts such a container again or removes it.
#[tokio::test]
async fn list_follows_exited_containers_restarted_or_removed_behind_its_back() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let name = unique("relist");
    let tag = name.clone();
    let mut s = sh(&name, "[ -e /again ] && sleep 30; touch /again; exit 4");
    s.labels.insert(LABEL_POD_UID.to_string(), tag.clone());
    let id = run(&rt, &mut cleanup, &s).await;
    wait_exited(&rt, &id, Duration::from_secs(30)).await;
    let by_tag = BTreeMap::from([(LABEL_POD_UID.to_string(), tag.clone())]);
    let first = rt.list(&by_tag).await.expect("list");
    let second = rt.list(&by_tag).await.expect("list again");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first, second, "a second list of an exited container agrees");
    assert!(
        matches!(
            first[0].state,
            ContainerState::Exited {
                exit_code: Some(4),
                ..
            }
        ),
        "{first:?}"
    );

    // Started again by hand: the list reports it running, not the old exit.
    let out = Command::new("docker")
        .args(["start", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = rt.list(&by_tag).await.expect("list after docker start");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].state, ContainerState::Running, "{now:?}");
    // Stopped by hand: the new exit (killed, 137) replaces the remembered one.
    let out = Command::new("docker").args(["kill", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_exited(&rt, &id, Duration::from_secs(30)).await;
    let killed = rt.list(&by_tag).await.expect("list after docker kill");
    assert!(
        matches!(
            killed[0].state,
            ContainerState::Exited {
                exit_code: Some(137),
                ..
            }
        ),
        "{killed:?}"
    );

    // Removed by hand: gone from the next list.
    let out = Command::new("docker")
        .args(["rm", "-f", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = rt.list(&by_tag).await.expect("list after docker rm");
    assert!(gone.is_empty(), "{gone:?}");
}

#[tokio::test]
async fn memory_limit_oom_kill_is_reported() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    // The shell keeps the whole command substitution in memory: 100 MB
    // against a 32 MiB limit (swap is capped to the limit too).
    let mut s = sh(
        &unique("oom"),
        "x=$(yes | head -c 100000000); echo survived",
    );
    s.memory_limit_bytes = Some(32 * 1024 * 1024);
    let id = run(&rt, &mut cleanup, &s).await;
    let info = wait_exited(&rt, &id, Duration::from_secs(60)).await;
    match info.state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            ..
        } => {
            assert!(oom_killed, "not OOM-killed, exit code {exit_code:?}");
            assert_eq!(exit_code, Some(137));
        }
        other => panic!("{other:?}"),
    }
    let logs = read_logs(&rt, &id, LogOptions::default()).await;
    assert!(!logs.contains("survived"), "{logs}");
}

#[tokio::test]
async fn unreachable_image_pull_fails_fast() {
    let rt = runtime().await.with_pull_timeout(Duration::from_secs(20));
    // A present image is used as it is.
    rt.ensure_image(&ensure_busybox_image(), false)
        .await
        .expect("local image");
    let image = "nonexistent.invalid/foo:1";
    let t0 = std::time::Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(40), rt.ensure_image(image, false))
        .await
        .expect("ensure_image returns within its pull timeout");
    match res {
        Err(RuntimeError::ImagePull { image: i, reason }) => {
            assert_eq!(i, image);
            assert!(!reason.is_empty());
            eprintln!("pull failed after {:?}: {reason}", t0.elapsed());
        }
        other => panic!("pull of {image}: {other:?}"),
    }
    // A create with an image that is not there is an image problem too.
    let name = unique("noimg");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut s = spec(&name, &["true"], &[]);
    s.image = image.to_string();
    assert!(matches!(
        rt.create(&s).await,
        Err(RuntimeError::ImagePull { .. })
    ));
}

#[tokio::test]
async fn logs_have_both_streams_and_tail_and_follow() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let id = run(
        &rt,
        &mut cleanup,
        &sh(
            &unique("logs"),
            "echo hello; echo err 1>&2; sleep 1; echo one; echo two; echo three",
        ),
    )
    .await;
    wait_exited(&rt, &id, Duration::from_secs(30)).await;
    let all = read_logs(&rt, &id, LogOptions::default()).await;
    assert!(all.contains("hello\n"), "{all:?}");
    assert!(all.contains("err\n"), "{all:?}");
    let tail = read_logs(
        &rt,
        &id,
        LogOptions {
            tail: Some(2),
            follow: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tail, "two\nthree\n");

    // Follow: output written after the call still arrives.
    let id = run(
        &rt,
        &mut cleanup,
        &sh(&unique("follow"), "echo a; sleep 1; echo b; sleep 300"),
    )
    .await;
    let mut stream = rt
        .logs(
            &id,
            LogOptions {
                tail: None,
                follow: true,
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !String::from_utf8_lossy(&seen).contains("b\n") {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            seen.extend_from_slice(&chunk);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("followed logs: {:?}", String::from_utf8_lossy(&seen)));
    assert_eq!(String::from_utf8_lossy(&seen), "a\nb\n");
}

#[tokio::test]
async fn exec_returns_output_and_exit_code() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let id = run(
        &rt,
        &mut cleanup,
        &spec(&unique("exec"), &["sleep"], &["300"]),
    )
    .await;

    let out = rt
        .exec(&id, &strings(&["echo", "hi"]), Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 0);
    assert_eq!(String::from_utf8_lossy(&out.output), "hi\n");

    let out = rt
        .exec(
            &id,
            &strings(&["sh", "-c", "echo oops 1>&2; exit 7"]),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 7);
    assert_eq!(String::from_utf8_lossy(&out.output), "oops\n");

    // Output is capped, but the command still runs to its end.
    let out = rt
        .exec(
            &id,
            &strings(&["sh", "-c", "yes | head -c 100000; exit 2"]),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 2);
    assert_eq!(out.output.len(), 4096);

    match rt
        .exec(&id, &strings(&["sleep", "10"]), Duration::from_secs(1))
        .await
    {
        Err(RuntimeError::Engine { msg, .. }) => {
            assert!(msg.contains("timed out after 1 s"), "{msg}")
        }
        other => panic!("slow exec: {other:?}"),
    }
}

#[tokio::test]
async fn stats_of_running_container() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let id = run(
        &rt,
        &mut cleanup,
        &spec(&unique("stats"), &["sleep"], &["300"]),
    )
    .await;
    let stats = rt.stats(&id).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
}

#[tokio::test]
async fn spec_is_applied() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("index.html"), "served by t40\n").expect("write");
    let port = free_port();
    let name = unique("spec");
    let mut s = spec(&name, &["httpd"], &["-f", "-p", "8080", "-h", "/www"]);
    s.env = vec![
        ("GREETING".into(), "hello world".into()),
        ("EMPTY".into(), String::new()),
    ];
    s.working_dir = Some("/tmp".into());
    s.mounts = vec![Mount {
        host_path: dir.path().to_string_lossy().into_owned(),
        container_path: "/www".into(),
        read_only: true,
        volume: None,
    }];
    s.ports = vec![PortBinding {
        container_port: 8080,
        host_port: port,
        host_ip: "127.0.0.1".into(),
    }];
    s.cpu_limit_millis = Some(500);
    s.memory_limit_bytes = Some(64 * 1024 * 1024);
    s.dns_servers = vec!["127.0.0.1".into()];
    s.dns_search = vec!["t40.shoal.test".into()];
    let id = run(&rt, &mut cleanup, &s).await;

    let exec = |cmd: &'static str| {
        let rt = rt.clone();
        let id = id.clone();
        async move {
            rt.exec(&id, &strings(&["sh", "-c", cmd]), Duration::from_secs(10))
                .await
                .expect("exec")
        }
    };
    let out = exec("echo \"$GREETING|$EMPTY|$(pwd)\"").await;
    assert_eq!(String::from_utf8_lossy(&out.output), "hello world||/tmp\n");
    let out = exec("cat /etc/resolv.conf").await;
    let resolv = String::from_utf8_lossy(&out.output).into_owned();
    assert!(resolv.contains("nameserver 127.0.0.1"), "{resolv}");
    assert!(resolv.contains("t40.shoal.test"), "{resolv}");
    let out = exec("cat /www/index.html && echo x > /www/new").await;
    assert_ne!(out.exit_code, 0, "the mount is writable");
    // stdout and stderr reach the engine on separate pipes: no order between them.
    let text = String::from_utf8_lossy(&out.output);
    assert!(text.contains("served by t40\n"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");

    let fmt = "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} \
               {{.HostConfig.RestartPolicy.Name}}";
    let out = Command::new("docker")
        .args(["inspect", "--format", fmt, &id])
        .output()
        .expect("docker inspect");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("500000000 {0} {0} no", 64 * 1024 * 1024)
    );

    // The published port answers on the host's loopback.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let got = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut buf = String::new();
            conn.read_to_string(&mut buf)?;
            Ok(buf)
        })
        .await
        .expect("http task");
        match got {
            Ok(b) if b.contains("served by t40") => break b,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no answer on port {port}: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(body.starts_with("HTTP/1."), "{body}");
}

/// `docker inspect --format FMT ID`, trimmed.
fn inspect_field(id: &str, fmt: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", fmt, id])
        .output()
        .expect("docker inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn run_as_user_sets_the_container_user() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let mut s = sh(&unique("user"), "id -u; id -g; sleep 30");
    s.run_as_user = Some(1234);
    s.run_as_group = Some(4321);
    s.run_as_non_root = true;
    let id = run(&rt, &mut cleanup, &s).await;
    assert_eq!(inspect_field(&id, "{{.Config.User}}"), "1234:4321");
    let out = rt
        .exec(
            &id,
            &strings(&["sh", "-c", "id -u"]),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(out.output, b"1234\n");

    let mut only_user = sh(&unique("uid"), "id -u");
    only_user.run_as_user = Some(77);
    let id = run(&rt, &mut cleanup, &only_user).await;
    assert_eq!(inspect_field(&id, "{{.Config.User}}"), "77");
    wait_exited(&rt, &id, Duration::from_secs(20)).await;
    assert_eq!(read_logs(&rt, &id, LogOptions::default()).await, "77\n");
}

#[tokio::test]
async fn run_as_non_root_refuses_a_root_user() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    // The busybox image runs as root: with no runAsUser, runAsNonRoot refuses it.
    let mut s = sh(&unique("nonroot"), "true");
    s.run_as_non_root = true;
    cleanup.0.push(s.name.clone());
    match rt.create(&s).await {
        Err(RuntimeError::Config(msg)) => assert!(msg.contains("runAsNonRoot"), "{msg}"),
        other => panic!("a root image with runAsNonRoot was created: {other:?}"),
    }
    s.run_as_user = Some(0);
    assert!(matches!(rt.create(&s).await, Err(RuntimeError::Config(_))));
    let listed = rt
        .list(&BTreeMap::new())
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.name == s.name)
        .count();
    assert_eq!(listed, 0, "nothing was created");
}

#[tokio::test]
async fn containers_get_a_capped_json_file_log() {
    let rt = runtime().await.with_log_limits(shoal::runtime::LogLimits {
        max_bytes: 64 * 1024,
        max_files: 3,
    });
    let mut cleanup = Cleanup(Vec::new());
    let id = run(&rt, &mut cleanup, &sh(&unique("logcap"), "sleep 30")).await;
    assert_eq!(
        inspect_field(
            &id,
            "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} \
             {{index .HostConfig.LogConfig.Config \"max-file\"}}"
        ),
        "json-file 65536 3"
    );
    // The defaults: kubelet's 10 MiB and 5 files.
    let rt = runtime().await;
    let id = run(&rt, &mut cleanup, &sh(&unique("logdefault"), "sleep 30")).await;
    assert_eq!(
        inspect_field(
            &id,
            "{{index .HostConfig.LogConfig.Config \"max-size\"}} \
             {{index .HostConfig.LogConfig.Config \"max-file\"}}"
        ),
        "10485760 5"
    );
}

/// The securityContext settings as the engine applies them, read from
/// inside the container: capabilities, no_new_privs, groups, a read-only
/// root, a sysctl and seccomp (none, and a Localhost profile that denies
/// mkdir).
#[tokio::test]
async fn security_settings_reach_the_container() {
    let rt = runtime().await;
    let mut cleanup = Cleanup(Vec::new());
    let script = "grep -E '^(CapEff|NoNewPrivs|Seccomp|Groups):' /proc/self/status; \
                  touch /written 2>/dev/null && echo root-writable || echo root-read-only; \
                  echo syncookies=$(cat /proc/sys/net/ipv4/tcp_syncookies); \
                  mkdir /tmp/d 2>/dev/null && echo mkdir-ok || echo mkdir-denied";
    let mut s = sh(&unique("secure"), script);
    s.cap_drop = strings(&["ALL"]);
    s.cap_add = strings(&["NET_BIND_SERVICE"]);
    s.no_new_privileges = true;
    s.read_only_root = true;
    s.supplemental_groups = vec![3000, 4000];
    s.sysctls = BTreeMap::from([("net.ipv4.tcp_syncookies".into(), "0".into())]);
    s.seccomp = Some(Seccomp::Unconfined);
    let id = run(&rt, &mut cleanup, &s).await;
    wait_exited(&rt, &id, Duration::from_secs(20)).await;
    let out = read_logs(&rt, &id, LogOptions::default()).await;
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Only CAP_NET_BIND_SERVICE (bit 10) is left.
    assert_eq!(line("CapEff:"), "0000000000000400", "{out}");
    assert_eq!(line("NoNewPrivs:"), "1", "{out}");
    assert_eq!(line("Seccomp:"), "0", "unconfined: {out}");
    assert!(
        line("Groups:").contains("3000") && line("Groups:").contains("4000"),
        "{out}"
    );
    assert!(out.contains("root-read-only"), "{out}");
    assert!(out.contains("syncookies=0"), "{out}");

    // A Localhost profile is read from its file and enforced.
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("write profile");
    let mut s = sh(&unique("seccomp"), script);
    s.seccomp = Some(Seccomp::Localhost(profile.display().to_string()));
    let id = run(&rt, &mut cleanup, &s).await;
    wait_exited(&rt, &id, Duration::from_secs(20)).await;
    let out = read_logs(&rt, &id, LogOptions::default()).await;
    assert!(out.contains("Seccomp:\t2"), "a filter is on: {out}");
    // The root is writable here, so only the profile can deny the mkdir.
    assert!(out.contains("root-writable"), "{out}");
    assert!(out.contains("mkdir-denied"), "{out}");

    // A missing profile, and privileged on a node that does not allow it,
    // are configuration errors: nothing is created.
    let mut s = sh(&unique("noprofile"), "true");
    s.seccomp = Some(Seccomp::Localhost(
        dir.path().join("missing.json").display().to_string(),
    ));
    cleanup.0.push(s.name.clone());
    match rt.create(&s).await {
        Err(RuntimeError::Config(msg)) => assert!(msg.contains("missing.json"), "{msg}"),
        other => panic!("created with a missing profile: {other:?}"),
    }
    let mut s = sh(&unique("privileged"), "true");
    s.privileged = true;
    cleanup.0.push(s.name.clone());
    match rt.create(&s).await {
        Err(RuntimeError::Config(msg)) => {
            assert!(msg.contains("agent.allow_privileged"), "{msg}")
        }
        other => panic!("a privileged container was created: {other:?}"),
    }
    // Allowed, it is created privileged. (Not started: where dockerd itself
    // runs without every capability, as in some CI sandboxes, the engine
    // cannot grant them all.)
    let rt = rt.with_allow_privileged(true);
    let mut s = sh(&unique("privileged-ok"), "true");
    s.privileged = true;
    cleanup.0.push(s.name.clone());
    let id = rt.create(&s).await.expect("create privileged");
    assert_eq!(inspect_field(&id, "{{.HostConfig.Privileged}}"), "true");
}
