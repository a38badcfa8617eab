//! membership: who is in the cluster and alive, by SWIM gossip (the `foca`
//! crate) carried over the node's libp2p swarm.
//!
//! foca does the protocol: periodic probes, indirect probes through other
//! members, suspicion with a timeout, incarnation numbers so a suspected
//! member refutes, updates piggybacked on probe traffic. This module feeds
//! it packets and timers, sends what it asks to send, and keeps a view of
//! every member with its metadata (name, addresses, capacity, labels,
//! version, Raft role). Metadata is fetched directly from a member when it
//! comes up and pushed to every member when it changes; a periodic refresh
//! repairs anything lost.
//!
//! The suspicion timeout grows with the cluster as memberlist's does:
//! `suspicion_mult × max(1, log10 n) × probe_period`.

pub mod metrics;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, State, Timer};
use futures::future::BoxFuture;
use libp2p::{Multiaddr, PeerId};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::net::{Channel, Handler, Net};
use wire::{Codec, MemberId, Wire};
pub use wire::{Meta, RaftRole};

/// Gossip timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipConfig {
    /// How often each member probes another, in milliseconds.
    pub probe_period_ms: u64,
    /// How long a direct probe waits for its ack before asking others, in milliseconds.
    pub probe_rtt_ms: u64,
    /// Suspicion lasts this many probe periods (times log10 of the cluster size, at least 1).
    pub suspicion_mult: f64,
    /// How often updates are gossiped to a few members besides probe traffic, in milliseconds.
    pub gossip_period_ms: u64,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_period_ms: 400,
            probe_rtt_ms: 200,
            suspicion_mult: 2.0,
            gossip_period_ms: 200,
        }
    }
}

impl MembershipConfig {
    /// The suspicion timeout for a cluster of `n` members.
    pub fn suspicion(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        Duration::from_secs_f64(
            (self.suspicion_mult * scale * self.probe_period_ms as f64 / 1000.0).clamp(0.1, 600.0),
        )
    }

    fn foca(&self, n: usize) -> foca::Config {
        let mut c = foca::Config::simple();
        c.probe_period = Duration::from_millis(self.probe_period_ms.max(10));
        c.probe_rtt =
            Duration::from_millis(self.probe_rtt_ms.clamp(1, self.probe_period_ms.max(2) - 1));
        c.num_indirect_probes = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        // Enough retransmissions that an update reaches everyone in a
        // cluster of n (memberlist uses 4 × log10 n too).
        let tx = (4.0 * (n.max(2) as f64).log10().ceil()).clamp(4.0, 20.0) as u8;
        c.max_transmissions = NonZeroU8::new(tx).unwrap_or(NonZeroU8::MIN);
        c.suspect_to_down_after = self.suspicion(n);
        c.remove_down_after = Some(Duration::from_secs(3600));
        c.max_packet_size = NonZeroUsize::new(16 * 1024).unwrap_or(NonZeroUsize::MIN);
        c.notify_down_members = true;
        c.periodic_announce = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: NonZeroUsize::MIN,
        });
        // Lets the two sides of a healed partition find each other again.
        c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(3),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        c.periodic_gossip = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(self.gossip_period_ms.max(10)),
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        c
    }
}

/// A member's state as `shoal members` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
    Left,
}

impl MemberState {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// PeerId, base58.
    pub peer_id: String,
    /// Its state.
    pub state: MemberState,
    /// SWIM incarnation (grows when it refutes a suspicion).
    pub incarnation: u16,
    /// When this node last saw the state change (seconds since the epoch).
    pub since: u64,
    /// The same, in milliseconds.
    pub since_millis: u64,
    /// Whether this is the node itself.
    pub is_self: bool,
    /// Its metadata, once fetched.
    pub meta: Option<Meta>,
}

impl MemberView {
    /// Alive or merely suspected: still counted as present.
    pub fn is_up(&self) -> bool {
        matches!(self.state, MemberState::Alive | MemberState::Suspect)
    }

