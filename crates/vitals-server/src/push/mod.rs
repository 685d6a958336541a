//! The push client: per-interval request aggregates sent to a collector.
//!
//! When [`ServerMetricsBuilder::push`](crate::ServerMetricsBuilder::push) is
//! given a [`PushConfig`], the HTTP layer also aggregates every request per
//! (method, route, status class, caller): counts, errors, Apdex counts and a
//! duration sketch in milliseconds, plus a bounded random sample of
//! individual requests. A background task closes an interval every
//! [`PushConfig::interval`], turns it into a [`vitals::wire::IngestBatch`]
//! and POSTs it to `<collector>/v1/ingest`.
//!
//! ```no_run
//! use std::time::Duration;
//! use vitals_server::{PushConfig, ServerMetrics};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = ServerMetrics::builder()
//!     .push(
//!         PushConfig::new("http://127.0.0.1:7070", "ingest-key")?
//!             .service("checkout")
//!             .instance("checkout-1")
//!             .interval(Duration::from_secs(10))
//!             .apdex_t(Duration::from_millis(300)),
//!     )
//!     .build()?;
//! // … serve the app with `metrics.layer()` …
//! // After `serve` returns: deliver the last interval, then stop.
//! metrics.finish_push(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! An interval without requests is still pushed (with no routes), so the
//! collector can tell an idle instance from one that is gone.
//!
//! The sample keeps a request with a W3C `traceparent` by its trace id
//! ([`trace_priority`]: the interval keeps the traced requests of lowest
//! priority), so every service keeps or drops the same traces and the
//! collector's request journeys are whole; requests without one share a
//! random reservoir in the places left. At most
//! [`PushConfig::sample_size`] requests an interval either way.
//!
//! The application's own metrics can ride along as the batch's custom
//! metrics: choose families of the server's registry by name or prefix
//! with [`PushConfig::push_metrics`] / [`PushConfig::push_metrics_prefix`]
//! (counters and gauges per series with their labels; histograms as
//! `<name>_count` and `<name>_sum` counters). They are read once per
//! interval by the push task; see [`custom`] for the rules.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vitals_server::{PushConfig, ServerMetrics};
//!
//! let registry = vitals::Registry::new();
//! let orders = registry.counter_vec(("orders_total", "Orders placed"), &["shop"])?;
//! let metrics = ServerMetrics::builder()
//!     .registry(registry.clone())
//!     .push(
//!         PushConfig::new("http://127.0.0.1:7070", "ingest-key")?
//!             .service("checkout")
//!             .push_metrics(["orders_total", "queue_depth"])
//!             .push_metrics_prefix("checkout_"),
//!     )
//!     .build()?;
//! orders.get(&["eu"]).inc();
//! # Ok(()) }
//! ```
//!
//! Delivery: batches wait in a bounded queue (oldest dropped first when it
//! is full, counted in `vitals_push_dropped_total{reason="queue_full"}`).
//! Connection errors, timeouts, `5xx` and `429` are retried with
//! exponential backoff and full jitter (`Retry-After` is honoured, capped);
//! a retry sends the same bytes, so the same `batch_id`. Any other `4xx` is
//! not retried and counts as `vitals_push_batches_total{result="rejected"}`.
//! Requests never wait for any of it: the layer only touches atomics and,
//! when a request is sampled, one short mutex.
//!
//! Every failed attempt is also counted by why it failed in
//! `vitals_push_failures_total{reason}`: `connect`, `tls` (handshake or
//! certificate refused), `timeout`, `server_error` (5xx), `throttled`
//! (429 or 408) or `protocol`. A batch is attempted at most
//! [`PushConfig::max_attempts`] times, then dropped and counted in
//! `vitals_push_dropped_total{reason="retries_exhausted"}`.
//!
//! Transport: hyper-util's client (the one HTTP stack of the workspace),
//! `http://` always; `https://` with the default feature `push-tls`, through
//! rustls (ring provider, HTTP/1.1). The server certificate is checked
//! against Mozilla's root certificates (from the `webpki-roots` crate, so
//! nothing is read from the operating system) plus any private CA given to
//! [`PushConfig::root_certificate_pem`]. A certificate that is not trusted
//! fails the attempt (`reason="tls"`) and is retried like a connection
//! error, since a collector's certificate can be fixed while batches wait.

mod aggregate;
mod caller;
mod client;
mod client_side;
mod config;
pub mod custom;
mod delivery;
mod ended;
mod error;
mod limits;
mod sample;
#[cfg(feature = "push-tls")]
mod tls;

pub use caller::{
    CallerLayer, CallerService, INVALID_CALLER, OVERFLOW_CALLER, parse_traceparent, set_caller,
    valid_caller,
};
pub use client::{FlushReport, PushClient};
pub use client_side::OVERFLOW_PEER;
pub use config::{
    DEFAULT_INTERVAL, DEFAULT_MAX_CALLERS, DEFAULT_MAX_CUSTOM, DEFAULT_MAX_SERIES,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_SAMPLE_SIZE, PushConfig,
};
pub use error::PushError;
pub use limits::{
    GZIP_MIN_BYTES, MAX_CALLER_LEN, MAX_DURATION_MS, MAX_INTERVAL, MAX_NAME_LEN, MAX_RETRY_AFTER,
    MAX_ROUTE_LEN, MAX_SAMPLED_PATH_LEN,
};
pub use sample::trace_priority;

pub(crate) use aggregate::{Aggregator, PushRequest, Series};
pub(crate) use ended::Ended;
