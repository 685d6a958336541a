//! The alerting API: `GET /v1/alert-rules` (read or admin keys) lists the
//! tenant's rules with their alerts' states and current values, firing
//! first, and how each receiver fares; `POST /v1/alert-rules`,
//! `PUT /v1/alert-rules/{name}` and `DELETE /v1/alert-rules/{name}` (admin
//! keys) write rules; `GET /v1/alerts?state=&service=&since=&limit=` (read
//! or admin) answers the history of state changes, newest first.
//!
//! A rule body is at most [`MAX_RULE_BODY`] bytes of JSON with the fields
//! of `[[alerting.rules]]` but `tenant` (the key's); each refusal is a
//! clear JSON error counted in `vitals_rejected_total{reason}`.

use super::queries::params;
use super::refusals::ApiPath;
use super::state::Collector;
use crate::alerting::{AlertState, RuleView};
use crate::clock::now_ms;
use crate::config::alert_rule::check_rule_name;
use crate::config::{RuleSource, RuleSpec};
use crate::error::ApiError;
use crate::model::{AlertHistoryQuery, Role, StoredRule};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

/// Largest rule body, bytes.
pub const MAX_RULE_BODY: usize = 64 * 1024;
/// Most history entries one answer holds.
pub const MAX_HISTORY: usize = 1000;

fn respond(c: &Collector, result: Result<(StatusCode, Value), ApiError>) -> Response {
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(e) => c.fail(e),
    }
}

fn store_failed(e: crate::store::StoreError) -> ApiError {
    ApiError::store_unavailable(e)
}

/// The JSON of one rule with its alert's state.
fn rule_json(v: &RuleView) -> Value {
    let r = &v.rule;
    let t = v.tracked.as_ref();
    let mut spec = serde_json::to_value(&r.spec).unwrap_or_else(|_| json!({}));
    if let Some(obj) = spec.as_object_mut() {
        obj.remove("tenant");
        obj.insert("source".into(), json!(r.source));
        obj.insert("op".into(), json!(r.op.as_str()));
        obj.insert("threshold".into(), json!(r.threshold));
        obj.insert(
            "state".into(),
            json!(t.map_or(AlertState::Inactive, |t| t.state)),
        );
        obj.insert("value".into(), json!(t.and_then(|t| t.value)));
        obj.insert("since_ms".into(), json!(t.map(|t| t.since_ms)));
        obj.insert("active_ms".into(), json!(t.and_then(|t| t.active_ms)));
        obj.insert("starts_ms".into(), json!(t.and_then(|t| t.starts_ms)));
        obj.insert("ends_ms".into(), json!(t.and_then(|t| t.ends_ms)));
        obj.insert(
            "evaluated_ms".into(),
            json!(t.map(|t| t.evaluated_ms).filter(|m| *m > 0)),
        );
        obj.insert(
            "current_annotations".into(),
            json!(t.map(|t| t.annotations.clone()).unwrap_or_default()),
        );
    }
    spec
}

fn state_rank(v: &RuleView) -> u8 {
    match v.tracked.as_ref().map(|t| t.state) {
        Some(AlertState::Firing) => 0,
        Some(AlertState::Pending) => 1,
        Some(AlertState::Resolved) => 2,
        _ => 3,
    }
}

/// `GET /v1/alert-rules`.
pub(super) async fn list_rules(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        params(q, &[])?;
        let mut views = c.alerting().view(&key.tenant).await.map_err(store_failed)?;
        views.sort_by(|a, b| {
            (state_rank(a), &a.rule.name, &a.rule.service).cmp(&(
                state_rank(b),
                &b.rule.name,
                &b.rule.service,
            ))
        });
        let settings = c.alerting().settings();
        Ok((
            StatusCode::OK,
            json!({
                "rules": views.iter().map(rule_json).collect::<Vec<_>>(),
                "receivers": c.alerting().receivers(),
                "interval_ms": settings.interval_ms,
                "health_rule": settings.health_rule,
            }),
        ))
    }
    .await;
    respond(&c, result)
}

/// Reads and checks a rule body of `tenant`.
async fn read_spec(c: &Collector, tenant: &str, body: Body) -> Result<RuleSpec, ApiError> {
    let bytes = Limited::new(body, MAX_RULE_BODY)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a rule body is at most {MAX_RULE_BODY} bytes"),
            )
        })?
        .to_bytes();
    let spec: RuleSpec = serde_json::from_slice(&bytes).map_err(|e| {
        let text: String = e.to_string().chars().take(300).collect();
        ApiError::bad_request("invalid_json", format!("the body is not a rule: {text}"))
    })?;
    if spec.tenant.is_some() {
        return Err(ApiError::bad_request(
            "invalid_rule",
            "a rule written over the API belongs to the key's tenant: remove \"tenant\"",
        ));
    }
    spec.check(tenant, RuleSource::Api, c.config().name_limits())
        .map_err(|e| ApiError::bad_request("invalid_rule", e))?;
    Ok(spec)
}

fn is_config_rule(c: &Collector, tenant: &str, name: &str) -> bool {
    c.alerting()
        .settings()
        .rules
        .iter()
        .any(|r| r.tenant == tenant && r.name == name)
}

