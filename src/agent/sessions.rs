//! What the streams carried between nodes share (`logs -f` and `exec` today):
//! libp2p's request-response carries one reply per request, so a stream is
//! a session on the pod's node, opened by one request and pulled (and, for
//! exec, pushed) by the next ones. This module keeps the session table —
//! bounded, each session owned by the peer that opened it, and dropped
//! once nobody asks about it for a while — and finds the peer that serves
//! a pod's node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use serde_json::Value;

use crate::resource::status::NodeStatus;
use crate::resource::{Kind, ObjectKey};
use crate::store::Store;

/// Who opened a session: a peer, or this node's own API.
pub(crate) type Owner = Option<PeerId>;

struct Entry<T> {
    value: Arc<T>,
    owner: Owner,
    used: Instant,
}

/// Open sessions by id.
pub(crate) struct Sessions<T> {
    map: Mutex<HashMap<u64, Entry<T>>>,
    next_id: AtomicU64,
    idle: Duration,
    max: usize,
}

impl<T> Sessions<T> {
    /// A table of at most `max` sessions, each dropped after `idle` unused.
    pub(crate) fn new(idle: Duration, max: usize) -> Sessions<T> {
        Sessions {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            idle,
            max,
        }
    }

    /// Adds a session; refused when the table is full of live ones.
    pub(crate) fn insert(&self, owner: Owner, value: T) -> Result<(u64, Arc<T>), String> {
        let mut map = self.map.lock().map_err(|_| "session table poisoned")?;
        let idle = self.idle;
        map.retain(|_, e| e.used.elapsed() < idle);
        if map.len() >= self.max {
            return Err(format!(
                "this node already serves {} sessions: try again later",
                self.max
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let value = Arc::new(value);
        map.insert(
            id,
            Entry {
                value: value.clone(),
                owner,
                used: Instant::now(),
            },
        );
        Ok((id, value))
    }

    /// The session `id` if `owner` opened it; marks it used.
    pub(crate) fn get(&self, owner: Owner, id: u64) -> Result<Arc<T>, String> {
        let mut map = self.map.lock().map_err(|_| "session table poisoned")?;
        match map.get_mut(&id) {
            Some(e) if e.owner == owner => {
                e.used = Instant::now();
                Ok(e.value.clone())
            }
            _ => Err(format!("session {id} is not open (expired?)")),
        }
    }

    /// Drops every session nobody used for the idle time; how many.
    pub(crate) fn sweep(&self) -> usize {
        let Ok(mut map) = self.map.lock() else {
            return 0;
        };
        let (before, idle) = (map.len(), self.idle);
        map.retain(|_, e| e.used.elapsed() < idle);
        before - map.len()
    }

    /// Ends the session `id` if `owner` opened it.
    pub(crate) fn remove(&self, owner: Owner, id: u64) {
        if let Ok(mut map) = self.map.lock()
            && map.get(&id).is_some_and(|e| e.owner == owner)
        {
            map.remove(&id);
        }
    }

    /// How many are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Where a pod's container runs.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    /// The node's name.
    pub node: String,
    /// The pod's uid (the runtime labels its containers with it).
    pub uid: String,
    /// The container's name.
    pub container: String,
    /// Its place in the pod's `containers`, for messages naming its fields.
    pub index: usize,
    /// Whether it was created with a stdin kept open (`stdin: true`).
    pub stdin: bool,
    /// Whether it was created with a terminal (`tty: true`).
    pub tty: bool,
}

/// Errors of finding a pod's container.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// No such pod, or not placed on a node yet.
    #[error("{0}")]
    NotFound(String),
    /// The pod has several containers and none was named, or a wrong one.
    #[error("{0}")]
    BadRequest(String),
    /// The store could not be read.
    #[error("{0}")]
    Unavailable(String),
}

fn pod_object(
    store: &Store,
    namespace: &str,
    pod: &str,
) -> Result<crate::resource::Object, LocateError> {
    let key = ObjectKey::new(Kind::Pod, namespace, pod);
    store
        .get(&key)
        .map_err(|e| LocateError::Unavailable(e.to_string()))?
        .ok_or_else(|| LocateError::NotFound(format!("pod {namespace}/{pod} not found")))
}

fn node_of(obj: &crate::resource::Object, pod: &str) -> Result<String, LocateError> {
    obj.body
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| LocateError::NotFound(format!("pod {pod} is not placed on a node yet")))
}

/// Finds the node and uid of a pod.
pub(crate) fn locate_pod(
    store: &Store,
    namespace: &str,
    pod: &str,
) -> Result<(String, String), LocateError> {
    let obj = pod_object(store, namespace, pod)?;
    let node = node_of(&obj, pod)?;
    Ok((node, obj.metadata.uid.clone().unwrap_or_default()))
}

/// Finds the node, uid and container (`container`, or the only one) of a pod.
pub(crate) fn locate(
    store: &Store,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<Located, LocateError> {
    let obj = pod_object(store, namespace, pod)?;
    let spec = obj.body.get("spec");
    let containers: Vec<&Value> = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<String> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let container = match container {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(LocateError::BadRequest(format!(
                "container {c} is not valid for pod {pod}: choose one of {names:?}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(LocateError::BadRequest(format!(
                "a container name must be specified for pod {pod}: choose one of {names:?}"
            )));
        }
    };
    let node = node_of(&obj, pod)?;
    let index = containers
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some(container.as_str()))
        .unwrap_or_default();
    let flag = |name: &str| {
        containers
            .get(index)
            .and_then(|c| c.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    Ok(Located {
        node,
        uid: obj.metadata.uid.clone().unwrap_or_default(),
        index,
        stdin: flag("stdin"),
        tty: flag("tty"),
        container,
    })
}

/// The peer id and addresses node `node` registered.
pub(crate) fn peer_of(store: &Store, node: &str) -> Result<(PeerId, Vec<Multiaddr>), String> {
    let node_obj = store
        .get(&ObjectKey::new(Kind::Node, "", node))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("node {node} is not known"))?;
    let info = node_obj
        .status_or_default::<NodeStatus>()
        .node_info
        .unwrap_or_default();
    let peer: PeerId = info
        .peer_id
        .parse()
        .map_err(|_| format!("node {node} has no peer id"))?;
    let addrs = info
        .p2p_addrs
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect::<Vec<_>>();
    Ok((peer, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_owned_and_expire() {
        let s: Sessions<u8> = Sessions::new(Duration::from_secs(60), 2);
        let me = Some(PeerId::random());
        let other = Some(PeerId::random());
        let (a, _) = s.insert(me, 1).expect("first");
        let (b, _) = s.insert(None, 2).expect("second");
        assert!(s.insert(me, 3).is_err(), "a third is over the cap");
        assert_eq!(*s.get(me, a).expect("mine"), 1);
        assert!(s.get(other, a).is_err(), "another peer cannot use it");
        assert!(s.get(me, b).is_err(), "nor can a peer use the API's own");
        s.remove(other, a);
        assert_eq!(s.len(), 2, "another peer cannot close it");
        s.remove(me, a);
        assert!(s.get(me, a).is_err());
        assert!(s.insert(me, 4).is_ok(), "room again");

        let quick: Sessions<u8> = Sessions::new(Duration::ZERO, 1);
        quick.insert(None, 1).expect("first");
        assert_eq!(quick.sweep(), 1, "an idle one is swept");
        assert_eq!(quick.len(), 0);
        assert_eq!(s.sweep(), 0, "a used one stays");
        quick.insert(None, 1).expect("first");
        assert!(
            quick.insert(None, 2).is_ok(),
            "an idle one is swept for room"
        );
    }
}
