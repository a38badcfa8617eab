//! What the driver reads from /proc and how it signals a container's process group.

use super::*;

/// Reads one entry of this process's auxiliary vector.
pub(super) fn auxv_value(key: u64) -> Option<u64> {
    const W: usize = std::mem::size_of::<usize>();
    let data = std::fs::read("/proc/self/auxv").ok()?;
    for pair in data.chunks_exact(2 * W) {
        let k = usize::from_ne_bytes(pair[..W].try_into().ok()?) as u64;
        let v = usize::from_ne_bytes(pair[W..].try_into().ok()?) as u64;
        if k == key {
            return Some(v);
        }
        if k == 0 {
            break;
        }
    }
    None
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from its last `)`.
pub(super) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3.
    let num = |field: usize| -> Option<u64> { f.get(field - 3)?.parse().ok() };
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(5 - 3)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        cutime: num(16)?,
        cstime: num(17)?,
        start_time: num(22)?,
        rss_pages: num(24)?,
    })
}

pub(super) fn read_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process `pid` if it is still the one recorded (same start time) and
/// has not finished.
pub(super) fn live_process(pid: u32, start_time: Option<u64>) -> Option<ProcStat> {
    let st = read_stat(pid)?;
    if !st.is_live() {
        return None;
    }
    match start_time {
        Some(t) if t != st.start_time => None,
        _ => Some(st),
    }
}

/// `exit_code` of an exit status the way shells and Docker report it.
pub(super) fn exit_code_of(status: ExitStatus) -> Option<i64> {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
}

/// Sends `sig` to the container process `pid` and its group, after checking
/// that `pid` is still the recorded process. `Ok(false)` when it is gone.
pub(super) fn signal_container(
    pid: u32,
    start_time: Option<u64>,
    sig: Signal,
) -> Result<bool, Errno> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(false);
    };
    // A corrupt state file must never turn a stop into a signal to init or
    // to the daemon itself.
    if raw <= 1 || Pid::from_raw(raw) == getpid() {
        return Ok(false);
    }
    let Some(st) = live_process(pid, start_time) else {
        return Ok(false);
    };
    let result = if st.pgrp == raw && Pid::from_raw(st.pgrp) != getpgrp() {
        killpg(Pid::from_raw(raw), sig)
    } else {
        // It left the group it was started in: reach at least the process.
        kill(Pid::from_raw(raw), sig)
    };
    match result {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Kills what is left of a process group whose leader has exited. Its pid
/// cannot be handed out again while the group has members, so this reaches
/// only the leader's leftovers.
pub(super) fn kill_leftovers(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 || Pid::from_raw(raw) == getpgrp() {
        return;
    }
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
}
