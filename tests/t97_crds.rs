//! Custom resources with the real kubectl through a follower of a
//! three-node cluster: a CustomResourceDefinition applied and established,
//! discovery listing it, custom objects applied, defaulted, pruned and
//! validated by the schema, read by plural, short name and KIND.GROUP,
//! the status subresource, a watch, label selectors, deletes, and the
//! definition's deletion taking its objects on every node. Without
//! kubectl the test fails (CI installs it in .ci/setup).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::kubectl::*;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use shoal::resource::Kind;
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN: &str = "t97-admin-token";

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: websites.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: websites
    singular: website
    kind: Website
    shortNames: [ws]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Domain
      type: string
      jsonPath: .spec.domain
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [domain]
            properties:
              domain: {type: string, pattern: '^[a-z0-9.-]+$'}
              replicas: {type: integer, minimum: 1, maximum: 5, default: 2}
              tier: {type: string, enum: [free, paid], default: free}
          status:
            type: object
            properties:
              ready: {type: boolean}
              replicas: {type: integer}
              selector: {type: string}
"#;

fn website(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Website\nmetadata:\n  name: {name}\n  labels:\n    \
         app: {name}\nspec:\n{spec}"
    )
}

/// `kubectl patch ws NAME --type merge -p PATCH`, on the status
/// subresource when `status`.
async fn merge_patch(k: &Kubectl, name: &str, status: bool, patch: &str) {
    let mut args = vec!["patch", "ws", name, "--type", "merge", "-p", patch];
    if status {
        args.extend(["--subresource", "status"]);
    }
    k.ok(&args).await;
}

