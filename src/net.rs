//! net: one libp2p swarm per node (TCP, optional pnet pre-shared key, noise,
//! yamux) carrying every node-to-node request as a length-prefixed frame.
//!
//! The swarm is owned by one task; the rest of the daemon talks to it through
//! a cloneable [`Net`] handle. Frames are opaque bytes tagged with a
//! [`Channel`], so each component (Raft, store forwarding, cluster join)
//! registers its own [`Handler`] and decodes its own messages.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::prelude::*;
use libp2p::core::transport::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, Transport, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Largest frame a peer may send; larger ones are refused before reading.
pub const MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;
/// Memory reserved for a frame before its bytes arrive.
const FRAME_READ_CHUNK: usize = 64 * 1024;
const PROTOCOL: &str = "/shoal/rpc/1";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const KEY_FILE: &str = "node.key";

/// Which component a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Channel {
    /// Raft RPCs between replicas.
    Raft = 1,
    /// Writes and read-index requests forwarded to the leader.
    Store = 2,
    /// Container logs fetched from the node that runs the pod.
    Logs = 4,
    /// SWIM gossip and member metadata.
    Gossip = 5,
    /// Interactive commands (`exec`) run on the node that runs the pod.
    Exec = 6,
    /// Resource usage samples (`agent::usage`), soft state served by each node.
    Usage = 7,
}

impl Channel {
    /// The channel a frame's first byte names, if any.
    pub(crate) fn from_u8(b: u8) -> Option<Channel> {
        match b {
            1 => Some(Channel::Raft),
            2 => Some(Channel::Store),
            4 => Some(Channel::Logs),
            5 => Some(Channel::Gossip),
            6 => Some(Channel::Exec),
            7 => Some(Channel::Usage),
            _ => None,
        }
    }
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot read or write the node key {path}: {source}")]
    Key { path: String, source: io::Error },
    #[error("node key {path} is corrupt: {msg}")]
    KeyCorrupt { path: String, msg: String },
    #[error("cluster key file {path}: {msg}")]
    ClusterKey { path: String, msg: String },
    #[error("invalid address {addr:?}: {msg}")]
    Address { addr: String, msg: String },
    #[error("cannot listen on {addr}: {msg}")]
    Listen { addr: String, msg: String },
    #[error("request to {peer} failed: {msg}")]
    Request { peer: PeerId, msg: String },
    #[error("peer {peer} answered with an error: {msg}")]
    Remote { peer: PeerId, msg: String },
    #[error("dial {addr} failed: {msg}")]
    Dial { addr: String, msg: String },
    #[error("the network task has stopped")]
    Stopped,
}

/// Serves requests of one [`Channel`]: gets the sender and the body, returns the reply body.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; an `Err` is sent back as a remote error.
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

type Handlers = Arc<RwLock<HashMap<Channel, Arc<dyn Handler>>>>;

/// Settings for [`Net::start`].
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Where the node key lives (`node.key` inside it).
    pub data_dir: std::path::PathBuf,
    /// The address to listen on.
    pub listen: Multiaddr,
    /// The cluster's pre-shared key, when the cluster uses one.
    pub psk: Option<PreSharedKey>,
}

/// Handle to the node's swarm.
#[derive(Clone)]
pub struct Net {
    peer_id: PeerId,
    cmd_tx: mpsc::Sender<Command>,
    handlers: Handlers,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
    blocked: Blocked,
}

/// Peers this node refuses to talk to (a simulated partition).
type Blocked = Arc<RwLock<std::collections::HashSet<PeerId>>>;

