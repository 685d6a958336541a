//! Reading the current process's figures from Linux `/proc`: the files
//! [`ProcessCollector`](super::process::ProcessCollector) reads at scrape
//! time, and their parsers. Nothing here renders; a missing or garbled
//! file leaves its figures `None`, never a panic.

use std::path::Path;

/// Clock ticks per second of the time fields in `/proc/<pid>/stat`.
///
/// The kernel reports those fields in `USER_HZ` units, not in the kernel's
/// internal `HZ`: `USER_HZ` is part of the userspace ABI and is 100 on every
/// mainstream Linux architecture (it is what `sysconf(_SC_CLK_TCK)` returns).
/// `std` cannot call `sysconf` and the workspace has no `libc` dependency, so
/// the constant is used rather than adding a dependency for one call.
const USER_HZ: f64 = 100.0;

/// One reading of the process figures; `None` where a source was missing.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<Limit>,
    pub(crate) virtual_bytes: Option<u64>,
    pub(crate) resident_bytes: Option<u64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) threads: Option<u64>,
}

/// A resource limit as written in `/proc/<pid>/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Value(u64),
    Unlimited,
}

/// The fields of `/proc/<pid>/stat` that are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 14: user-mode CPU time, in clock ticks.
    utime: u64,
    /// Field 15: kernel-mode CPU time, in clock ticks.
    stime: u64,
    /// Field 20.
    num_threads: u64,
    /// Field 22: start time in clock ticks after boot.
    starttime: u64,
    /// Field 23: virtual memory size in bytes.
    vsize: u64,
}

impl ProcessStats {
    pub(crate) fn read(proc_root: &Path) -> ProcessStats {
        let read = |rel: &str| std::fs::read_to_string(proc_root.join(rel)).ok();
        let stat = read("self/stat").as_deref().and_then(parse_stat);
        let status = read("self/status");
        let status_field = |key: &str| status.as_deref().and_then(|s| status_number(s, key));
        let btime = read("stat").as_deref().and_then(parse_btime);
        ProcessStats {
            cpu_seconds: stat.map(|s| s.utime.saturating_add(s.stime) as f64 / USER_HZ),
            open_fds: count_entries(&proc_root.join("self/fd")),
            max_fds: read("self/limits")
                .as_deref()
                .and_then(parse_max_open_files),
            // stat's vsize is exact bytes (what client_golang reports);
            // status's VmSize is the same figure in kB.
            virtual_bytes: stat
                .map(|s| s.vsize)
                .or_else(|| status_field("VmSize").map(kib)),
            // VmRSS is already in kB, which avoids needing the page size
            // that stat's rss field (in pages) would.
            resident_bytes: status_field("VmRSS").map(kib),
            start_time_seconds: stat
                .zip(btime)
                .map(|(s, btime)| btime as f64 + s.starttime as f64 / USER_HZ),
            threads: status_field("Threads").or(stat.map(|s| s.num_threads)),
        }
    }
}

fn kib(v: u64) -> u64 {
    v.saturating_mul(1024)
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted from
/// the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest[0] is field 3 (state), so field n is rest[n - 3].
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        num_threads: field(20)?,
        starttime: field(22)?,
        vsize: field(23)?,
    })
}

/// The leading number of a `Key:\tvalue [kB]` line of `/proc/<pid>/status`.
pub(crate) fn status_number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Boot time in seconds since the Unix epoch: the `btime` line of `/proc/stat`.
fn parse_btime(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "btime" {
            return None;
        }
        words.next()?.parse().ok()
    })
}

/// The soft limit on the "Max open files" line of `/proc/<pid>/limits`.
pub(crate) fn parse_max_open_files(text: &str) -> Option<Limit> {
    text.lines().find_map(|line| {
        let soft = line
            .strip_prefix("Max open files")?
            .split_whitespace()
            .next()?;
        if soft == "unlimited" {
            Some(Limit::Unlimited)
        } else {
            soft.parse().ok().map(Limit::Value)
        }
    })
}

/// Number of entries in a directory (for `/proc/self/fd`: the open file
/// descriptors, including the one used to read the directory, as in
/// client_golang).
fn count_entries(dir: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    // A descriptor closed while listing is simply not counted.
    Some(entries.filter(Result::is_ok).count() as u64)
}
