//! Where a metric is recorded: on the request path and in the
//! application's own calls, as things happen.
//!
//! - [`layer`] and [`in_flight`]: the tower layer and one request's record
//!   (`http_server_*`, HTTP/2 streams, the push aggregates).
//! - [`connection`] and [`protocol_errors`]: the listener and IO wrappers
//!   (`server_connections_*`, `server_bytes_*`), and hyper's protocol-error
//!   answers read off the wire; [`head_timeout`]: closing connections that
//!   send no request head in time; [`current_connection`]: handing each
//!   request its connection without an extension; [`serve`]:
//!   `TrackedIo::serve` for a hand-written accept loop.
//! - [`extract`], [`websocket`], [`sse`]: the `RouteMetrics` extractor and
//!   the WebSocket and SSE session wrappers.
//! - [`tasks`] and [`task_families`]: task queues for job systems, and the
//!   `task_*` families they record into.
//! - [`lifespan`]: start-up, shut-down and worker accounting.

pub(crate) mod connection;
pub(crate) mod current_connection;
pub(crate) mod extract;
pub(crate) mod head_timeout;
pub(crate) mod in_flight;
pub(crate) mod layer;
pub(crate) mod lifespan;
pub(crate) mod protocol_errors;
pub(crate) mod serve;
pub(crate) mod sse;
pub(crate) mod task_families;
pub(crate) mod tasks;
pub(crate) mod websocket;
