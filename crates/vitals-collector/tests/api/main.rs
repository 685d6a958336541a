//! Black-box tests: a real collector on 127.0.0.1:0, a real HTTP client,
//! results compared with values computed exactly from the raw inputs.
//! The ingest cases also run on PostgreSQL and the Redis hot tier (see
//! `external`); everything else runs on an in-memory store.
//!
//! - `ingest`: what a batch becomes: exact figures per route, merged
//!   sketches, duplicates counted once, unescaped text, the minute of its
//!   timestamp.
//! - `tenants`: one tenant never sees another's data; the per-tenant
//!   service limit holds across restarts and concurrent first batches.
//! - `limits`: routes past the limit fold into overflow, sampled requests
//!   past the batch limit refuse the batch.
//! - `refusals`: hostile bodies, bad query parameters and what the router
//!   refuses are clear JSON errors, and counted.
//! - `hardening`: numbers no interval can hold, `Authorization` edge cases,
//!   service names that cannot be queried back.
//! - `otlp`: `/v1/metrics` answers as OTLP/HTTP says; retries count once.
//! - `own_metrics`: the collector's own `/metrics`, promtool-clean.
//! - `otlp_sdk`: the real OpenTelemetry Python SDK exports to `/v1/metrics`.
//! - `health`: each service's health follows its own policy.
//! - `freshness`: every window sees every acknowledged batch at once, on
//!   every back end.
//! - `journeys`: request journeys across services, every route, sparklines.
//! - `live`: the `/v1/live` event stream, per tenant, bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../external/mod.rs"]
mod external;

mod freshness;
mod hardening;
mod health;
mod ingest;
mod journeys;
mod limits;
mod live;
mod otlp;
mod otlp_sdk;
mod own_metrics;
mod refusals;
mod tenants;

use common::*;
use serde_json::{Value, json};
use vitals_collector::CollectorConfig;

/// Runs `check` on a collector over a fresh PostgreSQL schema named after
/// `what`, then drops the schema (skipped, as the rule says, when
/// PostgreSQL is missing).
async fn on_postgres<F: std::future::Future<Output = ()>>(
    what: &str,
    check: impl FnOnce(CollectorConfig) -> F,
) {
    let Some(schema) = external::TestSchema::create(what).await else {
        return;
    };
    check(CollectorConfig {
        store: schema.url(),
        ..Default::default()
    })
    .await;
    schema.drop().await;
}

/// Runs `check` on an in-memory collector behind the Redis hot tier with
/// a fresh key prefix named after `what`, then deletes its keys (skipped
/// when Redis is missing).
async fn on_redis_hot_tier<F: std::future::Future<Output = ()>>(
    what: &str,
    check: impl FnOnce(CollectorConfig) -> F,
) {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = format!("{}:", external::random_name(what));
    check(CollectorConfig {
        cache: Some(format!("{url}/?prefix={prefix}")),
        ..memory_config()
    })
    .await;
    let (keys, mut conn) = external::redis_keys(&url, &prefix).await;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

struct Raw {
    route: &'static str,
    method: &'static str,
    status: u16,
    duration: f64,
    caller: Option<&'static str>,
}

fn raw_requests(seed: u64, n: usize) -> Vec<Raw> {
    let mut rng = Rng(seed);
    let routes = ["/users/{id}", "/orders", "/health"];
    let callers = [None, Some("web"), Some("mobile")];
    (0..n)
        .map(|_| {
            let r = rng.next();
            Raw {
                route: routes[(r % 3) as usize],
                method: if r % 7 == 0 { "POST" } else { "GET" },
                status: match r % 20 {
                    0 => 503,
                    1 => 404,
                    _ => 200,
                },
                duration: rng.duration_ms(),
                caller: callers[((r >> 8) % 3) as usize],
            }
        })
        .collect()
}

fn records_body(service: &str, batch_id: Option<&str>, raw: &[Raw], ts: i64) -> Value {
    let requests: Vec<Value> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "method": r.method,
                "route": r.route,
                "path": r.route.replace("{id}", &i.to_string()),
                "status": r.status,
                "duration_ms": r.duration,
                "caller": r.caller,
                "timestamp_ms": ts + i as i64 % 1000,
            })
        })
        .collect();
    json!({ "service": service, "instance": "i-1", "batch_id": batch_id, "requests": requests })
}
