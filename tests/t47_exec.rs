//! Interactive access through a node that does not run the pod, on
//! two-node clusters: with the process runtime, `exec` (exit code, stdout
//! and stderr apart, stdin with `-i`), `cp` both ways of 10 MB with its
//! checksum, `port-forward` carrying 100
//! concurrent connections, `logs --previous` after a crash, and `logs -l` /
//! `logs deployment/NAME` with each line prefixed by its pod; with the real
//! Docker engine, `exec` and `cp` again, `exec` with a terminal (`-t` under `script`),
//! and `logs --timestamps --since`. Every pod runs on node 1; the CLI talks
//! to node 0, so each stream crosses the p2p network.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;

fn pod(node: &str, image: &str, name: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"{script}\"]\n"
    )
}

fn deployment(node: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: lab\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: lab\n  template:\n    metadata:\n      labels:\n        app: lab\n    spec:\n      nodeName: {node}\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sh\", \"-c\", \"echo hello from lab; sleep 3600\"]\n"
    )
}

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

/// Runs the CLI against `addr` with `stdin` fed to it; (code, stdout, stderr).
fn cli_with_input(addr: &str, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("SHOAL_ADDR")
        .env_remove("SHOAL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shoal binary runs");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("the CLI ends");
    feeder.join().expect("feeder");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `shoal exec ... -- sh -c SCRIPT` with `stdin`; (code, stdout, stderr).
async fn exec_sh(addr: &str, flags: &[&str], script: &str, stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut args: Vec<String> = vec!["exec".into()];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(["--", "sh", "-c", script].map(String::from));
    let (addr, stdin) = (addr.to_string(), stdin.to_vec());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_with_input(&addr, &args, &stdin)
    })
    .await
    .expect("join")
}

/// exec without a terminal: stdout and stderr apart, the exit code kept,
/// stdin with -i (300 KB: several writes and reads), closed without.
async fn exec_checks(addr: &str) {
    let t = Instant::now();
    let (code, out, err) = exec_sh(
        addr,
        &["shell"],
        "echo to-out; echo to-err >&2; exit 7",
        b"",
    )
    .await;
    assert_eq!(code, 7, "stdout {out:?} stderr {err:?}");
    assert_eq!(out, b"to-out\n");
    assert!(err.contains("to-err"), "{err:?}");
    eprintln!("exec round trip through the other node: {:?}", t.elapsed());
    let (code, out, err) = shoal_cli(addr, &["exec", "pod/shell", "--", "true"]).await;
    assert_eq!(code, 0, "{out} {err}");

    let input: Vec<u8> = (0..300_000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[(i % 27) as usize])
        .collect();
    let (code, out, err) = exec_sh(addr, &["-i", "shell"], "cat", &input).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), input.len(), "{err}");
    assert!(out == input, "stdin came back altered");
    let (code, out, err) = exec_sh(addr, &["shell"], "cat", b"ignored").await;
    assert_eq!((code, out.as_slice()), (0, &b""[..]), "without -i: {err}");

    let (code, _, err) = shoal_cli(addr, &["exec", "nosuch", "--", "true"]).await;
    assert!(code != 0 && err.contains("not found"), "{err}");
    let (code, _, err) = shoal_cli(addr, &["exec", "shell", "-c", "nope", "--", "true"]).await;
    assert!(
        code != 0 && err.contains("container nope is not valid"),
        "{err}"
    );
}

