//! Tokio runtime metrics, read from `Handle::metrics()` at scrape time.
//!
//! Only the parts of `tokio::runtime::RuntimeMetrics` that are stable (no
//! `--cfg tokio_unstable`) are used. Per-worker busy time and park counts
//! need 64-bit atomics and are left out on targets without them.

use super::process::float_counter_family;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, RuntimeMetrics};
use vitals::{Collector, FamilyInfo, Labels, MetricKind, Unit, Visitor};

/// The shortest window over which `tokio_runtime_busy_ratio` is computed.
///
/// Tokio adds a worker's busy time when the worker parks or runs its
/// maintenance, so very short windows mostly measure that lag; scrapes closer
/// together than this repeat the previous ratio.
const MIN_RATIO_WINDOW: Duration = Duration::from_millis(100);

/// Exports the figures of one tokio runtime at scrape time:
///
/// | name | type | value |
/// |---|---|---|
/// | `tokio_runtime_workers` | gauge | worker threads |
/// | `tokio_runtime_alive_tasks` | gauge | tasks spawned and not yet finished |
/// | `tokio_runtime_global_queue_depth` | gauge | tasks waiting in the global queue |
/// | `tokio_runtime_worker_busy_seconds_total{worker}` | counter | time each worker spent running tasks |
/// | `tokio_runtime_worker_parks_total{worker}` | counter | times each worker parked (went idle) |
/// | `tokio_runtime_busy_ratio` | gauge | busy share of all workers since the previous scrape, `0..=1` |
///
/// The per-worker families need 64-bit atomics (tokio's
/// `target_has_atomic = "64"` gate).
///
/// `tokio_runtime_busy_ratio` is the busy time added across workers divided
/// by (wall time × workers) since the previous scrape (or since the collector
/// was created), clamped to `0..=1`. It is shared by every reader of the
/// registry, so two scrapers each see the ratio since the other's last
/// scrape; it is omitted until 100 ms (`MIN_RATIO_WINDOW`) have passed.
///
/// Register one collector per runtime in a registry: two would emit the same
/// family names.
#[derive(Debug)]
pub struct RuntimeCollector {
    handle: Handle,
    /// `worker` label name, and the values `"0"`, `"1"`, … (the number of
    /// workers is fixed for a runtime's lifetime).
    worker_label: [Box<str>; 1],
    worker_values: Vec<Box<str>>,
    /// The reading the busy ratio is computed against.
    baseline: Mutex<BusyBaseline>,
}

/// Total busy time at one instant, and the last ratio computed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BusyBaseline {
    at: Instant,
    busy: Duration,
    ratio: Option<f64>,
}

impl BusyBaseline {
    /// The busy ratio between this baseline and a reading of `busy` at `now`
    /// for `workers` workers; moves the baseline to that reading unless the
    /// window is shorter than [`MIN_RATIO_WINDOW`].
    fn advance(&mut self, now: Instant, busy: Duration, workers: usize) -> Option<f64> {
        let elapsed = now.saturating_duration_since(self.at);
        if elapsed < MIN_RATIO_WINDOW {
            return self.ratio;
        }
        let capacity = elapsed.as_secs_f64() * workers as f64;
        let added = busy.saturating_sub(self.busy).as_secs_f64();
        let ratio = if capacity > 0.0 {
            (added / capacity).clamp(0.0, 1.0)
        } else {
            0.0
        };
        *self = BusyBaseline {
            at: now,
            busy,
            ratio: Some(ratio),
        };
        Some(ratio)
    }
}

impl RuntimeCollector {
    /// A collector for the runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        let metrics = handle.metrics();
        let workers = metrics.num_workers();
        let baseline = BusyBaseline {
            at: Instant::now(),
            busy: total_busy(&metrics).unwrap_or_default(),
            ratio: None,
        };
        RuntimeCollector {
            handle,
            worker_label: [Box::from("worker")],
            worker_values: (0..workers)
                .map(|w| w.to_string().into_boxed_str())
                .collect(),
            baseline: Mutex::new(baseline),
        }
    }

    /// A collector for the runtime the caller is running in, or `None`
    /// outside a tokio runtime (see `Handle::try_current`).
    pub fn current() -> Option<Self> {
        Handle::try_current().ok().map(Self::new)
    }

    fn worker_labels(&self, worker: usize) -> Option<Labels<'_>> {
        let value = self.worker_values.get(worker..=worker)?;
        Some(Labels::new(&self.worker_label, value))
    }
}

impl Collector for RuntimeCollector {
    fn collect(&self, visitor: &mut dyn Visitor) {
        let metrics = self.handle.metrics();
        let none = Labels::empty();
        let workers = metrics.num_workers();
        gauge_family(
            visitor,
            "tokio_runtime_workers",
            "Number of worker threads used by the tokio runtime.",
            None,
        );
        visitor.gauge(&none, saturating_i64(workers));
        gauge_family(
            visitor,
            "tokio_runtime_alive_tasks",
            "Number of tasks spawned on the tokio runtime that have not finished.",
            None,
        );
        visitor.gauge(&none, saturating_i64(metrics.num_alive_tasks()));
        gauge_family(
            visitor,
            "tokio_runtime_global_queue_depth",
            "Number of tasks waiting in the tokio runtime's global queue.",
            None,
        );
        visitor.gauge(&none, saturating_i64(metrics.global_queue_depth()));
        self.collect_workers(&metrics, visitor);
    }
}

