//! One OTLP data point into what it adds to its service's write:
//! `http.server.request.duration` points into per-route request
//! aggregates (method, route, status class; count, errors, Apdex counts,
//! the duration sketch), every other metric into custom metrics. Each
//! point is checked whole, before any limiter or stream state is touched,
//! so a rejected point leaves nothing behind.

use super::super::validate::{check_method, check_name, check_status, check_timestamp};
use super::attributes;
use super::building::Building;
use super::distribution::{Distribution, Since};
use super::streams::{Classified, Last, Reading, classify};
use crate::error::ApiError;
use crate::ingest::Intake;
use crate::model::{
    BucketStats, CustomKey, CustomKind, CustomStats, Resolution, SeriesKey, UnixMs,
    canonical_labels,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, metric::Data, number_data_point,
};
use std::collections::HashMap;
use vitals::Sketch;

/// The route of a request that matched none (as `vitals-server` labels it).
const UNMATCHED_ROUTE: &str = "unmatched";
/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: a point that only marks a gap.
const NO_RECORDED_VALUE: u32 = 1;

/// What every point of one resource shares.
pub(crate) struct Ctx<'a> {
    pub at: &'a Intake<'a>,
    pub service: &'a str,
    pub instance: &'a str,
    /// The resource's attributes in canonical form (part of stream keys).
    pub resource: String,
    /// When the collector started, ns since the epoch.
    pub started_ns: u64,
    /// The streams' acknowledged readings.
    pub known: &'a HashMap<String, Last>,
}

/// What became of one data point.
pub(crate) enum Outcome {
    /// Used (or a baseline, a repeat, or a gap marker: nothing to add).
    Accepted,
    /// Rejected, with why.
    Rejected(ApiError),
}

impl From<Result<(), ApiError>> for Outcome {
    fn from(r: Result<(), ApiError>) -> Self {
        match r {
            Ok(()) => Outcome::Accepted,
            Err(e) => Outcome::Rejected(e),
        }
    }
}

/// The fields of a data point every kind has.
struct Common<'p> {
    attrs: &'p [KeyValue],
    start_ns: u64,
    time_ns: u64,
    flags: u32,
}

impl Ctx<'_> {
    fn stream_key(&self, metric: &str, attrs: &[KeyValue]) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{metric}\u{1f}{}",
            self.at.tenant,
            self.resource,
            attributes::canonical(attrs)
        )
    }

    fn last(&self, b: &Building, key: &str) -> Option<Last> {
        b.updates.get(key).or_else(|| self.known.get(key)).cloned()
    }

    fn time_ms(&self, time_ns: u64) -> Result<UnixMs, ApiError> {
        let limits = &self.at.config.limits;
        check_timestamp(
            "time_unix_nano (as ms)",
            time_ns / 1_000_000,
            self.at.now,
            self.at.oldest_ms,
            limits,
        )
    }
}

fn temporality_error(metric: &str, t: i32) -> ApiError {
    ApiError::bad_request(
        "invalid_temporality",
        format!(
            "metric {metric:?} has aggregation temporality {t}; use 1 (delta) or 2 (cumulative)"
        ),
    )
}

fn invalid_histogram(metric: &str, why: String) -> ApiError {
    ApiError::bad_request("invalid_histogram", format!("metric {metric:?}: {why}"))
}

/// Milliseconds per unit of a duration metric, by its UCUM unit.
fn ms_per_unit(unit: &str) -> Option<f64> {
    match unit {
        "s" | "" => Some(1000.0),
        "ms" => Some(1.0),
        "us" | "µs" => Some(1e-3),
        "ns" => Some(1e-6),
        "min" => Some(60_000.0),
        _ => None,
    }
}

/// A histogram data point's common fields and its distribution, read.
type ReadPoint<'p> = (Common<'p>, Result<Distribution, String>);

