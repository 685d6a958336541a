//! Ingest: turns a validated [`IngestBatch`] or [`RequestBatchRef`] into one
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
    Bucket, BucketQuery, BucketStats, CustomKey, CustomPoint, CustomQuery, CustomStats,
    IngestWrite, OVERFLOW_ROUTE, Resolution, Sample, SeriesKey, SeriesSelect, UnixMs,
    canonical_labels, with_totals,
};
use crate::store::Store;
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;
use vitals::wire::{IngestBatch, RequestBatchRef, RouteAggregate};

/// A hash map with foldhash's hasher for the per-request maps of a records
/// batch: randomly seeded per map like std's SipHash, and several times
/// cheaper on the short strings (methods, routes) it hashes per record.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Decodes a request body: gunzips it when `gzip` (refusing anything that
/// inflates past `max`), then parses JSON.
pub fn decode_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    gzip: bool,
    max: usize,
) -> Result<T, ApiError> {
    parse_body(&inflate_body(body, gzip, max)?)
}

/// The JSON text of a request body: the body itself, or when `gzip` its
/// inflated form (refusing anything that inflates past `max`). Borrowed
/// when there is nothing to inflate, so [`parse_body`] can read strings in
/// place.
pub fn inflate_body(body: &[u8], gzip: bool, max: usize) -> Result<Cow<'_, [u8]>, ApiError> {
    if !gzip {
        return Ok(Cow::Borrowed(body));
    }
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
    Ok(Cow::Owned(out))
}

/// Parses a JSON body into `T`, which may borrow from it (see
/// [`RequestBatchRef`]); a malformed body is an `invalid_json` error.
pub fn parse_body<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Result<T, ApiError> {
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
    if has_control(value) {
        return Err(ApiError::bad_request(
            "invalid_label",
            format!("{what} {value:?} contains control characters"),
        ));
    }
    Ok(())
}

/// Whether `value` holds a control character (`char::is_control`: U+0000
/// to U+001F and U+007F to U+009F). Every one of them is encoded with a
/// byte below 0x20, 0x7F, or the lead byte 0xC2, so a byte scan rules
/// almost every string out before the exact per-character test.
#[inline]
fn has_control(value: &str) -> bool {
    value.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) && value.chars().any(char::is_control)
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

/// Distinct services per tenant, to refuse services beyond
/// [`Limits::max_services_per_tenant`]; distinct routes per (tenant,
/// service), to fold routes beyond the limit into [`OVERFLOW_ROUTE`]; and
/// distinct custom series per (tenant, service), to drop values of series
/// beyond [`Limits::max_custom_series_per_service`]. Owned by the
/// collector, shared by request tasks behind mutexes held only for set
/// lookups (never across a store read).
///
/// The sets start empty in a new process: a tenant's service set is seeded
/// from the store's service list the first time the tenant sends, so the
/// limit holds across restarts; a service's route and custom series sets
/// are seeded from the last hour of its minute buckets and custom points.
#[derive(Debug, Default)]
pub struct RouteLimiter {
    services: Mutex<HashMap<String, HashSet<String>>>,
    seen: Mutex<HashMap<String, HashMap<String, HashSet<String>>>>,
    custom: Mutex<CustomSeen>,
}

/// `(tenant, service)` → the `(name, labels)` custom series it has.
type CustomSeen = HashMap<(String, String), HashSet<(String, String)>>;

