//! The load put on the cluster while faults run, and what it observed:
//! writers creating uniquely named ConfigMaps, register clients whose
//! history goes to the linearizability checker, a client going through the
//! Service's nodePort, and a poller recording every node's (term, leader).
//!
//! A request that times out or fails after it may have been sent is
//! ambiguous: it may or may not have taken effect, and is never counted as
//! a failure of the cluster. Only a request that could not even connect is
//! known not to have happened.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal::client::{Client, ClientError};
use shoal::resource::status::PodStatus;

use crate::cluster::Cluster;
use crate::linearizability::{Op, Operation, Outcome};
use crate::scenario::Workload;

/// Name of the Deployment and Service the harness runs.
pub const APP: &str = "chaos-web";
/// The StatefulSet the workload runs (with `statefulset > 0`).
pub const STS: &str = "chaos-sts";

/// Name prefix of the writers' ConfigMaps.
pub const WRITE_PREFIX: &str = "chaos-w-";
/// Name prefix of the register ConfigMaps.
pub const REGISTER_PREFIX: &str = "chaos-reg-";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the writers saw.
#[derive(Debug, Default, Serialize)]
pub struct WriteLog {
    /// Creates sent (or attempted).
    pub attempted: u64,
    /// (name, value) of creates answered 2xx, or 409 (the object exists).
    pub acknowledged: Vec<(String, String)>,
    /// (name, value) of creates without a definite answer (timeout, 5xx, cut connection).
    pub ambiguous: Vec<(String, String)>,
    /// Creates that could not connect: they never reached a node.
    pub refused: u64,
    /// Creates refused with a 4xx other than 409 (a harness bug if any).
    pub rejected: u64,
    /// Counts of ambiguous and rejected answers by reason.
    pub reasons: BTreeMap<String, u64>,
}

/// Register operations by outcome.
#[derive(Debug, Default, Serialize)]
pub struct RegisterStats {
    /// Acknowledged writes.
    pub writes_ok: u64,
    /// Acknowledged deletes.
    pub deletes_ok: u64,
    /// Reads that returned.
    pub reads_ok: u64,
    /// Operations with an unknown outcome.
    pub unknown: u64,
    /// Operations that could not connect (left out of the history).
    pub refused: u64,
    /// Counts of unknown outcomes by reason.
    pub reasons: BTreeMap<String, u64>,
}

/// Requests through the Service.
#[derive(Debug, Default, Serialize)]
pub struct ServiceStats {
    /// Answered 200 with the page.
    pub ok: u64,
    /// Anything else.
    pub failed: u64,
    /// Longest run of consecutive failures, in seconds.
    pub longest_outage_secs: f64,
    #[serde(skip)]
    outage_since: Option<Instant>,
}

/// What the Raft poller saw.
#[derive(Debug, Default, Serialize)]
pub struct LeaderLog {
    /// Leader ids seen per term (from `leader`, and from a node calling itself leader).
    pub per_term: BTreeMap<u64, BTreeSet<u64>>,
    /// Node names by Raft id.
    pub names: BTreeMap<u64, String>,
    /// (seconds, term, leader name) the first time each pair was seen.
    pub changes: Vec<(f64, u64, String)>,
    /// Polls answered.
    pub polls: u64,
    /// Longest stretch, in seconds, without a leader that a majority of the
    /// nodes follow.
    pub longest_leaderless_secs: f64,
    /// All such stretches together, in seconds.
    pub leaderless_secs: f64,
    /// (start seconds, length) of the five longest stretches without a leader.
    pub leaderless_worst: Vec<(f64, f64)>,
    /// (seconds, term) each time the highest term any node reported rose.
    pub term_rises: Vec<(f64, u64)>,
    #[serde(skip)]
    leaderless_since: Option<f64>,
}

impl LeaderLog {
    /// Notes whether a poll round (at `t` seconds) found a leader.
    fn round(&mut self, t: f64, leader_seen: bool) {
        match (leader_seen, self.leaderless_since) {
            (false, None) => self.leaderless_since = Some(t),
            (true, Some(since)) => {
                self.leaderless_since = None;
                let len = t - since;
                self.leaderless_secs += len;
                self.longest_leaderless_secs = self.longest_leaderless_secs.max(len);
                self.leaderless_worst.push((since, len));
                self.leaderless_worst.sort_by(|a, b| b.1.total_cmp(&a.1));
                self.leaderless_worst.truncate(5);
            }
            _ => {}
        }
    }
}

