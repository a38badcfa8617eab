//! The ingress's metrics (`shoal_ingress_*`). Every label comes from
//! Ingress objects (ingress, rule host, class) or from a fixed set (status
//! class, reason), never from what clients send, so cardinality stays
//! bounded by the cluster's objects.

use crate::telemetry::{Def, gauge, labelled_counter, seconds};

/// `shoal_ingress_requests_total{ingress,host,class,status}`; `status` is `2xx`..`5xx`.
pub const REQUESTS_TOTAL: &str = "shoal_ingress_requests_total";
/// `shoal_ingress_request_duration_seconds{ingress,host,class}`.
pub const REQUEST_DURATION_SECONDS: &str = "shoal_ingress_request_duration_seconds";
/// `shoal_ingress_upstream_errors_total{service,reason}`.
pub const UPSTREAM_ERRORS_TOTAL: &str = "shoal_ingress_upstream_errors_total";
/// `shoal_ingress_unrouted_requests_total`: no rule matched and no default backend.
pub const UNROUTED_REQUESTS_TOTAL: &str = "shoal_ingress_unrouted_requests_total";
/// `shoal_ingress_routes`: routes in the table.
pub const ROUTES: &str = "shoal_ingress_routes";
/// `shoal_ingress_ignored`: Ingresses not served (another class).
pub const IGNORED: &str = "shoal_ingress_ignored";
/// `shoal_ingress_certificates`: certificates loaded for TLS.
pub const CERTIFICATES: &str = "shoal_ingress_certificates";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    labelled_counter(
        REQUESTS_TOTAL,
        "Requests routed, by Ingress, rule host, class and status class.",
        &[],
    ),
    seconds(
        REQUEST_DURATION_SECONDS,
        "Time from request to response headers, by Ingress, rule host and class.",
    ),
    labelled_counter(
        UPSTREAM_ERRORS_TOTAL,
        "Failed upstream exchanges, by Service and reason (connect, timeout, no_endpoint, other).",
        &[],
    ),
    labelled_counter(
        UNROUTED_REQUESTS_TOTAL,
        "Requests no rule matched (answered 404).",
        &[&[]],
    ),
    gauge(ROUTES, "Backends routed to by the served Ingresses."),
    gauge(IGNORED, "Ingresses of a class shoal does not serve."),
    gauge(CERTIFICATES, "Certificates loaded from TLS Secrets."),
];
