//! The kubelet's atomic writer: a volume's files change all at once.
//!
//! The files live in a timestamped directory (`..2026_11_30_12_00_00.123456789`);
//! `..data` is a symlink to the current one, and each top-level name in the
//! volume is a symlink `name -> ..data/name`. An update writes a complete new
//! directory, then points `..data` at it with one `rename` of a fresh
//! symlink, so a reader opens either the old file or the new one, never half
//! of one. The previous directory is kept until the next update (the
//! kubelet removes it at once): a reader whose path walk went through the
//! old `..data` a moment before the flip still finds its file.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use super::{FileWant, Payload};

/// The symlink to the current generation.
pub const DATA_LINK: &str = "..data";
const TMP_LINK: &str = "..data_tmp";
/// Most bytes read back from one volume when comparing; a volume holding
/// more (it cannot, given the store's object size limit) is rewritten.
const MAX_READ_BYTES: u64 = 64 << 20;

/// What `dir/..data` holds now; `None` when it holds nothing readable.
pub fn read_current(dir: &Path) -> io::Result<Option<Payload>> {
    let data = dir.join(DATA_LINK);
    if std::fs::symlink_metadata(&data).is_err() {
        return Ok(None);
    }
    let mut out = Payload::new();
    let mut budget = MAX_READ_BYTES;
    let mut stack = vec![(data, String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push((e.path(), rel));
            } else if meta.is_file() {
                if meta.len() > budget {
                    return Ok(None);
                }
                budget -= meta.len();
                let data = std::fs::read(e.path())?;
                out.insert(
                    rel,
                    FileWant {
                        data,
                        mode: meta.permissions().mode() & 0o777,
                    },
                );
            }
        }
    }
    Ok(Some(out))
}

/// The name of a generation's directory, in the kubelet's format.
pub fn generation_name(now: SystemTime) -> String {
    let t = time::OffsetDateTime::from(now);
    format!(
        "..{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.{:09}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Makes `dir` hold exactly `want`; `true` when it had to write. Idempotent:
/// when the content is already there only the top-level links are checked.
pub fn write(dir: &Path, want: &Payload, now: SystemTime) -> io::Result<bool> {
    let current = read_current(dir)?;
    let changed = current.as_ref() != Some(want);
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let mut keep: BTreeSet<String> = old
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if changed {
        let mut name = generation_name(now);
        while std::fs::symlink_metadata(dir.join(&name)).is_ok() {
            name.push('x');
        }
        let gen_dir = dir.join(&name);
        mkdir(&gen_dir)?;
        for (path, f) in want {
            let file = gen_dir.join(path);
            if let Some(parent) = file.parent() {
                mkdir_all(parent)?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(f.mode)
                .open(&file)?;
            out.write_all(&f.data)?;
            // The umask may have taken bits off the mode asked for.
            out.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
        }
        let tmp = dir.join(TMP_LINK);
        if std::fs::symlink_metadata(&tmp).is_ok() {
            std::fs::remove_file(&tmp)?;
        }
        std::os::unix::fs::symlink(&name, &tmp)?;
        std::fs::rename(&tmp, dir.join(DATA_LINK))?;
        keep.insert(name);
    }
    // Top-level links: one per first path component, through `..data`.
    let tops: BTreeSet<&str> = want.keys().filter_map(|p| p.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        let target = Path::new(DATA_LINK).join(top);
        if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::remove_file(&link)?;
        }
        std::os::unix::fs::symlink(&target, &link)?;
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            // Generations other than the current and the previous one.
            if name.starts_with("..2") && !keep.contains(&name) {
                std::fs::remove_dir_all(e.path())?;
            }
        } else if !tops.contains(name.as_str()) {
            // A key no longer in the volume: only ever a link of ours.
            if e.file_type()?.is_symlink() {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    Ok(changed)
}

fn mkdir(p: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o755).create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

fn mkdir_all(p: &Path) -> io::Result<()> {
    if p.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
}
