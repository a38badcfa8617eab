//! What the driver reads from /proc and how it signals a container's process group.

use super::*;

/// Clock ticks per second, the unit of /proc's times (`sysconf`; Linux's
/// fixed 100 if it cannot be read).
pub fn clock_ticks_per_sec() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

/// The memory page size in bytes (`sysconf`; 4096 if it cannot be read).
pub fn page_size_bytes() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(4096)
}

/// This process's own `/proc/self/stat`.
pub fn self_stat() -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
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
        threads: num(20)?,
        start_time: num(22)?,
        vsize: num(23)?,
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
