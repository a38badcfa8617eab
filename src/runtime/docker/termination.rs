//! Reading an exited container's termination message from the host: the
//! file the agent bind-mounted for it, or its json-file log's tail.

use std::collections::BTreeMap;

/// An exited container's termination message: the file bind-mounted for
/// it (its host path in a label), or, when it asked for that, failed and
/// left the file empty, the tail of its json-file log. At most 4 KiB; a
/// file that cannot be read gives none.
pub(super) fn termination_message(
    labels: &BTreeMap<String, String>,
    exit_code: Option<i64>,
    log_path: Option<&str>,
) -> Option<String> {
    use crate::resource::types::MAX_TERMINATION_MESSAGE_BYTES;
    let file = labels.get(crate::runtime::TERMINATION_LOG_LABEL)?;
    let text = tail_of(
        std::path::Path::new(file),
        MAX_TERMINATION_MESSAGE_BYTES,
        false,
    )
    .filter(|t| !t.is_empty());
    if text.is_some() {
        return text;
    }
    let fallback = labels.contains_key(crate::runtime::TERMINATION_FALLBACK_LABEL);
    if !fallback || exit_code == Some(0) {
        return None;
    }
    // As the kubelet: the last 80 lines, at most 2 KiB of them.
    let raw = tail_of(std::path::Path::new(log_path?), 64 * 1024, true)?;
    let lines: Vec<String> = raw
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("log").and_then(|s| s.as_str()).map(str::to_string)
        })
        .collect();
    let start = lines.len().saturating_sub(80);
    let mut text: String = lines[start..].concat();
    if text.len() > 2048 {
        let mut cut = text.len() - 2048;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text.split_off(cut);
    }
    (!text.is_empty()).then_some(text)
}

/// The first (or, with `from_end`, the last) `max` bytes of a file, as
/// text (invalid UTF-8 replaced).
fn tail_of(path: &std::path::Path, max: usize, from_end: bool) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    if from_end {
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(max as u64)))
            .ok()?;
    }
    let mut buf = Vec::with_capacity(max.min(64 * 1024));
    f.take(max as u64).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}
