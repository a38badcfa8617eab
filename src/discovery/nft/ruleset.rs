//! The nftables ruleset of one node, as text for `nft -f -`: a pure
//! function of the Service table, so what the kernel gets is unit-tested
//! without a kernel.
//!
//! Layout (family `ip`, one table per node):
//! - `prerouting` (traffic from containers and other hosts) and `output`
//!   (the host's own) both jump to `dispatch`, at priority -110 so shoal
//!   translates before Docker's and kube-proxy's nat chains (-100);
//! - `dispatch` looks the destination up in two verdict maps: cluster
//!   IP . port, and node port (only when the destination is a local
//!   address, `fib daddr type local`, as kube-proxy does);
//! - one chain per Service port spreads with `numgen random mod N` over one
//!   chain per endpoint, which marks the packet for masquerade when needed
//!   and DNATs. Only the first packet of a connection passes nat chains:
//!   conntrack keeps connections already open on their endpoint whatever
//!   the table becomes.
//! - `postrouting` masquerades marked packets: node-port traffic (the
//!   reply must come back through this host), loopback sources (a reply to
//!   127.0.0.1 cannot leave the host), and hairpin (a pod reaching itself
//!   through its Service would otherwise answer itself directly).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The packet-mark bit meaning "masquerade after DNAT". kube-proxy uses
/// 0x4000; a different bit keeps the two from clearing each other's.
pub const MASQ_MARK: u32 = 0x0020_0000;

/// nat priorities: before Docker's and kube-proxy's chains (-100 and 100).
const DNAT_PRIORITY: i32 = -110;
const SNAT_PRIORITY: i32 = 90;

/// One Service port as the kernel serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelService {
    /// `namespace/name:port`, written as a comment on its chain.
    pub label: String,
    /// The cluster IP, when the Service has one within the service range.
    pub cluster_ip: Option<Ipv4Addr>,
    /// The port on the cluster IP.
    pub port: u16,
    /// The node port, when within the node-port range.
    pub node_port: Option<u16>,
    /// Ready endpoints, deduplicated and sorted.
    pub endpoints: Vec<SocketAddrV4>,
}

/// The table a node owns: `shoal_` and the node name with every byte
/// outside `[A-Za-z0-9_]` made `_` (cut to 32), then 8 hex digits of the
/// SHA-256 of the name and the data dir. Many test nodes share one kernel,
/// and two test clusters may both have a node `dd0` (in different data
/// dirs); each node replaces and deletes only its own table. Stable across
/// restarts, so a restarted node replaces what a crashed one left (a
/// stale table would keep translating to dead endpoints).
pub fn table_name(node: &str, data_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let clean: String = node
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut d = Sha256::new();
    d.update(node.as_bytes());
    d.update([0]);
    d.update(data_dir.as_os_str().as_encoded_bytes());
    let h = d.finalize();
    format!(
        "shoal_{clean}_{:02x}{:02x}{:02x}{:02x}",
        h[0], h[1], h[2], h[3]
    )
}