impl LeaderLog {
    /// Terms with more than one leader, with the leaders' names.
    pub fn violations(&self) -> Vec<(u64, Vec<String>)> {
        self.per_term
            .iter()
            .filter(|(_, l)| l.len() > 1)
            .map(|(t, l)| (*t, l.iter().map(|id| self.name(*id)).collect()))
            .collect()
    }

    /// A node's name by Raft id, or the id.
    pub fn name(&self, id: u64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

/// Pods seen running on two nodes at once while the faults ran (expected
/// with `disconnected_pods = "keep"` while a node is cut off; only the state
/// after healing is a check).
#[derive(Debug, Default, Serialize)]
pub struct DuplicateLog {
    /// Looks taken (about one a second).
    pub samples: u64,
    /// Looks that found a pod on two nodes.
    pub samples_with_duplicates: u64,
    /// Most pods running twice in one look.
    pub max_at_once: usize,
    /// The first few seen, with the time.
    pub examples: Vec<String>,
    /// Most containers of the Deployment's pods running at once, all nodes
    /// together: above the replicas while a cut-off node keeps pods that
    /// were replaced elsewhere (their replacements have other names).
    pub max_deployment_copies: usize,
    /// Looks that found one of the StatefulSet's ordinals on two nodes:
    /// never allowed, faults or not (a StatefulSet pod is replaced only once
    /// its node is known dead).
    pub statefulset_twice: u64,
    /// The first few of those, with the time.
    pub statefulset_examples: Vec<String>,
    /// Most of the StatefulSet's containers running in one look: the
    /// check means nothing unless its pods ran.
    pub max_statefulset_copies: usize,
}

/// The StatefulSet's pods (`default/chaos-sts-N`) among `twice`, the
/// `pod on nodes` lines of one look.
pub fn statefulset_ordinals_twice(twice: &[String]) -> Vec<String> {
    let prefix = format!("default/{STS}-");
    twice
        .iter()
        .filter(|l| {
            l.strip_prefix(&prefix)
                .and_then(|r| r.split_once(' '))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .cloned()
        .collect()
}

/// One register operation with the node it went to.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// The operation as the checker sees it.
    #[serde(flatten)]
    pub op: Operation,
    /// The node that was asked.
    pub node: String,
    /// Why the outcome is unknown, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Everything the workload observed.
pub struct Recorder {
    /// The clock of every timestamp.
    pub t0: Instant,
    /// Writers.
    pub writes: Mutex<WriteLog>,
    /// Register history.
    pub history: Mutex<Vec<Recorded>>,
    /// Register counts.
    pub registers: Mutex<RegisterStats>,
    /// Service client.
    pub service: Mutex<ServiceStats>,
    /// Raft poller.
    pub leaders: Mutex<LeaderLog>,
    /// Pods running twice during the run.
    pub duplicates: Mutex<DuplicateLog>,
    /// (seconds, Deployment pods Running and Ready), about once a second.
    pub ready: Mutex<Vec<(f64, usize)>>,
}

impl Recorder {
    /// An empty recorder whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            t0: Instant::now(),
            writes: Mutex::default(),
            history: Mutex::default(),
            registers: Mutex::default(),
            service: Mutex::default(),
            leaders: Mutex::default(),
            duplicates: Mutex::default(),
            ready: Mutex::default(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// Seconds since the recorder started.
    pub fn secs(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Locks the writers' log.
    pub fn writes(&self) -> MutexGuard<'_, WriteLog> {
        lock(&self.writes)
    }

    /// Locks the register history.
    pub fn history(&self) -> MutexGuard<'_, Vec<Recorded>> {
        lock(&self.history)
    }

    /// Locks the register counts.
    pub fn registers(&self) -> MutexGuard<'_, RegisterStats> {
        lock(&self.registers)
    }

    /// Locks the service counts.
    pub fn service(&self) -> MutexGuard<'_, ServiceStats> {
        lock(&self.service)
    }

    /// Locks the leader log.
    pub fn leaders(&self) -> MutexGuard<'_, LeaderLog> {
        lock(&self.leaders)
    }

    /// Locks the readiness timeline.
    pub fn ready(&self) -> MutexGuard<'_, Vec<(f64, usize)>> {
        lock(&self.ready)
    }

