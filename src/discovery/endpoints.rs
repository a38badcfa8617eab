//! Derives the [`ServiceTable`] from Service and Pod objects of the local
//! replica. Pure: the same objects and node give the same table, so every
//! node computes its own view without asking anyone.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::table::{Endpoint, PortEntry, ServiceEntry, ServiceTable};
use crate::resource::Object;
use crate::resource::status::PodStatus;
use crate::resource::types::{Body, IntOrString, PodBody, ServiceBody};
use crate::resource::view::PodView;

/// A pod that can receive traffic, with what is needed to address it.
struct ReadyPod {
    name: String,
    node: String,
    labels: BTreeMap<String, String>,
    spec: PodBody,
    pod_ip: Option<Ipv4Addr>,
    host_ip: Option<Ipv4Addr>,
    /// containerPort → published host port, from `status.portMappings`.
    mappings: BTreeMap<u16, u16>,
}

fn ip_field(ip: Option<&str>) -> Option<Ipv4Addr> {
    ip?.parse().ok()
}

fn ready_pod(o: &Object) -> Option<ReadyPod> {
    let view = PodView::of(o)?;
    // Only a pod that is Ready right now, on a node, and not finished.
    if !view.ready || view.terminal {
        return None;
    }
    let node = view.node?;
    let spec = PodBody::from_object(o).ok()?;
    let status: PodStatus = o.status().ok()?;
    Some(ReadyPod {
        name: view.name,
        node,
        labels: o.metadata.labels.clone(),
        spec,
        pod_ip: ip_field(status.pod_ip.as_deref()),
        host_ip: ip_field(status.host_ip.as_deref()),
        mappings: status
            .port_mappings
            .iter()
            .map(|m| (m.container_port, m.host_port))
            .collect(),
    })
}

/// The pod's name under a Service in DNS: its `hostname` when its
/// `subdomain` is this Service (as Kubernetes names it), else its name.
fn dns_label(p: &ReadyPod, service: &str) -> String {
    match (&p.spec.spec.hostname, &p.spec.spec.subdomain) {
        (Some(h), Some(sub)) if sub == service => h.clone(),
        _ => p.name.clone(),
    }
}

/// The container port a Service port's `targetPort` means in this pod.
fn container_port(target: Option<&IntOrString>, port: u16, pod: &PodBody) -> Option<u16> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok().filter(|p| *p != 0),
        Some(IntOrString::String(name)) => pod
            .spec
            .all_containers()
            .flat_map(|c| c.ports.iter())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// Who is asking: the node's name, the host address it runs on, and the
/// nodes it sees down.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// This node's name.
    pub node: &'a str,
    /// This host's address (`hostIP` of its pods).
    pub host_ip: Option<Ipv4Addr>,
    /// Nodes that gossip shows down or gone (and none alive by that name).
    /// Their pods are still Ready in the store until the eviction grace
    /// ends, but a hung host's pods accept connections and never answer.
    pub unreachable: &'a BTreeSet<String>,
}

/// How this node reaches a pod's container port: straight to the container
/// on this host (several nodes may share one host, and its bridge);
/// through the host's published port (or a host port the pod asked for) on
/// another, since container addresses do not route between hosts.
fn address(pod: &ReadyPod, cport: u16, local: Local<'_>) -> Option<(Ipv4Addr, u16)> {
    let same_host =
        pod.node == local.node || (local.host_ip.is_some() && pod.host_ip == local.host_ip);
    if same_host && let Some(ip) = pod.pod_ip {
        return Some((ip, cport));
    }
    let host = pod.host_ip.or(pod.pod_ip)?;
    if let Some(h) = pod.mappings.get(&cport) {
        return Some((host, *h));
    }
    let declared_host_port = pod
        .spec
        .spec
        .all_containers()
        .flat_map(|c| c.ports.iter())
        .find(|p| p.container_port == cport)
        .and_then(|p| p.host_port)
        .filter(|h| *h != 0);
    // No mapping and no host port: a host-process pod listens on the
    // host itself.
    Some((host, declared_host_port.unwrap_or(cport)))
}

