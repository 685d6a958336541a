//! Where a metric is read at scrape time: collectors the registry calls
//! each time it renders or snapshots, which keep nothing on a request path.
//!
//! - [`process`] (rendering) and [`procfs`] (reading `/proc`): the standard
//!   `process_*` metrics.
//! - [`runtime`]: the tokio runtime's `tokio_runtime_*` metrics.
//! - [`uptime`]: the `server_uptime_seconds` gauge.

pub(crate) mod process;
pub(crate) mod procfs;
pub(crate) mod runtime;
pub(crate) mod uptime;
