//! The `/debug/history` ring buffer: the points the sampler in
//! `debug_history.rs` takes, kept for the endpoint to read. A plain state
//! type, sized by the builder and held in
//! [`ServerMetrics`](crate::ServerMetrics); it knows nothing of the metrics
//! it is filled from.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// One history point: the state at `t_ms` and what happened in the
/// interval before it. Field names are the `/debug/history` contract.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    pub(crate) t_ms: u64,
    /// Length of the interval this point covers (close to `interval_ms`).
    pub(crate) span_ms: u64,
    pub(crate) uptime_seconds: f64,
    pub(crate) connections_active: i64,
    pub(crate) streams_active: i64,
    pub(crate) requests_active: i64,
    /// Requests finished in the interval, and how many were errors (5xx).
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) rate_per_sec: f64,
    pub(crate) errors_per_sec: f64,
    pub(crate) avg_latency_ms: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) sent_rate_kbps: f64,
    pub(crate) recv_rate_kbps: f64,
    pub(crate) websocket_active: i64,
    pub(crate) sse_active: i64,
    pub(crate) tasks_in_flight: i64,
}

/// The ring buffer of points, and the handle of the thread that fills it
/// (one per [`ServerMetrics`](crate::ServerMetrics)).
pub(crate) struct History {
    pub(crate) interval: Duration,
    pub(crate) capacity: usize,
    points: Mutex<VecDeque<Point>>,
    pub(crate) sampler: Mutex<Option<JoinHandle<()>>>,
}

impl History {
    /// An empty ring of `capacity` points (at least 1), one every
    /// `interval` (at least 10 ms).
    pub(crate) fn new(interval: Duration, capacity: usize) -> Self {
        History {
            interval: interval.max(Duration::from_millis(10)),
            capacity: capacity.max(1),
            points: Mutex::new(VecDeque::new()),
            sampler: Mutex::new(None),
        }
    }

    /// Adds `point`, dropping the oldest past the capacity.
    pub(crate) fn push(&self, point: Point) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        if points.len() >= self.capacity {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// The points newer than `since_ms` (all with `None`), oldest first.
    pub(crate) fn points_since(&self, since_ms: Option<u64>) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        points
            .iter()
            .filter(|p| since_ms.is_none_or(|s| p.t_ms > s))
            .cloned()
            .collect()
    }
}