#[cfg(target_has_atomic = "64")]
impl RuntimeCollector {
    fn collect_workers(&self, metrics: &RuntimeMetrics, visitor: &mut dyn Visitor) {
        // `worker_values` has one entry per worker; tokio panics on an
        // index >= num_workers(), which never changes for a runtime.
        let workers = self.worker_values.len().min(metrics.num_workers());
        let busy: Vec<Duration> = (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w))
            .collect();
        float_counter_family(
            visitor,
            "tokio_runtime_worker_busy_seconds",
            "Time each tokio worker thread has spent running tasks, in seconds.",
        );
        for (w, d) in busy.iter().enumerate() {
            if let Some(labels) = self.worker_labels(w) {
                visitor.float_counter(&labels, d.as_secs_f64());
            }
        }
        visitor.family(&FamilyInfo {
            name: "tokio_runtime_worker_parks",
            help: "Times each tokio worker thread has parked (gone idle).",
            unit: None,
            kind: MetricKind::Counter,
        });
        for w in 0..workers {
            if let Some(labels) = self.worker_labels(w) {
                visitor.counter(&labels, metrics.worker_park_count(w));
            }
        }
        let total: Duration = busy.iter().sum();
        let ratio = self
            .baseline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .advance(Instant::now(), total, workers);
        if let Some(ratio) = ratio {
            gauge_family(
                visitor,
                "tokio_runtime_busy_ratio",
                "Share of the tokio workers' time spent running tasks since the previous scrape.",
                Some(Unit::Ratio),
            );
            visitor.float_gauge(&Labels::empty(), ratio);
        }
    }
}

#[cfg(not(target_has_atomic = "64"))]
impl RuntimeCollector {
    fn collect_workers(&self, _metrics: &RuntimeMetrics, _visitor: &mut dyn Visitor) {}
}

