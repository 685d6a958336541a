//! Ingest: turns a validated [`IngestBatch`] or [`RequestBatch`] into one
//! atomic [`IngestWrite`] of minute buckets and samples.
//!
//! Everything from the network is checked here against [`Limits`]: sizes,
//! names, counts, durations, statuses, timestamps. The first problem
//! refuses the whole batch with a clear [`ApiError`], so a sender never
//! half-succeeds. Routes beyond a service's limit are folded into
//! [`OVERFLOW_ROUTE`].

use crate::config::{CollectorConfig, Limits};
use crate::error::ApiError;
use crate::model::{
    Bucket, BucketQuery, BucketStats, IngestWrite, OVERFLOW_ROUTE, Resolution, Sample, SeriesKey,
    UnixMs,
};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;
use vitals::wire::{IngestBatch, RequestBatch, RouteAggregate};

/// Decodes a request body: gunzips it when `gzip` (refusing anything that
/// inflates past `max`), then parses JSON.
pub fn decode_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    gzip: bool,
    max: usize,
) -> Result<T, ApiError> {
    let inflated;
    let json = if gzip {
        let mut out = Vec::new();
        let mut reader = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
        reader.read_to_end(&mut out).map_err(|e| {
            ApiError::bad_request(
                "invalid_gzip",
                format!("the gzip body could not be read: {e}"),
            )
        })?;
        if out.len() > max {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "decompressed_too_large",
                format!("the body inflates past the {max}-byte limit; send smaller batches"),
            ));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    serde_json::from_slice(json).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not a valid batch: {e}"),
        )
    })
}

fn check_name(what: &str, value: &str, max: usize, required: bool) -> Result<(), ApiError> {
    if required && value.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!("{what} must not be empty"),
        ));
    }
    if value.len() > max {
        let head: String = value.chars().take(32).collect();
        return Err(ApiError::bad_request(
            "label_too_long",
            format!(
                "{what} is {} bytes, over the {max}-byte limit (starts {head:?})",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_label",
            format!("{what} {value:?} contains control characters"),
        ));
    }
    Ok(())
}

fn check_method(method: &str) -> Result<(), ApiError> {
    if method.is_empty()
        || method.len() > 16
        || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Err(ApiError::bad_request(
            "invalid_method",
            format!(
                "method {:?} is not an HTTP method (1 to 16 letters)",
                method.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(())
}

fn check_status(status: u16) -> Result<(), ApiError> {
    if !(100..=599).contains(&status) {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status {status} is outside 100..=599"),
        ));
    }
    Ok(())
}

fn check_duration(d: f64, limits: &Limits) -> Result<(), ApiError> {
    if !d.is_finite() || d < 0.0 || d > limits.max_duration_ms as f64 {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "duration_ms {d} must be a number from 0 to {} ms",
                limits.max_duration_ms
            ),
        ));
    }
    Ok(())
}

fn check_timestamp(
    what: &str,
    t: u64,
    now: UnixMs,
    oldest_ms: i64,
    limits: &Limits,
) -> Result<UnixMs, ApiError> {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    let newest = now.saturating_add(limits.max_future_ms as i64);
    let oldest = now.saturating_sub(oldest_ms);
    if t < oldest || t > newest {
        return Err(ApiError::bad_request(
            "timestamp_out_of_range",
            format!(
                "{what} {t} is outside the accepted range {oldest}..={newest} (ms since the epoch; check the sender's clock)"
            ),
        ));
    }
    Ok(t)
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{n} {what} in one batch, over the limit of {max}; send smaller batches"),
        ));
    }
    Ok(())
}

