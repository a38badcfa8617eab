//! Pod-spec fields of issue 18 beyond the security context: init
//! containers and sidecars, lifecycle hooks, hostname, the active deadline.

use super::*;

#[test]
fn init_containers_and_sidecars() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    let p = ok(&pod(
        "{initContainers: [{name: proxy, image: b, restartPolicy: Always, readinessProbe: {exec: {command: ['true']}}}, {name: migrate, image: b, command: ['true']}], containers: [{name: a, image: b}]}",
    ));
    let body = PodBody::from_object(&p.objects[0]).unwrap();
    assert!(body.spec.init_containers[0].is_sidecar());
    assert!(!body.spec.init_containers[1].is_sidecar());
    let cases = [
        (
            "{initContainers: [{name: a, image: b}], containers: [{name: a, image: c}]}",
            "spec.containers[0].name: duplicate container name \"a\"",
        ),
        (
            "{initContainers: [{name: i, image: b, livenessProbe: {exec: {command: ['true']}}}], containers: [{name: a, image: c}]}",
            "spec.initContainers[0].livenessProbe: not allowed on an init container that runs to completion",
        ),
        (
            "{containers: [{name: a, image: c, restartPolicy: Always}]}",
            "spec.containers[0].restartPolicy: only an init container may have its own restart policy",
        ),
        (
            "{initContainers: [{name: i, image: b, restartPolicy: OnFailure}], containers: [{name: a, image: c}]}",
            "spec.initContainers[0].restartPolicy: unknown variant `OnFailure`",
        ),
        (
            "{initContainers: [{name: i, image: \"\"}], containers: [{name: a, image: c}]}",
            "spec.initContainers[0].image: missing",
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod(spec));
        assert!(e.contains(want), "{spec}: {e}");
    }
}

#[test]
fn lifecycle_hooks() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    ok(&pod(
        "{terminationGracePeriodSeconds: 10, containers: [{name: a, image: b, ports: [{name: admin, containerPort: 9000}], lifecycle: {postStart: {exec: {command: [sh, -c, 'true']}}, preStop: {httpGet: {port: admin, path: /drain}}}}, {name: c, image: b, lifecycle: {preStop: {sleep: {seconds: 10}}}}]}",
    ));
    let cases = [
        (
            "{containers: [{name: a, image: b, lifecycle: {preStop: {}}}]}",
            "spec.containers[0].lifecycle.preStop: set exactly one of exec, httpGet or sleep",
        ),
        (
            "{containers: [{name: a, image: b, lifecycle: {preStop: {tcpSocket: {port: 80}}}}]}",
            "spec.containers[0].lifecycle.preStop.tcpSocket: deprecated and never run by the kubelet",
        ),
        (
            "{containers: [{name: a, image: b, lifecycle: {postStart: {httpGet: {port: web}}}}]}",
            "spec.containers[0].lifecycle.postStart.httpGet.port: no port named \"web\"",
        ),
        (
            "{terminationGracePeriodSeconds: 5, containers: [{name: a, image: b, lifecycle: {preStop: {sleep: {seconds: 6}}}}]}",
            "spec.containers[0].lifecycle.preStop.sleep.seconds: 6 must be between 0 and the pod's terminationGracePeriodSeconds (5)",
        ),
        (
            "{containers: [{name: a, image: b, lifecycle: {preStop: {exec: {command: []}}}}]}",
            "spec.containers[0].lifecycle.preStop.exec.command: must not be empty",
        ),
        (
            "{initContainers: [{name: i, image: b, lifecycle: {preStop: {sleep: {seconds: 1}}}}], containers: [{name: a, image: b}]}",
            "spec.initContainers[0].lifecycle: not allowed on an init container that runs to completion",
        ),
        (
            "{containers: [{name: a, image: b, lifecycle: {stopSignal: SIGUSR1}}]}",
            "spec.containers[0].lifecycle.stopSignal: field not supported by shoal",
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod(spec));
        assert!(e.contains(want), "{spec}: {e}");
    }
    // A sidecar may have hooks.
    ok(&pod(
        "{initContainers: [{name: i, image: b, restartPolicy: Always, lifecycle: {preStop: {sleep: {seconds: 1}}}}], containers: [{name: a, image: b}]}",
    ));
}

#[test]
fn hostname_and_active_deadline() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    ok(&pod(
        "{hostname: primary, subdomain: db, activeDeadlineSeconds: 30, containers: [{name: a, image: b}]}",
    ));
    let e = err(&pod(
        "{hostname: Primary_1, containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.contains("spec.hostname: \"Primary_1\" is not valid"),
        "{e}"
    );
    let e = err(&pod(
        "{activeDeadlineSeconds: 0, containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.ends_with("spec.activeDeadlineSeconds: must be at least 1"),
        "{e}"
    );
}

