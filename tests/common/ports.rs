//! Loopback ports for nodes that must know each other's addresses before
//! they start (seed lists), shared by the tests, the benchmarks and the
//! chaos harness.
//!
//! A port taken from `bind(…:0)` and released comes from the kernel's
//! ephemeral range, the same range every other `:0` listener and every
//! outgoing connection draws from, so a node started a moment later can
//! find it taken (CI saw `Listen { addr: …:36737 }` fail that way). These
//! ports are drawn below that range instead, where the kernel never hands
//! out a port by itself; each is checked free by binding it, and a process
//! never hands the same port out twice.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The lowest port the kernel picks by itself for `:0` binds (32768 when
/// the range cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// `n` distinct loopback ports, free for TCP and UDP when chosen, below the
/// kernel's ephemeral range. Panics when none can be found (the message
/// says why).
pub fn free_ports(n: usize) -> Vec<u16> {
    let high = ephemeral_low().saturating_sub(1);
    let low: u16 = 10_000.min(high / 2).max(1024);
    assert!(
        high > low + 100,
        "no port range below the ephemeral range ({low}..{high})"
    );
    let span = u32::from(high - low);
    // Start somewhere that depends on the process, so that two test
    // processes running at once do not walk the range in step.
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = guard.get_or_insert_with(HashSet::new);
    let mut out = Vec::with_capacity(n);
    for step in 0..span {
        if out.len() == n {
            break;
        }
        let port = low + ((seed.wrapping_add(step.wrapping_mul(7919))) % span) as u16;
        if handed.contains(&port) || out.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if tcp && udp {
            out.push(port);
        }
    }
    assert_eq!(
        out.len(),
        n,
        "only {} free loopback ports in {low}..{high}",
        out.len()
    );
    handed.extend(out.iter().copied());
    out
}

/// One loopback port, as [`free_ports`].
#[allow(dead_code)] // not every includer needs a single port
pub fn free_port() -> u16 {
    free_ports(1)[0]
}