    /// Locks the duplicate log.
    pub fn duplicates(&self) -> MutexGuard<'_, DuplicateLog> {
        lock(&self.duplicates)
    }
}

/// What came of one request.
enum Answer {
    /// An HTTP status and the body (JSON, or Null).
    Status(u16, Value),
    /// The connection could not be made: nothing was sent.
    NotSent,
    /// Sent, but no definite answer.
    Ambiguous(String),
}

/// The clients' view of one node's API: the library's client, and the
/// time limit of a request.
#[derive(Clone)]
struct Api {
    clients: Arc<Vec<Client>>,
    timeout: Duration,
}

impl Api {
    /// Sends a request to node `i` and sorts the answer: not sent (the
    /// connection failed, so nothing reached the node), an HTTP answer,
    /// or ambiguous (sent, no definite answer).
    async fn call(&self, i: usize, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let Some(client) = self.clients.get(i) else {
            return Answer::NotSent;
        };
        let body = body.map(|b| b.to_string().into_bytes());
        match client.call(method, path, body, Some(self.timeout)).await {
            Err(ClientError::Unreachable { .. }) => Answer::NotSent,
            Err(ClientError::Timeout { .. }) => Answer::Ambiguous("timeout".into()),
            Err(e) => Answer::Ambiguous(format!("transport: {}", root_cause(&e.to_string()))),
            Ok(r) => {
                let code = r.status().as_u16();
                match r.bytes().await {
                    Ok(b) => {
                        Answer::Status(code, serde_json::from_slice(&b).unwrap_or(Value::Null))
                    }
                    Err(_) => Answer::Ambiguous(format!("{code} with its body cut off")),
                }
            }
        }
    }
}

/// The innermost cause of an error chain (`a: b: c` gives `c`), short
/// enough to count by.
fn root_cause(chain: &str) -> String {
    // A cause that is a link to documentation says nothing by itself.
    let last = chain
        .rsplit(": ")
        .find(|part| !part.starts_with("https://"))
        .unwrap_or(chain);
    last.chars().take(80).collect()
}

/// Picks a node that has a process (running or hung), as a client that
/// knows the member list but not which host just hung would.
fn pick(cluster: &Cluster, rng: &mut StdRng) -> Option<usize> {
    let nodes = cluster.reachable();
    if nodes.is_empty() {
        return None;
    }
    Some(nodes[rng.random_range(0..nodes.len())])
}

/// The handles of the running workload.
pub struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Tells every client to stop and waits for them (each finishes its
    /// request in flight, bounded by the request timeout).
    pub async fn stop(self, limit: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let all = futures::future::join_all(self.tasks);
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// Starts the writers, register clients and the service client.
pub fn start(
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    w: &Workload,
    seed: u64,
) -> anyhow::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    // Connections give up before the request's time limit, so a node
    // that cannot be reached counts as "not sent", not as ambiguous.
    let connect = Duration::from_millis(w.request_timeout_ms.min(2_000));
    let api = Api {
        clients: Arc::new(
            (0..cluster.len())
                .map(|i| cluster.api_client(i, connect))
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        timeout: Duration::from_millis(w.request_timeout_ms),
    };
    let mut tasks = Vec::new();
    for id in 0..w.writers {
        tasks.push(tokio::spawn(writer(
            id,
            cluster.clone(),
            rec.clone(),
            api.clone(),
            stop.clone(),
            Duration::from_millis(w.write_interval_ms),
            seed.wrapping_add(1000 + id as u64),
        )));
    }
    if w.registers > 0 {
        for id in 0..w.register_clients {
            tasks.push(tokio::spawn(register_client(
                id,
                cluster.clone(),
                rec.clone(),
                api.clone(),
                stop.clone(),
                w.clone(),
                seed.wrapping_add(2000 + id as u64),
            )));
        }
    }
    if w.service {
        tasks.push(tokio::spawn(service_client(
            cluster.clone(),
            rec.clone(),
            stop.clone(),
            w.clone(),
            seed.wrapping_add(3000),
        )?));
    }
    Ok(Running { stop, tasks })
}

async fn writer(
    id: usize,
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    api: Api,
    stop: Arc<AtomicBool>,
    interval: Duration,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(node) = pick(&cluster, &mut rng) else {
            tokio::time::sleep(interval).await;
            continue;
        };
        let name = format!("{WRITE_PREFIX}{id}-{seq}");
        let value = format!("w{id}-{seq}");
        seq += 1;
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"value": value},
        });
        rec.writes().attempted += 1;
        let answer = api
            .call(
                node,
                Method::POST,
                "/v1/namespaces/default/configmaps",
                Some(&body),
            )
            .await;
        record_write(&mut rec.writes(), answer, name, value);
        tokio::time::sleep(interval).await;
    }
}