fn check_aggregate(r: &RouteAggregate, limits: &Limits) -> Result<(), ApiError> {
    check_method(&r.method)?;
    check_name("route", &r.route, limits.max_route_len, true)?;
    if let Some(c) = &r.caller {
        check_name("caller", c, limits.max_name_len, false)?;
    }
    if !(1..=5).contains(&r.status_class) {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status_class {} is outside 1..=5", r.status_class),
        ));
    }
    if r.count > limits.max_count {
        return Err(ApiError::bad_request(
            "count_out_of_range",
            format!(
                "count {} is over the limit of {}",
                r.count, limits.max_count
            ),
        ));
    }
    let apdex = r.satisfied.checked_add(r.tolerating);
    if r.errors > r.count || apdex.is_none_or(|a| a > r.count) || r.duration_ms.count() > r.count {
        return Err(ApiError::bad_request(
            "inconsistent_counts",
            format!(
                "route {:?}: errors ({}), satisfied + tolerating ({} + {}) and the sketch's count ({}) must each be at most count ({})",
                r.route,
                r.errors,
                r.satisfied,
                r.tolerating,
                r.duration_ms.count(),
                r.count
            ),
        ));
    }
    let sum = r.duration_ms.sum();
    let max_seen = r.duration_ms.quantile(1.0).unwrap_or(0.0);
    if !sum.is_finite() || sum < 0.0 || max_seen > limits.max_duration_ms as f64 * 1.01 {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "route {:?}: the duration sketch holds values outside 0..={} ms (sum {sum}, max {max_seen})",
                r.route, limits.max_duration_ms
            ),
        ));
    }
    Ok(())
}

/// Distinct routes per (tenant, service), to fold routes beyond the limit
/// into [`OVERFLOW_ROUTE`]. Owned by the collector, shared by request
/// tasks behind a mutex held only for set lookups. After a restart a
/// service's set is seeded from the last hour of its minute buckets.
#[derive(Debug, Default)]
pub struct RouteLimiter {
    seen: Mutex<HashMap<String, HashMap<String, HashSet<String>>>>,
}

impl RouteLimiter {
    /// Makes sure `service` of `tenant` is known: seeds its routes from
    /// the store the first time; refuses a service past the tenant's limit.
    pub async fn admit_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        now: UnixMs,
        limits: &Limits,
    ) -> Result<(), ApiError> {
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(services) = seen.get(tenant) {
                if services.contains_key(service) {
                    return Ok(());
                }
                if services.len() >= limits.max_services_per_tenant {
                    return Err(ApiError::bad_request(
                        "too_many_services",
                        format!(
                            "tenant has {} services, the limit; data for new service {service:?} is refused",
                            services.len()
                        ),
                    ));
                }
            }
        }
        let recent = store
            .read_buckets(BucketQuery {
                tenant: tenant.into(),
                service: Some(service.into()),
                resolution: Resolution::Minute,
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("the store could not be read: {e}"),
                )
            })?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let routes = seen
            .entry(tenant.into())
            .or_default()
            .entry(service.into())
            .or_default();
        for b in recent {
            if routes.len() < limits.max_routes_per_service {
                routes.insert(b.key.route);
            }
        }
        Ok(())
    }

    /// The route to store `route` under: itself while the service has room
    /// or already knows it, else [`OVERFLOW_ROUTE`] (second value true).
    pub fn route(
        &self,
        tenant: &str,
        service: &str,
        route: &str,
        limits: &Limits,
    ) -> (String, bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let routes = seen
            .entry(tenant.into())
            .or_default()
            .entry(service.into())
            .or_default();
        if routes.contains(route) {
            return (route.into(), false);
        }
        if routes.len() < limits.max_routes_per_service {
            routes.insert(route.into());
            return (route.into(), false);
        }
        (OVERFLOW_ROUTE.into(), true)
    }
}

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
}

