//! A pod's name resolution settings: `dnsPolicy`, `dnsConfig`, `hostAliases`.

use serde::{Deserialize, Serialize};

/// Where a pod's containers resolve names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// The cluster DNS, which forwards what is not the cluster's.
    ClusterFirst,
    /// The cluster DNS for a pod in the host's network too (which
    /// ClusterFirst there is not: it falls back to Default).
    ClusterFirstWithHostNet,
    /// The node's own resolver configuration.
    Default,
    /// Only what `dnsConfig` says.
    None,
}

/// Resolver settings added to (or, with dnsPolicy None, making up) the
/// policy's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// One `options` entry of resolv.conf (`ndots:2`, `edns0`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfigOption {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An /etc/hosts entry: an address and its names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostAlias {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}