impl RouteLimiter {
    /// Makes sure `service` of `tenant` is known: counts it against the
    /// tenant's service limit (refusing a service past it), then seeds its
    /// routes and custom series from the store the first time.
    pub async fn admit_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        now: UnixMs,
        limits: &Limits,
    ) -> Result<(), ApiError> {
        self.count_service(store, tenant, service, limits).await?;
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(tenant).is_some_and(|s| s.contains_key(service)) {
                return Ok(());
            }
        }
        let recent = store
            .read_buckets(BucketQuery {
                tenant: tenant.into(),
                service: Some(service.into()),
                resolution: Resolution::Minute,
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
                series: SeriesSelect::Routes,
            })
            .await
            .map_err(ApiError::store_unavailable)?;
        let custom = store
            .read_custom(CustomQuery {
                tenant: tenant.into(),
                service: Some(service.into()),
                name: None,
                resolution: Resolution::Minute,
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
            })
            .await
            .map_err(ApiError::store_unavailable)?;
        {
            let mut seen = self.custom.lock().unwrap_or_else(|p| p.into_inner());
            let series = seen.entry((tenant.into(), service.into())).or_default();
            for p in custom {
                if series.len() < limits.max_custom_series_per_service {
                    series.insert((p.key.name, p.key.labels));
                }
            }
        }
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

    /// Counts `service` among `tenant`'s services, or refuses it when the
    /// tenant already has [`Limits::max_services_per_tenant`] others. The
    /// first call for a tenant reads its services from the store, so a
    /// restarted collector knows the services stored before. The check and
    /// the insert happen under one lock, so concurrent first batches of
    /// new services cannot pass the limit together.
    async fn count_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        limits: &Limits,
    ) -> Result<(), ApiError> {
        let loaded = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(tenant);
        if !loaded {
            let stored = store
                .services(tenant.into())
                .await
                .map_err(ApiError::store_unavailable)?;
            self.services
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(tenant.into())
                .or_insert_with(|| stored.into_iter().map(|s| s.service).collect());
        }
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let known = services.entry(tenant.into()).or_default();
        if known.contains(service) {
            return Ok(());
        }
        let max = limits.max_services_per_tenant;
        if known.len() >= max {
            return Err(ApiError::bad_request(
                "too_many_services",
                format!(
                    "the tenant has {} services, at its limit of {max} (limits.max_services_per_tenant); data for new service {service:?} is refused: send it under an existing service or raise the limit",
                    known.len()
                ),
            ));
        }
        known.insert(service.into());
        Ok(())
    }

    /// Whether custom series `(name, labels)` of `service` may be stored:
    /// yes while the service has room or already knows it.
    pub fn custom_series(
        &self,
        tenant: &str,
        service: &str,
        name: &str,
        labels: &str,
        limits: &Limits,
    ) -> bool {
        let mut seen = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        let series = seen.entry((tenant.into(), service.into())).or_default();
        let key = (name.to_string(), labels.to_string());
        if series.contains(&key) {
            return true;
        }
        if series.len() < limits.max_custom_series_per_service {
            series.insert(key);
            return true;
        }
        false
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
    /// Custom values dropped because their service reached its custom
    /// series limit.
    pub custom_dropped: u64,
    /// Aggregates whose Apdex counts were re-read from their sketch because
    /// the sender's T differed from the service's (see the README).
    pub apdex_estimated: u64,
}

/// The write's minute buckets: one per route series, then the
/// per-service totals of each minute ([`with_totals`]).
fn to_buckets(
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

/// The series of one record of a batch, borrowing from the body: what
/// `prepare_records` aggregates under before the route limiter is asked.
#[derive(Hash)]
struct RecordKey<'a> {
    minute: UnixMs,
    method: &'a str,
    route: &'a str,
    status_class: u8,
    caller: &'a str,
}

impl PartialEq for RecordKey<'_> {
    /// Compared inline: the strings are short (methods, routes), and the
    /// call into libc's `memcmp` per string dominated the map lookups (one
    /// per record) in `perf`.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        #[inline]
        fn same(a: &str, b: &str) -> bool {
            a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
        }
        self.minute == other.minute
            && self.status_class == other.status_class
            && same(self.route, other.route)
            && same(self.method, other.method)
            && same(self.caller, other.caller)
    }
}

impl Eq for RecordKey<'_> {}

