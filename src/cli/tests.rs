use super::nodes::*;
use super::objects::*;
use super::rollout::*;
use super::*;
use crate::resource::Kind;
use serde_json::{Value, json};

#[test]
fn rfc3339_round_trip() {
    for secs in [0u64, 951_782_400, 1_798_761_599, 1_800_000_000] {
        assert_eq!(
            crate::resource::time::parse_rfc3339(&crate::resource::time::rfc3339(secs)),
            Some(secs)
        );
    }
}

#[test]
fn table_aligns_columns() {
    let rows = vec![
        vec!["NAME".to_string(), "AGE".into()],
        vec!["a-long-name".into(), "5s".into()],
    ];
    assert_eq!(render_rows(&rows), "NAME          AGE\na-long-name   5s\n");
}

#[test]
fn usage_errors_exit_2() {
    let e = Cli::try_parse_from(["shoal", "frobnicate"]).expect_err("unknown command");
    assert!(e.use_stderr());
    let e = Cli::try_parse_from(["shoal", "scale", "deployment", "web"])
        .expect_err("--replicas is required");
    assert!(e.use_stderr());
    let e = deployment_name("deployment", None, "scale").expect_err("no name");
    assert!(e.downcast_ref::<UsageError>().is_some());
}

#[test]
fn rollout_commands_parse() {
    let cli = Cli::try_parse_from([
        "shoal",
        "rollout",
        "undo",
        "deploy/web",
        "--to-revision",
        "3",
        "-n",
        "prod",
    ])
    .expect("parses");
    match cli.command {
        Cmd::Rollout {
            cmd:
                RolloutCmd::Undo {
                    kind,
                    name,
                    to_revision,
                    namespace,
                },
        } => {
            assert_eq!(
                deployment_name(&kind, name.as_deref(), "x").ok(),
                Some("web".into())
            );
            assert_eq!(to_revision, Some(3));
            assert_eq!(namespace.as_deref(), Some("prod"));
        }
        c => panic!("parsed as {c:?}"),
    }
    let cli = Cli::try_parse_from(["shoal", "drain", "n1", "--timeout", "2m", "--force"])
        .expect("parses");
    assert!(matches!(
        cli.command,
        Cmd::Drain {
            timeout: 120,
            force: true,
            ..
        }
    ));
}

#[test]
fn deployment_names() {
    for (kind, name) in [
        ("deployment", Some("web")),
        ("deploy", Some("web")),
        ("deployments", Some("web")),
        ("deployment/web", None),
        ("deploy/web", None),
    ] {
        assert_eq!(
            deployment_name(kind, name, "x").ok(),
            Some("web".into()),
            "{kind}"
        );
    }
    let e = deployment_name("pod", Some("web"), "scale").expect_err("pods are not scaled");
    assert!(e.to_string().contains("deployments"), "{e}");
    assert_eq!(
        scale_target("rs/web", None).ok(),
        Some((Kind::ReplicaSet, "web".into()))
    );
    assert_eq!(
        scale_target("deployment", Some("web")).ok(),
        Some((Kind::Deployment, "web".into()))
    );
    let e = scale_target("pod/web", None).expect_err("pods are not scaled");
    assert!(
        e.to_string()
            .contains("works on deployments, replicasets and statefulsets, not pods"),
        "{e}"
    );
    let e = deployment_name("replicaset/web", None, "rollout undo").expect_err("deployments only");
    assert!(
        e.to_string()
            .contains("works on deployments, not replicasets"),
        "{e}"
    );
    assert!(deployment_name("deployment/web", Some("web"), "x").is_err());
    assert!(deployment_name("deployment/", None, "x").is_err());
}

#[test]
fn seconds() {
    assert_eq!(parse_secs("90"), Ok(90));
    assert_eq!(parse_secs("90s"), Ok(90));
    assert_eq!(parse_secs("5m"), Ok(300));
    assert_eq!(parse_secs("1h"), Ok(3600));
    assert!(parse_secs("soon").is_err());
    assert!(parse_secs("-1").is_err());
}