/// The points of an `http.server.request.duration` histogram.
pub(crate) fn route_point(ctx: &Ctx<'_>, m: &Metric, b: &mut Building) -> Vec<Outcome> {
    let (temporality, points): (i32, Vec<ReadPoint<'_>>) = match &m.data {
        Some(Data::Histogram(h)) => (
            h.aggregation_temporality,
            h.data_points
                .iter()
                .map(|p| {
                    let c = Common {
                        attrs: &p.attributes,
                        start_ns: p.start_time_unix_nano,
                        time_ns: p.time_unix_nano,
                        flags: p.flags,
                    };
                    (c, Distribution::explicit(p))
                })
                .collect(),
        ),
        Some(Data::ExponentialHistogram(h)) => (
            h.aggregation_temporality,
            h.data_points
                .iter()
                .map(|p| {
                    let c = Common {
                        attrs: &p.attributes,
                        start_ns: p.start_time_unix_nano,
                        time_ns: p.time_unix_nano,
                        flags: p.flags,
                    };
                    (c, Distribution::exponential(p))
                })
                .collect(),
        ),
        _ => return Vec::new(),
    };
    points
        .into_iter()
        .map(|(c, dist)| route_one(ctx, m, temporality, c, dist, b).into())
        .collect()
}

fn route_one(
    ctx: &Ctx<'_>,
    m: &Metric,
    temporality: i32,
    c: Common<'_>,
    dist: Result<Distribution, String>,
    b: &mut Building,
) -> Result<(), ApiError> {
    if c.flags & NO_RECORDED_VALUE != 0 {
        return Ok(());
    }
    if temporality != AggregationTemporality::Delta as i32
        && temporality != AggregationTemporality::Cumulative as i32
    {
        return Err(temporality_error(&m.name, temporality));
    }
    let limits = &ctx.at.config.limits;
    let to_ms = ms_per_unit(&m.unit).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_unit",
            format!(
                "{:?} has unit {:?}; send durations in s (the convention) or ms",
                m.name, m.unit
            ),
        )
    })?;
    let method = attributes::text(c.attrs, "http.request.method").ok_or_else(|| {
        ApiError::bad_request(
            "missing_field",
            format!("a {:?} point has no http.request.method", m.name),
        )
    })?;
    check_method(&method)?;
    let route = attributes::text(c.attrs, "http.route").unwrap_or_else(|| UNMATCHED_ROUTE.into());
    check_name("http.route", &route, limits.max_route_len, true)?;
    let status_class = match attributes::integer(c.attrs, "http.response.status_code") {
        Some(s) => {
            let s = u16::try_from(s).unwrap_or(0);
            check_status(s)?;
            (s / 100) as u8
        }
        // No response was sent: an error, as `error.type` says.
        None if attributes::find(c.attrs, "error.type").is_some() => 5,
        None => {
            return Err(ApiError::bad_request(
                "missing_field",
                format!(
                    "a {:?} point has neither http.response.status_code nor error.type",
                    m.name
                ),
            ));
        }
    };
    let time_ms = ctx.time_ms(c.time_ns)?;
    let dist = dist.map_err(|why| invalid_histogram(&m.name, why))?;
    let key = ctx.stream_key(&m.name, c.attrs);
    let (delta, remember) = if temporality == AggregationTemporality::Delta as i32 {
        (Some(dist), None)
    } else if temporality == AggregationTemporality::Cumulative as i32 {
        let last = ctx.last(b, &key);
        let delta = match classify(last.as_ref(), c.start_ns, c.time_ns, ctx.started_ns) {
            Classified::Stale => return Ok(()),
            Classified::Whole => Some(dist.clone()),
            Classified::First => None,
            Classified::Since => match last.as_ref().map(|l| &l.reading) {
                Some(Reading::Distribution(prev)) => match dist.since(prev) {
                    Since::Delta(d) => Some(d),
                    Since::Reset => Some(dist.clone()),
                    Since::Incompatible => None,
                },
                _ => None,
            },
        };
        let remember = Last::new(c.start_ns, c.time_ns, Reading::Distribution(dist));
        (delta, Some(remember))
    } else {
        return Err(temporality_error(&m.name, temporality));
    };
    let delta = delta.filter(|d| d.count > 0);
    let stats = match &delta {
        Some(d) => Some(route_stats(ctx, m, d, status_class, to_ms)?),
        None => None,
    };
    // Checked: only now touch the limiter and the stream state.
    if let Some(r) = remember {
        b.updates.insert(key, r);
    }
    let Some(stats) = stats else {
        return Ok(());
    };
    let (route, over) = ctx
        .at
        .routes
        .route(ctx.at.tenant, ctx.service, &route, limits);
    b.overflowed += u64::from(over);
    b.requests = b.requests.saturating_add(stats.count);
    let series = SeriesKey {
        service: ctx.service.into(),
        method,
        route,
        status_class,
        caller: String::new(),
    };
    b.buckets
        .entry((Resolution::Minute.floor(time_ms), series))
        .or_default()
        .merge(&stats);
    Ok(())
}

