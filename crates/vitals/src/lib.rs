//! # vitals
//!
//! Metrics for async servers whose hot path costs a few nanoseconds:
//! counters, gauges and histograms (with quantiles within 1 %), label
//! families with a cardinality limit, batch handles for the hottest loops,
//! Prometheus text / OpenMetrics / JSON output, and a lifecycle event bus.
//!
//! ```
//! use vitals::{Format, Options, Registry, Unit};
//!
//! let registry = Registry::new();
//! let requests = registry
//!     .counter_vec(("http_requests_total", "Requests served"), &["method", "status"])
//!     .unwrap();
//! let latency = registry
//!     .histogram_vec(Options::new("http_request_duration", "Request time").unit(Unit::Seconds), &["method"])
//!     .unwrap();
//!
//! requests.get(&["GET", "200"]).inc();
//! latency.get(&["GET"]).record(0.012);
//!
//! let text = String::from_utf8(registry.render(Format::Prometheus)).unwrap();
//! # if vitals::ENABLED {
//! assert!(text.contains(r#"http_requests_total{method="GET",status="200"} 1"#));
//! assert!(text.contains(r#"http_request_duration_seconds_bucket{method="GET",le="0.025"} 1"#));
//! # }
//! ```
//!
//! ## Features
//! - `wire`: [`wire`], the collector's wire format (push batches and
//!   per-request records), shared by the push client and the collector.
//! - `shared`: [`SharedRegion`], metrics shared by the worker processes
//!   of one server through a memory-mapped run directory (Unix). Off by
//!   default; without it nothing of it is compiled in.
//! - `enabled` (default): the real instrumentation. Without it every metric
//!   type, family, registry and the event bus is a zero-sized no-op with the
//!   same API, so a library can instrument itself at no cost to users who
//!   opt out. Plain data types ([`Sketch`], [`Snapshot`], [`Event`]) and the
//!   encoders stay available either way.
//!
//! ## Where things live
//! - Hot path: [`Counter`], [`ShardedCounter`], [`Gauge`], [`FloatGauge`],
//!   [`Histogram`], [`LocalCounter`], [`Family`].
//! - Storage and reading: [`Registry`], [`Visitor`], [`Snapshot`].
//! - Output: [`encode`] and [`Format`]: `encode/text.rs` is the text
//!   encoder the registry renders through, `encode/render.rs` renders a
//!   whole registry in one call (text or JSON).
//! - Events: [`EventBus`] (`event/bus.rs`), [`Event`] (`event/data.rs`).

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod encode;
mod error;
pub mod event;
#[cfg_attr(not(feature = "enabled"), allow(dead_code))]
pub mod limits;
pub mod name;
mod options;
#[cfg_attr(not(feature = "enabled"), allow(dead_code))]
pub mod sketch;
pub mod snapshot;
pub mod visit;
#[cfg(feature = "wire")]
pub mod wire;

#[cfg(feature = "enabled")]
mod metrics;
#[cfg(feature = "enabled")]
mod registry;
#[cfg(all(feature = "enabled", feature = "shared"))]
pub mod shared;

#[cfg(not(feature = "enabled"))]
mod noop;

pub use encode::Format;
pub use error::Error;
pub use event::{
    Direction, Event, EventBus, EventRecord, LifespanPhase, SharedEvent, Subscription, TaskState,
};
pub use name::Unit;
pub use options::{DEFAULT_BUCKETS, DEFAULT_CARDINALITY_LIMIT, GaugeMode, MAX_BUCKETS, Options};
pub use sketch::Sketch;
pub use snapshot::{HistogramSnapshot, Quantiles, Snapshot};
pub use visit::{Collector, FamilyInfo, HistogramView, Labels, MetricKind, Visitor};

#[cfg(feature = "enabled")]
pub use metrics::{
    Counter, CounterVec, Family, FloatGauge, FloatGaugeVec, Gauge, GaugeVec, Histogram,
    HistogramVec, LocalCounter, Metric, ShardedCounter, ShardedCounterVec, Timer,
};
#[cfg(feature = "enabled")]
pub use registry::{Registry, global};
#[cfg(all(feature = "enabled", feature = "shared"))]
pub use shared::{SharedRegion, SlotState};

#[cfg(not(feature = "enabled"))]
pub use noop::{
    Counter, CounterVec, Family, FloatGauge, FloatGaugeVec, Gauge, GaugeVec, Histogram,
    HistogramVec, LocalCounter, Metric, Registry, ShardedCounter, ShardedCounterVec, Timer, global,
};

/// True when instrumentation is compiled in (the `enabled` feature).
pub const ENABLED: bool = cfg!(feature = "enabled");
