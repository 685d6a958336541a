//! The query API handlers (read keys): services overview, per-service
//! stats, routes, timeseries and recent samples, custom metrics, and
//! caller → callee edges. Every parameter is validated; a bad one is a
//! counted 400.
//!
//! Custom metrics (pushed in `/v1/ingest` batches, stored per minute and
//! rolled up to 5 min and 1 h like buckets):
//! - `GET /v1/services/{service}/custom?window=15m` lists the service's
//!   custom series seen in the window: name, kind, labels, the latest
//!   value summed over instances, and for counters `rate_per_sec` over the
//!   window (reset-aware per instance).
//! - `GET /v1/services/{service}/custom/{name}?window=1h&step=1m` gives,
//!   per label set, one point per step: a gauge's sum over instances of
//!   each one's last value in the step, a counter's increase per second.
//!
//! See [`crate::custom_metrics`] for the exact rules.

use super::refusals::{ApiPath, check_path_service};
use super::state::Collector;
use crate::clock::now_ms;
use crate::custom_metrics;
use crate::error::ApiError;
use crate::model::{
    Bucket, BucketQuery, CustomPoint, CustomQuery, Role, SeriesSelect, ServiceRecord, UnixMs,
};
use crate::query::{self, Figures, Metric, Window};
use crate::store::fresh;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;

/// Longest query string accepted, bytes.
pub const MAX_QUERY_LEN: usize = 1024;
/// Most samples one `/recent` answer holds.
pub const MAX_RECENT: usize = 1000;

/// Parses a query string, refusing unknown or repeated parameters.
pub(super) fn params(
    raw: Option<String>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_QUERY_LEN {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("the query string is over {MAX_QUERY_LEN} bytes"),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("the query string could not be parsed: {e}"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!(
                    "unknown query parameter {:?}; this endpoint takes {}",
                    k.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameter {k:?} is given twice"),
            ));
        }
    }
    Ok(out)
}

/// Most routes a `limit` on `/routes` may ask for (every route of a
/// service fits: routes past `max_routes_per_service` fold into one).
pub const MAX_ROUTES_LIMIT: usize = 100_000;

/// The `limit` parameter: `default` when absent, else 1 to `max`.
pub(super) fn parse_limit(
    p: &BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!(
                        "limit {:?} must be a whole number from 1 to {max}",
                        v.chars().take(32).collect::<String>()
                    ),
                )
            }),
    }
}

fn window_of(
    c: &Collector,
    p: &BTreeMap<String, String>,
    default: &str,
    now: UnixMs,
) -> Result<Window, ApiError> {
    Window::parse(
        p.get("window").map_or(default, String::as_str),
        now,
        &c.inner.retention,
    )
}

fn bucket_query(
    tenant: &str,
    service: Option<&str>,
    w: &Window,
    series: SeriesSelect,
) -> BucketQuery {
    BucketQuery {
        tenant: tenant.into(),
        service: service.map(str::to_string),
        resolution: w.resolution,
        start_ms: w.from_ms,
        end_ms: w.to_ms + 1,
        series,
    }
}

/// The per-service total series of the window: what every view over
/// whole services reads (a few rows per service instead of one per route).
async fn read_totals(
    c: &Collector,
    tenant: &str,
    service: Option<&str>,
    w: &Window,
) -> Result<Vec<Bucket>, ApiError> {
    fresh::buckets(
        &*c.inner.store,
        bucket_query(tenant, service, w, SeriesSelect::Totals),
    )
    .await
    .map_err(ApiError::store_unavailable)
}

/// The window (`window=`, default 1 h) and step (`step=`) of a series
/// query, read at the resolution the step needs.
fn stepped_window(c: &Collector, p: &BTreeMap<String, String>) -> Result<(Window, i64), ApiError> {
    let now = now_ms();
    let w = window_of(c, p, "1h", now)?;
    let step = query::parse_step(p.get("step").map(String::as_str), w.window_ms)?;
    let w = Window::with_resolution(
        w.window_ms,
        query::resolution_for_step(step, w.resolution),
        now,
    );
    Ok((w, step))
}

/// Finds a service of the tenant, or a 404; a name no service can have
/// (too long, control characters) is a 400. Every per-service handler
/// calls this, so it is where the `{service}` path segment is checked.
pub(super) async fn known_service(
    c: &Collector,
    tenant: &str,
    service: &str,
) -> Result<ServiceRecord, ApiError> {
    check_path_service(service, c.inner.config.limits.max_name_len)?;
    c.inner
        .store
        .services(tenant.into())
        .await
        .map_err(ApiError::store_unavailable)?
        .into_iter()
        .find(|s| s.service == service)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_service",
                format!(
                    "no data for service {:?}",
                    service.chars().take(128).collect::<String>()
                ),
            )
        })
}

