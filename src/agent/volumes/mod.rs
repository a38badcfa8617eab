//! Pod volumes on a node.
//!
//! Every pod with volumes gets `<data_dir>/volumes/<pod uid>/<volume>/`:
//! an `emptyDir` is that directory (a tmpfs mounted there for `medium:
//! Memory`); `configMap`, `secret`, `projected` and `downwardAPI` volumes
//! hold their files there, written by [`atomic`] the way the kubelet does
//! (a timestamped directory, a `..data` symlink flipped by rename, and the
//! files as symlinks through `..data`), on a tmpfs whenever a Secret feeds
//! them so its values never reach the node's disk. A `hostPath` is the host
//! path itself, checked against its `type`. A `persistentVolumeClaim` is the
//! directory of its bound local volume, `<data_dir>/claims/<volume>/`,
//! which outlives the pod. Containers get bind mounts of those
//! directories, so a flip of `..data` is seen inside at once.
//!
//! Deciding is pure: [`plan_volume`] says what a volume needs, [`payload`]
//! what files it holds given the objects it reads, [`container_mounts`] what
//! one container mounts, and [`host_path_action`] what a hostPath's type asks
//! of what is on the host. [`host`] does the file system work and
//! [`atomic`] the swaps. The agent runs the whole thing on every sync of the
//! pod, comparing what should be on disk with what is: a ConfigMap change
//! reaches the files on the next pass (at most `agent.resync_ms`, sooner
//! through the ConfigMap and Secret watches).

pub mod atomic;
pub mod host;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::resource::downward::{self, PodFacts};
use crate::resource::types::{Container, KeyToPath, PodSpec, Volume};
use crate::runtime::NamedVolume;

/// The mode of a projected file when neither the item nor the volume sets one.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// Size of the tmpfs under a Secret-fed volume: ample for the objects the
/// store accepts, and a cap so a volume cannot eat the node's memory.
pub const SECRET_TMPFS_BYTES: u64 = 64 << 20;

/// Why a volume cannot be set up; the reason is Kubernetes' name for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap, Secret or key the volume needs is missing: the
    /// container must not start without it (`CreateContainerConfigError`).
    #[error("{0}")]
    Config(String),
    /// The node could not set the volume up (`FailedMount`).
    #[error("{0}")]
    Mount(String),
}

impl VolumeError {
    /// The reason reported in the container's waiting state and its event.
    pub fn reason(&self) -> &'static str {
        match self {
            VolumeError::Config(_) => "CreateContainerConfigError",
            VolumeError::Mount(_) => "FailedMount",
        }
    }
}

/// What a `hostPath` volume's `type` checks or creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `""`: no check.
    Unchecked,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl HostPathType {
    /// Parses a validated `type`.
    pub fn parse(t: Option<&str>) -> Result<HostPathType, String> {
        Ok(match t.unwrap_or("") {
            "" => HostPathType::Unchecked,
            "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
            "Directory" => HostPathType::Directory,
            "FileOrCreate" => HostPathType::FileOrCreate,
            "File" => HostPathType::File,
            "Socket" => HostPathType::Socket,
            "CharDevice" => HostPathType::CharDevice,
            "BlockDevice" => HostPathType::BlockDevice,
            other => return Err(format!("unknown hostPath type {other:?}")),
        })
    }
}

/// The kind of thing found at a host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    /// A FIFO or anything else.
    Other,
}

/// What to do about a hostPath before mounting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathAction {
    /// Mount it as it is.
    Use,
    /// Create the directory (0755), with its parents.
    CreateDirectory,
    /// Create an empty file (0644); its parent must exist.
    CreateFile,
}

/// Decides a hostPath's fate from its `type` and what is there.
pub fn host_path_action(
    path: &str,
    t: HostPathType,
    found: Found,
) -> Result<HostPathAction, String> {
    use HostPathType as T;
    let want = |ok: bool, what: &str| {
        if ok {
            Ok(HostPathAction::Use)
        } else if found == Found::Missing {
            Err(format!(
                "hostPath type check failed: {path} does not exist (type {what})"
            ))
        } else {
            Err(format!(
                "hostPath type check failed: {path} is not a {what} (found {})",
                found_name(found)
            ))
        }
    };
    match t {
        T::Unchecked => Ok(HostPathAction::Use),
        T::DirectoryOrCreate if found == Found::Missing => Ok(HostPathAction::CreateDirectory),
        T::FileOrCreate if found == Found::Missing => Ok(HostPathAction::CreateFile),
        T::DirectoryOrCreate | T::Directory => want(found == Found::Directory, "directory"),
        T::FileOrCreate | T::File => want(found == Found::File, "file"),
        T::Socket => want(found == Found::Socket, "socket"),
        T::CharDevice => want(found == Found::CharDevice, "character device"),
        T::BlockDevice => want(found == Found::BlockDevice, "block device"),
    }
}