/// Labels go inside a double-quoted nft comment: keep them to characters
/// that cannot end it or break the line (names are DNS labels anyway).
fn comment(s: &str) -> String {
    s.chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/:._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The text that replaces `table` as a whole, in one transaction: the
/// empty `table` line creates it if absent so that `delete` cannot fail,
/// then it is built anew. Services without endpoints get no map entry:
/// their traffic is not translated (a cluster IP on a local interface then
/// gets a reset from the kernel, as a closed port does).
pub fn ruleset(table: &str, services: &[KernelService]) -> String {
    let mut out = String::new();
    let mut vips = Vec::new();
    let mut node_ports = Vec::new();
    let mut chains = String::new();
    for (i, s) in services.iter().enumerate() {
        if s.endpoints.is_empty() {
            continue;
        }
        let svc = format!("svc{i}");
        if let Some(ip) = s.cluster_ip {
            vips.push(format!("{ip} . {} : goto {svc}", s.port));
        }
        if let Some(np) = s.node_port {
            node_ports.push(format!("{np} : goto np{i}"));
            let _ = write!(
                chains,
                "  chain np{i} {{\n    meta mark set meta mark | {MASQ_MARK:#010x}\n    goto {svc}\n  }}\n"
            );
        }
        let _ = writeln!(chains, "  chain {svc} {{");
        let _ = writeln!(chains, "    comment \"{}\"", comment(&s.label));
        if s.endpoints.len() == 1 {
            let _ = writeln!(chains, "    goto ep{i}_0");
        } else {
            let arms: Vec<String> = (0..s.endpoints.len())
                .map(|j| format!("{j} : goto ep{i}_{j}"))
                .collect();
            let _ = writeln!(
                chains,
                "    numgen random mod {} vmap {{ {} }}",
                s.endpoints.len(),
                arms.join(", ")
            );
        }
        let _ = writeln!(chains, "  }}");
        for (j, e) in s.endpoints.iter().enumerate() {
            let _ = write!(
                chains,
                "  chain ep{i}_{j} {{\n    ip saddr 127.0.0.0/8 meta mark set meta mark | {MASQ_MARK:#010x}\n    ip saddr {ip} meta mark set meta mark | {MASQ_MARK:#010x}\n    meta l4proto tcp dnat to {e}\n  }}\n",
                ip = e.ip()
            );
        }
    }
    let _ = writeln!(out, "table ip {table} {{\n}}\ndelete table ip {table}");
    let _ = writeln!(out, "table ip {table} {{");
    let _ = writeln!(
        out,
        "  map services {{\n    type ipv4_addr . inet_service : verdict"
    );
    if !vips.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", vips.join(", "));
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  map node_ports {{\n    type inet_service : verdict");
    if !node_ports.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", node_ports.join(", "));
    }
    let _ = writeln!(out, "  }}");
    for (name, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        let _ = writeln!(
            out,
            "  chain {name} {{\n    type nat hook {hook} priority {DNAT_PRIORITY}; policy accept;\n    jump dispatch\n  }}"
        );
    }
    let _ = writeln!(
        out,
        "  chain postrouting {{\n    type nat hook postrouting priority {SNAT_PRIORITY}; policy accept;\n    meta mark & {MASQ_MARK:#010x} == {MASQ_MARK:#010x} meta mark set meta mark & {:#010x} masquerade\n  }}",
        !MASQ_MARK
    );
    let _ = writeln!(
        out,
        "  chain dispatch {{\n    ip daddr . tcp dport vmap @services\n    fib daddr type local tcp dport vmap @node_ports\n  }}"
    );
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

/// The text that removes `table` (absent or not) in one transaction.
pub fn teardown(table: &str) -> String {
    format!("table ip {table} {{\n}}\ndelete table ip {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(
        label: &str,
        ip: Option<[u8; 4]>,
        port: u16,
        np: Option<u16>,
        eps: &[&str],
    ) -> KernelService {
        KernelService {
            label: label.into(),
            cluster_ip: ip.map(Ipv4Addr::from),
            port,
            node_port: np,
            endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    /// Table tests of the pieces that matter: each case lists lines that
    /// must be in the text and lines that must not.
    #[test]
    fn ruleset_text_per_case() {
        struct Case {
            what: &'static str,
            services: Vec<KernelService>,
            has: &'static [&'static str],
            lacks: &'static [&'static str],
        }
        let cases = [
            Case {
                what: "no services: hooks and empty maps, no elements",
                services: vec![],
                has: &[
                    "table ip t {\n}\ndelete table ip t\ntable ip t {",
                    "type nat hook prerouting priority -110; policy accept;",
                    "type nat hook output priority -110; policy accept;",
                    "type nat hook postrouting priority 90; policy accept;",
                    "meta mark & 0x00200000 == 0x00200000 meta mark set meta mark & 0xffdfffff masquerade",
                    "ip daddr . tcp dport vmap @services",
                    "fib daddr type local tcp dport vmap @node_ports",
                ],
                lacks: &["elements", "chain svc"],
            },
            Case {
                what: "one endpoint: no numgen, a straight goto",
                services: vec![svc(
                    "default/web:80",
                    Some([127, 96, 0, 5]),
                    80,
                    None,
                    &["127.0.0.1:8080"],
                )],
                has: &[
                    "elements = { 127.96.0.5 . 80 : goto svc0 }",
                    "chain svc0 {\n    comment \"default/web:80\"\n    goto ep0_0\n  }",
                    "ip saddr 127.0.0.1 meta mark set meta mark | 0x00200000",
                    "meta l4proto tcp dnat to 127.0.0.1:8080",
                ],
                lacks: &[
                    "numgen",
                    "chain np0",
                    "node_ports {\n    type inet_service : verdict\n    elements",
                ],
            },
            Case {
                what: "three endpoints and a node port: numgen over three, node port marks then shares the chain",
                services: vec![svc(
                    "default/web:80",
                    Some([10, 96, 0, 7]),
                    80,
                    Some(30080),
                    &["172.17.0.2:8080", "172.17.0.3:8080", "192.0.2.9:31001"],
                )],
                has: &[
                    "numgen random mod 3 vmap { 0 : goto ep0_0, 1 : goto ep0_1, 2 : goto ep0_2 }",
                    "elements = { 30080 : goto np0 }",
                    "chain np0 {\n    meta mark set meta mark | 0x00200000\n    goto svc0\n  }",
                    "dnat to 192.0.2.9:31001",
                    "ip saddr 172.17.0.3 meta mark set",
                ],
                lacks: &[],
            },
            Case {
                what: "no endpoints: no entry, so traffic is left untranslated",
                services: vec![
                    svc(
                        "default/empty:80",
                        Some([127, 96, 0, 9]),
                        80,
                        Some(30001),
                        &[],
                    ),
                    svc(
                        "default/full:81",
                        Some([127, 96, 0, 8]),
                        81,
                        None,
                        &["127.0.0.1:9"],
                    ),
                ],
                has: &["elements = { 127.96.0.8 . 81 : goto svc1 }", "chain ep1_0"],
                lacks: &["127.96.0.9", "30001", "chain svc0"],
            },
            Case {
                what: "headless or out of range: node port only",
                services: vec![svc(
                    "ns/np-only:80",
                    None,
                    80,
                    Some(31000),
                    &["127.0.0.1:9"],
                )],
                has: &["elements = { 31000 : goto np0 }"],
                lacks: &["services {\n    type ipv4_addr . inet_service : verdict\n    elements"],
            },
            Case {
                what: "a label with quotes cannot end the comment",
                services: vec![svc(
                    "a\"b;c\n/x:1",
                    Some([127, 96, 0, 1]),
                    1,
                    None,
                    &["127.0.0.1:9"],
                )],
                has: &["comment \"a_b_c_/x:1\""],
                lacks: &["a\"b"],
            },
        ];
        for c in cases {
            let text = ruleset("t", &c.services);
            for h in c.has {
                assert!(text.contains(h), "{}: missing {h:?} in\n{text}", c.what);
            }
            for l in c.lacks {
                assert!(!text.contains(l), "{}: unexpected {l:?} in\n{text}", c.what);
            }
            assert!(text.ends_with("}\n"), "{}", c.what);
        }
    }

    #[test]
    fn table_names_are_nft_identifiers_and_distinct() {
        let dir = std::path::Path::new("/var/lib/shoal");
        let a = table_name("node-1.example", dir);
        assert!(a.starts_with("shoal_node_1_example_"), "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
        assert_ne!(table_name("a-b", dir), table_name("a_b", dir));
        assert_eq!(table_name("ds0", dir), table_name("ds0", dir));
        assert_ne!(
            table_name("dd0", std::path::Path::new("/tmp/one")),
            table_name("dd0", std::path::Path::new("/tmp/two")),
            "same node name in two test clusters"
        );
        let long = table_name(&"x".repeat(300), dir);
        assert!(long.len() < 64, "{long}");
    }

    /// The kernel's own parser judges the text: `nft -c` checks it (against
    /// the kernel, without committing). Needs `nft` and CAP_NET_ADMIN, as
    /// the daemon's kernel mode does; fails, naming what is missing, when
    /// they are not there rather than passing unchecked.
    #[test]
    fn nft_accepts_the_generated_text() {
        let services = vec![
            svc(
                "default/web:80",
                Some([127, 96, 0, 5]),
                80,
                Some(30080),
                &["127.0.0.1:8080", "172.17.0.3:8080"],
            ),
            svc(
                "default/one:53",
                Some([10, 96, 0, 10]),
                53,
                None,
                &["10.0.0.1:5353"],
            ),
            svc("default/none:1", Some([10, 96, 0, 11]), 1, Some(30001), &[]),
        ];
        let table = table_name("unit-test-check", std::path::Path::new("/nonexistent"));
        for text in [
            ruleset(&table, &services),
            ruleset(&table, &[]),
            teardown(&table),
        ] {
            let out = super::super::run_nft(&text, true)
                .unwrap_or_else(|e| panic!("nft -c could not judge the ruleset: {e}"));
            assert!(out.is_empty() || !out.contains("Error"), "{out}\n{text}");
        }
    }
}