enum Command {
    Request {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Disconnect(PeerId),
    Shutdown(oneshot::Sender<()>),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    rpc: request_response::Behaviour<FrameCodec>,
}

impl Net {
    /// Loads or creates the node key, binds the listen address and starts the swarm task.
    pub async fn start(cfg: NetConfig) -> Result<Net, NetError> {
        let keypair = load_or_create_key(&cfg.data_dir)?;
        let peer_id = keypair.public().to_peer_id();
        let transport = build_transport(&keypair, cfg.psk);
        let rpc = request_response::Behaviour::with_codec(
            FrameCodec,
            [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(1024),
        );
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| NetError::Listen {
                addr: cfg.listen.to_string(),
                msg: e.to_string(),
            })?
            .with_behaviour(|_| Behaviour { rpc })
            .map_err(|e| NetError::Listen {
                addr: cfg.listen.to_string(),
                msg: e.to_string(),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        swarm
            .listen_on(cfg.listen.clone())
            .map_err(|e| NetError::Listen {
                addr: cfg.listen.to_string(),
                msg: e.to_string(),
            })?;
        // Wait for the listener so callers learn the real port when they asked for port 0.
        let listen_addrs = Arc::new(RwLock::new(Vec::new()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| NetError::Listen {
                    addr: cfg.listen.to_string(),
                    msg: "no listener came up within 5s".into(),
                })?;
            match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    // For a wildcard this is only the first of the host's
                    // addresses; the node logs what it advertises.
                    info!(bound = %cfg.listen, port = ?tcp_port(&address), %peer_id, "p2p listening");
                    if let Ok(mut l) = listen_addrs.write() {
                        l.push(address);
                    }
                    break;
                }
                SwarmEvent::ListenerError { error, .. }
                | SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => {
                    return Err(NetError::Listen {
                        addr: cfg.listen.to_string(),
                        msg: error.to_string(),
                    });
                }
                _ => {}
            }
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(4096);
        let handlers: Handlers = Arc::new(RwLock::new(HashMap::new()));
        let blocked: Blocked = Arc::default();
        let driver = Driver {
            blocked: blocked.clone(),
            swarm,
            handlers: handlers.clone(),
            pending: HashMap::new(),
            dials: HashMap::new(),
            listen_addrs: listen_addrs.clone(),
            warned: HashMap::new(),
            heard: HashMap::new(),
        };
        tokio::spawn(driver.run(cmd_rx));
        Ok(Net {
            peer_id,
            cmd_tx,
            handlers,
            listen_addrs,
            blocked,
        })
    }

    /// This node's PeerId, stable across restarts with the same data dir.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the swarm listens on (with the real port).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs
            .read()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Installs the handler for a channel, replacing any earlier one.
    pub fn set_handler(&self, channel: Channel, handler: Arc<dyn Handler>) {
        if let Ok(mut h) = self.handlers.write() {
            h.insert(channel, handler);
        }
    }

    /// Sends one request and waits for the reply, dialing `addrs` when not connected.
    pub async fn request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        channel: Channel,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        let mut frame = Vec::with_capacity(body.len() + 1);
        frame.push(channel as u8);
        frame.extend_from_slice(&body);
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Request {
                peer,
                addrs,
                frame,
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        let resp = rx.await.map_err(|_| NetError::Stopped)??;
        match resp.split_first() {
            Some((0, body)) => Ok(body.to_vec()),
            Some((_, msg)) => Err(NetError::Remote {
                peer,
                msg: String::from_utf8_lossy(msg).into_owned(),
            }),
            None => Err(NetError::Request {
                peer,
                msg: "empty reply".into(),
            }),
        }
    }

    /// Stops the swarm (closing every connection) and drops the handlers.
    pub async fn shutdown(&self) {
        if let Ok(mut h) = self.handlers.write() {
            h.clear();
        }
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Cuts this node off from `peers` (and only them), as a network
    /// partition would: open connections are closed, requests either way
    /// fail. An empty set heals. For fault-injection tests and the chaos
    /// harness; a real partition is made with namespaces and iptables.
    pub async fn set_blocked(&self, peers: std::collections::HashSet<PeerId>) {
        if let Ok(mut b) = self.blocked.write() {
            b.clone_from(&peers);
        }
        for p in peers {
            let _ = self.cmd_tx.send(Command::Disconnect(p)).await;
        }
    }

    /// Connects to an address whose PeerId is not known yet and returns that PeerId.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let (reply, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Dial { addr, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }
}

type ReplyTx = oneshot::Sender<Result<Vec<u8>, NetError>>;

struct Driver {
    blocked: Blocked,
    swarm: Swarm<Behaviour>,
    handlers: Handlers,
    pending: HashMap<OutboundRequestId, (PeerId, ReplyTx)>,
    dials: HashMap<ConnectionId, (String, oneshot::Sender<Result<PeerId, NetError>>)>,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
    /// When each remote host was last warned about, so a peer retrying every
    /// half second with the wrong key costs one log line a minute, not 120.
    warned: HashMap<String, std::time::Instant>,
    /// When each connected peer last sent us anything (a request or a
    /// response): a request that times out on a connection that has
    /// carried nothing for as long is on a dead connection.
    heard: HashMap<PeerId, std::time::Instant>,
}

const WARN_EVERY: Duration = Duration::from_secs(60);

type ResponseChannel = request_response::ResponseChannel<Vec<u8>>;

impl Driver {
    async fn run(mut self, mut cmd_rx: mpsc::Receiver<Command>) {
        let (resp_tx, mut resp_rx) = mpsc::unbounded_channel::<(ResponseChannel, Vec<u8>)>();
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                Some((ch, frame)) = resp_rx.recv() => {
                    // The requester may have gone away; nothing to do then.
                    let _ = self.swarm.behaviour_mut().rpc.send_response(ch, frame);
                }
                ev = self.swarm.select_next_some() => self.handle_event(ev, &resp_tx),
            }
        }
        debug!("net driver stopped");
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { peer, reply, .. } if self.is_blocked(&peer) => {
                let _ = reply.send(Err(NetError::Request {
                    peer,
                    msg: "cut off by a partition".into(),
                }));
            }
            Command::Request {
                peer,
                addrs,
                frame,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_request_with_addresses(&peer, frame, addrs);
                self.pending.insert(id, (peer, reply));
            }
            Command::Shutdown(_) => {}
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr.to_string(), reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr: addr.to_string(),
                            msg: e.to_string(),
                        }));
                    }
                }
            }
        }
    }

    fn handle_event(
        &mut self,
        ev: SwarmEvent<BehaviourEvent>,
        resp_tx: &mpsc::UnboundedSender<(ResponseChannel, Vec<u8>)>,
    ) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(ev)) => self.handle_rpc(ev, resp_tx),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                debug!(%peer_id, "connected");
                if self.is_blocked(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                        let _ = reply.send(Err(NetError::Dial {
                            addr,
                            msg: "cut off by a partition".into(),
                        }));
                    }
                    return;
                }
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let msg = explain_connection_error(&error.to_string());
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    if self.should_warn(&host_of(&addr)) {
                        warn!(%addr, "dial failed: {msg}");
                    }
                    let _ = reply.send(Err(NetError::Dial { addr, msg }));
                } else {
                    debug!(?peer_id, "outgoing connection failed: {msg}");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                // Where a peer without the cluster key, or anything that is
                // not a shoal node, ends: counted always, logged now and then.
                ::metrics::counter!(crate::net::metrics::REFUSED_CONNECTIONS_TOTAL).increment(1);
                if self.should_warn(&host_of(&send_back_addr.to_string())) {
                    warn!(
                        from = %send_back_addr,
                        "refused incoming connection: {}",
                        explain_connection_error(&error.to_string())
                    );
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Ok(mut l) = self.listen_addrs.write() {
                    l.push(address);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.heard.remove(&peer_id);
            }
            _ => {}
        }
    }

    fn is_blocked(&self, peer: &PeerId) -> bool {
        self.blocked
            .read()
            .map(|b| b.contains(peer))
            .unwrap_or(false)
    }

    fn should_warn(&mut self, host: &str) -> bool {
        let now = std::time::Instant::now();
        match self.warned.get(host) {
            Some(t) if now.duration_since(*t) < WARN_EVERY => false,
            _ => {
                self.warned.insert(host.to_string(), now);
                true
            }
        }
    }

    fn handle_rpc(
        &mut self,
        ev: request_response::Event<Vec<u8>, Vec<u8>>,
        resp_tx: &mpsc::UnboundedSender<(ResponseChannel, Vec<u8>)>,
    ) {
        match ev {
            request_response::Event::Message { peer, .. } if self.is_blocked(&peer) => {
                // Dropping the response channel fails the request on the other side.
            }
            request_response::Event::Message { peer, message, .. } => {
                self.heard.insert(peer, std::time::Instant::now());
                self.handle_message(peer, message, resp_tx);
            }
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                connection_id,
            } => {
                // A connection whose packets were dropped (a partition, a
                // host that froze) can stay open on this side with nothing
                // getting through; closing it makes the next request dial
                // afresh instead of queueing behind it.
                let silent = self
                    .heard
                    .get(&peer)
                    .is_none_or(|t| t.elapsed() >= REQUEST_TIMEOUT);
                if matches!(error, request_response::OutboundFailure::Timeout) && silent {
                    debug!(%peer, "closing a connection that carried nothing for {REQUEST_TIMEOUT:?}");
                    ::metrics::counter!(crate::net::metrics::SILENT_CONNECTIONS_CLOSED_TOTAL)
                        .increment(1);
                    self.swarm.close_connection(connection_id);
                }
                if let Some((peer, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        msg: explain_connection_error(&error.to_string()),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, "inbound request failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn handle_message(
        &mut self,
        peer: PeerId,
        message: request_response::Message<Vec<u8>, Vec<u8>>,
        resp_tx: &mpsc::UnboundedSender<(ResponseChannel, Vec<u8>)>,
    ) {
        match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                let handler = request
                    .first()
                    .and_then(|b| Channel::from_u8(*b))
                    .and_then(|c| self.handlers.read().ok().and_then(|h| h.get(&c).cloned()));
                let resp_tx = resp_tx.clone();
                tokio::spawn(async move {
                    let result = match handler {
                        Some(h) => h.handle(peer, request[1..].to_vec()).await,
                        None => Err("no handler for this channel (node still starting?)".into()),
                    };
                    let frame = match result {
                        Ok(body) => {
                            let mut f = Vec::with_capacity(body.len() + 1);
                            f.push(0);
                            f.extend_from_slice(&body);
                            f
                        }
                        Err(msg) => {
                            let mut f = vec![1];
                            f.extend_from_slice(msg.as_bytes());
                            f
                        }
                    };
                    let _ = resp_tx.send((channel, frame));
                });
            }
            request_response::Message::Response {
                request_id,
                response,
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
        }
    }
}

/// The host part of a multiaddr (`/ip4/1.2.3.4/tcp/5` → `/ip4/1.2.3.4`).
fn host_of(addr: &str) -> String {
    addr.split('/').take(3).collect::<Vec<_>>().join("/")
}

/// Turns libp2p's nested transport errors into a line an operator can act on.
fn explain_connection_error(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    // A TCP-level failure says so; only a failure after TCP connected points at the key.
    let tcp_failed = [
        "refused",
        "timed out",
        "unreachable",
        "no route",
        "not available",
    ]
    .iter()
    .any(|w| lower.contains(w));
    // With pnet a key mismatch garbles the stream, so it surfaces as a failed
    // protocol negotiation or handshake rather than as a named error.
    let upgrade_failed = ["noise", "handshake", "pnet", "failed to negotiate"]
        .iter()
        .any(|w| lower.contains(w));
    if upgrade_failed && !tcp_failed {
        format!(
            "secure handshake failed; the peer probably uses a different cluster key \
             (--cluster-key-file) or none: {raw}"
        )
    } else {
        raw.to_string()
    }
}

fn build_transport(
    keypair: &Keypair,
    psk: Option<PreSharedKey>,
) -> libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = match noise::Config::new(keypair) {
        Ok(n) => n,
        // Only fails for key types noise cannot use; the node key is always ed25519.
        Err(e) => panic!("noise rejected the node's ed25519 key: {e}"),
    };
    let mut yamux_cfg = yamux::Config::default();
    yamux_cfg.set_max_num_streams(4096);
    match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux_cfg)
            .timeout(Duration::from_secs(10))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux_cfg)
            .timeout(Duration::from_secs(10))
            .boxed(),
    }
}

