//! The daemon's configuration: one serde struct read from TOML (`--config`),
//! with flags layered on top. Every field has a default; see
//! `config/shoal.toml` for the commented example.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::agent::AgentConfig;
pub use crate::api::ApiConfig;

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything `shoal agent` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Node name; defaults to the host name.
    pub name: Option<String>,
    /// Data directory (node key, Raft log, state machine).
    pub data_dir: PathBuf,
    /// p2p listen address, HOST:PORT or multiaddr.
    pub p2p_addr: String,
    /// Address other nodes use to reach this one, when it differs from `p2p_addr`.
    pub advertise_addr: Option<String>,
    /// HTTP API listen address.
    pub api_addr: String,
    /// Seed peers to join through.
    pub join: Vec<String>,
    /// Wait for this many nodes, then the lowest PeerId initialises Raft.
    pub bootstrap_expect: Option<usize>,
    /// Form a one-node cluster at once.
    pub dev: bool,
    /// Container runtime: docker or process (chosen automatically when unset).
    pub runtime: Option<crate::runtime::RuntimeKind>,
    /// File with the cluster's pre-shared key (libp2p pnet).
    pub cluster_key_file: Option<PathBuf>,
    /// HTTP API settings.
    pub api: ApiConfig,
    /// Raft settings.
    pub raft: RaftConfig,
    /// Store quota and log compaction by bytes.
    pub store: StoreSettings,
    /// Node agent settings.
    pub agent: AgentConfig,
    /// Gossip timing.
    pub membership: crate::membership::MembershipConfig,
    /// Scheduler and controllers.
    pub scheduler: crate::controller::SchedulerConfig,
    /// DNS and the Service load balancer.
    pub discovery: crate::discovery::DiscoveryConfig,
    /// `[metrics]`: resource usage sampling.
    pub metrics: crate::agent::usage::MetricsConfig,
    /// HTTP routing of Ingress objects on this node.
    pub ingress: crate::ingress::IngressConfig,
}

/// Raft settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Most voters the cluster keeps (odd); fewer while fewer nodes are live.
    pub voters: usize,
    /// How long a voter may be down before a live learner replaces it, in milliseconds.
    pub dead_voter_grace_ms: u64,
    /// Build a snapshot after this many entries.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub keep_logs_behind_snapshot: u64,
    /// Heartbeat interval in milliseconds.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound in milliseconds.
    pub election_timeout_min_ms: u64,
    /// Election timeout upper bound in milliseconds.
    pub election_timeout_max_ms: u64,
}

/// Store settings in bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Writes that would take the stored objects past this many bytes are refused.
    pub quota_bytes: u64,
    /// Snapshot and purge the log once the entries since the last snapshot hold this many bytes.
    pub compact_log_bytes: u64,
    /// File with the key-encryption key that wraps the data keys Secrets
    /// are sealed under (64 hex digits; `shoal keygen` makes one). Every
    /// node needs the same. Without it the key is derived from the cluster key.
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            quota_bytes: crate::store::DEFAULT_QUOTA_BYTES,
            compact_log_bytes: crate::store::DEFAULT_COMPACT_LOG_BYTES,
            encryption_key_file: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            data_dir: PathBuf::from("/var/lib/shoal"),
            p2p_addr: "0.0.0.0:7946".into(),
            advertise_addr: None,
            api_addr: "127.0.0.1:7947".into(),
            join: Vec::new(),
            bootstrap_expect: None,
            dev: false,
            runtime: None,
            cluster_key_file: None,
            api: ApiConfig::default(),
            raft: RaftConfig::default(),
            store: StoreSettings::default(),
            agent: AgentConfig::default(),
            membership: Default::default(),
            scheduler: Default::default(),
            discovery: Default::default(),
            metrics: Default::default(),
            ingress: Default::default(),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        let s = crate::store::StoreConfig::default();
        RaftConfig {
            voters: 5,
            dead_voter_grace_ms: 10_000,
            snapshot_every: s.snapshot_every,
            keep_logs_behind_snapshot: s.keep_logs_behind_snapshot,
            heartbeat_ms: s.heartbeat_ms,
            election_timeout_min_ms: s.election_timeout_min_ms,
            election_timeout_max_ms: s.election_timeout_max_ms,
        }
    }
}

