//! The host's own CPU time and memory in use, from /proc.

/// Busy CPU time of the whole host (every CPU; idle and iowait left out),
/// in nanoseconds, from the `cpu` line of `/proc/stat`.
pub(super) fn busy_cpu_nanos(stat: &str, clk_tck: u64) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user and nice, so it is not added.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    let busy = total.checked_sub(idle)?;
    Some(busy.saturating_mul(1_000_000_000 / clk_tck.max(1)))
}

/// Memory in use as `free` counts it: MemTotal less MemAvailable, in bytes.
pub(super) fn memory_in_use(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total = kib("MemTotal")?;
    let avail = kib("MemAvailable")?;
    Some(total.saturating_sub(avail).saturating_mul(1024))
}

/// The host's (busy CPU nanoseconds, memory bytes) now.
pub(super) fn read(clk_tck: u64) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mem = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some((busy_cpu_nanos(&stat, clk_tck)?, memory_in_use(&mem)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_leaves_out_idle_iowait_and_guest() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 40 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        // 100+5+50+1+2+3 = 161 ticks of 10 ms.
        assert_eq!(busy_cpu_nanos(stat, 100), Some(1_610_000_000));
        assert_eq!(busy_cpu_nanos("cpu0 1 2 3 4\n", 100), None);
        assert_eq!(busy_cpu_nanos("cpu  1 x 3 4\n", 100), None);
    }

    #[test]
    fn memory_in_use_is_total_less_available() {
        let m = "MemTotal:        2000 kB\nMemFree:          100 kB\nMemAvailable:    1500 kB\n";
        assert_eq!(memory_in_use(m), Some(500 * 1024));
        assert_eq!(memory_in_use("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn this_host_reads() {
        let (cpu, mem) = read(100).expect("/proc is readable on Linux");
        assert!(cpu > 0 && mem > 0);
    }
}
