//! # vitals-server
//!
//! What a tokio/hyper/axum/tower server adds to see what a reverse proxy
//! cannot: connections (active, idle, failed, closed mid-request, bytes),
//! HTTP requests per route template (rate, errors, duration until the body
//! completes, time to first byte, abandoned requests), HTTP/2 streams,
//! the `/metrics` and `/debug/*` endpoints, a live dashboard at `/debug/`,
//! and optionally a push of per-interval request aggregates to a
//! collector ([`push`]).
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
//! ## Debug endpoints
//!
//! [`ServerMetrics::endpoints`] serves `/metrics`, `/debug/metrics` (JSON;
//! `?route=` keeps one route, `?server=` one declared server,
//! `?client=` one outbound client; this version has no per-worker view and
//! refuses `?worker=` with a 400 rather than answer unfiltered),
//! `/debug/events` (the event bus as SSE, with a `?types=` filter, a
//! per-client buffer where a slow client loses events, counted, and a cap
//! on clients answered 503) and `/debug/history` (per-second points of the
//! last 15 minutes). See the builder for their settings
//! ([`ServerMetricsBuilder::events_max_clients`], [`ServerMetricsBuilder::history`], …).
//!
//! ## Access control
//!
//! Off by default. [`ServerMetricsBuilder::auth_bearer`] and/or
//! [`ServerMetricsBuilder::auth_basic`] make every route of the endpoints
//! router require the credential (compared in constant time); a refused
//! request gets a 401 with `WWW-Authenticate`, counted in
//! `vitals_rejected_total{reason="debug_auth_missing"|"debug_auth_invalid"}`.
//!
//! ```
//! let metrics = vitals_server::ServerMetrics::builder()
//!     .registry(vitals::Registry::new())
//!     .auth_bearer("change-me")
//!     .build()
//!     .expect("valid names");
//! let app = metrics.instrument(axum::Router::new()); // /metrics, /debug/* now need the token
//! # drop(app);
//! ```
//!
//! ## Task queues
//!
//! [`ServerMetrics::tasks`] gives a [`TaskTracker`] for job systems
//! (`task_*{queue}` metrics, `task` events, the `tasks` section of
//! `/debug/metrics`); see `examples/task_queue.rs`.
//!
//! Metric names are the contract in docs/ARCHITECTURE.md ("Server
//! metrics"); the JSON of the `/debug/*` endpoints is its "Debug endpoints".
//!
//! ## Where things live
//! By concern, each folder what happens to a metric there:
//! - Recorded as things happen, `record/`: the layer and one request's
//!   record ([`HttpMetricsLayer`], [`MeteredBody`]), connections
//!   ([`TrackedListener`], [`TrackedIo`]) and the protocol errors read off
//!   the wire, WebSocket and SSE sessions ([`RouteMetrics`],
//!   [`TrackedWebSocket`], [`TrackedEventStream`]), task queues
//!   ([`TaskTracker`]), lifespan and workers.
//! - Read at scrape time, `collect/`: [`ProcessCollector`],
//!   [`RuntimeCollector`], the uptime gauge.
//! - Served, `endpoints/`: the [`router`] of `/metrics`, `/debug/metrics`
//!   (and the rate window behind it), `/debug/events`, `/debug/history`, the
//!   dashboard (its page is in `assets/`), access control, and the one
//!   query-string parser they share.
//! - Pushed, [`push`]: per-interval aggregates sent to a collector.
//! - Outbound calls, [`client`]: the tower layer and connector for
//!   hyper-util's client, the `reqwest` wrapper, and the `http_client_*`
//!   families (floor 1: knows nothing of [`ServerMetrics`]).
//! - Several servers, `servers.rs` (floor 1): each declared server's
//!   `server_*` handles and its `server` label.
//!
//! ## Several servers and outbound clients
//!
//! ```
//! let metrics = vitals_server::ServerMetrics::builder()
//!     .registry(vitals::Registry::new())
//!     .server("public")
//!     .server("admin")
//!     .build()
//!     .expect("valid names");
//! // Give each listener its server: TrackedListener::bind(addr, &admin).
//! let admin = metrics.server("admin").expect("declared");
//! assert_eq!(admin.server_index(), 1);
//! // An outbound client, labelled by its peer's name.
//! let billing = metrics.client("billing").expect("a valid name").peer("billing").expect("valid");
//! let _layer = billing.layer(); // wrap hyper-util's client with it
//! ```
//!
//! And in four floors, each file importing only from the floors below it
//! (no import circle; `tests/layout.rs` checks it):
//! 1. What knows nothing of [`ServerMetrics`]: the shared label values
//!    (`labels.rs`: [`method_label`], [`UNMATCHED`]); the built settings
//!    and every `DEFAULT_*` (`settings.rs`); the state the metrics keep for
//!    a concern (`record/lifespan.rs`, `record/task_families.rs`, the
//!    `/debug/history` ring in `endpoints/history.rs`, the credentials and
//!    their check in `endpoints/auth.rs`) and the helpers that need no
//!    metrics (`endpoints/query.rs`, `record/protocol_errors.rs`); `push/`
//!    and `collect/`.
//! 2. `server_metrics.rs`: [`ServerMetrics`], its handles, and the methods
//!    that need nothing but them.
//! 3. What takes a `&ServerMetrics`: the rest of `record/` and
//!    `endpoints/` (`endpoints/` reads `record/`, never the reverse), and
//!    [`ServerMetricsBuilder`] (`builder.rs`: fills the settings from the
//!    defaults and registers every metric name).
//! 4. `entry_points.rs`: the methods that hand out a concern's type
//!    ([`ServerMetrics::builder`], [`layer`](ServerMetrics::layer),
//!    [`endpoints`](ServerMetrics::endpoints),
//!    [`instrument`](ServerMetrics::instrument),
//!    [`tasks`](ServerMetrics::tasks), `new`).
//!
//! A request's `route` is followed from [`MatchedPath`] in the layer
//! (`record/in_flight.rs`) to the `http_server_*` families registered in
//! `builder.rs`, the exposition (`endpoints/metrics_text.rs`) and the JSON
//! (`endpoints/window.rs`, `endpoints/debug_metrics.rs`).
//!
//! [`MatchedPath`]: axum::extract::MatchedPath

