//! Autopilot's metrics (`shoal_autopilot_*`).

use crate::telemetry::{Def, labelled_counter};

/// `shoal_autopilot_actions_total`.
pub const ACTIONS_TOTAL: &str = "shoal_autopilot_actions_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[labelled_counter(
    ACTIONS_TOTAL,
    "Raft membership changes autopilot made, by action.",
    &[
        &[("action", "add_learner")],
        &[("action", "update_node")],
        &[("action", "change_voters")],
        &[("action", "remove")],
    ],
)];
