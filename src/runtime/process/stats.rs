//! CPU time and memory of a container's process group, from /proc.

use super::*;

/// CPU time and resident memory of every process in the container's group,
/// which is as close to a container's cgroup as plain processes get.
pub(super) fn group_stats(
    pid: u32,
    start_time: Option<u64>,
    clk_tck: u64,
    page_size: u64,
) -> Stats {
    let Some(leader) = live_process(pid, start_time) else {
        return Stats::default();
    };
    let tick_nanos = 1_000_000_000 / clk_tck.max(1);
    let mut acc = (0u64, 0u64);
    let mut add = |st: &ProcStat| {
        // Time of reaped children is in their parent's cutime/cstime.
        let ticks = st.utime + st.stime + st.cutime + st.cstime;
        acc.0 = acc.0.saturating_add(ticks.saturating_mul(tick_nanos));
        acc.1 = acc.1.saturating_add(st.rss_pages.saturating_mul(page_size));
    };
    let pgid = i32::try_from(pid).ok().filter(|&p| p == leader.pgrp);
    match (pgid, std::fs::read_dir("/proc")) {
        (Some(pgid), Ok(entries)) => {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(other) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(st) = read_stat(other)
                    && st.pgrp == pgid
                {
                    add(&st);
                }
            }
        }
        // It left its group: only the process itself can be told apart.
        _ => add(&leader),
    }
    Stats {
        cpu_total_nanos: acc.0,
        memory_bytes: acc.1,
    }
}
