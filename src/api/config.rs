//! `[api]` settings.

use serde::{Deserialize, Serialize};

/// HTTP API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// When set, every request but `/healthz` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest accepted request body in bytes (413 beyond it).
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}