/// Files one create's answer.
fn record_write(log: &mut WriteLog, answer: Answer, name: String, value: String) {
    match answer {
        // 409: a create retried inside the cluster after a lost reply
        // reports AlreadyExists; either way the object exists now.
        Answer::Status(200 | 201 | 409, _) => log.acknowledged.push((name, value)),
        Answer::Status(code, v) if code >= 500 => {
            *log.reasons.entry(reason(code, &v)).or_default() += 1;
            log.ambiguous.push((name, value));
        }
        Answer::Status(code, v) => {
            *log.reasons.entry(reason(code, &v)).or_default() += 1;
            log.rejected += 1;
        }
        Answer::NotSent => log.refused += 1,
        Answer::Ambiguous(why) => {
            *log.reasons.entry(why).or_default() += 1;
            log.ambiguous.push((name, value));
        }
    }
}

/// `CODE: first words of the error`, to count answers by.
fn reason(code: u16, body: &Value) -> String {
    let msg: String = body["error"]
        .as_str()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    format!("{code} {msg}").trim().to_string()
}

async fn register_client(
    id: usize,
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    api: Api,
    stop: Arc<AtomicBool>,
    w: Workload,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let interval = Duration::from_millis(w.register_interval_ms);
    let mut seq = 0u64;
    // A client whose operation's outcome is unknown continues as a new
    // process (as Knossos models it): its unknown operation stays open.
    let mut process = (id as u64) << 32;
    while !stop.load(Ordering::SeqCst) {
        let Some(node) = pick(&cluster, &mut rng) else {
            tokio::time::sleep(interval).await;
            continue;
        };
        let key = format!("{REGISTER_PREFIX}{}", rng.random_range(0..w.registers));
        let path = format!("/v1/namespaces/default/configmaps/{key}");
        let r: f64 = rng.random();
        let op = if r < w.delete_ratio {
            Op::Delete
        } else if r < w.delete_ratio + (1.0 - w.delete_ratio) / 2.0 {
            seq += 1;
            Op::Write(format!("c{id}-{seq}"))
        } else {
            Op::Read
        };
        let (method, path, body) = match &op {
            Op::Write(v) => (
                Method::POST,
                "/v1/apply".to_string(),
                Some(json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": key, "namespace": "default"},
                    "data": {"value": v},
                })),
            ),
            Op::Read => (Method::GET, path, None),
            Op::Delete => (Method::DELETE, path, None),
        };
        let call_ns = rec.now_ns();
        let answer = api.call(node, method, &path, body.as_ref()).await;
        let return_ns = rec.now_ns();
        let (outcome, why) = match (&op, answer) {
            (_, Answer::NotSent) => {
                rec.registers().refused += 1;
                tokio::time::sleep(interval).await;
                continue;
            }
            (Op::Write(_), Answer::Status(200 | 201, _)) => (Outcome::WriteOk, None),
            (Op::Read, Answer::Status(200, v)) => {
                // A register object without a value is never written: keep
                // it as a value no write produced, so the checker flags it.
                let value = v["data"]["value"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("<object without data.value: {v}>"));
                (Outcome::ReadOk(Some(value)), None)
            }
            (Op::Read, Answer::Status(404, _)) => (Outcome::ReadOk(None), None),
            (Op::Delete, Answer::Status(200, _)) => (Outcome::DeleteOk, None),
            // A delete of an absent key: the store may have retried a
            // delete that did apply, so this says nothing definite.
            (Op::Delete, Answer::Status(404, _)) => (Outcome::Unknown, Some("404".to_string())),
            (_, Answer::Status(code, v)) => (Outcome::Unknown, Some(reason(code, &v))),
            (_, Answer::Ambiguous(why)) => (Outcome::Unknown, Some(why)),
        };
        {
            let mut st = rec.registers();
            match (&outcome, &why) {
                (Outcome::WriteOk, _) => st.writes_ok += 1,
                (Outcome::DeleteOk, _) => st.deletes_ok += 1,
                (Outcome::ReadOk(_), _) => st.reads_ok += 1,
                (Outcome::Unknown, w) => {
                    st.unknown += 1;
                    *st.reasons.entry(w.clone().unwrap_or_default()).or_default() += 1;
                }
            }
        }
        let unknown = matches!(outcome, Outcome::Unknown);
        rec.history().push(Recorded {
            op: Operation {
                client: process,
                key,
                op,
                call_ns,
                return_ns,
                outcome,
            },
            node: cluster.specs[node].name.clone(),
            reason: why,
        });
        if unknown {
            process += 1;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The page every replica serves, so a 200 from something else is not counted.
pub const PAGE: &str = "shoal-chaos web\n";

async fn service_client_loop(
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    http: reqwest::Client,
    w: Workload,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        if let Some(node) = pick(&cluster, &mut rng) {
            let url = format!("http://{}:{}/", cluster.specs[node].ip, w.node_port);
            let ok = match http.get(url).send().await {
                Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t == PAGE),
                _ => false,
            };
            let mut st = rec.service();
            if ok {
                st.ok += 1;
                if let Some(since) = st.outage_since.take() {
                    st.longest_outage_secs =
                        st.longest_outage_secs.max(since.elapsed().as_secs_f64());
                }
            } else {
                st.failed += 1;
                st.outage_since.get_or_insert_with(Instant::now);
            }
        }
        tokio::time::sleep(Duration::from_millis(w.service_interval_ms)).await;
    }
    let mut st = rec.service();
    if let Some(since) = st.outage_since.take() {
        st.longest_outage_secs = st.longest_outage_secs.max(since.elapsed().as_secs_f64());
    }
}

