//! Pod volumes against the real Docker engine on one node: every volume
//! type read and written inside containers, emptyDir shared by two
//! containers, readOnly enforced, Secret files on a tmpfs, live ConfigMap
//! updates within 2 s swapped atomically under a reader, a missing
//! ConfigMap holding the container back until it exists, and the process
//! runtime refusing volumes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::images::{ensure_busybox_image, require_docker};
use common::*;
use serde_json::Value;
use shoal::node::Node;
use shoal::runtime::{LABEL_CONTAINER, LABEL_POD_UID};

struct Harness {
    node: Node,
    api: Api,
    image: String,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(test: &str, runtime: shoal::runtime::RuntimeKind) -> Harness {
        let image = match runtime {
            shoal::runtime::RuntimeKind::Docker => ensure_busybox_image(),
            shoal::runtime::RuntimeKind::Process => "host".into(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start_node(dir.path(), &format!("t45-{test}"), |c| {
            c.dev = true;
            c.runtime = Some(runtime);
        })
        .await;
        assert!(node.wait_ready(Duration::from_secs(20)).await, "node ready");
        let api = Api::new(node.api_addr);
        Harness {
            node,
            api,
            image,
            dir,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn apply(&self, manifest: &str) {
        let (code, v) = self.api.apply(manifest).await;
        assert_eq!(code, 200, "apply: {v}\n{manifest}");
    }

    async fn pod_json(&self, name: &str) -> Value {
        let (code, v) = self
            .api
            .get(&format!(
                "/v1/namespaces/default/pods/{name}?consistent=false"
            ))
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    async fn wait_pod(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.pod_json(name).await;
            if pred(&p) {
                return p;
            }
            if Instant::now() > deadline {
                let evs = self.events_of(name).await;
                panic!(
                    "pod {name}: timed out after {secs}s waiting for {what}; last: {p:#}\nevents: {evs:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn running(&self, name: &str) -> Value {
        self.wait_pod(name, 60, "every container running", |p| {
            p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|cs| {
                    !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
                })
        })
        .await
    }

    async fn containers(&self, pod: &Value) -> BTreeMap<String, String> {
        let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
        self.node
            .runtime
            .list(&BTreeMap::from([(LABEL_POD_UID.to_string(), uid)]))
            .await
            .expect("list containers")
            .into_iter()
            .map(|c| (c.labels[LABEL_CONTAINER].clone(), c.id))
            .collect()
    }

    /// Runs `script` in the container; its exit code and output.
    async fn sh(&self, id: &str, script: &str) -> (i64, String) {
        let cmd = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let out = self
            .node
            .runtime
            .exec(id, &cmd, Duration::from_secs(10))
            .await
            .expect("exec");
        (
            out.exit_code,
            String::from_utf8_lossy(&out.output).into_owned(),
        )
    }

    /// Like [`Harness::sh`], asserting it succeeded; its output.
    async fn ok(&self, id: &str, script: &str) -> String {
        let (code, out) = self.sh(id, script).await;
        assert_eq!(code, 0, "{script}: {out}");
        out
    }

    async fn events_of(&self, pod: &str) -> Vec<Value> {
        let (_, v) = self
            .api
            .get("/v1/namespaces/default/events?consistent=false")
            .await;
        v["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == pod)
            .collect()
    }

    async fn delete_pod(&self, name: &str) {
        let path = format!("/v1/namespaces/default/pods/{name}");
        let (code, v) = self.api.send(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(code, 200, "{v}");
    }

    async fn stop(self) {
        let rt = self.node.runtime.clone();
        let name = self.node.info.name.clone();
        self.node.shutdown().await;
        let mine = BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), name)]);
        for c in rt.list(&mine).await.unwrap_or_default() {
            let _ = rt.remove(&c.id).await;
        }
        // Whatever tmpfs a failed test left mounted under the data dir.
        let data = self.dir.path().to_string_lossy().into_owned();
        for m in host_mounts().into_iter().filter(|m| m.starts_with(&data)) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points of this (the host's) mount namespace.
fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(String::from))
        .collect()
}

fn is_tmpfs(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 2 && f[1] == p && f[2] == "tmpfs"
        })
}

fn secret(name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  {key}: {value:?}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_every_volume_type_mounts_as_declared() {
    require_docker();
    let h = Harness::start("types", shoal::runtime::RuntimeKind::Docker).await;
    let host = pod_writable_tempdir();
    let host_dir = host.path().join("made-by-agent");
    std::fs::write(host.path().join("existing.txt"), "from the host").expect("write");
    h.apply(&configmap("app", "v1")).await;
    h.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: files\ndata:\n  app.conf: \"port=80\"\n  other: \"o\"\n",
    )
    .await;
    h.apply(&secret("creds", "password", "s3cr3t-t45")).await;
    let node = &h.node.info.name;
    let image = &h.image;
    let host_dir_s = host_dir.display();
    let host_s = host.path().display();
    h.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: t45}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 1Mi}}}}
  - {{name: made, hostPath: {{path: "{host_dir_s}", type: DirectoryOrCreate}}}}
  - {{name: hostfile, hostPath: {{path: "{host_s}/existing.txt", type: File}}}}
  - {{name: conf, configMap: {{name: files, items: [{{key: app.conf, path: etc/app.conf, mode: 0600}}], defaultMode: 0640}}}}
  - {{name: whole, configMap: {{name: files}}}}
  - {{name: sec, secret: {{secretName: creds, defaultMode: 0400}}}}
  - {{name: maybe, configMap: {{name: absent, optional: true}}}}
  - name: proj
    projected:
      sources:
      - configMap: {{name: app, items: [{{key: value, path: app/value}}]}}
      - secret: {{name: creds}}
      - downwardAPI: {{items: [{{path: pod-name, fieldRef: {{fieldPath: metadata.name}}}}]}}
  - name: dw
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: node, fieldRef: {{fieldPath: spec.nodeName}}}}
      - {{path: mem-mi, resourceFieldRef: {{containerName: writer, resource: limits.memory, divisor: 1Mi}}}}
  containers:
  - name: writer
    image: {image}
    command: ["sh", "-c", "echo from-writer > /scratch/shared; sleep 3600"]
    resources: {{limits: {{memory: 64Mi}}}}
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_UID, valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}}}
    - {{name: APP, valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}}}
    - {{name: MEM, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: mem, mountPath: /mem}}
    - {{name: made, mountPath: /made}}
    - {{name: made, mountPath: /made-ro, readOnly: true}}
    - {{name: hostfile, mountPath: /etc/host.txt, readOnly: true}}
    - {{name: conf, mountPath: /conf}}
    - {{name: whole, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: sec, mountPath: /sec}}
    - {{name: maybe, mountPath: /maybe}}
    - {{name: proj, mountPath: /proj}}
    - {{name: dw, mountPath: /dw}}
  - name: reader
    image: {image}
    command: ["sh", "-c", "sleep 3600"]
    securityContext: {{runAsUser: 65534}}
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
"#
    ))
    .await;
    let pod = h.running("vols").await;
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let ids = h.containers(&pod).await;
    let (w, r) = (&ids["writer"], &ids["reader"]);

    // emptyDir: shared by both containers, writable by a non-root one.
    assert_eq!(h.ok(r, "cat /scratch/shared").await.trim(), "from-writer");
    h.ok(r, "echo from-reader > /scratch/back").await;
    assert_eq!(h.ok(w, "cat /scratch/back").await.trim(), "from-reader");
    let vol_dir = h.data_dir().join("volumes").join(&uid);
    assert_eq!(
        std::fs::read_to_string(vol_dir.join("scratch/shared"))
            .expect("on the node")
            .trim(),
        "from-writer"
    );

    // emptyDir medium Memory: a tmpfs of the size asked, which refuses more.
    assert!(
        is_tmpfs(&vol_dir.join("mem")),
        "the memory emptyDir is a tmpfs"
    );
    let mounts = h.ok(w, "cat /proc/mounts").await;
    let mem_line = mounts
        .lines()
        .find(|l| l.contains(" /mem "))
        .expect("/mem mounted");
    assert!(
        mem_line.contains("tmpfs") && mem_line.contains("size=1024k"),
        "{mem_line}"
    );
    let (code, out) = h
        .sh(w, "dd if=/dev/zero of=/mem/big bs=1024 count=2048")
        .await;
    assert_ne!(code, 0, "2 MiB must not fit in a 1 MiB tmpfs: {out}");

    // hostPath: DirectoryOrCreate made it; writes reach the host; readOnly holds.
    assert!(
        host_dir.is_dir(),
        "DirectoryOrCreate created {}",
        host_dir.display()
    );
    h.ok(w, "echo through > /made/file").await;
    assert_eq!(
        std::fs::read_to_string(host_dir.join("file"))
            .expect("host file")
            .trim(),
        "through"
    );
    assert_eq!(h.ok(w, "cat /made-ro/file").await.trim(), "through");
    let (code, out) = h.sh(w, "echo no > /made-ro/other").await;
    assert_ne!(code, 0, "a readOnly mount refuses writes: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(h.ok(w, "cat /etc/host.txt").await, "from the host");

    // configMap with items and modes; read-only inside.
    assert_eq!(h.ok(w, "cat /conf/etc/app.conf").await, "port=80");
    let ls = h.ok(w, "ls -lL /conf/etc/app.conf").await;
    assert!(ls.starts_with("-rw-------"), "item mode 0600: {ls}");
    assert!(
        h.ok(w, "ls /conf").await.split_whitespace().eq(["etc"]),
        "only the items"
    );
    let (code, _) = h.sh(w, "echo x > /conf/new").await;
    assert_ne!(code, 0, "configMap volumes are read-only");
    // subPath of a whole configMap.
    assert_eq!(h.ok(w, "cat /etc/app.conf").await, "port=80");
    // secret: mode, content, and on a tmpfs on the node.
    assert_eq!(h.ok(w, "cat /sec/password").await, "s3cr3t-t45");
    let ls = h.ok(w, "ls -lL /sec/password").await;
    assert!(ls.starts_with("-r--------"), "defaultMode 0400: {ls}");
    assert!(
        is_tmpfs(&vol_dir.join("sec")),
        "Secret files live on a tmpfs"
    );
    assert!(is_tmpfs(&vol_dir.join("proj")), "a projected Secret too");
    assert!(
        !is_tmpfs(&vol_dir.join("whole")),
        "ConfigMap files are on disk"
    );
    // optional and absent: an empty directory.
    assert_eq!(h.ok(w, "ls /maybe").await.trim(), "");
    // projected: all three sources in one directory.
    assert_eq!(h.ok(w, "cat /proj/app/value").await, "v1");
    assert_eq!(h.ok(w, "cat /proj/password").await, "s3cr3t-t45");
    assert_eq!(h.ok(w, "cat /proj/pod-name").await, "vols");
    // downwardAPI volume and env.
    assert_eq!(h.ok(w, "cat /dw/labels").await, "app=\"t45\"");
    assert_eq!(h.ok(w, "cat /dw/node").await, *node);
    assert_eq!(h.ok(w, "cat /dw/mem-mi").await, "64");
    let env = h.ok(w, "echo $POD_NAME $POD_UID $APP $MEM").await;
    assert_eq!(env.trim(), format!("vols {uid} t45 64"));

    // Removed with the pod: directory gone, tmpfs unmounted; host paths kept.
    h.delete_pod("vols").await;
    eventually(
        Duration::from_secs(30),
        "the pod's volumes are removed",
        || {
            let d = vol_dir.clone();
            async move { !d.exists() }
        },
    )
    .await;
    let dir_s = vol_dir.to_string_lossy().into_owned();
    assert!(
        !host_mounts().iter().any(|m| m.starts_with(&dir_s)),
        "no tmpfs left mounted under {dir_s}"
    );
    assert!(
        host_dir.join("file").exists(),
        "a hostPath outlives the pod"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_configmap_updates_reach_the_file_atomically_within_2s() {
    require_docker();
    let h = Harness::start("live", shoal::runtime::RuntimeKind::Docker).await;
    // 16 KiB per generation: large enough that a non-atomic rewrite would
    // be caught half-written by a reader spinning on it.
    let body = |g: u32| format!("g-{g:04}-{}-end", "x".repeat(16 * 1024));
    let cm = |g: u32| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live\ndata:\n  value: \"{}\"\n",
            body(g)
        )
    };
    h.apply(&cm(0)).await;
    let len = body(0).len();
    // The reader checks every read whole: prefix, suffix and length; any
    // other read is a torn (or empty) file, recorded for the test.
    let reader = format!(
        "n=0; while true; do v=$(cat /conf/value); case \"$v\" in g-*-end) ;; *) echo \"bad:${{#v}}\" >> /tmp/torn;; esac; \
         if [ ${{#v}} -ne {len} ]; then echo \"len:${{#v}}\" >> /tmp/torn; fi; n=$((n+1)); echo $n > /tmp/reads; done"
    );
    h.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: live\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: conf, configMap: {{name: live}}}}\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", {reader:?}]\n    volumeMounts:\n    - {{name: conf, mountPath: /conf}}\n",
        node = h.node.info.name,
        image = h.image,
    ))
    .await;
    let pod = h.running("live").await;
    let id = h.containers(&pod).await["main"].clone();
    assert!(
        h.ok(&id, "head -c 6 /conf/value")
            .await
            .starts_with("g-0000")
    );

    let rewrites = 15;
    let mut worst = Duration::ZERO;
    for g in 1..=rewrites {
        let t0 = Instant::now();
        h.apply(&cm(g)).await;
        let want = format!("g-{g:04}");
        loop {
            let got = h.ok(&id, "head -c 6 /conf/value").await;
            if got == want {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "generation {g} not visible in the container after {:?} (still {got})",
                t0.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst = worst.max(t0.elapsed());
    }
    eprintln!("{rewrites} ConfigMap writes: slowest reached the container in {worst:?}");
    let reads: u64 = h
        // The loop rewrites the file in place: read until caught whole.
        .ok(
            &id,
            "while true; do r=$(cat /tmp/reads); [ -n \"$r\" ] && break; done; echo $r",
        )
        .await
        .trim()
        .parse()
        .expect("read count");
    assert!(reads > 100, "the reader ran ({reads} reads)");
    let (code, torn) = h.sh(&id, "cat /tmp/torn").await;
    assert_ne!(code, 0, "the reader saw torn or empty files: {torn}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_missing_configmap_or_bad_host_path_keeps_the_container_back() {
    require_docker();
    let h = Harness::start("missing", shoal::runtime::RuntimeKind::Docker).await;
    let node = &h.node.info.name;
    let image = &h.image;
    let pod = |name: &str, volume: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {volume}\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"sleep 3600\"]\n    volumeMounts:\n    - {{name: v, mountPath: /v}}\n"
        )
    };
    h.apply(&pod("later", "{name: v, configMap: {name: later}}"))
        .await;
    let missing = h.dir.path().join("no-such-dir");
    h.apply(&pod(
        "nohost",
        &format!(
            "{{name: v, hostPath: {{path: \"{}\", type: Directory}}}}",
            missing.display()
        ),
    ))
    .await;
    let waiting = |reason: &'static str| {
        move |p: &Value| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == reason
    };
    let p = h
        .wait_pod(
            "later",
            30,
            "CreateContainerConfigError",
            waiting("CreateContainerConfigError"),
        )
        .await;
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("configmap \"later\" not found"), "{msg}");
    let evs = h.events_of("later").await;
    assert!(
        evs.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("CreateContainerConfigError") && m.contains("\"later\""))),
        "{evs:#?}"
    );
    assert!(
        h.containers(&p).await.is_empty(),
        "no container without its ConfigMap"
    );

    let p2 = h
        .wait_pod("nohost", 30, "FailedMount", waiting("FailedMount"))
        .await;
    let msg = p2["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("does not exist (type directory)"), "{msg}");
    assert!(
        h.containers(&p2).await.is_empty(),
        "no container without its hostPath"
    );
    assert!(!missing.exists(), "type Directory creates nothing");

    // Once the ConfigMap exists, the container starts with it.
    h.apply(&configmap("later", "arrived")).await;
    let p = h.running("later").await;
    let id = h.containers(&p).await["main"].clone();
    assert_eq!(h.ok(&id, "cat /v/value").await, "arrived");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runtime_refuses_volumes() {
    let h = Harness::start("process", shoal::runtime::RuntimeKind::Process).await;
    h.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: v, emptyDir: {{}}}}\n  containers:\n  - name: main\n    image: host\n    command: [\"sh\", \"-c\", \"sleep 3600\"]\n    volumeMounts:\n    - {{name: v, mountPath: /v}}\n",
        h.node.info.name
    ))
    .await;
    let p = h
        .wait_pod("p", 30, "CreateContainerConfigError", |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        })
        .await;
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("process runtime cannot mount volumes"),
        "{msg}"
    );
    let evs = h.events_of("p").await;
    assert!(
        evs.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot mount volumes"))),
        "{evs:#?}"
    );
    assert!(
        h.containers(&p).await.is_empty(),
        "never started without its volume"
    );
    assert!(
        !h.data_dir().join("volumes").exists(),
        "nothing prepared for a process pod"
    );
    h.stop().await;
}

