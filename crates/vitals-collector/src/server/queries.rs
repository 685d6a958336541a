//! The query API handlers (read keys): services overview, per-service
//! stats, routes, timeseries and recent samples, and caller → callee edges.
//! Every parameter is validated; a bad one is a counted 400.

use super::{Collector, MAX_QUERY_LEN, MAX_RECENT, now_ms, store_unavailable};
use crate::error::ApiError;
use crate::model::{Bucket, BucketQuery, Role, ServiceRecord, UnixMs};
use crate::query::{self, Figures, Metric, Window};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Parses a query string, refusing unknown or repeated parameters.
fn params(raw: Option<String>, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
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

async fn read(
    c: &Collector,
    tenant: &str,
    service: Option<&str>,
    w: &Window,
) -> Result<Vec<Bucket>, ApiError> {
    c.inner
        .store
        .read_buckets(BucketQuery {
            tenant: tenant.into(),
            service: service.map(str::to_string),
            resolution: w.resolution,
            start_ms: w.from_ms,
            end_ms: w.to_ms + 1,
        })
        .await
        .map_err(store_unavailable)
}

/// Finds a service of the tenant, or a 404.
async fn known_service(
    c: &Collector,
    tenant: &str,
    service: &str,
) -> Result<ServiceRecord, ApiError> {
    c.inner
        .store
        .services(tenant.into())
        .await
        .map_err(store_unavailable)?
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
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["window"])?;
        let now = now_ms();
        let w = window_of(&c, &p, "15m", now)?;
        let known = c
            .inner
            .store
            .services(key.tenant.clone())
            .await
            .map_err(store_unavailable)?;
        let buckets = read(&c, &key.tenant, None, &w).await?;
        let mut by: BTreeMap<&str, Vec<&Bucket>> = BTreeMap::new();
        for b in &buckets {
            by.entry(&b.key.service).or_default().push(b);
        }
        let list: Vec<_> = known
            .iter()
            .map(|s| {
                let total = query::total(by.get(s.service.as_str()).into_iter().flatten().copied());
                let f = Figures::of(&total, w.span_secs());
                let policy = c.inner.config.policy(&s.service);
                let (health, reasons) = query::health(&f, Some(s.last_seen_ms), &policy, now);
                json!({
                    "service": s.service,
                    "requests": f.requests,
                    "rate_per_sec": f.rate_per_sec,
                    "errors": f.errors,
                    "error_rate": f.error_rate,
                    "p95_ms": f.p95_ms,
                    "apdex": f.apdex,
                    "last_seen_ms": s.last_seen_ms,
                    "health": health,
                    "health_reasons": reasons,
                })
            })
            .collect();
        Ok::<_, ApiError>(
            axum::Json(json!({ "window": WindowInfo::from(&w), "services": list })).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}

pub(super) async fn stats(
    State(c): State<Collector>,
    headers: HeaderMap,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["window"])?;
        let now = now_ms();
        let w = window_of(&c, &p, "15m", now)?;
        let rec = known_service(&c, &key.tenant, &service).await?;
        let buckets = read(&c, &key.tenant, Some(&service), &w).await?;
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
        Ok::<_, ApiError>(axum::Json(body).into_response())
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}

pub(super) async fn routes(
    State(c): State<Collector>,
    headers: HeaderMap,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["window"])?;
        let w = window_of(&c, &p, "15m", now_ms())?;
        known_service(&c, &key.tenant, &service).await?;
        let buckets = read(&c, &key.tenant, Some(&service), &w).await?;
        let list = query::routes(&buckets, &w);
        Ok::<_, ApiError>(
            axum::Json(
                json!({ "service": service, "window": WindowInfo::from(&w), "routes": list }),
            )
            .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}

pub(super) async fn timeseries(
    State(c): State<Collector>,
    headers: HeaderMap,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["metric", "step", "window"])?;
        let metric = Metric::parse(p.get("metric").map_or("requests", String::as_str))?;
        let now = now_ms();
        let w = window_of(&c, &p, "1h", now)?;
        let step = query::parse_step(p.get("step").map(String::as_str), w.window_ms)?;
        let w = Window::with_resolution(
            w.window_ms,
            query::resolution_for_step(step, w.resolution),
            now,
        );
        known_service(&c, &key.tenant, &service).await?;
        let buckets = read(&c, &key.tenant, Some(&service), &w).await?;
        let points = query::timeseries(&buckets, w.from_ms, w.to_ms, step, metric);
        Ok::<_, ApiError>(
            axum::Json(json!({
                "service": service,
                "metric": p.get("metric").map_or("requests", String::as_str),
                "step_ms": step,
                "window": WindowInfo::from(&w),
                "points": points,
            }))
            .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}

pub(super) async fn recent(
    State(c): State<Collector>,
    headers: HeaderMap,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["limit"])?;
        let limit = match p.get("limit") {
            None => 50,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_RECENT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!(
                            "limit {:?} must be a whole number from 1 to {MAX_RECENT}",
                            v.chars().take(32).collect::<String>()
                        ),
                    )
                })?,
        };
        known_service(&c, &key.tenant, &service).await?;
        let samples = c
            .inner
            .store
            .recent_samples(key.tenant.clone(), service.clone(), limit)
            .await
            .map_err(store_unavailable)?;
        Ok::<_, ApiError>(
            axum::Json(json!({ "service": service, "requests": samples })).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}

pub(super) async fn connections(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["window"])?;
        let w = window_of(&c, &p, "15m", now_ms())?;
        let buckets = read(&c, &key.tenant, None, &w).await?;
        let edges = query::edges(&buckets, &w);
        Ok::<_, ApiError>(
            axum::Json(json!({ "window": WindowInfo::from(&w), "edges": edges })).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| c.fail(e))
}
