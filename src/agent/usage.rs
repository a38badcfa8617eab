//! Resource usage: every `metrics.resolution_ms` the agent reads the CPU
//! time and working set of each of its running containers and of its host,
//! keeps the last two readings of each, and serves the rates.
//!
//! Usage is soft state: it never goes through Raft (a write per container
//! every five seconds would be most of the log). Each node serves its own
//! sample on the `Usage` channel and whoever needs the cluster's (the API,
//! the autoscaler) asks every live member in parallel with a short timeout.
//! A node that is down is not asked, so its figures disappear instead of
//! freezing; a node that does not answer in time is left out of that read.

mod host;
mod prom;
mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::Ctx;
use crate::net::{Channel, Handler, Net};
use crate::resource::usage::{ContainerSample, NodeSample, PodSample};
use crate::runtime::{ContainerState, LABEL_CONTAINER, LABEL_POD};
use window::{Point, Window, Windows};

/// How long a fetch from another node may take before it is left out.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Containers whose stats are read at once.
const STATS_CONCURRENCY: usize = 8;
/// The most a node's reply may decode to.
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// `[metrics]`: resource usage sampling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// How often containers and the host are sampled, in milliseconds
    /// (metrics-server's 15 s is slower than an autoscaler wants).
    pub resolution_ms: u64,
    /// The most containers one node keeps figures for; more are counted in
    /// `shoal_agent_usage_containers_dropped_total` and not reported.
    pub max_containers: usize,
    /// How often the autoscaler (on the Raft leader) syncs each
    /// HorizontalPodAutoscaler, in milliseconds (Kubernetes: 15 s).
    pub autoscaler_sync_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            resolution_ms: 5_000,
            max_containers: 1_000,
            autoscaler_sync_ms: 5_000,
        }
    }
}

