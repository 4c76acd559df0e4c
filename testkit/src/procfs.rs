//! What `/proc` says about a process: memory, CPU time, whether it has
//! exited. Linux only; on a read failure the figures are zero.

use std::fs;
use std::time::Duration;

/// A process: by pid, or this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    This,
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::This => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// A `kB` field of a `/proc` text file, in bytes.
fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `(VmRSS, VmHWM)` of `pid` in bytes: resident memory now and its peak.
pub fn rss(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(Proc::Pid(pid).path("status")).unwrap_or_default();
    (kib_field(&status, "VmRSS:"), kib_field(&status, "VmHWM:"))
}

/// Reset `pid`'s VmHWM to its current RSS (Linux 4.0+); false if refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(Proc::Pid(pid).path("clear_refs"), "5").is_ok()
}

/// `(Rss, Anonymous)` of `pid` in bytes from /proc/PID/smaps_rollup:
/// resident memory and its anonymous part (heap, stacks; the rest is
/// file-backed: the binary's pages, mapped files).
pub fn resident(pid: u32) -> (u64, u64) {
    let rollup = fs::read_to_string(Proc::Pid(pid).path("smaps_rollup")).unwrap_or_default();
    (kib_field(&rollup, "Rss:"), kib_field(&rollup, "Anonymous:"))
}

/// Memory available for new work (`MemAvailable`), in bytes.
pub fn mem_available() -> u64 {
    kib_field(
        &fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        "MemAvailable:",
    )
}

/// User + system CPU time of `p`, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(p: Proc) -> u64 {
    let stat = fs::read_to_string(p.path("stat")).unwrap_or_default();
    // After the command name (which may hold spaces): state, ppid, …;
    // utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// User + system CPU time of `p` (USER_HZ = 100 assumed).
pub fn cpu_time(p: Proc) -> Duration {
    Duration::from_millis(cpu_ticks(p) * 10)
}

/// Whether `pid` has exited (a zombie counts: nobody may have reaped it).
pub fn exited(pid: u32) -> bool {
    match fs::read_to_string(Proc::Pid(pid).path("stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The 1/5/15-minute load averages: other work on this machine.
pub fn loadavg() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_runs() {
        let (rss_now, peak) = rss(std::process::id());
        assert!(rss_now > 0 && peak >= rss_now, "{rss_now} {peak}");
        assert!(!exited(std::process::id()));
        assert!(mem_available() > 0);
        // Burn some CPU so the tick count moves past zero.
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_ticks(Proc::This) == 0 && t0.elapsed() < Duration::from_secs(5) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_time(Proc::This) > Duration::ZERO);
    }

    #[test]
    fn a_reaped_child_has_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(exited(pid));
    }
}
