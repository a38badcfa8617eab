//! A node whose p2p address changes (a restart on another port, a wildcard
//! address, DHCP) records its new addresses in Raft once and then writes
//! nothing while idle. Before, autopilot retried `add_learner`, which leaves
//! a known node's info unchanged, every 500 ms forever (two Raft entries a
//! second on an idle node).

mod common;

use std::time::Duration;

use common::*;

/// The Raft log's last index once it has not moved for `quiet`.
async fn settled_index(node: &shoal::node::Node, quiet: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = node.store.status().last_log_index;
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = node.store.status().last_log_index;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return last;
        }
    }
    panic!("the Raft log never stopped growing (last index {last:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_moved_to_a_wildcard_address_updates_its_info_once_then_stays_idle() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let first = start_node(dir.path(), "moved", |c| {
        c.dev = true;
        c.p2p_addr = format!("127.0.0.1:{}", ports[0]);
    })
    .await;
    assert!(first.wait_ready(Duration::from_secs(20)).await);
    first.shutdown().await;

    let node = restart_node(dir.path(), "moved", |c| {
        c.dev = true;
        c.p2p_addr = format!("0.0.0.0:{}", ports[1]);
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(20)).await);
    assert!(
        node.info.p2p_addrs.iter().all(|a| !a.contains("/0.0.0.0/")
            && !a.contains("/127.96.")
            && a.ends_with(&format!("/tcp/{}", ports[1]))),
        "advertises only reachable addresses on the bound port: {:?}",
        node.info.p2p_addrs
    );
    eventually(
        Duration::from_secs(20),
        "the stored info has the new addresses",
        || {
            let status = node.store.status();
            let ok = status.voters.iter().any(|(_, n)| *n == node.info);
            async move { ok }
        },
    )
    .await;
    let before = settled_index(&node, Duration::from_secs(2)).await;

    // Ten Services: their cluster IPs go onto `lo` (inside service_cidr) and
    // must not change what the node advertises.
    let api = Api::new(node.api_addr);
    for i in 0..10 {
        let (code, v) = api
            .apply(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{selector: {{app: x}}, ports: [{{port: 80}}]}}\n"
            ))
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let with_services = settled_index(&node, Duration::from_secs(2)).await;
    assert!(with_services > before, "the Services were written");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        node.store.status().last_log_index,
        with_services,
        "an idle node wrote to Raft"
    );
    node.shutdown().await;
}
