//! Kubernetes' service links: the `{SVC}_SERVICE_HOST`-style variables a
//! container gets for every Service of its namespace that has a cluster IP,
//! as Docker links once set them (`enableServiceLinks`, on unless the pod
//! says false). Programs written for Kubernetes still read them (redis and
//! guestbook examples do).

use crate::resource::types::{Protocol, ServiceBody};

/// Most services whose variables one container gets: a namespace with more
/// gets the first ones by name.
pub const MAX_LINKED_SERVICES: usize = 1000;

/// The link variables of `services` (name and body), in Kubernetes' names
/// and order; headless services (no cluster IP) have none.
pub fn service_links<'a>(
    services: impl IntoIterator<Item = (&'a str, &'a ServiceBody)>,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for (name, body) in services.into_iter().take(MAX_LINKED_SERVICES) {
        let Some(ip) = body
            .spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let Some(first) = body.spec.ports.first() else {
            continue;
        };
        let svc = name.to_uppercase().replace('-', "_");
        env.push((format!("{svc}_SERVICE_HOST"), ip.to_string()));
        env.push((format!("{svc}_SERVICE_PORT"), first.port.to_string()));
        for p in &body.spec.ports {
            if let Some(pn) = &p.name {
                env.push((
                    format!("{svc}_SERVICE_PORT_{}", pn.to_uppercase().replace('-', "_")),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: Option<Protocol>| match p.unwrap_or_default() {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        env.push((
            format!("{svc}_PORT"),
            format!("{}://{ip}:{}", proto(first.protocol), first.port),
        ));
        for p in &body.spec.ports {
            let pr = proto(p.protocol);
            let base = format!("{svc}_PORT_{}_{}", p.port, pr.to_uppercase());
            env.push((base.clone(), format!("{pr}://{ip}:{}", p.port)));
            env.push((format!("{base}_PROTO"), pr.to_string()));
            env.push((format!("{base}_PORT"), p.port.to_string()));
            env.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::{ServicePort, ServiceSpec};

    fn svc(ip: Option<&str>, ports: &[(Option<&str>, u16, Option<Protocol>)]) -> ServiceBody {
        ServiceBody {
            spec: ServiceSpec {
                cluster_ip: ip.map(str::to_string),
                ports: ports
                    .iter()
                    .map(|(name, port, protocol)| ServicePort {
                        name: name.map(str::to_string),
                        port: *port,
                        protocol: *protocol,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn links_are_named_as_kubernetes_names_them() {
        let redis = svc(Some("10.96.0.7"), &[(Some("redis"), 6379, None)]);
        let dns = svc(
            Some("10.96.0.10"),
            &[(Some("dns"), 53, Some(Protocol::Udp)), (None, 9153, None)],
        );
        let headless = svc(Some("None"), &[(None, 80, None)]);
        let env = service_links([("redis-master", &redis), ("dns", &dns), ("db", &headless)]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REDIS_MASTER_SERVICE_HOST"), Some("10.96.0.7"));
        assert_eq!(get("REDIS_MASTER_SERVICE_PORT"), Some("6379"));
        assert_eq!(get("REDIS_MASTER_SERVICE_PORT_REDIS"), Some("6379"));
        assert_eq!(get("REDIS_MASTER_PORT"), Some("tcp://10.96.0.7:6379"));
        assert_eq!(get("REDIS_MASTER_PORT_6379_TCP_ADDR"), Some("10.96.0.7"));
        assert_eq!(get("DNS_PORT"), Some("udp://10.96.0.10:53"));
        assert_eq!(get("DNS_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("DNS_PORT_9153_TCP_PORT"), Some("9153"));
        assert!(
            !env.iter().any(|(n, _)| n.starts_with("DB_")),
            "headless has none"
        );
    }
}