fn deployment(replicas: u64, generation: u64, status: Value) -> Value {
    json!({
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    })
}

#[test]
fn rollout_progress_follows_kubectl() {
    let wait = |m: &str| {
        Progress::Waiting(format!(
            "Waiting for deployment \"web\" rollout to finish: {m}..."
        ))
    };
    let d = deployment(3, 2, json!({"observedGeneration": 1}));
    assert_eq!(
        rollout_progress(&d),
        Progress::Waiting("Waiting for deployment spec update to be observed...".into())
    );
    let d = deployment(
        3,
        2,
        json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1}),
    );
    assert_eq!(
        rollout_progress(&d),
        wait("1 out of 3 new replicas have been updated")
    );
    let d = deployment(
        3,
        2,
        json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
    );
    assert_eq!(
        rollout_progress(&d),
        wait("1 old replicas are pending termination")
    );
    let d = deployment(
        3,
        2,
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
    );
    assert_eq!(
        rollout_progress(&d),
        wait("2 of 3 updated replicas are available")
    );
    let d = deployment(
        2,
        2,
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
    );
    assert_eq!(
        rollout_progress(&d),
        wait("1 old replicas are pending termination")
    );
    let d = deployment(
        3,
        2,
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
    );
    assert_eq!(rollout_progress(&d), Progress::Done);
    let d = deployment(0, 1, json!({"observedGeneration": 1}));
    assert_eq!(rollout_progress(&d), Progress::Done);
    let d = deployment(
        3,
        2,
        json!({
            "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            ],
        }),
    );
    assert_eq!(rollout_progress(&d), Progress::DeadlineExceeded);
}

fn rs(rev: u64, image: &str) -> (u64, Value) {
    (
        rev,
        json!({
            "metadata": {"annotations": {REVISION_ANNOTATION: rev.to_string()}},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", TEMPLATE_HASH_LABEL: format!("h{rev}")}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            }},
        }),
    )
}

#[test]
fn rollback_targets() {
    let h = vec![rs(1, "a"), rs(2, "b"), rs(4, "c")];
    let pick = |cur, to| rollback_target(&h, cur, to, "deployment \"web\"").map(|(r, _)| *r);
    assert_eq!(pick(Some(4), None).ok(), Some(2));
    assert_eq!(pick(None, None).ok(), Some(2));
    assert_eq!(pick(Some(2), None).ok(), Some(1));
    assert_eq!(pick(Some(4), Some(1)).ok(), Some(1));
    assert_eq!(pick(Some(4), Some(0)).ok(), Some(2));
    let e = pick(Some(4), Some(3)).expect_err("no revision 3");
    assert_eq!(
        e.to_string(),
        "unable to find specified revision 3 in history"
    );
    let e = pick(Some(1), None).expect_err("nothing older");
    assert!(e.to_string().contains("no previous revision"), "{e}");
    let e = rollback_target(&[], None, None, "deployment \"web\"").expect_err("no history");
    assert_eq!(
        e.to_string(),
        "no rollout history found for deployment \"web\""
    );
}

