//! Alerting, black box: a real collector on 127.0.0.1:0 fed real
//! requests, rounds run at times the test chooses (the engine takes the
//! time as an argument), and real receivers: an axum webhook receiver in
//! the test and Debian's `prometheus-alertmanager` on loopback.
//!
//! - `states`: pending → firing after `for`, `keep_firing_for`, resolved,
//!   `no_data`, the health rule, history, and a restart in each state.
//! - `webhook`: retries past two failures deliver once, with
//!   Alertmanager's webhook fields; firing then resolved, in order; no
//!   duplicate after a restart; 4xx not retried; failures in `/metrics`.
//! - `alertmanager`: the real Alertmanager lists our alert, then resolved.
//! - `api`: the rules API: roles, create, replace, delete, hostile input.
//! - `store`: the alerting store methods on SQLite and PostgreSQL.
//! - `settings`: the `[alerting]` section's checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../external/mod.rs"]
mod external;

mod alertmanager;
mod api;
mod settings;
mod states;
mod store;
mod webhook;

use common::*;
use serde_json::{Value, json};
use vitals_collector::{CollectorConfig, Role, now_ms};

/// Posts `ok` good and `errors` failing requests of `service` (route
/// `/pay`, POST) stamped now.
pub async fn traffic(tc: &TestCollector, service: &str, ok: usize, errors: usize) {
    let now = now_ms();
    let requests: Vec<Value> = (0..ok + errors)
        .map(|i| {
            json!({
                "method": "POST",
                "route": "/pay",
                "path": "/pay",
                "status": if i < errors { 503 } else { 200 },
                "duration_ms": 12.0,
                "timestamp_ms": now,
            })
        })
        .collect();
    let body = json!({ "service": service, "instance": "i-1", "requests": requests });
    let (status, answer) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// A collector on an in-memory store with `alerting` (TOML of the
/// `[alerting]` section and its tables) as configuration.
pub fn config_with(alerting_toml: &str) -> CollectorConfig {
    let mut c = CollectorConfig::from_toml(alerting_toml).expect("valid configuration");
    c.store = "sqlite::memory:".into();
    c
}

/// An admin key of tenant acme.
pub async fn admin_key(tc: &TestCollector) -> String {
    tc.collector
        .create_key("acme", Role::Admin)
        .await
        .expect("admin key")
}

/// The state of rule `name` on `service` as `GET /v1/alert-rules` shows it.
pub async fn rule_state(tc: &TestCollector, name: &str, service: &str) -> Value {
    let v = tc.get_ok("/v1/alert-rules").await;
    v["rules"]
        .as_array()
        .and_then(|rules| {
            rules
                .iter()
                .find(|r| r["name"] == name && r["service"] == service)
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// A minute-aligned time three hours ago: the tests stamp their traffic
/// from there and run rounds at chosen times after it.
pub fn base_minute() -> i64 {
    let t = now_ms() - 3 * 3_600_000;
    t - t.rem_euclid(60_000)
}

/// Posts `ok` good and `errors` failing requests of `service` stamped `at`.
pub async fn traffic_at(tc: &TestCollector, service: &str, ok: usize, errors: usize, at: i64) {
    let requests: Vec<Value> = (0..ok + errors)
        .map(|i| {
            json!({
                "method": "POST",
                "route": "/pay",
                "path": "/pay",
                "status": if i < errors { 503 } else { 200 },
                "duration_ms": 12.0,
                "timestamp_ms": at,
            })
        })
        .collect();
    let body = json!({ "service": service, "instance": "i-1", "requests": requests });
    let (status, answer) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// The history as `GET /v1/alerts` answers it for `query`.
pub async fn history(tc: &TestCollector, query: &str) -> Vec<Value> {
    let v = tc.get_ok(&format!("/v1/alerts{query}")).await;
    v["alerts"].as_array().cloned().unwrap_or_default()
}
