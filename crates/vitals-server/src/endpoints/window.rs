//! Recent-window rates and percentiles for `/debug/metrics`.
//!
//! Counters and sketches are cumulative; a [`Window`] keeps the reads taken
//! each time `/debug/metrics` is asked (and one at start-up) and answers
//! "what happened in the last N seconds" as the difference between now and
//! the newest read at least N seconds old (or the oldest kept, early on).
//! Nothing runs in the background, so an idle server pays nothing. Sketches subtract bucket by bucket, so windowed percentiles are
//! exact to the sketch's 1 %, never averages of percentiles.

use super::figures::{Figures, Scope};
use crate::server_metrics::ServerMetrics;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use vitals::Sketch;

/// Cumulative figures for one (method, route).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTotals {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) duration: Sketch,
}

/// Cumulative figures for one task queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskTotals {
    pub(crate) enqueued: u64,
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) duration: Sketch,
}

/// One read of the cumulative figures.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) at: Instant,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    /// Keyed by (method, route).
    pub(crate) routes: BTreeMap<(String, String), RouteTotals>,
    /// Keyed by queue name.
    pub(crate) tasks: BTreeMap<String, TaskTotals>,
}

/// The first label value of a series, or `overflow` for the overflow series.
fn first_label(values: &[impl AsRef<str>]) -> String {
    values
        .first()
        .map_or_else(|| "overflow".to_owned(), |v| v.as_ref().to_owned())
}

/// Reads every `task_*` family into per-queue totals.
fn read_tasks(
    t: &crate::record::task_families::TaskFamilies,
    fig: &Figures,
) -> BTreeMap<String, TaskTotals> {
    let mut tasks: BTreeMap<String, TaskTotals> = BTreeMap::new();
    type Field = fn(&mut TaskTotals) -> &mut u64;
    let counters: [(&vitals::CounterVec, Field); 5] = [
        (&t.enqueued, |t| &mut t.enqueued),
        (&t.started, |t| &mut t.started),
        (&t.completed, |t| &mut t.completed),
        (&t.failed, |t| &mut t.failed),
        (&t.retried, |t| &mut t.retried),
    ];
    for (family, field) in counters {
        fig.each_count(family.name(), |values, n| {
            *field(tasks.entry(first_label(values)).or_default()) += n;
        });
    }
    fig.each_sketch(t.duration.name(), |values, h| {
        tasks.entry(first_label(values)).or_default().duration = h.clone();
    });
    tasks
}

impl Reading {
    /// A read of the whole server.
    pub(crate) fn take(metrics: &ServerMetrics) -> Reading {
        Reading::from_figures(metrics, &Figures::read(metrics, Scope::Server))
    }

    /// A read of what `fig` holds (the whole server or one worker).
    pub(crate) fn from_figures(metrics: &ServerMetrics, fig: &Figures) -> Reading {
        let m = &metrics.inner;
        let mut routes: BTreeMap<(String, String), RouteTotals> = BTreeMap::new();
        fig.each_count(m.requests.name(), |values, n| {
            // Values are [method, route, status]; the overflow series has none.
            let (method, route, status) = match values {
                [m, r, s] => (m.to_string(), r.to_string(), s.as_ref()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned(), ""),
            };
            let t = routes.entry((method, route)).or_default();
            t.requests += n;
            if status.starts_with('5') {
                t.errors += n;
            }
        });
        fig.each_sketch(m.duration.name(), |values, h| {
            let key = match values {
                [m, r] => (m.to_string(), r.to_string()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned()),
            };
            routes.entry(key).or_default().duration = h.clone();
        });
        Reading {
            at: Instant::now(),
            bytes_sent: fig.count("server_bytes_sent"),
            bytes_received: fig.count("server_bytes_received"),
            routes,
            tasks: read_tasks(&m.tasks, fig),
        }
    }
}

/// What happened between two readings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delta {
    pub(crate) seconds: f64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) routes: BTreeMap<(String, String), RouteTotals>,
    pub(crate) tasks: BTreeMap<String, TaskTotals>,
}