#[test]
fn rollback_template_drops_the_hash_label() {
    let t = template_without_hash(&rs(2, "b").1).expect("template");
    assert_eq!(t["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(t["spec"]["containers"][0]["image"], "b");
    assert!(template_without_hash(&json!({"spec": {}})).is_err());
}

#[test]
fn node_columns() {
    assert_eq!(human_memory(0), "0Mi");
    assert_eq!(human_memory(512 * 1024 * 1024), "512Mi");
    assert_eq!(human_memory(2 * 1024 * 1024 * 1024), "2Gi");
    assert_eq!(human_memory(24_421_940 * 1024), "23.3Gi");
    let pod = json!({"spec": {"containers": [
        {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
        {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
        {"name": "no-resources"},
    ]}});
    assert_eq!(pod_requests(&pod), (1250, (64 + 1024) * 1024 * 1024));

    let members = vec![
        json!({"state": "down", "meta": {"name": "a", "raftRole": "voter"}}),
        json!({"state": "alive", "meta": {"name": "a", "raftRole": "leader"}}),
        json!({"state": "suspect", "meta": {"name": "b"}}),
    ];
    let a = member_named(&members, "a");
    assert_eq!(a.map(|m| &m["meta"]["raftRole"]), Some(&json!("leader")));
    let plain = json!({"spec": {}});
    let cordoned = json!({"spec": {"unschedulable": true}});
    assert_eq!(node_status(&plain, a), "Ready");
    assert_eq!(node_status(&cordoned, a), "Ready,SchedulingDisabled");
    assert_eq!(node_status(&plain, member_named(&members, "b")), "Suspect");
    assert_eq!(node_status(&plain, member_named(&members, "c")), "NotReady");
}

#[test]
fn controller_owner_and_pod_state() {
    let p = json!({
        "metadata": {"ownerReferences": [
            {"kind": "Other", "name": "x", "uid": "1"},
            {"kind": "ReplicaSet", "name": "web-1", "uid": "2", "controller": true},
        ]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    assert_eq!(
        controller_ref(&p).map(|r| &r["name"]),
        Some(&json!("web-1"))
    );
    assert!(!is_terminal_pod(&p));
    assert!(controller_ref(&json!({"metadata": {}})).is_none());
    assert!(is_terminal_pod(&json!({"status": {"phase": "Succeeded"}})));
}

#[test]
fn storage_tables_show_kubectls_columns() {
    let claim = json!({
        "metadata": {"name": "data", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pvc-1", "storageClassName": "local"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    });
    let mut deleting = claim.clone();
    deleting["metadata"]["name"] = json!("old");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let pending = json!({
        "metadata": {"name": "new", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOncePod"]}
    });
    let t = table(
        Kind::PersistentVolumeClaim,
        &[claim, deleting, pending],
        false,
    );
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "AGE"
        ]
    );
    assert_eq!(
        rows[1][..6],
        ["data", "Bound", "pvc-1", "1Gi", "RWO", "local"]
    );
    assert_eq!(rows[2][..2], ["old", "Terminating"]);
    assert_eq!(rows[3][..2], ["new", "Pending"], "{t}");

    let volume = json!({
        "metadata": {"name": "pvc-1"},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local",
            "claimRef": {"namespace": "default", "name": "data"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}
        },
        "status": {"phase": "Bound"}
    });
    let t = table(Kind::PersistentVolume, &[volume], true);
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "RECLAIM",
            "POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "AGE",
            "NODE"
        ],
        "cluster-scoped: no NAMESPACE column"
    );
    assert_eq!(
        rows[1],
        [
            "pvc-1",
            "1Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "local",
            "<unknown>",
            "n2"
        ]
    );

    let class = json!({
        "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "shoal.io/local", "volumeBindingMode": "WaitForFirstConsumer"
    });
    let t = table(Kind::StorageClass, &[class], false);
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[1],
        [
            "local",
            "(default)",
            "shoal.io/local",
            "Delete",
            "WaitForFirstConsumer",
            "false",
            "<unknown>"
        ]
    );
}

fn statefulset(replicas: u64, partition: Option<u64>, status: Value) -> Value {
    let mut spec = json!({ "replicas": replicas });
    if let Some(p) = partition {
        spec["updateStrategy"] = json!({ "rollingUpdate": { "partition": p } });
    }
    json!({
        "metadata": { "name": "web", "generation": 2 },
        "spec": spec,
        "status": status,
    })
}

#[test]
fn statefulset_progress_follows_kubectl() {
    let waiting = |m: &str| Progress::Waiting(m.to_string());
    let cases = [
        (
            statefulset(3, None, json!({ "observedGeneration": 1 })),
            waiting("Waiting for statefulset spec update to be observed..."),
        ),
        (
            statefulset(
                3,
                None,
                json!({ "observedGeneration": 2, "readyReplicas": 1 }),
            ),
            waiting("Waiting for 2 pods to be ready..."),
        ),
        (
            statefulset(
                3,
                None,
                json!({ "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                        "currentRevision": "web-a", "updateRevision": "web-b" }),
            ),
            waiting(
                "waiting for statefulset rolling update to complete 1 pods at revision web-b...",
            ),
        ),
        (
            statefulset(
                3,
                Some(2),
                json!({ "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 0,
                        "currentRevision": "web-a", "updateRevision": "web-b" }),
            ),
            waiting(
                "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...",
            ),
        ),
        (
            statefulset(
                3,
                Some(2),
                json!({ "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                        "currentRevision": "web-a", "updateRevision": "web-b" }),
            ),
            Progress::Done,
        ),
        (
            statefulset(
                3,
                None,
                json!({ "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                        "currentRevision": "web-b", "updateRevision": "web-b" }),
            ),
            Progress::Done,
        ),
    ];
    for (d, want) in cases {
        assert_eq!(statefulset_progress(&d), want, "{d}");
    }
}

#[test]
fn statefulsets_are_scaled_and_listed() {
    assert_eq!(
        scale_target("sts/web", None).ok(),
        Some((Kind::StatefulSet, "web".to_string()))
    );
    let it = json!({
        "metadata": { "name": "web", "creationTimestamp": "2020-01-01T00:00:00Z" },
        "spec": { "replicas": 3 },
        "status": { "readyReplicas": 2 },
    });
    let t = table(Kind::StatefulSet, &[it], false);
    let mut lines = t.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row[..2], ["web", "2/3"]);
}

#[test]
fn pod_table_shows_init_progress_as_kubectl() {
    let pod = |name: &str, phase: &str, init: Value, app: Value| {
        json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "initContainers": [
                    {"name": "proxy", "image": "i", "restartPolicy": "Always"},
                    {"name": "migrate", "image": "i"},
                ],
                "containers": [{"name": "app", "image": "i"}],
            },
            "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": app},
        })
    };
    let running = |name: &str, ready: bool| {
        json!({"name": name, "image": "i", "ready": ready, "started": true, "restartCount": 0,
               "state": {"running": {}}})
    };
    let waiting = |name: &str, reason: &str, restarts: u32| {
        json!({"name": name, "image": "i", "ready": false, "restartCount": restarts,
               "state": {"waiting": {"reason": reason}}})
    };
    let done = |name: &str, code: i64, reason: &str| {
        json!({"name": name, "image": "i", "ready": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": code, "reason": reason}}})
    };
    let app_waits = json!([waiting("app", "PodInitializing", 0)]);
    let t = table(
        Kind::Pod,
        &[
            pod(
                "starting",
                "Pending",
                json!([
                    waiting("proxy", "ContainerCreating", 0),
                    waiting("migrate", "PodInitializing", 0)
                ]),
                app_waits.clone(),
            ),
            pod(
                "migrating",
                "Pending",
                json!([running("proxy", true), running("migrate", false)]),
                app_waits.clone(),
            ),
            pod(
                "looping",
                "Pending",
                json!([
                    running("proxy", true),
                    waiting("migrate", "CrashLoopBackOff", 3)
                ]),
                app_waits.clone(),
            ),
            pod(
                "failed",
                "Failed",
                json!([running("proxy", false), done("migrate", 1, "Error")]),
                app_waits,
            ),
            pod(
                "up",
                "Running",
                json!([running("proxy", true), done("migrate", 0, "Completed")]),
                json!([running("app", true)]),
            ),
        ],
        false,
    );
    let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[1][..4], ["starting", "0/2", "Init:0/2", "0"], "{t}");
    assert_eq!(rows[2][..4], ["migrating", "1/2", "Init:1/2", "0"], "{t}");
    assert_eq!(
        rows[3][..4],
        ["looping", "1/2", "Init:CrashLoopBackOff", "3"],
        "{t}"
    );
    assert_eq!(rows[4][..4], ["failed", "0/2", "Init:Error", "0"], "{t}");
    assert_eq!(rows[5][..4], ["up", "2/2", "Running", "0"], "{t}");
}

#[test]
fn service_accounts_are_listed_and_described_as_kubectl() {
    assert_eq!(
        super::client::kind_arg("sa").ok(),
        Some(Kind::ServiceAccount)
    );
    let it = json!({
        "metadata": { "name": "builder", "creationTimestamp": "2020-01-01T00:00:00Z" },
        "imagePullSecrets": [{ "name": "regcred" }],
        "secrets": [{ "name": "a" }, { "name": "b" }],
        "automountServiceAccountToken": false,
    });
    let t = table(Kind::ServiceAccount, std::slice::from_ref(&it), false);
    let mut lines = t.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SECRETS", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row[..2], ["builder", "2"]);
    let d = super::accounts::describe_lines(&it);
    for want in [
        "Image pull secrets:  regcred",
        "Mountable secrets:   a, b",
        "Tokens:              builder-token",
        "Automount token:     false",
    ] {
        assert!(d.contains(want), "{want:?} in {d}");
    }
}

#[test]
fn ingresses_are_listed_as_kubectl() {
    assert_eq!(super::client::kind_arg("ing").ok(), Some(Kind::Ingress));
    let it = json!({
        "metadata": { "name": "web", "creationTimestamp": "2020-01-01T00:00:00Z" },
        "spec": {
            "tls": [{ "hosts": ["a.test"], "secretName": "c" }],
            "rules": [
                { "host": "a.test", "http": { "paths": [] } },
                { "host": "b.test", "http": { "paths": [] } },
                { "host": "a.test", "http": { "paths": [] } },
            ],
        },
        "status": { "loadBalancer": { "ingress": [{ "ip": "10.0.0.1" }, { "ip": "10.0.0.2" }] } },
    });
    let t = table(Kind::Ingress, std::slice::from_ref(&it), false);
    let mut lines = t.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        row[..6],
        [
            "web",
            "shoal",
            "a.test,b.test",
            "10.0.0.1,10.0.0.2",
            "80,",
            "443"
        ],
        "{t}"
    );
    let class = json!({
        "metadata": { "name": "internal", "creationTimestamp": "2020-01-01T00:00:00Z" },
        "spec": { "controller": "shoal.io/ingress" },
    });
    let t = table(Kind::IngressClass, std::slice::from_ref(&class), false);
    let row: Vec<&str> = t.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(row[..3], ["internal", "shoal.io/ingress", "<none>"], "{t}");
}

#[test]
fn extended_resource_flags_add_to_the_config() {
    let cli = Cli::try_parse_from([
        "shoal",
        "agent",
        "--extended-resource",
        "example.com/dongle=4",
        "--extended-resource",
        "nvidia.com/gpu=1",
    ])
    .expect("flags parse");
    let Cmd::Agent(args) = cli.command else {
        panic!("agent expected");
    };
    let cfg = args.to_config().expect("config");
    assert_eq!(
        cfg.agent.extended_resources.get("example.com/dongle"),
        Some(&4)
    );
    assert_eq!(cfg.agent.extended_resources.get("nvidia.com/gpu"), Some(&1));
    for bad in [
        "dongle=1",
        "example.com/dongle",
        "example.com/dongle=1.5",
        "kubernetes.io/x=1",
    ] {
        assert!(
            Cli::try_parse_from(["shoal", "agent", "--extended-resource", bad]).is_err(),
            "{bad}"
        );
    }
}