#[test]
fn node_affinity_and_tolerations() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    let p = ok(&pod(
        "{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [a, b]}, {key: cores, operator: Gt, values: ['4']}]}, {matchFields: [{key: metadata.name, operator: In, values: [n1]}]}]}, preferredDuringSchedulingIgnoredDuringExecution: [{weight: 50, preference: {matchExpressions: [{key: disk, operator: Exists}]}}]}}, tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}, {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}, {operator: Exists}], containers: [{name: a, image: b}]}",
    ));
    let body = PodBody::from_object(&p.objects[0]).unwrap();
    assert_eq!(body.spec.tolerations.len(), 3);
    let na = "spec.affinity.nodeAffinity";
    let req =
        "requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [";
    let cases = [
        (
            format!("{{affinity: {{nodeAffinity: {{{req}{{key: k, operator: In}}]}}]}}}}}}, containers: [{{name: a, image: b}}]}}"),
            format!("{na}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'"),
        ),
        (
            format!("{{affinity: {{nodeAffinity: {{{req}{{key: k, operator: Gt, values: [x]}}]}}]}}}}}}, containers: [{{name: a, image: b}}]}}"),
            format!("{na}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: must be exactly one integer"),
        ),
        (
            format!("{{affinity: {{nodeAffinity: {{{req}{{key: k, operator: Near}}]}}]}}}}}}, containers: [{{name: a, image: b}}]}}"),
            format!("{na}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: unknown variant `Near`"),
        ),
        (
            "{affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, preference: {}}]}}, containers: [{name: a, image: b}]}".to_string(),
            format!("{na}.preferredDuringSchedulingIgnoredDuringExecution[0].weight: 0 must be in the range 1-100"),
        ),
        (
            "{affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone, namespaces: [Bad]}]}}, containers: [{name: a, image: b}]}".to_string(),
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces[0]: \"Bad\" is not valid".to_string(),
        ),
        (
            "{tolerations: [{key: k, operator: Exists, value: v}], containers: [{name: a, image: b}]}".to_string(),
            "spec.tolerations[0].value: must be empty when operator is Exists".to_string(),
        ),
        (
            "{tolerations: [{value: v}], containers: [{name: a, image: b}]}".to_string(),
            "spec.tolerations[0].operator: must be Exists when key is empty".to_string(),
        ),
        (
            "{tolerations: [{key: k, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}], containers: [{name: a, image: b}]}".to_string(),
            "spec.tolerations[0].effect: must be NoExecute when tolerationSeconds is set".to_string(),
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod(&spec));
        assert!(e.contains(&want), "{spec}: {e}");
    }
}

#[test]
fn host_namespaces_and_a_shared_process_namespace() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    let p = ok(&pod(
        "{hostNetwork: true, hostPID: true, hostIPC: true, dnsPolicy: ClusterFirstWithHostNet, containers: [{name: a, image: b, ports: [{containerPort: 9100}, {containerPort: 9101, hostPort: 9101}]}]}",
    ));
    let spec = PodBody::from_object(&p.objects[0]).unwrap().spec;
    assert!(spec.host_network && spec.host_pid && spec.host_ipc);
    assert!(!spec.share_process_namespace);
    let p = ok(&pod(
        "{shareProcessNamespace: true, containers: [{name: a, image: b}, {name: c, image: b}]}",
    ));
    let spec = PodBody::from_object(&p.objects[0]).unwrap().spec;
    assert!(spec.share_process_namespace && !spec.host_network);
    // Stored with Kubernetes' names, absent when false.
    let stored = serde_json::to_value(&spec).unwrap();
    assert_eq!(stored["shareProcessNamespace"], true);
    assert!(stored.get("hostPID").is_none(), "{stored}");
    // In a template too.
    ok(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {hostNetwork: true, hostPID: true, containers: [{name: a, image: b}]}\n",
    );
    let cases = [
        (
            "{hostPID: true, shareProcessNamespace: true, containers: [{name: a, image: b}]}",
            "spec.shareProcessNamespace: cannot be true when hostPID is true",
        ),
        (
            "{hostNetwork: true, containers: [{name: a, image: b, ports: [{containerPort: 80, hostPort: 8080}]}]}",
            "spec.containers[0].ports[0].hostPort: 8080 must match containerPort (80) when hostNetwork is true",
        ),
        (
            "{hostNetwork: true, initContainers: [{name: i, image: b, ports: [{containerPort: 80, hostPort: 81}]}], containers: [{name: a, image: b}]}",
            "spec.initContainers[0].ports[0].hostPort",
        ),
        (
            "{hostNetwork: yes-please, containers: [{name: a, image: b}]}",
            "spec.hostNetwork",
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod(spec));
        assert!(e.contains(want), "{spec}: {e}");
    }
}

#[test]
fn image_pull_secrets_name_secrets() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    let p = ok(&pod(
        "{imagePullSecrets: [{name: regcred}, {name: other.cred}], containers: [{name: a, image: ghcr.io/o/a}]}",
    ));
    let spec = PodBody::from_object(&p.objects[0]).unwrap().spec;
    let names: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["regcred", "other.cred"]);
    let e = err(&pod(
        "{imagePullSecrets: [{name: ok}, {name: Bad_Name}], containers: [{name: a, image: b}]}",
    ));
    assert!(e.contains("spec.imagePullSecrets[1].name"), "{e}");
}
