//! A container's termination message: a file it may write before it
//! exits, read by its node into `state.terminated.message`.

use serde::{Deserialize, Serialize};

/// Where the message is written when the container names no path.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// Most bytes of a termination message kept, as the kubelet keeps.
pub const MAX_TERMINATION_MESSAGE_BYTES: usize = 4096;

/// Where the message comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminationMessagePolicy {
    /// Only the file.
    #[default]
    File,
    /// The file, or when it is empty and the container failed, the tail
    /// of its log.
    FallbackToLogsOnError,
}
