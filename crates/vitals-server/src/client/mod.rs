//! Outbound HTTP clients: the caller's side of every call this service
//! makes.
//!
//! [`ServerMetrics::client`](crate::ServerMetrics::client) declares a
//! client by name and gives its [`ClientMetrics`]; wrap a tower-based client
//! (hyper-util's, or anything built on it) with
//! [`ClientMetrics::layer`] and its connector with
//! [`ClientMetrics::connector`], or wrap a `reqwest::Client` in
//! [`reqwest::TrackedReqwest`] (feature `reqwest`). Each call records, by
//! `client`, `method` and `host` (the target's `host[:port]` or a declared
//! peer name, never the URL):
//!
//! - `http_client_requests_total{…,status}` (`status="error"` when no
//!   response came), `http_client_request_duration_seconds` (until the
//!   response body completed), `http_client_time_to_first_byte_seconds`;
//! - `http_client_errors_total{…,kind}`: `connect`, `timeout`, `tls`,
//!   `protocol` ([`ErrorKind`]);
//! - `http_client_active_requests{client}`, and with the connector
//!   `http_client_connections_opened_total{client}` and
//!   `http_client_connections_reused_total{client}`;
//! - a `ClientRequestCompleted` event, and with push configured, the
//!   caller's side of the collector's caller → callee edge.
//!
//! Each request gets `x-vitals-caller` (the push service's name, or
//! [`ClientMetrics::caller`]) and a `traceparent` when it has none, so the
//! callee's figures and these meet in the collector.

mod call;
mod connector;
mod error_kind;
pub(crate) mod families;
mod layer;
mod metrics;
#[cfg(feature = "reqwest")]
pub mod reqwest;

pub use call::ConnectionMark;
pub use connector::{ConnectFuture, TrackedConnection, TrackedConnector};
pub use error_kind::{ErrorKind, TimedOut};
pub use families::{MAX_CLIENTS, OVERFLOW_CLIENT};
pub use layer::{BoxError, ClientBody, ClientMetricsLayer, ClientMetricsService, ResponseFuture};
pub use metrics::ClientMetrics;
