//! RED figures (rate, errors, duration) and Apdex of merged buckets, per
//! service, route, time step and caller → callee edge. Percentiles come
//! only from merged sketches.

use super::window::Window;
use crate::error::ApiError;
use crate::model::{Bucket, BucketStats, RouteSum, StatsSum, UnixMs};
use serde::Serialize;
use std::collections::BTreeMap;

/// RED figures of a merged set of buckets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Requests.
    pub requests: u64,
    /// Requests per second over the window.
    pub rate_per_sec: f64,
    /// Errors.
    pub errors: u64,
    /// Errors / requests (0 without requests).
    pub error_rate: f64,
    /// Mean duration, ms.
    pub avg_ms: Option<f64>,
    /// Median duration, ms (from the merged sketch).
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Apdex score from exact satisfied / tolerating counts.
    pub apdex: Option<f64>,
    /// When data last arrived, ms since the epoch.
    pub last_seen_ms: Option<UnixMs>,
}

impl Figures {
    /// The figures of `stats` over `span_secs`.
    pub fn of(stats: &BucketStats, span_secs: f64) -> Figures {
        let n = stats.count;
        let sk = &stats.duration_ms;
        Figures {
            requests: n,
            rate_per_sec: n as f64 / span_secs,
            errors: stats.errors,
            error_rate: if n == 0 {
                0.0
            } else {
                stats.errors as f64 / n as f64
            },
            avg_ms: (sk.count() > 0).then(|| sk.sum() / sk.count() as f64),
            p50_ms: sk.quantile(0.5),
            p95_ms: sk.quantile(0.95),
            p99_ms: sk.quantile(0.99),
            apdex: stats.apdex(),
            last_seen_ms: (stats.last_seen_ms > 0).then_some(stats.last_seen_ms),
        }
    }

    /// The value of a timeseries metric.
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Requests => Some(self.requests as f64),
            Metric::Rate => Some(self.rate_per_sec),
            Metric::Errors => Some(self.errors as f64),
            Metric::ErrorRate => (self.requests > 0).then_some(self.error_rate),
            Metric::Avg => self.avg_ms,
            Metric::P50 => self.p50_ms,
            Metric::P95 => self.p95_ms,
            Metric::P99 => self.p99_ms,
            Metric::Apdex => self.apdex,
        }
    }
}

/// A timeseries metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests per step.
    Requests,
    /// Requests per second.
    Rate,
    /// Errors per step.
    Errors,
    /// Errors / requests.
    ErrorRate,
    /// Mean duration.
    Avg,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Apdex.
    Apdex,
}

impl Metric {
    /// Names accepted by `?metric=`.
    pub const NAMES: &'static str =
        "requests, rate, errors, error_rate, avg_ms, p50_ms, p95_ms, p99_ms, apdex";

    /// Parses a `?metric=` value.
    pub fn parse(s: &str) -> Result<Metric, ApiError> {
        Ok(match s {
            "requests" => Metric::Requests,
            "rate" => Metric::Rate,
            "errors" => Metric::Errors,
            "error_rate" => Metric::ErrorRate,
            "avg_ms" => Metric::Avg,
            "p50_ms" => Metric::P50,
            "p95_ms" => Metric::P95,
            "p99_ms" => Metric::P99,
            "apdex" => Metric::Apdex,
            other => {
                return Err(ApiError::bad_request(
                    "invalid_metric",
                    format!(
                        "unknown metric {:?}: use one of {}",
                        other.chars().take(64).collect::<String>(),
                        Metric::NAMES
                    ),
                ));
            }
        })
    }
}

/// Merges every bucket into one.
pub fn total<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> BucketStats {
    let mut out = StatsSum::default();
    for b in buckets {
        out.add(&b.stats);
    }
    out.finish()
}

/// One route's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteFigures {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Per (method, route) figures, busiest first.
pub fn routes(sums: Vec<RouteSum>, window: &Window) -> Vec<RouteFigures> {
    let mut out: Vec<RouteFigures> = sums
        .into_iter()
        .filter(|s| s.method != crate::model::CLIENT_METHOD)
        .map(|s| RouteFigures {
            method: s.method,
            route: s.route,
            figures: Figures::of(&s.stats, window.span_secs()),
        })
        .collect();
    out.sort_by(|a, b| {
        b.figures
            .requests
            .cmp(&a.figures.requests)
            .then_with(|| (&a.route, &a.method).cmp(&(&b.route, &b.method)))
    });
    out
}

/// One point of a timeseries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Step start, ms since the epoch.
    pub t: UnixMs,
    /// The value; `null` when the step has no data for it.
    pub value: Option<f64>,
}

