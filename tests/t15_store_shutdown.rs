//! A store shut down and reopened many times in one process, with writes in
//! flight at every stop: each shutdown must leave no thread that uses rocksdb
//! and release the database (the next open of the same directory would fail
//! on rocksdb's lock otherwise). Before `Store::shutdown` joined the WAL syncer
//! and cancelled rocksdb's background work, a detached `shoal-log-sync` thread
//! could close the database while the process exited (SIGABRT at exit).

use std::time::Duration;

use shoal::config::Config;
use shoal::net::{Net, NetConfig, parse_addr};
use shoal::resource::{Kind, ObjectKey};
use shoal::store::{Command, NodeInfo, Op, Precondition, Store};

const CYCLES: usize = 200;
const WRITES_IN_FLIGHT: usize = 8;

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        panic!("/proc/self/task is not readable: this test needs Linux's procfs");
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

/// A swarm and the store in `dir`, as a node opens them.
async fn open(
    dir: &std::path::Path,
    cfg: &Config,
) -> Result<(Net, Store), shoal::store::StoreError> {
    let net = Net::start(NetConfig {
        data_dir: dir.to_path_buf(),
        listen: parse_addr("127.0.0.1:0").await.expect("addr"),
        psk: None,
    })
    .await
    .expect("net starts");
    let store = Store::open(&dir.join("raft"), net.clone(), cfg.store_config()).await?;
    Ok((net, store))
}

fn configmap(i: usize) -> Op {
    let name = format!("cm-{i}");
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"i": i.to_string()},
    });
    Op::Put {
        key: ObjectKey::new(Kind::ConfigMap, "default", &name),
        object: serde_json::to_vec(&body).expect("json"),
        precondition: Precondition::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restarted_200_times_with_writes_in_flight_leaves_no_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config::for_test(dir.path(), "restarts");
    let mut written = 0usize;
    for cycle in 0..CYCLES {
        let (net, store) = open(dir.path(), &cfg)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: the store does not reopen: {e}"));
        // A thread names itself once it runs: give it a moment to show.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while threads_named("shoal-log-sync") != 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cycle {cycle}: {} syncer threads, not 1",
                threads_named("shoal-log-sync")
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if cycle == 0 {
            let me = NodeInfo {
                name: "restarts".into(),
                peer_id: net.peer_id().to_base58(),
                p2p_addrs: vec![],
                api_addr: String::new(),
            };
            store.initialize(vec![me]).await.expect("initialise");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.leader().map(|(id, _)| id) != Some(store.node_id()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cycle {cycle}: never led"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One write that must land, so every cycle really appends and syncs...
        store
            .write(Command {
                ops: vec![configmap(written)],
            })
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: write: {e}"));
        written += 1;
        // ...and more still in flight when the store stops.
        let in_flight: Vec<_> = (0..WRITES_IN_FLIGHT)
            .map(|i| {
                let store = store.clone();
                let op = configmap(written + i);
                tokio::spawn(async move { store.write(Command { ops: vec![op] }).await })
            })
            .collect();
        written += WRITES_IN_FLIGHT;
        tokio::task::yield_now().await;
        store.shutdown().await;
        assert_eq!(
            threads_named("shoal-log-sync"),
            0,
            "cycle {cycle}: the WAL syncer outlived Store::shutdown"
        );
        for w in in_flight {
            // Each either landed before the stop or failed cleanly.
            let _ = w.await.expect("the writer task does not panic");
        }
        net.shutdown().await;
        drop(store);
    }
    // Every write acknowledged before its stop is still there.
    let (net, store) = open(dir.path(), &cfg).await.expect("final open");
    let (cms, _) = store.list(Kind::ConfigMap, None).expect("list");
    assert!(
        cms.len() >= CYCLES,
        "{} config maps survived {CYCLES} restarts, one per cycle was acknowledged",
        cms.len()
    );
    store.shutdown().await;
    net.shutdown().await;
    assert_eq!(threads_named("shoal-log-sync"), 0);
}