/// Busy time summed over all workers, where tokio provides it.
fn total_busy(metrics: &RuntimeMetrics) -> Option<Duration> {
    #[cfg(target_has_atomic = "64")]
    {
        Some(
            (0..metrics.num_workers())
                .map(|w| metrics.worker_total_busy_duration(w))
                .sum(),
        )
    }
    #[cfg(not(target_has_atomic = "64"))]
    {
        let _ = metrics;
        None
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

fn saturating_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::process::tests::{EXPECTED_LINT, promtool_check, python_openmetrics};
    use vitals::{Format, Registry};

    fn runtime(workers: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn render(registry: &Registry) -> String {
        String::from_utf8(registry.render(Format::Prometheus)).expect("UTF-8")
    }

    /// The value of the sample written exactly as `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counts_workers_and_alive_tasks() {
        const N: usize = 10;
        let rt = runtime(2);
        let registry = Registry::new();
        registry.register_collector(RuntimeCollector::new(rt.handle().clone()));
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let mut rx = tx.subscribe();
                rt.spawn(async move {
                    let _ = rx.recv().await;
                })
            })
            .collect();
        let text = render(&registry);
        assert_eq!(value(&text, "tokio_runtime_workers"), Some(2.0), "{text}");
        let alive = value(&text, "tokio_runtime_alive_tasks").expect("alive tasks");
        assert!(alive >= N as f64, "{text}");
        assert!(
            value(&text, "tokio_runtime_global_queue_depth").is_some(),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tokio_runtime_worker_parks_total counter\n"),
            "{text}"
        );
        for w in ["0", "1"] {
            let busy = format!("tokio_runtime_worker_busy_seconds_total{{worker=\"{w}\"}}");
            assert!(value(&text, &busy).is_some_and(|v| v >= 0.0), "{text}");
            let parks = format!("tokio_runtime_worker_parks_total{{worker=\"{w}\"}}");
            assert!(value(&text, &parks).is_some(), "{text}");
        }
        assert!(!text.contains("worker=\"2\""), "{text}");

        drop(tx);
        rt.block_on(async {
            for t in tasks {
                t.await.expect("task finished");
            }
        });
        // Finished tasks are no longer alive (a task is released right after
        // its JoinHandle resolves, so allow a moment).
        let mut alive = f64::MAX;
        for _ in 0..100 {
            alive = value(&render(&registry), "tokio_runtime_alive_tasks").expect("alive");
            if alive == 0.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(alive, 0.0);
    }

    #[test]
    fn busy_time_and_ratio_follow_work() {
        let rt = runtime(2);
        let registry = Registry::new();
        registry.register_collector(RuntimeCollector::new(rt.handle().clone()));
        // Within the first window there is no ratio yet.
        let text = render(&registry);
        assert!(!text.contains("tokio_runtime_busy_ratio"), "{text}");

        // Keep both workers busy for 300 ms, then let them park so tokio
        // adds the busy time.
        let spin = |ms| async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(ms) {
                std::hint::spin_loop();
            }
        };
        rt.block_on(async {
            let a = tokio::spawn(spin(300));
            let b = tokio::spawn(spin(300));
            a.await.expect("spin");
            b.await.expect("spin");
        });
        std::thread::sleep(Duration::from_millis(50));
        let text = render(&registry);
        let busy: f64 = ["0", "1"]
            .iter()
            .filter_map(|w| {
                value(
                    &text,
                    &format!("tokio_runtime_worker_busy_seconds_total{{worker=\"{w}\"}}"),
                )
            })
            .sum();
        assert!(busy >= 0.5, "busy {busy}\n{text}");
        let ratio = value(&text, "tokio_runtime_busy_ratio").expect("ratio after 350 ms");
        assert!((0.3..=1.0).contains(&ratio), "ratio {ratio}\n{text}");
        // Then an idle window reads close to zero.
        std::thread::sleep(Duration::from_millis(300));
        let idle = value(&render(&registry), "tokio_runtime_busy_ratio").expect("ratio");
        assert!((0.0..0.3).contains(&idle), "idle ratio {idle}");
    }

    #[test]
    fn busy_ratio_arithmetic() {
        let t0 = Instant::now();
        let mut b = BusyBaseline {
            at: t0,
            busy: Duration::from_secs(10),
            ratio: None,
        };
        assert_eq!(
            b.advance(t0 + Duration::from_millis(50), Duration::from_secs(11), 2),
            None
        );
        let r = b.advance(t0 + Duration::from_secs(2), Duration::from_secs(13), 2);
        assert_eq!(r, Some(0.75));
        assert_eq!(b.busy, Duration::from_secs(13));
        // A scrape right after repeats the ratio and keeps the baseline.
        let r = b.advance(t0 + Duration::from_millis(2050), Duration::from_secs(14), 2);
        assert_eq!(r, Some(0.75));
        assert_eq!(b.busy, Duration::from_secs(13));
        // Lagging busy accounting can exceed the window: clamp.
        let r = b.advance(t0 + Duration::from_secs(3), Duration::from_secs(20), 2);
        assert_eq!(r, Some(1.0));
        // A counter that went backwards (another runtime?) reads as idle.
        let r = b.advance(t0 + Duration::from_secs(4), Duration::from_secs(1), 2);
        assert_eq!(r, Some(0.0));
        // Zero workers never divides by zero.
        let r = b.advance(t0 + Duration::from_secs(5), Duration::from_secs(1), 0);
        assert_eq!(r, Some(0.0));
    }

    #[test]
    fn current_needs_a_runtime() {
        assert!(RuntimeCollector::current().is_none());
        let rt = runtime(1);
        let collector = rt.block_on(async { RuntimeCollector::current() });
        let registry = Registry::new();
        registry.register_collector(collector.expect("inside a runtime"));
        let text = render(&registry);
        assert_eq!(value(&text, "tokio_runtime_workers"), Some(1.0), "{text}");
        // Still safe to read once the runtime is gone.
        drop(rt);
        let text = render(&registry);
        assert_eq!(value(&text, "tokio_runtime_workers"), Some(1.0), "{text}");
    }

    #[test]
    fn current_thread_runtime_has_one_worker() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let registry = Registry::new();
        registry.register_collector(RuntimeCollector::new(rt.handle().clone()));
        let text = render(&registry);
        assert_eq!(value(&text, "tokio_runtime_workers"), Some(1.0), "{text}");
        assert!(
            text.contains("tokio_runtime_worker_parks_total{worker=\"0\"}"),
            "{text}"
        );
    }

    #[test]
    fn real_parsers_accept_the_exposition() {
        let rt = runtime(2);
        let registry = Registry::new();
        registry.register_collector(RuntimeCollector::new(rt.handle().clone()));
        registry.register_collector(crate::collect::process::ProcessCollector::new());
        std::thread::sleep(MIN_RATIO_WINDOW + Duration::from_millis(10));
        let text = registry.render(Format::Prometheus);
        assert!(
            String::from_utf8_lossy(&text).contains("tokio_runtime_busy_ratio"),
            "{}",
            String::from_utf8_lossy(&text)
        );
        promtool_check(&text, EXPECTED_LINT);

        let om = registry.render(Format::OpenMetrics);
        let Some(parsed) = python_openmetrics(&om) else {
            return;
        };
        for expected in [
            "gauge tokio_runtime_workers ",
            "gauge tokio_runtime_alive_tasks ",
            "gauge tokio_runtime_global_queue_depth ",
            "counter tokio_runtime_worker_busy_seconds_total ",
            "counter tokio_runtime_worker_parks_total ",
            "gauge tokio_runtime_busy_ratio ",
            "gauge process_threads ",
        ] {
            assert!(
                parsed.lines().any(|l| l.starts_with(expected)),
                "{expected:?} missing from\n{parsed}"
            );
        }
        let workers = parsed
            .lines()
            .find_map(|l| l.strip_prefix("gauge tokio_runtime_workers "))
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(workers, Some(2.0), "{parsed}");
    }
}