/// Runs one read handler: authorizes a read key, validates the query
/// string against `allowed`, then answers `body`'s JSON, or its error
/// (counted, see `Collector::fail`). Every query endpoint goes through it,
/// so none can skip the key or the parameter check.
pub(super) async fn answer<'a, F, Fut>(
    c: &'a Collector,
    headers: &HeaderMap,
    q: Option<String>,
    allowed: &[&str],
    body: F,
) -> Response
where
    F: FnOnce(&'a Collector, String, BTreeMap<String, String>) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, ApiError>>,
{
    let result = async {
        let key = c.authorize(headers, Role::Read).await?;
        let p = params(q, allowed)?;
        body(c, key.tenant, p).await
    }
    .await;
    match result {
        Ok(json) => axum::Json(json).into_response(),
        Err(e) => c.fail(e),
    }
}

#[derive(Serialize)]
struct WindowInfo {
    window_ms: i64,
    resolution: &'static str,
    from_ms: UnixMs,
    to_ms: UnixMs,
}

impl From<&Window> for WindowInfo {
    fn from(w: &Window) -> Self {
        WindowInfo {
            window_ms: w.window_ms,
            resolution: w.resolution.as_str(),
            from_ms: w.from_ms,
            to_ms: w.to_ms,
        }
    }
}

pub(super) async fn services(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        &c,
        &headers,
        q,
        &["sparkline", "window"],
        |c, tenant, p| async move {
            let now = now_ms();
            let w = window_of(c, &p, "15m", now)?;
            let spark = match p.get("sparkline").map(String::as_str) {
                None | Some("0") => None,
                Some("1") => Some(query::sparkline_step(&w)),
                Some(other) => {
                    return Err(ApiError::bad_request(
                        "invalid_sparkline",
                        format!(
                            "sparkline {:?} must be 1 or 0",
                            other.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            };
            let known = c
                .inner
                .store
                .services(tenant.clone())
                .await
                .map_err(ApiError::store_unavailable)?;
            let buckets = read_totals(c, &tenant, None, &w).await?;
            let mut by: BTreeMap<&str, Vec<&Bucket>> = BTreeMap::new();
            for b in &buckets {
                by.entry(&b.key.service).or_default().push(b);
            }
            let list: Vec<_> = known
                .iter()
                .map(|s| {
                    let own = by.get(s.service.as_str()).map_or(&[][..], Vec::as_slice);
                    let total = query::total(own.iter().copied());
                    let f = Figures::of(&total, w.span_secs());
                    let policy = c.inner.config.policy(&s.service);
                    let (health, reasons) = query::health(&f, Some(s.last_seen_ms), &policy, now);
                    let mut entry = json!({
                        "service": s.service,
                        "requests": f.requests,
                        "rate_per_sec": f.rate_per_sec,
                        "errors": f.errors,
                        "error_rate": f.error_rate,
                        "p95_ms": f.p95_ms,
                        "apdex": f.apdex,
                        "last_seen_ms": s.last_seen_ms,
                        "apdex_t_ms": policy.apdex_t_ms,
                        "objective_p95_ms": policy.objective_p95_ms,
                        "health": health,
                        "health_reasons": reasons,
                    });
                    if let (Some(step), Some(obj)) = (spark, entry.as_object_mut()) {
                        let points =
                            query::sparkline(own.iter().copied(), w.from_ms, w.to_ms, step);
                        obj.insert("sparkline".into(), json!(points));
                    }
                    entry
                })
                .collect();
            Ok(json!({ "window": WindowInfo::from(&w), "services": list }))
        },
    )
    .await
}

pub(super) async fn stats(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(service): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&c, &headers, q, &["window"], |c, tenant, p| async move {
        let now = now_ms();
        let w = window_of(c, &p, "15m", now)?;
        let rec = known_service(c, &tenant, &service).await?;
        let buckets = read_totals(c, &tenant, Some(&service), &w).await?;
        let total = query::total(&buckets);
        let f = Figures::of(&total, w.span_secs());
        let policy = c.inner.config.policy(&service);
        let (health, reasons) = query::health(&f, Some(rec.last_seen_ms), &policy, now);
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for b in &buckets {
            *classes
                .entry(format!("{}xx", b.key.status_class))
                .or_default() += b.stats.count;
        }
        let mut body = serde_json::to_value(&f).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encode_failed",
                e.to_string(),
            )
        })?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("service".into(), json!(service));
            obj.insert("window".into(), json!(WindowInfo::from(&w)));
            obj.insert("apdex_t_ms".into(), json!(policy.apdex_t_ms));
            obj.insert("objective_p95_ms".into(), json!(policy.objective_p95_ms));
            obj.insert("health".into(), json!(health));
            obj.insert("health_reasons".into(), json!(reasons));
            obj.insert("status_classes".into(), json!(classes));
            obj.insert("last_seen_ms".into(), json!(rec.last_seen_ms));
        }
        Ok(body)
    })
    .await
}