/// Builds the table as `local` sees it.
pub fn build<P: Borrow<Object>>(services: &[Object], pods: &[P], local: Local<'_>) -> ServiceTable {
    let mut by_ns: BTreeMap<String, Vec<ReadyPod>> = BTreeMap::new();
    for p in pods {
        let p = p.borrow();
        if let Some(rp) = ready_pod(p).filter(|rp| !local.unreachable.contains(&rp.node)) {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            by_ns.entry(ns).or_default().push(rp);
        }
    }
    let mut table = ServiceTable::default();
    for svc in services {
        let Some(key) = svc.key() else { continue };
        let Ok(body) = ServiceBody::from_object(svc) else {
            continue;
        };
        let spec = &body.spec;
        let cluster_ip = match spec.cluster_ip.as_deref() {
            Some("None") => None,
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => Some(ip),
                Err(_) => continue,
            },
            // Not allocated (an object written before allocation existed):
            // DNS can still answer SRV, but there is nothing to listen on.
            None => None,
        };
        let selected: Vec<&ReadyPod> = if spec.selector.is_empty() {
            Vec::new()
        } else {
            by_ns
                .get(&key.namespace)
                .map(|ps| {
                    ps.iter()
                        .filter(|p| {
                            spec.selector
                                .iter()
                                .all(|(k, v)| p.labels.get(k) == Some(v))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let ports = spec
            .ports
            .iter()
            .map(|sp| {
                let mut endpoints: Vec<Endpoint> = selected
                    .iter()
                    .filter_map(|p| {
                        let cport = container_port(sp.target_port.as_ref(), sp.port, &p.spec)?;
                        let (ip, port) = address(p, cport, local)?;
                        Some(Endpoint {
                            ip,
                            port,
                            pod: dns_label(p, &key.name),
                            node: p.node.clone(),
                        })
                    })
                    .collect();
                endpoints.sort();
                PortEntry {
                    name: sp.name.clone(),
                    port: sp.port,
                    node_port: sp.node_port,
                    endpoints,
                }
            })
            .collect();
        table.services.insert(
            (key.namespace.clone(), key.name.clone()),
            ServiceEntry {
                name: key.name,
                namespace: key.namespace,
                cluster_ip,
                ports,
                client_ip_affinity: spec.client_ip_affinity(),
            },
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    static NONE_DOWN: BTreeSet<String> = BTreeSet::new();

    fn at(node: &str) -> Local<'_> {
        let host_ip = match node {
            "n1" => Some(Ipv4Addr::new(192, 168, 1, 1)),
            _ => Some(Ipv4Addr::new(192, 168, 1, 2)),
        };
        Local {
            node,
            host_ip,
            unreachable: &NONE_DOWN,
        }
    }

    #[test]
    fn pods_on_a_node_seen_down_are_no_endpoints() {
        let services = [svc("web", "10.96.0.10", json!([{"port": 80}]))];
        let pods = [
            pod(
                "a",
                "n2",
                true,
                "172.17.0.5",
                "192.168.1.2",
                json!([{"containerPort": 80, "hostPort": 32001}]),
            ),
            pod(
                "b",
                "n3",
                true,
                "172.17.0.6",
                "192.168.1.3",
                json!([{"containerPort": 80, "hostPort": 32002}]),
            ),
        ];
        let down = BTreeSet::from(["n3".to_string()]);
        let local = Local {
            unreachable: &down,
            ..at("n1")
        };
        let t = build(&services, &pods, local);
        let e = &t.get("default", "web").unwrap().ports[0].endpoints;
        assert_eq!(e.iter().map(|e| e.pod.as_str()).collect::<Vec<_>>(), ["a"]);
        let t = build(&services, &pods, at("n1"));
        assert_eq!(t.get("default", "web").unwrap().ports[0].endpoints.len(), 2);
    }

    #[test]
    fn a_hostname_names_the_pod_under_its_subdomain_service_only() {
        let services = [
            svc("db", "None", json!([{"port": 80}])),
            svc("web", "10.96.0.10", json!([{"port": 80}])),
        ];
        let mut named = pod("db-x7", "n1", true, "172.17.0.5", "192.168.1.1", json!([]));
        named.body["spec"]["hostname"] = json!("primary");
        named.body["spec"]["subdomain"] = json!("db");
        let t = build(&services, &[named], at("n1"));
        let label = |svc: &str| {
            t.get("default", svc).unwrap().ports[0].endpoints[0]
                .pod
                .clone()
        };
        assert_eq!(label("db"), "primary");
        assert_eq!(label("web"), "db-x7");
    }

    #[test]
    fn another_node_on_the_same_host_uses_the_container_address() {
        let services = [svc("web", "10.96.0.10", json!([{"port": 80}]))];
        let pods = [pod(
            "a",
            "n9",
            true,
            "172.17.0.5",
            "192.168.1.1",
            json!([{"containerPort": 80, "hostPort": 32001}]),
        )];
        let t = build(&services, &pods, at("n1"));
        let e = &t.get("default", "web").unwrap().ports[0].endpoints[0];
        assert_eq!((e.ip.to_string(), e.port), ("172.17.0.5".to_string(), 80));
    }

    fn obj(v: Value) -> Object {
        serde_json::from_value(v).expect("object")
    }

    fn svc(name: &str, ip: &str, ports: Value) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": ip, "ports": ports}}))
    }

    fn pod(
        name: &str,
        node: &str,
        ready: bool,
        pod_ip: &str,
        host_ip: &str,
        maps: Value,
    ) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": pod_ip, "hostIP": host_ip,
                "portMappings": maps,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
    }

    #[test]
    fn local_pods_by_container_ip_remote_by_published_port() {
        let services = [svc(
            "web",
            "10.96.0.10",
            json!([{"name": "h", "port": 8080, "targetPort": "http"}]),
        )];
        let pods = [
            pod(
                "a",
                "n1",
                true,
                "172.17.0.2",
                "192.168.1.1",
                json!([{"containerPort": 80, "hostPort": 32001}]),
            ),
            pod(
                "b",
                "n2",
                true,
                "172.17.0.2",
                "192.168.1.2",
                json!([{"containerPort": 80, "hostPort": 32002}]),
            ),
            pod(
                "c",
                "n2",
                false,
                "172.17.0.3",
                "192.168.1.2",
                json!([{"containerPort": 80, "hostPort": 32003}]),
            ),
        ];
        let t = build(&services, &pods, at("n1"));
        let s = t.get("default", "web").expect("service");
        assert_eq!(s.cluster_ip, Some("10.96.0.10".parse().unwrap()));
        let eps: Vec<(String, u16)> = s.ports[0]
            .endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.port))
            .collect();
        assert_eq!(
            eps,
            vec![("172.17.0.2".into(), 80), ("192.168.1.2".into(), 32002)],
            "the unready pod c is left out"
        );
        // Seen from n2, b is local and a remote.
        let t2 = build(&services, &pods, at("n2"));
        let eps2: Vec<u16> = t2.get("default", "web").unwrap().ports[0]
            .endpoints
            .iter()
            .map(|e| e.port)
            .collect();
        assert_eq!(eps2, vec![80, 32001]);
    }

    #[test]
    fn a_host_network_pod_is_reached_at_its_nodes_address_and_own_port() {
        // The agent reports podIP = hostIP and publishes nothing: the
        // container port is the host's, from this node and from others.
        let services = [svc(
            "web",
            "10.96.0.10",
            json!([{"port": 8080, "targetPort": "http"}]),
        )];
        let mut p = pod("a", "n2", true, "192.168.1.2", "192.168.1.2", json!([]));
        p.body
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .expect("spec")
            .insert("hostNetwork".into(), json!(true));
        let pods = [p];
        for node in ["n1", "n2"] {
            let t = build(&services, &pods, at(node));
            let e = &t.get("default", "web").unwrap().ports[0].endpoints[0];
            assert_eq!(
                (e.ip.to_string(), e.port),
                ("192.168.1.2".into(), 80),
                "{node}"
            );
        }
    }

    #[test]
    fn numeric_target_port_headless_and_other_namespaces() {
        let services = [svc("web", "None", json!([{"port": 80}]))];
        let mut other = pod("x", "n2", true, "10.0.0.9", "10.0.0.9", json!([]));
        other.metadata.namespace = Some("prod".into());
        let pods = [
            pod("a", "n2", true, "10.0.0.5", "10.0.0.5", json!([])),
            other,
        ];
        let t = build(&services, &pods, at("n1"));
        let s = t.get("default", "web").unwrap();
        assert_eq!(s.cluster_ip, None);
        assert_eq!(
            s.ports[0].endpoints.len(),
            1,
            "only pods of the Service's namespace"
        );
        assert_eq!(
            s.ports[0].endpoints[0].port, 80,
            "a host process listens on its port"
        );
    }
}
