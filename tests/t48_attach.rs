//! `shoal attach` through a node that does not run the pod, on two-node
//! clusters (every pod on node 1, the CLI talking to node 0): with the real
//! Docker engine, output from the moment of attach and none from before,
//! stdout and stderr apart, Ctrl-C detaching with exit 0 and the container
//! running on, `-i` echoing through `cat` with the main process's exit code
//! coming back, `-i` refused for a container without `stdin: true`, and a
//! terminal (`-it` under `script`) that takes the local window size; with
//! the process runtime, output from now on, `-i` refused, and a pod asking
//! for a stdin refused with the reason.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// A pod on `node` running `script` in `sh -c`; `extra` goes after the
/// container's command (stdin, tty), `policy` is its restart policy.
fn pod(node: &str, image: &str, name: &str, script: &str, extra: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"{script}\"]\n{extra}"
    )
}

/// Prints `before-attach` once, then a numbered line on stdout and on
/// stderr every 200 ms.
const TICKER: &str = "echo before-attach; i=0; while true; do echo tick-$i; echo err-$i >&2; i=$((i+1)); sleep 0.2; done";

async fn pod_status(api: &Api, name: &str) -> Value {
    let (_, p) = api
        .get(&format!("/v1/namespaces/default/pods/{name}"))
        .await;
    p
}

