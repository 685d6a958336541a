//! Prometheus remote-write export: the collector hands its per-route
//! aggregates and custom metrics to a Prometheus-compatible store
//! (Prometheus, Grafana Mimir, Thanos Receive, VictoriaMetrics, Cortex),
//! one `[[remote_write]]` table per receiver
//! ([`crate::config::RemoteWriteConfig`]).
//!
//! What is sent and when: each minute, once it ended `delay` ago, is read
//! from the store (minute buckets and custom points of the configured
//! tenants) and turned into series with cumulative counters and
//! histograms (`series.rs` lists them), every sample stamped with the
//! minute's end, once. Requests wait in a bounded on-disk queue
//! (`queue.rs`) and are sent in order (`sender.rs`): 5xx, 429 and network
//! failures are retried with backoff, other 4xx dropped and counted.
//! Export state survives a restart (`exporter.rs`).
//!
//! - `proto.rs`: the remote-write 1.0 messages (prost) and the snappy body.
//! - `series.rs`: a minute of buckets into series; the running totals.
//! - `queue.rs`: the on-disk queue.
//! - `sender.rs`: one request on the wire, and what its answer means.
//! - `exporter.rs`: one receiver: export passes, the sender loop, state.
//! - `metrics.rs`: the exporter's series in the collector's `/metrics`.

mod exporter;
mod metrics;
mod proto;
mod queue;
mod sender;
mod series;

pub use exporter::{ExportError, Exporter, MAX_SERIES_PER_REQUEST, SendReport};
pub use metrics::RemoteMetrics;
pub use proto::{BucketSpan, Histogram, Label, Sample, TimeSeries, WriteRequest};
pub use sender::USER_AGENT;
pub use series::{Cumulative, DURATION, Shape, label_name, metric_name, minute_series, native};
