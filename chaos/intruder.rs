//! Intruders: processes that are not, or no longer, members of the cluster
//! and try to join it, vote, append and write through it.
//!
//! - `intruder-unkeyed`: a real `shoal agent` in a namespace of its own
//!   that joins every member with a *different* cluster key (one with no
//!   key at all must refuse to start, which is checked first), and a raw
//!   TCP client sending garbage, a plain libp2p handshake and a pnet
//!   handshake with a wrong key to every member's p2p port.
//! - `intruder-removed-leader` / `-follower`: a node is killed and its data
//!   dir copied (its old disk), then its host is replaced (empty data dir,
//!   new identity, same name) so autopilot removes the old identity from
//!   the Raft configuration. The copy then boots in a namespace of its own
//!   with the cluster key: a keyed node outside the configuration that
//!   believes it is a voter of its old term (and, for the leader, that it
//!   still leads it, so it appends). It is started without `--join`: it
//!   never announces itself by gossip, so autopilot has no reason to add it
//!   back, and it keeps sending Raft RPCs for the whole hold.
//!
//! During each window the harness writes ConfigMaps `chaos-intruder-*`
//! through the intruder's own API, watches every member's gossip members
//! and Raft configuration for the intruder, and counts the members'
//! refusals (`/metrics`) before and after. The checks (checks.rs) then ask
//! that no term or leader changed during a window, that the intruder never
//! appeared in a member's members or configuration, that the members did
//! refuse it, and that no `chaos-intruder-*` object exists on any member.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{Cluster, ExtraAgent, ExtraSpec, NodeState};
use crate::netns;
use crate::record::{FaultRecord, IntruderRecord, ProbeStats};
use crate::workload::Recorder;

/// Name prefix of the ConfigMaps written through intruders: none may ever
/// exist on a member.
pub const INTRUDER_PREFIX: &str = "chaos-intruder-";
/// The unkeyed agent's name (no node has it).
pub const UNKEYED_NAME: &str = "chaos-intruder";
/// Incoming p2p connections a member refused (no or another cluster key, not libp2p).
pub const REFUSED_CONNECTIONS: &str = "shoal_net_refused_connections_total";
/// Raft and store RPCs a member refused from a sender outside its configuration.
pub const REFUSED_RPCS: &str = "shoal_store_refused_rpcs_total";

/// The unkeyed intruder's namespace number; the removed node's is 2.
const UNKEYED_NS: usize = 1;
const REMOVED_NS: usize = 2;
/// How long a keyless agent gets to refuse to start.
const KEYLESS_LIMIT: Duration = Duration::from_secs(20);
/// How long the cluster gets to take the replaced host back in.
const WHOLE_LIMIT: Duration = Duration::from_secs(90);
/// Calm between the cluster being whole again and the removed node's boot,
/// so the replacement's election is over before the window opens.
const SETTLE: Duration = Duration::from_secs(3);

/// What every intruder episode of a run shares.
pub struct Context {
    run_dir: PathBuf,
    /// A cluster key that is not the cluster's.
    wrong_key: PathBuf,
    /// The CA the unkeyed agent's API presents (derived from its key).
    wrong_ca_pem: String,
    episodes: AtomicUsize,
}

impl Context {
    /// Writes the wrong key under `run_dir`.
    pub fn new(run_dir: &Path) -> anyhow::Result<Context> {
        let wrong_key = run_dir.join("intruder.key");
        let key = shoal::net::generate_cluster_key();
        shoal::net::write_private(&wrong_key, shoal::net::cluster_key_text(&key).as_bytes())
            .with_context(|| format!("cannot write {}", wrong_key.display()))?;
        let wrong_ca_pem = shoal::api::tls::ClusterCa::from_psk(&key)?.cert_pem();
        Ok(Context {
            run_dir: run_dir.to_path_buf(),
            wrong_key,
            wrong_ca_pem,
            episodes: AtomicUsize::new(0),
        })
    }

