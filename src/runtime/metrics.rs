//! The runtimes' metrics (`shoal_runtime_*`).

use crate::telemetry::{Def, counter};

/// `shoal_runtime_process_log_rotations_total`.
pub const PROCESS_LOG_ROTATIONS_TOTAL: &str = "shoal_runtime_process_log_rotations_total";
/// `shoal_runtime_process_log_bytes_total`.
pub const PROCESS_LOG_BYTES_TOTAL: &str = "shoal_runtime_process_log_bytes_total";

/// Every family this module records, with its help text.
pub const FAMILIES: &[Def] = &[
    counter(
        PROCESS_LOG_ROTATIONS_TOTAL,
        "Rotations of process-runtime container logs (agent.log_max_bytes reached).",
    ),
    counter(
        PROCESS_LOG_BYTES_TOTAL,
        "Bytes of container output the process runtime copied into log files.",
    ),
];
