//! Recent-window rates and percentiles for `/debug/metrics`.
//!
//! Counters and sketches are cumulative; a [`Window`] keeps periodic reads
//! of them (one a second by default) and answers "what happened in the last
//! N seconds" as the difference between now and the oldest read in the
//! window. Sketches subtract bucket by bucket, so windowed percentiles are
//! exact to the sketch's 1 %, never averages of percentiles.

use crate::ServerMetrics;
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

/// One read of the cumulative figures.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) at: Instant,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    /// Keyed by (method, route).
    pub(crate) routes: BTreeMap<(String, String), RouteTotals>,
}

impl Reading {
    pub(crate) fn take(metrics: &ServerMetrics) -> Reading {
        let m = &metrics.inner;
        let mut routes: BTreeMap<(String, String), RouteTotals> = BTreeMap::new();
        m.requests.for_each(|values, counter| {
            // Values are [method, route, status]; the overflow series has none.
            let (method, route, status) = match values {
                [m, r, s] => (m.to_string(), r.to_string(), s.as_ref()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned(), ""),
            };
            let t = routes.entry((method, route)).or_default();
            let n = counter.get();
            t.requests += n;
            if status.starts_with('5') {
                t.errors += n;
            }
        });
        m.duration.for_each(|values, h| {
            let key = match values {
                [m, r] => (m.to_string(), r.to_string()),
                _ => ("_OTHER".to_owned(), "overflow".to_owned()),
            };
            routes.entry(key).or_default().duration = h.sketch();
        });
        Reading {
            at: Instant::now(),
            bytes_sent: m.bytes_sent.get(),
            bytes_received: m.bytes_received.get(),
            routes,
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

    /// Stores a reading, dropping those no longer needed for the window.
    pub(crate) fn push(&self, reading: Reading) {
        let mut readings = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        readings.push_back(reading);
        let horizon = self.span + Duration::from_secs(2);
        while readings.len() > 2 && readings.get(1).is_some_and(|r| r.at.elapsed() >= horizon) {
            readings.pop_front();
        }
    }

    /// The change from the oldest reading within the window (or the oldest
    /// kept, if younger) to `now`.
    pub(crate) fn delta(&self, now: &Reading) -> Delta {
        let readings = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        let base = readings
            .iter()
            .find(|r| now.at.duration_since(r.at) <= self.span)
            .or(readings.front());
        let Some(base) = base else {
            return Delta::default();
        };
        let seconds = now.at.duration_since(base.at).as_secs_f64();
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
        Delta {
            seconds,
            bytes_sent: now.bytes_sent.saturating_sub(base.bytes_sent),
            bytes_received: now.bytes_received.saturating_sub(base.bytes_received),
            routes,
        }
    }
}