/// The Service data path of test nodes: `SHOAL_TEST_PROXY_MODE`
/// (`userspace`, `nftables` or `auto`), else `userspace`, so that one test
/// suite runs once per data path. A value that names none of them stops the
/// test rather than testing the default.
fn test_proxy_mode() -> crate::discovery::nft::ProxyMode {
    use crate::discovery::nft::ProxyMode;
    match std::env::var("SHOAL_TEST_PROXY_MODE").as_deref() {
        Err(_) | Ok("") | Ok("userspace") => ProxyMode::Userspace,
        Ok("nftables") => ProxyMode::Nftables,
        Ok("auto") => ProxyMode::Auto,
        Ok(other) => {
            panic!("SHOAL_TEST_PROXY_MODE={other:?}: expected userspace, nftables or auto")
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Parse {
                path: path.display().to_string(),
                msg: match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })?;
        if let Some(f) = cfg.api.token_file.clone() {
            if cfg.api.token.is_some() {
                return Err(ConfigError::Invalid(
                    "api.token and api.token_file are both set: keep one".into(),
                ));
            }
            let token = std::fs::read_to_string(&f).map_err(|source| ConfigError::Read {
                path: f.display().to_string(),
                source,
            })?;
            let token = token.trim();
            if token.len() < 16 {
                return Err(ConfigError::Invalid(format!(
                    "api.token_file {}: the token must have at least 16 characters",
                    f.display()
                )));
            }
            cfg.api.token = Some(token.to_string());
        }
        Ok(cfg)
    }

    /// A config for in-process tests: loopback, port 0, short timeouts. The
    /// data dir is `dir/data` and the process runtime's working directories
    /// `dir/pods`, so `dir` must let other users through (0711) for pods
    /// running as `nobody`.
    pub fn for_test(dir: &Path, name: &str) -> Config {
        Config {
            name: Some(name.into()),
            data_dir: dir.join("data"),
            p2p_addr: "127.0.0.1:0".into(),
            api_addr: "127.0.0.1:0".into(),
            runtime: Some(crate::runtime::RuntimeKind::Process),
            // Cluster IPs on loopback need no interface changes, and port 0
            // lets many test nodes share a host.
            discovery: crate::discovery::DiscoveryConfig {
                dns_addr: "127.0.0.1:0".into(),
                container_dns: String::new(),
                service_cidr: "127.96.0.0/16".parse().expect("a valid range"),
                proxy_mode: test_proxy_mode(),
                ..Default::default()
            },
            raft: RaftConfig {
                heartbeat_ms: 100,
                election_timeout_min_ms: 400,
                election_timeout_max_ms: 800,
                ..RaftConfig::default()
            },
            agent: AgentConfig {
                process_pods_dir: Some(dir.join("pods")),
                ..AgentConfig::default()
            },
            // Off: many test nodes share a host; a test that wants the
            // ingress gives each node its own loopback address.
            ingress: crate::ingress::IngressConfig {
                http_addr: Some(String::new()),
                https_addr: Some(String::new()),
                ..Default::default()
            },
            ..Config::default()
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.raft.voters == 0 || self.raft.voters.is_multiple_of(2) {
            return Err(ConfigError::Invalid(format!(
                "raft.voters must be odd and at least 1, not {}",
                self.raft.voters
            )));
        }
        if self.raft.election_timeout_min_ms <= self.raft.heartbeat_ms
            || self.raft.election_timeout_max_ms <= self.raft.election_timeout_min_ms
        {
            return Err(ConfigError::Invalid(
                "raft: need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
                    .into(),
            ));
        }
        if self.store.quota_bytes < crate::store::MIN_QUOTA_BYTES {
            return Err(ConfigError::Invalid(format!(
                "store.quota_bytes must be at least {} (64 MiB), not {}",
                crate::store::MIN_QUOTA_BYTES,
                self.store.quota_bytes
            )));
        }
        if self.store.compact_log_bytes < crate::store::MIN_COMPACT_LOG_BYTES {
            return Err(ConfigError::Invalid(format!(
                "store.compact_log_bytes must be at least {} (1 MiB), not {}",
                crate::store::MIN_COMPACT_LOG_BYTES,
                self.store.compact_log_bytes
            )));
        }
        self.discovery
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.metrics.resolution_ms < 500 {
            return Err(ConfigError::Invalid(format!(
                "metrics.resolution_ms must be at least 500, not {}",
                self.metrics.resolution_ms
            )));
        }
        self.ingress
            .validate(self.dev)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(0) = self.bootstrap_expect {
            return Err(ConfigError::Invalid(
                "bootstrap_expect must be at least 1".into(),
            ));
        }
        for (field, q, parse) in [
            (
                "agent.reserved_cpu",
                &self.agent.reserved_cpu,
                crate::resource::types::parse_cpu_millis
                    as fn(&str) -> Result<u64, crate::resource::types::QuantityError>,
            ),
            (
                "agent.reserved_memory",
                &self.agent.reserved_memory,
                crate::resource::types::parse_memory_bytes,
            ),
        ] {
            if let Err(e) = parse(q) {
                return Err(ConfigError::Invalid(format!("{field} {q:?}: {e}")));
            }
        }
        if let Some(q) = &self.agent.capacity_cpu
            && let Err(e) = crate::resource::types::parse_cpu_millis(q)
        {
            return Err(ConfigError::Invalid(format!(
                "agent.capacity_cpu {q:?}: {e}"
            )));
        }
        if let Some(q) = &self.agent.capacity_memory
            && let Err(e) = crate::resource::types::parse_memory_bytes(q)
        {
            return Err(ConfigError::Invalid(format!(
                "agent.capacity_memory {q:?}: {e}"
            )));
        }
        if self.agent.restart_backoff_initial_ms == 0
            || self.agent.restart_backoff_max_ms < self.agent.restart_backoff_initial_ms
        {
            return Err(ConfigError::Invalid(
                "agent: need 0 < restart_backoff_initial_ms <= restart_backoff_max_ms".into(),
            ));
        }
        if self.agent.resync_ms == 0 {
            return Err(ConfigError::Invalid(
                "agent.resync_ms must be positive".into(),
            ));
        }
        self.agent
            .validate_runtime(&self.data_dir)
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The node's name: configured, else the host name, else "shoal".
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "shoal".into())
    }

    /// The store's tunables from this config.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            snapshot_every: self.raft.snapshot_every,
            keep_logs_behind_snapshot: self.raft.keep_logs_behind_snapshot,
            heartbeat_ms: self.raft.heartbeat_ms,
            election_timeout_min_ms: self.raft.election_timeout_min_ms,
            election_timeout_max_ms: self.raft.election_timeout_max_ms,
            quota_bytes: self.store.quota_bytes,
            compact_log_bytes: self.store.compact_log_bytes,
            ..crate::store::StoreConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../config/shoal.toml");
        let cfg: Config = toml::from_str(text).expect("config/shoal.toml must parse");
        cfg.validate().expect("config/shoal.toml must validate");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = toml::from_str::<Config>("nmae = \"x\"").expect_err("typo must fail");
        assert!(err.to_string().contains("nmae"), "{err}");
    }

    #[test]
    fn a_tiny_store_quota_is_rejected() {
        let mut c = Config::default();
        c.store.quota_bytes = 1024;
        let err = c.validate().expect_err("1 KiB quota must fail");
        assert!(err.to_string().contains("store.quota_bytes"), "{err}");
        c.store.quota_bytes = crate::store::MIN_QUOTA_BYTES;
        c.validate().expect("the minimum is allowed");
        c.store.compact_log_bytes = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn even_voters_rejected() {
        let mut c = Config::default();
        c.raft.voters = 2;
        assert!(c.validate().is_err());
    }
}