/// Validates per-request records and aggregates them into minute buckets,
/// with Apdex counted exactly against the service's threshold `apdex_t_ms`.
/// The last `samples_per_request_batch` records are kept as samples.
///
/// Hot path of `POST /v1/requests`: the records are read in place (their
/// strings borrowed from the body), aggregated in the same pass that
/// validates them, and only the records kept as samples are copied.
pub fn prepare_records(
    tenant: &str,
    batch: RequestBatchRef<'_>,
    now: UnixMs,
    config: &CollectorConfig,
    oldest_ms: i64,
    routes: &RouteLimiter,
) -> Result<Prepared, ApiError> {
    let limits = &config.limits;
    if let Some(id) = &batch.batch_id {
        check_name("batch_id", id, limits.max_name_len, true)?;
    }
    let instance = batch.instance.as_deref().unwrap_or_default();
    check_name("instance", instance, limits.max_name_len, false)?;
    check_count(
        "requests",
        batch.requests.len(),
        limits.max_records_per_batch,
    )?;
    let t = config.policy(&batch.service).apdex_t_ms;
    let keep_from = batch
        .requests
        .len()
        .saturating_sub(limits.samples_per_request_batch);
    let mut samples = Vec::with_capacity(batch.requests.len() - keep_from);
    // Aggregated under the record's own route; the route limiter is asked
    // only once everything is valid, below. Keys borrow from the body.
    let mut by_key: FastMap<RecordKey<'_>, BucketStats> = FastMap::default();
    // Distinct routes in order of first appearance: the order the route
    // limiter sees them in, as when it was asked record by record.
    let mut route_order: Vec<&str> = Vec::new();
    let mut seen_routes: FastMap<&str, ()> = FastMap::default();
    for (i, r) in batch.requests.iter().enumerate() {
        check_method(&r.method)?;
        check_status(r.status)?;
        check_duration(r.duration_ms, limits)?;
        let path = r.path.as_deref().unwrap_or_default();
        check_name("path", path, limits.max_route_len * 4, false)?;
        let route = match r.route.as_deref() {
            Some(route) if !route.is_empty() => route,
            _ => path.split(['?', '#']).next().unwrap_or_default(),
        };
        if route.is_empty() {
            return Err(ApiError::bad_request(
                "missing_field",
                "every request needs a route or a path",
            ));
        }
        check_name("route", route, limits.max_route_len, true)?;
        let caller = r.caller.as_deref().filter(|c| !c.is_empty());
        if let Some(c) = caller {
            check_name("caller", c, limits.max_name_len, false)?;
        }
        if let Some(id) = &r.trace_id {
            check_name("trace_id", id, 64, false)?;
        }
        let ts = match r.timestamp_ms {
            Some(ts) => check_timestamp("timestamp_ms", ts, now, oldest_ms, limits)?,
            None => now,
        };
        if i >= keep_from {
            samples.push(Sample {
                timestamp_ms: ts,
                instance: instance.to_string(),
                method: r.method.to_string(),
                path: path.to_string(),
                route: route.to_string(),
                status: r.status,
                duration_ms: r.duration_ms,
                caller: caller.map(str::to_string),
                trace_id: r.trace_id.as_deref().map(str::to_string),
            });
        }
        let key = RecordKey {
            minute: Resolution::Minute.floor(ts),
            method: &r.method,
            route,
            status_class: (r.status / 100) as u8,
            caller: caller.unwrap_or(""),
        };
        let stats = match by_key.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if seen_routes.insert(route, ()).is_none() {
                    route_order.push(route);
                }
                e.insert(BucketStats::default())
            }
        };
        stats.count += 1;
        let error = r.status >= 500;
        stats.errors += u64::from(error);
        // An error is "frustrated" whatever its speed (Apdex spec).
        if error {
            // Neither satisfied nor tolerating.
        } else if r.duration_ms <= t {
            stats.satisfied += 1;
        } else if r.duration_ms <= 4.0 * t {
            stats.tolerating += 1;
        }
        stats.duration_ms.record(r.duration_ms);
    }
    // Everything is valid: only now touch the route limiter, once per
    // distinct route of the batch.
    let mut overflowed = 0;
    let mut route_of: FastMap<&str, String> = FastMap::default();
    for route in route_order {
        let (r, over) = routes.route(tenant, &batch.service, route, limits);
        overflowed += u64::from(over);
        route_of.insert(route, r);
    }
    let service = batch.service.to_string();
    let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
    for (k, stats) in by_key {
        let RecordKey {
            minute,
            method,
            route,
            status_class,
            caller,
        } = k;
        let key = SeriesKey {
            service: service.clone(),
            method: method.into(),
            route: route_of
                .get(route)
                .map_or_else(|| route.to_string(), String::clone),
            status_class,
            caller: caller.into(),
        };
        // Routes folded into the overflow route share one bucket.
        match merged.entry((minute, key)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(stats);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&stats),
        }
    }
    Ok(Prepared {
        write: IngestWrite {
            tenant: tenant.into(),
            service,
            batch_id: batch.batch_id.map(Cow::into_owned),
            received_ms: now,
            buckets: to_buckets(tenant, now, merged),
            samples,
            custom: Vec::new(),
        },
        overflowed,
        requests: batch.requests.len() as u64,
        custom_dropped: 0,
        apdex_estimated: 0,
    })
}

