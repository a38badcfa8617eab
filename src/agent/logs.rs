//! Container logs from any node: the node a pod runs on reads them from its
//! runtime; any other node pulls them over libp2p in chunks, so `shoal logs
//! -f` at one node follows a container on another.
//!
//! libp2p's request-response carries one reply per request, so a follow is
//! a session: `Open` starts a log stream on the pod's node and each `Next`
//! returns what arrived since (waiting briefly when nothing has). A session
//! nobody asks about for a minute is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::sessions::{LocateError, Located, Owner, Sessions, locate, peer_of};
use crate::net::{Channel, Handler, Net};
use crate::runtime::{
    ContainerInfo, ContainerState, DynRuntime, LABEL_CONTAINER, LABEL_POD_UID, LABEL_RESTARTS,
    LogOptions, LogStream,
};
use crate::store::Store;

const MAX_CHUNK: usize = 256 * 1024;
const NEXT_WAIT: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(60);
const MAX_REQUEST: usize = 4096;
/// Log streams one node serves to other nodes at once.
const MAX_SESSIONS: usize = 256;

/// Errors of a log request.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// No such pod, or not yet placed on a node.
    #[error("{0}")]
    NotFound(String),
    /// The pod has several containers and none was named.
    #[error("{0}")]
    BadRequest(String),
    /// The pod's node could not be asked.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Open {
        pod_uid: String,
        container: String,
        opts: LogOptions,
        previous: bool,
    },
    Next {
        session: u64,
    },
    Close {
        session: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Chunk {
    session: u64,
    data: Vec<u8>,
    eof: bool,
}

/// Serves and fetches container logs.
pub struct LogService {
    store: Store,
    net: Net,
    runtime: DynRuntime,
    node: String,
    sessions: Sessions<Mutex<LogStream>>,
}

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 64 * 1024 * 1024 }>()
}

impl LogService {
    /// Creates the service and registers it on the `Logs` channel.
    pub fn start(store: Store, net: Net, runtime: DynRuntime, node: String) -> Arc<LogService> {
        let svc = Arc::new(LogService {
            store,
            net: net.clone(),
            runtime,
            node,
            sessions: Sessions::new(IDLE, MAX_SESSIONS),
        });
        net.set_handler(Channel::Logs, Arc::new(LogHandler(svc.clone())));
        svc
    }

    /// A pod's log as a byte stream, from whichever node runs it; with
    /// `previous`, of the container's instance before the current one.
    pub async fn stream(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        opts: LogOptions,
        previous: bool,
    ) -> Result<LogStream, LogsError> {
        let Located {
            node,
            uid,
            container,
            ..
        } = locate(&self.store, namespace, pod, container).map_err(|e| match e {
            LocateError::NotFound(m) => LogsError::NotFound(m),
            LocateError::BadRequest(m) => LogsError::BadRequest(m),
            LocateError::Unavailable(m) => LogsError::Unavailable(m),
        })?;
        if node == self.node {
            return self.local(&uid, &container, opts, previous).await;
        }
        self.remote(&node, uid, container, opts, previous).await
    }

    async fn local(
        &self,
        uid: &str,
        container: &str,
        opts: LogOptions,
        previous: bool,
    ) -> Result<LogStream, LogsError> {
        let labels = BTreeMap::from([
            (LABEL_POD_UID.to_string(), uid.to_string()),
            (LABEL_CONTAINER.to_string(), container.to_string()),
        ]);
        let list = self
            .runtime
            .list(&labels)
            .await
            .map_err(|e| LogsError::Unavailable(e.to_string()))?;
        let Some(c) = pick(list, previous) else {
            return Err(LogsError::NotFound(match previous {
                false => format!("container {container} has not been created yet"),
                true => format!(
                    "previous terminated container {container} not found: it has not restarted on this node"
                ),
            }));
        };
        self.runtime
            .logs(&c.id, opts)
            .await
            .map_err(|e| LogsError::Unavailable(e.to_string()))
    }

