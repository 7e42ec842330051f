//! CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status`.

use std::fs;

/// A process's resource use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time of all its threads, in microseconds (kernel tick resolution,
    /// usually 10 ms).
    pub cpu_us: u64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Highest resident memory so far, KiB.
    pub hwm_kib: u64,
    /// Minor page faults of all its threads so far: memory it keeps handing back to the OS
    /// and faulting in again shows up here.
    pub minor_faults: u64,
}

/// Reads the sample of process `pid` (`"self"` for this process). `None` when it is gone.
pub fn sample(pid: &str) -> Option<Sample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Sample {
        cpu_us: cpu_us_from_stat(&stat, ticks_per_second())?,
        minor_faults: stat_field(&stat, 10)?,
        rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: kib_field(&status, "VmHWM:").unwrap_or(0),
    })
}

/// The 1-minute load average of the machine: how busy it was besides the benchmark
/// (a quiet 2-core machine running one benchmark shows about 2).
pub fn load_average() -> Option<f64> {
    let s = fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime (fields 14 and 15) in microseconds.
fn cpu_us_from_stat(stat: &str, ticks_per_second: u64) -> Option<u64> {
    let utime = stat_field(stat, 14)?;
    let stime = stat_field(stat, 15)?;
    Some((utime + stime) * 1_000_000 / ticks_per_second)
}

/// Numeric field `n` (counted from 1, as in proc(5)) of a stat line, n >= 3. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_an_awkward_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_us_from_stat(stat, 100), Some(3_000_000));
        assert_eq!(stat_field(stat, 10), Some(100)); // minflt
        assert_eq!(stat_field(stat, 2), None);
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1024));
        assert_eq!(kib_field(status, "VmHWM:"), Some(2048));
        assert_eq!(kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_the_load_average() {
        assert!(load_average().is_some_and(|l| l >= 0.0));
    }

    #[test]
    fn samples_this_process() {
        let s = sample("self").expect("/proc/self is readable");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