/// Buckets grouped into steps starting at `from` (aligned to `step`).
pub fn timeseries(
    buckets: &[Bucket],
    from: UnixMs,
    to: UnixMs,
    step: i64,
    metric: Metric,
) -> Vec<Point> {
    let start = from.div_euclid(step) * step;
    let n = ((to - start) / step + 1).max(1) as usize;
    // Few buckets per step: plain merges keep memory per step small.
    let mut steps = vec![BucketStats::default(); n];
    for b in buckets {
        let i = (b.start_ms - start).div_euclid(step);
        if let Some(s) = usize::try_from(i).ok().and_then(|i| steps.get_mut(i)) {
            s.merge(&b.stats);
        }
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| Point {
            t: start + i as i64 * step,
            value: Figures::of(&s, step as f64 / 1000.0).metric(metric),
        })
        .collect()
}

/// Requests per minute in each step from `from` (aligned to `step`) to
/// `to`: the overview's sparkline. Counts only, so no sketch is merged.
pub fn sparkline<'a>(
    buckets: impl IntoIterator<Item = &'a Bucket>,
    from: UnixMs,
    to: UnixMs,
    step: i64,
) -> Vec<Point> {
    let step = step.max(1);
    let start = from.div_euclid(step) * step;
    let n = ((to - start) / step + 1).max(1) as usize;
    let mut counts = vec![0u64; n];
    for b in buckets {
        let i = (b.start_ms - start).div_euclid(step);
        if let Some(c) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
            *c = c.saturating_add(b.stats.count);
        }
    }
    let per_minute = 60_000.0 / step as f64;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| Point {
            t: start + i as i64 * step,
            value: Some(c as f64 * per_minute),
        })
        .collect()
}

/// One caller → callee edge, seen from both ends: the top-level figures
/// are the callee's (requests it served with this caller's header), and
/// `caller_observed` the caller's own (the calls its instrumented clients
/// made to this peer), when it pushed any. Their difference is the network
/// and queueing between the two.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// The calling service.
    pub caller: String,
    /// The called service.
    pub callee: String,
    /// Requests.
    pub requests: u64,
    /// Requests per second.
    pub rate_per_sec: f64,
    /// Errors.
    pub errors: u64,
    /// Errors / requests.
    pub error_rate: f64,
    /// 95th percentile of the callee's duration, ms.
    pub p95_ms: Option<f64>,
    /// The caller's side: `null` when the caller pushed no client figures
    /// for this callee.
    pub caller_observed: Option<SideFigures>,
}

/// One end's figures of an edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideFigures {
    /// Calls (requests) counted at this end.
    pub requests: u64,
    /// Calls per second.
    pub rate_per_sec: f64,
    /// Errors at this end: 5xx, and for the caller, calls that got no
    /// response.
    pub errors: u64,
    /// Errors / requests.
    pub error_rate: f64,
    /// Median duration, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
}

impl SideFigures {
    fn of(f: &Figures) -> SideFigures {
        SideFigures {
            requests: f.requests,
            rate_per_sec: f.rate_per_sec,
            errors: f.errors,
            error_rate: f.error_rate,
            p50_ms: f.p50_ms,
            p95_ms: f.p95_ms,
        }
    }
}

/// Caller → callee edges from total buckets that name a caller (the
/// callee's side) and client buckets (the caller's side: service = caller,
/// route = callee). An edge only one side reported has zero figures on the
/// other.
pub fn edges(buckets: &[Bucket], clients: &[Bucket], window: &Window) -> Vec<Edge> {
    let mut by: BTreeMap<(&str, &str), StatsSum> = BTreeMap::new();
    for b in buckets
        .iter()
        .filter(|b| !b.key.caller.is_empty() && !b.key.is_client())
    {
        by.entry((&b.key.caller, &b.key.service))
            .or_default()
            .add(&b.stats);
    }
    let mut callers: BTreeMap<(&str, &str), StatsSum> = BTreeMap::new();
    for b in clients.iter().filter(|b| b.key.is_client()) {
        callers
            .entry((&b.key.service, &b.key.route))
            .or_default()
            .add(&b.stats);
        by.entry((&b.key.service, &b.key.route)).or_default();
    }
    by.into_iter()
        .map(|((caller, callee), s)| {
            let f = Figures::of(&s.finish(), window.span_secs());
            let caller_observed = callers
                .remove(&(caller, callee))
                .map(|c| SideFigures::of(&Figures::of(&c.finish(), window.span_secs())));
            Edge {
                caller: caller.into(),
                callee: callee.into(),
                requests: f.requests,
                rate_per_sec: f.rate_per_sec,
                errors: f.errors,
                error_rate: f.error_rate,
                p95_ms: f.p95_ms,
                caller_observed,
            }
        })
        .collect()
}
