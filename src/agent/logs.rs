//! Container logs from any node: the node a pod runs on reads them from its
//! runtime; any other node pulls them over libp2p in chunks, so `shoal logs
//! -f` at one node follows a container on another.
//!
//! libp2p's request-response carries one reply per request, so a follow is
//! a session: `Open` starts a log stream on the pod's node and each `Next`
//! returns what arrived since (waiting briefly when nothing has). A session
//! nobody asks about for a minute is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::net::{Channel, Handler, Net};
use crate::resource::{Kind, ObjectKey};
use crate::runtime::{
    DynRuntime, LABEL_CONTAINER, LABEL_POD_UID, LABEL_RESTARTS, LogOptions, LogStream,
};
use crate::store::Store;

const MAX_CHUNK: usize = 256 * 1024;
const NEXT_WAIT: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(60);
const MAX_REQUEST: usize = 4096;

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

struct Session {
    stream: Arc<Mutex<LogStream>>,
    used: Instant,
}

/// Serves and fetches container logs.
pub struct LogService {
    store: Store,
    net: Net,
    runtime: DynRuntime,
    node: String,
    sessions: StdMutex<HashMap<u64, Session>>,
    next_id: AtomicU64,
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
            sessions: StdMutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        net.set_handler(Channel::Logs, Arc::new(LogHandler(svc.clone())));
        svc
    }

    /// A pod's log as a byte stream, from whichever node runs it.
    pub async fn stream(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        opts: LogOptions,
    ) -> Result<LogStream, LogsError> {
        let key = ObjectKey::new(Kind::Pod, namespace, pod);
        let obj = self
            .store
            .get(&key)
            .map_err(|e| LogsError::Unavailable(e.to_string()))?
            .ok_or_else(|| LogsError::NotFound(format!("pod {namespace}/{pod} not found")))?;
        let spec = obj.body.get("spec");
        let names: Vec<String> = spec
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let container = match container {
            Some(c) if names.iter().any(|n| n == c) => c.to_string(),
            Some(c) => {
                return Err(LogsError::BadRequest(format!(
                    "container {c} is not valid for pod {pod}: choose one of {names:?}"
                )));
            }
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(LogsError::BadRequest(format!(
                    "a container name must be specified for pod {pod}: choose one of {names:?}"
                )));
            }
        };
        let node = spec
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .ok_or_else(|| LogsError::NotFound(format!("pod {pod} is not placed on a node yet")))?
            .to_string();
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        if node == self.node {
            return self.local(&uid, &container, opts).await;
        }
        self.remote(&node, uid, container, opts).await
    }

    async fn local(
        &self,
        uid: &str,
        container: &str,
        opts: LogOptions,
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
        let newest = list.into_iter().max_by_key(|c| {
            (
                c.labels
                    .get(LABEL_RESTARTS)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
                c.created_at,
            )
        });
        let Some(c) = newest else {
            return Err(LogsError::NotFound(format!(
                "container {container} has not been created yet"
            )));
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
    ) -> Result<LogStream, LogsError> {
        let node_obj = self
            .store
            .get(&ObjectKey::new(Kind::Node, "", node))
            .map_err(|e| LogsError::Unavailable(e.to_string()))?
            .ok_or_else(|| LogsError::Unavailable(format!("node {node} is not known")))?;
        let info = node_obj
            .status_or_default::<crate::resource::status::NodeStatus>()
            .node_info
            .unwrap_or_default();
        let peer: PeerId = info
            .peer_id
            .parse()
            .ok()
            .ok_or_else(|| LogsError::Unavailable(format!("node {node} has no peer id")))?;
        let addrs = info
            .p2p_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect::<Vec<_>>();
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

    fn sweep(&self) {
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.used.elapsed() < IDLE);
        }
    }

    async fn serve(&self, req: Request) -> Result<Chunk, String> {
        self.sweep();
        let (session, stream) = match req {
            Request::Open {
                pod_uid,
                container,
                opts,
            } => {
                let s = self
                    .local(&pod_uid, &container, opts)
                    .await
                    .map_err(|e| e.to_string())?;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let stream = Arc::new(Mutex::new(s));
                if let Ok(mut map) = self.sessions.lock() {
                    map.insert(
                        id,
                        Session {
                            stream: stream.clone(),
                            used: Instant::now(),
                        },
                    );
                }
                (id, stream)
            }
            Request::Next { session } => {
                let stream = self.sessions.lock().ok().and_then(|mut m| {
                    m.get_mut(&session).map(|s| {
                        s.used = Instant::now();
                        s.stream.clone()
                    })
                });
                match stream {
                    Some(s) => (session, s),
                    None => return Err(format!("log session {session} expired")),
                }
            }
            Request::Close { session } => {
                if let Ok(mut m) = self.sessions.lock() {
                    m.remove(&session);
                }
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
        if eof && let Ok(mut m) = self.sessions.lock() {
            m.remove(&session);
        }
        Ok(Chunk { session, data, eof })
    }
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
    fn handle(&self, _from: PeerId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let svc = self.0.clone();
        Box::pin(async move {
            let req = decode_request(&body)?;
            let chunk = svc.serve(req).await?;
            bincode::serde::encode_to_vec(&chunk, codec()).map_err(|e| e.to_string())
        })
    }
}
