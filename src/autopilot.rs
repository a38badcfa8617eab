//! autopilot: how a node gets into a cluster. `--dev` initialises a one-node
//! cluster; `--bootstrap-expect N` waits until N nodes know each other and the
//! lowest PeerId initialises Raft with them; any other node asks the leader
//! (through whichever peer it reaches) to add it as a learner, promoted to
//! voter while there are fewer voters than the target.
//!
//! The loop is level-triggered: every tick it compares what it wants (to be a
//! member) with what Raft says and acts on the difference.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::net::{Channel, Handler, Net};
use crate::store::{NodeInfo, Store, StoreError};

const TICK: Duration = Duration::from_millis(500);
const MAX_MSG_BYTES: usize = 1024 * 1024;

#[derive(Serialize, Deserialize)]
enum ClusterRpc {
    /// Introduces the sender and what it knows; the reply is the same from the receiver.
    Hello { me: NodeInfo, known: Vec<NodeInfo> },
    /// Asks the leader to add the node; forwarded by non-leaders.
    Join(NodeInfo),
}

#[derive(Serialize, Deserialize)]
enum ClusterReply {
    Hello { me: NodeInfo, known: Vec<NodeInfo> },
    Joined,
    NotYet(String),
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, bincode::config::standard().with_limit::<MAX_MSG_BYTES>())
        .map_err(|e| e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(b, bincode::config::standard().with_limit::<MAX_MSG_BYTES>())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

/// How this node should come into a cluster.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// Initialise a one-node cluster.
    pub dev: bool,
    /// Wait for this many nodes before initialising.
    pub bootstrap_expect: Option<usize>,
    /// Seed addresses.
    pub seeds: Vec<Multiaddr>,
    /// Voter target while adding nodes.
    pub voters: usize,
}

struct Shared {
    store: Store,
    net: Net,
    me: NodeInfo,
    voters: usize,
    known: Mutex<BTreeMap<String, NodeInfo>>,
}

/// Starts the join loop and registers the cluster handler.
pub fn spawn(store: Store, net: Net, me: NodeInfo, plan: JoinPlan) -> tokio::task::JoinHandle<()> {
    let shared = Arc::new(Shared {
        store,
        net: net.clone(),
        me: me.clone(),
        voters: plan.voters,
        known: Mutex::new(BTreeMap::from([(me.peer_id.clone(), me)])),
    });
    net.set_handler(Channel::Cluster, Arc::new(ClusterHandler(shared.clone())));
    tokio::spawn(run(shared, plan))
}