/// cp both ways of 10 MB, checked by SHA-256, and of a directory tree; a
/// failed copy leaves nothing.
async fn cp_checks(addr: &str) {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("big.bin");
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).expect("write");
    let src = src.to_str().expect("utf-8").to_string();
    let t = Instant::now();
    let (code, out, err) = shoal_cli(addr, &["cp", &src, "shell:big.bin"]).await;
    assert_eq!(code, 0, "{out} {err}");
    let back = dir.path().join("back.bin");
    let back_s = back.to_str().expect("utf-8").to_string();
    let (code, out, err) = shoal_cli(addr, &["cp", "shell:big.bin", &back_s]).await;
    assert_eq!(code, 0, "{out} {err}");
    eprintln!("cp of 10 MB there and back: {:?}", t.elapsed());
    let got = std::fs::read(&back).expect("the copy");
    assert_eq!(got.len(), data.len());
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&data),
        "checksums differ"
    );
    // A directory tree, both ways: nested files, an empty directory and a
    // mode kept; the copy lands under the name asked.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
    std::fs::create_dir_all(tree.join("empty")).expect("mkdir");
    std::fs::write(tree.join("top.txt"), "top").expect("write");
    std::fs::write(tree.join("a/b/deep.sh"), "#!/bin/sh\necho deep\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tree.join("a/b/deep.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    let tree_s = tree.to_str().expect("utf-8").to_string();
    let (code, out, err) = shoal_cli(addr, &["cp", &tree_s, "shell:copied/tree"]).await;
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) = shoal_cli(
        addr,
        &["exec", "shell", "--", "sh", "-c", "copied/tree/a/b/deep.sh"],
    )
    .await;
    assert_eq!((code, out.trim()), (0, "deep"), "{err}");
    let tree_back = dir.path().join("tree-back");
    let tree_back_s = tree_back.to_str().expect("utf-8").to_string();
    let (code, out, err) = shoal_cli(addr, &["cp", "shell:copied/tree", &tree_back_s]).await;
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(
        std::fs::read_to_string(tree_back.join("top.txt")).expect("top"),
        "top"
    );
    assert_eq!(
        std::fs::read_to_string(tree_back.join("a/b/deep.sh")).expect("deep"),
        "#!/bin/sh\necho deep\n"
    );
    assert!(
        tree_back.join("empty").is_dir(),
        "the empty directory came too"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tree_back.join("a/b/deep.sh"))
            .expect("deep")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "still executable: {mode:o}");
    }
    std::fs::remove_dir_all(&tree).expect("rm");
    std::fs::remove_dir_all(&tree_back).expect("rm");

    let missing = dir.path().join("missing.bin");
    let missing_s = missing.to_str().expect("utf-8").to_string();
    let (code, _, err) = shoal_cli(addr, &["cp", "shell:nosuch.bin", &missing_s]).await;
    assert!(code != 0 && err.contains("nosuch.bin"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left.len(), 2, "a failed copy left something: {left:?}");
}

/// Runs `shoal port-forward TARGET PORTS` through `addr`; returns the
/// process (killed when dropped) and its first line, which says where it
/// listens.
async fn start_forward(addr: &str, target: &str, ports: &str) -> (tokio::process::Child, String) {
    let mut fwd = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--addr", addr, "port-forward", target, ports])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("port-forward runs");
    let mut lines = tokio::io::BufReader::new(fwd.stdout.take().expect("stdout"));
    let mut first = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first),
    )
    .await
    .expect("port-forward says where it listens")
    .expect("read");
    (fwd, first)
}

/// port-forward to `pod/web` (serving `hello-web` on `port`): 100
/// concurrent requests, each its own connection, carried through the node
/// at `addr` to the pod's node, which connects to the pod's port.
async fn forward_checks(addr: &str, port: u16) {
    let (fwd, first) = start_forward(addr, "pod/web", &format!(":{port}")).await;
    // "Forwarding from 127.0.0.1:PORT -> 8080 (pod/web)"
    let local = first
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let t = Instant::now();
    let answers = futures::future::join_all((0..100).map(|_| {
        let http = http.clone();
        let url = format!("http://{local}/index.html");
        async move {
            let r = http.get(&url).send().await?;
            let status = r.status().as_u16();
            Ok::<_, reqwest::Error>((status, r.text().await?))
        }
    }))
    .await;
    for a in &answers {
        let (status, body) = a.as_ref().expect("request through the forward");
        assert_eq!((*status, body.as_str()), (200, "hello-web\n"));
    }
    eprintln!(
        "100 concurrent requests through port-forward: {:?}",
        t.elapsed()
    );
    drop(fwd);
}

