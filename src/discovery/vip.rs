//! Service cluster IPs as local addresses. A listener can only bind an
//! address the host owns, and a container's packets to a cluster IP reach
//! the host through its default route and are delivered locally when the
//! host owns it. So each cluster IP is added as a /32 to an interface
//! (`lo` by default; kube-proxy's IPVS mode uses a dummy interface the same
//! way). Addresses in 127.0.0.0/8 are already local and need nothing.

use std::net::Ipv4Addr;

use tokio::process::Command;

/// Errors adding or removing an address.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("cannot run `ip` to {action} {ip} on {iface}: {source}")]
    Spawn {
        action: &'static str,
        ip: Ipv4Addr,
        iface: String,
        source: std::io::Error,
    },
    #[error("`ip addr {action} {ip}/32 dev {iface}` failed: {stderr}")]
    Failed {
        action: &'static str,
        ip: Ipv4Addr,
        iface: String,
        stderr: String,
    },
}

/// Whether the host owns `ip` without help.
pub fn implicit(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

async fn ip_addr(action: &'static str, ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    let out = Command::new("ip")
        .args(["-4", "addr", action, &format!("{ip}/32"), "dev", iface])
        .output()
        .await
        .map_err(|source| VipError::Spawn {
            action,
            ip,
            iface: iface.into(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // Another shoal daemon on the same host (tests) may have added or
    // removed it first; the end state is what counts.
    // iproute2's wording varies by version ("File exists" from older
    // ones through RTNETLINK, "Address already assigned" from newer).
    let benign = match action {
        "add" => stderr.contains("File exists") || stderr.contains("already assigned"),
        _ => stderr.contains("Cannot assign") || stderr.contains("not found"),
    };
    if benign {
        return Ok(());
    }
    Err(VipError::Failed {
        action,
        ip,
        iface: iface.into(),
        stderr,
    })
}

/// Makes `ip` a local address on `iface`.
pub async fn add(ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    if implicit(ip) {
        return Ok(());
    }
    ip_addr("add", ip, iface).await
}

/// Gives `ip` back.
pub async fn remove(ip: Ipv4Addr, iface: &str) -> Result<(), VipError> {
    if implicit(ip) {
        return Ok(());
    }
    ip_addr("del", ip, iface).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root and iproute2, as the daemon does; 127/8 needs neither.
    #[tokio::test]
    async fn adding_twice_and_removing_twice_are_both_fine() {
        assert!(implicit(Ipv4Addr::new(127, 96, 0, 5)));
        add(Ipv4Addr::new(127, 96, 0, 5), "lo")
            .await
            .expect("loopback needs nothing");
        let ip = Ipv4Addr::new(10, 213, 255, 254);
        let has = || async move {
            let out = Command::new("ip")
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
