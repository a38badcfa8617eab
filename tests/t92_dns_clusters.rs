//! Two clusters on one host never share a DNS address: a node whose host
//! DNS address is served by another cluster stops with an error naming
//! both, and its containers' DNS moves to an address of its own cluster.
//! (Nodes of one cluster share an address; the kernel spreads queries over
//! them and they answer alike.)

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use shoal::discovery::ContainerDns;
use shoal::discovery::dns::{Holder, holder};

async fn dev(dir: &std::path::Path, name: &str, dns: SocketAddr, cdns: &str) -> shoal::node::Node {
    let cdns = cdns.to_string();
    let node = start_node(dir, name, move |c| {
        c.dev = true;
        c.runtime = Some(shoal::runtime::RuntimeKind::Process);
        c.discovery.dns_addr = dns.to_string();
        c.discovery.container_dns = cdns;
    })
    .await;
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    node
}

async fn cluster_id(node: &shoal::node::Node) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(id) = node.store.cluster_id() {
            return id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no cluster id");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn served_by(addr: SocketAddr) -> Holder {
    holder(addr, "shoal", Duration::from_secs(2)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_does_not_share_a_dns_address() {
    let port = free_port();
    let dns: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A loopback address nobody else uses, for the containers' port 53.
    let cdns = format!("127.53.{}.{}", port % 250 + 1, port / 250 % 250 + 1);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = dev(da.path(), "dns-a", dns, &cdns).await;
    let id_a = cluster_id(&a).await;
    eventually(
        Duration::from_secs(10),
        "a names its cluster over DNS",
        || async { served_by(dns).await == Holder::Cluster(id_a.clone()) },
    )
    .await;

    let b = dev(db.path(), "dns-b", dns, &cdns).await;
    let id_b = cluster_id(&b).await;
    assert_ne!(id_a, id_b);
    let mut conflict = b.dns_conflict().expect("discovery runs");
    let msg = tokio::time::timeout(Duration::from_secs(30), conflict.wait_for(Option::is_some))
        .await
        .expect("b refuses the address in time")
        .expect("discovery alive")
        .clone()
        .unwrap();
    assert!(msg.contains(&dns.to_string()), "{msg}");
    assert!(msg.contains(&id_a) && msg.contains(&id_b), "{msg}");
    // Every query to the address gets a's answer: b never bound it.
    for _ in 0..16 {
        assert_eq!(served_by(dns).await, Holder::Cluster(id_a.clone()));
    }

    // Containers: a keeps the configured address, b gets one of its own.
    let cdns_a = *a.discovery.as_ref().unwrap().container_dns().borrow();
    assert_eq!(cdns_a, ContainerDns::At(cdns.parse().unwrap()));
    let mut rx = b.discovery.as_ref().unwrap().container_dns();
    let own = tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|d| *d != ContainerDns::Deciding),
    )
    .await
    .expect("b's container DNS is decided in time")
    .expect("discovery alive")
    .to_owned();
    let ContainerDns::At(IpAddr::V4(own)) = own else {
        panic!("b's containers get no DNS: {own:?} (needs root and iproute2)");
    };
    assert!(own.is_link_local(), "{own}");
    assert_eq!(
        served_by(SocketAddr::new(own.into(), 53)).await,
        Holder::Cluster(id_b.clone())
    );
    assert_eq!(
        served_by(SocketAddr::new(cdns.parse().unwrap(), 53)).await,
        Holder::Cluster(id_a.clone())
    );
    b.shutdown().await;
    a.shutdown().await;
    shoal::discovery::vip::remove(own, "lo")
        .await
        .expect("remove the test's address");
}