    fn next_episode(&self) -> usize {
        self.episodes.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Who to look for in the members' lists.
struct Ident {
    /// Matched against member and Raft names (only for a name no node has).
    name: Option<String>,
    /// Whether appearing in gossip counts: not for a keyed node, which may
    /// gossip (holding the key is the credential for that); the old
    /// identity also stays listed as down for an hour.
    gossip: bool,
    peer_id: Option<String>,
    node_id: Option<u64>,
}

/// Per-node (refused connections, refused RPCs).
async fn refusals(cluster: &Cluster) -> Vec<Option<(f64, f64)>> {
    let mut out = Vec::new();
    for i in 0..cluster.len() {
        if cluster.state(i) != NodeState::Running {
            out.push(None);
            continue;
        }
        let c = cluster.metric_sum(i, REFUSED_CONNECTIONS).await;
        let r = cluster.metric_sum(i, REFUSED_RPCS).await;
        out.push(c.zip(r));
    }
    out
}

/// The growth from `before` to `after`, summed over nodes read both times.
fn grown(before: &[Option<(f64, f64)>], after: &[Option<(f64, f64)>]) -> (f64, f64) {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Some(((*b)?, (*a)?)))
        .fold((0.0, 0.0), |(c, r), ((bc, br), (ac, ar))| {
            (c + (ac - bc).max(0.0), r + (ar - br).max(0.0))
        })
}

/// The leader's name and term, if there is one.
async fn leader_and_term(cluster: &Cluster) -> (Option<String>, Option<u64>) {
    match cluster.leader().await {
        Some((i, t)) => (Some(cluster.specs[i].name.clone()), Some(t)),
        None => (None, None),
    }
}

/// Writes a ConfigMap through the intruder's API once a second until
/// stopped; counts the answers.
fn spawn_writer(
    client: shoal::client::Client,
    episode: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(BTreeMap<String, u64>, u64)> {
    tokio::spawn(async move {
        let mut answers: BTreeMap<String, u64> = BTreeMap::new();
        let mut acked = 0;
        let mut seq = 0u64;
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            let body = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": format!("{INTRUDER_PREFIX}{episode}-{seq}"), "namespace": "default"},
                "data": {"value": "intruder"},
            });
            let answer = match client
                .call(
                    reqwest::Method::POST,
                    "/v1/namespaces/default/configmaps",
                    Some(body.to_string().into_bytes()),
                    Some(Duration::from_secs(3)),
                )
                .await
            {
                Ok(r) if r.status().is_success() => {
                    acked += 1;
                    format!("{}", r.status().as_u16())
                }
                Ok(r) => format!("{}", r.status().as_u16()),
                Err(shoal::client::ClientError::Unreachable { .. }) => "unreachable".into(),
                Err(shoal::client::ClientError::Timeout { .. }) => "timeout".into(),
                Err(_) => "transport error".into(),
            };
            *answers.entry(answer).or_default() += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        (answers, acked)
    })
}

/// What one garbage connection is made of, by attempt number.
fn garbage(n: u64) -> Vec<u8> {
    match n % 3 {
        // Noise.
        0 => rand::random::<[u8; 64]>().to_vec(),
        // A libp2p dialer without a cluster key: multistream-select, then noise.
        1 => b"\x13/multistream/1.0.0\n\x07/noise\n".to_vec(),
        // A pnet dialer with a wrong key: its nonce, then what decrypts to garbage.
        _ => rand::random::<[u8; 51]>().to_vec(),
    }
}

/// Connects to every member's p2p port once a second until stopped,
/// sending garbage and reading what comes back.
fn spawn_prober(
    targets: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<ProbeStats> {
    tokio::spawn(async move {
        let stats = Arc::new(Mutex::new(ProbeStats::default()));
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let round = targets.iter().map(|t| {
                n += 1;
                let (t, payload, stats) = (t.clone(), garbage(n), stats.clone());
                async move {
                    let tried = tokio::time::timeout(
                        Duration::from_secs(1),
                        tokio::net::TcpStream::connect(&t),
                    )
                    .await;
                    let connected = matches!(tried, Ok(Ok(_)));
                    let (closed, back) = match tried {
                        Ok(Ok(mut s)) => {
                            let _ = s.write_all(&payload).await;
                            let mut buf = [0u8; 4096];
                            let mut back = 0u64;
                            let closed = loop {
                                match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                                    .await
                                {
                                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                                    Ok(Ok(k)) => back += k as u64,
                                    Err(_) => break false,
                                }
                            };
                            (closed, back)
                        }
                        _ => (false, 0),
                    };
                    let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                    st.attempts += 1;
                    st.connected += u64::from(connected);
                    st.closed_by_member += u64::from(closed);
                    st.max_bytes_back = st.max_bytes_back.max(back);
                }
            });
            let next = tokio::time::Instant::now() + Duration::from_secs(1);
            futures::future::join_all(round.collect::<Vec<_>>()).await;
            tokio::time::sleep_until(next).await;
        }
        stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    })
}