fn to_buckets(
    tenant: &str,
    now: UnixMs,
    merged: BTreeMap<(UnixMs, SeriesKey), BucketStats>,
) -> Vec<Bucket> {
    merged
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
        .collect()
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
    if !(batch.apdex_t_ms.is_finite() && batch.apdex_t_ms > 0.0) {
        return Err(ApiError::bad_request(
            "invalid_apdex_t",
            format!("apdex_t_ms {} must be a positive number", batch.apdex_t_ms),
        ));
    }
    for r in &batch.routes {
        check_aggregate(r, limits)?;
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

    // Everything is valid: only now touch the route limiter.
    let minute = Resolution::Minute.floor(start);
    let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
    let mut overflowed = 0;
    let mut requests = 0u64;
    for r in batch.routes {
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
    Ok(Prepared {
        write: IngestWrite {
            tenant: tenant.into(),
            service: batch.service,
            batch_id: Some(batch.batch_id),
            received_ms: now,
            buckets: to_buckets(tenant, now, merged),
            samples,
        },
        overflowed,
        requests,
    })
}

/// Validates per-request records and aggregates them into minute buckets,
/// with Apdex counted exactly against the service's threshold `apdex_t_ms`.
/// The last `samples_per_request_batch` records are kept as samples.
pub fn prepare_records(
    tenant: &str,
    batch: RequestBatch,
    now: UnixMs,
    config: &CollectorConfig,
    oldest_ms: i64,
    routes: &RouteLimiter,
) -> Result<Prepared, ApiError> {
    let limits = &config.limits;
    if let Some(id) = &batch.batch_id {
        check_name("batch_id", id, limits.max_name_len, true)?;
    }
    let instance = batch.instance.unwrap_or_default();
    check_name("instance", &instance, limits.max_name_len, false)?;
    check_count(
        "requests",
        batch.requests.len(),
        limits.max_records_per_batch,
    )?;
    let t = config.policy(&batch.service).apdex_t_ms;
    let mut checked = Vec::with_capacity(batch.requests.len());
    for r in batch.requests {
        check_method(&r.method)?;
        check_status(r.status)?;
        check_duration(r.duration_ms, limits)?;
        let path = r.path.unwrap_or_default();
        check_name("path", &path, limits.max_route_len * 4, false)?;
        let route = match r.route {
            Some(route) if !route.is_empty() => route,
            _ => path
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        if route.is_empty() {
            return Err(ApiError::bad_request(
                "missing_field",
                "every request needs a route or a path",
            ));
        }
        check_name("route", &route, limits.max_route_len, true)?;
        let caller = r.caller.filter(|c| !c.is_empty());
        if let Some(c) = &caller {
            check_name("caller", c, limits.max_name_len, false)?;
        }
        if let Some(id) = &r.trace_id {
            check_name("trace_id", id, 64, false)?;
        }
        let ts = match r.timestamp_ms {
            Some(ts) => check_timestamp("timestamp_ms", ts, now, oldest_ms, limits)?,
            None => now,
        };
        checked.push(Sample {
            timestamp_ms: ts,
            instance: instance.clone(),
            method: r.method,
            path,
            route,
            status: r.status,
            duration_ms: r.duration_ms,
            caller,
            trace_id: r.trace_id,
        });
    }
    // Routes after the limit, decided once per distinct route of the batch.
    let mut overflowed = 0;
    let mut route_of: HashMap<&str, String> = HashMap::new();
    for s in &checked {
        if !route_of.contains_key(s.route.as_str()) {
            let (r, over) = routes.route(tenant, &batch.service, &s.route, limits);
            overflowed += u64::from(over);
            route_of.insert(&s.route, r);
        }
    }
    // Aggregate under borrowed keys: no allocation per record.
    type Key<'a> = (UnixMs, &'a str, &'a str, u8, &'a str);
    let mut by_key: HashMap<Key<'_>, BucketStats> = HashMap::new();
    for s in &checked {
        let route = route_of
            .get(s.route.as_str())
            .map_or(s.route.as_str(), String::as_str);
        let key = (
            Resolution::Minute.floor(s.timestamp_ms),
            s.method.as_str(),
            route,
            (s.status / 100) as u8,
            s.caller.as_deref().unwrap_or(""),
        );
        let stats = by_key.entry(key).or_default();
        stats.count += 1;
        stats.errors += u64::from(s.status >= 500);
        if s.duration_ms <= t {
            stats.satisfied += 1;
        } else if s.duration_ms <= 4.0 * t {
            stats.tolerating += 1;
        }
        stats.duration_ms.record(s.duration_ms);
    }
    let merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = by_key
        .into_iter()
        .map(|((minute, method, route, status_class, caller), stats)| {
            let key = SeriesKey {
                service: batch.service.clone(),
                method: method.into(),
                route: route.into(),
                status_class,
                caller: caller.into(),
            };
            ((minute, key), stats)
        })
        .collect();
    let requests = checked.len() as u64;
    let keep = checked
        .len()
        .saturating_sub(limits.samples_per_request_batch);
    let samples = checked.split_off(keep);
    Ok(Prepared {
        write: IngestWrite {
            tenant: tenant.into(),
            service: batch.service,
            batch_id: batch.batch_id,
            received_ms: now,
            buckets: to_buckets(tenant, now, merged),
            samples,
        },
        overflowed,
        requests,
    })
}

/// Checks a service name (required, at most `max_name_len` bytes, no
/// control characters); done before anything else about a batch.
pub fn check_service(service: &str, limits: &Limits) -> Result<(), ApiError> {
    check_name("service", service, limits.max_name_len, true)
}
