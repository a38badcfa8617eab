use super::*;
use crate::resource::types::Body;

mod batch;
mod custom;
mod daemonset;
mod disruption;
mod ingress;
mod jobpolicy;
mod limits;
mod meta;
mod placement;
mod pod_fields;
mod priority;
mod problems;
mod rbac;
mod resources;
mod security;
mod serviceaccount;
mod statefulset;
mod stdin;

const CRONJOB: &str = include_str!("../../tests/fixtures/k8s-examples/cronjob.yaml");
const EXEC_LIVENESS: &str = include_str!("../../tests/fixtures/k8s-examples/exec-liveness.yaml");
const GUESTBOOK_DEPLOYMENT: &str =
    include_str!("../../tests/fixtures/k8s-examples/guestbook-frontend-deployment.yaml");
const GUESTBOOK_SERVICE: &str =
    include_str!("../../tests/fixtures/k8s-examples/guestbook-frontend-service.yaml");
const HPA: &str = include_str!("../../tests/fixtures/k8s-examples/hpa-php-apache.yaml");
const HTTP_LIVENESS: &str = include_str!("../../tests/fixtures/k8s-examples/http-liveness.yaml");
const JOB: &str = include_str!("../../tests/fixtures/k8s-examples/job.yaml");
const NGINX: &str = include_str!("../../tests/fixtures/k8s-examples/nginx-deployment.yaml");
const PHP_APACHE: &str = include_str!("../../tests/fixtures/k8s-examples/php-apache.yaml");
const TCP_LIVENESS: &str =
    include_str!("../../tests/fixtures/k8s-examples/tcp-liveness-readiness.yaml");

fn err(text: &str) -> String {
    match parse_manifests(text) {
        Ok(p) => panic!("expected an error, got {:?}", p.objects),
        Err(e) => e.to_string(),
    }
}