/// Checks a service name (required, at most `max_name_len` bytes, no
/// control characters); done before anything else about a batch.
pub fn check_service(service: &str, limits: &Limits) -> Result<(), ApiError> {
    check_name("service", service, limits.max_name_len, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals::wire::{RequestBatch, RequestRecord};

    /// Deterministic pseudo-random numbers (no dependency for a test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// What `prepare_records` must produce, computed the plain way: every
    /// record made owned, the route limiter asked per record in order,
    /// aggregated under owned keys, the last N records kept as samples.
    fn reference(
        tenant: &str,
        batch: &RequestBatch,
        now: UnixMs,
        config: &CollectorConfig,
        routes: &RouteLimiter,
    ) -> (Vec<Bucket>, Vec<Sample>, u64) {
        let limits = &config.limits;
        let t = config.policy(&batch.service).apdex_t_ms;
        let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
        let mut all = Vec::new();
        let mut overflowed = 0;
        let mut asked = HashSet::new();
        for r in &batch.requests {
            let path = r.path.clone().unwrap_or_default();
            let route = match &r.route {
                Some(route) if !route.is_empty() => route.clone(),
                _ => path
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            let ts = r.timestamp_ms.map_or(now, |t| t as i64);
            let caller = r.caller.clone().filter(|c| !c.is_empty());
            let (stored, over) = routes.route(tenant, &batch.service, &route, limits);
            if asked.insert(route.clone()) {
                overflowed += u64::from(over);
            }
            let key = SeriesKey {
                service: batch.service.clone(),
                method: r.method.clone(),
                route: stored,
                status_class: (r.status / 100) as u8,
                caller: caller.clone().unwrap_or_default(),
            };
            let stats = merged
                .entry((Resolution::Minute.floor(ts), key))
                .or_default();
            stats.count += 1;
            let error = r.status >= 500;
            stats.errors += u64::from(error);
            if !error && r.duration_ms <= t {
                stats.satisfied += 1;
            } else if !error && r.duration_ms <= 4.0 * t {
                stats.tolerating += 1;
            }
            stats.duration_ms.record(r.duration_ms);
            all.push(Sample {
                timestamp_ms: ts,
                instance: batch.instance.clone().unwrap_or_default(),
                method: r.method.clone(),
                path,
                route,
                status: r.status,
                duration_ms: r.duration_ms,
                caller,
                trace_id: r.trace_id.clone(),
            });
        }
        let keep = all.len().saturating_sub(limits.samples_per_request_batch);
        (
            to_buckets(tenant, now, merged),
            all.split_off(keep),
            overflowed,
        )
    }

    fn random_batch(seed: u64, n: usize, now: UnixMs) -> RequestBatch {
        let mut rng = Rng(seed);
        let routes = ["/users/{id}", "/orders", "/héllo/🦀", "", "/a/b"];
        let callers = [None, Some(""), Some("web"), Some("mobile")];
        let requests = (0..n)
            .map(|_| {
                let r = rng.next();
                let route = routes[(r % 5) as usize];
                RequestRecord {
                    method: ["GET", "POST", "_OTHER"][(r >> 3) as usize % 3].into(),
                    route: (r % 7 != 0).then(|| route.to_string()),
                    path: Some(format!("/p/{}?q={}#f", r % 13, r % 3)),
                    status: [200, 201, 404, 500, 503, 302][(r >> 5) as usize % 6],
                    // Multiples of 1/8 ms: sums are exact in any order.
                    duration_ms: (rng.next() % 40_000) as f64 / 8.0,
                    caller: callers[(r >> 7) as usize % 4].map(str::to_string),
                    timestamp_ms: (r % 11 != 0).then(|| (now - (r % 300_000) as i64) as u64),
                    trace_id: (r % 5 == 0).then(|| format!("{r:032x}")),
                }
            })
            .collect();
        RequestBatch {
            service: "svc".into(),
            instance: Some("i-1".into()),
            batch_id: Some(format!("b{seed}")),
            requests,
        }
    }

    #[test]
    fn records_match_the_plain_aggregation() {
        let now = 1_700_000_000_000;
        for (seed, n, max_routes, samples) in [
            (1, 1000, 2000, 100),
            (2, 3000, 3, 100),
            (3, 50, 2000, 100),
            (4, 400, 1, 0),
            (5, 0, 2000, 100),
        ] {
            let mut config = CollectorConfig::default();
            config.limits.max_routes_per_service = max_routes;
            config.limits.samples_per_request_batch = samples;
            let batch = random_batch(seed, n, now);
            let body = serde_json::to_vec(&batch).expect("serializes");
            let view: RequestBatchRef<'_> = parse_body(&body).expect("parses");
            let got = prepare_records("t", view, now, &config, 3_600_000, &RouteLimiter::default())
                .expect("valid batch");
            let (buckets, samples, overflowed) =
                reference("t", &batch, now, &config, &RouteLimiter::default());
            assert_eq!(got.write.buckets, buckets, "seed {seed}");
            assert_eq!(got.write.samples, samples, "seed {seed}");
            assert_eq!(got.overflowed, overflowed, "seed {seed}");
            assert_eq!(got.requests, n as u64);
            assert_eq!(got.write.batch_id, batch.batch_id);
            assert_eq!(got.write.service, "svc");
        }
    }

    #[test]
    fn escaped_and_unicode_strings_are_read_unescaped() {
        let now = 1_700_000_000_000;
        let body = r#"{"service":"api","instance":"i\u002d1","requests":[
            {"method":"GET","path":"\/users\/1?x=\"y\"","status":200,"duration_ms":2,"caller":"caf\u00e9","timestamp_ms":1700000000000},
            {"method":"G\u0045T","route":"\/users\/{id}","path":"/users/2","status":200,"duration_ms":4},
            {"method":"GET","route":"/🦀/\ud83e\udd80","status":503,"duration_ms":8,"trace_id":"\u0074"}]}"#
            .as_bytes();
        let config = CollectorConfig::default();
        for gzip in [false, true] {
            let wire = if gzip {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(body).expect("gzip");
                e.finish().expect("gzip")
            } else {
                body.to_vec()
            };
            let json = inflate_body(&wire, gzip, 1 << 20).expect("inflates");
            assert_eq!(matches!(json, Cow::Owned(_)), gzip);
            let view: RequestBatchRef<'_> = parse_body(&json).expect("parses");
            let got = prepare_records("t", view, now, &config, 3_600_000, &RouteLimiter::default())
                .expect("valid");
            let keys: Vec<(&str, &str, &str)> = got
                .write
                .buckets
                .iter()
                .filter(|b| !b.key.is_total())
                .map(|b| {
                    (
                        b.key.method.as_str(),
                        b.key.route.as_str(),
                        b.key.caller.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                keys,
                [
                    ("GET", "/users/1", "café"),
                    ("GET", "/users/{id}", ""),
                    ("GET", "/🦀/🦀", "")
                ]
            );
            let s = &got.write.samples;
            assert_eq!(s.len(), 3);
            assert_eq!(s[0].path, "/users/1?x=\"y\"");
            assert_eq!(s[0].instance, "i-1");
            assert_eq!(s[1].method, "GET");
            assert_eq!(s[2].trace_id.as_deref(), Some("t"));
        }
    }

    #[test]
    fn hostile_records_are_refused_with_their_reason() {
        let now = 1_700_000_000_000;
        let config = CollectorConfig::default();
        let cases: &[(&str, &str)] = &[
            (
                r#"{"method":"GE T","route":"/a","status":200,"duration_ms":1}"#,
                "invalid_method",
            ),
            (
                r#"{"method":"","route":"/a","status":200,"duration_ms":1}"#,
                "invalid_method",
            ),
            (
                r#"{"method":"GET","route":"/a","status":600,"duration_ms":1}"#,
                "invalid_status",
            ),
            (
                r#"{"method":"GET","route":"/a","status":200,"duration_ms":-1}"#,
                "invalid_duration",
            ),
            (
                r#"{"method":"GET","status":200,"duration_ms":1}"#,
                "missing_field",
            ),
            (
                r#"{"method":"GET","path":"?q","status":200,"duration_ms":1}"#,
                "missing_field",
            ),
            (
                r#"{"method":"GET","route":"/a\u0085","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a\u007f","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","path":"\n","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","caller":"\u009f","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","trace_id":"\t","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","status":200,"duration_ms":1,"timestamp_ms":5}"#,
                "timestamp_out_of_range",
            ),
        ];
        for (record, reason) in cases {
            // The bad record last, after good ones: nothing is half-taken.
            let body = format!(
                r#"{{"service":"s","requests":[{{"method":"GET","route":"/ok","status":200,"duration_ms":1}},{record}]}}"#
            );
            let view: RequestBatchRef<'_> = parse_body(body.as_bytes()).expect("parses");
            let limiter = RouteLimiter::default();
            let err =
                prepare_records("t", view, now, &config, 3_600_000, &limiter).expect_err(record);
            assert_eq!(err.reason, *reason, "{record}: {}", err.message);
            assert!(
                limiter.seen.lock().expect("lock").is_empty(),
                "a refused batch never touches the route limiter"
            );
        }
        let mut small = CollectorConfig::default();
        small.limits.max_records_per_batch = 1;
        let body = br#"{"service":"s","requests":[{"method":"GET","route":"/a","status":200,"duration_ms":1},{"method":"GET","route":"/a","status":200,"duration_ms":1}]}"#;
        let view: RequestBatchRef<'_> = parse_body(body).expect("parses");
        let err = prepare_records("t", view, now, &small, 3_600_000, &RouteLimiter::default())
            .expect_err("too many");
        assert_eq!(err.reason, "batch_too_large");
    }

    #[test]
    fn control_characters_are_found_exactly() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let s = format!("ab{c}");
            assert_eq!(has_control(&s), c.is_control(), "{:x}", c as u32);
        }
    }
}
