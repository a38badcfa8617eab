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

impl From<::procfs::process::Stat> for ProcStat {
    fn from(st: ::procfs::process::Stat) -> ProcStat {
        // The kernel prints these as unsigned; the crate's types are wider.
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        ProcStat {
            state: st.state,
            pgrp: st.pgrp,
            utime: st.utime,
            stime: st.stime,
            cutime: unsigned(st.cutime),
            cstime: unsigned(st.cstime),
            threads: unsigned(st.num_threads),
            start_time: st.starttime,
            vsize: st.vsize,
            rss_pages: st.rss,
        }
    }
}

/// This process's own `/proc/self/stat`.
pub fn self_stat() -> Option<ProcStat> {
    let me = ::procfs::process::Process::myself().ok()?;
    Some(me.stat().ok()?.into())
}

/// `/proc/<pid>/stat`, or `None` when the process is gone (or unreadable).
pub(super) fn read_stat(pid: u32) -> Option<ProcStat> {
    let p = ::procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    Some(p.stat().ok()?.into())
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
