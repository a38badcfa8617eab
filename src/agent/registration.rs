//! The node's own `Node` object: capacity read from the host, allocatable
//! after `agent.reserved_*` (ephemeral storage: the data dir's filesystem;
//! extended resources: `agent.extended_resources`), runtime, addresses and labels. The agent
//! writes it at start and rewrites its status whenever it changes, so the
//! scheduler and `shoal nodes` read it from any replica.

use std::collections::BTreeMap;

use serde_json::json;
use tracing::{info, warn};

use super::Ctx;
use crate::resource::extended::EPHEMERAL_STORAGE;
use crate::resource::status::{NodeAddress, NodeInfo as StatusNodeInfo, NodeStatus};
use crate::resource::types::{VOLUME_STORAGE, parse_cpu_millis, parse_memory_bytes};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta};
use crate::store::{Command, NodeInfo, Op, Precondition};

/// The node's capacity: the host's, unless the config overrides it.
pub fn capacity(cfg: &crate::agent::AgentConfig) -> (u64, u64) {
    let (cpu, mem) = host_capacity();
    (
        cfg.capacity_cpu
            .as_deref()
            .and_then(|q| parse_cpu_millis(q).ok())
            .unwrap_or(cpu),
        cfg.capacity_memory
            .as_deref()
            .and_then(|q| parse_memory_bytes(q).ok())
            .unwrap_or(mem),
    )
}

/// The node's allocatable `(millicores, bytes)`: capacity less what is reserved.
pub fn allocatable(cfg: &crate::agent::AgentConfig) -> (u64, u64) {
    let (cpu, mem) = capacity(cfg);
    (
        cpu.saturating_sub(parse_cpu_millis(&cfg.reserved_cpu).unwrap_or(0)),
        mem.saturating_sub(parse_memory_bytes(&cfg.reserved_memory).unwrap_or(0)),
    )
}

/// The size in bytes of the filesystem holding `dir` (the data dir): the
/// node's ephemeral-storage capacity, as the kubelet reports its root
/// filesystem's. 0 when it cannot be read, so nothing is scheduled on it.
pub fn ephemeral_capacity(dir: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks().saturating_mul(s.fragment_size()))
        .unwrap_or(0)
}

/// The host's CPU cores (as the process may use them) and memory in bytes.
pub fn host_capacity() -> (u64, u64) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    (cores * 1000, mem)
}

