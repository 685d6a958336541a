//! The standard Prometheus `process_*` metrics, read from Linux `/proc` at
//! scrape time.
//!
//! Nothing here runs on a request path: [`ProcessCollector`] reads a handful
//! of small `/proc/self` files each time the registry is rendered or
//! snapshotted, and keeps no state between scrapes.

use super::procfs::{Limit, ProcessStats};
#[cfg(test)]
use super::procfs::{parse_max_open_files, parse_stat, status_number};
use std::path::PathBuf;
use vitals::{Collector, FamilyInfo, Labels, MetricKind, Unit, Visitor};

/// Exports the standard Prometheus process metrics of the current process,
/// with the names, types and help texts of the Go client (`client_golang`):
///
/// | name | type | value |
/// |---|---|---|
/// | `process_cpu_seconds_total` | counter | user + system CPU time, in seconds |
/// | `process_open_fds` | gauge | entries of `/proc/self/fd` |
/// | `process_max_fds` | gauge | soft "Max open files" limit (`+Inf` when unlimited) |
/// | `process_virtual_memory_bytes` | gauge | virtual memory size |
/// | `process_resident_memory_bytes` | gauge | resident set size (`VmRSS`) |
/// | `process_start_time_seconds` | gauge | start time since the Unix epoch |
/// | `process_threads` | gauge | number of OS threads |
///
/// Values are read from `/proc` on every scrape, never on a hot path. On
/// targets other than Linux and Android, or when a file cannot be read or
/// parsed, the families that depend on it are left out; collection never
/// panics. Register it once with
/// [`Registry::register_collector`](vitals::Registry::register_collector).
#[derive(Debug, Clone)]
pub struct ProcessCollector {
    /// Where procfs is mounted; `/proc` except in tests.
    proc_root: PathBuf,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessCollector {
    /// A collector for the current process, reading `/proc/self`.
    pub fn new() -> Self {
        ProcessCollector {
            proc_root: PathBuf::from("/proc"),
        }
    }

    /// A collector reading a procfs-like tree rooted at `root` (tests).
    #[cfg(test)]
    fn with_proc_root(root: impl Into<PathBuf>) -> Self {
        ProcessCollector {
            proc_root: root.into(),
        }
    }
}

impl Collector for ProcessCollector {
    fn collect(&self, visitor: &mut dyn Visitor) {
        // Other systems may mount something at /proc, but not this layout.
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return;
        }
        render(&ProcessStats::read(&self.proc_root), visitor);
    }
}

/// Writes the families of `stats` that were read (the others are left out).
fn render(stats: &ProcessStats, visitor: &mut dyn Visitor) {
    let none = Labels::empty();
    if let Some(v) = stats.cpu_seconds {
        float_counter_family(
            visitor,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
        );
        visitor.float_counter(&none, v);
    }
    if let Some(v) = stats.open_fds {
        gauge_family(
            visitor,
            "process_open_fds",
            "Number of open file descriptors.",
            None,
        );
        visitor.gauge(&none, saturating_i64(v));
    }
    if let Some(v) = stats.max_fds {
        gauge_family(
            visitor,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            None,
        );
        match v {
            Limit::Value(v) => visitor.gauge(&none, saturating_i64(v)),
            Limit::Unlimited => visitor.float_gauge(&none, f64::INFINITY),
        }
    }
    if let Some(v) = stats.virtual_bytes {
        gauge_family(
            visitor,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Some(Unit::Bytes),
        );
        visitor.gauge(&none, saturating_i64(v));
    }
    if let Some(v) = stats.resident_bytes {
        gauge_family(
            visitor,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Some(Unit::Bytes),
        );
        visitor.gauge(&none, saturating_i64(v));
    }
    if let Some(v) = stats.start_time_seconds {
        gauge_family(
            visitor,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Some(Unit::Seconds),
        );
        visitor.float_gauge(&none, v);
    }
    if let Some(v) = stats.threads {
        gauge_family(
            visitor,
            "process_threads",
            "Number of OS threads in the process.",
            None,
        );
        visitor.gauge(&none, saturating_i64(v));
    }
}

