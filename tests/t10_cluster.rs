//! In-process three-node clusters on loopback: replication, leader loss,
//! restart and catch-up through a snapshot.

mod common;

use std::time::Duration;

use common::*;
use shoal::node::Node;
use shoal::resource::{Kind, ObjectKey};
use shoal::store::{Command, Op, Precondition};

async fn three_nodes(dirs: &[tempfile::TempDir; 3], ports: [u16; 3]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let seeds: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("127.0.0.1:{}", ports[j]))
            .collect();
        let node = start_node(dirs[i].path(), &format!("n{i}"), |c| {
            c.p2p_addr = format!("127.0.0.1:{}", ports[i]);
            c.join = seeds;
            c.bootstrap_expect = Some(3);
            c.raft.snapshot_every = 40;
            c.raft.keep_logs_behind_snapshot = 5;
        })
        .await;
        nodes.push(node);
    }
    for n in &nodes {
        assert!(
            n.wait_ready(Duration::from_secs(20)).await,
            "{} joined a cluster with a leader",
            n.info.name
        );
    }
    nodes
}

fn leader_index(nodes: &[Option<Node>]) -> usize {
    let leader = nodes
        .iter()
        .flatten()
        .find_map(|n| n.store.leader().map(|(id, _)| id))
        .expect("a leader is known");
    nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.store.node_id() == leader))
        .expect("the leader is one of the nodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_at_follower_survives_leader_loss_and_restart_catches_up_by_snapshot() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let p = free_ports(3);
    let ports = [p[0], p[1], p[2]];
    let mut nodes: Vec<Option<Node>> = three_nodes(&dirs, ports)
        .await
        .into_iter()
        .map(Some)
        .collect();

    // All three are voters of one cluster.
    let status = nodes[0].as_ref().unwrap().store.status();
    assert_eq!(status.voters.len(), 3, "three voters: {status:?}");

    // A write at a follower is readable at every node.
    let li = leader_index(&nodes);
    let follower = (li + 1) % 3;
    let api_f = Api::new(nodes[follower].as_ref().unwrap().api_addr);
    let (code, body) = api_f.apply(&configmap("first", "1")).await;
    assert_eq!(code, 200, "apply at follower: {body}");
    // A create at a follower answers with the stored object, not waiting for its own replica.
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "created"}, "data": {"k": "v"}});
    let (code, obj) = api_f
        .send(
            reqwest::Method::POST,
            "/v1/namespaces/default/configmaps",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["metadata"]["name"], "created", "{obj}");
    assert!(
        obj["metadata"]["resourceVersion"].as_str().is_some(),
        "{obj}"
    );
    for n in nodes.iter().flatten() {
        let (code, obj) = Api::new(n.api_addr)
            .get("/v1/namespaces/default/configmaps/first")
            .await;
        assert_eq!(code, 200, "read at {}: {obj}", n.info.name);
        assert_eq!(obj["data"]["value"], "1");
    }

    // Read-your-writes through a follower: a write forwarded to the leader
    // returns only once this replica has applied it, so a read here straight
    // after (no await in between) sees it, and a delete likewise.
    let store_f = nodes[follower].as_ref().unwrap().store.clone();
    for i in 0..20 {
        let key = ObjectKey::new(Kind::ConfigMap, "default", &format!("ryw-{i}"));
        let object = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("ryw-{i}")}, "data": {"i": i.to_string()}});
        let put = Op::Put {
            key: key.clone(),
            object: serde_json::to_vec(&object).unwrap(),
            precondition: Precondition::None,
        };
        let out = store_f.write(Command { ops: vec![put] }).await.unwrap();
        let seen = store_f.get(&key).unwrap();
        assert_eq!(
            seen.map(|o| o.resource_version()),
            Some(out[0].resource_version),
            "write {i} at the follower is readable there at once"
        );
        let delete = Op::Delete {
            key: key.clone(),
            precondition: Precondition::None,
        };
        store_f.write(Command { ops: vec![delete] }).await.unwrap();
        assert!(
            store_f.get(&key).unwrap().is_none(),
            "delete {i} at the follower is seen there at once"
        );
    }

    // Abort the leader's tasks: a new leader is elected and keeps every acknowledged write.
    let old = nodes[li].take().unwrap();
    let old_name = old.info.name.clone();
    let old_last_log = old.store.status().last_log_index.unwrap_or(0);
    old.shutdown().await;
    let survivors: Vec<&Node> = nodes.iter().flatten().collect();
    let api_s = Api::new(survivors[0].api_addr);
    let mut acked = vec!["first".to_string()];
    acked.push("created".to_string());
    // Enough writes to snapshot and purge the log past the old leader's last entry.
    for i in 0..120 {
        let name = format!("after-{i}");
        let (code, body) = api_s.apply(&configmap(&name, &i.to_string())).await;
        assert_eq!(code, 200, "write {i} after leader loss: {body}");
        acked.push(name);
    }
    let new_leader = survivors
        .iter()
        .find(|n| {
            n.store
                .leader()
                .is_some_and(|(id, _)| id == n.store.node_id())
        })
        .expect("a survivor leads");
    eventually(
        Duration::from_secs(10),
        "the leader purges its log behind a snapshot",
        || async { new_leader.store.status().last_purged.unwrap_or(0) > old_last_log },
    )
    .await;
    for n in &survivors {
        let (code, list) = Api::new(n.api_addr)
            .get("/v1/namespaces/default/configmaps")
            .await;
        assert_eq!(code, 200);
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        for a in &acked {
            assert!(names.contains(&a.as_str()), "{} lost {a}", n.info.name);
        }
    }

    // The old node restarts from its data dir and catches up; its log was purged
    // at the leader, so only a snapshot can bring it there.
    let restarted = restart_node(dirs[li].path(), &old_name, |c| {
        c.p2p_addr = format!("127.0.0.1:{}", ports[li]);
        c.raft.snapshot_every = 40;
        c.raft.keep_logs_behind_snapshot = 5;
    })
    .await;
    assert!(restarted.wait_ready(Duration::from_secs(20)).await);
    let target = new_leader.store.revision();
    eventually(
        Duration::from_secs(20),
        "the restarted node catches up",
        || async { restarted.store.revision() >= target },
    )
    .await;
    let (list, _) = restarted
        .store
        .list(shoal::resource::Kind::ConfigMap, Some("default"))
        .unwrap();
    assert_eq!(list.len(), acked.len(), "restarted node has every object");
    let st = restarted.store.status();
    assert!(
        st.snapshot_index.unwrap_or(0) > old_last_log,
        "caught up through a snapshot: {st:?}"
    );

    restarted.shutdown().await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_joining_later_becomes_a_learner() {
    let d0 = tempfile::tempdir().unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let first = start_node(d0.path(), "first", |c| c.dev = true).await;
    assert!(first.wait_ready(Duration::from_secs(10)).await);
    let seed = p2p_host_port(&first);
    let second = start_node(d1.path(), "second", |c| c.join = vec![seed]).await;
    assert!(
        second.wait_ready(Duration::from_secs(20)).await,
        "second joins"
    );
    // Two live nodes keep one voter (an odd count); the newcomer is a learner.
    eventually(Duration::from_secs(10), "second is a learner", || async {
        let st = first.store.status();
        st.voters.len() == 1 && st.learners.len() == 1
    })
    .await;
    // A write at the newcomer is forwarded to the leader.
    let (code, body) = Api::new(second.api_addr)
        .apply(&configmap("via-second", "x"))
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = Api::new(first.api_addr)
        .get("/v1/namespaces/default/configmaps/via-second")
        .await;
    assert_eq!(code, 200);
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_with_another_cluster_key_cannot_join() {
    let d0 = tempfile::tempdir().unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let key_a = d0.path().join("a.key");
    let key_b = d1.path().join("b.key");
    std::fs::write(&key_a, "11".repeat(32)).unwrap();
    std::fs::write(
        &key_b,
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "22".repeat(32)),
    )
    .unwrap();
    let first = start_node(d0.path(), "keyed", |c| {
        c.dev = true;
        c.cluster_key_file = Some(key_a.clone());
    })
    .await;
    assert!(first.wait_ready(Duration::from_secs(10)).await);
    let seed = p2p_host_port(&first);
    let stranger = start_node(d1.path(), "stranger", |c| {
        c.join = vec![seed.clone()];
        c.cluster_key_file = Some(key_b.clone());
    })
    .await;
    assert!(
        !stranger.wait_ready(Duration::from_secs(3)).await,
        "a node with another key must not join"
    );
    assert_eq!(
        first.store.status().learners.len() + first.store.status().voters.len(),
        1
    );
    // The same key gets in.
    let friend = start_node(d2.path(), "friend", |c| {
        c.join = vec![seed];
        c.cluster_key_file = Some(key_a.clone());
    })
    .await;
    assert!(
        friend.wait_ready(Duration::from_secs(20)).await,
        "a node with the key joins"
    );
    friend.shutdown().await;
    stranger.shutdown().await;
    first.shutdown().await;
}
