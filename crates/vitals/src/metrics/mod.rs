//! The live metric types (compiled with the `enabled` feature).

pub(crate) mod cell;
pub(crate) mod counter;
pub(crate) mod family;
pub(crate) mod gauge;
pub(crate) mod histogram;
pub(crate) mod series_map;

pub use counter::{Counter, LocalCounter, ShardedCounter};
pub use family::{
    CounterVec, Family, FloatGaugeVec, GaugeVec, HistogramVec, Metric, ShardedCounterVec,
};
pub use gauge::{FloatGauge, Gauge};
pub use histogram::{Histogram, Timer};
