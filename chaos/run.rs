//! One scenario run from start to end: cluster up, Deployment ready,
//! workload and faults for the duration, heal, checks, teardown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use crate::checks;
use crate::cluster::{Cluster, ClusterOptions, Teardown};
use crate::cron;
use crate::linearizability::{self, Verdict};
use crate::report::{Leaders, Registers, Report};
use crate::scenario::{Network, RuntimeKind, Scenario};
use crate::workload::{self, PAGE, Recorder};
use crate::workload::{APP, STS};
use crate::{faults, intruder, netns};
use shoal::resource::time::now_secs;

/// How long the agents get to form the cluster.
const FORM_TIMEOUT: Duration = Duration::from_secs(120);

/// The Docker image of the Docker runtime's pods (the one the tests build).
const DOCKER_IMAGE: &str = "shoal-test/busybox:latest";

/// What a run needs besides the scenario.
pub struct Options {
    /// The scenario, overrides applied.
    pub scenario: Scenario,
    /// The agent binary.
    pub shoal: PathBuf,
    /// This run's directory.
    pub run_dir: PathBuf,
}

/// Runs the scenario; never fails, the report says what went wrong.
pub async fn run(opts: &Options, teardown: Arc<Teardown>) -> Report {
    let t = Instant::now();
    let mut report = Report::new(&opts.scenario, &opts.run_dir);
    if let Err(e) = drive(opts, teardown.clone(), &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    report.teardown = teardown.run();
    report.timings.total_secs = t.elapsed().as_secs_f64();
    report.settle();
    report
}

fn say(msg: impl AsRef<str>) {
    eprintln!("shoal-chaos: {}", msg.as_ref());
}

/// The Deployment (and Service) the workload runs, as a manifest.
fn manifest(s: &Scenario, www: &Path) -> String {
    let w = &s.workload;
    let (image, command, probe) = match (s.runtime, s.network) {
        (RuntimeKind::Process, Network::Netns) => (
            "host".to_string(),
            json!([
                "/bin/busybox",
                "httpd",
                "-f",
                "-p",
                "8080",
                "-h",
                www.display().to_string()
            ]),
            Some(json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})),
        ),
        // Loopback nodes share port 8080, so only one replica could serve.
        (RuntimeKind::Process, Network::Loopback) => (
            "host".to_string(),
            json!(["/bin/busybox", "sleep", "3600"]),
            None,
        ),
        (RuntimeKind::Docker, _) => (DOCKER_IMAGE.to_string(), json!(["sleep", "3600"]), None),
    };
    let mut container = json!({
        "name": "web",
        "image": image,
        "command": command,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    });
    // A host port spreads the replicas one per node. Docker would publish
    // it on the one real host every node shares, so it goes without.
    if s.runtime == RuntimeKind::Process {
        container["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
    }
    if let Some(p) = probe {
        container["readinessProbe"] = p;
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": "default"},
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]},
            },
        },
    });
    let mut docs = vec![deployment.to_string()];
    if w.statefulset > 0 {
        // A sleeper: on host processes its pods share each node's network
        // with the Deployment's, so a second server on 8080 would not start.
        let sleep = match s.runtime {
            RuntimeKind::Process => json!(["/bin/busybox", "sleep", "3600"]),
            RuntimeKind::Docker => json!(["sleep", "3600"]),
        };
        let c = json!({
            "name": "db",
            "image": image,
            "command": sleep,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        });
        docs.push(
            json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": STS, "namespace": "default"},
                "spec": {
                    "replicas": w.statefulset,
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": STS}},
                    "template": {
                        "metadata": {"labels": {"app": STS}},
                        "spec": {"terminationGracePeriodSeconds": 2, "containers": [c]},
                    },
                },
            })
            .to_string(),
        );
    }
    if w.service {
        docs.push(
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": APP, "namespace": "default"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": APP},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": w.node_port}],
                },
            })
            .to_string(),
        );
    }
    docs.join("\n---\n")
}