fn gauge_family(visitor: &mut dyn Visitor, name: &str, help: &str, unit: Option<Unit>) {
    visitor.family(&FamilyInfo {
        name,
        help,
        unit,
        kind: MetricKind::Gauge,
    });
}

/// Starts a counter family whose samples are fractional (`float_counter`):
/// `name` is the family name without `_total` (the encoders add it) and
/// ends with `_seconds`, matching the unit OpenMetrics requires.
pub(crate) fn float_counter_family(visitor: &mut dyn Visitor, name: &str, help: &str) {
    debug_assert!(name.ends_with("_seconds"), "{name}");
    visitor.family(&FamilyInfo {
        name,
        help,
        unit: Some(Unit::Seconds),
        kind: MetricKind::Counter,
    });
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    use vitals::{Format, Registry};

    fn render(collector: ProcessCollector, format: Format) -> String {
        let registry = Registry::new();
        registry.register_collector(collector);
        String::from_utf8(registry.render(format)).expect("exposition is UTF-8")
    }

    /// The value of the unlabelled sample `name` in Prometheus text.
    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let v = line.strip_prefix(name)?.strip_prefix(' ')?;
            match v {
                "+Inf" => Some(f64::INFINITY),
                v => v.parse().ok(),
            }
        })
    }

    fn scrape(name: &str) -> f64 {
        let text = render(ProcessCollector::new(), Format::Prometheus);
        value(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    /// Retries `attempt` a few times: other tests in this process open and
    /// close files and threads concurrently, which can mask a change.
    fn eventually(what: &str, mut attempt: impl FnMut() -> Result<(), String>) {
        let mut last = String::new();
        for _ in 0..20 {
            match attempt() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what}: {last}");
    }

    #[test]
    fn emits_every_family_with_the_standard_types() {
        let text = render(ProcessCollector::new(), Format::Prometheus);
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_start_time_seconds", "gauge"),
            ("process_threads", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
            assert!(value(&text, name).is_some(), "{name}:\n{text}");
        }
        assert!(text.contains(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        ));
        let om = render(ProcessCollector::new(), Format::OpenMetrics);
        assert!(
            om.contains("# UNIT process_resident_memory_bytes bytes\n"),
            "{om}"
        );
        assert!(
            om.contains("# UNIT process_start_time_seconds seconds\n"),
            "{om}"
        );
        assert!(om.contains("# TYPE process_cpu_seconds counter\n"), "{om}");
        assert!(om.contains("# UNIT process_cpu_seconds seconds\n"), "{om}");
    }

    #[test]
    fn threads_are_counted() {
        assert!(scrape("process_threads") >= 1.0);
        const N: usize = 16;
        eventually(
            "process_threads did not grow by the spawned threads",
            || {
                let before = scrape("process_threads");
                let (tx, rx) = mpsc::channel::<()>();
                let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
                let (ready_tx, ready_rx) = mpsc::channel::<()>();
                let handles: Vec<_> = (0..N)
                    .map(|_| {
                        let rx = rx.clone();
                        let ready = ready_tx.clone();
                        std::thread::spawn(move || {
                            let _ = ready.send(());
                            // Blocks until the sender is dropped.
                            let _ = rx.lock().map(|rx| rx.recv());
                        })
                    })
                    .collect();
                for _ in 0..N {
                    ready_rx.recv().expect("thread started");
                }
                let during = scrape("process_threads");
                drop(tx);
                for h in handles {
                    h.join().expect("thread ran");
                }
                if during >= before + N as f64 {
                    Ok(())
                } else {
                    Err(format!("before {before}, with {N} more threads {during}"))
                }
            },
        );
    }

    #[test]
    fn open_fds_are_counted() {
        let dir = std::env::temp_dir().join(format!("vitals-process-fds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        eventually("process_open_fds did not grow by 3", || {
            let before = scrape("process_open_fds");
            let files: Vec<_> = (0..3)
                .map(|i| std::fs::File::create(dir.join(format!("f{i}"))).expect("create file"))
                .collect();
            let during = scrape("process_open_fds");
            drop(files);
            if during >= before + 3.0 {
                Ok(())
            } else {
                Err(format!("before {before}, with 3 files open {during}"))
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn max_fds_is_the_soft_limit() {
        let reported = scrape("process_max_fds");
        // Independently: the limits file read with a different parser...
        let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line");
        // "Max open files  <soft>  <hard>  files": the 4th word is the soft limit.
        let soft = line.split_whitespace().nth(3).expect("soft limit");
        let expected = if soft == "unlimited" {
            f64::INFINITY
        } else {
            soft.parse::<f64>().expect("number")
        };
        assert_eq!(reported, expected, "{line}");
        // ...and by a shell, which inherits the soft limit.
        if let Ok(out) = Command::new("sh").args(["-c", "ulimit -Sn"]).output() {
            let shell = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if let Ok(n) = shell.parse::<f64>() {
                assert_eq!(reported, n);
            }
        }
    }

    #[test]
    fn memory_cpu_and_start_time_are_plausible() {
        let resident = scrape("process_resident_memory_bytes");
        let virt = scrape("process_virtual_memory_bytes");
        assert!(resident > 1e6, "resident {resident}");
        assert!(virt >= resident, "virtual {virt} < resident {resident}");

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let start = scrape("process_start_time_seconds");
        // btime is whole seconds, so allow a second of rounding.
        assert!(start <= now + 1.0, "start {start} > now {now}");
        assert!(start > now - 86_400.0, "start {start} more than a day ago");

        let before = scrape("process_cpu_seconds_total");
        assert!(before >= 0.0);
        eventually(
            "process_cpu_seconds_total did not grow while spinning",
            || {
                let spin = Instant::now();
                let mut x = 0u64;
                while spin.elapsed() < Duration::from_millis(100) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                let after = scrape("process_cpu_seconds_total");
                if after > before {
                    Ok(())
                } else {
                    Err(format!("before {before}, after {after}"))
                }
            },
        );
    }

    #[test]
    fn parses_a_fake_proc_tree() {
        let root = std::env::temp_dir().join(format!("vitals-fake-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("self/fd")).expect("fake proc");
        for fd in ["0", "1", "2", "7"] {
            std::fs::write(root.join("self/fd").join(fd), "").expect("fake fd");
        }
        // A command name with spaces and parentheses must not shift fields.
        std::fs::write(
            root.join("self/stat"),
            "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
             250 125 0 0 20 0 9 0 123456 987654321 2000 18446744073709551615\n",
        )
        .expect("stat");
        std::fs::write(
            root.join("self/status"),
            "Name:\tx\nVmSize:\t  964520 kB\nVmRSS:\t    8000 kB\nThreads:\t7\n",
        )
        .expect("status");
        std::fs::write(
            root.join("stat"),
            "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n",
        )
        .expect("proc stat");
        std::fs::write(
            root.join("self/limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max processes             63474                63474                processes \n\
             Max open files            unlimited            unlimited            files     \n",
        )
        .expect("limits");

        let stats = ProcessStats::read(&root);
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: Some(3.75),
                open_fds: Some(4),
                max_fds: Some(Limit::Unlimited),
                virtual_bytes: Some(987_654_321),
                resident_bytes: Some(8_000 * 1024),
                start_time_seconds: Some(1_700_000_000.0 + 1234.56),
                threads: Some(7),
            }
        );
        let text = render(ProcessCollector::with_proc_root(&root), Format::Prometheus);
        assert!(text.contains("process_cpu_seconds_total 3.75\n"), "{text}");
        assert!(text.contains("process_max_fds +Inf\n"), "{text}");
        assert!(
            text.contains("process_resident_memory_bytes 8192000\n"),
            "{text}"
        );
        assert!(
            text.contains("process_start_time_seconds 1700001234.56\n"),
            "{text}"
        );

        // Without status, the stat fields stand in where they can.
        std::fs::remove_file(root.join("self/status")).expect("rm status");
        let stats = ProcessStats::read(&root);
        assert_eq!(stats.threads, Some(9));
        assert_eq!(stats.virtual_bytes, Some(987_654_321));
        assert_eq!(stats.resident_bytes, None);

        // Garbage never panics; it only removes families.
        std::fs::write(root.join("self/stat"), "4242 (x) S 1 2 nonsense").expect("stat");
        std::fs::write(root.join("self/limits"), "Max open files\n").expect("limits");
        std::fs::write(root.join("stat"), "btime\n").expect("proc stat");
        let stats = ProcessStats::read(&root);
        assert_eq!(stats.cpu_seconds, None);
        assert_eq!(stats.max_fds, None);
        assert_eq!(stats.start_time_seconds, None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn unreadable_proc_emits_nothing() {
        let text = render(
            ProcessCollector::with_proc_root("/nonexistent/vitals/proc"),
            Format::Prometheus,
        );
        assert!(!text.contains("process_"), "{text}");
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x"), None);
        assert_eq!(status_number("Threads:\n", "Threads"), None);
        assert_eq!(parse_max_open_files("Max open files  -1 x files"), None);
        assert_eq!(
            parse_max_open_files("Max open files  1024  4096  files"),
            Some(Limit::Value(1024))
        );
    }

    /// promtool lint findings expected for this module's output: none.
    pub(crate) const EXPECTED_LINT: &[&str] = &[];

    /// Checks `text` (Prometheus format) with `promtool check metrics`:
    /// exit 0, or 3 with only findings listed in `accepted`. Without
    /// promtool the test fails, or is skipped under the rule of
    /// `vitals_test_support::external`.
    pub(crate) fn promtool_check(text: &[u8], accepted: &[&str]) {
        let Some(report) = vitals_test_support::external::promtool_check_metrics(text) else {
            return;
        };
        let shown = String::from_utf8_lossy(text);
        for line in report.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                accepted.iter().any(|a| line.contains(a)),
                "unexpected promtool finding: {line}\n{shown}"
            );
        }
    }

    /// Parses `text` (OpenMetrics) with prometheus_client's OpenMetrics
    /// parser and returns `name type value` lines. Without python3 and
    /// prometheus_client the test fails, or is skipped (`None`) under the
    /// rule of `vitals_test_support::external`.
    pub(crate) fn python_openmetrics(text: &[u8]) -> Option<String> {
        const SCRIPT: &str = concat!(
            "import sys\n",
            "from prometheus_client.openmetrics.parser import text_string_to_metric_families\n",
            "for f in text_string_to_metric_families(sys.stdin.read()):\n",
            "    for s in f.samples:\n",
            "        print(f.type, s.name, s.value)\n",
        );
        if !vitals_test_support::external::require_python_module(
            "prometheus_client",
            "pip install prometheus_client (scripts/test installs it)",
        ) {
            return None;
        }
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(text).expect("write to python3");
        }
        let out = child.wait_with_output().expect("python3 ran");
        assert!(
            out.status.success(),
            "prometheus_client rejected the exposition:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(text)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let text = render(ProcessCollector::new(), Format::Prometheus);
        assert!(text.contains("process_threads"), "{text}");
        promtool_check(text.as_bytes(), EXPECTED_LINT);
    }

    #[test]
    fn openmetrics_parser_accepts_the_exposition() {
        let om = render(ProcessCollector::new(), Format::OpenMetrics);
        let Some(parsed) = python_openmetrics(om.as_bytes()) else {
            return;
        };
        for expected in [
            "counter process_cpu_seconds_total ",
            "gauge process_open_fds ",
            "gauge process_max_fds ",
            "gauge process_virtual_memory_bytes ",
            "gauge process_resident_memory_bytes ",
            "gauge process_start_time_seconds ",
            "gauge process_threads ",
        ] {
            assert!(
                parsed.lines().any(|l| l.starts_with(expected)),
                "{expected:?} missing from\n{parsed}"
            );
        }
    }
}
