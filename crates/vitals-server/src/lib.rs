//! # vitals-server
//!
//! What a tokio/hyper/axum/tower server adds to see what a reverse proxy
//! cannot: connections (active, idle, failed, closed mid-request, bytes),
//! HTTP requests per route template (rate, errors, duration until the body
//! completes, time to first byte, abandoned requests), HTTP/2 streams, and
//! the `/metrics` and `/debug/metrics` endpoints.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};
//!
//! # async fn run() -> std::io::Result<()> {
//! let metrics = ServerMetrics::builder().namespace("pagi").build().expect("valid namespace");
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "hi" }))
//!     .merge(metrics.endpoints())         // GET /metrics, GET /debug/metrics
//!     .layer(metrics.layer());            // per-route HTTP metrics: add it last
//! let listener = TrackedListener::bind("127.0.0.1:3000", &metrics).await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>()).await
//! # }
//! ```
//!
//! Add the layer last, after every `route`, `nest`, `merge` and `fallback`:
//! axum applies `Router::layer` only to what the router holds at that point,
//! and `merge` replaces a layered default fallback, so unmatched requests
//! would go unrecorded otherwise. [`ServerMetrics::instrument`] does both
//! steps in the right order.
//!
//! Metric names are the contract in DESIGN.md ("Server metrics").

mod connection;
mod endpoints;
mod extract;
mod layer;
mod lifespan;
mod metrics;
mod process;
mod protocol_errors;
pub mod push;
mod runtime;
mod sse;
mod websocket;
mod window;

pub use connection::{ConnectionInfo, ConnectionState, TrackedIo, TrackedListener};
pub use endpoints::{DEFAULT_WINDOW, MAX_QUERY_LEN, router};
pub use extract::RouteMetrics;
pub use layer::{
    HttpMetrics, HttpMetricsLayer, MeteredBody, OTHER_METHOD, ResponseFuture, UNMATCHED,
    method_label,
};
pub use metrics::{ServerMetrics, ServerMetricsBuilder};
pub use process::ProcessCollector;
pub use push::{
    CallerLayer, FlushReport, PushClient, PushConfig, PushError, parse_traceparent, set_caller,
};
pub use runtime::RuntimeCollector;
pub use sse::TrackedEventStream;
pub use websocket::{TrackedWebSocket, WsMessage};

impl ServerMetrics {
    /// The tower layer recording HTTP metrics; add it with `Router::layer`.
    pub fn layer(&self) -> HttpMetricsLayer {
        HttpMetricsLayer::new(self)
    }

    /// The `/metrics` and `/debug/metrics` router, to `merge` into the app.
    pub fn endpoints(&self) -> axum::Router {
        router(self)
    }

    /// Merges the endpoints into `app` and adds the layer over everything,
    /// including the fallback that answers unmatched requests.
    pub fn instrument(&self, app: axum::Router) -> axum::Router {
        app.merge(self.endpoints()).layer(self.layer())
    }
}