/// What happened between `base` and `now` (`now` taken later).
pub(crate) fn diff(base: &Reading, now: &Reading) -> Delta {
    let seconds = now.at.saturating_duration_since(base.at).as_secs_f64();
    let mut routes = BTreeMap::new();
    for (key, cur) in &now.routes {
        let mut d = cur.clone();
        if let Some(old) = base.routes.get(key) {
            d.requests = d.requests.saturating_sub(old.requests);
            d.errors = d.errors.saturating_sub(old.errors);
            d.duration.subtract(&old.duration);
        }
        routes.insert(key.clone(), d);
    }
    let mut tasks = BTreeMap::new();
    for (queue, cur) in &now.tasks {
        let mut d = cur.clone();
        if let Some(old) = base.tasks.get(queue) {
            d.enqueued = d.enqueued.saturating_sub(old.enqueued);
            d.started = d.started.saturating_sub(old.started);
            d.completed = d.completed.saturating_sub(old.completed);
            d.failed = d.failed.saturating_sub(old.failed);
            d.retried = d.retried.saturating_sub(old.retried);
            d.duration.subtract(&old.duration);
        }
        tasks.insert(queue.clone(), d);
    }
    Delta {
        seconds,
        bytes_sent: now.bytes_sent.saturating_sub(base.bytes_sent),
        bytes_received: now.bytes_received.saturating_sub(base.bytes_received),
        routes,
        tasks,
    }
}

/// Periodic readings over a sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    span: Duration,
    readings: Mutex<VecDeque<Reading>>,
}

impl Window {
    pub(crate) fn new(span: Duration) -> Self {
        Window {
            span,
            readings: Mutex::new(VecDeque::new()),
        }
    }

    /// Stores a reading, dropping those no longer needed for the window:
    /// everything older than the newest reading that already spans it.
    pub(crate) fn push(&self, reading: Reading) {
        let mut readings = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        readings.push_back(reading);
        while readings.get(1).is_some_and(|r| r.at.elapsed() >= self.span) {
            readings.pop_front();
        }
    }

    /// The change since the newest reading at least a window old, or since
    /// the oldest reading when none is that old yet.
    pub(crate) fn delta(&self, now: &Reading) -> Delta {
        let readings = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        let base = readings
            .iter()
            .rev()
            .find(|r| now.at.duration_since(r.at) >= self.span)
            .or(readings.front());
        match base {
            Some(base) => diff(base, now),
            None => Delta::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(age_secs: u64, requests: u64) -> Reading {
        let mut routes = BTreeMap::new();
        let mut duration = Sketch::new();
        for i in 0..requests {
            duration.record(0.001 * (i + 1) as f64);
        }
        routes.insert(
            ("GET".to_owned(), "/x".to_owned()),
            RouteTotals {
                requests,
                errors: requests / 10,
                duration,
            },
        );
        Reading {
            at: Instant::now() - Duration::from_secs(age_secs),
            bytes_sent: requests * 100,
            bytes_received: requests * 10,
            routes,
            tasks: BTreeMap::new(),
        }
    }

    #[test]
    fn delta_spans_the_window_from_the_newest_old_enough_read() {
        let w = Window::new(Duration::from_secs(10));
        w.push(reading(20, 0));
        w.push(reading(12, 100));
        w.push(reading(5, 150));
        let now = reading(0, 200);
        let d = w.delta(&now);
        assert!((d.seconds - 12.0).abs() < 0.5, "{}", d.seconds);
        let r = &d.routes[&("GET".to_owned(), "/x".to_owned())];
        assert_eq!(r.requests, 100);
        assert_eq!(r.errors, 10);
        // The windowed sketch holds exactly the 100 newest durations.
        assert_eq!(r.duration.count(), 100);
        let p50 = r.duration.quantile(0.5).unwrap_or(0.0);
        assert!((p50 - 0.150).abs() / 0.150 < 0.01, "{p50}");
        assert_eq!(d.bytes_sent, 10_000);
        // The 20 s read is no longer needed once a 12 s one spans the window.
        assert_eq!(w.readings.lock().unwrap().len(), 2);
    }

    #[test]
    fn early_on_the_delta_runs_from_the_first_read() {
        let w = Window::new(Duration::from_secs(10));
        w.push(reading(3, 10));
        let d = w.delta(&reading(0, 40));
        assert!((d.seconds - 3.0).abs() < 0.5);
        assert_eq!(d.routes[&("GET".to_owned(), "/x".to_owned())].requests, 30);
        assert_eq!(
            Window::new(Duration::from_secs(10))
                .delta(&reading(0, 1))
                .seconds,
            0.0
        );
    }
}