fn load_or_create_key(dir: &Path) -> Result<Keypair, NetError> {
    let path = dir.join(KEY_FILE);
    let key_err = |source| NetError::Key {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| NetError::KeyCorrupt {
            path: path.display().to_string(),
            msg: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(key_err)?;
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| NetError::KeyCorrupt {
                    path: path.display().to_string(),
                    msg: e.to_string(),
                })?;
            write_private(&path, &bytes).map_err(key_err)?;
            Ok(key)
        }
        Err(e) => Err(key_err(e)),
    }
}

/// Writes a secret file readable by its owner only (0600), atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A new random cluster key.
pub fn generate_cluster_key() -> PreSharedKey {
    PreSharedKey::new(rand::random::<[u8; 32]>())
}

/// A cluster key in the go-libp2p swarm.key format that [`load_cluster_key`] reads.
pub fn cluster_key_text(key: &PreSharedKey) -> String {
    key.to_key_file()
}

/// Every IPv4 address of this host's interfaces that are up, with the
/// interface's name.
pub fn host_ipv4_addrs() -> Vec<(String, std::net::Ipv4Addr)> {
    use nix::net::if_::InterfaceFlags;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|a| Some((a.interface_name.clone(), a.address?.as_sockaddr_in()?.ip())))
        .collect()
}