fn ok(text: &str) -> Parsed {
    match parse_manifests(text) {
        Ok(p) => p,
        Err(e) => panic!("expected success, got: {e}"),
    }
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
";

/// DEPLOYMENT with `from` replaced by `to` (which must occur).
fn deployment_with(from: &str, to: &str) -> String {
    assert!(DEPLOYMENT.contains(from), "{from:?} not in the template");
    DEPLOYMENT.replacen(from, to, 1)
}

#[test]
fn accepts_the_kubernetes_examples() {
    for (name, text, kinds) in [
        ("exec-liveness", EXEC_LIVENESS, &["Pod"][..]),
        (
            "guestbook-deployment",
            GUESTBOOK_DEPLOYMENT,
            &["Deployment"],
        ),
        ("guestbook-service", GUESTBOOK_SERVICE, &["Service"]),
        ("http-liveness", HTTP_LIVENESS, &["Pod"]),
        ("job", JOB, &["Job"]),
        ("nginx", NGINX, &["Deployment"]),
        ("php-apache", PHP_APACHE, &["Deployment", "Service"]),
        ("tcp-liveness", TCP_LIVENESS, &["Pod"]),
    ] {
        let parsed = parse_manifests(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<&str> = parsed.objects.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(got, kinds, "{name}");
        assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
        for o in &parsed.objects {
            assert_eq!(o.metadata.namespace.as_deref(), Some("default"), "{name}");
        }
    }
}

#[test]
fn example_contents_survive() {
    let p = ok(HTTP_LIVENESS);
    let pod = PodBody::from_object(&p.objects[0]).unwrap();
    let probe = pod.spec.containers[0].liveness_probe.as_ref().unwrap();
    let http = probe.http_get.as_ref().unwrap();
    assert_eq!(http.port, IntOrString::Int(8080));
    assert_eq!(http.http_headers[0].value, "Awesome");
    assert_eq!(probe.period_seconds, Some(3));

    let p = ok(GUESTBOOK_DEPLOYMENT);
    let d = DeploymentBody::from_object(&p.objects[0]).unwrap();
    let res = d.spec.template.spec.containers[0]
        .resources
        .as_ref()
        .unwrap();
    assert_eq!(res.cpu_request_millis(), Some(100));
    assert_eq!(res.memory_request_bytes(), Some(100 << 20));

    let p = ok(JOB);
    let j = JobBody::from_object(&p.objects[0]).unwrap();
    assert_eq!(j.spec.backoff_limit, Some(4));
    assert_eq!(
        j.spec.template.spec.restart_policy,
        Some(RestartPolicy::Never)
    );
}

#[test]
fn kubernetes_hpa_example_applies() {
    let p = parse_manifests(HPA).expect("the php-apache HPA is supported");
    assert_eq!(p.objects[0].kind(), Some(Kind::HorizontalPodAutoscaler));
}

#[test]
fn unknown_field_names_its_path() {
    let e = err(&deployment_with("image: busybox", "imagee: busybox"));
    assert_eq!(
        e,
        "document 1 (Deployment web): spec.template.spec.containers[0].imagee: unknown field (did you mean `image`?)"
    );
    let e = err(&deployment_with(
        "replicas: 2",
        "replicas: 2\n  colour: blue",
    ));
    assert_eq!(e, "document 1 (Deployment web): spec.colour: unknown field");
    let e = err(&deployment_with(
        "name: web\nspec",
        "name: web\n  nmespace: x\nspec",
    ));
    assert!(
        e.starts_with("document 1 (Deployment web): metadata.nmespace: unknown field"),
        "{e}"
    );
    let e = err(&deployment_with(
        "kind: Deployment",
        "kind: Deployment\nspecs: {}",
    ));
    assert!(e.contains("): specs: unknown field"), "{e}");
}

#[test]
fn kubernetes_fields_outside_the_subset_are_named() {
    let e = err(&deployment_with(
        "    spec:\n",
        "    spec:\n      affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone, namespaceSelector: {matchLabels: {team: a}}}]}}\n",
    ));
    assert!(
        e.starts_with(
            "document 1 (Deployment web): spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector: only the empty selector"
        ),
        "{e}"
    );
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        securityContext: {runAsUser: 1, seLinuxOptions: {level: s0}}",
    ));
    assert!(
        e.ends_with(
            "spec.template.spec.containers[0].securityContext.seLinuxOptions: not honoured by shoal: \
             no AppArmor, SELinux or Windows options (a pod that asks for a confinement must not run without it)"
        ),
        "{e}"
    );
    let e = err(&deployment_with(
        "    spec:\n",
        "    spec:\n      volumes: [{name: data, nfs: {server: s, path: /}}]\n",
    ));
    assert!(
        e.ends_with("spec.template.spec.volumes[0].nfs: field not supported by shoal"),
        "{e}"
    );
    let e = err(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], sessionAffinity: Sticky}\n",
    );
    assert!(
        e.ends_with(
            "spec.sessionAffinity: \"Sticky\": supported values are \"ClientIP\" and \"None\""
        ),
        "{e}"
    );
    let e = err(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}\n",
    );
    assert!(
        e.ends_with(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 must be in the range 1-86400"
        ),
        "{e}"
    );
    ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}}\n",
    );
    ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], sessionAffinity: None}\n",
    );
}

#[test]
fn mistyped_field_names_its_path() {
    let e = err(&deployment_with("replicas: 2", "replicas: three"));
    assert_eq!(
        e,
        "document 1 (Deployment web): spec.replicas: invalid type: string \"three\", expected u32"
    );
    let e = err(&deployment_with("labels: {app: web}", "labels: {app: 3}"));
    assert!(
        e.contains(
            "spec.template.metadata.labels.app: invalid type: integer `3`, expected a string"
        ),
        "{e}"
    );
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        ports: [{containerPort: 70000}]",
    ));
    assert!(
            e.contains("spec.template.spec.containers[0].ports[0].containerPort: invalid value: integer `70000`"),
            "{e}"
        );
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        imagePullPolicy: Sometimes",
    ));
    assert!(
        e.contains("containers[0].imagePullPolicy: unknown variant `Sometimes`"),
        "{e}"
    );
}