/// Makes the Docker tests' busybox image if the engine lacks it.
fn ensure_docker_image(run_dir: &Path) -> anyhow::Result<()> {
    if netns::run("docker", &["image", "inspect", DOCKER_IMAGE], None).is_ok() {
        return Ok(());
    }
    let root = run_dir.join("image-rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .context("/bin/busybox missing: install busybox-static")?;
    for applet in ["sh", "sleep", "httpd", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let tar = run_dir.join("rootfs.tar");
    netns::run(
        "tar",
        &[
            "-C",
            &root.display().to_string(),
            "-cf",
            &tar.display().to_string(),
            ".",
        ],
        None,
    )?;
    netns::run(
        "docker",
        &[
            "import",
            "--change",
            "ENV PATH=/bin",
            &tar.display().to_string(),
            DOCKER_IMAGE,
        ],
        None,
    )?;
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&tar);
    Ok(())
}

/// Applies `manifest` through node `i`, retrying through elections.
async fn apply(cluster: &Cluster, manifest: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        for i in cluster.reachable() {
            let Some(client) = cluster.client(i) else {
                continue;
            };
            let r = client
                .send_within(
                    reqwest::Method::POST,
                    "/v1/apply",
                    Some(manifest.as_bytes().to_vec()),
                    Some(Duration::from_secs(15)),
                )
                .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    if e.status().is_some_and(|c| (400..500).contains(&c)) {
                        bail!("the manifest was refused: {last}");
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("apply failed for 30 s: {last}")
}

async fn drive(opts: &Options, teardown: Arc<Teardown>, report: &mut Report) -> anyhow::Result<()> {
    let s = &opts.scenario;
    let www = opts.run_dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), PAGE)?;
    if s.runtime == RuntimeKind::Docker {
        ensure_docker_image(&opts.run_dir).context("the Docker image for pods")?;
    }
    let cluster = Arc::new(Cluster::prepare(
        ClusterOptions {
            nodes: s.nodes,
            network: s.network,
            runtime: s.runtime,
            run_dir: &opts.run_dir,
            shoal: opts.shoal.clone(),
            agent_config: &s.agent_config,
        },
        teardown,
    )?);
    say(format!(
        "starting {} agents ({} network, {} runtime) in {}",
        s.nodes,
        format!("{:?}", s.network).to_lowercase(),
        s.runtime.flag(),
        opts.run_dir.display()
    ));
    cluster.start_all()?;
    let formed = cluster
        .wait_whole(FORM_TIMEOUT)
        .await
        .map_err(|why| anyhow!("the cluster did not form within {FORM_TIMEOUT:?}: {why}"))?;
    report.timings.startup_secs = Some(formed.as_secs_f64());
    say(format!("cluster formed in {:.1} s", formed.as_secs_f64()));

    let rec = Recorder::new();
    let poller = workload::start_poller(cluster.clone(), rec.clone(), s.workload.replicas > 0);
    if s.workload.replicas > 0 {
        apply(&cluster, &manifest(s, &www)).await?;
        let ready = checks::converge(&cluster, s.workload.replicas, Duration::from_secs(90))
            .await
            .map_err(|why| anyhow!("the Deployment never became ready before the faults: {why}"))?;
        report.timings.baseline_ready_secs = Some(ready.as_secs_f64());
        say(format!(
            "{} replicas ready in {:.1} s",
            s.workload.replicas,
            ready.as_secs_f64()
        ));
    }

    let cron_poller = if s.workload.cron {
        let (image, sleep): (&str, &[&str]) = match s.runtime {
            RuntimeKind::Process => ("host", &["/bin/busybox", "sleep"]),
            RuntimeKind::Docker => (DOCKER_IMAGE, &["sleep"]),
        };
        apply(&cluster, &cron::manifest(image, sleep)).await?;
        // The first whole minute after the CronJobs exist is the first
        // that must have its Job.
        let first = now_secs() / 60 + 2;
        say(format!("CronJobs applied; checking minutes from {first}"));
        Some((cron::start(cluster.clone()), first))
    } else {
        None
    };

    let plan = s.plan();
    report.plan = plan.clone();
    say(format!(
        "workload and {} planned faults for {} s",
        plan.len(),
        s.duration_secs
    ));
    let load = workload::start(cluster.clone(), rec.clone(), &s.workload, s.seed)?;
    let intruders = Arc::new(intruder::Context::new(&opts.run_dir)?);
    let start = Instant::now();
    let fault_task = tokio::spawn(faults::run(
        cluster.clone(),
        rec.clone(),
        plan,
        start,
        s.faults.host_died,
        s.faults.graceful_restart,
        intruders,
    ));
    tokio::time::sleep(Duration::from_secs(s.duration_secs)).await;
    // Every fault ends by itself (the plan leaves room for it); the bound
    // only guards against a hung step.
    match tokio::time::timeout(Duration::from_secs(300), fault_task).await {
        Ok(Ok(records)) => report.faults = records,
        Ok(Err(e)) => bail!("the fault runner failed: {e}"),
        Err(_) => bail!("the fault runner did not finish within 300 s of the end"),
    }
    // The last minute that began while the faults ran.
    let last_minute = now_secs() / 60;
    load.stop(Duration::from_millis(s.workload.request_timeout_ms) + Duration::from_secs(5))
        .await;
    report.timings.workload_secs = Some(start.elapsed().as_secs_f64());

    say("healing");
    let t_heal = Instant::now();
    for line in checks::heal(&cluster)? {
        say(format!("  {line}"));
    }
    match cluster
        .wait_whole(Duration::from_secs(s.checks.heal_timeout_secs))
        .await
    {
        Ok(d) => {
            report.timings.heal_secs = Some(t_heal.elapsed().as_secs_f64());
            report.check(
                "cluster whole after heal",
                true,
                format!(
                    "every node healthy, all members alive, {} voters, {:.1} s after heal began",
                    cluster.expected_voters,
                    t_heal.elapsed().as_secs_f64().max(d.as_secs_f64())
                ),
            );
        }
        Err(why) => {
            report.check(
                "cluster whole after heal",
                false,
                format!(
                    "not whole {} s after heal began: {why}",
                    s.checks.heal_timeout_secs
                ),
            );
            report.diagnostics = cluster.diagnose().await;
        }
    }
    let healed = Instant::now();

    if let Some((poller, first)) = cron_poller {
        // The last minute's Job may wait for a leader elected after the
        // heal; catch-up makes it then.
        let due = ((last_minute + 1) * 60 + 15).max(now_secs() + 20);
        say(format!("waiting for the CronJobs' last Jobs (until {due})"));
        tokio::time::sleep(Duration::from_secs(due.saturating_sub(now_secs()))).await;
        let c = cron::check(&poller.finish(&cluster).await, first, last_minute);
        report.check(
            "one Job per cron minute",
            c.missing.is_empty() && c.doubled.is_empty(),
            format!(
                "minutes {first}..={last_minute}: missing {:?}, doubled {:?}",
                c.missing, c.doubled
            ),
        );
        report.check(
            "Forbid Jobs never overlap",
            c.overlaps.is_empty(),
            if c.overlaps.is_empty() {
                format!(
                    "{} Forbid Jobs, one at a time",
                    c.jobs.get(cron::FORBID).unwrap_or(&0)
                )
            } else {
                c.overlaps.join("; ")
            },
        );
        report.cron = Some(c);
    }

    if s.workload.replicas > 0 {
        say("waiting for the Deployment");
        let limit = Duration::from_secs(s.checks.converge_timeout_secs);
        match checks::converge(
            &cluster,
            s.workload.replicas,
            limit.saturating_sub(healed.elapsed()),
        )
        .await
        {
            Ok(_) => {
                let d = healed.elapsed().as_secs_f64();
                report.timings.convergence_secs = Some(d);
                report.check(
                    "deployment converged",
                    true,
                    format!(
                        "{} replicas Running and Ready {d:.1} s after the cluster was whole",
                        s.workload.replicas
                    ),
                );
            }
            Err(last) => report.check(
                "deployment converged",
                false,
                format!("not within {} s: {last}", s.checks.converge_timeout_secs),
            ),
        }
        say("comparing runtimes with pods");
        let rc = checks::runtime(&cluster, Duration::from_secs(s.checks.settle_timeout_secs)).await;
        report.check(
            "no pod runs twice or without its pod",
            rc.clean(),
            match rc.clean_after_secs {
                Some(t) => format!(
                    "{} containers, clean {t:.1} s after convergence",
                    rc.containers
                ),
                None => format!(
                    "after {} s: {} duplicates, {} orphans, {} ghosts{}",
                    s.checks.settle_timeout_secs,
                    rc.duplicates.len(),
                    rc.orphans.len(),
                    rc.ghosts.len(),
                    rc.error
                        .as_deref()
                        .map(|e| format!(", {e}"))
                        .unwrap_or_default()
                ),
            },
        );
        report.runtime_check = Some(rc);
    }

    if s.workload.service {
        let mut failing = Vec::new();
        for i in 0..cluster.len() {
            let url = format!("http://{}:{}/", cluster.specs[i].ip, s.workload.node_port);
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut ok = false;
            while !ok && Instant::now() < deadline {
                ok = match cluster
                    .app_http
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t == PAGE),
                    _ => false,
                };
                if !ok {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            if !ok {
                failing.push(cluster.specs[i].name.clone());
            }
        }
        if !failing.is_empty() && report.diagnostics.is_empty() {
            report.diagnostics = cluster.diagnose().await;
        }
        report.check(
            "service answers on every node after heal",
            failing.is_empty(),
            if failing.is_empty() {
                format!(
                    "nodePort {} answers on all {} nodes",
                    s.workload.node_port,
                    cluster.len()
                )
            } else {
                format!("no answer through {}", failing.join(", "))
            },
        );
        report.service = Some(std::mem::take(&mut *rec.service()));
    }

    say("checking writes");
    let write_check = {
        let log = rec.writes();
        report.write_reasons = log.reasons.clone();
        // The read-back must not hold the lock across awaits: copy what it needs.
        workload::WriteLog {
            acknowledged: log.acknowledged.clone(),
            ambiguous: log.ambiguous.clone(),
            refused: log.refused,
            ..Default::default()
        }
    };
    let w = checks::writes(&cluster, &write_check).await;
    report.check(
        "no acknowledged write lost",
        w.lost == 0 && w.unreadable.is_empty() && w.acknowledged > 0,
        format!(
            "{} acknowledged, {} lost, {} ambiguous{}",
            w.acknowledged,
            w.lost,
            w.ambiguous,
            if w.unreadable.is_empty() {
                String::new()
            } else {
                format!(", unreadable: {}", w.unreadable.join("; "))
            }
        ),
    );
    report.writes = Some(w);

    if s.workload.registers > 0 && s.workload.register_clients > 0 {
        say("checking the register history");
        let recorded = rec.history().clone();
        let history_file = opts.run_dir.join("history.json");
        std::fs::write(&history_file, serde_json::to_vec_pretty(&recorded)?)?;
        let ops: Vec<linearizability::Operation> = recorded.into_iter().map(|r| r.op).collect();
        let budget = Duration::from_secs(s.checks.linearizability_budget_secs);
        let keys =
            tokio::task::spawn_blocking(move || linearizability::check_per_key(&ops, budget))
                .await
                .context("the linearizability checker panicked")?;
        let bad: Vec<String> = keys
            .iter()
            .filter(|k| k.verdict != Verdict::Linearizable)
            .map(|k| match &k.verdict {
                Verdict::Unknown { reason } => format!("{} undecided ({reason})", k.key),
                _ => format!("{} not linearizable", k.key),
            })
            .collect();
        let total: usize = keys.iter().map(|k| k.ops).sum();
        report.check(
            "registers linearizable",
            bad.is_empty() && !keys.is_empty(),
            if bad.is_empty() {
                format!("{} keys, {total} operations", keys.len())
            } else {
                bad.join("; ")
            },
        );
        report.registers = Some(Registers {
            stats: std::mem::take(&mut *rec.registers()),
            linearizable: bad.is_empty(),
            keys,
            history_file: Some(history_file.display().to_string()),
        });
    }

    poller.stop(Duration::from_secs(5)).await;
    if s.workload.replicas > 0 {
        let timeline = rec.ready().clone();
        faults::attach_readiness(&mut report.faults, &timeline, s.workload.replicas);
        report.ready_timeline = timeline;
    }
    let dups = std::mem::take(&mut *rec.duplicates());
    if s.workload.statefulset > 0 {
        report.check(
            "no StatefulSet ordinal on two nodes at once",
            dups.statefulset_twice == 0 && dups.samples > 0 && dups.max_statefulset_copies > 0,
            if dups.max_statefulset_copies == 0 {
                format!("{STS} never ran a container: nothing was checked")
            } else if dups.statefulset_twice == 0 {
                format!(
                    "{} looks at every node's running containers (about one a second, faults and healing included; up to {} of its containers at once), never an ordinal of {STS} on two nodes",
                    dups.samples, dups.max_statefulset_copies
                )
            } else {
                format!(
                    "in {} of {} looks: {}",
                    dups.statefulset_twice,
                    dups.samples,
                    dups.statefulset_examples.join("; ")
                )
            },
        );
    }
    report.duplicates_during_run = Some(dups);
    let leaders = Leaders::from(&*rec.leaders());
    report.check(
        "at most one leader per term",
        leaders.violations.is_empty() && leaders.terms_observed > 0,
        format!(
            "{} terms observed, {} with two leaders",
            leaders.terms_observed,
            leaders.violations.len()
        ),
    );
    let deposed = checks::unexplained_leader_changes(&leaders.changes, &report.faults);
    report.check(
        "no healthy leader deposed",
        deposed.is_empty(),
        if deposed.is_empty() {
            format!(
                "{} leader changes, each while a fault touched the old leader",
                leaders.changes.len().saturating_sub(1)
            )
        } else {
            deposed.join("; ")
        },
    );
    if report.faults.iter().any(|f| f.intruder.is_some()) {
        intruder_checks(&cluster, report, &leaders).await;
    }
    report.leaders = Some(leaders);
    Ok(())
}

/// The intruder scenario's checks: no term or leader change in a window,
/// never a member, really refused, nothing written through one applied.
async fn intruder_checks(cluster: &Cluster, report: &mut Report, leaders: &Leaders) {
    let windows = report
        .faults
        .iter()
        .filter(|f| f.intruder.as_ref().is_some_and(|r| r.window.is_some()))
        .count();
    let disturbed =
        checks::intruder_disturbances(&report.faults, &leaders.changes, &leaders.term_rises);
    report.check(
        "intruders changed no term or leader",
        disturbed.is_empty() && windows > 0,
        if disturbed.is_empty() {
            format!(
                "{windows} intruder windows, the same leader and term before, during and after each"
            )
        } else {
            disturbed.join("; ")
        },
    );
    let admitted: Vec<String> = report
        .faults
        .iter()
        .filter_map(|f| f.intruder.as_ref())
        .flat_map(|r| r.admitted.iter().cloned())
        .collect();
    report.check(
        "intruders never admitted",
        admitted.is_empty(),
        if admitted.is_empty() {
            "no member ever listed an intruder among its members or in its Raft configuration"
                .to_string()
        } else {
            admitted.join("; ")
        },
    );
    let (refused, lines) = checks::intruder_refusals(&report.faults);
    report.check(
        "intruders refused by the members",
        refused,
        lines.join("; "),
    );
    let tried: u64 = report
        .faults
        .iter()
        .filter_map(|f| f.intruder.as_ref())
        .map(|r| r.writes.values().sum::<u64>())
        .sum();
    let mut found = Vec::new();
    let mut unread = Vec::new();
    for i in 0..cluster.len() {
        let name = &cluster.specs[i].name;
        match cluster
            .get_json(
                i,
                "/v1/namespaces/default/configmaps",
                Duration::from_secs(20),
            )
            .await
        {
            Some(v) => found.extend(
                v["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["metadata"]["name"].as_str())
                    .filter(|n| n.starts_with(intruder::INTRUDER_PREFIX))
                    .map(|n| format!("{n} on {name}")),
            ),
            None => unread.push(name.clone()),
        }
    }
    report.check(
        "nothing an intruder sent applied",
        found.is_empty() && unread.is_empty() && tried > 0,
        if found.is_empty() && unread.is_empty() {
            format!(
                "{tried} writes through intruders, none of their objects on any of the {} members",
                cluster.len()
            )
        } else {
            let mut parts = found.into_iter().take(10).collect::<Vec<_>>();
            if !unread.is_empty() {
                parts.push(format!("unreadable: {}", unread.join(", ")));
            }
            parts.join("; ")
        },
    );
}
