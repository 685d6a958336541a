//! Queries: RED statistics (rate, errors, duration), Apdex and health per
//! service, route, time step and caller → callee edge, computed from
//! merged buckets. Percentiles come only from merged sketches.

use crate::config::{CollectorConfig, ResolvedPolicy, parse_duration_ms};
use crate::error::ApiError;
use crate::model::{Bucket, BucketStats, Resolution, RouteSum, StatsSum, UnixMs};
use crate::rollup::Retention;
use serde::Serialize;
use std::collections::BTreeMap;

/// Longest query window.
pub const MAX_WINDOW_MS: i64 = 400 * 86_400_000;
/// Most points one timeseries answer holds.
pub const MAX_POINTS: i64 = 1_500;

/// A validated time window ending now, with the resolution that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Length asked for, ms.
    pub window_ms: i64,
    /// Resolution read.
    pub resolution: Resolution,
    /// First bucket start read (the window start, floored to the resolution).
    pub from_ms: UnixMs,
    /// The end (now).
    pub to_ms: UnixMs,
}

impl Window {
    /// Parses `window` (`15m`, `24h`, `7d`; 1 minute to 400 days) and
    /// picks the coarsest resolution that answers it: one with at least 12
    /// buckets in the window whose retention still covers the window start.
    pub fn parse(text: &str, now: UnixMs, retention: &Retention) -> Result<Window, ApiError> {
        let window_ms = parse_duration_ms(text)
            .map_err(|e| ApiError::bad_request("invalid_window", format!("window: {e}")))?;
        if !(60_000..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!("window {text:?} must be between 1m and 400d"),
            ));
        }
        if window_ms > retention.hour_ms {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!(
                    "window {text:?} is longer than the data is kept ({} days)",
                    retention.hour_ms / 86_400_000
                ),
            ));
        }
        let resolution = [
            Resolution::Hour,
            Resolution::FiveMinutes,
            Resolution::Minute,
        ]
        .into_iter()
        .find(|r| window_ms >= 12 * r.millis())
        .unwrap_or(Resolution::Minute);
        // Too long for what the finer resolution still keeps: go coarser.
        let resolution = Resolution::ALL
            .into_iter()
            .filter(|r| *r >= resolution)
            .find(|r| window_ms + r.millis() <= retention.of(*r))
            .unwrap_or(Resolution::Hour);
        Ok(Window::with_resolution(window_ms, resolution, now))
    }

    /// The window at a given resolution.
    pub fn with_resolution(window_ms: i64, resolution: Resolution, now: UnixMs) -> Window {
        Window {
            window_ms,
            resolution,
            from_ms: resolution.floor(now - window_ms),
            to_ms: now,
        }
    }

    /// Seconds the read buckets span (for rates).
    pub fn span_secs(&self) -> f64 {
        ((self.to_ms - self.from_ms).max(1)) as f64 / 1000.0
    }
}

/// Health of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Within objectives.
    Healthy,
    /// Error rate or latency over the objective.
    Degraded,
    /// Most requests fail, or no data arrived for too long.
    Down,
}

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