/// Errors of a usage read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The node could not be asked or its reply was unusable.
    #[error("usage of node {node}: {msg}")]
    Unavailable {
        /// The node asked.
        node: String,
        /// What went wrong.
        msg: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ContainerKey {
    id: String,
}

#[derive(Debug, Clone)]
struct ContainerMeta {
    namespace: String,
    pod: String,
    container: String,
}

struct State {
    containers: Windows<ContainerKey, ContainerMeta>,
    host: Option<Window>,
    snapshot: Arc<NodeSample>,
}

/// Samples this node and serves and fetches samples.
pub struct UsageService {
    ctx: Arc<Ctx>,
    net: Net,
    cfg: MetricsConfig,
    clk_tck: u64,
    state: RwLock<State>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Sample,
}

impl UsageService {
    /// Creates the service, registers it on the `Usage` channel and starts
    /// sampling; the sampler stops when the returned service is dropped.
    pub fn start(ctx: Arc<Ctx>, net: Net, cfg: MetricsConfig) -> Arc<UsageService> {
        let svc = Arc::new(UsageService {
            state: RwLock::new(State {
                containers: Windows::new(cfg.max_containers),
                host: None,
                snapshot: Arc::new(NodeSample {
                    node: ctx.node.clone(),
                    ..Default::default()
                }),
            }),
            ctx,
            net: net.clone(),
            cfg,
            clk_tck: clock_ticks(),
        });
        net.set_handler(Channel::Usage, Arc::new(UsageHandler(svc.clone())));
        let weak = Arc::downgrade(&svc);
        let every = Duration::from_millis(svc.cfg.resolution_ms.max(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(svc) = weak.upgrade() else { return };
                svc.sample_once().await;
            }
        });
        svc
    }

    /// This node's latest sample.
    pub fn local(&self) -> Arc<NodeSample> {
        match self.state.read() {
            Ok(s) => s.snapshot.clone(),
            Err(_) => Arc::new(NodeSample::default()),
        }
    }

    /// Takes one round of samples now (the loop's body; tests call it to
    /// not wait for the tick).
    pub async fn sample_once(&self) {
        let started = std::time::Instant::now();
        let seen = self.read_containers().await;
        let clk = self.clk_tck;
        let host = tokio::task::spawn_blocking(move || host::read(clk))
            .await
            .ok()
            .flatten();
        let at = now_ms();
        let Ok(mut st) = self.state.write() else {
            return;
        };
        let dropped = st.containers.round(seen);
        if dropped > 0 {
            metrics::counter!(super::metrics::USAGE_CONTAINERS_DROPPED_TOTAL)
                .increment(dropped as u64);
        }
        if let Some((cpu_nanos, memory)) = host {
            let p = Point {
                at_ms: at,
                cpu_nanos,
                memory,
            };
            match st.host.as_mut() {
                Some(w) => w.push(p),
                None => st.host = Some(Window::new(p)),
            }
        }
        st.snapshot = Arc::new(snapshot(&self.ctx.node, &st, at));
        metrics::gauge!(super::metrics::USAGE_CONTAINERS).set(st.containers.len() as f64);
        metrics::histogram!(super::metrics::USAGE_SAMPLE_SECONDS)
            .record(started.elapsed().as_secs_f64());
    }

    async fn read_containers(&self) -> Vec<(ContainerKey, ContainerMeta, Point)> {
        let Some(labels) = self.ctx.owned_labels() else {
            return Vec::new();
        };
        // The agent's sync lists the containers every `agent.resync_ms`;
        // a list that recent is reused rather than asked of the engine again
        // (the engine's list cost as much as reading 50 containers' stats).
        let fresh = Duration::from_millis(self.cfg.resolution_ms);
        let recent = self
            .ctx
            .listed
            .read()
            .ok()
            .and_then(|l| l.clone())
            .filter(|(at, _)| at.elapsed() < fresh)
            .map(|(_, l)| l);
        let list = match recent {
            Some(l) => l,
            None => match self.ctx.runtime.list(&labels).await {
                Ok(l) => Arc::new(l),
                Err(e) => {
                    debug!("usage: cannot list containers: {e}");
                    return Vec::new();
                }
            },
        };
        let running = list.iter().cloned().filter_map(|c| {
            if c.state != ContainerState::Running {
                return None;
            }
            let (ns, pod) = c.labels.get(LABEL_POD)?.split_once('/')?;
            let meta = ContainerMeta {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: c.labels.get(LABEL_CONTAINER)?.clone(),
            };
            Some((c.id, meta))
        });
        let runtime = self.ctx.runtime.clone();
        futures::stream::iter(running)
            .map(|(id, meta)| {
                let runtime = runtime.clone();
                async move {
                    let s = runtime.stats(&id).await.ok()?;
                    let p = Point {
                        at_ms: now_ms(),
                        cpu_nanos: s.cpu_total_nanos,
                        memory: s.memory_bytes,
                    };
                    Some((ContainerKey { id }, meta, p))
                }
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .filter_map(|x| async move { x })
            .collect()
            .await
    }

    /// Prometheus text of this node's container series (see `prom`).
    pub fn prometheus_text(&self) -> String {
        prom::render(&self.local())
    }

    /// Every node's sample: this node's own, and the others' asked over
    /// libp2p in parallel. `nodes` are the live members' names; a node
    /// that fails or is slow is left out (and logged), not waited for.
    pub async fn fetch_all(&self, nodes: &[String]) -> Vec<NodeSample> {
        let asks = nodes.iter().map(|n| async move {
            if *n == self.ctx.node {
                return Ok((*self.local()).clone());
            }
            match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(n)).await {
                Ok(r) => r,
                Err(_) => Err(UsageError::Unavailable {
                    node: n.clone(),
                    msg: format!("no answer within {FETCH_TIMEOUT:?}"),
                }),
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(s) => Some(s),
                Err(e) => {
                    debug!("{e}");
                    None
                }
            })
            .collect()
    }

    /// One other node's sample.
    pub async fn fetch(&self, node: &str) -> Result<NodeSample, UsageError> {
        let err = |msg: String| UsageError::Unavailable {
            node: node.to_string(),
            msg,
        };
        let (peer, addrs) = super::sessions::peer_of(&self.ctx.store, node).map_err(err)?;
        let body = bincode::serde::encode_to_vec(&Request::Sample, bincode::config::standard())
            .map_err(|e| err(e.to_string()))?;
        let reply = self
            .net
            .request(peer, addrs, Channel::Usage, body)
            .await
            .map_err(|e| err(e.to_string()))?;
        let (sample, _): (NodeSample, usize) =
            crate::net::decode_bounded::<NodeSample, MAX_REPLY>(&reply)
                .map_err(|e| err(format!("bad reply: {e}")))?;
        // A peer names itself: a reply claiming another node's name is
        // refused, so one node cannot shadow another's figures.
        if sample.node != node {
            return Err(err(format!("reply names node {:?}", sample.node)));
        }
        Ok(sample)
    }
}

/// The sample the node serves: rates of every container with two points,
/// grouped by pod.
fn snapshot(node: &str, st: &State, at: u64) -> NodeSample {
    let mut pods: BTreeMap<(String, String), PodSample> = BTreeMap::new();
    for (_, meta, w) in st.containers.iter() {
        let Some((nanocores, window_ms)) = w.rate() else {
            continue;
        };
        let last = w.last();
        let pod = pods
            .entry((meta.namespace.clone(), meta.pod.clone()))
            .or_insert_with(|| PodSample {
                namespace: meta.namespace.clone(),
                name: meta.pod.clone(),
                timestamp_ms: last.at_ms,
                window_ms,
                containers: Vec::new(),
            });
        pod.timestamp_ms = pod.timestamp_ms.max(last.at_ms);
        pod.window_ms = pod.window_ms.max(window_ms);
        pod.containers.push(ContainerSample {
            name: meta.container.clone(),
            cpu_nanocores: nanocores,
            memory_bytes: last.memory,
            cpu_seconds_total: last.cpu_nanos as f64 / 1e9,
        });
    }
    for p in pods.values_mut() {
        p.containers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let (cpu, window_ms, memory) = match st.host.as_ref() {
        Some(w) => {
            let (c, win) = w.rate().unwrap_or((0, 0));
            (c, win, w.last().memory)
        }
        None => (0, 0, 0),
    };
    NodeSample {
        node: node.to_string(),
        timestamp_ms: at,
        window_ms,
        cpu_nanocores: cpu,
        memory_bytes: memory,
        pods: pods.into_values().collect(),
    }
}

/// Decodes a peer's bytes as a usage request and as a reply (for the fuzz
/// target); how many decoded.
pub(crate) fn decode_peer_body(body: &[u8]) -> usize {
    usize::from(crate::net::decode_bounded::<Request, 64>(body).is_ok())
        + usize::from(crate::net::decode_bounded::<NodeSample, MAX_REPLY>(body).is_ok())
}

struct UsageHandler(Arc<UsageService>);

impl Handler for UsageHandler {
    fn handle(&self, _from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let svc = self.0.clone();
        Box::pin(async move {
            // The request is one tag; anything longer is not ours.
            let _: (Request, usize) = crate::net::decode_bounded::<Request, 64>(&body)
                .map_err(|e| format!("bad usage request: {e}"))?;
            bincode::serde::encode_to_vec(&*svc.local(), bincode::config::standard())
                .map_err(|e| e.to_string())
        })
    }
}
