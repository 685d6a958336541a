//! `POST /v1/metrics`: OTLP/HTTP metrics export. Authorize the key, cap
//! the body (as sent and inflated), decode it ([`crate::ingest::otlp`]),
//! convert it into one write per service, store each, and answer as the
//! OTLP/HTTP specification says, in the request's encoding:
//!
//! - `200` with an `ExportMetricsServiceResponse`, carrying
//!   `partialSuccess {rejectedDataPoints, errorMessage}` when some points
//!   were rejected (each counted in `vitals_rejected_total{reason}`);
//! - `400` (never retried by exporters) and other 4xx with a
//!   `google.rpc.Status` body when the request as a whole is refused;
//! - `429` (over [`MAX_OTLP_IN_FLIGHT`](super::MAX_OTLP_IN_FLIGHT)
//!   requests at once) and `503` (the store failed) with `Retry-After`.

use super::state::Collector;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::ingest::otlp::{self, Encoding};
use crate::ingest::{self, Intake};
use crate::model::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The OTLP/HTTP path for metrics.
pub(super) const OTLP_METRICS_PATH: &str = "/v1/metrics";
/// The endpoint's label in the collector's own metrics.
const ENDPOINT: &str = "otlp";
/// Seconds an overloaded or failing collector asks exporters to wait.
const RETRY_AFTER_OVERLOADED: &str = "1";
const RETRY_AFTER_UNAVAILABLE: &str = "5";

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, Message)]
struct Status {
    /// A gRPC status code.
    #[prost(int32, tag = "1")]
    code: i32,
    /// What was wrong.
    #[prost(string, tag = "2")]
    message: String,
}

/// `POST /v1/metrics`.
pub(super) async fn metrics(
    State(c): State<Collector>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _timer = c.inner.ingest_seconds.get(&[ENDPOINT]).start_timer();
    let encoding = match Encoding::of(headers.get(header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => {
            c.inner.batches.get(&[ENDPOINT, "rejected"]).inc();
            return c.fail(e);
        }
    };
    let Ok(_permit) = c.inner.otlp_in_flight.try_acquire() else {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "over {} OTLP requests at once; retry after the Retry-After delay",
                super::MAX_OTLP_IN_FLIGHT
            ),
        );
        c.inner.batches.get(&[ENDPOINT, "rejected"]).inc();
        return error_answer(&c, e, encoding);
    };
    match export(&c, &headers, body, encoding).await {
        Ok(answer) => {
            c.inner.batches.get(&[ENDPOINT, "stored"]).inc();
            answer
        }
        Err(e) => {
            let outcome = if e.is_rejection() {
                "rejected"
            } else {
                "failed"
            };
            c.inner.batches.get(&[ENDPOINT, outcome]).inc();
            error_answer(&c, e, encoding)
        }
    }
}

async fn export(
    c: &Collector,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<Response, ApiError> {
    let key = c.authorize(headers, Role::Ingest).await?;
    let (bytes, gzip) = c.read_body(headers, body).await?;
    let limits = &c.inner.config.limits;
    let raw = ingest::inflate_body(&bytes, gzip, limits.max_decompressed_bytes)?;
    let req = otlp::decode_request(&raw, encoding)?;
    let points = otlp::point_total(&req);
    if points > limits.max_routes_per_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{points} data points in one export, over the limit of {} (limits.max_routes_per_batch); export more often or in smaller batches",
                limits.max_routes_per_batch
            ),
        ));
    }
    // A retry sends the same bytes: the same id, so the store counts it once.
    let mut batch_id = String::from("otlp-");
    for b in &Sha256::digest(&raw)[..16] {
        let _ = write!(batch_id, "{b:02x}");
    }
    let intake = Intake {
        tenant: &key.tenant,
        now: now_ms(),
        config: &c.inner.config,
        oldest_ms: c.oldest_accepted_ms(),
        store: &*c.inner.store,
        routes: &c.inner.routes,
    };
    // Requests with cumulative (or delta-sum) streams are handled one at a
    // time, from reading the streams' state to keeping the new readings.
    let mut streams = if otlp::needs_streams(&req) {
        Some(c.inner.streams.map.lock().await)
    } else {
        None
    };
    let empty = HashMap::new();
    let known = streams.as_deref().unwrap_or(&empty);
    let converted = otlp::convert(req, &intake, &c.inner.streams, known, &batch_id).await?;
    for service in converted.services {
        if let Some(prepared) = service.prepared {
            c.keep(ENDPOINT, prepared).await?;
        }
        // Only after the store has the deltas: a failed write is retried
        // by the exporter and computes them again.
        if let Some(map) = streams.as_deref_mut() {
            otlp::commit(map, service.updates);
        }
    }
    drop(streams);
    let rejected = &converted.rejected;
    for (reason, n) in &rejected.by_reason {
        for _ in 0..*n {
            c.inner.registry.count_rejected(reason);
        }
    }
    c.inner
        .otlp_points
        .get(&["accepted"])
        .add(converted.points - rejected.points);
    c.inner.otlp_points.get(&["rejected"]).add(rejected.points);
    let partial_success = (rejected.points > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: i64::try_from(rejected.points).unwrap_or(i64::MAX),
        error_message: rejected.message(),
    });
    let body = match encoding {
        Encoding::Protobuf => ExportMetricsServiceResponse { partial_success }.encode_to_vec(),
        Encoding::Json => {
            let value = match partial_success {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            serde_json::to_vec(&value).unwrap_or_default()
        }
    };
    Ok(([(header::CONTENT_TYPE, encoding.content_type())], body).into_response())
}

/// The gRPC code of an HTTP error status, for the `Status` body.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

/// Counts `e` and answers it as OTLP/HTTP says: a `Status` in the
/// request's encoding (the JSON one also carries our `error` and `reason`),
/// with `Retry-After` on 429 and 503.
fn error_answer(c: &Collector, e: ApiError, encoding: Encoding) -> Response {
    c.count_error(&e);
    let code = grpc_code(e.status);
    let body = match encoding {
        Encoding::Protobuf => Status {
            code,
            message: e.message.clone(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": code,
            "message": e.message,
            "error": e.message,
            "reason": e.reason,
        }))
        .unwrap_or_default(),
    };
    let mut answer = (
        e.status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    let retry_after = match e.status {
        StatusCode::TOO_MANY_REQUESTS => Some(RETRY_AFTER_OVERLOADED),
        StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_UNAVAILABLE),
        _ => None,
    };
    if let Some(s) = retry_after {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(s));
    }
    answer
}
