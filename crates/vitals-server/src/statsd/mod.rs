//! StatsD / DogStatsD export: every interval, a thread reads a registry
//! and sends counters as the difference since the last send (`|c`),
//! gauges as they are (`|g`), and histograms as the values recorded since
//! (`|ms`, `|h` or `|d`, one line per sketch bucket with a sample rate for
//! its count), labels as DogStatsD tags (`|#method:GET,route:/users/{id}`),
//! lines batched into UDP datagrams of at most 1432 bytes by default.
//!
//! Run `cargo run -p vitals-server --example statsd` for a demo; the test
//! `tests/statsd.rs` sends to a real StatsD server.

mod config;
mod exporter;
mod lines;

pub use config::{
    DEFAULT_MAX_DATAGRAM, DEFAULT_STATSD_INTERVAL, HistogramType, MIN_DATAGRAM, StatsdConfig,
};
pub use exporter::{StatsdExporter, StatsdReport};