/// Health from the window's figures, the service's policy and when data
/// last arrived; with the reasons in words.
pub fn health(
    f: &Figures,
    last_seen_ms: Option<UnixMs>,
    policy: &ResolvedPolicy,
    now: UnixMs,
) -> (Health, Vec<String>) {
    let mut reasons = Vec::new();
    let stale_ms = i64::try_from(policy.stale_after_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let stale = last_seen_ms.is_none_or(|t| now.saturating_sub(t) > stale_ms);
    if stale {
        reasons.push(format!("no data for over {} s", policy.stale_after_secs));
    }
    if f.requests > 0 && f.error_rate >= policy.down_error_rate {
        reasons.push(format!(
            "error rate {:.1} % ≥ {:.1} %",
            f.error_rate * 100.0,
            policy.down_error_rate * 100.0
        ));
        return (Health::Down, reasons);
    }
    if stale {
        return (Health::Down, reasons);
    }
    if f.requests > 0 && f.error_rate >= policy.degraded_error_rate {
        reasons.push(format!(
            "error rate {:.1} % ≥ {:.1} %",
            f.error_rate * 100.0,
            policy.degraded_error_rate * 100.0
        ));
    }
    if let Some(p95) = f.p95_ms
        && p95 > policy.objective_p95_ms
    {
        reasons.push(format!(
            "p95 {p95:.1} ms > objective {} ms",
            policy.objective_p95_ms
        ));
    }
    if reasons.is_empty() {
        (Health::Healthy, reasons)
    } else {
        (Health::Degraded, reasons)
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

/// Parses `step` for a window: a whole number of minutes, at least the
/// resolution picked for the window would need to stay under [`MAX_POINTS`].
pub fn parse_step(text: Option<&str>, window_ms: i64) -> Result<i64, ApiError> {
    let step = match text {
        Some(t) => parse_duration_ms(t)
            .map_err(|e| ApiError::bad_request("invalid_step", format!("step: {e}")))?,
        None => {
            // About 60 points, rounded to a whole resolution.
            let raw = (window_ms / 60).max(60_000);
            [
                Resolution::Hour,
                Resolution::FiveMinutes,
                Resolution::Minute,
            ]
            .into_iter()
            .find(|r| raw >= r.millis())
            .map_or(60_000, |r| raw / r.millis() * r.millis())
        }
    };
    if step % 60_000 != 0 {
        return Err(ApiError::bad_request(
            "invalid_step",
            format!("step {step} ms must be a whole number of minutes"),
        ));
    }
    if step > window_ms {
        return Err(ApiError::bad_request(
            "invalid_step",
            "step must not be longer than the window",
        ));
    }
    if window_ms / step > MAX_POINTS {
        return Err(ApiError::bad_request(
            "invalid_step",
            format!(
                "window / step gives {} points, over the limit of {MAX_POINTS}; use a longer step",
                window_ms / step
            ),
        ));
    }
    Ok(step)
}

/// The resolution to read for `step`: the coarsest one that divides it,
/// no coarser than what answers the window.
pub fn resolution_for_step(step: i64, window: Resolution) -> Resolution {
    [
        Resolution::Hour,
        Resolution::FiveMinutes,
        Resolution::Minute,
    ]
    .into_iter()
    .filter(|r| *r <= window)
    .find(|r| step % r.millis() == 0)
    .unwrap_or(Resolution::Minute)
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

/// One caller → callee edge.
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
}

/// Caller → callee edges from buckets that name a caller.
pub fn edges(buckets: &[Bucket], window: &Window) -> Vec<Edge> {
    let mut by: BTreeMap<(&str, &str), StatsSum> = BTreeMap::new();
    for b in buckets.iter().filter(|b| !b.key.caller.is_empty()) {
        by.entry((&b.key.caller, &b.key.service))
            .or_default()
            .add(&b.stats);
    }
    by.into_iter()
        .map(|((caller, callee), s)| {
            let f = Figures::of(&s.finish(), window.span_secs());
            Edge {
                caller: caller.into(),
                callee: callee.into(),
                requests: f.requests,
                rate_per_sec: f.rate_per_sec,
                errors: f.errors,
                error_rate: f.error_rate,
                p95_ms: f.p95_ms,
            }
        })
        .collect()
}

/// The policy of `service` (re-exported for handlers).
pub fn policy(config: &CollectorConfig, service: &str) -> ResolvedPolicy {
    config.policy(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_700_000_000_000;

    /// Degraded from 10 % errors or a p95 over 200 ms, down from 40 %
    /// errors or after 60 s without data.
    fn policy() -> ResolvedPolicy {
        ResolvedPolicy {
            apdex_t_ms: 100.0,
            objective_p95_ms: 200.0,
            degraded_error_rate: 0.1,
            down_error_rate: 0.4,
            stale_after_secs: 60,
        }
    }

    /// Figures of `requests` requests with `errors` errors and a p95.
    fn figures(requests: u64, errors: u64, p95_ms: Option<f64>) -> Figures {
        let stats = BucketStats {
            count: requests,
            errors,
            last_seen_ms: NOW,
            ..BucketStats::default()
        };
        Figures {
            p95_ms,
            ..Figures::of(&stats, 60.0)
        }
    }

    /// Health of `f`, last seen `ago_ms` before now.
    fn health_of(f: &Figures, ago_ms: Option<i64>) -> (Health, Vec<String>) {
        health(f, ago_ms.map(|a| NOW - a), &policy(), NOW)
    }

    #[test]
    fn health_is_healthy_within_every_objective() {
        for f in [
            figures(1000, 0, Some(10.0)),
            figures(1000, 99, Some(199.9)),
            // Exactly at the objective is within it: only above degrades.
            figures(1000, 0, Some(200.0)),
            // No requests in the window, but data arrived recently.
            figures(0, 0, None),
        ] {
            assert_eq!(health_of(&f, Some(0)), (Health::Healthy, vec![]), "{f:?}");
        }
    }

    #[test]
    fn health_degrades_from_the_degraded_error_rate() {
        // Below: 9.9 %.
        assert_eq!(
            health_of(&figures(1000, 99, Some(10.0)), Some(0)).0,
            Health::Healthy
        );
        // At: 10 % (the rate is "from which", so at counts).
        let (h, reasons) = health_of(&figures(1000, 100, Some(10.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["error rate 10.0 % ≥ 10.0 %"]);
        // Above, up to just below the down rate.
        let (h, reasons) = health_of(&figures(1000, 399, Some(10.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["error rate 39.9 % ≥ 10.0 %"]);
    }

    #[test]
    fn health_is_down_from_the_down_error_rate() {
        for (errors, text) in [(400, "40.0"), (401, "40.1"), (1000, "100.0")] {
            let (h, reasons) = health_of(&figures(1000, errors, Some(10.0)), Some(0));
            assert_eq!(h, Health::Down, "{errors}");
            // Only the worse threshold is named.
            assert_eq!(reasons, [format!("error rate {text} % ≥ 40.0 %")]);
        }
    }

    #[test]
    fn health_degrades_above_the_p95_objective() {
        let (h, reasons) = health_of(&figures(1000, 0, Some(200.5)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["p95 200.5 ms > objective 200 ms"]);
        // Both causes are named.
        let (h, reasons) = health_of(&figures(1000, 150, Some(900.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(
            reasons,
            [
                "error rate 15.0 % ≥ 10.0 %",
                "p95 900.0 ms > objective 200 ms"
            ]
        );
    }

    #[test]
    fn health_is_down_when_data_stops() {
        let fine = figures(1000, 0, Some(10.0));
        // Fresh up to and including stale_after.
        for ago in [0, 59_999, 60_000] {
            assert_eq!(
                health_of(&fine, Some(ago)).0,
                Health::Healthy,
                "{ago} ms ago"
            );
        }
        for (f, ago) in [
            (fine.clone(), Some(60_001)),
            (fine.clone(), Some(86_400_000)),
            (fine.clone(), None),
            // Stale outranks a degraded error rate or latency.
            (figures(1000, 200, Some(900.0)), Some(60_001)),
            (figures(0, 0, None), None),
        ] {
            let (h, reasons) = health_of(&f, ago);
            assert_eq!(h, Health::Down, "{f:?} {ago:?}");
            assert_eq!(reasons, ["no data for over 60 s"], "{f:?} {ago:?}");
        }
        // Stale and failing: both causes.
        let (h, reasons) = health_of(&figures(10, 5, None), Some(120_000));
        assert_eq!(h, Health::Down);
        assert_eq!(
            reasons,
            ["no data for over 60 s", "error rate 50.0 % ≥ 40.0 %"]
        );
    }

    #[test]
    fn health_survives_extreme_times_and_policies() {
        let f = figures(1, 0, Some(1.0));
        let forever = ResolvedPolicy {
            stale_after_secs: u64::MAX,
            ..policy()
        };
        assert_eq!(health(&f, Some(i64::MIN), &forever, NOW).0, Health::Healthy);
        assert_eq!(health(&f, Some(i64::MIN), &policy(), NOW).0, Health::Down);
        // Data stamped in the future (a skewed clock) is fresh.
        assert_eq!(
            health(&f, Some(i64::MAX), &policy(), NOW).0,
            Health::Healthy
        );
    }

    #[test]
    fn window_picks_the_coarsest_resolution_that_answers() {
        let r = Retention::default();
        let now = 10_000_000_000;
        let w = |s: &str| Window::parse(s, now, &r).map(|w| w.resolution);
        assert_eq!(w("15m"), Ok(Resolution::Minute));
        assert_eq!(w("59m"), Ok(Resolution::Minute));
        assert_eq!(w("1h"), Ok(Resolution::FiveMinutes));
        assert_eq!(w("12h"), Ok(Resolution::Hour));
        assert_eq!(w("30d"), Ok(Resolution::Hour));
        assert!(w("30s").is_err());
        assert!(w("401d").is_err());
        assert!(w("abc").is_err());
        // A minute retention shorter than the window moves to a coarser one.
        let short = Retention {
            minute_ms: 3_600_000,
            ..r
        };
        assert_eq!(
            Window::parse("50m", now, &short).map(|w| w.resolution),
            Ok(Resolution::Minute)
        );
        assert_eq!(
            Window::parse("1h", now, &short).map(|w| w.resolution),
            Ok(Resolution::FiveMinutes)
        );
    }

    #[test]
    fn steps_are_validated() {
        assert_eq!(parse_step(None, 3_600_000), Ok(60_000));
        assert_eq!(
            parse_step(None, 86_400_000),
            Ok(1_440_000 / 300_000 * 300_000)
        );
        assert_eq!(parse_step(Some("5m"), 3_600_000), Ok(300_000));
        assert!(parse_step(Some("30s"), 3_600_000).is_err());
        assert!(parse_step(Some("2h"), 3_600_000).is_err());
        assert!(parse_step(Some("1m"), 400 * 86_400_000).is_err());
        assert_eq!(
            resolution_for_step(600_000, Resolution::Hour),
            Resolution::FiveMinutes
        );
        assert_eq!(
            resolution_for_step(7_200_000, Resolution::FiveMinutes),
            Resolution::FiveMinutes
        );
    }
}