#[test]
fn missing_required_fields() {
    let e = err("kind: Pod\nmetadata: {name: p}\n");
    assert!(
        e.ends_with("(Pod p): apiVersion: missing: Pod needs apiVersion \"v1\""),
        "{e}"
    );
    let e = err("apiVersion: v1\nmetadata: {name: p}\n");
    assert!(e.starts_with("document 1: kind: missing"), "{e}");
    let e = err("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a, image: b}]}\n");
    assert!(
        e.starts_with("document 1 (Pod): metadata.name: missing"),
        "{e}"
    );
    let e = err(
        "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: a, image: b}]}\n",
    );
    assert!(
        e.starts_with("document 1 (Pod): metadata.name: missing"),
        "{e}"
    );
    let e =
        err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n");
    assert_eq!(
        e,
        "document 1 (Pod p): spec.containers[0].image: missing required field"
    );
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
    assert_eq!(e, "document 1 (Pod p): spec: missing required field");
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n");
    assert_eq!(
        e,
        "document 1 (Pod p): spec.containers: at least one container is required"
    );
    let e = err("- a\n- b\n");
    assert!(e.starts_with("document 1: expected a mapping"), "{e}");
}

#[test]
fn wrong_api_version_names_the_expected_one() {
    let e = err(&deployment_with("apps/v1", "extensions/v1beta1"));
    assert_eq!(
        e,
        "document 1 (Deployment web): apiVersion: \"extensions/v1beta1\" is not supported for Deployment: use \"apps/v1\""
    );
    let e = err(&JOB.replace("batch/v1", "batch/v1beta1"));
    assert!(e.contains("apiVersion: \"batch/v1beta1\""), "{e}");
    assert!(e.contains("use \"batch/v1\""), "{e}");
    let e = err(&deployment_with("kind: Deployment", "kind: deployment"));
    assert!(e.contains("(did you mean \"Deployment\"?)"), "{e}");
}

#[test]
fn names_are_dns_labels_or_subdomains() {
    let e = err(&deployment_with("name: web", "name: Web_1"));
    assert!(
        e.contains(
            "metadata.name: \"Web_1\" is not a valid Deployment name: it must be a DNS-1123 label"
        ),
        "{e}"
    );
    let long = "a".repeat(64);
    let e = err(&deployment_with("name: web", &format!("name: {long}")));
    assert!(e.contains("DNS-1123 label"), "{e}");
    let e =
        err("apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n");
    assert!(e.contains("DNS-1035 label"), "{e}");
    ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app.config}\ndata: {a: b}\n");
    let e = err(&deployment_with(
        "name: web",
        "name: web\n  namespace: Prod",
    ));
    assert!(
        e.contains("metadata.namespace: \"Prod\" is not valid"),
        "{e}"
    );
    let e = err(&deployment_with(
        "name: web",
        "name: web\n  labels: {\"bad key!\": x}",
    ));
    assert!(
        e.contains("metadata.labels[\"bad key!\"]: invalid key"),
        "{e}"
    );
    let e = err(&deployment_with(
        "name: web",
        "name: web\n  labels: {app: \"a b\"}",
    ));
    assert!(
        e.contains("metadata.labels.app: invalid label value"),
        "{e}"
    );
}

#[test]
fn flow_style() {
    let p = ok(
        r#"{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: prod}, data: {a: "1", b: two,},}"#,
    );
    assert_eq!(p.objects.len(), 1);
    assert_eq!(p.objects[0].metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(p.objects[0].body["data"]["b"], "two");
    assert_eq!(ok(EXEC_LIVENESS).objects[0].metadata.name, "liveness-exec");
}

#[test]
fn multiple_documents_skip_empty_ones() {
    let text = format!(
        "---\n# just a comment\n---\n{DEPLOYMENT}\n---\n---\n# nothing\n{GUESTBOOK_SERVICE}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: prod, namespace: ignored}}\n...\n"
    );
    let p = ok(&text);
    let keys: Vec<String> = p
        .objects
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "Deployment/default/web",
            "Service/default/frontend",
            "Namespace/prod"
        ]
    );
    assert_eq!(p.objects[2].metadata.namespace, None);
}