/// Looks once at every running member for the intruder; returns what it found.
async fn admissions(cluster: &Cluster, who: &Ident, label: &str, t: f64) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..cluster.len() {
        if cluster.state(i) != NodeState::Running {
            continue;
        }
        let node = &cluster.specs[i].name;
        if !who.gossip {
        } else if let Some(members) = cluster.members_of(i).await {
            for (name, peer, state) in members {
                let by_name = who.name.as_deref() == Some(name.as_str());
                let by_peer = who.peer_id.as_deref() == Some(peer.as_str());
                if by_name || by_peer {
                    out.push(format!(
                        "{t:.1}s: {node} lists {label} among its members ({state})"
                    ));
                }
            }
        }
        if let Some(v) = cluster.raft(i).await {
            for (role, group) in [("voter", &v.voters), ("learner", &v.learners)] {
                for (id, name) in group {
                    let by_name = who.name.as_deref() == Some(name.as_str());
                    if by_name || who.node_id == Some(*id) {
                        out.push(format!(
                            "{t:.1}s: {node} has {label} in its Raft configuration as a {role}"
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The intruder's own Raft state and members, as its API reports them.
async fn own_view(client: &shoal::client::Client) -> Option<String> {
    let get = |p: &'static str| {
        client.send_within(reqwest::Method::GET, p, None, Some(Duration::from_secs(2)))
    };
    let raft = get("/v1/raft").await.ok();
    let members = get("/v1/members").await.ok();
    if raft.is_none() && members.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(r) = raft {
        let n = |k: &str| r[k].as_array().map_or(0, Vec::len);
        parts.push(format!(
            "{} of term {}, {} voters, {} learners",
            r["state"].as_str().unwrap_or("?"),
            r["term"],
            n("voters"),
            n("learners")
        ));
    }
    if let Some(m) = members {
        let others = m["items"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x["isSelf"] != true).count());
        parts.push(format!("{others} other members"));
    }
    Some(parts.join("; "))
}

/// Holds the window: every second looks for the intruder in the members'
/// lists and (when `client` answers) asks it what it sees. Returns the
/// intruder's PeerId if it learned it.
async fn hold_window(
    cluster: &Cluster,
    rec: &Recorder,
    who: &mut Ident,
    client: &shoal::client::Client,
    learn_peer: bool,
    hold: Duration,
    r: &mut IntruderRecord,
) {
    let end = Instant::now() + hold;
    while Instant::now() < end {
        let next = Instant::now() + Duration::from_secs(1);
        if learn_peer
            && who.peer_id.is_none()
            && let Ok(v) = client
                .send_within(
                    reqwest::Method::GET,
                    "/v1/members",
                    None,
                    Some(Duration::from_secs(2)),
                )
                .await
        {
            who.peer_id = v["items"].as_array().and_then(|a| {
                a.iter()
                    .find(|m| m["isSelf"] == true)
                    .and_then(|m| m["peerId"].as_str().map(str::to_string))
            });
            r.peer_id = who.peer_id.clone();
        }
        if let Some(v) = own_view(client).await
            && r.own_view.last() != Some(&v)
            && r.own_view.len() < 10
        {
            r.own_view.push(format!("{:.1}s: {v}", rec.secs()));
        }
        for a in admissions(cluster, who, &r.name, rec.secs()).await {
            if r.admitted.len() < 20 {
                r.admitted.push(a);
            }
        }
        tokio::time::sleep_until(next.min(end).into()).await;
    }
}

/// `intruder-unkeyed`.
pub async fn unkeyed(
    ctx: &Context,
    cluster: &Cluster,
    rec: &Recorder,
    hold: Duration,
    f: &mut FaultRecord,
) -> anyhow::Result<()> {
    let episode = ctx.next_episode();
    cluster.add_intruder_ns(UNKEYED_NS)?;
    let ns = netns::intruder_ns(UNKEYED_NS);
    let ip = netns::intruder_ip(UNKEYED_NS);
    let join: Vec<String> = cluster.specs.iter().map(|s| s.p2p.clone()).collect();
    let log = ctx.run_dir.join("logs").join("intruder-unkeyed.log");
    let mut r = IntruderRecord {
        name: UNKEYED_NAME.into(),
        ..Default::default()
    };

    // First an agent with no key at all: beyond loopback it must refuse.
    let keyless_dir = ctx.run_dir.join("nodes").join(format!("keyless-{episode}"));
    std::fs::create_dir_all(&keyless_dir)?;
    let mut keyless = cluster.start_extra(&ExtraSpec {
        name: UNKEYED_NAME,
        ns: &ns,
        ip: &ip,
        data_dir: &keyless_dir,
        key_file: None,
        join: join.clone(),
        log: &log,
    })?;
    let t = Instant::now();
    let status = loop {
        if let Some(s) = cluster.extra_exited(&mut keyless) {
            break Some(s);
        }
        if t.elapsed() > KEYLESS_LIMIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // It must have refused for the key, not for anything else.
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let for_the_key = said
        .rsplit("---- shoal-chaos: starting intruder")
        .next()
        .is_some_and(|tail| tail.contains("has no cluster key"));
    r.keyless_refused = Some(status.is_some_and(|s| !s.success()) && for_the_key);
    r.keyless_start = Some(match status {
        Some(s) => format!(
            "exited with {s} after {:.1} s{}",
            t.elapsed().as_secs_f64(),
            if for_the_key {
                ", saying it has no cluster key"
            } else {
                ", without naming the missing key"
            }
        ),
        None => format!("still running after {KEYLESS_LIMIT:?}"),
    });
    cluster.stop_extra(keyless).await;

    let before = refusals(cluster).await;
    (r.leader_before, r.term_before) = leader_and_term(cluster).await;
    let data_dir = ctx
        .run_dir
        .join("nodes")
        .join(format!("intruder-{episode}"));
    std::fs::create_dir_all(&data_dir)?;
    let agent = cluster.start_extra(&ExtraSpec {
        name: UNKEYED_NAME,
        ns: &ns,
        ip: &ip,
        data_dir: &data_dir,
        key_file: Some(&ctx.wrong_key),
        join: join.clone(),
        log: &log,
    })?;
    let w0 = rec.secs();
    f.at_secs = w0;
    let client = cluster.foreign_client(&format!("https://{ip}:7947"), &ctx.wrong_ca_pem)?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = spawn_prober(join, stop.clone());
    let writer = spawn_writer(client.clone(), episode, stop.clone());
    let mut who = Ident {
        gossip: true,
        name: Some(UNKEYED_NAME.into()),
        peer_id: None,
        node_id: None,
    };
    hold_window(cluster, rec, &mut who, &client, true, hold, &mut r).await;
    stop.store(true, Ordering::SeqCst);
    r.probes = prober.await.ok();
    if let Ok((answers, acked)) = writer.await {
        r.writes = answers;
        r.writes_acknowledged = acked;
    }
    end_window(cluster, rec, agent, before, w0, &mut r, f).await;
    Ok(())
}

/// Kills the intruder, closes the window and fills in the after-figures.
async fn end_window(
    cluster: &Cluster,
    rec: &Recorder,
    agent: ExtraAgent,
    before: Vec<Option<(f64, f64)>>,
    w0: f64,
    r: &mut IntruderRecord,
    f: &mut FaultRecord,
) {
    cluster.stop_extra(agent).await;
    let w1 = rec.secs();
    r.window = Some((w0, w1));
    f.healed_at_secs = Some(w1);
    // Refusals in flight when it died are counted a moment later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = refusals(cluster).await;
    (r.refused_connections, r.refused_rpcs) = grown(&before, &after);
    (r.leader_after, r.term_after) = leader_and_term(cluster).await;
    let probes = r.probes.as_ref().map_or(String::new(), |p| {
        format!(
            "{} garbage connections ({} closed by the member, at most {} bytes back); ",
            p.attempts, p.closed_by_member, p.max_bytes_back
        )
    });
    f.note = format!(
        "{} {probes}refused: {} connections, {} RPCs; term {} -> {}, leader {} -> {}",
        f.note,
        r.refused_connections,
        r.refused_rpcs,
        opt(&r.term_before),
        opt(&r.term_after),
        opt(&r.leader_before),
        opt(&r.leader_after)
    )
    .trim()
    .to_string();
    f.intruder = Some(std::mem::take(r));
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_string(), |v| v.to_string())
}

/// `intruder-removed-leader` (`leader`) and `intruder-removed-follower`.
pub async fn removed(
    ctx: &Context,
    cluster: &Cluster,
    rec: &Recorder,
    order: &[usize],
    leader: bool,
    hold: Duration,
    f: &mut FaultRecord,
) -> anyhow::Result<()> {
    let episode = ctx.next_episode();
    cluster.add_intruder_ns(REMOVED_NS)?;
    let (lead, term) = cluster
        .wait_leader(Duration::from_secs(15))
        .await
        .ok_or_else(|| anyhow!("skipped: no leader within 15 s"))?;
    let target = if leader {
        lead
    } else {
        *order
            .iter()
            .find(|i| **i != lead && cluster.state(**i) == NodeState::Running)
            .ok_or_else(|| anyhow!("skipped: no running follower"))?
    };
    let name = cluster.specs[target].name.clone();
    let node_id = cluster.raft(target).await.map(|v| v.node_id);
    let peer_id = cluster.peer_id(target).await;
    f.at_secs = rec.secs();
    f.targets = vec![name.clone()];

    // Its old disk, then a new host under its name: autopilot removes the
    // old identity from the configuration.
    cluster.kill(target, true).await?;
    let stale_dir = ctx
        .run_dir
        .join("nodes")
        .join(format!("removed-{episode}-{name}"));
    cluster.copy_data_dir(target, &stale_dir)?;
    cluster.wipe(target)?;
    cluster.start(target)?;
    f.note = format!(
        "{} of term {term} killed, its data dir kept, host replaced;",
        if leader { "leader" } else { "follower" }
    );
    let whole = cluster.wait_whole(WHOLE_LIMIT).await;
    if let Err(why) = whole {
        f.healed_at_secs = Some(rec.secs());
        anyhow::bail!("the replaced host did not rejoin within {WHOLE_LIMIT:?}: {why}");
    }
    tokio::time::sleep(SETTLE).await;

    let mut r = IntruderRecord {
        name: name.clone(),
        peer_id: peer_id.clone(),
        node_id,
        ..Default::default()
    };
    let before = refusals(cluster).await;
    (r.leader_before, r.term_before) = leader_and_term(cluster).await;
    let ns = netns::intruder_ns(REMOVED_NS);
    let ip = netns::intruder_ip(REMOVED_NS);
    // No --join: it never gossips, so nothing but its Raft RPCs reaches
    // the members, for the whole hold.
    let agent = cluster.start_extra(&ExtraSpec {
        name: &name,
        ns: &ns,
        ip: &ip,
        data_dir: &stale_dir,
        key_file: Some(cluster.cluster_key_file()),
        join: Vec::new(),
        log: &ctx.run_dir.join("logs").join(format!("removed-{name}.log")),
    })?;
    let w0 = rec.secs();
    let client = cluster.foreign_client(&format!("https://{ip}:7947"), cluster.ca_pem())?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(client.clone(), episode, stop.clone());
    // Its name is its replacement's now: look for its identity only.
    let mut who = Ident {
        gossip: false,
        name: None,
        peer_id,
        node_id,
    };
    hold_window(cluster, rec, &mut who, &client, false, hold, &mut r).await;
    stop.store(true, Ordering::SeqCst);
    if let Ok((answers, acked)) = writer.await {
        r.writes = answers;
        r.writes_acknowledged = acked;
    }
    end_window(cluster, rec, agent, before, w0, &mut r, f).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_grow_only_where_read_twice() {
        let before = [Some((1.0, 0.0)), None, Some((5.0, 2.0))];
        let after = [Some((4.0, 1.0)), Some((9.0, 9.0)), Some((5.0, 7.0))];
        assert_eq!(grown(&before, &after), (3.0, 6.0));
        // A node whose counters went back (it restarted) adds nothing.
        assert_eq!(grown(&[Some((5.0, 5.0))], &[Some((1.0, 1.0))]), (0.0, 0.0));
    }

    #[test]
    fn garbage_takes_three_shapes() {
        assert_eq!(garbage(0).len(), 64);
        assert!(garbage(1).starts_with(b"\x13/multistream/1.0.0\n"));
        assert_eq!(garbage(2).len(), 51);
    }
}
