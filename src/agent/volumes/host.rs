//! The file system work of volumes: directories, tmpfs mounts, hostPath
//! checks, subPath resolution and removal with the pod. Blocking calls: the
//! agent runs them on the blocking pool.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{
    ClaimMount, Downward, Found, HostPathAction, Objects, PlannedMount, SECRET_TMPFS_BYTES,
    VolumeError, VolumePlan, atomic, host_path_action, payload, plan_volume, volume_dir,
};
use crate::resource::types::PodSpec;
use crate::runtime::Mount;

/// What setting a pod's volumes up found: errors by volume name, and how
/// many Files volumes were rewritten.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Volumes that cannot be used now, with why.
    pub errors: BTreeMap<String, VolumeError>,
    /// Files volumes whose content changed in this pass.
    pub updated: u64,
    /// Where the pod's claims' data is, by claim name.
    pub claims: BTreeMap<String, ClaimMount>,
}

/// Sets up (or brings up to date) every volume of a pod under `pod_dir`.
/// Idempotent; called on every sync of the pod.
pub fn prepare(pod_dir: &Path, spec: &PodSpec, objs: &dyn Objects, dw: &Downward<'_>) -> Prepared {
    let mut out = Prepared::default();
    if spec.volumes.is_empty() {
        return out;
    }
    if let Err(e) = mkdir_all(pod_dir, 0o700) {
        for v in &spec.volumes {
            out.errors.insert(
                v.name.clone(),
                VolumeError::Mount(format!("cannot create {}: {e}", pod_dir.display())),
            );
        }
        return out;
    }
    // Validated as 0..=i32::MAX when the pod was stored.
    let fs_group = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    for v in &spec.volumes {
        let plan = match plan_volume(v) {
            Ok(p) => p,
            Err(e) => {
                out.errors.insert(v.name.clone(), VolumeError::Mount(e));
                continue;
            }
        };
        let dir = volume_dir(pod_dir, &v.name);
        // What fsGroup owns: the volumes shoal makes (not a hostPath).
        let mut owned: Option<(PathBuf, bool)> = None;
        let r = match plan {
            VolumePlan::EmptyDir { memory, size } => {
                owned = Some((dir.clone(), false));
                empty_dir(&dir, memory, size, &v.name)
            }
            VolumePlan::HostPath { path, check } => {
                let found = found_at(Path::new(&path));
                match host_path_action(&path, check, found) {
                    Ok(HostPathAction::Use) => Ok(()),
                    Ok(HostPathAction::CreateDirectory) => mkdir_all(Path::new(&path), 0o755)
                        .map_err(|e| VolumeError::Mount(format!("cannot create {path}: {e}"))),
                    Ok(HostPathAction::CreateFile) => std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o644)
                        .open(&path)
                        .map(|_| ())
                        .map_err(|e| VolumeError::Mount(format!("cannot create {path}: {e}"))),
                    Err(e) => Err(VolumeError::Mount(e)),
                }
            }
            VolumePlan::Files { tmpfs } => files(&dir, tmpfs, v, objs, dw).map(|changed| {
                owned = Some((dir.clone(), changed));
                out.updated += u64::from(changed);
            }),
            VolumePlan::Claim { claim } => match objs.claim_volume(&claim) {
                // The engine makes and mounts it: nothing on the node's disk.
                Ok(Some((name, nv))) => {
                    out.claims.insert(claim, ClaimMount::Named(name, nv));
                    Ok(())
                }
                Ok(None) => claim_dir(objs, &claim).map(|d| {
                    owned = Some((d.clone(), false));
                    out.claims.insert(claim, ClaimMount::Dir(d));
                }),
                Err(e) => Err(e),
            },
        };
        let r = match (r, fs_group, owned) {
            (Ok(()), Some(gid), Some((dir, changed))) => {
                give_to_group(&dir, gid, changed).map_err(|e| {
                    VolumeError::Mount(format!(
                        "volume {:?}: cannot give it to fsGroup {gid}: {e}",
                        v.name
                    ))
                })
            }
            (r, _, _) => r,
        };
        if let Err(e) = r {
            out.errors.insert(v.name.clone(), e);
        }
    }
    out
}