async fn wait_running(api: &Api, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pod_status(api, name).await;
        if p["status"]["phase"] == "Running" && is_ready(&p) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never ran: {p:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The highest `tick-N` in `text`.
fn last_tick(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
        .max()
}

/// Waits until the ticker's log has its first line and a tick; the last tick.
async fn ticking(addr: &str, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = shoal_cli(addr, &["logs", name]).await;
        if code == 0
            && out.lines().any(|l| l == "before-attach")
            && let Some(n) = last_tick(&out)
        {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never ticked: {out:?} {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Attaches to the ticker without `-i`, reads three ticks, then Ctrl-C:
/// the CLI exits 0, saw nothing from before it attached, and the
/// container runs on (same restart count, still ticking).
async fn attach_sees_new_output_and_detaches(
    api: &Api,
    addr: &str,
    name: &str,
    stderr_apart: bool,
) {
    let before = ticking(addr, name).await;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--addr", addr, "attach", name])
        .env_remove("SHOAL_ADDR")
        .env_remove("SHOAL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("attach runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|l: &&String| l.starts_with("tick-"))
        .count()
        < 3
    {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no output through attach; so far {seen:?}"))
            .expect("read")
            .unwrap_or_else(|| panic!("attach ended early; so far {seen:?}"));
        seen.push(line);
    }
    eprintln!("three lines through attach: {:?}", t.elapsed());
    assert!(
        !seen.iter().any(|l| l.contains("before-attach")),
        "old output replayed: {seen:?}"
    );
    let first = last_tick(&seen[0]).unwrap_or_else(|| panic!("{seen:?}"));
    assert!(
        first > before,
        "tick-{first} was written before the attach (the log had tick-{before}): {seen:?}"
    );
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let mut err = String::new();
    let mut stderr = child.stderr.take().expect("stderr");
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        child.wait().await
    })
    .await
    .expect("Ctrl-C ends attach")
    .expect("wait");
    assert_eq!(status.code(), Some(0), "detaching is no failure: {err}");
    if stderr_apart {
        assert!(err.contains("err-"), "no stderr through attach: {err:?}");
    }

    // Still running, never restarted, and still writing.
    let p = pod_status(api, name).await;
    assert_eq!(p["status"]["phase"], "Running", "{p:#}");
    assert_eq!(
        p["status"]["containerStatuses"][0]["restartCount"], 0,
        "{p:#}"
    );
    let after = ticking(addr, name).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = ticking(addr, name).await;
    assert!(
        later > after,
        "the container stopped writing after the detach"
    );
}

/// Runs the CLI with `stdin` fed to it; (code, stdout, stderr).
async fn cli_with_input(addr: &str, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("SHOAL_ADDR")
        .env_remove("SHOAL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the shoal binary runs");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let feeder = tokio::spawn(async move {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut input, &data).await;
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI ends")
        .expect("the CLI ran");
    feeder.await.expect("feeder");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_attach_through_the_other_node() {
    images::require_docker();
    let image = images::ensure_busybox_image();
    let node = "atd1";
    let c = Cluster::start("atd", &["2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker)
    })
    .await;
    let api = c.api();
    let addr = api.base.clone();
    let stdin_once = "    stdin: true\n    stdinOnce: true\n";
    for m in [
        pod(node, &image, "ticker", TICKER, "", "Always"),
        pod(node, &image, "catter", "cat; exit 3", stdin_once, "Never"),
        pod(
            node,
            &image,
            "term",
            "sh",
            "    stdin: true\n    tty: true\n",
            "Never",
        ),
    ] {
        let (code, v) = api.apply(&m).await;
        assert_eq!(code, 200, "{v}");
    }
    wait_running(&api, "ticker").await;
    assert_eq!(pod_status(&api, "ticker").await["spec"]["nodeName"], node);
    attach_sees_new_output_and_detaches(&api, &addr, "ticker", true).await;

    // -i on a container created without a stdin: refused, saying why.
    let (code, _, err) = shoal_cli(&addr, &["attach", "-i", "ticker"]).await;
    assert!(
        code != 0 && err.contains("was not created with stdin: true"),
        "{code} {err}"
    );
    // -t on a container without a terminal: kubectl's warning, and the
    // attach goes on without one (ended by SIGINT as the README does it).
    let out = tokio::process::Command::new("timeout")
        .args(["--preserve-status", "-s", "INT", "2"])
        .arg(env!("CARGO_BIN_EXE_shoal"))
        .args(["--addr", &addr, "attach", "-t", "ticker"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("timeout runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Unable to use a TTY - container main did not allocate one"),
        "{err}"
    );
    assert!(
        last_tick(&String::from_utf8_lossy(&out.stdout)).is_some(),
        "{out:?}"
    );
    let (code, _, err) = shoal_cli(&addr, &["attach", "ticker", "-c", "nope"]).await;
    assert!(
        code != 0 && err.contains("container nope is not valid"),
        "{err}"
    );
    let (code, _, err) = shoal_cli(&addr, &["attach", "nosuch"]).await;
    assert!(code != 0 && err.contains("not found"), "{err}");

    // -i to a stdin: true container: what goes in comes back through cat;
    // the end of input closes its stdin (stdinOnce), cat ends, and the
    // main process's exit code is the CLI's.
    wait_running(&api, "catter").await;
    let input: Vec<u8> = (0..2000u32)
        .flat_map(|i| format!("line {i} through attach\n").into_bytes())
        .collect();
    let t = Instant::now();
    let (code, out, err) = cli_with_input(&addr, &["attach", "-i", "pod/catter"], &input).await;
    eprintln!("{} bytes through cat: {:?}", input.len(), t.elapsed());
    assert_eq!(code, 3, "stdout {} bytes, stderr {err:?}", out.len());
    assert!(
        out == input,
        "stdin came back altered ({} bytes)",
        out.len()
    );

    // A terminal: `script` gives the CLI a pty of 27 rows and 91 columns;
    // the container's own terminal takes that size, then the new one when
    // the local terminal changes (a background `stty` on the pty makes the
    // kernel send SIGWINCH); the shell in it reads what is typed, and its
    // exit code comes back through script.
    wait_running(&api, "term").await;
    let cmd = format!(
        "stty cols 91 rows 27; (sleep 4; stty cols 100 rows 33 < /dev/tty) & {} --addr {addr} attach -it term",
        env!("CARGO_BIN_EXE_shoal")
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script runs");
        // Held open until the end: an end of input would reach the
        // container's terminal as a hang-up.
        let mut keep = child.stdin.take().expect("stdin");
        std::thread::sleep(Duration::from_secs(2));
        keep.write_all(
            b"busybox stty size; [ -t 0 ] && echo IS-A-TTY; sleep 5; busybox stty size; exit 4\n",
        )
        .expect("type");
        let out = child.wait_with_output().expect("script ends");
        drop(keep);
        out
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    let sizes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u16>().is_ok()))
        .collect();
    assert_eq!(sizes, ["27 91", "33 100"], "{text:?}");
    assert!(text.contains("IS-A-TTY"), "{text:?}");
    assert_eq!(out.status.code(), Some(4), "{text:?}");

    // Each session is counted.
    let metrics = api
        .http
        .get(format!("{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let sessions = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_api_attach_sessions_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        sessions >= 3.0,
        "shoal_api_attach_sessions_total {sessions}"
    );

    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_attach_through_the_other_node() {
    let node = "atp1";
    let c = Cluster::start("atp", &["2", "2"], |_| {}).await;
    let api = c.api();
    let addr = api.base.clone();
    for m in [
        pod(node, "host", "ticker", TICKER, "", "Always"),
        pod(
            node,
            "host",
            "wants-stdin",
            "cat",
            "    stdin: true\n",
            "Always",
        ),
        pod(
            node,
            "host",
            "ender",
            "echo early; sleep 4; echo bye; exit 6",
            "",
            "Never",
        ),
    ] {
        let (code, v) = api.apply(&m).await;
        assert_eq!(code, 200, "{v}");
    }
    // Attached while it runs: what it writes next, then its exit code.
    wait_running(&api, "ender").await;
    let (code, out, err) = shoal_cli(&addr, &["attach", "ender"]).await;
    assert_eq!((code, out.as_str()), (6, "bye\n"), "{err}");

    wait_running(&api, "ticker").await;
    // One pipe carries both streams of a host process: no stderr apart.
    attach_sees_new_output_and_detaches(&api, &addr, "ticker", false).await;
    let (code, _, err) = shoal_cli(&addr, &["attach", "-i", "ticker"]).await;
    assert!(
        code != 0 && err.contains("was not created with stdin: true"),
        "{code} {err}"
    );

    // A host process gets no stdin: the pod says so rather than run without.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pod_status(&api, "wants-stdin").await;
        let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        if waiting["reason"] == "CreateContainerConfigError" {
            let msg = waiting["message"].as_str().unwrap_or_default();
            assert!(msg.contains("stdin and tty"), "{p:#}");
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {p:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    c.stop().await;
}
