//! Disk use of a directory tree, as `du` counts it (allocated blocks), for
//! `ephemeral-storage` limits. Bounded: at most a given number of entries
//! are looked at, symlinks are not followed and other filesystems mounted
//! inside (a tmpfs emptyDir, a bind mount) are not entered.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes allocated under `root` and whether the walk saw every entry (false:
/// the count is a lower bound, `max_entries` was reached). A missing root is 0.
pub fn dir_bytes(root: &Path, max_entries: usize) -> (u64, bool) {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return (0, true);
    };
    let dev = meta.dev();
    let mut total = meta.blocks().saturating_mul(512);
    let mut seen = 1usize;
    let mut stack: Vec<PathBuf> = Vec::new();
    if meta.is_dir() {
        stack.push(root.to_path_buf());
    }
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if seen >= max_entries {
                return (total, false);
            }
            seen += 1;
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.dev() != dev {
                continue;
            }
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (total, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_stops_at_the_bound() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("sub")).expect("mkdir");
        std::fs::write(d.path().join("sub/a"), vec![1u8; 1 << 20]).expect("write");
        std::fs::write(d.path().join("b"), vec![1u8; 1 << 20]).expect("write");
        let (bytes, complete) = dir_bytes(d.path(), 1000);
        assert!(complete);
        assert!(bytes >= 2 << 20, "{bytes}");
        let (_, complete) = dir_bytes(d.path(), 2);
        assert!(!complete);
        assert_eq!(dir_bytes(&d.path().join("missing"), 10), (0, true));
    }
}