/// fsGroup: the pod's emptyDir and Secret files belong to the group, which
/// every container has among its groups; a non-root container can then
/// read a Secret file of mode 0440 and write where root made the directory.
/// The container's securityContext reaches the engine through the agent,
/// and so do dnsPolicy None with dnsConfig, hostAliases and service links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_fs_group_owns_the_pods_volumes_and_dns_config_applies() {
    require_docker();
    let h = Harness::start("fsgroup", shoal::runtime::RuntimeKind::Docker).await;
    let image = &h.image;
    h.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: fsg}}
stringData: {{token: s3cret}}
---
apiVersion: v1
kind: Service
metadata: {{name: links-demo}}
spec:
  selector: {{app: nothing}}
  ports: [{{name: web, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: fsg}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, supplementalGroups: [3000]}}
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.0.0.53]
    searches: [corp.example]
    options: [{{name: ndots, value: "2"}}, {{name: edns0}}]
  hostAliases: [{{ip: 10.1.2.3, hostnames: [db.local, cache.local]}}]
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: sec, secret: {{secretName: fsg, defaultMode: 0400}}}}
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "sleep 3600"]
    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: sec, mountPath: /sec}}
"#,
        node = h.node.info.name
    ))
    .await;
    let pod = h.running("fsg").await;
    let ids = h.containers(&pod).await;
    let c = &ids["main"];
    let groups = h.ok(c, "id -G").await;
    let groups: Vec<&str> = groups.split_whitespace().collect();
    for g in ["1000", "2000", "3000"] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
    assert_eq!(h.ok(c, "stat -c %g /scratch").await.trim(), "2000");
    h.ok(c, "echo mine > /scratch/f").await;
    assert_eq!(
        h.ok(c, "stat -c %g /scratch/f").await.trim(),
        "2000",
        "the setgid directory gives new files the group"
    );
    assert_eq!(h.ok(c, "cat /sec/token").await, "s3cret");
    // Service links: the namespace's Service, in Kubernetes' names.
    let env = h.ok(c, "env").await;
    let svc = h
        .api
        .get("/v1/namespaces/default/services/links-demo")
        .await
        .1;
    let ip = svc["spec"]["clusterIP"].as_str().expect("a cluster IP");
    for want in [
        format!("LINKS_DEMO_SERVICE_HOST={ip}"),
        "LINKS_DEMO_SERVICE_PORT=8080".to_string(),
        "LINKS_DEMO_SERVICE_PORT_WEB=8080".to_string(),
        format!("LINKS_DEMO_PORT_8080_TCP=tcp://{ip}:8080"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    // dnsPolicy None: only what dnsConfig says; hostAliases in /etc/hosts.
    let resolv = h.ok(c, "cat /etc/resolv.conf").await;
    assert!(resolv.contains("nameserver 10.0.0.53"), "{resolv}");
    assert_eq!(resolv.matches("nameserver").count(), 1, "{resolv}");
    assert!(resolv.contains("search corp.example"), "{resolv}");
    assert!(resolv.contains("options ndots:2 edns0"), "{resolv}");
    let hosts = h.ok(c, "cat /etc/hosts").await;
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("db.local")),
        "{hosts}"
    );
    assert!(hosts.contains("cache.local"), "{hosts}");
    let status = h
        .ok(c, "grep -E '^(NoNewPrivs|CapEff):' /proc/self/status")
        .await;
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    h.stop().await;
}
