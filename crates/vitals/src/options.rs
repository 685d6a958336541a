//! `Options`: the name, help and settings a metric is registered with.

use crate::name::Unit;

/// The default classic bucket bounds, in seconds: OpenTelemetry's
/// recommended HTTP server duration buckets.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Most classic bucket bounds a histogram may have.
pub const MAX_BUCKETS: usize = 128;

/// Default number of series a family may hold before new label sets go to
/// the overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// How to register a metric: name and help, plus optional unit,
/// cardinality limit and histogram buckets.
///
/// A `(name, help)` tuple converts into `Options`, so simple cases stay short:
///
/// ```
/// use vitals::{Options, Registry, Unit};
/// let registry = Registry::new();
/// let hits = registry.counter(("cache_hits_total", "Cache hits")).unwrap();
/// let latency = registry
///     .histogram(Options::new("db_query_duration", "Query time").unit(Unit::Seconds).buckets(&[0.001, 0.01, 0.1]))
///     .unwrap();
/// # hits.inc(); latency.record(0.002);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) unit: Option<Unit>,
    pub(crate) cardinality_limit: Option<usize>,
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) gauge_mode: GaugeMode,
}

/// How a gauge's values from several worker processes combine into the
/// one value a scrape shows, when the registry's storage is shared
/// between processes (feature `shared`). A single process ignores it.
/// Only live workers count: a worker that died takes its gauges with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GaugeMode {
    /// The sum over live workers (connections open, requests in flight).
    /// The default.
    #[default]
    Sum,
    /// The largest value of a live worker.
    Max,
    /// The smallest value of a live worker.
    Min,
    /// The value of the live worker started most recently (a setting or a
    /// start-up time every worker sets alike).
    Latest,
    /// One series per live worker, with a `worker` label.
    PerWorker,
}

impl GaugeMode {
    /// The mode's number in the shared storage's records.
    #[cfg_attr(not(feature = "shared"), allow(dead_code))]
    pub(crate) fn code(self) -> u8 {
        match self {
            GaugeMode::Sum => 0,
            GaugeMode::Max => 1,
            GaugeMode::Min => 2,
            GaugeMode::Latest => 3,
            GaugeMode::PerWorker => 4,
        }
    }
}

impl Options {
    /// A metric called `name`, described by `help`.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Options {
            name: name.into(),
            help: help.into(),
            unit: None,
            cardinality_limit: None,
            buckets: None,
            gauge_mode: GaugeMode::Sum,
        }
    }

    /// Sets the unit; the exposed name gets the `_<unit>` suffix if missing.
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Most series the family may hold (default 2000); past it new label
    /// sets share the overflow series.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// Histograms only: the classic bucket upper bounds (finite, positive,
    /// strictly increasing; `+Inf` is implied). Defaults to
    /// [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS).
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        self.buckets = Some(bounds.to_vec());
        self
    }
}

impl Options {
    /// Gauges only: how the values of several worker processes combine
    /// (default [`GaugeMode::Sum`]); see [`GaugeMode`].
    pub fn gauge_mode(mut self, mode: GaugeMode) -> Self {
        self.gauge_mode = mode;
        self
    }
}

impl<N: Into<String>, H: Into<String>> From<(N, H)> for Options {
    fn from((name, help): (N, H)) -> Self {
        Options::new(name, help)
    }
}