/// One delta of request durations as the stats of a minute bucket, with
/// Apdex counted from its sketch against the service's T (errors are
/// frustrated whatever their speed).
fn route_stats(
    ctx: &Ctx<'_>,
    m: &Metric,
    d: &Distribution,
    status_class: u8,
    to_ms: f64,
) -> Result<BucketStats, ApiError> {
    let limits = &ctx.at.config.limits;
    if d.count > limits.max_count {
        return Err(ApiError::bad_request(
            "count_out_of_range",
            format!(
                "a {:?} point counts {}, over the limit of {}",
                m.name, d.count, limits.max_count
            ),
        ));
    }
    let sketch: Sketch = d.to_sketch(to_ms);
    let max_seen = sketch.quantile(1.0).unwrap_or(0.0);
    if !sketch.sum().is_finite()
        || sketch.sum() < 0.0
        || max_seen > limits.max_duration_ms as f64 * 1.01
    {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "a {:?} point holds durations outside 0..={} ms (sum {} ms, largest about {max_seen} ms)",
                m.name,
                limits.max_duration_ms,
                sketch.sum()
            ),
        ));
    }
    let errors = if status_class == 5 { d.count } else { 0 };
    let (satisfied, tolerating) = if errors > 0 {
        (0, 0)
    } else {
        let t = ctx.at.config.policy(ctx.service).apdex_t_ms;
        let within_t = sketch.count_at_most(t).min(d.count);
        let within_4t = sketch.count_at_most(4.0 * t).clamp(within_t, d.count);
        (within_t, within_4t - within_t)
    };
    Ok(BucketStats {
        count: d.count,
        errors,
        satisfied,
        tolerating,
        duration_ms: sketch,
        last_seen_ms: ctx.at.now,
    })
}

/// How a custom value is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// As sent: a gauge, or a cumulative total.
    AsSent,
    /// Added to the stream's running total: a delta sum.
    Accumulate,
}

/// The points of any metric but request durations, as custom metrics:
/// gauges and non-monotonic sums as gauges, monotonic sums as counters
/// (delta ones as their running total), histograms and summaries as two
/// counters, `<name>_count` and `<name>_sum`.
pub(crate) fn custom_points(ctx: &Ctx<'_>, m: &Metric, b: &mut Building) -> Vec<Outcome> {
    let name = m.name.as_str();
    let keep_of = |t: i32| {
        if t == AggregationTemporality::Cumulative as i32 {
            Ok(Keep::AsSent)
        } else if t == AggregationTemporality::Delta as i32 {
            Ok(Keep::Accumulate)
        } else {
            Err(temporality_error(name, t))
        }
    };
    let number = |p: &NumberDataPoint| match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Ok(d),
        Some(number_data_point::Value::AsInt(i)) => Ok(i as f64),
        None => Err(ApiError::bad_request(
            "missing_field",
            format!("a point of {name:?} has no value"),
        )),
    };
    let common = |attrs, start_ns, time_ns, flags| Common {
        attrs,
        start_ns,
        time_ns,
        flags,
    };
    let mut out = Vec::new();
    match &m.data {
        None => {}
        Some(Data::Gauge(g)) => {
            for p in &g.data_points {
                let c = common(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    p.flags,
                );
                let r = number(p)
                    .and_then(|v| custom_one(ctx, b, name, CustomKind::Gauge, Keep::AsSent, &c, v));
                out.push(r.into());
            }
        }
        Some(Data::Sum(s)) => {
            let kind = if s.is_monotonic {
                CustomKind::Counter
            } else {
                CustomKind::Gauge
            };
            for p in &s.data_points {
                let c = common(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    p.flags,
                );
                let r = keep_of(s.aggregation_temporality)
                    .and_then(|keep| number(p).map(|v| (keep, v)))
                    .and_then(|(keep, v)| custom_one(ctx, b, name, kind, keep, &c, v));
                out.push(r.into());
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                let c = common(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    p.flags,
                );
                let r = keep_of(h.aggregation_temporality)
                    .and_then(|keep| count_and_sum(ctx, b, name, keep, &c, p.count, p.sum));
                out.push(r.into());
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                let c = common(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    p.flags,
                );
                let r = keep_of(h.aggregation_temporality)
                    .and_then(|keep| count_and_sum(ctx, b, name, keep, &c, p.count, p.sum));
                out.push(r.into());
            }
        }
        Some(Data::Summary(s)) => {
            for p in &s.data_points {
                let c = common(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    p.flags,
                );
                let r = count_and_sum(ctx, b, name, Keep::AsSent, &c, p.count, Some(p.sum));
                out.push(r.into());
            }
        }
    }
    out
}