pub(super) async fn routes(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(service): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        &c,
        &headers,
        q,
        &["limit", "window"],
        |c, tenant, p| async move {
            let w = window_of(c, &p, "15m", now_ms())?;
            let limit = parse_limit(&p, usize::MAX, MAX_ROUTES_LIMIT)?;
            known_service(c, &tenant, &service).await?;
            let sums = fresh::route_sums(
                &*c.inner.store,
                bucket_query(&tenant, Some(&service), &w, SeriesSelect::Routes),
            )
            .await
            .map_err(ApiError::store_unavailable)?;
            let mut list = query::routes(sums, &w);
            list.truncate(limit);
            Ok(json!({ "service": service, "window": WindowInfo::from(&w), "routes": list }))
        },
    )
    .await
}

pub(super) async fn timeseries(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(service): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        &c,
        &headers,
        q,
        &["metric", "step", "window"],
        |c, tenant, p| async move {
            let metric = Metric::parse(p.get("metric").map_or("requests", String::as_str))?;
            let (w, step) = stepped_window(c, &p)?;
            known_service(c, &tenant, &service).await?;
            let buckets = read_totals(c, &tenant, Some(&service), &w).await?;
            let points = query::timeseries(&buckets, w.from_ms, w.to_ms, step, metric);
            Ok(json!({
                "service": service,
                "metric": p.get("metric").map_or("requests", String::as_str),
                "step_ms": step,
                "window": WindowInfo::from(&w),
                "points": points,
            }))
        },
    )
    .await
}

pub(super) async fn recent(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(service): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&c, &headers, q, &["limit"], |c, tenant, p| async move {
        let limit = parse_limit(&p, 50, MAX_RECENT)?;
        known_service(c, &tenant, &service).await?;
        let samples = c
            .inner
            .store
            .recent_samples(tenant.clone(), service.clone(), limit)
            .await
            .map_err(ApiError::store_unavailable)?;
        Ok(json!({ "service": service, "requests": samples }))
    })
    .await
}

pub(super) async fn connections(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&c, &headers, q, &["window"], |c, tenant, p| async move {
        let w = window_of(c, &p, "15m", now_ms())?;
        let buckets = read_totals(c, &tenant, None, &w).await?;
        // The caller's side: client series are route series of the caller.
        let clients: Vec<Bucket> = c
            .inner
            .store
            .read_buckets(bucket_query(&tenant, None, &w, SeriesSelect::Routes))
            .await
            .map_err(ApiError::store_unavailable)?
            .into_iter()
            .filter(|b| b.key.is_client())
            .collect();
        let edges = query::edges(&buckets, &clients, &w);
        Ok(json!({ "window": WindowInfo::from(&w), "edges": edges }))
    })
    .await
}

async fn read_custom(
    c: &Collector,
    tenant: &str,
    service: &str,
    name: Option<&str>,
    w: &Window,
) -> Result<Vec<CustomPoint>, ApiError> {
    let q = CustomQuery {
        tenant: tenant.into(),
        service: Some(service.into()),
        name: name.map(str::to_string),
        resolution: w.resolution,
        start_ms: w.from_ms,
        end_ms: w.to_ms + 1,
    };
    fresh::custom(&*c.inner.store, q)
        .await
        .map_err(ApiError::store_unavailable)
}

pub(super) async fn custom_list(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(service): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&c, &headers, q, &["window"], |c, tenant, p| async move {
        let w = window_of(c, &p, "15m", now_ms())?;
        known_service(c, &tenant, &service).await?;
        let points = read_custom(c, &tenant, &service, None, &w).await?;
        let list = custom_metrics::summaries(&points, w.span_secs());
        Ok(json!({ "service": service, "window": WindowInfo::from(&w), "metrics": list }))
    })
    .await
}

pub(super) async fn custom_series(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath((service, name)): ApiPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        &c,
        &headers,
        q,
        &["step", "window"],
        |c, tenant, p| async move {
            let max = c.inner.config.limits.max_name_len;
            if name.is_empty() || name.len() > max || name.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    "invalid_metric",
                    format!(
                        "metric name {:?} must be 1 to {max} bytes without control characters",
                        name.chars().take(64).collect::<String>()
                    ),
                ));
            }
            let (w, step) = stepped_window(c, &p)?;
            known_service(c, &tenant, &service).await?;
            let points = read_custom(c, &tenant, &service, Some(&name), &w).await?;
            let series = custom_metrics::series(&points, w.from_ms, w.to_ms, step);
            Ok(json!({
                "service": service,
                "name": name,
                "step_ms": step,
                "window": WindowInfo::from(&w),
                "series": series,
            }))
        },
    )
    .await
}
