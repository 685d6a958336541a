//! `GET /metrics`: the registry in the format the scraper's `Accept`
//! header asks for (Prometheus text, OpenMetrics).

use crate::server_metrics::ServerMetrics;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use vitals::Format;

/// The router serving `/metrics`.
pub(crate) fn router(metrics: &ServerMetrics) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics.clone())
}

async fn metrics_text(State(metrics): State<ServerMetrics>, headers: HeaderMap) -> Response {
    let accept = match headers.get(header::ACCEPT).map(|v| v.to_str()) {
        None => "",
        Some(Ok(v)) if v.len() <= vitals::encode::MAX_ACCEPT_LEN => v,
        // Unreadable or oversized: answer in the default format, and count it.
        Some(_) => {
            metrics.registry().count_rejected("accept_header_invalid");
            ""
        }
    };
    let format = Format::from_accept(accept);
    let body = metrics.registry().render(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}