/// CPU millicores as a quantity string (`2`, `1900m`).
fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes as a quantity in Ki, as the kubelet reports memory.
fn memory_quantity(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// The Node object this agent publishes.
pub fn node_object(ctx: &Ctx, info: &NodeInfo, capacity: (u64, u64)) -> Object {
    let (cpu, mem) = capacity;
    let cfg = &ctx.cfg;
    let reserved_cpu = parse_cpu_millis(&cfg.reserved_cpu).unwrap_or(0);
    let reserved_mem = parse_memory_bytes(&cfg.reserved_memory).unwrap_or(0);
    let mut labels = cfg.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), ctx.node.clone());
    labels.insert("kubernetes.io/os".into(), std::env::consts::OS.into());
    labels.insert("kubernetes.io/arch".into(), std::env::consts::ARCH.into());
    let quantities = |cpu: u64, mem: u64| {
        BTreeMap::from([
            ("cpu".to_string(), json!(cpu_quantity(cpu))),
            ("memory".to_string(), json!(memory_quantity(mem))),
            ("pods".to_string(), json!(cfg.max_pods.to_string())),
        ])
    };
    let volume_bytes = json!(ctx.volume_capacity().to_string());
    let mut capacity = quantities(cpu, mem);
    capacity.insert(VOLUME_STORAGE.into(), volume_bytes.clone());
    let mut allocatable = quantities(
        cpu.saturating_sub(reserved_cpu),
        mem.saturating_sub(reserved_mem),
    );
    allocatable.insert(VOLUME_STORAGE.into(), volume_bytes);
    let data_dir = ctx.volumes_root.parent().unwrap_or(&ctx.volumes_root);
    let disk = ephemeral_capacity(data_dir);
    let reserved_disk = parse_memory_bytes(&cfg.reserved_ephemeral_storage).unwrap_or(0);
    capacity.insert(EPHEMERAL_STORAGE.into(), json!(memory_quantity(disk)));
    allocatable.insert(
        EPHEMERAL_STORAGE.into(),
        json!(memory_quantity(disk.saturating_sub(reserved_disk))),
    );
    for (name, count) in &cfg.extended_resources {
        capacity.insert(name.clone(), json!(count.to_string()));
        allocatable.insert(name.clone(), json!(count.to_string()));
    }
    let status = NodeStatus {
        capacity,
        allocatable,
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ctx.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: ctx.node.clone(),
            },
        ],
        node_info: Some(StatusNodeInfo {
            runtime: ctx.runtime.name().into(),
            shoal_version: env!("CARGO_PKG_VERSION").into(),
            peer_id: info.peer_id.clone(),
            p2p_addrs: info.p2p_addrs.clone(),
            api_addr: info.api_addr.clone(),
            operating_system: std::env::consts::OS.into(),
            architecture: std::env::consts::ARCH.into(),
            ..StatusNodeInfo::default()
        }),
        ..NodeStatus::default()
    };
    let mut body = serde_json::Map::new();
    body.insert("spec".into(), json!({}));
    let mut node = Object {
        api_version: "v1".into(),
        kind: "Node".into(),
        metadata: ObjectMeta {
            name: ctx.node.clone(),
            labels,
            ..Default::default()
        },
        body,
    };
    node.set_status(&status);
    node
}

/// Writes the Node object if the stored one differs; `true` once it matches.
pub async fn publish(ctx: &Ctx, info: &NodeInfo) -> bool {
    let want = node_object(ctx, info, capacity(&ctx.cfg));
    let key = ObjectKey::new(Kind::Node, "", &ctx.node);
    let stored = match ctx.store.get(&key) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot read this node's Node object: {e}");
            return false;
        }
    };
    // Keep what others own (spec.unschedulable from cordon) and compare the rest.
    let mut want = want;
    want.metadata.creation_timestamp = stored
        .as_ref()
        .and_then(|s| s.metadata.creation_timestamp.clone())
        .or_else(|| Some(crate::resource::time::now_rfc3339()));
    if let Some(s) = &stored {
        if let Some(spec) = s.body.get("spec") {
            want.body.insert("spec".into(), spec.clone());
        }
        if s.same_desired_state(&want) && s.body.get("status") == want.body.get("status") {
            return true;
        }
    }
    let Ok(bytes) = serde_json::to_vec(&want) else {
        return false;
    };
    let op = Op::Put {
        key,
        object: bytes,
        precondition: match &stored {
            Some(s) => Precondition::Version(s.resource_version()),
            None => Precondition::MustNotExist,
        },
    };
    match ctx.store.write(Command { ops: vec![op] }).await {
        Ok(_) => {
            info!(node = %ctx.node, runtime = ctx.runtime.name(), "published this node");
            true
        }
        Err(e) => {
            warn!("cannot publish this node yet: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_back() {
        assert_eq!(cpu_quantity(2000), "2");
        assert_eq!(cpu_quantity(1900), "1900m");
        assert_eq!(parse_cpu_millis(&cpu_quantity(1900)), Ok(1900));
        let m = memory_quantity(8 * 1024 * 1024 * 1024);
        assert_eq!(parse_memory_bytes(&m), Ok(8 * 1024 * 1024 * 1024));
    }

    #[test]
    fn host_has_capacity() {
        let (cpu, mem) = host_capacity();
        assert!(cpu >= 1000 && mem > 0);
    }
}