    /// The member's name, when its metadata is known.
    pub fn name(&self) -> Option<&str> {
        self.meta.as_ref().map(|m| m.name.as_str())
    }
}

struct Entry {
    id: MemberId,
    state: MemberState,
    incarnation: u16,
    since: SystemTime,
}

#[derive(Default)]
struct Shared {
    entries: HashMap<PeerId, Entry>,
    metas: HashMap<PeerId, Meta>,
    me: Meta,
}

enum Input {
    Data(Vec<u8>),
    Timer(Timer<MemberId>),
    Announce(MemberId),
    Leave(oneshot::Sender<()>),
}

/// Handle to this node's membership.
#[derive(Clone)]
pub struct Membership {
    peer: PeerId,
    shared: Arc<RwLock<Shared>>,
    tx: mpsc::UnboundedSender<Input>,
    changes: watch::Receiver<u64>,
    net: Net,
    cfg: MembershipConfig,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

fn now_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Membership {
    /// Starts gossip for this node with its initial metadata.
    pub fn start(net: Net, mut meta: Meta, cfg: MembershipConfig) -> Membership {
        let peer = net.peer_id();
        meta.version = clock_micros();
        meta.peer_id = peer.to_base58();
        let addr = meta
            .p2p_addrs
            .iter()
            .find_map(|a| a.parse::<Multiaddr>().ok())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let me = MemberId {
            peer: peer.to_bytes(),
            addr,
            // Restarts win over the identity the cluster remembers.
            bump: clock_micros(),
        };
        let shared = Arc::new(RwLock::new(Shared {
            me: meta,
            ..Shared::default()
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let (changes_tx, changes) = watch::channel(0u64);
        let m = Membership {
            peer,
            shared,
            tx,
            changes,
            net: net.clone(),
            cfg: cfg.clone(),
            tasks: Arc::default(),
        };
        net.set_handler(Channel::Gossip, Arc::new(GossipHandler(m.clone())));
        m.track(tokio::spawn(run(m.clone(), me, rx, changes_tx)));
        m.track(tokio::spawn(refresh_metas(m.clone())));
        m
    }

    fn track(&self, task: tokio::task::JoinHandle<()>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
    }

    /// Stops gossiping (without announcing anything: see [`Self::leave`]).
    pub fn shutdown(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for task in t.drain(..) {
                task.abort();
            }
        }
    }

    /// Joins through seed addresses, and keeps retrying them whenever this
    /// node sees no other member (at start, or cut off from everyone).
    pub fn join(&self, seeds: Vec<Multiaddr>) {
        if seeds.is_empty() {
            return;
        }
        let m = self.clone();
        self.track(tokio::spawn(async move {
            loop {
                if m.members()
                    .iter()
                    .filter(|v| !v.is_self && v.is_up())
                    .count()
                    == 0
                {
                    for s in &seeds {
                        match m.net.dial(s.clone()).await {
                            Ok(peer) if peer != m.peer => {
                                let id = MemberId {
                                    peer: peer.to_bytes(),
                                    addr: s.to_vec(),
                                    bump: 0,
                                };
                                if m.tx.send(Input::Announce(id)).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => debug!(seed = %s, "seed not reachable: {e}"),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }

    /// Every member this node knows, itself included.
    pub fn members(&self) -> Vec<MemberView> {
        let Ok(s) = self.shared.read() else {
            return Vec::new();
        };
        let mut out: Vec<MemberView> = s
            .entries
            .iter()
            .map(|(peer, e)| MemberView {
                peer_id: peer.to_base58(),
                state: e.state,
                incarnation: e.incarnation,
                since: now_secs(e.since),
                since_millis: millis(e.since),
                is_self: false,
                meta: s.metas.get(peer).cloned(),
            })
            .collect();
        out.push(MemberView {
            peer_id: self.peer.to_base58(),
            state: if s.me.leaving {
                MemberState::Left
            } else {
                MemberState::Alive
            },
            incarnation: 0,
            since: 0,
            since_millis: 0,
            is_self: true,
            meta: Some(s.me.clone()),
        });
        out.sort_by(|a, b| a.name().cmp(&b.name()).then(a.peer_id.cmp(&b.peer_id)));
        out
    }

    /// A receiver that changes whenever the member view does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// This node's metadata.
    pub fn me(&self) -> Meta {
        self.shared.read().map(|s| s.me.clone()).unwrap_or_default()
    }

    /// Changes this node's metadata and pushes it to every live member.
    pub fn update_meta(&self, f: impl FnOnce(&mut Meta)) {
        let meta = {
            let Ok(mut s) = self.shared.write() else {
                return;
            };
            let before = s.me.clone();
            f(&mut s.me);
            if s.me == before {
                return;
            }
            s.me.version = clock_micros().max(before.version + 1);
            s.me.clone()
        };
        let m = self.clone();
        tokio::spawn(async move {
            m.push_meta(meta).await;
        });
    }

    async fn push_meta(&self, meta: Meta) {
        let Ok(body) = wire::encode(&Wire::PushMeta(meta)) else {
            return;
        };
        let targets: Vec<(PeerId, Vec<Multiaddr>)> = match self.shared.read() {
            Ok(s) => s
                .entries
                .iter()
                .filter(|(_, e)| matches!(e.state, MemberState::Alive | MemberState::Suspect))
                .map(|(p, e)| (*p, addrs_of(&e.id)))
                .collect(),
            Err(_) => return,
        };
        let sends = targets.into_iter().map(|(peer, addrs)| {
            let net = self.net.clone();
            let body = body.clone();
            async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    net.request(peer, addrs, Channel::Gossip, body),
                )
                .await;
            }
        });
        futures::future::join_all(sends).await;
    }

    /// Marks this node as leaving and tells every member, so the leader
    /// takes it out of the voters and the others will mark it `left`.
    pub async fn announce_leaving(&self) {
        let meta = {
            let Ok(mut s) = self.shared.write() else {
                return;
            };
            s.me.leaving = true;
            s.me.version = clock_micros().max(s.me.version + 1);
            s.me.clone()
        };
        self.push_meta(meta).await;
    }

    /// Leaves the cluster on purpose: after [`Self::announce_leaving`],
    /// announces the departure through SWIM so the others mark it `left` at
    /// once instead of suspecting it.
    pub async fn leave(&self) {
        if !self.me().leaving {
            self.announce_leaving().await;
        }
        let (done, rx) = oneshot::channel();
        if self.tx.send(Input::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        // Let the departure packets leave before the swarm stops.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// The configured timing.
    pub fn config(&self) -> &MembershipConfig {
        &self.cfg
    }

    async fn fetch_meta(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let Ok(body) = wire::encode(&Wire::GetMeta) else {
            return;
        };
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            self.net.request(peer, addrs, Channel::Gossip, body),
        )
        .await;
        match reply {
            Ok(Ok(bytes)) => match wire::decode::<Meta>(&bytes) {
                Ok(meta) => self.store_meta(peer, meta),
                Err(e) => debug!(%peer, "bad metadata: {e}"),
            },
            Ok(Err(e)) => debug!(%peer, "metadata fetch failed: {e}"),
            Err(_) => debug!(%peer, "metadata fetch timed out"),
        }
    }

    fn store_meta(&self, peer: PeerId, meta: Meta) {
        if meta.peer_id != peer.to_base58() {
            return;
        }
        let changed = match self.shared.write() {
            Ok(mut s) => match s.metas.get(&peer) {
                Some(old) if old.version >= meta.version => false,
                _ => {
                    s.metas.insert(peer, meta);
                    true
                }
            },
            Err(_) => false,
        };
        if changed {
            // Re-evaluate states (a member that is down and leaving is `left`).
            let _ = self.tx.send(Input::Data(Vec::new()));
        }
    }
}

fn addrs_of(id: &MemberId) -> Vec<Multiaddr> {
    Multiaddr::try_from(id.addr.clone()).into_iter().collect()
}

struct GossipHandler(Membership);

impl Handler for GossipHandler {
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let m = self.0.clone();
        Box::pin(async move {
            let msg: Wire = wire::decode(&body).map_err(|e| e.to_string())?;
            match msg {
                Wire::Swim(data) => {
                    let _ = m.tx.send(Input::Data(data));
                    Ok(Vec::new())
                }
                Wire::GetMeta => {
                    let me = m.me();
                    bincode::serde::encode_to_vec(&me, bincode::config::standard())
                        .map_err(|e| e.to_string())
                }
                Wire::PushMeta(meta) => {
                    m.store_meta(from, meta);
                    Ok(Vec::new())
                }
            }
        })
    }
}

type Swim = Foca<MemberId, Codec, rand::rngs::StdRng, NoCustomBroadcast>;

async fn run(
    m: Membership,
    me: MemberId,
    mut rx: mpsc::UnboundedReceiver<Input>,
    changes: watch::Sender<u64>,
) {
    let rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let mut size = 1usize;
    let mut foca: Swim = Foca::new(me.clone(), m.cfg.foca(size), rng, Codec);
    let mut rt = AccumulatingRuntime::new();
    let mut pings: HashMap<(Vec<u8>, u8), Instant> = HashMap::new();
    let mut my_incarnation = 0u16;
    let mut generation = 0u64;
    while let Some(input) = rx.recv().await {
        let result = match input {
            Input::Data(data) if data.is_empty() => Ok(()),
            Input::Data(data) => {
                if let Some(h) = wire::peek_header(&data)
                    && let foca::Message::Ack(n) = h.message
                    && let Some(t) = pings.remove(&(h.src.peer.clone(), n))
                {
                    ::metrics::histogram!(metrics::PROBE_RTT_SECONDS)
                        .record(t.elapsed().as_secs_f64());
                }
                foca.handle_data(&data, &mut rt)
            }
            Input::Timer(t) => foca.handle_timer(t, &mut rt),
            Input::Announce(id) => foca.announce(id, &mut rt),
            Input::Leave(done) => {
                let r = foca.leave_cluster(&mut rt);
                drain(&m, &mut rt, &mut pings, &mut my_incarnation);
                let _ = done.send(());
                r
            }
        };
        if let Err(e) = result {
            debug!("gossip: {e}");
        }
        drain(&m, &mut rt, &mut pings, &mut my_incarnation);
        if refresh(&m, &foca) {
            generation += 1;
            let _ = changes.send(generation);
        }
        // Suspicion grows with the cluster.
        let n = foca.num_members() + 1;
        if bucket(n) != bucket(size) {
            size = n;
            if let Err(e) = foca.set_config(m.cfg.foca(size)) {
                warn!("cannot retune gossip for {n} members: {e}");
            }
        }
        if pings.len() > 1024 {
            pings.retain(|_, t| t.elapsed() < Duration::from_secs(10));
        }
    }
}

fn bucket(n: usize) -> u32 {
    (n.max(1) as f64).log10().floor() as u32
}

/// Sends what foca asked to send, schedules its timers, handles its notifications.
fn drain(
    m: &Membership,
    rt: &mut AccumulatingRuntime<MemberId>,
    pings: &mut HashMap<(Vec<u8>, u8), Instant>,
    my_incarnation: &mut u16,
) {
    while let Some((to, data)) = rt.to_send() {
        if let Some(h) = wire::peek_header(&data) {
            if h.src_incarnation > *my_incarnation {
                if *my_incarnation != 0 {
                    ::metrics::counter!(metrics::REFUTATIONS_TOTAL).increment(1);
                }
                *my_incarnation = h.src_incarnation;
            }
            if let foca::Message::Ping(n) = h.message {
                pings.insert((to.peer.clone(), n), Instant::now());
            }
        }
        let Ok(peer) = PeerId::from_bytes(&to.peer) else {
            continue;
        };
        let Ok(body) = wire::encode(&Wire::Swim(data.to_vec())) else {
            continue;
        };
        let net = m.net.clone();
        let addrs = addrs_of(&to);
        tokio::spawn(async move {
            if let Err(e) = net.request(peer, addrs, Channel::Gossip, body).await {
                debug!(%peer, "gossip send failed: {e}");
            }
        });
    }
    while let Some((after, timer)) = rt.to_schedule() {
        let tx = m.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Input::Timer(timer));
        });
    }
    while let Some(n) = rt.to_notify() {
        match n {
            OwnedNotification::MemberUp(id) => {
                if let Ok(peer) = PeerId::from_bytes(&id.peer) {
                    debug!(%peer, "member up");
                    let m = m.clone();
                    let addrs = addrs_of(&id);
                    tokio::spawn(async move { m.fetch_meta(peer, addrs).await });
                }
            }
            OwnedNotification::MemberDown(id) => {
                if let Ok(peer) = PeerId::from_bytes(&id.peer) {
                    debug!(%peer, "member down");
                }
            }
            OwnedNotification::Rename(_, id) => {
                // A restarted member: its metadata may have changed.
                if let Ok(peer) = PeerId::from_bytes(&id.peer) {
                    let m = m.clone();
                    let addrs = addrs_of(&id);
                    tokio::spawn(async move { m.fetch_meta(peer, addrs).await });
                }
            }
            OwnedNotification::Rejoin(_) => {
                info!("this node was declared down by the others; rejoined with a new identity");
            }
            OwnedNotification::Idle => debug!("no other live members"),
            _ => {}
        }
    }
}

/// Feeds gossip-channel bodies, as one peer would send them, through what
/// this module does with a peer's bytes: the channel's decode, the metadata
/// decode, and for each SWIM packet the header peek and a SWIM instance of
/// this module's codec and configuration; then reads back what that instance
/// sends and reports as the gossip task does. Timers due after one body fire
/// before the next. For the fuzz targets; returns how many bodies decoded.
pub(crate) fn feed_gossip<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> usize {
    // A fixed identity and seed, so a crashing input replays the same way.
    let me = MemberId {
        peer: libp2p::identity::Keypair::ed25519_from_bytes([7u8; 32])
            .map(|k| k.public().to_peer_id().to_bytes())
            .unwrap_or_default(),
        addr: "/ip4/127.0.0.1/tcp/7946"
            .parse::<Multiaddr>()
            .map(|a| a.to_vec())
            .unwrap_or_default(),
        bump: 1,
    };
    let rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut foca: Swim = Foca::new(me, MembershipConfig::default().foca(1), rng, Codec);
    let mut rt = AccumulatingRuntime::new();
    let mut due = Vec::new();
    let mut decoded = 0;
    for body in bodies {
        let _ = wire::decode::<Meta>(body);
        match wire::decode::<Wire>(body) {
            Ok(Wire::Swim(data)) => {
                decoded += 1;
                if !data.is_empty() {
                    let _ = wire::peek_header(&data);
                    let _ = foca.handle_data(&data, &mut rt);
                }
            }
            Ok(_) => decoded += 1,
            Err(_) => {}
        }
        for timer in std::mem::take(&mut due) {
            let _ = foca.handle_timer(timer, &mut rt);
        }
        while let Some((to, data)) = rt.to_send() {
            let _ = wire::peek_header(&data);
            let _ = PeerId::from_bytes(&to.peer);
            let _ = addrs_of(&to);
            let _ = wire::encode(&Wire::Swim(data.to_vec()));
        }
        while let Some((_, timer)) = rt.to_schedule() {
            due.push(timer);
        }
        while let Some(n) = rt.to_notify() {
            if let OwnedNotification::MemberUp(id)
            | OwnedNotification::MemberDown(id)
            | OwnedNotification::Rename(_, id) = n
            {
                let _ = PeerId::from_bytes(&id.peer);
                let _ = addrs_of(&id);
            }
        }
        for member in foca.iter_membership_state() {
            let _ = PeerId::from_bytes(&member.id().peer);
        }
    }
    decoded
}

/// Mirrors foca's member list into the shared view; `true` if anything changed.
fn refresh(m: &Membership, foca: &Swim) -> bool {
    let Ok(mut s) = m.shared.write() else {
        return false;
    };
    let mut changed = false;
    let mut seen = HashSet::new();
    let now = SystemTime::now();
    for member in foca.iter_membership_state() {
        let id = member.id();
        let Ok(peer) = PeerId::from_bytes(&id.peer) else {
            continue;
        };
        if peer == m.peer {
            continue;
        }
        seen.insert(peer);
        let leaving = s.metas.get(&peer).is_some_and(|meta| meta.leaving);
        let state = match member.state() {
            State::Alive => MemberState::Alive,
            State::Suspect => MemberState::Suspect,
            State::Down if leaving => MemberState::Left,
            State::Down => MemberState::Down,
        };
        match s.entries.get_mut(&peer) {
            Some(e) => {
                if e.state != state {
                    if state == MemberState::Suspect {
                        ::metrics::counter!(metrics::SUSPICIONS_TOTAL).increment(1);
                    }
                    e.state = state;
                    e.since = now;
                    changed = true;
                }
                if e.incarnation != member.incarnation() || e.id != *id {
                    e.incarnation = member.incarnation();
                    e.id = id.clone();
                    changed = true;
                }
            }
            None => {
                s.entries.insert(
                    peer,
                    Entry {
                        id: id.clone(),
                        state,
                        incarnation: member.incarnation(),
                        since: now,
                    },
                );
                changed = true;
            }
        }
    }
    let before = s.entries.len();
    s.entries.retain(|p, _| seen.contains(p));
    changed |= s.entries.len() != before;
    if changed {
        let mut counts = [0u64; 4];
        for e in s.entries.values() {
            counts[e.state as usize] += 1;
        }
        for (state, n) in [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Down,
            MemberState::Left,
        ]
        .iter()
        .zip(counts)
        {
            ::metrics::gauge!(metrics::MEMBERS, "state" => state.as_str()).set(n as f64);
        }
    }
    changed
}

/// Fetches metadata that is missing, and refreshes all of it now and then.
async fn refresh_metas(m: Membership) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut rounds = 0u64;
    loop {
        tick.tick().await;
        rounds += 1;
        let todo: Vec<(PeerId, Vec<Multiaddr>)> = match m.shared.read() {
            Ok(s) => s
                .entries
                .iter()
                .filter(|(_, e)| matches!(e.state, MemberState::Alive | MemberState::Suspect))
                .filter(|(p, _)| rounds.is_multiple_of(15) || !s.metas.contains_key(p))
                .map(|(p, e)| (*p, addrs_of(&e.id)))
                .collect(),
            Err(_) => return,
        };
        for (peer, addrs) in todo {
            let m = m.clone();
            tokio::spawn(async move { m.fetch_meta(peer, addrs).await });
        }
    }
}

/// What gossip says about a named node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Alive (or suspect: not yet declared down).
    Up,
    /// Down, left or unknown since this time (milliseconds since the
    /// epoch, as the member view records it).
    DownSince(u64),
}

impl NodeHealth {
    /// Whether the node is up.
    pub fn is_up(self) -> bool {
        self == NodeHealth::Up
    }
}

/// What gossip says about each named node. A name seen up under any
/// identity (a restarted host has a new one) is up.
pub fn node_health(m: &Membership) -> std::collections::HashMap<String, NodeHealth> {
    let mut out = std::collections::HashMap::new();
    for v in m.members() {
        let Some(name) = v.meta.as_ref().map(|m| m.name.clone()) else {
            continue;
        };
        let health = if v.is_up() {
            NodeHealth::Up
        } else {
            NodeHealth::DownSince(v.since_millis)
        };
        if out.get(&name) != Some(&NodeHealth::Up) {
            out.insert(name, health);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_grows_with_size() {
        let c = MembershipConfig::default();
        assert_eq!(c.suspicion(3), c.suspicion(10));
        assert!(c.suspicion(100) > c.suspicion(10));
        assert_eq!(c.suspicion(5), Duration::from_millis(800));
    }
}
