//! Secrets at rest on an in-process three-node cluster (process runtime):
//! no value in any file of any node's data dir (Raft log, snapshots,
//! rocksdb), also after a forced snapshot; env from a Secret still reaches a
//! pod; a key rotation with writes going on loses nothing and survives the
//! leader's loss; a node given the wrong key refuses to start.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::Value;
use shoal::resource::types::encode_base64;

/// Values no other test writes: found anywhere, they leaked.
const SECRET_CLEAR: &str = "quetzal-marmalade-0451-clear";
const SECRET_DATA: &str = "obsidian-ferret-9913-data";
/// A ConfigMap value, which is stored in clear: the scan must find it, or
/// it proves nothing.
const CANARY: &str = "canary-plain-configmap-7777";

fn write_key(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", hex_byte(byte).repeat(32))).unwrap();
    p
}

fn hex_byte(b: u8) -> String {
    format!("{b:02x}")
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p);
            }
        }
    }
    found
}

fn secret(name: &str, clear: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  password: \"{clear}\"\ndata:\n  token: {}\n",
        encode_base64(data.as_bytes())
    )
}

fn decoded(v: &Value, key: &str) -> Option<String> {
    let b = v["data"][key].as_str()?;
    let bytes = shoal::resource::types::decode_base64(b).ok()?;
    String::from_utf8(bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_are_sealed_at_rest_and_open_for_the_api_and_pods() {
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "kek", 0x5a);
    let c = Cluster::start("sr", &["2", "2", "2"], |cfg| {
        cfg.store.encryption_key_file = Some(key.clone());
    })
    .await;
    let api = c.api();
    let (code, v) = api.apply(&secret("vault", SECRET_CLEAR, SECRET_DATA)).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = api.apply(&configmap("plain", CANARY)).await;
    assert_eq!(code, 200, "{v}");

    // The API opens it, on every node.
    for n in c.nodes.iter().flatten() {
        let a = Api::new(n.api_addr);
        let (code, v) = a.get("/v1/namespaces/default/secrets/vault").await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            decoded(&v, "password").as_deref(),
            Some(SECRET_CLEAR),
            "{v}"
        );
        assert_eq!(decoded(&v, "token").as_deref(), Some(SECRET_DATA), "{v}");
        assert!(v.get("encryptedData").is_none(), "{v}");
    }
    // Applying the same Secret again changes nothing (the ciphertext is kept).
    let (code, v) = api.apply(&secret("vault", SECRET_CLEAR, SECRET_DATA)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"][0]["outcome"], "Unchanged", "{v}");

    // A pod's env from a Secret (another one: the pod's own spec, kept by
    // the runtime, holds its env as any runtime's does).
    let (code, v) = api.apply(&secret("db", "pod-reads-this", "x")).await;
    assert_eq!(code, 200, "{v}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: envpod\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: host\n    command: [\"sh\", \"-c\", \"echo PW=$PW; echo ALL=$password; sleep 3600\"]\n    env:\n    - name: PW\n      valueFrom:\n        secretKeyRef:\n          name: db\n          key: password\n    envFrom:\n    - secretRef:\n        name: db\n";
    let (code, v) = api.apply(pod).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        Duration::from_secs(60),
        "the pod prints its Secret env",
        || {
            let api = api.clone();
            async move {
                let (code, v) = api.get("/v1/namespaces/default/pods/envpod/log").await;
                let text = v.as_str().unwrap_or_default().to_string();
                code == 200
                    && text.contains("PW=pod-reads-this")
                    && text.contains("ALL=pod-reads-this")
            }
        },
    )
    .await;

    // Force a snapshot on every node, after the Secret's write. A node
    // that had not applied that far when asked snapshots what it had:
    // ask again until its snapshot covers the write.
    let written = c.nodes[0].as_ref().unwrap().store.revision();
    for n in c.nodes.iter().flatten() {
        let store = n.store.clone();
        eventually(
            Duration::from_secs(30),
            "a snapshot past the Secret",
            || {
                let store = store.clone();
                async move {
                    if store.metrics().snapshot.is_some_and(|s| s.index >= written) {
                        return true;
                    }
                    if store.revision() >= written {
                        let _ = store.raft().trigger().snapshot().await;
                    }
                    false
                }
            },
        )
        .await;
    }

    let needles: Vec<(String, Vec<u8>)> = [SECRET_CLEAR, SECRET_DATA]
        .iter()
        .flat_map(|s| {
            [
                (s.to_string(), s.as_bytes().to_vec()),
                (
                    format!("base64 of {s}"),
                    encode_base64(s.as_bytes()).into_bytes(),
                ),
            ]
        })
        .collect();
    for i in 0..3 {
        let data = c.dir(i).join("data");
        assert!(
            !files_containing(&data, CANARY.as_bytes()).is_empty(),
            "the scan of {} finds the ConfigMap's value: it reads the store's files",
            data.display()
        );
        for (what, needle) in &needles {
            let found = files_containing(&data, needle);
            assert!(found.is_empty(), "{what} found in {found:?}");
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_writes_loses_nothing_and_a_wrong_key_stops_a_node() {
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "kek", 0x11);
    let mut c = Cluster::start("rk", &["2", "2", "2"], |cfg| {
        cfg.store.encryption_key_file = Some(key.clone());
    })
    .await;
    // Talk to a node that is not the leader, so losing the leader keeps the client.
    let leader = c.leader();
    let me = (0..3).find(|i| *i != leader).unwrap();
    let api = Api::new(c.nodes[me].as_ref().unwrap().api_addr);
    for i in 0..20 {
        let (code, v) = api
            .apply(&secret(&format!("s{i}"), &format!("v0-{i}"), "d"))
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let before = api.client.encryption_status().await.expect("status");
    assert_eq!(
        before.keyring.as_ref().map(|k| k.active),
        Some(1),
        "{before:?}"
    );

    // Writers keep changing every Secret while the key rotates.
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut last = std::collections::BTreeMap::new();
            for round in 1..=8 {
                for i in 0..20 {
                    let value = format!("v{round}-{i}");
                    let (code, v) = api.apply(&secret(&format!("s{i}"), &value, "d")).await;
                    assert_eq!(code, 200, "write during rotation: {v}");
                    last.insert(format!("s{i}"), value);
                }
            }
            last
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rotated = api.client.rotate_data_key().await.expect("rotate");
    assert_eq!(
        rotated.keyring.as_ref().map(|k| k.active),
        Some(2),
        "{rotated:?}"
    );
    // Lose the leader mid-rotation: the next one carries on.
    let leader = c.leader();
    assert_ne!(leader, me);
    let dead = c.crash(leader).await;
    let (dead_dir, dead_name) = (c.dir(leader).to_path_buf(), dead.info.name.clone());
    dead.shutdown().await;

    let last = writer.await.expect("writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = api.client.encryption_status().await.expect("status");
        let ring = st.keyring.clone().expect("keyring");
        if st.pending == 0 && ring.key_ids == vec![2] {
            break;
        }
        assert!(Instant::now() < deadline, "rotation never finished: {st:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, value) in &last {
        let (code, v) = api
            .get(&format!("/v1/namespaces/default/secrets/{name}"))
            .await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            decoded(&v, "password").as_deref(),
            Some(value.as_str()),
            "{name}"
        );
    }
    let node = c.nodes[me].as_ref().unwrap();
    for o in node.store.list_sealed().unwrap() {
        if o.metadata.name != shoal::store::sealing::KEYRING_NAME {
            assert_eq!(
                shoal::store::sealing::sealed_key_id(&o),
                Some(2),
                "{}",
                o.metadata.name
            );
        }
    }

    // The lost node comes back with the wrong key: it refuses to start.
    let wrong = write_key(keys.path(), "wrong", 0x22);
    let mut cfg = shoal::config::Config::for_test(&dead_dir, &dead_name);
    cfg.store.encryption_key_file = Some(wrong);
    let err = match shoal::node::Node::start(cfg).await {
        Ok(_) => panic!("a node with the wrong key started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("does not open") && err.contains("encryption_key_file"),
        "{err}"
    );
    // With the right key it starts and serves the Secrets.
    let back = restart_node(&dead_dir, &dead_name, |cfg| {
        cfg.store.encryption_key_file = Some(key.clone());
    })
    .await;
    let st = back.store.get(&shoal::resource::ObjectKey::new(
        shoal::resource::Kind::Secret,
        "default",
        "s0",
    ));
    assert!(st.is_ok(), "{st:?}");
    back.shutdown().await;
    c.stop().await;
}
