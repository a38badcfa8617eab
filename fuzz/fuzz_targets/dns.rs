//! A raw UDP DNS message to the cluster DNS server, answered from a table
//! with a ClusterIP Service (named ports), a headless one with endpoints and
//! one without, and a cluster id. Every answer must be a DNS message that
//! parses and carries the request's id.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, LazyLock};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use shoal::discovery::{Endpoint, PortEntry, ServiceEntry, ServiceTable};

fn endpoint(ip: [u8; 4], port: u16, pod: &str) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::from(ip),
        port,
        pod: pod.to_string(),
        node: "n1".to_string(),
    }
}

fn service(name: &str, cluster_ip: Option<[u8; 4]>, ports: Vec<PortEntry>) -> ServiceEntry {
    ServiceEntry {
        name: name.to_string(),
        namespace: "default".to_string(),
        cluster_ip: cluster_ip.map(Ipv4Addr::from),
        client_ip_affinity: None,
        ports,
    }
}

fn port(name: Option<&str>, port: u16, endpoints: Vec<Endpoint>) -> PortEntry {
    PortEntry {
        name: name.map(str::to_string),
        port,
        node_port: None,
        endpoints,
    }
}

static TABLE: LazyLock<Arc<ServiceTable>> = LazyLock::new(|| {
    let services = vec![
        service(
            "web",
            Some([10, 96, 0, 10]),
            vec![
                port(
                    Some("http"),
                    80,
                    vec![endpoint([10, 0, 0, 1], 8080, "web-0")],
                ),
                port(
                    Some("https"),
                    443,
                    vec![endpoint([10, 0, 0, 1], 8443, "web-0")],
                ),
            ],
        ),
        service(
            "db",
            None,
            vec![port(
                Some("pg"),
                5432,
                vec![
                    endpoint([10, 0, 0, 2], 5432, "db-0"),
                    endpoint([10, 0, 0, 3], 5432, "db-1"),
                ],
            )],
        ),
        service("empty", None, vec![port(None, 80, Vec::new())]),
    ];
    Arc::new(ServiceTable {
        services: services
            .into_iter()
            .map(|s| ((s.namespace.clone(), s.name.clone()), s))
            .collect(),
        cluster_id: Some("fuzz-cluster".into()),
    })
});

fuzz_target!(|data: &[u8]| {
    let Some(reply) = shoal::fuzzing::dns("shoal", TABLE.clone(), data) else {
        return;
    };
    let parsed = match Message::from_vec(&reply) {
        Ok(m) => m,
        Err(e) => panic!("the answer is not a DNS message: {e}"),
    };
    assert_eq!(
        parsed.metadata.id,
        u16::from_be_bytes([data[0], data[1]]),
        "the answer carries another id"
    );
});
