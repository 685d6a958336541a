//! `GET /debug/history`: per-second snapshots of the last 15 minutes, so a
//! dashboard has charts the moment it opens.
//!
//! One background thread per [`ServerMetrics`] samples every interval
//! (default 1 s) into the ring buffer of `history.rs` (default 900
//! points). It starts when the endpoints router is built; it holds only a
//! weak reference to the metrics, so it ends within an interval once the
//! metrics (and every router serving them) are dropped. It is a plain
//! thread, not a tokio task, because a timer armed on the runtime makes
//! every park of its workers go through the time driver: measured with
//! callgrind, a 1 s tokio interval added about 300 instructions to every
//! request of a busy server (see BENCHMARKS.md, "HTTP server overhead").
//!
//! Each point covers the interval before it: rates and percentiles come
//! from the difference of two cumulative reads (sketches subtracted bucket
//! by bucket), never from averages.

use super::history::Point;
use super::query::{Query, QueryError};
use super::window::{Delta, Reading, diff};
use crate::server_metrics::{Handles, ServerMetrics};
use crate::servers::sum;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vitals::Sketch;

/// The point covering `delta`, with the gauges of `metrics` as they are now.
fn point(metrics: &ServerMetrics, delta: &Delta) -> Point {
    let m = &metrics.inner;
    let mut requests = 0;
    let mut errors = 0;
    let mut durations = Sketch::new();
    for d in delta.routes.values() {
        requests += d.requests;
        errors += d.errors;
        durations.merge(&d.duration);
    }
    let per_sec = |n: u64| {
        if delta.seconds > 0.0 {
            n as f64 / delta.seconds
        } else {
            0.0
        }
    };
    let ms = |q: f64| durations.quantile(q).map(|s| s * 1000.0);
    let count = durations.count();
    let gauges = |f: &vitals::GaugeVec| {
        let mut total = 0;
        f.for_each(|_, g| total += g.get());
        total
    };
    Point {
        t_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        span_ms: (delta.seconds * 1000.0).round() as u64,
        uptime_seconds: metrics.uptime_seconds(),
        connections_active: sum(&m.servers, |s| s.connections_active.get()),
        streams_active: sum(&m.servers, |s| s.streams_active.get()),
        requests_active: sum(&m.servers, |s| s.active_requests.get()),
        requests,
        errors,
        rate_per_sec: per_sec(requests),
        errors_per_sec: per_sec(errors),
        avg_latency_ms: (count > 0).then(|| durations.sum() / count as f64 * 1000.0),
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        sent_rate_kbps: per_sec(delta.bytes_sent) * 8.0 / 1000.0,
        recv_rate_kbps: per_sec(delta.bytes_received) * 8.0 / 1000.0,
        websocket_active: gauges(&m.ws_active),
        sse_active: gauges(&m.sse_active),
        tasks_in_flight: gauges(&m.tasks.in_flight),
    }
}

/// Starts the sampler of `metrics` if it is not running; cheap (one
/// uncontended lock) when it already runs.
pub(crate) fn ensure_sampler(metrics: &ServerMetrics) {
    let history = &metrics.inner.history;
    let mut sampler = history
        .sampler
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if sampler.as_ref().is_some_and(|s| !s.is_finished()) {
        return;
    }
    let weak = Arc::downgrade(&metrics.inner);
    let first = Reading::take(metrics);
    let every = history.interval;
    // Without a thread (a process at its limit) the history stays empty;
    // the next endpoint request tries again.
    if let Ok(handle) = std::thread::Builder::new()
        .name("vitals-history".into())
        .spawn(move || sample(weak, first, every))
    {
        *sampler = Some(handle);
    }
}

/// The sampling loop: holds the metrics only while it takes a sample.
fn sample(weak: Weak<Handles>, mut previous: Reading, every: Duration) {
    let mut next = std::time::Instant::now() + every;
    loop {
        let now = std::time::Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // After a stall (a suspended process), take one sample, not a burst.
        next = (next + every).max(std::time::Instant::now());
        let Some(inner) = weak.upgrade() else { return };
        let metrics = ServerMetrics { inner, server: 0 };
        let now = Reading::take(&metrics);
        let point = point(&metrics, &diff(&previous, &now));
        metrics.inner.history.push(point);
        previous = now;
    }
}

/// `?since_ms=T` (milliseconds since the Unix epoch), if given; other
/// parameters (the dashboard's own) are ignored.
fn parse_since(raw: Option<&str>) -> Result<Option<u64>, QueryError> {
    let Some(value) = Query::parse(raw)?.once("since_ms")?.map(str::to_owned) else {
        return Ok(None);
    };
    value.trim().parse::<u64>().map(Some).map_err(|_| {
        QueryError::new(format!(
            "since_ms must be milliseconds since the Unix epoch (a whole number), not {value:?}"
        ))
    })
}

/// The router serving `/debug/history`.
pub(crate) fn router(metrics: &ServerMetrics) -> axum::Router {
    axum::Router::new()
        .route("/debug/history", get(history))
        .with_state(metrics.clone())
}

/// `GET /debug/history[?since_ms=T]`.
async fn history(State(metrics): State<ServerMetrics>, RawQuery(query): RawQuery) -> Response {
    ensure_sampler(&metrics);
    let since = match parse_since(query.as_deref()) {
        Ok(s) => s,
        Err(refused) => return refused.respond(metrics.registry()),
    };
    let history = &metrics.inner.history;
    axum::Json(json!({
        "interval_ms": history.interval.as_millis() as u64,
        "capacity": history.capacity,
        "points": history.points_since(since),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_ms_is_validated() {
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some("since_ms=17&live=1")), Ok(Some(17)));
        assert!(parse_since(Some("since_ms=-1")).is_err());
        assert!(parse_since(Some("since_ms=abc")).is_err());
        assert!(parse_since(Some("since_ms=99999999999999999999999")).is_err());
        assert!(parse_since(Some("since_ms=1&since_ms=2")).is_err());
        assert!(parse_since(Some(&format!("since_ms={}", "9".repeat(5000)))).is_err());
        assert!(parse_since(Some("since_ms=%FF%FE")).is_err());
    }

    #[test]
    fn sampler_stops_when_the_metrics_are_dropped() {
        let m = ServerMetrics::builder()
            .registry(vitals::Registry::new())
            .history(Duration::from_millis(10), 3)
            .build()
            .unwrap();
        ensure_sampler(&m);
        ensure_sampler(&m); // idempotent: still one sampler
        let handle = m
            .inner
            .history
            .sampler
            .lock()
            .unwrap()
            .take()
            .expect("sampler started");
        std::thread::sleep(Duration::from_millis(80));
        // The ring keeps the newest `capacity` points, oldest first.
        let points = m.inner.history.points_since(None);
        assert_eq!(points.len(), 3);
        assert!(points.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
        drop(m);
        for _ in 0..500 {
            if handle.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            handle.is_finished(),
            "sampler ended after the metrics were dropped"
        );
        handle.join().unwrap();
    }
}
