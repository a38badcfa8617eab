//! DNS addresses are shared only within one cluster. Several nodes of one
//! cluster on one host share a DNS address (SO_REUSEPORT: the kernel spreads
//! queries over them, and they all answer alike); a node of another cluster
//! must never join them, or a client would get one cluster's answers or the
//! other's at random. Before binding a fixed address a node asks who serves
//! it (TXT `_cluster.DOMAIN.`); if another cluster does, the host address is
//! refused with an error that names both clusters, and containers get an
//! address of this cluster's own (a link-local /32 on the VIP interface,
//! which containers reach through their default route like a cluster IP).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::info;

use super::dns::{self, Holder};
use crate::store::Store;

/// How long a probe waits for a reply.
const PROBE_WAIT: Duration = Duration::from_millis(300);
/// How long a server that does not name its cluster is given to learn it
/// (a node of the same cluster may still be joining).
const UNIDENTIFIED_PATIENCE: Duration = Duration::from_secs(20);
/// How often this node's own cluster id is looked for while unknown.
const OWN_ID_POLL: Duration = Duration::from_millis(250);

/// Whether a node may serve DNS at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody serves it.
    Free,
    /// Nodes of this node's cluster serve it: share it.
    Shared,
    /// Something else serves it: `holder` says what.
    Taken { holder: String },
}

/// Asks who serves `addr` now, without waiting for this node's cluster id.
pub async fn probe(addr: SocketAddr, domain: &str) -> Holder {
    dns::holder(addr, domain, PROBE_WAIT).await
}

/// Decides whether this node may serve `addr`, waiting (as long as it
/// takes) for this node to learn its own cluster id when someone else
/// answers there.
pub async fn claim(addr: SocketAddr, domain: &str, store: &Store) -> Claim {
    let started = tokio::time::Instant::now();
    loop {
        match probe(addr, domain).await {
            Holder::Nobody => return Claim::Free,
            Holder::Cluster(theirs) => {
                let ours = own_id(store).await;
                return if ours == theirs {
                    Claim::Shared
                } else {
                    Claim::Taken {
                        holder: format!("shoal cluster {theirs} (this node's is {ours})"),
                    }
                };
            }
            Holder::Unidentified if started.elapsed() >= UNIDENTIFIED_PATIENCE => {
                return Claim::Taken {
                    holder: "a DNS server that does not say which shoal cluster it serves".into(),
                };
            }
            Holder::Unidentified => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn own_id(store: &Store) -> String {
    loop {
        if let Some(id) = store.cluster_id() {
            return id;
        }
        tokio::time::sleep(OWN_ID_POLL).await;
    }
}

/// Link-local addresses this cluster may take for its containers' DNS
/// when the bridge address belongs to another cluster: 169.254.53.N, N
/// derived from the cluster id so that every node of the cluster on a host
/// picks the same one, then the following ones in case of a clash.
pub fn own_addresses(cluster_id: &str) -> impl Iterator<Item = IpAddr> {
    let digest = Sha256::digest(cluster_id.as_bytes());
    let start = u16::from(digest[0]) % 250;
    (0..250u16).map(move |i| {
        let n = 2 + ((start + i) % 250) as u8;
        IpAddr::V4(Ipv4Addr::new(169, 254, 53, n))
    })
}

/// Finds and takes (adds to `iface`) an address of this cluster's own for
/// its containers' DNS; `None` when every candidate is taken or the
/// address cannot be added.
pub async fn own_container_address(store: &Store, domain: &str, iface: &str) -> Option<IpAddr> {
    let id = own_id(store).await;
    for ip in own_addresses(&id).take(8) {
        // Only an address this host already has can be served by another
        // cluster here; one it lacks is free to take (and a probe of it
        // would go out to the network, where anything may answer).
        if is_local(ip) {
            match probe(SocketAddr::new(ip, 53), domain).await {
                Holder::Nobody => return Some(ip),
                Holder::Cluster(theirs) if theirs == id => return Some(ip),
                _ => continue,
            }
        }
        let IpAddr::V4(v4) = ip else { continue };
        if let Err(e) = super::vip::add(v4, iface).await {
            tracing::warn!("containers get no cluster DNS: {e}");
            return None;
        }
        info!(%ip, "containers' DNS moves to an address of this cluster's own");
        return Some(ip);
    }
    None
}

/// Whether this host has `ip` as one of its addresses.
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_are_link_local_stable_and_per_cluster() {
        let a: Vec<IpAddr> = own_addresses("cluster-a").take(3).collect();
        assert_eq!(a, own_addresses("cluster-a").take(3).collect::<Vec<_>>());
        assert!(a.iter().all(|ip| match ip {
            IpAddr::V4(v4) => v4.is_link_local() && v4.octets()[3] >= 2,
            IpAddr::V6(_) => false,
        }));
        assert_eq!(own_addresses("x").count(), 250);
        let b: Vec<IpAddr> = own_addresses("cluster-b").take(1).collect();
        let c: Vec<IpAddr> = own_addresses("cluster-c").take(1).collect();
        assert!(a[0] != b[0] || a[0] != c[0], "ids spread over the range");
    }
}