    async fn remote(
        &self,
        node: &str,
        pod_uid: String,
        container: String,
        opts: LogOptions,
        previous: bool,
    ) -> Result<LogStream, LogsError> {
        let (peer, addrs) = peer_of(&self.store, node).map_err(LogsError::Unavailable)?;
        let net = self.net.clone();
        let ask = move |req: Request| {
            let net = net.clone();
            let addrs = addrs.clone();
            async move {
                let body = bincode::serde::encode_to_vec(&req, codec())
                    .map_err(|e| LogsError::Unavailable(e.to_string()))?;
                let reply = net
                    .request(peer, addrs, Channel::Logs, body)
                    .await
                    .map_err(|e| LogsError::Unavailable(format!("node {peer}: {e}")))?;
                let chunk = decode_chunk(&reply)
                    .map_err(|e| LogsError::Unavailable(format!("bad log reply: {e}")))?;
                Ok::<Chunk, LogsError>(chunk)
            }
        };
        let first = ask(Request::Open {
            pod_uid,
            container,
            opts,
            previous,
        })
        .await?;
        let session = first.session;
        let stream = futures::stream::unfold(Some(first), move |state| {
            let ask = ask.clone();
            async move {
                let chunk = state?;
                if chunk.eof && chunk.data.is_empty() {
                    return None;
                }
                let next = if chunk.eof {
                    None
                } else {
                    // An empty chunk only means nothing arrived yet; ask again.
                    match ask(Request::Next { session }).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            return Some((
                                Err(crate::runtime::RuntimeError::Unavailable(e.to_string())),
                                None,
                            ));
                        }
                    }
                };
                Some((Ok(Bytes::from(chunk.data)), next))
            }
        })
        .filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())));
        Ok(Box::pin(stream))
    }

    async fn serve(&self, from: Owner, req: Request) -> Result<Chunk, String> {
        let (session, stream) = match req {
            Request::Open {
                pod_uid,
                container,
                opts,
                previous,
            } => {
                let s = self
                    .local(&pod_uid, &container, opts, previous)
                    .await
                    .map_err(|e| e.to_string())?;
                self.sessions.insert(from, Mutex::new(s))?
            }
            Request::Next { session } => (session, self.sessions.get(from, session)?),
            Request::Close { session } => {
                self.sessions.remove(from, session);
                return Ok(Chunk {
                    session,
                    data: Vec::new(),
                    eof: true,
                });
            }
        };
        let mut stream = stream.lock().await;
        let mut data = Vec::new();
        let mut eof = false;
        let deadline = tokio::time::Instant::now() + NEXT_WAIT;
        while data.len() < MAX_CHUNK {
            // Wait for the first bytes; after that take only what is ready now.
            let wait = if data.is_empty() {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                Duration::from_millis(5)
            };
            match tokio::time::timeout(wait, stream.next()).await {
                Ok(Some(Ok(b))) => data.extend_from_slice(&b),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if eof {
            self.sessions.remove(from, session);
        }
        Ok(Chunk { session, data, eof })
    }
}

/// The instance of a container to read: the newest (most restarts, then
/// latest created), or with `previous` the one before it, once it has stopped.
pub(crate) fn pick(mut list: Vec<ContainerInfo>, previous: bool) -> Option<ContainerInfo> {
    let restarts = |c: &ContainerInfo| {
        c.labels
            .get(LABEL_RESTARTS)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    list.sort_by(|a, b| {
        restarts(b)
            .cmp(&restarts(a))
            .then(b.created_at.cmp(&a.created_at))
    });
    let mut it = list.into_iter();
    if !previous {
        return it.next();
    }
    let newest = it.next()?;
    it.next().filter(|c| {
        matches!(c.state, ContainerState::Exited { .. }) && restarts(c) < restarts(&newest)
    })
}

fn decode_chunk(reply: &[u8]) -> Result<Chunk, bincode::error::DecodeError> {
    crate::net::decode_bounded::<_, { 64 * 1024 * 1024 }>(reply).map(|(c, _)| c)
}

fn decode_request(body: &[u8]) -> Result<Request, String> {
    if body.len() > MAX_REQUEST {
        return Err("log request too large".into());
    }
    let (req, _): (Request, usize) = crate::net::decode_bounded::<_, MAX_REQUEST>(body)
        .map_err(|e| format!("undecodable log request: {e}"))?;
    Ok(req)
}

/// Decodes `body` as a peer's log request and as a log reply (for the fuzz
/// targets); returns how many of the two decoded.
pub(crate) fn decode_peer_body(body: &[u8]) -> usize {
    let reply = decode_chunk(body);
    usize::from(decode_request(body).is_ok()) + usize::from(reply.is_ok())
}

struct LogHandler(Arc<LogService>);

impl Handler for LogHandler {
    fn handle(&self, from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let svc = self.0.clone();
        Box::pin(async move {
            let req = decode_request(&body)?;
            let chunk = svc.serve(Some(from), req).await?;
            bincode::serde::encode_to_vec(&chunk, codec()).map_err(|e| e.to_string())
        })
    }
}
