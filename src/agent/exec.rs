//! `shoal exec` and `shoal port-forward` from any node: the command runs on
//! the pod's node (Docker exec through the runtime), and a forwarded
//! connection is made from there to the container's address; any other
//! node drives either over libp2p as a session (see [`super::sessions`]):
//! `Open` (or `OpenPort`) starts it, `Read` returns what
//! it wrote since (waiting briefly when nothing has), `Write` feeds its
//! stdin, `Resize` its terminal. Reads and writes are separate requests,
//! so input is never held up behind a read that waits for output.
//!
//! Bounds: a write carries at most [`MAX_WRITE`] bytes and is answered once
//! the engine took them (the caller's next write waits: backpressure); a
//! read returns at most [`MAX_READ`] bytes; a node serves at most
//! [`MAX_SESSIONS`] sessions.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::logs::pick;
use super::sessions::{LocateError, Owner, Sessions, locate, locate_pod, peer_of};
use crate::net::{Channel, Handler, Net};
use crate::runtime::{
    AttachRequest, ContainerState, DynRuntime, ExecChunk, ExecControl, ExecRequest,
    LABEL_CONTAINER, LABEL_POD_UID, RuntimeError,
};
use crate::store::Store;

mod attach;
pub use attach::Attached;

/// The most stdin bytes one write carries.
pub const MAX_WRITE: usize = 32 * 1024;
/// The most output bytes one read returns.
pub const MAX_READ: usize = 256 * 1024;
/// Sessions one node serves at once.
pub const MAX_SESSIONS: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_WAIT: Duration = Duration::from_secs(2);
/// How long a read that is taking a bulk transfer waits for its next chunk.
const BULK_WAIT: Duration = Duration::from_millis(2);
/// A chunk this large means the output has more behind it (a bulk transfer).
const BULK_CHUNK: usize = 16 * 1024;
const IDLE: Duration = Duration::from_secs(60);
const MAX_REQUEST: usize = 64 * 1024;
const MAX_REPLY: usize = 2 * MAX_READ;

/// Errors of an exec session.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No such pod, or not yet placed, or its container is not running.
    #[error("{0}")]
    NotFound(String),
    /// A wrong container name, or a request the runtime refuses.
    #[error("{0}")]
    BadRequest(String),
    /// The pod's node or its engine could not be asked.
    #[error("{0}")]
    Unavailable(String),
}

impl From<LocateError> for ExecError {
    fn from(e: LocateError) -> Self {
        match e {
            LocateError::NotFound(m) => ExecError::NotFound(m),
            LocateError::BadRequest(m) => ExecError::BadRequest(m),
            LocateError::Unavailable(m) => ExecError::Unavailable(m),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Open {
        pod_uid: String,
        container: String,
        req: ExecRequest,
    },
    OpenPort {
        pod_uid: String,
        port: u16,
    },
    Read {
        session: u64,
    },
    Write {
        session: u64,
        data: Vec<u8>,
        close: bool,
    },
    Resize {
        session: u64,
        width: u16,
        height: u16,
    },
    Close {
        session: u64,
    },
    // Last, so that the variants before keep their tags on the wire.
    Attach {
        pod_uid: String,
        container: String,
        req: AttachRequest,
    },
}

/// What one read returns.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The session it belongs to.
    pub session: u64,
    /// Bytes the command wrote to stdout (or its terminal).
    pub stdout: Vec<u8>,
    /// Bytes it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its exit code, once it has ended.
    pub exit: Option<i64>,
}

type OutputStream = Pin<Box<dyn Stream<Item = Result<ExecChunk, RuntimeError>> + Send>>;
type Input = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

struct Running {
    output: Mutex<OutputStream>,
    input: Mutex<Option<Input>>,
    control: Box<dyn ExecControl>,
}

/// Runs and relays interactive commands.
pub struct ExecService {
    store: Store,
    net: Net,
    runtime: DynRuntime,
    node: String,
    sessions: Sessions<Running>,
}

#[derive(Clone)]
enum Target {
    Local,
    Remote(PeerId, Vec<Multiaddr>),
}

/// One running command, on this node or another.
pub struct ExecConn {
    svc: Arc<ExecService>,
    target: Target,
    session: u64,
}

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_REPLY }>()
}