fn service_client(
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    w: Workload,
    seed: u64,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    // A fresh connection per request: the load balancer's choice is made
    // per connection, and a pooled one would stick to one endpoint.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()?;
    Ok(service_client_loop(cluster, rec, stop, http, w, seed))
}

/// A pod object's Ready condition is True.
pub fn is_ready(p: &Value) -> bool {
    pod_status(p).is_ready()
}

/// A pod object has Succeeded or Failed.
pub fn is_terminal(p: &Value) -> bool {
    pod_status(p).is_terminal()
}

/// The pod's status as shoal types it; an unreadable one reads as empty
/// (neither ready nor terminal).
fn pod_status(p: &Value) -> PodStatus {
    PodStatus::deserialize(&p["status"]).unwrap_or_default()
}

/// The Deployment's pods as (name, node, running-and-ready), non-terminal
/// only, from node `i`: linearizable, or its local replica.
pub async fn app_pods(
    cluster: &Cluster,
    i: usize,
    consistent: bool,
) -> Option<Vec<(String, String, bool)>> {
    let v = cluster
        .get_json(
            i,
            &format!("/v1/namespaces/default/pods?consistent={consistent}"),
            Duration::from_secs(if consistent { 5 } else { 2 }),
        )
        .await?;
    Some(
        v["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == APP && !is_terminal(p))
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    p["status"]["phase"] == "Running" && is_ready(p),
                )
            })
            .collect(),
    )
}

/// How many of the Deployment's pods are Running and Ready in node `i`'s local replica.
pub async fn ready_count(cluster: &Cluster, i: usize) -> Option<usize> {
    Some(
        app_pods(cluster, i, false)
            .await?
            .iter()
            .filter(|p| p.2)
            .count(),
    )
}