mod builder;
pub mod client;
mod collect;
mod endpoints;
mod entry_points;
mod labels;
pub mod push;
mod record;
mod server_metrics;
mod servers;
mod settings;

pub use builder::ServerMetricsBuilder;
pub use collect::process::ProcessCollector;
pub use collect::runtime::RuntimeCollector;
pub use endpoints::auth::MAX_AUTHORIZATION_LEN;
pub use endpoints::events::EVENTS_SUBSCRIBER;
pub use endpoints::query::MAX_QUERY_LEN;
pub use endpoints::router;
pub use labels::{OTHER_METHOD, UNMATCHED, method_label};
pub use push::{
    CallerLayer, FlushReport, PushClient, PushConfig, PushError, parse_traceparent, set_caller,
};
pub use record::connection::{ConnectionInfo, ConnectionState, TrackedIo, TrackedListener};
pub use record::current_connection::{ConnectionService, TrackedRouter, WithConnection};
pub use record::extract::RouteMetrics;
pub use record::in_flight::MeteredBody;
pub use record::layer::{HttpMetrics, HttpMetricsLayer, ResponseFuture};
pub use record::sse::TrackedEventStream;
pub use record::tasks::{RunningTask, TaskQueue, TaskTracker};
pub use record::websocket::{TrackedWebSocket, WsMessage};
pub use server_metrics::ServerMetrics;
pub use servers::MAX_SERVERS;
pub use settings::{
    DEFAULT_EVENTS_BUFFER, DEFAULT_EVENTS_HEARTBEAT, DEFAULT_EVENTS_MAX_CLIENTS,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_INTERVAL,
    DEFAULT_LISTEN_BACKLOG, DEFAULT_WINDOW,
};