/// A claim's volume directory, made on first use: writable by any user the
/// container runs as, as an emptyDir is.
fn claim_dir(objs: &dyn Objects, claim: &str) -> Result<PathBuf, VolumeError> {
    let dir = objs.claim_dir(claim)?;
    if !dir.is_dir() {
        let fail = |e: io::Error| {
            VolumeError::Mount(format!(
                "persistentvolumeclaim {claim:?}: cannot create {}: {e}",
                dir.display()
            ))
        };
        mkdir_all(&dir, 0o777).map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(fail)?;
    }
    Ok(dir)
}

fn empty_dir(dir: &Path, memory: bool, size: Option<u64>, name: &str) -> Result<(), VolumeError> {
    let fail = |e: io::Error| VolumeError::Mount(format!("emptyDir {name:?}: {e}"));
    if !dir.is_dir() {
        mkdir_all(dir, 0o777).map_err(fail)?;
        // Any user the container runs as may write there, as in Kubernetes.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(fail)?;
    }
    if memory && !is_mountpoint(dir).map_err(fail)? {
        let mut opts = "mode=0777".to_string();
        if let Some(s) = size {
            opts.push_str(&format!(",size={s}"));
        }
        mount_tmpfs(dir, &opts).map_err(|e| {
            VolumeError::Mount(format!(
                "emptyDir {name:?} with medium Memory: cannot mount a tmpfs at {} ({e}); \
                 the agent must run as root",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

fn files(
    dir: &Path,
    tmpfs: bool,
    v: &crate::resource::types::Volume,
    objs: &dyn Objects,
    dw: &Downward<'_>,
) -> Result<bool, VolumeError> {
    let io_fail = |e: io::Error| VolumeError::Mount(format!("volume {:?}: {e}", v.name));
    if !dir.is_dir() {
        mkdir_all(dir, 0o755).map_err(io_fail)?;
    }
    if tmpfs && !is_mountpoint(dir).map_err(io_fail)? {
        let opts = format!("mode=0755,size={SECRET_TMPFS_BYTES}");
        mount_tmpfs(dir, &opts).map_err(|e| {
            VolumeError::Mount(format!(
                "volume {:?} holds Secret data: cannot mount a tmpfs at {} ({e}); \
                 refusing to write Secret values to the node's disk (the agent must run as root)",
                v.name,
                dir.display()
            ))
        })?;
    }
    let want = match payload(v, objs, dw) {
        Ok(w) => w,
        // An object deleted under a running pod leaves the files it had, as
        // in Kubernetes; only a volume that never got its content is an error.
        Err(e) => {
            return match atomic::read_current(dir) {
                Ok(Some(_)) => Ok(false),
                _ => Err(e),
            };
        }
    };
    atomic::write(dir, &want, SystemTime::now()).map_err(io_fail)
}

/// Turns planned mounts into the runtime's bind mounts, resolving each
/// `subPath` and refusing one that leads out of its volume.
pub fn resolve_mounts(planned: &[PlannedMount]) -> Result<Vec<Mount>, VolumeError> {
    let mut out = Vec::with_capacity(planned.len());
    for m in planned {
        if let Some((name, nv)) = &m.named {
            // Docker 20.10 mounts a volume whole (no subpath in its API).
            if let Some(sp) = &m.sub_path {
                return Err(VolumeError::Config(format!(
                    "subPath {sp:?} of volume {:?}: not supported on a shoal.io/docker volume",
                    m.volume
                )));
            }
            out.push(Mount {
                host_path: name.clone(),
                volume: Some(nv.clone()),
                container_path: m.container_path.clone(),
                read_only: m.read_only,
            });
            continue;
        }
        let host = match &m.sub_path {
            None => m.root.clone(),
            Some(sp) => resolve_sub_path(m, sp)?,
        };
        out.push(Mount {
            host_path: host.to_string_lossy().into_owned(),
            volume: None,
            container_path: m.container_path.clone(),
            read_only: m.read_only,
        });
    }
    Ok(out)
}

fn resolve_sub_path(m: &PlannedMount, sp: &str) -> Result<PathBuf, VolumeError> {
    let fail =
        |e: io::Error| VolumeError::Mount(format!("subPath {sp:?} of volume {:?}: {e}", m.volume));
    let p = m.root.join(sp);
    if std::fs::symlink_metadata(&p).is_err() {
        if !m.create_sub_path {
            return Err(VolumeError::Config(format!(
                "subPath {sp:?} is not a file of volume {:?}",
                m.volume
            )));
        }
        let mode = std::fs::metadata(&m.root)
            .map(|md| md.permissions().mode() & 0o7777)
            .map_err(fail)?;
        mkdir_all(&p, mode).map_err(fail)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    }
    // Resolved here, not by the engine: a symlink inside the volume must not
    // lead the mount out of it (and a Files volume's key resolves to its
    // current generation, which is what a subPath mount keeps, as in Kubernetes).
    let real = std::fs::canonicalize(&p).map_err(fail)?;
    let root = std::fs::canonicalize(&m.root).map_err(fail)?;
    if !real.starts_with(&root) {
        return Err(VolumeError::Mount(format!(
            "subPath {sp:?} of volume {:?} leads outside the volume (to {})",
            m.volume,
            real.display()
        )));
    }
    Ok(real)
}

/// The uids of the pods that have a directory under `root`.
pub fn pod_dirs(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    match std::fs::read_dir(root) {
        Ok(rd) => {
            for e in rd {
                let e = e?;
                if e.file_type()?.is_dir() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Removes a pod's volumes: unmounts its tmpfs mounts, then deletes the
/// directory (never following symlinks, so nothing outside it is touched).
pub fn remove_pod_dir(pod_dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(pod_dir)? {
        let p = e?.path();
        if p.is_dir() && is_mountpoint(&p)? {
            nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)?;
        }
    }
    std::fs::remove_dir_all(pod_dir)
}

fn found_at(p: &Path) -> Found {
    // Followed, as the kubelet does: a symlink to a directory is a directory.
    match std::fs::metadata(p) {
        Err(_) => Found::Missing,
        Ok(m) => {
            let t = m.file_type();
            if t.is_dir() {
                Found::Directory
            } else if t.is_file() {
                Found::File
            } else if t.is_socket() {
                Found::Socket
            } else if t.is_char_device() {
                Found::CharDevice
            } else if t.is_block_device() {
                Found::BlockDevice
            } else {
                Found::Other
            }
        }
    }
}

/// Whether something is mounted at `dir` (its device differs from its parent's).
pub fn is_mountpoint(dir: &Path) -> io::Result<bool> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    Ok(std::fs::metadata(dir)?.dev() != std::fs::metadata(parent)?.dev())
}

fn mount_tmpfs(dir: &Path, opts: &str) -> io::Result<()> {
    use nix::mount::{MsFlags, mount};
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts),
    )
    .map_err(io::Error::from)
}

/// Makes `dir` and what is in it the group `gid`'s, group-writable where
/// the owner may write, with the setgid bit on directories so that what
/// containers create there stays the group's (the kubelet's fsGroup
/// ownership). Done when the top directory is not the group's yet, or the
/// content was just rewritten: Kubernetes' `OnRootMismatch`, rather than a
/// walk of a whole claim on every sync.
fn give_to_group(dir: &Path, gid: u32, changed: bool) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !changed && meta.gid() == gid && meta.mode() & 0o2000 != 0 {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(p) = stack.pop() {
        seen += 1;
        // A claim is the user's data: its size is not ours to bound, but a
        // walk is (the rest keeps its ownership, which is reported).
        if seen > MAX_OWNERSHIP_WALK {
            return Err(io::Error::other(format!(
                "more than {MAX_OWNERSHIP_WALK} entries; the rest keep their group"
            )));
        }
        let meta = std::fs::symlink_metadata(&p)?;
        // Never follow a link a container planted.
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&p, None, Some(gid))?;
        let mode = meta.mode() & 0o7777;
        let group = (mode & 0o700) >> 3;
        let wanted = if meta.is_dir() {
            mode | group | 0o2000
        } else {
            mode | group
        };
        if wanted != mode {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(wanted))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The most entries `give_to_group` changes in one pass.
const MAX_OWNERSHIP_WALK: usize = 100_000;

fn mkdir_all(p: &Path, mode: u32) -> io::Result<()> {
    if p.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
}