fn found_name(f: Found) -> &'static str {
    match f {
        Found::Missing => "nothing",
        Found::Directory => "a directory",
        Found::File => "a file",
        Found::Socket => "a socket",
        Found::CharDevice => "a character device",
        Found::BlockDevice => "a block device",
        Found::Other => "another kind of file",
    }
}

/// What one volume needs on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumePlan {
    /// A per-pod directory; on a tmpfs of at most `size` bytes when `memory`.
    EmptyDir { memory: bool, size: Option<u64> },
    /// A host path, checked (or created) as its type says.
    HostPath { path: String, check: HostPathType },
    /// Files written atomically; on a tmpfs when a Secret feeds them.
    Files { tmpfs: bool },
    /// The directory of the local volume bound to this claim.
    Claim { claim: String },
}

/// Decides what a (validated) volume needs.
pub fn plan_volume(v: &Volume) -> Result<VolumePlan, String> {
    if let Some(e) = &v.empty_dir {
        let memory = e.medium.as_deref() == Some("Memory");
        let size = match &e.size_limit {
            Some(q) if memory => Some(q.memory_bytes().map_err(|e| e.to_string())?),
            _ => None,
        };
        return Ok(VolumePlan::EmptyDir { memory, size });
    }
    if let Some(h) = &v.host_path {
        return Ok(VolumePlan::HostPath {
            path: h.path.clone(),
            check: HostPathType::parse(h.path_type.as_deref())?,
        });
    }
    if let Some(c) = &v.persistent_volume_claim {
        return Ok(VolumePlan::Claim {
            claim: c.claim_name.clone(),
        });
    }
    let secret = v.secret.is_some()
        || v.projected
            .as_ref()
            .is_some_and(|p| p.sources.iter().any(|s| s.secret.is_some()));
    if v.config_map.is_some()
        || v.secret.is_some()
        || v.projected.is_some()
        || v.downward_api.is_some()
    {
        return Ok(VolumePlan::Files { tmpfs: secret });
    }
    Err(format!("volume {:?} has no source shoal can mount", v.name))
}

/// Where a local persistent volume lives on the node: `<claims_root>/<volume>`.
pub fn local_volume_dir(claims_root: &Path, volume: &str) -> PathBuf {
    // Volume names are DNS subdomains; keep the path inside the root anyway.
    let safe: String = volume
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    claims_root.join(safe.trim_start_matches('.'))
}

/// Where a pod's volume lives on the node.
pub fn volume_dir(pod_dir: &Path, volume: &str) -> PathBuf {
    pod_dir.join(volume)
}

/// One file of a volume: its bytes and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWant {
    /// The content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<String, FileWant>;

/// Reads the ConfigMaps and Secrets a volume names (decoded values).
pub trait Objects {
    /// A ConfigMap's keys (`data` and `binaryData`), `None` when it does not exist.
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
    /// A Secret's keys, `None` when it does not exist.
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
    /// The directory on this node of the volume a claim is bound to, or
    /// why the claim cannot be mounted here now.
    fn claim_dir(&self, claim: &str) -> Result<PathBuf, VolumeError>;
    /// The Docker named volume (name, driver and options) a claim is bound
    /// to, when its volume is one (`csi` driver `shoal.io/docker`); `None`
    /// for a directory.
    fn claim_volume(&self, _claim: &str) -> Result<Option<(String, NamedVolume)>, VolumeError> {
        Ok(None)
    }
}

/// Where a claim's data comes from on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimMount {
    /// A directory, bind-mounted.
    Dir(PathBuf),
    /// A Docker named volume the engine makes with its driver.
    Named(String, NamedVolume),
}

/// What a downward API file may read besides the pod's fields.
pub struct Downward<'a> {
    /// The pod's fields.
    pub facts: PodFacts<'a>,
    /// The pod spec, for containers' resources.
    pub spec: &'a PodSpec,
    /// The node's allocatable `(millicores, bytes)`, for limits not set.
    pub allocatable: (u64, u64),
}

/// The files a Files volume should hold now. Missing objects or keys that
/// are not optional are [`VolumeError::Config`], naming them.
pub fn payload(v: &Volume, objs: &dyn Objects, dw: &Downward<'_>) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    if let Some(c) = &v.config_map {
        let mode = c.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        let data = objs.config_map(&c.name).map_err(VolumeError::Mount)?;
        add_keys(
            &mut out,
            "configmap",
            &c.name,
            data,
            &c.items,
            c.optional,
            mode,
        )?;
    } else if let Some(s) = &v.secret {
        let mode = s.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        let data = objs.secret(&s.secret_name).map_err(VolumeError::Mount)?;
        add_keys(
            &mut out,
            "secret",
            &s.secret_name,
            data,
            &s.items,
            s.optional,
            mode,
        )?;
    } else if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        add_downward(&mut out, &d.items, mode, dw)?;
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        for src in &p.sources {
            if let Some(o) = &src.config_map {
                let data = objs.config_map(&o.name).map_err(VolumeError::Mount)?;
                add_keys(
                    &mut out,
                    "configmap",
                    &o.name,
                    data,
                    &o.items,
                    o.optional,
                    mode,
                )?;
            }
            if let Some(o) = &src.secret {
                let data = objs.secret(&o.name).map_err(VolumeError::Mount)?;
                add_keys(
                    &mut out, "secret", &o.name, data, &o.items, o.optional, mode,
                )?;
            }
            if let Some(d) = &src.downward_api {
                add_downward(&mut out, &d.items, mode, dw)?;
            }
        }
    }
    check_layout(&out).map_err(VolumeError::Config)?;
    Ok(out)
}