impl ExecService {
    /// Creates the service and registers it on the `Exec` channel.
    pub fn start(store: Store, net: Net, runtime: DynRuntime, node: String) -> Arc<ExecService> {
        let svc = Arc::new(ExecService {
            store,
            net: net.clone(),
            runtime,
            node,
            sessions: Sessions::new(IDLE, MAX_SESSIONS),
        });
        net.set_handler(Channel::Exec, Arc::new(ExecHandler(svc.clone())));
        // Swept on a timer, not only when another session opens: an attach
        // whose client vanished (its API node died before `Close`) would
        // otherwise stop reading for good, and Docker blocks a container's
        // writes once an attached reader stops.
        let weak = Arc::downgrade(&svc);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE / 4).await;
                let Some(svc) = weak.upgrade() else { return };
                svc.sessions.sweep();
            }
        });
        svc
    }

    /// A connection to the exec sessions of `node`: this node's own, or a
    /// peer's over libp2p.
    fn conn_to(self: &Arc<Self>, node: &str) -> Result<ExecConn, ExecError> {
        let target = if node == self.node {
            Target::Local
        } else {
            let (peer, addrs) = peer_of(&self.store, node).map_err(ExecError::Unavailable)?;
            Target::Remote(peer, addrs)
        };
        Ok(ExecConn {
            svc: self.clone(),
            target,
            session: 0,
        })
    }
    /// Starts `req` in a pod's container, on whichever node runs it.
    pub async fn open(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        req: ExecRequest,
    ) -> Result<ExecConn, ExecError> {
        if req.cmd.is_empty() {
            return Err(ExecError::BadRequest("no command to run".into()));
        }
        let at = locate(&self.store, namespace, pod, container)?;
        let mut conn = self.conn_to(&at.node)?;
        let out = conn
            .ask(Request::Open {
                pod_uid: at.uid,
                container: at.container,
                req,
            })
            .await?;
        conn.session = out.session;
        Ok(conn)
    }

    /// Connects to `port` of a pod, from whichever node runs it.
    pub async fn open_port(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<ExecConn, ExecError> {
        let (node, uid) = locate_pod(&self.store, namespace, pod)?;
        let target = if node == self.node {
            Target::Local
        } else {
            let (peer, addrs) = peer_of(&self.store, &node).map_err(ExecError::Unavailable)?;
            Target::Remote(peer, addrs)
        };
        let mut conn = ExecConn {
            svc: self.clone(),
            target,
            session: 0,
        };
        let out = conn.ask(Request::OpenPort { pod_uid: uid, port }).await?;
        conn.session = out.session;
        Ok(conn)
    }

    /// A connection to `port` of the pod `pod_uid` runs here, as a session.
    async fn connect(&self, pod_uid: String, port: u16) -> Result<Running, String> {
        let labels = BTreeMap::from([(LABEL_POD_UID.to_string(), pod_uid)]);
        let list = self
            .runtime
            .list(&labels)
            .await
            .map_err(|e| e.to_string())?;
        let running: Vec<_> = list
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .collect();
        if running.is_empty() {
            return Err("the pod has no running container".into());
        }
        // Docker containers have their own address; host processes listen on the host's.
        let ip: std::net::IpAddr = match running.iter().find_map(|c| c.ip.as_deref()) {
            Some(ip) => ip
                .parse()
                .map_err(|_| format!("the container's address {ip:?} does not parse"))?,
            None => std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let addr = std::net::SocketAddr::new(ip, port);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        // Forwarded protocols are often request/response in small writes.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let output = tokio_util::io::ReaderStream::with_capacity(r, MAX_WRITE).map(|b| {
            b.map(|data| ExecChunk {
                stderr: false,
                data,
            })
            .map_err(|source| RuntimeError::Io {
                op: "port-forward read",
                source,
            })
        });
        Ok(Running {
            output: Mutex::new(Box::pin(output)),
            input: Mutex::new(Some(Box::pin(w))),
            control: Box::new(Forwarded),
        })
    }

    /// The engine id of the pod's running container `container`, here.
    async fn running_container(&self, pod_uid: String, container: &str) -> Result<String, String> {
        let labels = BTreeMap::from([
            (LABEL_POD_UID.to_string(), pod_uid),
            (LABEL_CONTAINER.to_string(), container.to_string()),
        ]);
        let list = self
            .runtime
            .list(&labels)
            .await
            .map_err(|e| e.to_string())?;
        pick(list, false)
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.id)
            .ok_or_else(|| format!("container {container} is not running"))
    }

    async fn serve(&self, from: Owner, req: Request) -> Result<Output, String> {
        match req {
            Request::OpenPort { pod_uid, port } => {
                let running = self.connect(pod_uid, port).await?;
                let (session, _) = self.sessions.insert(from, running)?;
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
            Request::Open {
                pod_uid,
                container,
                req,
            } => {
                let id = self.running_container(pod_uid, &container).await?;
                let s = self
                    .runtime
                    .exec_interactive(&id, req)
                    .await
                    .map_err(|e| e.to_string())?;
                let running = Running {
                    output: Mutex::new(s.output),
                    input: Mutex::new(s.input),
                    control: s.control,
                };
                let (session, _) = self.sessions.insert(from, running)?;
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
            Request::Attach {
                pod_uid,
                container,
                req,
            } => {
                let id = self.running_container(pod_uid, &container).await?;
                let s = self
                    .runtime
                    .attach(&id, req)
                    .await
                    .map_err(|e| e.to_string())?;
                let running = Running {
                    output: Mutex::new(s.output),
                    input: Mutex::new(s.input),
                    control: s.control,
                };
                let (session, _) = self.sessions.insert(from, running)?;
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
            Request::Read { session } => {
                let s = self.sessions.get(from, session)?;
                let out = read(session, &s).await;
                if !matches!(&out, Ok(o) if o.exit.is_none()) {
                    self.sessions.remove(from, session);
                }
                out
            }
            Request::Write {
                session,
                data,
                close,
            } => {
                if data.len() > MAX_WRITE {
                    return Err(format!(
                        "a write of {} bytes is over {MAX_WRITE}",
                        data.len()
                    ));
                }
                let s = self.sessions.get(from, session)?;
                let mut input = s.input.lock().await;
                let Some(w) = input.as_mut() else {
                    return Err("the command's stdin is not open (exec -i opens it)".into());
                };
                let wrote = async {
                    w.write_all(&data).await?;
                    w.flush().await?;
                    if close {
                        w.shutdown().await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                wrote
                    .await
                    .map_err(|e| format!("writing to the command: {e}"))?;
                if close {
                    *input = None;
                }
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
            Request::Resize {
                session,
                width,
                height,
            } => {
                let s = self.sessions.get(from, session)?;
                s.control
                    .resize(width, height)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
            Request::Close { session } => {
                self.sessions.remove(from, session);
                Ok(Output {
                    session,
                    ..Output::default()
                })
            }
        }
    }
}

/// A forwarded connection: no terminal, and its end is no failure.
struct Forwarded;

#[async_trait::async_trait]
impl ExecControl for Forwarded {
    async fn resize(&self, _width: u16, _height: u16) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn exit_code(&self) -> Result<i64, RuntimeError> {
        Ok(0)
    }
}

/// Collects what the command wrote: waits up to [`READ_WAIT`] for the first
/// bytes, then takes what is ready, up to [`MAX_READ`]. The exit code comes
/// with the read that finds the output ended.
///
/// After the first bytes it waits (briefly, [`BULK_WAIT`]) only while the
/// output comes in full chunks, a bulk transfer worth batching; a small
/// write (a prompt, a reply) goes back at once, since every read is a round
/// trip the user waits for.
async fn read(session: u64, s: &Running) -> Result<Output, String> {
    use futures::FutureExt;
    let mut stream = s.output.lock().await;
    let mut out = Output {
        session,
        ..Output::default()
    };
    let deadline = tokio::time::Instant::now() + READ_WAIT;
    let mut bulk = false;
    while out.stdout.len() + out.stderr.len() < MAX_READ {
        let empty = out.stdout.is_empty() && out.stderr.is_empty();
        let next = if empty {
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::timeout(wait, stream.next()).await.ok()
        } else if bulk {
            tokio::time::timeout(BULK_WAIT, stream.next()).await.ok()
        } else {
            stream.next().now_or_never()
        };
        match next {
            Some(Some(Ok(c))) => {
                bulk = c.data.len() >= BULK_CHUNK;
                if c.stderr {
                    out.stderr.extend_from_slice(&c.data);
                } else {
                    out.stdout.extend_from_slice(&c.data);
                }
            }
            Some(Some(Err(e))) => return Err(e.to_string()),
            Some(None) => {
                out.exit = Some(s.control.exit_code().await.map_err(|e| e.to_string())?);
                break;
            }
            None => break,
        }
    }
    Ok(out)
}

impl ExecConn {
    async fn ask(&self, req: Request) -> Result<Output, ExecError> {
        match &self.target {
            Target::Local => self
                .svc
                .serve(None, req)
                .await
                .map_err(ExecError::Unavailable),
            Target::Remote(peer, addrs) => {
                let body = bincode::serde::encode_to_vec(&req, codec())
                    .map_err(|e| ExecError::Unavailable(e.to_string()))?;
                let reply = self
                    .svc
                    .net
                    .request(*peer, addrs.clone(), Channel::Exec, body)
                    .await
                    .map_err(|e| ExecError::Unavailable(format!("node {peer}: {e}")))?;
                decode_reply(&reply)
                    .map_err(|e| ExecError::Unavailable(format!("bad exec reply: {e}")))
            }
        }
    }

    /// The command's next output; `exit` is set once it has ended (the
    /// session is gone then).
    pub async fn read(&self) -> Result<Output, ExecError> {
        self.ask(Request::Read {
            session: self.session,
        })
        .await
    }

    /// Feeds at most [`MAX_WRITE`] bytes to the command's stdin; `close`
    /// sends end-of-file after them.
    pub async fn write(&self, data: Vec<u8>, close: bool) -> Result<(), ExecError> {
        self.ask(Request::Write {
            session: self.session,
            data,
            close,
        })
        .await
        .map(drop)
    }

    /// Sets the command's terminal size.
    pub async fn resize(&self, width: u16, height: u16) -> Result<(), ExecError> {
        self.ask(Request::Resize {
            session: self.session,
            width,
            height,
        })
        .await
        .map(drop)
    }

    /// Lets the session go on the pod's node (the command itself goes on
    /// once its input and output are closed, as `docker exec` does).
    pub async fn close(&self) {
        let _ = self
            .ask(Request::Close {
                session: self.session,
            })
            .await;
    }
}

fn decode_reply(reply: &[u8]) -> Result<Output, bincode::error::DecodeError> {
    crate::net::decode_bounded::<_, MAX_REPLY>(reply).map(|(o, _)| o)
}

fn decode_request(body: &[u8]) -> Result<Request, String> {
    if body.len() > MAX_REQUEST {
        return Err("exec request too large".into());
    }
    let (req, _): (Request, usize) = crate::net::decode_bounded::<_, MAX_REQUEST>(body)
        .map_err(|e| format!("undecodable exec request: {e}"))?;
    Ok(req)
}

/// Decodes `body` as a peer's exec request and as an exec reply (for the
/// fuzz targets); returns how many of the two decoded.
pub(crate) fn decode_peer_body(body: &[u8]) -> usize {
    usize::from(decode_request(body).is_ok()) + usize::from(decode_reply(body).is_ok())
}

struct ExecHandler(Arc<ExecService>);

impl Handler for ExecHandler {
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let svc = self.0.clone();
        Box::pin(async move {
            let req = decode_request(&body)?;
            let out = svc.serve(Some(from), req).await?;
            bincode::serde::encode_to_vec(&out, codec()).map_err(|e| e.to_string())
        })
    }
}
