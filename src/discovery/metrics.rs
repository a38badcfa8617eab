//! Discovery's metrics (`shoal_discovery_*`): services, DNS, the balancer.

use crate::telemetry::{Def, gauge, labelled_counter, seconds};

/// `shoal_discovery_services`.
pub const SERVICES: &str = "shoal_discovery_services";
/// `shoal_discovery_endpoints`.
pub const ENDPOINTS: &str = "shoal_discovery_endpoints";
/// `shoal_discovery_dns_queries_total`.
pub const DNS_QUERIES_TOTAL: &str = "shoal_discovery_dns_queries_total";
/// `shoal_discovery_dns_request_duration_seconds`.
pub const DNS_REQUEST_DURATION_SECONDS: &str = "shoal_discovery_dns_request_duration_seconds";
/// `shoal_discovery_lb_connections_total`.
pub const LB_CONNECTIONS_TOTAL: &str = "shoal_discovery_lb_connections_total";
/// `shoal_discovery_lb_unserved_connections_total`.
pub const LB_UNSERVED_CONNECTIONS_TOTAL: &str = "shoal_discovery_lb_unserved_connections_total";
/// `shoal_discovery_lb_upstream_errors_total`.
pub const LB_UPSTREAM_ERRORS_TOTAL: &str = "shoal_discovery_lb_upstream_errors_total";
/// `shoal_discovery_lb_ejections_total`.
pub const LB_EJECTIONS_TOTAL: &str = "shoal_discovery_lb_ejections_total";
/// `shoal_discovery_lb_bytes_total`.
pub const LB_BYTES_TOTAL: &str = "shoal_discovery_lb_bytes_total";
/// `shoal_discovery_lb_active_connections`.
pub const LB_ACTIVE_CONNECTIONS: &str = "shoal_discovery_lb_active_connections";
/// `shoal_discovery_lb_listeners`.
pub const LB_LISTENERS: &str = "shoal_discovery_lb_listeners";
/// `shoal_discovery_lb_bind_failures`.
pub const LB_BIND_FAILURES: &str = "shoal_discovery_lb_bind_failures";
/// `shoal_discovery_lb_upstream_connect_seconds`.
pub const LB_UPSTREAM_CONNECT_SECONDS: &str = "shoal_discovery_lb_upstream_connect_seconds";

/// `shoal_discovery_nft_applies_total`.
pub const NFT_APPLIES_TOTAL: &str = "shoal_discovery_nft_applies_total";
/// `shoal_discovery_nft_apply_seconds`.
pub const NFT_APPLY_SECONDS: &str = "shoal_discovery_nft_apply_seconds";
/// `shoal_discovery_nft_ruleset_bytes`.
pub const NFT_RULESET_BYTES: &str = "shoal_discovery_nft_ruleset_bytes";
/// `shoal_discovery_kernel_proxy`.
pub const KERNEL_PROXY: &str = "shoal_discovery_kernel_proxy";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    gauge(SERVICES, "Services in the table."),
    gauge(ENDPOINTS, "Ready endpoints over all Services."),
    labelled_counter(DNS_QUERIES_TOTAL, "DNS queries, by result.", &[]),
    seconds(DNS_REQUEST_DURATION_SECONDS, "Time to answer a DNS query."),
    labelled_counter(
        LB_CONNECTIONS_TOTAL,
        "Connections accepted by a Service's balancer.",
        &[],
    ),
    labelled_counter(
        LB_UNSERVED_CONNECTIONS_TOTAL,
        "Connections closed for want of a reachable endpoint.",
        &[],
    ),
    labelled_counter(
        LB_UPSTREAM_ERRORS_TOTAL,
        "Failed connects to endpoints.",
        &[],
    ),
    labelled_counter(
        LB_EJECTIONS_TOTAL,
        "Endpoints ejected after repeated failures.",
        &[],
    ),
    labelled_counter(LB_BYTES_TOTAL, "Bytes relayed, by direction.", &[]),
    gauge(LB_ACTIVE_CONNECTIONS, "Open balanced connections."),
    gauge(LB_LISTENERS, "Listeners the balancer holds."),
    gauge(LB_BIND_FAILURES, "Listeners the balancer could not bind."),
    seconds(
        LB_UPSTREAM_CONNECT_SECONDS,
        "Time to connect to an endpoint.",
    ),
    labelled_counter(
        NFT_APPLIES_TOTAL,
        "Replacements of this node's nftables table, by result.",
        &[],
    ),
    seconds(NFT_APPLY_SECONDS, "Time to replace the nftables table."),
    gauge(NFT_RULESET_BYTES, "Size of the last nftables ruleset."),
    gauge(
        KERNEL_PROXY,
        "1 when Service traffic goes through nftables DNAT, 0 for the user-space balancer.",
    ),
];