#[test]
fn a_bad_image_reference_is_refused_with_its_path() {
    let e = err(&deployment_with(
        "image: busybox",
        "image: ../../etc/passwd",
    ));
    assert!(
            e.starts_with(
                "document 1 (Deployment web): spec.template.spec.containers[0].image: \"../../etc/passwd\" is not a valid image reference"
            ),
            "{e}"
        );
}

#[test]
fn working_dirs_are_absolute() {
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        workingDir: ../../../etc",
    ));
    assert_eq!(
        e,
        "document 1 (Deployment web): spec.template.spec.containers[0].workingDir: \"../../../etc\" must be an absolute path without '..'"
    );
}

#[test]
fn replicas_past_int32_are_refused_with_their_path() {
    let e = err(&deployment_with("replicas: 2", "replicas: 2147483648"));
    assert_eq!(
        e,
        "document 1 (Deployment web): spec.replicas: 2147483648 is over 2147483647, the largest a Kubernetes int32 holds"
    );
    let e = err(&deployment_with("replicas: 2", "replicas: 4294967296"));
    assert!(e.contains("spec.replicas"), "{e}");
}

#[test]
fn invalid_second_document_fails_the_file() {
    let text = format!(
        "{NGINX}---\n{}",
        deployment_with("replicas: 2", "replicas: -1")
    );
    let e = err(&text);
    assert!(
        e.starts_with("document 2 (Deployment web): spec.replicas: invalid value"),
        "{e}"
    );
    let e = err(&format!("{NGINX}---\nkind: [unclosed\n"));
    assert!(e.starts_with("document 2: invalid YAML: "), "{e}");
    assert!(e.contains("line"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn duplicate_objects_and_empty_files() {
    let e = err(&format!("{NGINX}---\n{NGINX}"));
    assert_eq!(
        e,
        "document 2 (Deployment/default/nginx-deployment): the same object as document 1"
    );
    assert!(matches!(
        parse_manifests("---\n# nothing\n---\n"),
        Err(ManifestError::Empty)
    ));
    assert!(matches!(parse_manifests(""), Err(ManifestError::Empty)));
    let e = err("a: 1\na: 2\n");
    assert!(
        e.starts_with("document 1: invalid YAML: duplicate mapping key"),
        "{e}"
    );
}

#[test]
fn selector_must_match_template_labels() {
    let e = err(&deployment_with(
        "labels: {app: web}",
        "labels: {app: webb}",
    ));
    assert_eq!(
        e,
        "document 1 (Deployment web): spec.selector: does not match template labels {app=webb}"
    );
    ok(&deployment_with(
        "matchLabels: {app: web}",
        "matchExpressions: [{key: app, operator: In, values: [web, api]}]",
    ));
    let e = err(&deployment_with(
        "matchLabels: {app: web}",
        "matchExpressions: [{key: app, operator: Exists, values: [web]}]",
    ));
    assert!(
        e.contains("spec.selector.matchExpressions[0].values: must be empty"),
        "{e}"
    );
    let e = err(&deployment_with(
        "matchLabels: {app: web}",
        "matchLabels: {}",
    ));
    assert!(e.contains("spec.selector: empty"), "{e}");
}

#[test]
fn secrets_need_base64_and_fold_string_data() {
    let e =
        err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: not base64!}\n");
    assert!(
        e.starts_with("document 1 (Secret s): data.password: invalid base64"),
        "{e}"
    );
    let p = ok(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata:\n  a: |\n    Zm9v\n    YmFy\nstringData: {b: hi}\n",
    );
    let body = &p.objects[0].body;
    assert_eq!(body["data"]["a"], "Zm9vYmFy");
    assert_eq!(body["data"]["b"], "aGk=");
    assert!(body.get("stringData").is_none());
    assert_eq!(body["type"], "Opaque");
    let e =
        err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData: {x: \"@@@@\"}\n");
    assert!(e.contains("binaryData.x: invalid base64"), "{e}");
}

#[test]
fn quantities_are_checked() {
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        resources: {limits: {memory: 12MB}}",
    ));
    assert!(
        e.contains(
            "spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"12MB\""
        ),
        "{e}"
    );
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        resources: {requests: {cpu: 2}, limits: {cpu: 500m}}",
    ));
    assert!(
        e.contains("resources.requests.cpu: request 2 must not exceed the limit 500m"),
        "{e}"
    );
    let e = err(&deployment_with(
        "image: busybox",
        "image: busybox\n        resources: {limits: {nvidia.com/gpu: 0.5}}",
    ));
    assert!(
        e.contains("resources.limits[\"nvidia.com/gpu\"]: \"0.5\" must be a whole number"),
        "{e}"
    );
    let p = ok(&deployment_with(
        "image: busybox",
        "image: busybox\n        resources: {requests: {cpu: 0.5, memory: 1e3}}",
    ));
    let req =
        &p.objects[0].body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"];
    assert_eq!(req["cpu"], "0.5");
    assert_eq!(req["memory"], "1000");
}

