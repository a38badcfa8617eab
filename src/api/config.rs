//! `[api]` settings.

use serde::{Deserialize, Serialize};

/// HTTP API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// When set, every request but `/healthz` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// A file holding the token (read at start), instead of `token`.
    pub token_file: Option<std::path::PathBuf>,
    /// Largest accepted request body in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// Concurrent watches one client (a token, or an address when
    /// anonymous) may hold on one node; the node-wide cap is the store's.
    pub max_watches_per_client: usize,
    /// Concurrent `logs -f` streams one client may hold on one node.
    pub max_log_follows_per_client: usize,
    /// Audit log of write requests; `DATA_DIR/audit/audit.log` when unset,
    /// `""` for none.
    pub audit_log: Option<String>,
    /// Rotate the audit log past this size (kube-apiserver: 100 MB).
    pub audit_max_bytes: u64,
    /// Audit files kept, the current one included.
    pub audit_max_files: usize,
    /// TLS on the API: `auto` (on when it listens beyond loopback), `on`, `off`.
    pub tls: TlsMode,
    /// More names for the serving certificate (a load balancer's DNS name);
    /// the node's name, host name, `localhost` and its addresses are in it.
    pub tls_names: Vec<String>,
}

/// When the API speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// On when the API listens beyond loopback.
    #[default]
    Auto,
    On,
    Off,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            token_file: None,
            max_body_bytes: 4 * 1024 * 1024,
            max_watches_per_client: 256,
            max_log_follows_per_client: 32,
            audit_log: None,
            audit_max_bytes: 100 * 1024 * 1024,
            audit_max_files: 5,
            tls: TlsMode::Auto,
            tls_names: Vec::new(),
        }
    }
}
