//! Jobs and CronJobs on three-node in-process clusters with the Docker
//! engine: completions with parallelism, a failing Job hitting its
//! backoffLimit, an Indexed Job's environment, a leader killed in the
//! middle of a Job, a podFailurePolicy deciding by exit code, and a
//! CronJob making one Job for a minute boundary, a Job managed by another
//! controller and one with a manual selector; through the typed client
//! and the `shoal` binary.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use shoal::resource::Kind;
use shoal::resource::status::{CronJobStatus, JobStatus, PodStatus};

fn job(name: &str, image: &str, extra_spec: &str, command: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sh\", \"-c\", \"{command}\"]\n"
    )
}

async fn docker_cluster(prefix: &str, backoff_ms: u64) -> (Cluster, String) {
    common::images::require_docker();
    let image = common::images::ensure_busybox_image();
    let c = Cluster::start(prefix, &["2", "2", "2"], move |c| {
        c.runtime = Some(shoal::runtime::RuntimeKind::Docker);
        c.scheduler.job_backoff_ms = backoff_ms;
    })
    .await;
    (c, image)
}

/// Reads an object through the typed client, riding out the moments
/// without a leader that a loaded machine sees (503), which are not what
/// these tests are about.
async fn get_object(api: &Api, kind: Kind, name: &str) -> shoal::resource::Object {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.client.get(kind, "default", name).await {
            Ok(o) => return o,
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{kind} {name}: {e}"),
        }
    }
}

async fn list_objects(api: &Api, kind: Kind) -> Vec<shoal::resource::Object> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.client.list(kind, Some("default")).await {
            Ok(v) => return v,
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("listing {kind}: {e}"),
        }
    }
}

async fn job_status(api: &Api, name: &str) -> JobStatus {
    get_object(api, Kind::Job, name)
        .await
        .status()
        .expect("job status decodes")
}

/// The Job's pods, live (not finished) ones flagged.
async fn job_pods(api: &Api, job: &str) -> Vec<(String, Option<u32>, bool)> {
    let all = list_objects(api, Kind::Pod).await;
    all.iter()
        .filter(|p| p.metadata.labels.get("job-name").map(String::as_str) == Some(job))
        .map(|p| {
            let st: PodStatus = p.status_or_default();
            let index = p
                .metadata
                .annotations
                .get("batch.kubernetes.io/job-completion-index")
                .and_then(|i| i.parse().ok());
            (p.metadata.name.clone(), index, !st.is_terminal())
        })
        .collect()
}

