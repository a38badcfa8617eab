//! The view of Services and their ready endpoints that DNS and the load
//! balancer serve from. It is rebuilt from this node's replica of the store
//! whenever Services or Pods change, and published through a `watch`
//! channel, so readers never hold a lock across I/O.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Every Service this node knows, keyed by (namespace, name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceTable {
    /// Services by (namespace, name).
    pub services: BTreeMap<(String, String), ServiceEntry>,
    /// The cluster this table is of, once known; DNS tells it to a node
    /// that would share the same address.
    pub cluster_id: Option<String>,
}

/// One Service as DNS and the load balancer see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Virtual IP the load balancer listens on; `None` for a headless
    /// Service (`clusterIP: None`), whose DNS name answers with endpoints.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Ports, in the Service's order.
    pub ports: Vec<PortEntry>,
    /// `sessionAffinity: ClientIP`: how long a client keeps its endpoint.
    pub client_ip_affinity: Option<std::time::Duration>,
}

/// One port of a Service with the endpoints behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortEntry {
    /// The port's name (SRV `_NAME._tcp`); `None` when the Service has a
    /// single unnamed port.
    pub name: Option<String>,
    /// Port on the cluster IP.
    pub port: u16,
    /// Port on every node's addresses, for NodePort Services.
    pub node_port: Option<u16>,
    /// Ready endpoints, addressed as this node reaches them, sorted.
    pub endpoints: Vec<Endpoint>,
}

/// A ready pod behind a Service port, as this node reaches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address to connect to: the container's IP for a pod on this node,
    /// the pod's host IP otherwise.
    pub ip: Ipv4Addr,
    /// Port at `ip`: the container port on this node, the published host
    /// port on another.
    pub port: u16,
    /// The pod's DNS label (`POD.SERVICE.NS.svc`, SRV targets): its
    /// hostname when its subdomain is the Service, else its name.
    pub pod: String,
    /// Node the pod runs on.
    pub node: String,
}

impl ServiceTable {
    /// The Service `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
    }
}
