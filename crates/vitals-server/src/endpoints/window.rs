//! Recent-window rates and percentiles for `/debug/metrics`.
//!
//! Counters and sketches are cumulative; a [`Window`] keeps the reads taken
//! each time `/debug/metrics` is asked (and one at start-up) and answers
//! "what happened in the last N seconds" as the difference between now and
//! the newest read at least N seconds old (or the oldest kept, early on).
//! Nothing runs in the background, so an idle server pays nothing. Sketches subtract bucket by bucket, so windowed percentiles are
//! exact to the sketch's 1 %, never averages of percentiles.

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
    /// The bytes and routes of each declared server, by index (empty when
    /// none was declared: the process is its one server).
    pub(crate) servers: Vec<ServerTotals>,
    /// Outbound calls, keyed by (client, host).
    pub(crate) clients: BTreeMap<(String, String), RouteTotals>,
}

/// Reads the `http_client_*` families into per-(client, host) totals:
/// `errors` are 5xx answers and calls without a response.
fn read_clients(
    f: &crate::client::families::ClientFamilies,
) -> BTreeMap<(String, String), RouteTotals> {
    let mut clients: BTreeMap<(String, String), RouteTotals> = BTreeMap::new();
    f.requests.for_each(|values, c| {
        let (key, status) = match values {
            [client, _, host, status] => ((client.to_string(), host.to_string()), &**status),
            _ => (("overflow".to_owned(), "overflow".to_owned()), ""),
        };
        let t = clients.entry(key).or_default();
        let n = c.get();
        t.requests += n;
        if status.starts_with('5') || status == "error" {
            t.errors += n;
        }
    });
    f.duration.for_each(|values, h| {
        let key = match values {
            [client, _, host] => (client.to_string(), host.to_string()),
            _ => ("overflow".to_owned(), "overflow".to_owned()),
        };
        clients.entry(key).or_default().duration.merge(&h.sketch());
    });
    clients
}

/// One server's share of a [`Reading`] or a [`Delta`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerTotals {
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) routes: BTreeMap<(String, String), RouteTotals>,
}

impl ServerTotals {
    /// What happened between `base` and `self` (taken later).
    fn since(&self, base: Option<&ServerTotals>) -> ServerTotals {
        let empty = ServerTotals::default();
        let base = base.unwrap_or(&empty);
        ServerTotals {
            bytes_sent: self.bytes_sent.saturating_sub(base.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(base.bytes_received),
            routes: diff_routes(&base.routes, &self.routes),
        }
    }
}

/// Splits an HTTP family's label values into (server index, rest): the
/// `server` label leads them when servers are declared.
fn split_server<'v>(
    sides: &[crate::servers::ServerSide],
    values: &'v [Box<str>],
) -> (Option<usize>, &'v [Box<str>]) {
    if sides.first().is_none_or(|s| s.label.is_none()) {
        return (None, values);
    }
    match values.split_first() {
        Some((server, rest)) => (
            sides
                .iter()
                .position(|s| s.label.as_deref() == Some(&**server)),
            rest,
        ),
        None => (None, values),
    }
}

/// The first label value of a series, or `overflow` for the overflow series.
fn first_label(values: &[impl AsRef<str>]) -> String {
    values
        .first()
        .map_or_else(|| "overflow".to_owned(), |v| v.as_ref().to_owned())
}

/// Reads every `task_*` family into per-queue totals.
fn read_tasks(t: &crate::record::task_families::TaskFamilies) -> BTreeMap<String, TaskTotals> {
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
        family.for_each(|values, c| {
            *field(tasks.entry(first_label(values)).or_default()) += c.get();
        });
    }
    t.duration.for_each(|values, h| {
        tasks.entry(first_label(values)).or_default().duration = h.sketch();
    });
    tasks
}