#[test]
fn warnings_for_fields_not_acted_on() {
    let text = TCP_LIVENESS.replace(
        "image: registry.k8s.io/goproxy:0.1",
        "image: registry.k8s.io/goproxy:0.1\n    imagePullPolicy: IfNotPresent",
    );
    let p = ok(&text);
    assert_eq!(
        p.warnings,
        [
            "document 1 (Pod goproxy): spec.containers[0].imagePullPolicy: accepted but not acted on yet"
        ]
    );
    let p = ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer, clusterIP: 10.0.0.1, ports: [{port: 80, nodePort: 30080}]}\n",
    );
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("spec.type: LoadBalancer is served as NodePort"));
    let e = err(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0, ports: [{port: 80}]}\n",
    );
    assert!(e.contains("spec.clusterIP"), "{e}");
}

#[test]
fn pod_semantics() {
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n");
    let e = err(&pod(
        "{containers: [{name: a, image: b}, {name: a, image: c}]}",
    ));
    assert!(
        e.ends_with("spec.containers[1].name: duplicate container name \"a\""),
        "{e}"
    );
    let e = err(&pod(
        "{containers: [{name: a, image: b, ports: [{containerPort: 0}]}]}",
    ));
    assert!(
        e.ends_with("spec.containers[0].ports[0].containerPort: must be between 1 and 65535"),
        "{e}"
    );
    let e = err(&pod(
        "{restartPolicy: Sometimes, containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.contains("spec.restartPolicy: unknown variant `Sometimes`"),
        "{e}"
    );
    let e = err(&pod(
        "{containers: [{name: a, image: b, livenessProbe: {tcpSocket: {port: http}}}]}",
    ));
    assert!(
        e.ends_with(
            "livenessProbe.tcpSocket.port: no port named \"http\" in this container's ports"
        ),
        "{e}"
    );
    let e = err(&pod(
        "{containers: [{name: a, image: b, readinessProbe: {periodSeconds: 3}}]}",
    ));
    assert!(
        e.ends_with(
            "readinessProbe: no handler: set exactly one of httpGet, tcpSocket, exec or grpc"
        ),
        "{e}"
    );
    let e = err(&pod(
        "{containers: [{name: a, image: b, readinessProbe: {grpc: {port: 0}}}]}",
    ));
    assert!(
        e.ends_with("readinessProbe.grpc.port: 0 must be between 1 and 65535"),
        "{e}"
    );
    let e = err(&pod(
        "{containers: [{name: a, image: b, livenessProbe: {grpc: {port: 9000}, exec: {command: [x]}}}]}",
    ));
    assert!(e.ends_with("livenessProbe: more than one handler: set exactly one of httpGet, tcpSocket, exec or grpc"), "{e}");
    ok(&pod(
        "{containers: [{name: a, image: b, readinessProbe: {grpc: {port: 9000, service: db}}}]}",
    ));
    let e = err(&pod("{dnsPolicy: None, containers: [{name: a, image: b}]}"));
    assert!(
        e.ends_with("spec.dnsConfig.nameservers: at least one is needed when dnsPolicy is None"),
        "{e}"
    );
    let e = err(&pod(
        "{dnsConfig: {nameservers: [1.1.1.1, x]}, containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.ends_with("spec.dnsConfig.nameservers[1]: \"x\" is not an IP address"),
        "{e}"
    );
    let e = err(&pod(
        "{dnsConfig: {options: [{name: \"nd ots\"}]}, containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.ends_with("spec.dnsConfig.options[0].name: \"nd ots\" is not a resolv.conf option name"),
        "{e}"
    );
    let e = err(&pod(
        "{hostAliases: [{ip: 10.1.2.3, hostnames: [db, \"bad name\"]}], containers: [{name: a, image: b}]}",
    ));
    assert!(
        e.ends_with("spec.hostAliases[0].hostnames[1]: \"bad name\" is not a DNS name"),
        "{e}"
    );
    let e = err(&pod(
        "{dnsPolicy: Sometimes, containers: [{name: a, image: b}]}",
    ));
    assert!(e.contains("spec.dnsPolicy"), "{e}");
    ok(&pod(
        "{dnsPolicy: None, dnsConfig: {nameservers: [10.0.0.53], searches: [corp.example], options: [{name: ndots, value: \"2\"}, {name: edns0}]}, hostAliases: [{ip: 10.1.2.3, hostnames: [db.local]}], containers: [{name: a, image: b}]}",
    ));
    let e = err(&pod(
        "{containers: [{name: a, image: b, volumeMounts: [{name: data, mountPath: /data}]}]}",
    ));
    assert!(
        e.ends_with("volumeMounts[0].name: no volume named \"data\" in the pod's volumes"),
        "{e}"
    );
    let e = err(&pod(
        "{volumes: [{name: v}], containers: [{name: a, image: b}]}",
    ));
    assert!(e.contains("spec.volumes[0]: no volume source"), "{e}");
    let e = err(&pod(
        "{containers: [{name: a, image: b, env: [{name: X, value: z, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}",
    ));
    assert!(
        e.ends_with("env[0].valueFrom: may not be set together with value"),
        "{e}"
    );
    ok(&pod(
        "{containers: [{name: a, image: b, env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}]}]}",
    ));
    // Each bad downward API or volume field is named by its path.
    let cases = [
        (
            "{containers: [{name: a, image: b, env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]}]}",
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported field path",
        ),
        (
            "{containers: [{name: a, image: b, env: [{name: X, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}]}]}",
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: unsupported resource",
        ),
        (
            "{containers: [{name: a, image: b, env: [{name: X, valueFrom: {resourceFieldRef: {containerName: z, resource: limits.cpu}}}]}]}",
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: \"z\" is not this container",
        ),
        (
            "{volumes: [{name: d, downwardAPI: {items: [{path: x, resourceFieldRef: {resource: limits.cpu}}]}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: required in a volume",
        ),
        (
            "{volumes: [{name: d, downwardAPI: {items: [{path: ../x, fieldRef: {fieldPath: metadata.name}}]}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].downwardAPI.items[0].path:",
        ),
        (
            "{volumes: [{name: p, projected: {sources: [{configMap: {name: c}, secret: {name: s}}]}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].projected.sources[0]: set exactly one of configMap, secret or downwardAPI",
        ),
        (
            "{volumes: [{name: p, projected: {sources: [{serviceAccountToken: {path: t}}]}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].projected.sources[0].serviceAccountToken: field not supported by shoal",
        ),
        (
            "{volumes: [{name: p, projected: {sources: [{secret: {name: s, items: [{key: k, path: x, mode: 0777777}]}}]}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].projected.sources[0].secret.items[0].mode:",
        ),
        (
            "{volumes: [{name: h, hostPath: {path: /x, type: Dir}}], containers: [{name: a, image: b}]}",
            "spec.volumes[0].hostPath.type: unknown type",
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod(spec));
        assert!(e.contains(want), "{spec}: {e}");
    }
    let p = ok(&pod(
        "{volumes: [{name: cfg, configMap: {name: c, defaultMode: 0644}}, {name: d, emptyDir: {}}], containers: [{name: a, image: b, volumeMounts: [{name: cfg, mountPath: /etc/c}, {name: d, mountPath: /d}], livenessProbe: {httpGet: {port: http, path: /}}, ports: [{name: http, containerPort: 80}]}]}",
    ));
    assert_eq!(
        p.objects[0].body["spec"]["volumes"][0]["configMap"]["defaultMode"],
        420
    );
}

#[test]
fn workload_restart_policies() {
    let e = err(&deployment_with(
        "    spec:\n",
        "    spec:\n      restartPolicy: Never\n",
    ));
    assert!(
        e.ends_with(
            "spec.template.spec.restartPolicy: Never is not allowed in a Deployment: only Always"
        ),
        "{e}"
    );
    let e = err(&JOB.replace("      restartPolicy: Never\n", ""));
    assert!(e.ends_with("spec.template.spec.restartPolicy: missing: a Job's pod template needs restartPolicy OnFailure or Never"), "{e}");
    let e = err(&JOB.replace("restartPolicy: Never", "restartPolicy: Always"));
    assert!(e.contains("Always is not allowed in a Job"), "{e}");
}

#[test]
fn kubectl_generated_manifests_are_accepted() {
    // What `kubectl create deployment --dry-run=client -o yaml` prints.
    let text = "apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
";
    let p = ok(text);
    let o = &p.objects[0];
    assert_eq!(o.body["status"], serde_json::json!({}));
    assert_eq!(o.body["spec"]["strategy"], serde_json::json!({}));
    assert!(
        o.body["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
}

#[test]
fn round_trip() {
    let all = [
        EXEC_LIVENESS,
        GUESTBOOK_DEPLOYMENT,
        GUESTBOOK_SERVICE,
        HTTP_LIVENESS,
        JOB,
        NGINX,
        PHP_APACHE,
        TCP_LIVENESS,
    ]
    .join("\n---\n");
    let first = ok(&all);
    // Through YAML...
    let yaml: Vec<String> = first
        .objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).unwrap())
        .collect();
    let second = ok(&yaml.join("---\n"));
    assert_eq!(first.objects, second.objects);
    // ...and through JSON, as the API receives objects.
    for o in &first.objects {
        let json = serde_json::to_value(o).unwrap();
        let mut again: Object = serde_json::from_value(json.clone()).unwrap();
        assert!(validate_object(&mut again).unwrap().is_empty());
        assert_eq!(&again, o);
        let (from_json, _) = object_from_json(json).unwrap();
        assert_eq!(&from_json, o);
    }
}

#[test]
fn validate_object_normalises() {
    let mut pod: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "b", "ports": [{"containerPort": 80}]}]},
        "status": {"phase": "Running", "anything": [1, 2, {"goes": true}]},
    }))
    .unwrap();
    assert!(validate_object(&mut pod).unwrap().is_empty());
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(pod.body["status"]["anything"][2]["goes"], true);

    let mut ns: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "prod", "namespace": "default"},
    }))
    .unwrap();
    validate_object(&mut ns).unwrap();
    assert_eq!(ns.metadata.namespace, None);

    let mut bad = pod.clone();
    bad.body["spec"]["containers"][0]["imagee"] = serde_json::json!("x");
    bad.metadata.namespace = None;
    let before = bad.clone();
    let e = validate_object(&mut bad).unwrap_err().to_string();
    assert_eq!(
        e,
        "Pod p: spec.containers[0].imagee: unknown field (did you mean `image`?)"
    );
    assert_eq!(bad, before, "unchanged on error");

    let mut job: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1beta1", "kind": "Job", "metadata": {"name": "j"},
    }))
    .unwrap();
    let e = validate_object(&mut job).unwrap_err().to_string();
    assert!(e.starts_with("Job j: apiVersion: \"batch/v1beta1\""), "{e}");

    let e = object_from_json(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labelz": {}},
    }))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("ConfigMap c: metadata.labelz: unknown field (did you mean `labels`?)"),
        "{e}"
    );
}

