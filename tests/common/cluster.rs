//! A cluster of in-process nodes on loopback for the integration tests:
//! start, find the leader, crash a node, stop and clean up containers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use shoal::config::Config;
use shoal::node::Node;

use super::{Api, eventually, free_ports, start_node};

pub struct Cluster {
    pub nodes: Vec<Option<Node>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// `n` nodes named `{prefix}{i}`; `cpus[i]` cores each (memory 8Gi).
    pub async fn start(prefix: &str, cpus: &[&str], tweak: impl Fn(&mut Config)) -> Cluster {
        let n = cpus.len();
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports = free_ports(n);
        let mut nodes = Vec::new();
        for i in 0..n {
            let port = ports[i];
            let seeds: Vec<String> = ports
                .iter()
                .filter(|p| **p != port)
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            let cpu = cpus[i].to_string();
            nodes.push(Some(
                start_node(dirs[i].path(), &format!("{prefix}{i}"), |c| {
                    c.p2p_addr = format!("127.0.0.1:{port}");
                    c.join = seeds;
                    c.bootstrap_expect = Some(n);
                    c.agent.capacity_cpu = Some(cpu);
                    c.agent.capacity_memory = Some("8Gi".into());
                    c.agent.reserved_cpu = "0".into();
                    c.agent.reserved_memory = "0".into();
                    c.agent.resync_ms = 300;
                    c.scheduler.pod_eviction_grace_ms = 1000;
                    tweak(c);
                })
                .await,
            ));
        }
        for node in nodes.iter().flatten() {
            assert!(
                node.wait_ready(Duration::from_secs(30)).await,
                "{} ready",
                node.info.name
            );
        }
        let c = Cluster { nodes, _dirs: dirs };
        // Every node has published its Node object.
        let api = c.api();
        eventually(Duration::from_secs(20), "all Node objects", || {
            let api = api.clone();
            async move {
                let (_, v) = api.get("/v1/nodes").await;
                v["items"].as_array().map(Vec::len) == Some(n)
            }
        })
        .await;
        c
    }

    /// Node `i`'s test directory (its data dir is `dir/data`).
    pub fn dir(&self, i: usize) -> &std::path::Path {
        self._dirs[i].path()
    }

    pub fn api(&self) -> Api {
        let n = self.nodes.iter().flatten().next().expect("a live node");
        Api::new(n.api_addr)
    }

    pub fn leader(&self) -> usize {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n
                && n.store.leader().map(|(id, _)| id) == Some(n.store.node_id())
            {
                return i;
            }
        }
        panic!("no leader");
    }

    /// Stops a node abruptly (no graceful leave), as a crash would.
    pub async fn crash(&mut self, i: usize) -> Node {
        self.nodes[i].take().expect("running")
    }

    /// Stops the nodes first (so no agent starts anything more), then
    /// removes what they ran: containers outlive their agent by design.
    pub async fn stop(self) {
        for n in self.nodes.into_iter().flatten() {
            let (rt, name) = (n.runtime.clone(), n.info.name.clone());
            n.shutdown().await;
            remove_containers_of(&rt, &name).await;
        }
    }
}

pub async fn remove_containers_of(rt: &shoal::runtime::DynRuntime, node: &str) {
    let mine = BTreeMap::from([(shoal::runtime::LABEL_NODE.to_string(), node.to_string())]);
    for c in rt.list(&mine).await.unwrap_or_default() {
        let _ = rt.remove(&c.id).await;
    }
}

pub async fn pods(api: &Api) -> Vec<Value> {
    let (_, v) = api
        .get("/v1/namespaces/default/pods?consistent=false")
        .await;
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}
