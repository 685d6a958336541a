//! Where metrics are served: the router of `/metrics` and `/debug/*`.
//!
//! - [`metrics_text`]: `GET /metrics` (Prometheus text or OpenMetrics).
//! - [`debug_metrics`] and [`window`]: `GET /debug/metrics` (JSON) and the
//!   recent window its rates and percentiles are measured over.
//! - [`events`]: `GET /debug/events`, the event bus as SSE.
//! - [`debug_history`] and [`history`]: `GET /debug/history`, the sampler
//!   that fills it, and the ring buffer it keeps the points in.
//! - [`dashboard`]: `GET /debug/`, the live page and its assets.
//! - [`auth`]: the optional credential check in front of all of them.
//! - [`query`]: the one query-string parser, and the JSON 400 they share.

pub(crate) mod auth;
pub(crate) mod dashboard;
pub(crate) mod debug_history;
pub(crate) mod debug_metrics;
pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod metrics_text;
pub(crate) mod query;
pub(crate) mod window;

use crate::record::layer::OwnEndpoint;
use crate::server_metrics::ServerMetrics;

/// Builds the router serving `/metrics`, `/debug/metrics`,
/// `/debug/events`, `/debug/history` and the dashboard at `/debug/`.
///
/// Rates in `/debug/metrics` cover the last
/// [`DEFAULT_WINDOW`](crate::DEFAULT_WINDOW), measured between the reads
/// each request takes. The `/debug/history` sampler (one background
/// thread, off the runtime) starts here. With credentials set on the
/// builder, every route of this router requires them.
pub fn router(metrics: &ServerMetrics) -> axum::Router {
    let router = axum::Router::new()
        .merge(metrics_text::router(metrics))
        .merge(debug_metrics::router(metrics))
        .merge(debug_history::router(metrics))
        .merge(events::router(metrics))
        .merge(dashboard::router(metrics));
    debug_history::ensure_sampler(metrics);
    // The credential check covers every route added above.
    let router = auth::protect(router, &metrics.inner.credentials, metrics.registry());
    // Outermost, so refusals are marked too: the layer keeps the answers of
    // these routes out of the application's figures (`endpoints_as_application`).
    router.route_layer(axum::middleware::map_response(mark_own))
}

/// Marks an answer as the server's own (see [`OwnEndpoint`]).
async fn mark_own(mut response: axum::response::Response) -> axum::response::Response {
    response.extensions_mut().insert(OwnEndpoint);
    response
}
