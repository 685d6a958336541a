//! Step 4 of ingest, for aggregated batches (`POST /v1/ingest`): every
//! route, sample and custom value validated, then the limiters asked, then
//! the write built: minute buckets with their per-service totals, samples
//! and custom points ([`Prepared`]).

use super::limits::RouteLimiter;
use super::validate::{
    check_aggregate, check_count, check_duration, check_method, check_name, check_status,
    check_timestamp,
};
use crate::config::CollectorConfig;
use crate::error::ApiError;
use crate::model::{
    Bucket, BucketStats, CLIENT_METHOD, CustomKey, CustomPoint, CustomStats, IngestWrite,
    Resolution, Sample, SeriesKey, UnixMs, canonical_labels, with_totals,
};
use std::collections::BTreeMap;
use vitals::wire::{IngestBatch, RouteAggregate};

/// What a validated batch becomes, plus how many series were folded into
/// the overflow route.
#[derive(Debug)]
pub struct Prepared {
    /// The atomic write for the store.
    pub write: IngestWrite,
    /// Aggregates or records whose route was folded into `__overflow__`.
    pub overflowed: u64,
    /// Requests the batch counts.
    pub requests: u64,
    /// Custom values dropped because their service reached its custom
    /// series limit.
    pub custom_dropped: u64,
    /// Aggregates whose Apdex counts were re-read from their sketch because
    /// the sender's T differed from the service's (see the README).
    pub apdex_estimated: u64,
}

/// The write's minute buckets: one per route series, then the
/// per-service totals of each minute ([`with_totals`]).
pub(super) fn to_buckets(
    tenant: &str,
    now: UnixMs,
    merged: BTreeMap<(UnixMs, SeriesKey), BucketStats>,
) -> Vec<Bucket> {
    let routes = merged
        .into_iter()
        .map(|((start_ms, key), mut stats)| {
            stats.last_seen_ms = now;
            Bucket {
                tenant: tenant.into(),
                resolution: Resolution::Minute,
                start_ms,
                key,
                stats,
            }
        })
        .collect();
    with_totals(routes)
}