async fn wait_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    want: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            let hit = l.contains(want);
            seen.push(l);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        found,
        "the watch did not print {want:?} in 30 s; it printed {seen:?}"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_resources_with_kubectl_through_a_follower() {
    let bin = kubectl_binary();
    let (nodes, _dirs, ca) = start_tls_cluster("crd", ADMIN).await;
    let addr = nodes[follower(&nodes)].api_addr.to_string();
    let admin = tls_api(&addr, ADMIN, &ca);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let config = dir.path().join("kubeconfig");
    // Definitions are the cluster's: the admin token, as Kubernetes' edit role cannot.
    shoal_kubeconfig(&addr, ADMIN, &ca_file, &config).await;
    let k = Kubectl {
        bin,
        config,
        home: dir.path().to_path_buf(),
    };
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };

    // The definition, established at once.
    let crd = file("crd.yaml", CRD);
    let out = k.ok(&["apply", "-f", &crd]).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/websites.example.com created"),
        "{out}"
    );
    let v: Value = serde_json::from_str(
        &k.ok(&["get", "crd", "websites.example.com", "-o", "json"])
            .await,
    )
    .expect("JSON");
    let established = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{v:#}");
    assert_eq!(v["spec"]["names"]["listKind"], "WebsiteList", "defaulted");
    // A second definition may not take its names.
    let clash = CRD
        .replace("websites.example.com", "sites.example.com")
        .replace("plural: websites", "plural: sites")
        .replace("singular: website", "singular: site")
        .replace("kind: Website", "kind: Site");
    let err = k.fails(&["apply", "-f", &file("clash.yaml", &clash)]).await;
    assert!(
        err.contains("\"ws\"") && err.contains("websites.example.com"),
        "{err}"
    );
    // Nor may one claim a group shoal serves.
    let builtin = CRD
        .replace("websites.example.com", "websites.apps")
        .replace("group: example.com", "group: apps");
    let err = k
        .fails(&["apply", "-f", &file("builtin.yaml", &builtin)])
        .await;
    assert!(err.contains("spec.group"), "{err}");

    // Discovery lists it.
    let res = k.ok(&["api-resources"]).await;
    let line = res
        .lines()
        .find(|l| l.starts_with("websites "))
        .unwrap_or_else(|| panic!("no websites in:\n{res}"));
    for want in ["ws", "example.com/v1", "true", "Website"] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }

    // An object: defaulted, its unknown field pruned.
    let home = file(
        "home.yaml",
        &website("home", "  domain: example.org\n  colour: red\n"),
    );
    let out = k.ok(&["apply", "-f", &home]).await;
    assert!(out.contains("website.example.com/home created"), "{out}");
    // As with Kubernetes, the pruned field makes every apply of this
    // file a (no-op) change; an apply without it is unchanged (below).
    let out = k.ok(&["apply", "-f", &home]).await;
    assert!(out.contains("website.example.com/home configured"), "{out}");
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "ws", "home", "-o", "json"]).await).expect("JSON");
    assert_eq!(v["apiVersion"], "example.com/v1");
    assert_eq!(v["kind"], "Website");
    assert_eq!(v["spec"]["domain"], "example.org");
    assert_eq!(v["spec"]["replicas"], 2, "default applied: {v:#}");
    assert_eq!(v["spec"]["tier"], "free", "default applied: {v:#}");
    assert!(v["spec"].get("colour").is_none(), "pruned: {v:#}");
    assert!(v["metadata"]["uid"].is_string() && v["metadata"]["resourceVersion"].is_string());
    // The printer columns, by plural, short name and KIND.GROUP.
    let out = k.ok(&["get", "websites"]).await;
    let head = out.lines().next().unwrap_or_default();
    assert!(
        head.contains("NAME") && head.contains("DOMAIN") && head.contains("REPLICAS"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("home "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("example.org") && row.contains('2'), "{row}");
    assert_eq!(
        k.ok(&["get", "ws", "-o", "name"]).await.trim(),
        "website.example.com/home"
    );
    assert_eq!(
        k.ok(&["get", "website.example.com", "home", "-o", "name"])
            .await
            .trim(),
        "website.example.com/home"
    );

    // `shoal get` resolves custom kinds through the stored definitions.
    let shoal_run = |args: &[&str]| {
        let (addr, ca_file) = (addr.clone(), ca_file.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
                .args(["--addr", &addr, "--token", ADMIN, "--ca-file"])
                .arg(&ca_file)
                .args(&args)
                .output()
                .await
                .expect("shoal runs");
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (o.status.success(), text(&o.stdout), text(&o.stderr), args)
        }
    };
    let shoal = |args: &[&str]| {
        let run = shoal_run(args);
        async move {
            let (ok, out, err, args) = run.await;
            assert!(ok, "shoal {args:?}: {err}");
            out
        }
    };
    let shoal_fails = |args: &[&str]| {
        let run = shoal_run(args);
        async move {
            let (ok, _, err, args) = run.await;
            assert!(!ok, "shoal {args:?} should fail");
            err
        }
    };
    let out = shoal(&["get", "ws"]).await;
    assert!(out.starts_with("NAME") && out.contains("DOMAIN"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("home ") && l.contains("example.org")),
        "{out}"
    );
    let out = shoal(&["get", "website.example.com", "home", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["spec"]["replicas"], 2, "{v:#}");
    let out = shoal(&["get", "websites", "-A"]).await;
    assert!(
        out.starts_with("NAMESPACE") && out.contains("default"),
        "{out}"
    );

    // `shoal apply`, `describe` and `delete` of custom objects, next to
    // built-in ones in one file: checked by the schema, written in one
    // command (all or nothing), and printed as kubectl prints them.
    let page_conf =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-conf\ndata:\n  a: b\n";
    let page = file(
        "page.yaml",
        &format!(
            "{page_conf}---\n{}",
            website("page", "  domain: page.example.org\n")
        ),
    );
    let out = shoal(&["apply", "-f", &page]).await;
    assert!(
        out.contains("configmap/page-conf created")
            && out.contains("website.example.com/page created"),
        "{out}"
    );
    let out = shoal(&["apply", "-f", &page]).await;
    assert!(out.contains("website.example.com/page unchanged"), "{out}");
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "ws", "page", "-o", "json"]).await).expect("JSON");
    assert_eq!(
        v["spec"]["replicas"], 2,
        "defaulted through /v1/apply: {v:#}"
    );
    let worse = file(
        "worse.yaml",
        &format!(
            "{}---\n{}",
            page_conf.replace("page-conf", "worse-conf"),
            website("worse", "  domain: worse.example.org\n  replicas: 9\n")
        ),
    );
    let err = shoal_fails(&["apply", "-f", &worse]).await;
    assert!(
        err.contains("document 2 (Website worse)") && err.contains("spec.replicas"),
        "{err}"
    );
    assert!(
        k.fails(&["get", "cm", "worse-conf"])
            .await
            .contains("NotFound"),
        "nothing of a refused file is written"
    );
    let gadget = file(
        "gadget.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n",
    );
    let err = shoal_fails(&["apply", "-f", &gadget]).await;
    assert!(
        err.contains("no matches for kind \"Gadget\" in version \"example.com/v1\""),
        "{err}"
    );
    let out = shoal(&["describe", "ws", "page"]).await;
    for want in [
        "Kind:              Website",
        "Namespace:         default",
        "domain: page.example.org",
        "replicas: 2",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    // A finalizer holds a delete through `shoal delete` too.
    merge_patch(
        &k,
        "page",
        false,
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    )
    .await;
    let out = shoal(&["delete", "ws", "page"]).await;
    assert!(out.contains("website.example.com/page deleted"), "{out}");
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "ws", "page", "-o", "json"]).await).expect("JSON");
    assert!(
        v["metadata"]["deletionTimestamp"].is_string(),
        "only marked: {v:#}"
    );
    merge_patch(&k, "page", false, r#"{"metadata":{"finalizers":null}}"#).await;
    eventually(
        Duration::from_secs(20),
        "the released Website goes",
        || async { !k.run(&["get", "ws", "page"]).await.ok },
    )
    .await;
    shoal(&["apply", "-f", &page]).await;
    let out = shoal(&["delete", "-f", &page]).await;
    assert!(
        out.contains("configmap/page-conf deleted")
            && out.contains("website.example.com/page deleted"),
        "{out}"
    );
    assert!(k.fails(&["get", "ws", "page"]).await.contains("NotFound"));

    let bad = file(
        "bad.yaml",
        &website(
            "bad",
            "  domain: Not A Domain\n  replicas: 9\n  tier: gold\n",
        ),
    );
    let err = k.fails(&["apply", "-f", &bad]).await;
    for want in [
        "spec.domain",
        "should match",
        "spec.replicas",
        "less than or equal to 5",
        "spec.tier: Unsupported value: \"gold\"",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    let err = k
        .fails(&[
            "apply",
            "-f",
            &file("none.yaml", &website("none", "  tier: paid\n")),
        ])
        .await;
    assert!(err.contains("spec.domain: Required value"), "{err}");
    assert!(k.fails(&["get", "ws", "bad"]).await.contains("NotFound"));

    // The status subresource: spec writes leave status alone and the
    // reverse.
    merge_patch(
        &k,
        "home",
        true,
        r#"{"status":{"ready":true},"spec":{"replicas":4}}"#,
    )
    .await;
    merge_patch(
        &k,
        "home",
        false,
        r#"{"spec":{"replicas":3},"status":{"ready":false}}"#,
    )
    .await;
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "ws", "home", "-o", "json"]).await).expect("JSON");
    assert_eq!(v["status"]["ready"], true, "{v:#}");
    assert_eq!(v["spec"]["replicas"], 3, "{v:#}");
    // The scale subresource: kubectl scale writes .spec.replicas, the
    // Scale shows the status count and selector, the schema still holds.
    merge_patch(
        &k,
        "home",
        true,
        r#"{"status":{"replicas":3,"selector":"app=home"}}"#,
    )
    .await;
    let out = k.ok(&["scale", "ws", "home", "--replicas=4"]).await;
    assert!(out.contains("website.example.com/home scaled"), "{out}");
    let v: Value = serde_json::from_str(
        &k.ok(&[
            "get",
            "--raw",
            "/apis/example.com/v1/namespaces/default/websites/home/scale",
        ])
        .await,
    )
    .expect("JSON");
    assert_eq!(v["kind"], "Scale", "{v:#}");
    assert_eq!(v["spec"]["replicas"], 4, "{v:#}");
    assert_eq!(v["status"]["replicas"], 3, "{v:#}");
    assert_eq!(v["status"]["selector"], "app=home", "{v:#}");
    let err = k.fails(&["scale", "ws", "home", "--replicas=9"]).await;
    assert!(err.contains("spec.replicas"), "{err}");
    // Guarded by the current count, as kubectl's --current-replicas.
    let err = k
        .fails(&[
            "scale",
            "ws",
            "home",
            "--current-replicas=2",
            "--replicas=1",
        ])
        .await;
    assert!(!err.is_empty());
    k.ok(&["scale", "ws", "home", "--replicas=3"]).await;
    // A HorizontalPodAutoscaler scales a custom kind through the same
    // subresource: below its minimum, it raises spec.replicas.
    let hpa = file(
        "hpa.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: home\n\
         spec:\n  scaleTargetRef: {apiVersion: example.com/v1, kind: Website, name: home}\n  \
         minReplicas: 4\n  maxReplicas: 5\n  metrics:\n  - type: Resource\n    resource: \
         {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n",
    );
    k.ok(&["apply", "-f", &hpa]).await;
    eventually(
        Duration::from_secs(30),
        "the HPA raises the Website to its minimum",
        || async {
            k.ok(&["get", "ws", "home", "-o", "jsonpath={.spec.replicas}"])
                .await
                .trim()
                == "4"
        },
    )
    .await;
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "hpa", "home", "-o", "json"]).await).expect("JSON");
    assert_eq!(v["status"]["desiredReplicas"], 4, "{v:#}");
    k.ok(&["delete", "hpa", "home"]).await;
    k.ok(&["scale", "ws", "home", "--replicas=3"]).await;
    let res = k
        .ok(&["api-resources", "--api-group=example.com", "-o", "wide"])
        .await;
    assert!(res.contains("websites"), "{res}");

    // A JSON patch, checked by the schema like any write.
    let err = k
        .fails(&[
            "patch",
            "ws",
            "home",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":0}]"#,
        ])
        .await;
    assert!(
        err.contains("spec.replicas") && err.contains("greater than or equal to 1"),
        "{err}"
    );
    // Strategic merge is refused, as Kubernetes does for custom kinds.
    let err = k
        .fails(&["patch", "ws", "home", "-p", r#"{"spec":{"replicas":1}}"#])
        .await;
    assert!(err.contains("not supported for custom resources"), "{err}");

    // A watch sees a new object.
    let mut watch = k
        .command(&["get", "ws", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    wait_line(&mut lines, "website.example.com/home").await;
    let blog = file(
        "blog.yaml",
        &website("blog", "  domain: blog.example.org\n"),
    );
    k.ok(&["apply", "-f", &blog]).await;
    wait_line(&mut lines, "website.example.com/blog").await;
    let _ = watch.kill().await;
    let out = k.ok(&["apply", "-f", &blog]).await;
    assert!(out.contains("website.example.com/blog unchanged"), "{out}");

    // Label selectors.
    assert_eq!(
        k.ok(&["get", "ws", "-l", "app=blog", "-o", "name"])
            .await
            .trim(),
        "website.example.com/blog"
    );

    // A view token reads custom objects but may not write them.
    let viewer = make_token(&admin, "viewer", "view").await;
    let view = tls_api(&addr, &viewer, &ca);
    let (code, v) = view
        .get("/apis/example.com/v1/namespaces/default/websites")
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["kind"], "WebsiteList");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2), "{v}");
    let body = json!({"apiVersion": "example.com/v1", "kind": "Website",
        "metadata": {"name": "x"}, "spec": {"domain": "x.org"}});
    let (code, v) = view
        .send(
            Method::POST,
            "/apis/example.com/v1/namespaces/default/websites",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(code, 403, "{v}");

    // Deleting a namespace deletes its custom objects, and waits for them.
    let team = file(
        "team.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\n{}",
            website("shop", "  domain: shop.example.org\n")
                .replace("metadata:\n", "metadata:\n  namespace: team\n")
        ),
    );
    let out = k.ok(&["apply", "-f", &team]).await;
    assert!(out.contains("website.example.com/shop created"), "{out}");
    assert_eq!(
        k.ok(&["get", "ws", "-n", "team", "-o", "name"])
            .await
            .trim(),
        "website.example.com/shop"
    );
    let out = k
        .ok(&["delete", "namespace", "team", "--timeout=30s"])
        .await;
    assert!(out.contains("deleted"), "{out}");
    let o = k.run(&["get", "ws", "-A", "-o", "name"]).await;
    assert!(
        o.ok && o.stdout.lines().collect::<Vec<_>>()
            == ["website.example.com/blog", "website.example.com/home"],
        "{}{}",
        o.stdout,
        o.stderr
    );

    // A ConfigMap owned by a Website: kept while it lives (the collector
    // counts custom objects among the owners), collected once it is gone.
    let uid = k
        .ok(&["get", "ws", "blog", "-o", "jsonpath={.metadata.uid}"])
        .await;
    assert!(!uid.is_empty());
    let child = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: blog-config\n  ownerReferences:\n  \
         - apiVersion: example.com/v1\n    kind: Website\n    name: blog\n    uid: {uid}\n    \
         controller: true\ndata:\n  a: b\n"
    );
    k.ok(&["apply", "-f", &file("child.yaml", &child)]).await;
    // Longer than a walk of the collector (every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    k.ok(&["get", "cm", "blog-config"]).await;

    // Delete an object: its child goes too.
    let out = k.ok(&["delete", "ws", "blog"]).await;
    assert!(
        out.contains("website.example.com \"blog\" deleted"),
        "{out}"
    );
    eventually(
        Duration::from_secs(20),
        "the Website's ConfigMap collected",
        || {
            let api = admin.clone();
            async move {
                api.get("/v1/namespaces/default/configmaps/blog-config")
                    .await
                    .0
                    == 404
            }
        },
    )
    .await;
    assert_eq!(
        k.ok(&["get", "ws", "-o", "name"]).await.trim(),
        "website.example.com/home"
    );

    // A finalizer on a custom object holds its delete until its operator
    // lets go, as kube-rs' finalizer helper expects.
    merge_patch(
        &k,
        "home",
        false,
        r#"{"metadata":{"finalizers":["example.com/cleanup"]}}"#,
    )
    .await;
    k.ok(&["delete", "ws", "home", "--wait=false"]).await;
    // Longer than a walk of the collector (every 2 s): still there, marked.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let marked = k
        .ok(&[
            "get",
            "ws",
            "home",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!marked.trim().is_empty(), "marked for deletion: {marked:?}");
    merge_patch(&k, "home", false, r#"{"metadata":{"finalizers":null}}"#).await;
    eventually(
        Duration::from_secs(20),
        "the released Website deleted",
        || {
            let k = &k;
            async move { k.ok(&["get", "ws", "-o", "name"]).await.trim().is_empty() }
        },
    )
    .await;

    // A cluster-scoped kind, its definition applied and deleted with
    // `shoal apply/delete -f` (the /v1 paths).
    let backups = CRD
        .replace("websites.example.com", "backups.example.com")
        .replace("scope: Namespaced", "scope: Cluster")
        .replace("plural: websites", "plural: backups")
        .replace("singular: website", "singular: backup")
        .replace("kind: Website", "kind: Backup")
        .replace("shortNames: [ws]", "shortNames: [bk]");
    let backups_file = file("backups.yaml", &backups);
    let out = shoal(&["apply", "-f", &backups_file]).await;
    assert!(out.contains("backups.example.com created"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: Value = serde_json::from_str(
        &k.ok(&["get", "crd", "backups.example.com", "-o", "json"])
            .await,
    )
    .expect("JSON");
    assert_eq!(v["status"]["acceptedNames"]["kind"], "Backup", "{v:#}");
    let nightly = file(
        "nightly.yaml",
        "apiVersion: example.com/v1\nkind: Backup\nmetadata:\n  name: nightly\nspec:\n  domain: db\n",
    );
    let out = k.ok(&["apply", "-f", &nightly]).await;
    assert!(out.contains("backup.example.com/nightly created"), "{out}");
    let v: Value =
        serde_json::from_str(&k.ok(&["get", "bk", "nightly", "-o", "json"]).await).expect("JSON");
    assert!(
        v["metadata"].get("namespace").is_none(),
        "cluster-scoped: {v:#}"
    );
    let (code, _) = admin
        .get("/apis/example.com/v1/namespaces/default/backups/nightly")
        .await;
    assert_eq!(code, 404, "no namespace in a cluster-scoped kind's path");
    let out = shoal(&["delete", "-f", &backups_file]).await;
    assert!(out.contains("deleted"), "{out}");
    eventually(
        Duration::from_secs(20),
        "the Backups gone with their definition",
        || {
            let store = nodes[0].store.clone();
            async move {
                store
                    .list(Kind::CustomObject, None)
                    .is_ok_and(|(items, _)| items.iter().all(|o| o.kind != "Backup"))
            }
        },
    )
    .await;

    // Deleting the definition deletes its objects, on every node.
    let out = k.ok(&["delete", "crd", "websites.example.com"]).await;
    assert!(out.contains("deleted"), "{out}");
    eventually(
        Duration::from_secs(20),
        "no custom objects on any node",
        || {
            let stores: Vec<_> = nodes.iter().map(|n| n.store.clone()).collect();
            async move {
                stores.iter().all(|s| {
                    s.list(Kind::CustomObject, None)
                        .is_ok_and(|(items, _)| items.is_empty())
                })
            }
        },
    )
    .await;
    let (code, v) = admin
        .get("/apis/example.com/v1/namespaces/default/websites")
        .await;
    assert_eq!(code, 404, "{v}");
    let res = k.ok(&["api-resources"]).await;
    assert!(!res.lines().any(|l| l.starts_with("websites ")), "{res}");

    for n in nodes {
        n.shutdown().await;
    }
}