async fn run(s: Arc<Shared>, plan: JoinPlan) {
    let mut seed_peers: BTreeMap<Multiaddr, PeerId> = BTreeMap::new();
    let mut last_complaint = String::new();
    loop {
        if let Err(msg) = tick(&s, &plan, &mut seed_peers).await
            && msg != last_complaint
        {
            info!("joining: {msg}");
            last_complaint = msg;
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn tick(
    s: &Shared,
    plan: &JoinPlan,
    seed_peers: &mut BTreeMap<Multiaddr, PeerId>,
) -> Result<(), String> {
    let initialized = s
        .store
        .raft()
        .is_initialized()
        .await
        .map_err(|e| e.to_string())?;
    if s.store.is_member() {
        return Ok(());
    }
    if plan.dev && !initialized {
        info!("--dev: initialising a one-node cluster");
        return s
            .store
            .initialize(vec![s.me.clone()])
            .await
            .map_err(|e| e.to_string());
    }
    // Learn PeerIds behind seed addresses, then exchange what everyone knows.
    for addr in &plan.seeds {
        if !seed_peers.contains_key(addr) {
            match s.net.dial(addr.clone()).await {
                Ok(p) if p != s.net.peer_id() => {
                    seed_peers.insert(addr.clone(), p);
                }
                Ok(_) => {}
                Err(e) => debug!("seed {addr}: {e}"),
            }
        }
    }
    let mut targets: Vec<(PeerId, Vec<Multiaddr>)> = seed_peers
        .iter()
        .map(|(a, p)| (*p, vec![a.clone()]))
        .collect();
    for n in known(s).into_iter().filter(|n| n.peer_id != s.me.peer_id) {
        if let Some(p) = n.peer() {
            targets.push((p, n.multiaddrs()));
        }
    }
    targets.sort();
    targets.dedup_by(|a, b| a.0 == b.0);
    for (peer, addrs) in &targets {
        let hello = ClusterRpc::Hello {
            me: s.me.clone(),
            known: known(s),
        };
        let Ok(body) = encode(&hello) else { continue };
        match s
            .net
            .request(*peer, addrs.clone(), Channel::Cluster, body)
            .await
        {
            Ok(reply) => match decode::<ClusterReply>(&reply) {
                Ok(ClusterReply::Hello { me, known }) => {
                    learn(s, std::iter::once(me).chain(known));
                }
                Ok(_) => {}
                Err(e) => warn!(%peer, "undecodable hello reply: {e}"),
            },
            Err(e) => debug!(%peer, "hello failed: {e}"),
        }
    }
    if let Some(n) = plan.bootstrap_expect
        && !initialized
    {
        let all = known(s);
        if all.len() < n {
            return Err(format!("waiting for {n} nodes, {} known", all.len()));
        }
        let lowest = all
            .iter()
            .map(|n| n.peer_id.clone())
            .min()
            .unwrap_or_default();
        if lowest == s.me.peer_id {
            info!(
                nodes = all.len(),
                "bootstrap: initialising Raft as the lowest PeerId"
            );
            return s.store.initialize(all).await.map_err(|e| e.to_string());
        }
        // Someone else initialises; once a leader exists the join below succeeds or
        // the initial membership already includes us.
    }
    if targets.is_empty() {
        return Err(if plan.seeds.is_empty() {
            "no peers to join through (give --join)".into()
        } else {
            "no --join peer could be reached yet (see the dial errors above)".into()
        });
    }
    let body = encode(&ClusterRpc::Join(s.me.clone()))?;
    let mut last = String::from("no peer answered");
    for (peer, addrs) in targets {
        match s
            .net
            .request(peer, addrs, Channel::Cluster, body.clone())
            .await
        {
            Ok(reply) => match decode::<ClusterReply>(&reply) {
                Ok(ClusterReply::Joined) => {
                    info!(via = %peer, "joined the cluster");
                    return Ok(());
                }
                Ok(ClusterReply::NotYet(m)) => last = m,
                Ok(_) => {}
                Err(e) => last = e,
            },
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

fn known(s: &Shared) -> Vec<NodeInfo> {
    s.known
        .lock()
        .map(|k| k.values().cloned().collect())
        .unwrap_or_default()
}

fn learn(s: &Shared, nodes: impl Iterator<Item = NodeInfo>) {
    if let Ok(mut k) = s.known.lock() {
        for n in nodes {
            if n.peer().is_some() {
                k.insert(n.peer_id.clone(), n);
            }
        }
    }
}

struct ClusterHandler(Arc<Shared>);

impl Handler for ClusterHandler {
    fn handle(&self, _from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let s = self.0.clone();
        async move {
            let rpc: ClusterRpc =
                decode(&body).map_err(|e| format!("undecodable cluster rpc: {e}"))?;
            let reply = match rpc {
                ClusterRpc::Hello { me, known: theirs } => {
                    learn(&s, std::iter::once(me).chain(theirs));
                    ClusterReply::Hello {
                        me: s.me.clone(),
                        known: known(&s),
                    }
                }
                ClusterRpc::Join(node) => handle_join(&s, node).await,
            };
            encode(&reply)
        }
        .boxed()
    }
}

async fn handle_join(s: &Shared, node: NodeInfo) -> ClusterReply {
    if node.peer().is_none() {
        return ClusterReply::NotYet(format!("bad PeerId {:?}", node.peer_id));
    }
    match s.store.leader() {
        Some((id, _)) if id == s.store.node_id() => {
            match s.store.add_member(node.clone(), s.voters).await {
                Ok(()) => ClusterReply::Joined,
                Err(e) => ClusterReply::NotYet(e.to_string()),
            }
        }
        Some((_, leader)) => {
            let Some(peer) = leader.peer() else {
                return ClusterReply::NotYet("leader has a bad PeerId".into());
            };
            let Ok(body) = encode(&ClusterRpc::Join(node)) else {
                return ClusterReply::NotYet("encode failed".into());
            };
            match s
                .net
                .request(peer, leader.multiaddrs(), Channel::Cluster, body)
                .await
            {
                Ok(r) => decode(&r).unwrap_or_else(ClusterReply::NotYet),
                Err(e) => ClusterReply::NotYet(format!("forwarding to the leader: {e}")),
            }
        }
        None => ClusterReply::NotYet(StoreError::NoLeader.to_string()),
    }
}
