//! The collector's HTTP API: ingest, queries and its own `/metrics`, over
//! one [`Store`](crate::Store), with the rollup and retention jobs in the
//! background. This file is the router and the serving loop; the
//! [`Collector`] and the state its handlers share live in `state.rs`, the
//! ingest handlers in `batches.rs`, the query handlers in `queries.rs`; the
//! router's own refusals (unknown path, wrong method, unreadable path
//! segment) in `refusals.rs`. The handlers import `state.rs`, not this file.
//!
//! Routes: `POST /v1/ingest` (aggregated batches, with custom metrics),
//! `POST /v1/requests` (per-request records), `POST /v1/metrics` (OTLP/HTTP
//! metrics, in `otlp.rs`); read keys:
//! `GET /v1/services`, `/v1/services/{service}/stats|routes|timeseries|recent`,
//! `/v1/services/{service}/custom` (custom metrics list) and
//! `/v1/services/{service}/custom/{name}` (one metric's series),
//! `/v1/connections`, `/v1/traces/{trace_id}` (a request journey, in
//! `journeys.rs`) and `/v1/live` (Server-Sent Events as batches are
//! stored, in `live.rs`); alerting (`alerts.rs`): `GET`/`POST
//! /v1/alert-rules`, `PUT`/`DELETE /v1/alert-rules/{name}`, `GET
//! /v1/alerts`; plus `/metrics` and `/healthz`; the web UI at `/` and
//! its files at `/ui/{*file}` (from `crate::ui`).

mod alerts;
mod batches;
mod journeys;
mod live;
mod live_hub;
mod otlp;
mod queries;
mod refusals;
mod state;

pub use journeys::{MAX_JOURNEY, is_trace_id};
pub use live::KEEPALIVE;
pub use live_hub::LiveBatch;
pub use queries::{MAX_QUERY_LEN, MAX_RECENT, MAX_ROUTES_LIMIT};
pub use state::{Collector, CollectorError, MAX_OTLP_IN_FLIGHT};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::future::Future;
use vitals::Format;
use vitals::wire::{INGEST_PATH, REQUESTS_PATH};

impl Collector {
    /// The HTTP API as an axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route(INGEST_PATH, post(batches::ingest_batch))
            .route(REQUESTS_PATH, post(batches::ingest_records))
            .route(otlp::OTLP_METRICS_PATH, post(otlp::metrics))
            .route("/v1/services", get(queries::services))
            .route("/v1/services/{service}/stats", get(queries::stats))
            .route("/v1/services/{service}/routes", get(queries::routes))
            .route(
                "/v1/services/{service}/timeseries",
                get(queries::timeseries),
            )
            .route("/v1/services/{service}/recent", get(queries::recent))
            .route("/v1/services/{service}/custom", get(queries::custom_list))
            .route(
                "/v1/services/{service}/custom/{name}",
                get(queries::custom_series),
            )
            .route("/v1/connections", get(queries::connections))
            .route(
                "/v1/alert-rules",
                get(alerts::list_rules).post(alerts::create_rule),
            )
            .route(
                "/v1/alert-rules/{name}",
                axum::routing::put(alerts::replace_rule).delete(alerts::delete_rule),
            )
            .route("/v1/alerts", get(alerts::history))
            .route("/v1/traces/{trace_id}", get(journeys::trace))
            .route("/v1/live", get(live::live))
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/", get(|| async { crate::ui::page() }))
            .route("/ui/{*file}", get(ui_file))
            // After every route: it applies to the routes added before it.
            .method_not_allowed_fallback(refusals::method_not_allowed)
            .fallback(refusals::not_found)
            .with_state(self.clone())
    }

    /// Serves the API on `listener` with the background jobs until
    /// `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CollectorError> {
        let jobs = self.spawn_jobs();
        let alerts = self
            .inner
            .alerting
            .settings()
            .enabled
            .then(|| self.inner.alerting.spawn());
        let this = self.clone();
        // Open live streams would hold a graceful shutdown forever.
        let shutdown = async move {
            shutdown.await;
            this.end_live_streams();
        };
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        jobs.abort();
        if let Some(a) = alerts {
            a.abort();
        }
        result.map_err(CollectorError::Io)
    }
}

/// `GET /ui/{*file}`: a file of the web UI, or the counted 404 of an
/// unknown path.
async fn ui_file(
    State(c): State<Collector>,
    refusals::ApiPath(file): refusals::ApiPath<String>,
) -> Response {
    match crate::ui::file(&file) {
        Some(response) => response,
        None => refusals::not_found(State(c)).await,
    }
}

async fn metrics(State(c): State<Collector>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_accept(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        c.inner.registry.render(format),
    )
        .into_response()
}
