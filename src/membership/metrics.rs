//! Membership's metrics (`shoal_membership_*`): gossip members, suspicions, probes.

use crate::telemetry::{Def, counter, gauge, seconds};

/// `shoal_membership_members`.
pub const MEMBERS: &str = "shoal_membership_members";
/// `shoal_membership_suspicions_total`.
pub const SUSPICIONS_TOTAL: &str = "shoal_membership_suspicions_total";
/// `shoal_membership_refutations_total`.
pub const REFUTATIONS_TOTAL: &str = "shoal_membership_refutations_total";
/// `shoal_membership_probe_rtt_seconds`.
pub const PROBE_RTT_SECONDS: &str = "shoal_membership_probe_rtt_seconds";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    gauge(MEMBERS, "Gossip members by state."),
    counter(SUSPICIONS_TOTAL, "Members this node began to suspect."),
    counter(
        REFUTATIONS_TOTAL,
        "Suspicions of this node that it refuted.",
    ),
    seconds(PROBE_RTT_SECONDS, "Round trip of gossip probes."),
];