#[test]
fn services() {
    let svc = |spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {spec}\n")
    };
    let e = err(&svc("{ports: [{port: 80}, {port: 81}]}"));
    assert!(
        e.ends_with(
            "spec.ports[0].name: missing: required when the service has more than one port"
        ),
        "{e}"
    );
    let e = err(&svc("{ports: [{port: 53, protocol: UDP}]}"));
    assert!(
        e.ends_with(
            "spec.ports[0].protocol: UDP is not supported: shoal's service proxy carries TCP only"
        ),
        "{e}"
    );
    let e = err(&svc("{ports: [{port: 80, nodePort: 30000}]}"));
    assert!(
        e.ends_with(
            "spec.ports[0].nodePort: may only be set when type is NodePort or LoadBalancer"
        ),
        "{e}"
    );
    let e = err(&svc("{type: ExternalName, ports: [{port: 80}]}"));
    assert!(
        e.contains("spec.type: unknown variant `ExternalName`"),
        "{e}"
    );
    let e = err(&svc("{ports: []}"));
    assert!(
        e.ends_with("spec.ports: at least one port is required"),
        "{e}"
    );
    let p = ok(&svc(
        "{ports: [{name: http, port: 80, targetPort: http}, {name: https, port: 443, targetPort: 8443}]}",
    ));
    assert_eq!(p.objects[0].body["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(p.objects[0].body["spec"]["ports"][1]["targetPort"], 8443);
}

const USER_RS: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: frontend\nspec:\n  selector:\n    matchLabels:\n      tier: frontend\n  template:\n    metadata:\n      labels:\n        tier: frontend\n    spec:\n      containers:\n      - name: php\n        image: shoal/busybox:latest\n";

#[test]
fn a_users_replicaset_is_accepted_with_one_replica_by_default() {
    let parsed = ok(USER_RS);
    let rs = &parsed.objects[0];
    assert_eq!(rs.kind(), Some(Kind::ReplicaSet));
    assert_eq!(rs.body["spec"]["replicas"], 1, "{:?}", rs.body);
    let three = USER_RS.replace("spec:\n  selector", "spec:\n  replicas: 3\n  selector");
    assert_eq!(ok(&three).objects[0].body["spec"]["replicas"], 3);
}

#[test]
fn a_users_replicaset_is_checked_like_a_deployment() {
    let e = err(&USER_RS.replace("tier: frontend\n  template", "tier: backend\n  template"));
    assert!(
        e.contains("spec.selector") && e.contains("does not match"),
        "{e}"
    );
    let e = err(&USER_RS.replace("    spec:\n", "    spec:\n      restartPolicy: Never\n"));
    assert!(e.contains("spec.template.spec.restartPolicy"), "{e}");
    assert!(e.contains("ReplicaSet"), "{e}");
    let long = "r".repeat(58);
    let e = err(&USER_RS.replace("name: frontend", &format!("name: {long}")));
    assert!(e.contains("metadata.name") && e.contains("57"), "{e}");
}

mod storage;