/// Looks once which pods run on more than one node.
fn sample_duplicates(cluster: &Cluster, rec: &Recorder) {
    let mut by_pod: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut copies, mut sts_copies) = (0, 0);
    let app_prefix = format!("default/{}-", APP);
    let sts_prefix = format!("default/{STS}-");
    for i in 0..cluster.len() {
        for c in cluster.running_containers(i) {
            if c.pod.starts_with(&app_prefix) {
                copies += 1;
            }
            if c.pod.starts_with(&sts_prefix) {
                sts_copies += 1;
            }
            by_pod.entry(c.pod).or_default().insert(c.node);
        }
    }
    let twice: Vec<String> = by_pod
        .into_iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|(pod, nodes)| {
            let nodes: Vec<String> = nodes.into_iter().collect();
            format!("{pod} on {}", nodes.join(" and "))
        })
        .collect();
    let t = rec.secs();
    let ordinals = statefulset_ordinals_twice(&twice);
    let mut log = rec.duplicates();
    log.samples += 1;
    log.max_statefulset_copies = log.max_statefulset_copies.max(sts_copies);
    if !ordinals.is_empty() {
        log.statefulset_twice += 1;
        if log.statefulset_examples.len() < 10 {
            log.statefulset_examples
                .push(format!("{t:.1}s: {}", ordinals.join(", ")));
        }
    }
    log.max_deployment_copies = log.max_deployment_copies.max(copies);
    if !twice.is_empty() {
        log.samples_with_duplicates += 1;
        log.max_at_once = log.max_at_once.max(twice.len());
        if log.examples.len() < 10 {
            log.examples.push(format!("{t:.1}s: {}", twice.join(", ")));
        }
    }
}

/// Counts the Deployment's ready pods in the leader's replica (it has
/// every committed write, and a local read does not wait on a quorum that
/// a fault may have taken away).
async fn sample_ready(cluster: &Cluster, rec: &Recorder) {
    let t = rec.secs();
    let Some((leader, _)) = cluster.leader().await else {
        return;
    };
    if let Some(n) = ready_count(cluster, leader).await {
        rec.ready().push((t, n));
    }
}

/// Whether some node calls itself leader and a majority of all `n` nodes
/// (itself included) name it as their leader: a leader cut off in a
/// minority, or one the others gave up on, does not count.
fn majority_leader(views: &[(usize, Option<crate::cluster::RaftView>)], n: usize) -> bool {
    views
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .filter(|v| v.state == "Leader")
        .any(|l| {
            let backers = views
                .iter()
                .filter_map(|(_, v)| v.as_ref())
                .filter(|v| v.leader == Some(l.node_id))
                .count();
            backers > n / 2
        })
}

/// Polls every node's `/v1/raft` every 200 ms until stopped, recording
/// (term, leader); beside it, about once a second, looks for pods running
/// on two nodes and, with a Deployment, counts its ready pods.
pub fn start_poller(cluster: Arc<Cluster>, rec: Arc<Recorder>, deployment: bool) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, c, r) = (stop.clone(), cluster.clone(), rec.clone());
    let sampler = tokio::spawn(async move {
        while !flag.load(Ordering::SeqCst) {
            let next = tokio::time::Instant::now() + Duration::from_secs(1);
            // Reads /proc and state files (or runs `docker ps`): blocking.
            let (c2, r2) = (c.clone(), r.clone());
            let _ = tokio::task::spawn_blocking(move || sample_duplicates(&c2, &r2)).await;
            if deployment {
                sample_ready(&c, &r).await;
            }
            tokio::time::sleep_until(next).await;
        }
    });
    let flag = stop.clone();
    let poller = tokio::spawn(async move {
        while !flag.load(Ordering::SeqCst) {
            let t = rec.secs();
            let views = cluster.raft_all().await;
            rec.leaders()
                .round(t, majority_leader(&views, cluster.len()));
            if let Some(top) = views
                .iter()
                .filter_map(|(_, v)| v.as_ref())
                .map(|v| v.term)
                .max()
            {
                let mut log = rec.leaders();
                if log.term_rises.last().is_none_or(|(_, m)| top > *m) {
                    log.term_rises.push((t, top));
                }
            }
            for (_, view) in views {
                let Some(v) = view else { continue };
                let mut log = rec.leaders();
                log.polls += 1;
                for (id, name) in v.voters.iter().chain(&v.learners) {
                    if !name.is_empty() {
                        log.names.insert(*id, name.clone());
                    }
                }
                let mut seen = Vec::new();
                if let Some(l) = v.leader {
                    seen.push(l);
                }
                if v.state == "Leader" {
                    seen.push(v.node_id);
                }
                for l in seen {
                    if log.per_term.entry(v.term).or_default().insert(l) {
                        let name = log.name(l);
                        log.changes.push((t, v.term, name));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Running {
        stop,
        tasks: vec![poller, sampler],
    }
}