fn from_config(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "rule_from_config",
        format!("rule {name:?} comes from the collector's configuration; change it there"),
    )
}

fn stored(tenant: &str, spec: &RuleSpec) -> Result<StoredRule, ApiError> {
    Ok(StoredRule {
        tenant: tenant.to_owned(),
        name: spec.name.clone(),
        spec: serde_json::to_string(spec).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encode_failed",
                e.to_string(),
            )
        })?,
        updated_ms: now_ms(),
    })
}

/// `POST /v1/alert-rules`.
pub(super) async fn create_rule(
    State(c): State<Collector>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Admin).await?;
        let spec = read_spec(&c, &key.tenant, body).await?;
        if is_config_rule(&c, &key.tenant, &spec.name) {
            return Err(from_config(&spec.name));
        }
        let existing = c
            .store()
            .alert_rules(Some(key.tenant.clone()))
            .await
            .map_err(store_failed)?;
        let max = c.alerting().settings().max_rules_per_tenant;
        if existing.len() >= max {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "too_many_rules",
                format!("this tenant has {max} rules, the limit; delete one first"),
            ));
        }
        let created = c
            .store()
            .put_alert_rule(stored(&key.tenant, &spec)?, false)
            .await
            .map_err(store_failed)?;
        if !created {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "rule_exists",
                format!(
                    "a rule named {:?} exists; PUT /v1/alert-rules/{} replaces it",
                    spec.name, spec.name
                ),
            ));
        }
        Ok((StatusCode::CREATED, json!({ "rule": spec })))
    }
    .await;
    respond(&c, result)
}

fn path_name(name: &str) -> Result<(), ApiError> {
    check_rule_name(name).map_err(|e| ApiError::bad_request("invalid_rule_name", e))
}

fn unknown_rule(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_rule",
        format!("no rule named {name:?} was written over the API"),
    )
}

/// `PUT /v1/alert-rules/{name}`.
pub(super) async fn replace_rule(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Admin).await?;
        path_name(&name)?;
        let spec = read_spec(&c, &key.tenant, body).await?;
        if spec.name != name {
            return Err(ApiError::bad_request(
                "invalid_rule",
                "the body's name differs from the path's; a rule cannot be renamed (delete it and create the new one)",
            ));
        }
        if is_config_rule(&c, &key.tenant, &name) {
            return Err(from_config(&name));
        }
        let replaced = c
            .store()
            .put_alert_rule(stored(&key.tenant, &spec)?, true)
            .await
            .map_err(store_failed)?;
        if !replaced {
            return Err(unknown_rule(&name));
        }
        Ok((StatusCode::OK, json!({ "rule": spec })))
    }
    .await;
    respond(&c, result)
}

/// `DELETE /v1/alert-rules/{name}`.
pub(super) async fn delete_rule(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Admin).await?;
        path_name(&name)?;
        if is_config_rule(&c, &key.tenant, &name) {
            return Err(from_config(&name));
        }
        let deleted = c
            .store()
            .delete_alert_rule(key.tenant.clone(), name.clone())
            .await
            .map_err(store_failed)?;
        if !deleted {
            return Err(unknown_rule(&name));
        }
        Ok((StatusCode::OK, json!({ "deleted": name })))
    }
    .await;
    respond(&c, result)
}

/// `since=`: ms since the epoch, or a span back from now (`1h`).
fn parse_since(text: &str, now: i64) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    crate::config::alert_rule::parse_span_ms(text)
        .map(|span| now.saturating_sub(span))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_since",
                format!(
                    "since {:?} must be ms since the epoch or a span back from now like 1h",
                    text.chars().take(32).collect::<String>()
                ),
            )
        })
}

/// `GET /v1/alerts`.
pub(super) async fn history(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let result = async {
        let key = c.authorize(&headers, Role::Read).await?;
        let p = params(q, &["limit", "service", "since", "state"])?;
        let state = match p.get("state") {
            None => None,
            Some(s) => Some(
                AlertState::parse(s)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_state",
                            format!(
                                "state {:?} must be inactive, pending, firing or resolved",
                                s.chars().take(32).collect::<String>()
                            ),
                        )
                    })?
                    .as_str()
                    .to_owned(),
            ),
        };
        if let Some(s) = p.get("service") {
            super::refusals::check_path_service(s, c.config().limits.max_name_len)?;
        }
        let since = match p.get("since") {
            None => 0,
            Some(s) => parse_since(s, now_ms())?,
        };
        let limit = match p.get("limit") {
            None => 100,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_HISTORY).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be a whole number from 1 to {MAX_HISTORY}"),
                    )
                })?,
        };
        let events = c
            .store()
            .alert_history(AlertHistoryQuery {
                tenant: key.tenant,
                state,
                service: p.get("service").cloned(),
                since_ms: since,
                limit,
            })
            .await
            .map_err(store_failed)?;
        let list: Vec<Value> = events
            .into_iter()
            .map(|e| {
                json!({
                    "rule": e.rule,
                    "service": e.service,
                    "at_ms": e.at_ms,
                    "from": e.from,
                    "to": e.to,
                    "value": e.value,
                    "labels": serde_json::from_str::<Value>(&e.labels).unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok((StatusCode::OK, json!({ "alerts": list })))
    }
    .await;
    respond(&c, result)
}