/// A histogram or summary point as its two counters.
fn count_and_sum(
    ctx: &Ctx<'_>,
    b: &mut Building,
    name: &str,
    keep: Keep,
    c: &Common<'_>,
    count: u64,
    sum: Option<f64>,
) -> Result<(), ApiError> {
    let count_name = format!("{name}_count");
    let sum_name = format!("{name}_sum");
    // Check both before keeping either.
    check_custom(ctx, &count_name, c, count as f64)?;
    if let Some(s) = sum {
        check_custom(ctx, &sum_name, c, s)?;
    }
    custom_one(
        ctx,
        b,
        &count_name,
        CustomKind::Counter,
        keep,
        c,
        count as f64,
    )?;
    if let Some(s) = sum {
        custom_one(ctx, b, &sum_name, CustomKind::Counter, keep, c, s)?;
    }
    Ok(())
}

/// The checks of one custom value: name, labels, time, a finite value.
fn check_custom(
    ctx: &Ctx<'_>,
    name: &str,
    c: &Common<'_>,
    value: f64,
) -> Result<(std::collections::BTreeMap<String, String>, UnixMs), ApiError> {
    let limits = &ctx.at.config.limits;
    check_name("metric name", name, limits.max_name_len, true)?;
    let labels = attributes::labels(c.attrs, limits)?;
    let at = ctx.time_ms(c.time_ns)?;
    if !value.is_finite() {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("metric {name:?} has a non-finite value"),
        ));
    }
    Ok((labels, at))
}

/// One custom value, checked, then kept (a delta added to its stream's
/// running total), within the service's custom series limit.
fn custom_one(
    ctx: &Ctx<'_>,
    b: &mut Building,
    name: &str,
    kind: CustomKind,
    keep: Keep,
    c: &Common<'_>,
    value: f64,
) -> Result<(), ApiError> {
    if c.flags & NO_RECORDED_VALUE != 0 {
        return Ok(());
    }
    let limits = &ctx.at.config.limits;
    let (labels, at) = check_custom(ctx, name, c, value)?;
    let labels = canonical_labels(&labels);
    let mut value = value;
    let mut remember = None;
    if keep == Keep::Accumulate {
        let key = ctx.stream_key(name, c.attrs);
        let last = ctx.last(b, &key);
        if last.as_ref().is_some_and(|l| c.time_ns <= l.time_ns) {
            return Ok(()); // a repeat: already counted
        }
        if let Some(Last {
            reading: Reading::Number(total),
            ..
        }) = last
        {
            value += total;
        }
        remember = Some((
            key,
            Last::new(c.start_ns, c.time_ns, Reading::Number(value)),
        ));
    }
    if !ctx
        .at
        .routes
        .custom_series(ctx.at.tenant, ctx.service, name, &labels, limits)
    {
        return Err(ApiError::bad_request(
            "custom_series_limit",
            format!(
                "service {:?} is at its limit of {} custom series (limits.max_custom_series_per_service); {name:?} is dropped",
                ctx.service, limits.max_custom_series_per_service
            ),
        ));
    }
    if let Some((key, last)) = remember {
        b.updates.insert(key, last);
    }
    let key = CustomKey {
        service: ctx.service.into(),
        name: name.into(),
        labels,
        instance: ctx.instance.into(),
    };
    let stats = CustomStats::of(kind, value, at);
    b.custom
        .entry((Resolution::Minute.floor(at), key))
        .and_modify(|s| s.merge(&stats))
        .or_insert(stats);
    Ok(())
}