async fn wait_job(api: &Api, name: &str, secs: u64, cond: &str) -> JobStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = job_status(api, name).await;
        if st.is(cond) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} never reached {cond}: {st:?}\npods: {:?}",
            job_pods(api, name).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_its_completions_within_its_parallelism() {
    let (c, image) = docker_cluster("jc", 10_000).await;
    let api = c.api();
    let addr = api.base.clone();
    let manifest = job(
        "work",
        &image,
        "  completions: 3\n  parallelism: 2\n",
        "echo hello-from-job; sleep 1",
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    // `shoal wait` returns once it is complete; meanwhile never more than
    // two pods run.
    let waiter = {
        let addr = addr.clone();
        tokio::spawn(async move {
            shoal_cli(
                &addr,
                &[
                    "wait",
                    "--for=condition=complete",
                    "job/work",
                    "--timeout",
                    "90s",
                ],
            )
            .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !waiter.is_finished() {
        let live = job_pods(&api, "work").await.iter().filter(|p| p.2).count();
        assert!(live <= 2, "{live} pods running: over parallelism 2");
        assert!(Instant::now() < deadline, "shoal wait never returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out, err) = waiter.await.expect("waiter");
    assert_eq!(code, 0, "shoal wait: {out}{err}");
    let st = job_status(&api, "work").await;
    assert_eq!((st.succeeded, st.failed, st.active), (3, 0, 0), "{st:?}");
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    assert_eq!(
        job_pods(&api, "work").await.len(),
        3,
        "one pod per completion"
    );

    let (code, out, _) = shoal_cli(&addr, &["get", "jobs"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("COMPLETIONS") && out.contains("DURATION"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("work "))
        .unwrap_or_default();
    assert!(row.contains("3/3"), "{out}");
    let (code, out, err) = shoal_cli(&addr, &["logs", "job/work"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello-from-job"), "{out}");
    let (code, out, _) = shoal_cli(&addr, &["describe", "job", "work"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Completed") && out.contains("SuccessfulCreate"),
        "{out}"
    );

    // Deleting the Job deletes its pods.
    let (code, out, err) = shoal_cli(&addr, &["delete", "job", "work"]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(Duration::from_secs(20), "the job's pods deleted", || {
        let api = api.clone();
        async move { job_pods(&api, "work").await.is_empty() }
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_stops_at_its_backoff_limit() {
    // A 300 ms back-off base keeps the three retries within seconds.
    let (c, image) = docker_cluster("jf", 300).await;
    let api = c.api();
    let addr = api.base.clone();
    let started = Instant::now();
    let (code, v) = api
        .apply(&job("broken", &image, "  backoffLimit: 2\n", "exit 3"))
        .await;
    assert_eq!(code, 200, "{v}");
    let st = wait_job(&api, "broken", 60, "Failed").await;
    let cond = st.condition("Failed").expect("Failed");
    assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(st.failed, 3, "{st:?}");
    assert!(!st.is("Complete") && st.completion_time.is_none());
    let pods = job_pods(&api, "broken").await;
    assert_eq!(pods.len(), 3, "one try and two retries: {pods:?}");
    // Nothing more is started afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_pods(&api, "broken").await.len(), 3);
    // Waiting for completion ends at once with exit 1; waiting for failure succeeds.
    let (code, _, err) = shoal_cli(
        &addr,
        &[
            "wait",
            "--for=condition=complete",
            "job/broken",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("BackoffLimitExceeded"), "{err}");
    let (code, out, err) = shoal_cli(
        &addr,
        &[
            "wait",
            "--for=condition=failed",
            "job/broken",
            "--timeout",
            "5s",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    // A condition never met times out with exit 1, as kubectl.
    let (code, _, err) = shoal_cli(
        &addr,
        &[
            "wait",
            "--for=condition=Suspended",
            "jobs",
            "broken",
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("timed out"), "{err}");
    eprintln!("failing job test: {:?}", started.elapsed());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_failure_policy_decides_by_exit_code() {
    let (c, image) = docker_cluster("jp", 300).await;
    let api = c.api();
    // Exit code 42 ends the Job at once, though backoffLimit allows six retries.
    let fatal = job(
        "fatal",
        &image,
        "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes:\n        containerName: main\n        operator: In\n        values: [42]\n",
        "exit 42",
    );
    // Exit code 3 is ignored: with backoffLimit 0, the two pods that exit 3
    // would fail the Job if they counted. Each pod reads its attempt number
    // through the downward API and succeeds from the third on.
    let flaky = format!(
        "{}        env:\n        - name: ATTEMPT\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.annotations['shoal.io/job-attempt']\n",
        job(
            "flaky",
            &image,
            "  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n    - action: Ignore\n      onExitCodes:\n        operator: In\n        values: [3]\n",
            "echo attempt $ATTEMPT; [ $ATTEMPT -ge 2 ] || exit 3",
        )
    );
    for m in [&fatal, &flaky] {
        let (code, v) = api.apply(m).await;
        assert_eq!(code, 200, "{v}");
    }
    let st = wait_job(&api, "fatal", 60, "Failed").await;
    let cond = st.condition("Failed").expect("Failed");
    assert_eq!(cond.reason.as_deref(), Some("PodFailurePolicy"), "{st:?}");
    let msg = cond.message.as_deref().unwrap_or_default();
    assert!(
        msg.starts_with("Container main for pod default/fatal-")
            && msg.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{msg}"
    );
    assert!(st.is("FailureTarget"), "{st:?}");
    assert_eq!(st.failed, 1, "{st:?}");
    let st = wait_job(&api, "flaky", 90, "Complete").await;
    assert_eq!(
        (st.succeeded, st.failed),
        (1, 0),
        "ignored failures do not count: {st:?}"
    );
    let pods = job_pods(&api, "flaky").await;
    assert_eq!(
        pods.len(),
        3,
        "two ignored failures and a success: {pods:?}"
    );
    // No retry follows the fatal exit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods = job_pods(&api, "fatal").await;
    assert_eq!(pods.len(), 1, "one pod, no retry: {pods:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_indexed_job_gives_each_pod_its_index() {
    let (c, image) = docker_cluster("ji", 10_000).await;
    let api = c.api();
    let manifest = job(
        "idx",
        &image,
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
        "echo index=$JOB_COMPLETION_INDEX",
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    let st = wait_job(&api, "idx", 90, "Complete").await;
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"), "{st:?}");
    let pods = job_pods(&api, "idx").await;
    assert_eq!(pods.len(), 3, "{pods:?}");
    let mut seen = Vec::new();
    for (name, index, _) in pods {
        let index = index.expect("the index annotation");
        assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
        let (code, v) = api
            .get(&format!("/v1/namespaces/default/pods/{name}/log"))
            .await;
        assert_eq!(code, 200, "{v}");
        let text = v.as_str().unwrap_or_default();
        assert!(text.contains(&format!("index={index}")), "{name}: {text:?}");
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_killed_mid_job_never_doubles_an_index() {
    let (mut c, image) = docker_cluster("jl", 1000).await;
    let leader = c.leader();
    let other = (0..3).find(|i| *i != leader).unwrap();
    let api = Api::new(c.nodes[other].as_ref().unwrap().api_addr);
    let manifest = job(
        "steady",
        &image,
        "  completions: 6\n  parallelism: 2\n  completionMode: Indexed\n  backoffLimit: 6\n",
        "sleep 2",
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    // Wait until the Job is under way, then kill the leader.
    eventually(Duration::from_secs(60), "one index done", || {
        let api = api.clone();
        async move { job_status(&api, "steady").await.succeeded >= 1 }
    })
    .await;
    let lname = format!("jl{leader}");
    let dead = c.crash(leader).await;
    let dead_rt = dead.runtime.clone();
    dead.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods = job_pods(&api, "steady").await;
        let mut live: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (name, index, running) in &pods {
            if *running {
                live.entry(index.expect("indexed"))
                    .or_default()
                    .push(name.clone());
            }
        }
        for (i, names) in &live {
            if names.len() > 1 {
                let all = list_objects(&api, Kind::Pod).await;
                let detail: Vec<String> = all
                    .iter()
                    .filter(|p| names.contains(&p.metadata.name))
                    .map(|p| {
                        format!(
                            "{} attempt {:?} created {:?} node {:?} status {:?}",
                            p.metadata.name,
                            p.metadata.annotations.get("shoal.io/job-attempt"),
                            p.metadata.creation_timestamp,
                            p.body.get("spec").and_then(|s| s.get("nodeName")),
                            p.body.get("status"),
                        )
                    })
                    .collect();
                panic!(
                    "index {i} has two live pods (leader was {lname}):\n{}\njob: {:?}",
                    detail.join("\n"),
                    job_status(&api, "steady").await
                );
            }
        }
        assert!(live.len() <= 2, "over parallelism: {live:?}");
        let st = job_status(&api, "steady").await;
        if st.is("Complete") {
            assert_eq!(st.completed_indexes.as_deref(), Some("0-5"), "{st:?}");
            break;
        }
        assert!(!st.is("Failed"), "{st:?}");
        assert!(
            Instant::now() < deadline,
            "the new leader never finished the job: {st:?} {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    remove_containers_of(&dead_rt, &lname).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cronjob_makes_one_job_per_scheduled_minute() {
    let (c, image) = docker_cluster("jcr", 10_000).await;
    let api = c.api();
    let addr = api.base.clone();
    let manifest = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"* * * * *\"\n  timeZone: Etc/UTC\n  startingDeadlineSeconds: 120\n  concurrencyPolicy: Forbid\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: {image}\n            command: [\"echo\", \"tick\"]\n"
    );
    let (code, v) = api.apply(&manifest).await;
    assert_eq!(code, 200, "{v}");
    // A bad schedule is refused with its field's path.
    let (code, v) = api
        .apply(&manifest.replace("\"* * * * *\"", "\"* * * *\""))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("spec.schedule"), "{v}");

    let jobs_of_tick = || async {
        list_objects(&api, Kind::Job)
            .await
            .into_iter()
            .filter(|j| j.metadata.name.starts_with("tick-"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(75);
    let first = loop {
        let jobs = jobs_of_tick().await;
        assert!(jobs.len() <= 1, "two jobs within one minute: {jobs:?}");
        if let Some(j) = jobs.into_iter().next() {
            break j;
        }
        assert!(Instant::now() < deadline, "no job after a minute boundary");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let scheduled = first
        .metadata
        .annotations
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .expect("scheduled time annotation");
    let t = shoal::resource::time::parse_rfc3339(&scheduled).expect("rfc3339");
    assert_eq!(t % 60, 0, "on a minute boundary");
    assert_eq!(first.metadata.name, format!("tick-{}", t / 60));
    let cron = get_object(&api, Kind::CronJob, "tick").await;
    let st: CronJobStatus = cron.status().expect("status");
    assert_eq!(st.last_schedule_time.as_deref(), Some(scheduled.as_str()));
    wait_job(&api, &first.metadata.name, 60, "Complete").await;
    // Still exactly one for that minute a few passes later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same: Vec<_> = jobs_of_tick()
        .await
        .into_iter()
        .filter(|j| j.metadata.name == first.metadata.name)
        .collect();
    assert_eq!(same.len(), 1);

    let (code, out, _) = shoal_cli(&addr, &["get", "cronjobs"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("LAST SCHEDULE") && out.contains("* * * * *"),
        "{out}"
    );
    assert!(out.contains("Etc/UTC"), "{out}");
    let (code, out, err) =
        shoal_cli(&addr, &["create", "job", "by-hand", "--from=cronjob/tick"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let made = wait_job(&api, "by-hand", 60, "Complete").await;
    assert_eq!(made.succeeded, 1);
    let by_hand = get_object(&api, Kind::Job, "by-hand").await;
    assert_eq!(
        by_hand
            .metadata
            .annotations
            .get("cronjob.kubernetes.io/instantiate")
            .map(String::as_str),
        Some("manual")
    );
    // Deleting the CronJob deletes the Jobs it scheduled.
    let (code, _, err) = shoal_cli(&addr, &["delete", "cronjob", "tick"]).await;
    assert_eq!(code, 0, "{err}");
    eventually(
        Duration::from_secs(20),
        "the cronjob's jobs deleted",
        || async { jobs_of_tick().await.is_empty() },
    )
    .await;
    c.stop().await;
}

/// A Job managed by another controller (`spec.managedBy`) gets no pods and
/// no status from shoal's; one with a manual selector runs, and its pods
/// carry the template's labels but not the controller-uid ones (those go
/// on a generated Job's pods, as Kubernetes). Host processes: no Docker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managed_by_another_controller_and_manual_selectors() {
    let c = Cluster::start("jm", &["2"], |c| c.scheduler.job_backoff_ms = 1000).await;
    let api = c.api();
    let theirs = job("theirs", "host", "  managedBy: example.com/batch\n", "true");
    let (code, v) = api.apply(&theirs).await;
    assert_eq!(code, 200, "{v}");
    let picked = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: picked\nspec:\n  completions: 2\n  manualSelector: true\n  selector:\n    matchLabels: {run: picked}\n  template:\n    metadata:\n      labels: {run: picked}\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: host\n        command: [\"true\"]\n";
    let (code, v) = api.apply(picked).await;
    assert_eq!(code, 200, "{v}");
    let generated = job("plain", "host", "", "true");
    let (code, v) = api.apply(&generated).await;
    assert_eq!(code, 200, "{v}");

    let st = wait_job(&api, "picked", 60, "Complete").await;
    assert_eq!(st.succeeded, 2, "{st:?}");
    wait_job(&api, "plain", 60, "Complete").await;
    let pods = list_objects(&api, Kind::Pod).await;
    let of = |job: &str| {
        pods.iter()
            .filter(|p| p.metadata.labels.get("job-name").map(String::as_str) == Some(job))
            .collect::<Vec<_>>()
    };
    for p in of("picked") {
        assert_eq!(
            p.metadata.labels.get("run").map(String::as_str),
            Some("picked")
        );
        assert!(
            !p.metadata
                .labels
                .contains_key("batch.kubernetes.io/controller-uid"),
            "{:?}",
            p.metadata.labels
        );
    }
    let plain = get_object(&api, Kind::Job, "plain").await;
    let uid = plain.metadata.uid.clone().expect("uid");
    let plain_pods = of("plain");
    assert!(!plain_pods.is_empty());
    for p in plain_pods {
        assert_eq!(
            p.metadata.labels.get("batch.kubernetes.io/controller-uid"),
            Some(&uid)
        );
        assert_eq!(p.metadata.labels.get("controller-uid"), Some(&uid));
    }
    // By now shoal's controller has passed over `theirs` many times.
    assert!(of("theirs").is_empty(), "shoal ran a Job managed elsewhere");
    let theirs = get_object(&api, Kind::Job, "theirs").await;
    assert!(
        theirs
            .body
            .get("status")
            .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty())),
        "shoal wrote the status of a Job managed elsewhere: {:?}",
        theirs.body.get("status")
    );
    // managedBy cannot change once set.
    let (code, v) = api.apply(&job("theirs", "host", "", "true")).await;
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("spec.managedBy"), "{v}");
    c.stop().await;
}
