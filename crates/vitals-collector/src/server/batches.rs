//! The ingest endpoints, `POST /v1/ingest` (aggregated batches) and
//! `POST /v1/requests` (per-request records): authorize the key, cap the
//! raw body, run [`ingest::accept`] (decode, validate, limits, prepare),
//! store the write, and answer with what happened, counted in the
//! collector's own metrics.

use super::state::Collector;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::ingest::{self, BatchKind, Intake, Prepared};
use crate::model::{IngestOutcome, Role};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What a stored write held, for the answer.
pub(super) struct Kept {
    /// `stored` or `duplicate`.
    pub(super) status: &'static str,
    batch_id: Option<String>,
    series: usize,
    requests: u64,
    overflowed: u64,
    custom: usize,
    custom_dropped: u64,
    apdex_estimated: u64,
}

impl Collector {
    /// The raw body, capped at `max_body_bytes`, and whether it is gzip.
    pub(super) async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Bytes, bool), ApiError> {
        let limits = &self.inner.config.limits;
        let gzip = ingest::is_gzip(headers.get(header::CONTENT_ENCODING))?;
        let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is over the {}-byte limit (or was cut off); send smaller batches",
                        limits.max_body_bytes
                    ),
                )
            })?;
        Ok((bytes, gzip))
    }

    /// Stores a prepared write; answers with what happened.
    async fn store_write(
        &self,
        endpoint: &'static str,
        prepared: Prepared,
    ) -> Result<Response, ApiError> {
        let kept = self.keep(endpoint, prepared).await?;
        self.inner.batches.get(&[endpoint, kept.status]).inc();
        Ok(axum::Json(json!({
            "status": kept.status,
            "batch_id": kept.batch_id,
            "series": kept.series,
            "requests": kept.requests,
            "overflowed": kept.overflowed,
            "custom": kept.custom,
            "custom_dropped": kept.custom_dropped,
            "apdex_estimated": kept.apdex_estimated,
        }))
        .into_response())
    }

    /// Stores a prepared write and counts what it holds (overflow, dropped
    /// custom values, requests ingested under `endpoint`).
    pub(super) async fn keep(
        &self,
        endpoint: &'static str,
        prepared: Prepared,
    ) -> Result<Kept, ApiError> {
        let Prepared {
            write,
            overflowed,
            requests,
            custom_dropped,
            apdex_estimated,
        } = prepared;
        self.inner.apdex_estimated.add(apdex_estimated);
        if overflowed > 0 {
            self.inner.overflowed.add(overflowed);
            self.inner.registry.count_rejected("route_overflow");
        }
        for _ in 0..custom_dropped {
            self.inner.registry.count_rejected("custom_series_limit");
        }
        let batch_id = write.batch_id.clone();
        let (tenant, service) = (write.tenant.clone(), write.service.clone());
        let series = write.buckets.len();
        let custom = write.custom.len();
        let timer = self.inner.store_write_seconds.start_timer();
        let outcome = self.inner.store.ingest(write).await;
        timer.stop();
        let outcome = outcome.map_err(ApiError::store_unavailable)?;
        let status = match outcome {
            IngestOutcome::Stored => {
                self.inner.ingested.get(&[endpoint]).add(requests);
                self.announce_batch(&tenant, &service);
                "stored"
            }
            IngestOutcome::Duplicate => "duplicate",
        };
        Ok(Kept {
            status,
            batch_id,
            series,
            requests,
            overflowed,
            custom,
            custom_dropped,
            apdex_estimated,
        })
    }

    /// How far back a timestamp may lie, ms before now.
    pub(super) fn oldest_accepted_ms(&self) -> i64 {
        // Leave an hour of the minute retention for the rollup to read the data.
        self.inner.retention.minute_ms - 3_600_000
    }
}

/// `POST /v1/ingest` and `POST /v1/requests`: authorize, read and decode
/// the body within the limits, admit the service, prepare, store durably.
async fn ingest_body<B: BatchKind>(c: Collector, headers: HeaderMap, body: Body) -> Response {
    let _timer = c.inner.ingest_seconds.get(&[B::ENDPOINT]).start_timer();
    let result = async {
        let key = c.authorize(&headers, Role::Ingest).await?;
        let (bytes, gzip) = c.read_body(&headers, body).await?;
        let intake = Intake {
            tenant: &key.tenant,
            now: now_ms(),
            config: &c.inner.config,
            oldest_ms: c.oldest_accepted_ms(),
            store: &*c.inner.store,
            routes: &c.inner.routes,
        };
        let prepared = ingest::accept::<B>(&bytes, gzip, &intake).await?;
        c.store_write(B::ENDPOINT, prepared).await
    }
    .await;
    result.unwrap_or_else(|e| {
        let outcome = if e.is_rejection() {
            "rejected"
        } else {
            "failed"
        };
        c.inner.batches.get(&[B::ENDPOINT, outcome]).inc();
        c.fail(e)
    })
}

/// `POST /v1/ingest`.
pub(super) async fn ingest_batch(
    State(c): State<Collector>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest_body::<ingest::Aggregates>(c, headers, body).await
}

/// `POST /v1/requests`.
pub(super) async fn ingest_records(
    State(c): State<Collector>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest_body::<ingest::Records>(c, headers, body).await
}