impl Reading {
    pub(crate) fn take(metrics: &ServerMetrics) -> Reading {
        let m = &metrics.inner;
        let labelled = m.servers.first().is_some_and(|s| s.label.is_some());
        let mut servers: Vec<ServerTotals> = if labelled {
            m.servers
                .iter()
                .map(|s| ServerTotals {
                    bytes_sent: s.bytes_sent.get(),
                    bytes_received: s.bytes_received.get(),
                    routes: BTreeMap::new(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut routes: BTreeMap<(String, String), RouteTotals> = BTreeMap::new();
        m.requests.for_each(|values, counter| {
            // Values are [server,] method, route, status; the overflow series has none.
            let (server, values) = split_server(&m.servers, values);
            let (method, route, status) = match values {
                [m, r, s] => (m.to_string(), r.to_string(), s.as_ref()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned(), ""),
            };
            let n = counter.get();
            let errors = if status.starts_with('5') { n } else { 0 };
            if let Some(t) = server.and_then(|i| servers.get_mut(i)) {
                let t = t.routes.entry((method.clone(), route.clone())).or_default();
                t.requests += n;
                t.errors += errors;
            }
            let t = routes.entry((method, route)).or_default();
            t.requests += n;
            t.errors += errors;
        });
        m.duration.for_each(|values, h| {
            let (server, values) = split_server(&m.servers, values);
            let key = match values {
                [m, r] => (m.to_string(), r.to_string()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned()),
            };
            let sketch = h.sketch();
            if let Some(t) = server.and_then(|i| servers.get_mut(i)) {
                t.routes.entry(key.clone()).or_default().duration = sketch.clone();
            }
            routes.entry(key).or_default().duration.merge(&sketch);
        });
        Reading {
            at: Instant::now(),
            bytes_sent: crate::servers::sum(&m.servers, |s| s.bytes_sent.get()),
            bytes_received: crate::servers::sum(&m.servers, |s| s.bytes_received.get()),
            routes,
            tasks: read_tasks(&m.tasks),
            servers,
            clients: read_clients(&m.clients),
        }
    }

    /// This reading as one server saw it: its bytes and routes (the whole
    /// reading when no server was declared).
    pub(crate) fn only(&self, server: usize) -> Reading {
        let mut one = self.clone();
        if let Some(s) = self.servers.get(server) {
            one.bytes_sent = s.bytes_sent;
            one.bytes_received = s.bytes_received;
            one.routes = s.routes.clone();
        }
        one
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
    /// Per declared server, as in [`Reading::servers`].
    pub(crate) servers: Vec<ServerTotals>,
    /// Outbound calls, keyed by (client, host).
    pub(crate) clients: BTreeMap<(String, String), RouteTotals>,
}

impl Delta {
    /// This delta as one server saw it (the whole when none was declared).
    pub(crate) fn only(&self, server: usize) -> Delta {
        let mut one = self.clone();
        if let Some(s) = self.servers.get(server) {
            one.bytes_sent = s.bytes_sent;
            one.bytes_received = s.bytes_received;
            one.routes = s.routes.clone();
        }
        one
    }
}

/// Per-route differences between two reads.
fn diff_routes(
    base: &BTreeMap<(String, String), RouteTotals>,
    now: &BTreeMap<(String, String), RouteTotals>,
) -> BTreeMap<(String, String), RouteTotals> {
    let mut routes = BTreeMap::new();
    for (key, cur) in now {
        let mut d = cur.clone();
        if let Some(old) = base.get(key) {
            d.requests = d.requests.saturating_sub(old.requests);
            d.errors = d.errors.saturating_sub(old.errors);
            d.duration.subtract(&old.duration);
        }
        routes.insert(key.clone(), d);
    }
    routes
}

/// What happened between `base` and `now` (`now` taken later).
pub(crate) fn diff(base: &Reading, now: &Reading) -> Delta {
    let seconds = now.at.saturating_duration_since(base.at).as_secs_f64();
    let routes = diff_routes(&base.routes, &now.routes);
    let servers = now
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| s.since(base.servers.get(i)))
        .collect();
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
        servers,
        clients: diff_routes(&base.clients, &now.clients),
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
            servers: Vec::new(),
            clients: BTreeMap::new(),
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