fn add_keys(
    out: &mut Payload,
    kind: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: &[KeyToPath],
    optional: Option<bool>,
    mode: u32,
) -> Result<(), VolumeError> {
    let optional = optional == Some(true);
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        return Err(VolumeError::Config(format!("{kind} {name:?} not found")));
    };
    if items.is_empty() {
        for (k, v) in data {
            out.insert(k, FileWant { data: v, mode });
        }
        return Ok(());
    }
    for it in items {
        match data.get(&it.key) {
            Some(v) => {
                out.insert(
                    it.path.clone(),
                    FileWant {
                        data: v.clone(),
                        mode: it.mode.unwrap_or(mode),
                    },
                );
            }
            None if optional => {}
            None => {
                return Err(VolumeError::Config(format!(
                    "{kind} {name:?} has no key {:?} (for path {:?})",
                    it.key, it.path
                )));
            }
        }
    }
    Ok(())
}

fn add_downward(
    out: &mut Payload,
    items: &[crate::resource::types::DownwardApiFile],
    mode: u32,
    dw: &Downward<'_>,
) -> Result<(), VolumeError> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            let field =
                downward::parse_field_path(&f.field_path, true).map_err(VolumeError::Config)?;
            downward::field_value(&field, &dw.facts)
        } else if let Some(r) = &it.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = dw
                .spec
                .container(name)
                .ok_or_else(|| VolumeError::Config(format!("no container named {name:?}")))?;
            downward::resource_value(r, c, dw.allocatable).map_err(VolumeError::Config)?
        } else {
            continue;
        };
        out.insert(
            it.path.clone(),
            FileWant {
                data: value.into_bytes(),
                mode: it.mode.unwrap_or(mode),
            },
        );
    }
    Ok(())
}

/// Refuses paths the atomic writer cannot lay out: one used both as a file
/// and as a directory (`a` and `a/b`), or one starting with `..`, which
/// would collide with the writer's own entries.
fn check_layout(p: &Payload) -> Result<(), String> {
    for path in p.keys() {
        if path.starts_with("..") {
            return Err(format!("file path {path:?} may not start with \"..\""));
        }
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() && p.contains_key(&prefix) {
                return Err(format!(
                    "{prefix:?} is both a file and the directory of {path:?}"
                ));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
    }
    Ok(())
}

/// One bind mount a container asked for, before its `subPath` is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMount {
    /// The volume's name.
    pub volume: String,
    /// The volume's directory (or host path) on the node.
    pub root: PathBuf,
    /// The mount's `subPath`, if any.
    pub sub_path: Option<String>,
    /// A missing `subPath` is created as a directory (emptyDir and hostPath,
    /// as the kubelet does); in a Files volume it must be one of its files.
    pub create_sub_path: bool,
    /// Where it appears in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// A Docker named volume instead of `root` (a claim of `shoal.io/docker`).
    pub named: Option<(String, NamedVolume)>,
}

/// The mounts of one container, from the pod's volumes prepared under
/// `pod_dir` and its claims' directories (by claim name).
pub fn container_mounts(
    spec: &PodSpec,
    c: &Container,
    pod_dir: &Path,
    claims: &BTreeMap<String, ClaimMount>,
) -> Result<Vec<PlannedMount>, String> {
    let mut mounts = Vec::new();
    for m in &c.volume_mounts {
        let v = spec
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| format!("no volume named {:?}", m.name))?;
        let plan = plan_volume(v)?;
        let mut named = None;
        let root = match &plan {
            VolumePlan::HostPath { path, .. } => PathBuf::from(path),
            VolumePlan::Claim { claim } => match claims.get(claim) {
                Some(ClaimMount::Dir(d)) => d.clone(),
                Some(ClaimMount::Named(name, nv)) => {
                    named = Some((name.clone(), nv.clone()));
                    PathBuf::new()
                }
                None => return Err(format!("persistentvolumeclaim {claim:?} is not ready here")),
            },
            _ => volume_dir(pod_dir, &v.name),
        };
        let claim_read_only = v
            .persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.read_only == Some(true));
        // Files volumes are read-only inside, whatever the mount says, as in
        // Kubernetes: the agent owns their content.
        let files = matches!(plan, VolumePlan::Files { .. });
        mounts.push(PlannedMount {
            volume: v.name.clone(),
            root,
            sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
            create_sub_path: !files,
            container_path: m.mount_path.clone(),
            read_only: m.read_only == Some(true) || files || claim_read_only,
            named,
        });
    }
    Ok(mounts)
}
