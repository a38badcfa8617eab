//! Service cluster IPs as local addresses. A listener can only bind an
//! address the host owns, and a container's packets to a cluster IP reach
//! the host through its default route and are delivered locally when the
//! host owns it. So each cluster IP is added as a /32 to an interface
//! (`lo` by default; kube-proxy's IPVS mode uses a dummy interface the same
//! way). Addresses in 127.0.0.0/8 are already local and need nothing.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::{AddressMessageBuilder, Handle};

/// errno values the kernel answers with that mean the end state is already
/// the one asked for, or that the interface does not exist.
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;

/// Errors adding or removing an address.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("cannot open a netlink socket to {action} {ip} on {iface}: {source}")]
    Socket {
        action: &'static str,
        ip: Ipv4Addr,
        iface: String,
        source: std::io::Error,
    },
    #[error("cannot {action} {ip}/32 on {iface}: there is no such interface")]
    NoInterface {
        action: &'static str,
        ip: Ipv4Addr,
        iface: String,
    },
    #[error("cannot {action} {ip}/32 on {iface}: {source}")]
    Netlink {
        action: &'static str,
        ip: Ipv4Addr,
        iface: String,
        source: rtnetlink::Error,
    },
}

/// Whether `ip` is local without help.
pub fn implicit(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

/// The errno of a kernel refusal (netlink carries it negated).
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Opens a route-netlink socket and drives it on a task of its own, which
/// ends when the returned handle (and its clones) are dropped.
fn connect(action: &'static str, ip: Ipv4Addr, iface: &str) -> Result<Handle, VipError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| VipError::Socket {
        action,
        ip,
        iface: iface.into(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link_index(
    handle: &Handle,
    action: &'static str,
    ip: Ipv4Addr,
    iface: &str,
) -> Result<u32, VipError> {
    let no_iface = || VipError::NoInterface {
        action,
        ip,
        iface: iface.into(),
    };
    let mut links = handle.link().get().match_name(iface.into()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(no_iface()),
        Err(e) if errno(&e) == Some(ENODEV) => Err(no_iface()),
        Err(source) => Err(VipError::Netlink {
            action,
            ip,
            iface: iface.into(),
            source,
        }),
    }
}

async fn change(action: &'static str, ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    let handle = connect(action, ip, iface)?;
    let index = link_index(&handle, action, ip, iface).await?;
    let (done, benign) = if action == "add" {
        let r = handle
            .address()
            .add(index, IpAddr::V4(ip), 32)
            .execute()
            .await;
        (r, EEXIST)
    } else {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, 32)
            .build();
        (handle.address().del(msg).execute().await, EADDRNOTAVAIL)
    };
    match done {
        Ok(()) => Ok(()),
        // Another shoal daemon on the same host (tests) may have added or
        // removed it first; the end state is what counts.
        Err(e) if errno(&e) == Some(benign) => Ok(()),
        Err(source) => Err(VipError::Netlink {
            action,
            ip,
            iface: iface.into(),
            source,
        }),
    }
}

/// Makes `ip` a local address on `iface`.
pub async fn add(ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    if implicit(ip) {
        return Ok(());
    }
    change("add", ip, iface).await
}

/// Gives `ip` back.
pub async fn remove(ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    if implicit(ip) {
        return Ok(());
    }
    change("remove", ip, iface).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (CAP_NET_ADMIN), as the daemon does; 127/8 does not.
    /// Reads the result with iproute2, independent of the code under test.
    #[tokio::test]
    async fn adding_twice_and_removing_twice_are_both_fine() {
        assert!(implicit(Ipv4Addr::new(127, 96, 0, 5)));
        add(Ipv4Addr::new(127, 96, 0, 5), "lo")
            .await
            .expect("loopback needs nothing");
        let ip = Ipv4Addr::new(10, 213, 255, 254);
        let has = || async move {
            let out = tokio::process::Command::new("ip")
                .args(["-4", "addr", "show", "dev", "lo"])
                .output()
                .await
                .expect("ip");
            String::from_utf8_lossy(&out.stdout).contains(&format!("{ip}/32"))
        };
        add(ip, "lo").await.expect("add");
        add(ip, "lo")
            .await
            .expect("adding an address already there is fine");
        assert!(has().await);
        remove(ip, "lo").await.expect("remove");
        remove(ip, "lo")
            .await
            .expect("removing an absent address is fine");
        assert!(!has().await);
        let e = add(ip, "no-such-if0").await.unwrap_err().to_string();
        assert!(e.contains("no-such-if0"), "{e}");
    }
}