/// Whether the multiaddr is a wildcard address (0.0.0.0 or ::).
pub fn is_wildcard(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

/// The TCP port of a multiaddr.
pub fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// Whether every address this multiaddr can mean is a loopback one (a
/// wildcard such as 0.0.0.0 is not).
pub fn is_loopback(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        Some(Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h)) => h == "localhost",
        _ => false,
    }
}

/// Reads a cluster key file: the go-libp2p swarm.key format, or 64 hex digits alone.
pub fn load_cluster_key(path: &Path) -> Result<PreSharedKey, NetError> {
    let err = |msg: String| NetError::ClusterKey {
        path: path.display().to_string(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let trimmed = text.trim();
    if trimmed.starts_with("/key/") {
        return trimmed
            .parse::<PreSharedKey>()
            .map_err(|e| err(e.to_string()));
    }
    let bytes = hex::decode(trimmed).map_err(|e| err(format!("expected 64 hex digits: {e}")))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("expected 32 bytes (64 hex digits)".into()))?;
    Ok(PreSharedKey::new(arr))
}

/// Parses `HOST:PORT` (IPv4, `[IPv6]`, or a name resolved now) or a multiaddr.
pub async fn parse_addr(s: &str) -> Result<Multiaddr, NetError> {
    let bad = |msg: &str| NetError::Address {
        addr: s.to_string(),
        msg: msg.to_string(),
    };
    if s.starts_with('/') {
        return s
            .parse()
            .map_err(|e: libp2p::multiaddr::Error| bad(&e.to_string()));
    }
    let sock = match s.parse::<std::net::SocketAddr>() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(s)
            .await
            .map_err(|e| bad(&format!("expected HOST:PORT or a multiaddr ({e})")))?
            .next()
            .ok_or_else(|| bad("the name resolved to no address"))?,
    };
    Ok(socket_to_multiaddr(sock))
}