/// Validates an aggregated batch and builds its write. Call
/// [`RouteLimiter::admit_service`] first.
pub fn prepare_batch(
    tenant: &str,
    batch: IngestBatch,
    now: UnixMs,
    config: &CollectorConfig,
    oldest_ms: i64,
    routes: &RouteLimiter,
) -> Result<Prepared, ApiError> {
    let limits = &config.limits;
    check_name("batch_id", &batch.batch_id, limits.max_name_len, true)?;
    check_name("instance", &batch.instance, limits.max_name_len, false)?;
    check_count("routes", batch.routes.len(), limits.max_routes_per_batch)?;
    check_count(
        "sampled requests",
        batch.requests.len(),
        limits.max_samples_per_batch,
    )?;
    check_count(
        "custom metrics",
        batch.custom.len(),
        limits.max_custom_per_batch,
    )?;
    let start = check_timestamp("start_unix_ms", batch.start_unix_ms, now, oldest_ms, limits)?;
    if batch.interval_ms == 0 || batch.interval_ms > 3_600_000 {
        return Err(ApiError::bad_request(
            "invalid_interval",
            format!("interval_ms {} must be 1..=3600000", batch.interval_ms),
        ));
    }
    // T is a duration, so no more than the longest duration a request may
    // take (4T of a larger one would only say "everything tolerated").
    if !(batch.apdex_t_ms.is_finite()
        && batch.apdex_t_ms > 0.0
        && batch.apdex_t_ms <= limits.max_duration_ms as f64)
    {
        return Err(ApiError::bad_request(
            "invalid_apdex_t",
            format!(
                "apdex_t_ms {} must be a positive number of ms, at most {}",
                batch.apdex_t_ms, limits.max_duration_ms
            ),
        ));
    }
    check_count(
        "routes and clients",
        batch.routes.len() + batch.clients.len(),
        limits.max_routes_per_batch,
    )?;
    for r in &batch.routes {
        check_aggregate(r, limits)?;
        if r.method == CLIENT_METHOD {
            return Err(ApiError::bad_request(
                "invalid_method",
                format!("method {CLIENT_METHOD:?} is reserved for the clients list"),
            ));
        }
    }
    // The caller's side of outbound calls, checked as route aggregates
    // whose route is the peer (no Apdex counts: they stay out of totals).
    let clients: Vec<RouteAggregate> = batch
        .clients
        .iter()
        .map(|c| RouteAggregate {
            method: c.method.clone(),
            route: c.peer.clone(),
            status_class: c.status_class,
            caller: None,
            count: c.count,
            errors: c.errors,
            satisfied: 0,
            tolerating: 0,
            duration_ms: c.duration_ms.clone(),
        })
        .collect();
    for c in &clients {
        check_aggregate(c, limits)?;
        check_name("client peer", &c.route, limits.max_name_len, true)?;
    }
    let mut samples = Vec::with_capacity(batch.requests.len());
    for s in batch.requests {
        check_method(&s.method)?;
        check_name("path", &s.path, limits.max_route_len * 4, false)?;
        check_name("route", &s.route, limits.max_route_len, true)?;
        check_status(s.status)?;
        check_duration(s.duration_ms, limits)?;
        if let Some(c) = &s.caller {
            check_name("caller", c, limits.max_name_len, false)?;
        }
        if let Some(t) = &s.trace_id {
            check_name("trace_id", t, 64, false)?;
        }
        let ts = check_timestamp(
            "timestamp_unix_ms",
            s.timestamp_unix_ms,
            now,
            oldest_ms,
            limits,
        )?;
        samples.push(Sample {
            timestamp_ms: ts,
            instance: batch.instance.clone(),
            method: s.method,
            path: s.path,
            route: s.route,
            status: s.status,
            duration_ms: s.duration_ms,
            caller: s.caller.filter(|c| !c.is_empty()),
            trace_id: s.trace_id,
        });
    }
    for c in &batch.custom {
        check_name("custom metric name", &c.name, limits.max_name_len, true)?;
        if c.labels.len() > 32 {
            return Err(ApiError::bad_request(
                "too_many_labels",
                format!(
                    "custom metric {:?} has {} labels, over 32",
                    c.name,
                    c.labels.len()
                ),
            ));
        }
        for (k, v) in &c.labels {
            check_name("custom label name", k, limits.max_name_len, true)?;
            check_name("custom label value", v, limits.max_route_len, false)?;
        }
        if !c.value.is_finite() {
            return Err(ApiError::bad_request(
                "invalid_value",
                format!("custom metric {:?} has a non-finite value", c.name),
            ));
        }
    }

    // A custom value is the value at the end of the interval.
    let custom_at = if batch.custom.is_empty() {
        start
    } else {
        check_timestamp(
            "start_unix_ms + interval_ms",
            batch.start_unix_ms.saturating_add(batch.interval_ms),
            now,
            oldest_ms,
            limits,
        )?
    };

    // Everything is valid: only now touch the limiters.
    let mut custom: BTreeMap<CustomKey, CustomStats> = BTreeMap::new();
    let mut custom_dropped = 0;
    for c in batch.custom {
        let labels = canonical_labels(&c.labels);
        if !routes.custom_series(tenant, &batch.service, &c.name, &labels, limits) {
            custom_dropped += 1;
            continue;
        }
        let key = CustomKey {
            service: batch.service.clone(),
            name: c.name,
            labels,
            instance: batch.instance.clone(),
        };
        let stats = CustomStats::of(c.kind, c.value, custom_at);
        // A repeated series in one batch: the later entry wins.
        custom.insert(key, stats);
    }
    let custom_minute = Resolution::Minute.floor(custom_at);
    let custom = custom
        .into_iter()
        .map(|(key, stats)| CustomPoint {
            tenant: tenant.into(),
            resolution: Resolution::Minute,
            start_ms: custom_minute,
            key,
            stats,
        })
        .collect();
    let minute = Resolution::Minute.floor(start);
    let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
    let mut overflowed = 0;
    let mut requests = 0u64;
    // The sender counted Apdex against its own T; the service's T rules.
    let t = config.policy(&batch.service).apdex_t_ms;
    let retune = (batch.apdex_t_ms - t).abs() > 1e-9 * t;
    let mut apdex_estimated = 0;
    for mut r in batch.routes {
        if retune {
            (r.satisfied, r.tolerating) = apdex_from_sketch(&r, t);
            apdex_estimated += 1;
        }
        let (route, over) = routes.route(tenant, &batch.service, &r.route, limits);
        overflowed += u64::from(over);
        requests = requests.saturating_add(r.count);
        let key = SeriesKey {
            service: batch.service.clone(),
            method: r.method,
            route,
            status_class: r.status_class,
            caller: r.caller.unwrap_or_default(),
        };
        let stats = BucketStats {
            count: r.count,
            errors: r.errors,
            satisfied: r.satisfied,
            tolerating: r.tolerating,
            duration_ms: r.duration_ms,
            last_seen_ms: now,
        };
        merged.entry((minute, key)).or_default().merge(&stats);
    }
    for c in clients {
        // Peers count against the service's route limit like routes do.
        let (peer, over) = routes.route(tenant, &batch.service, &c.route, limits);
        overflowed += u64::from(over);
        let key = SeriesKey {
            service: batch.service.clone(),
            method: CLIENT_METHOD.to_owned(),
            route: peer,
            status_class: c.status_class,
            caller: String::new(),
        };
        let stats = BucketStats {
            count: c.count,
            errors: c.errors,
            satisfied: 0,
            tolerating: 0,
            duration_ms: c.duration_ms,
            last_seen_ms: now,
        };
        merged.entry((minute, key)).or_default().merge(&stats);
    }
    Ok(Prepared {
        write: IngestWrite {
            tenant: tenant.into(),
            service: batch.service,
            batch_id: Some(batch.batch_id),
            received_ms: now,
            buckets: to_buckets(tenant, now, merged),
            samples,
            custom,
        },
        overflowed,
        requests,
        custom_dropped,
        apdex_estimated,
    })
}

/// Apdex counts of an aggregate against threshold `t` ms, read from its
/// duration sketch: for a batch whose sender used another T than the
/// service's. Estimated at the sketch's bucket resolution (about 1 %
/// relative on the bound), not exact. Errors stay frustrated: the counts
/// cover the aggregate's non-error share, in proportion.
fn apdex_from_sketch(r: &RouteAggregate, t: f64) -> (u64, u64) {
    let timed = r.duration_ms.count();
    let ok = r.count.saturating_sub(r.errors);
    if timed == 0 || ok == 0 {
        return (0, 0);
    }
    let share = |n: u64| ((n as f64) * (ok as f64) / (timed as f64)).round() as u64;
    let at_most_t = r.duration_ms.count_at_most(t).min(timed);
    let at_most_4t = r.duration_ms.count_at_most(4.0 * t).clamp(at_most_t, timed);
    let satisfied = share(at_most_t).min(ok);
    let tolerating = share(at_most_4t - at_most_t).min(ok - satisfied);
    (satisfied, tolerating)
}