/// `logs --previous` of the pod `crash` (it prints an id and exits 3):
/// refused for `shell`, which never restarted; the instance before the
/// restart once there is one.
async fn previous_checks(api: &Api, addr: &str) {
    // logs --previous: the instance before the restart, kept by the agent.
    let (code, _, err) = shoal_cli(addr, &["logs", "shell", "--previous"]).await;
    assert!(
        code != 0 && err.contains("previous terminated container"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let (previous, current) = loop {
        let p = pod_status(api, "crash").await;
        let restarts = p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        if restarts >= 1 {
            let (c1, prev, e1) = shoal_cli(addr, &["logs", "crash", "--previous"]).await;
            let (c2, cur, e2) = shoal_cli(addr, &["logs", "crash"]).await;
            if c1 == 0 && c2 == 0 && !cur.is_empty() {
                break (prev, cur);
            }
            eprintln!("not yet: {c1} {e1} / {c2} {e2}");
        }
        assert!(Instant::now() < deadline, "crash never restarted: {p:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        previous.starts_with("id-") && previous.lines().count() == 1,
        "{previous:?}"
    );
    assert!(
        current.starts_with("id-") && current.lines().count() == 1,
        "{current:?}"
    );
    assert_ne!(previous, current, "--previous shows the instance before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_forward_and_logs_through_the_other_node() {
    let node = "exp1";
    let c = Cluster::start("exp", &["2", "2"], |_| {}).await;
    let api = c.api();
    let addr = api.base.clone();
    let port = free_port();
    for m in [
        pod(node, "host", "shell", "sleep 3600"),
        pod(
            node,
            "host",
            "web",
            &format!(
                "mkdir -p www && echo hello-web > www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h www"
            ),
        )
        .replace("  name: web\n", "  name: web\n  labels: {app: web}\n"),
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: websvc\nspec:\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: 9000, targetPort: {port}}}\n"
        ),
        pod(
            node,
            "host",
            "crash",
            "echo id-$(cat /proc/sys/kernel/random/uuid); exit 3",
        ),
        deployment(node, "host"),
    ] {
        let (code, v) = api.apply(&m).await;
        assert_eq!(code, 200, "{v}");
    }
    wait_running(&api, "shell").await;
    let p = pod_status(&api, "shell").await;
    assert_eq!(p["spec"]["nodeName"], node);
    exec_checks(&addr).await;
    cp_checks(&addr).await;
    let (code, _, err) = shoal_cli(&addr, &["exec", "-it", "shell", "--", "true"]).await;
    assert!(code != 0 && err.contains("no terminal"), "{err}");
    // Each session is in node 0's audit log and counted in its metrics.
    let audit = std::fs::read_to_string(c.dir(0).join("data/audit/audit.log")).expect("audit log");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("/v1/namespaces/default/pods/shell/exec") && l.contains("101")),
        "no exec session in the audit log"
    );
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
        .find_map(|l| l.strip_prefix("shoal_api_exec_sessions_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(sessions >= 5.0, "shoal_api_exec_sessions_total {sessions}");

    // port-forward: 100 concurrent requests, each its own connection,
    // carried through node 0 to node 1, which connects to the pod's port.
    wait_running(&api, "web").await;
    forward_checks(&addr, port).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");

    // service/NAME: a ready endpoint's pod and target port, chosen once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, e) = api.get("/v1/namespaces/default/endpoints/websvc").await;
        if e["ports"][0]["endpoints"][0]["pod"] == "web" {
            break;
        }
        assert!(Instant::now() < deadline, "websvc has no endpoint: {e:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (fwd, first) = start_forward(&addr, "service/websvc", ":9000").await;
    assert!(first.contains(&format!("-> {port} (pod/web)")), "{first:?}");
    let local = first
        .split_whitespace()
        .nth(2)
        .expect("address")
        .to_string();
    let body = http
        .get(format!("http://{local}/index.html"))
        .send()
        .await
        .expect("through the service forward")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "hello-web\n");
    drop(fwd);

    // logs -l and deployment/NAME: every replica's lines, prefixed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lab = loop {
        let (code, out, err) = shoal_cli(&addr, &["logs", "-l", "app=lab"]).await;
        if code == 0 && out.lines().count() == 2 {
            break out;
        }
        assert!(Instant::now() < deadline, "logs -l: {code} {out:?} {err:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut names: Vec<&str> = lab
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("[pod/").expect("prefixed");
            let (pod, line) = rest.split_once("/main] ").expect("container in prefix");
            assert_eq!(line, "hello from lab");
            pod
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2, "{lab}");
    assert!(names.iter().all(|n| n.starts_with("lab-")), "{names:?}");
    let (code, out, err) = shoal_cli(&addr, &["logs", "deployment/lab"]).await;
    assert_eq!(code, 0, "{err}");
    let mut a: Vec<&str> = out.lines().collect();
    let mut b: Vec<&str> = lab.lines().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let (code, _, err) = shoal_cli(
        &addr,
        &["logs", "-l", "app=lab", "-f", "--max-log-requests", "1"],
    )
    .await;
    assert!(code != 0 && err.contains("at most 1"), "{err}");
    let (code, _, err) = shoal_cli(&addr, &["logs", "shell", "--timestamps"]).await;
    assert!(code != 0 && err.contains("keeps no times"), "{err}");

    previous_checks(&api, &addr).await;

    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_exec_with_a_terminal_through_the_other_node() {
    images::require_docker();
    let image = images::ensure_busybox_image();
    let node = "exd1";
    let c = Cluster::start("exd", &["2", "2"], |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker)
    })
    .await;
    let api = c.api();
    let addr = api.base.clone();
    for m in [
        pod(node, &image, "shell", "echo started; sleep 3600"),
        pod(
            node,
            &image,
            "web",
            "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 8080 -h /www",
        ),
        pod(
            node,
            &image,
            "crash",
            "echo id-$(cat /proc/sys/kernel/random/uuid); exit 3",
        ),
    ] {
        let (code, v) = api.apply(&m).await;
        assert_eq!(code, 200, "{v}");
    }
    wait_running(&api, "shell").await;
    exec_checks(&addr).await;
    cp_checks(&addr).await;
    wait_running(&api, "web").await;
    forward_checks(&addr, 8080).await;
    previous_checks(&api, &addr).await;

    // A terminal: `script` gives the CLI a pty; the command sees a tty on
    // stdin, and its exit code comes back through script.
    let cmd = format!(
        "{} --addr {addr} exec -it shell -- sh -c '[ -t 0 ] && echo IS-A-TTY; exit 5'",
        env!("CARGO_BIN_EXE_shoal")
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .output()
            .expect("script runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("IS-A-TTY"), "{text:?}");
    assert_eq!(out.status.code(), Some(5), "{text:?}");

    // The window size: sent at start, and again when the local terminal
    // changes (a background `stty` on the pty makes the kernel send SIGWINCH).
    // Docker takes the first size only once the command runs, so it reads
    // the size after a second.
    let cmd = format!(
        "stty cols 91 rows 27; (sleep 4; stty cols 100 rows 33 < /dev/tty) & {} --addr {addr} exec -it shell -- sh -c 'sleep 1; busybox stty size; sleep 6; busybox stty size'",
        env!("CARGO_BIN_EXE_shoal")
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script runs");
        // Held open: an end of input would reach the remote terminal as a hang-up.
        let keep = child.stdin.take();
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

    // Docker keeps each line's time: --timestamps and --since.
    let (code, out, err) =
        shoal_cli(&addr, &["logs", "shell", "--timestamps", "--since", "1h"]).await;
    assert_eq!(code, 0, "{err}");
    let (ts, line) = out.trim_end().split_once(' ').expect("a time first");
    assert!(ts.contains('T') && ts.ends_with('Z'), "{out}");
    assert_eq!(line, "started");

    c.stop().await;
}