/// The multiaddr of a TCP socket address.
pub fn socket_to_multiaddr(sock: std::net::SocketAddr) -> Multiaddr {
    let mut m = Multiaddr::empty();
    match sock.ip() {
        std::net::IpAddr::V4(ip) => m.push(libp2p::multiaddr::Protocol::Ip4(ip)),
        std::net::IpAddr::V6(ip) => m.push(libp2p::multiaddr::Protocol::Ip6(ip)),
    }
    m.push(libp2p::multiaddr::Protocol::Tcp(sock.port()));
    m
}

/// Decodes bincode (standard configuration) from bytes a peer or the disk
/// supplied, reading no more than `max` bytes of strings and byte fields.
/// bincode reserves a string's claimed length before reading it, and only
/// its limit bounds that claim; the limit grows with the input, so a message
/// of a few bytes cannot make the reader reserve megabytes. The limit counts
/// decoded, in-memory bytes (a Vec's length times its element's size), which
/// exceed the encoded size many times over (a log entry of a few encoded
/// bytes is a hundred in memory): a limit of the input's own size refused
/// valid appends of many small entries, so it is 64 times the input, at
/// least 1 MiB.
pub fn decode_bounded<T: serde::de::DeserializeOwned, const MAX: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    fn with<T: serde::de::DeserializeOwned, const LIMIT: usize>(
        bytes: &[u8],
    ) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard().with_limit::<LIMIT>())
    }
    const MIB: usize = 1024 * 1024;
    let n = bytes.len();
    if n <= 16 * 1024 && MAX > MIB {
        with::<T, MIB>(bytes)
    } else if n <= 256 * 1024 && MAX > 16 * MIB {
        with::<T, { 16 * MIB }>(bytes)
    } else {
        with::<T, MAX>(bytes)
    }
}

/// Length-prefixed frames with a hard size limit, read before allocating.
#[derive(Clone, Default)]
struct FrameCodec;

/// Reads one frame: a 4-byte big-endian length, then that many bytes.
pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    // Grow with what arrives: a length alone must not cost its size in memory
    // (a peer could otherwise hold 32 MiB per stream by sending 4 bytes).
    let mut buf = Vec::with_capacity(len.min(FRAME_READ_CHUNK));
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, data: Vec<u8>) -> io::Result<()> {
    if data.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {MAX_FRAME_BYTES}-byte limit",
                data.len()
            ),
        ));
    }
    io.write_all(&(data.len() as u32).to_be_bytes()).await?;
    io.write_all(&data).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, res).await
    }
}

/// The swarm's metrics (`shoal_net_*`).
pub mod metrics {
    use crate::telemetry::{Def, counter};

    /// `shoal_net_silent_connections_closed_total`.
    pub const SILENT_CONNECTIONS_CLOSED_TOTAL: &str = "shoal_net_silent_connections_closed_total";
    /// `shoal_net_refused_connections_total`.
    pub const REFUSED_CONNECTIONS_TOTAL: &str = "shoal_net_refused_connections_total";

    /// Every family this module records, with its help text.
    pub const FAMILIES: &[Def] = &[
        counter(
            SILENT_CONNECTIONS_CLOSED_TOTAL,
            "Connections closed because a request on them timed out and the peer had sent nothing for as long (a partition or a frozen host), so the next request dials afresh.",
        ),
        counter(
            REFUSED_CONNECTIONS_TOTAL,
            "Incoming p2p connections refused: another or no cluster key, or not libp2p at all.",
        ),
    ];
}

#[cfg(test)]
mod tests;
