//! The one interface through which encoders and snapshots read a registry.
//!
//! A [`Registry`](crate::Registry) walks its families and calls a [`Visitor`]
//! once per family and once per series, lending borrowed views of the live
//! values. Encoders write straight from those views, so rendering allocates
//! nothing per series; custom [`Collector`]s (process metrics, say) emit into
//! the same interface at scrape time.

use crate::name::Unit;
use crate::sketch::Sketch;
use serde::{Deserialize, Serialize};

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A monotonic count (`u64`, or `f64` from a collector).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

impl MetricKind {
    /// The name used in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// What a family is: its exposed name, help, unit and type.
#[derive(Debug, Clone, Copy)]
pub struct FamilyInfo<'a> {
    /// The family name as exposed, without the counter `_total` suffix
    /// (OpenMetrics calls this the metric family name).
    pub name: &'a str,
    /// Help text (unescaped).
    pub help: &'a str,
    /// Unit, if any; the name then ends with `_<unit>`.
    pub unit: Option<Unit>,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
}

/// The labels of one series, borrowed from the family.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    names: &'a [Box<str>],
    values: &'a [Box<str>],
    overflow: bool,
}

impl<'a> Labels<'a> {
    /// Labels pairing `names[i]` with `values[i]`.
    pub fn new(names: &'a [Box<str>], values: &'a [Box<str>]) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Labels {
            names,
            values,
            overflow: false,
        }
    }

    /// No labels.
    pub fn empty() -> Self {
        Labels {
            names: &[],
            values: &[],
            overflow: false,
        }
    }

    /// The cardinality-overflow series: the single label `overflow="true"`.
    pub fn overflow() -> Self {
        Labels {
            names: &[],
            values: &[],
            overflow: true,
        }
    }

    /// True for the overflow series.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }

    /// True when there are no label pairs at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.overflow
    }

    /// The `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let overflow = self.overflow.then_some(("overflow", "true"));
        self.names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| (&**n, &**v))
            .chain(overflow)
    }
}

/// Something that can produce the full sketch of a histogram on demand.
pub trait SketchSource {
    /// The histogram's sketch, for quantiles and merging.
    fn sketch(&self) -> Sketch;
}

impl SketchSource for Sketch {
    fn sketch(&self) -> Sketch {
        self.clone()
    }
}

/// A read of one histogram series: classic cumulative buckets, sum and
/// count, and access to the sketch for quantiles.
#[derive(Clone, Copy)]
pub struct HistogramView<'a> {
    bounds: &'a [f64],
    cumulative: &'a [u64],
    count: u64,
    sum: f64,
    source: &'a dyn SketchSource,
}

impl<'a> HistogramView<'a> {
    /// A view over already-read values. `cumulative[i]` counts the values
    /// `<= bounds[i]`; `count` is the `+Inf` bucket.
    pub fn new(
        bounds: &'a [f64],
        cumulative: &'a [u64],
        count: u64,
        sum: f64,
        source: &'a dyn SketchSource,
    ) -> Self {
        debug_assert_eq!(bounds.len(), cumulative.len());
        HistogramView {
            bounds,
            cumulative,
            count,
            sum,
            source,
        }
    }

    /// `(upper bound, cumulative count)` for each finite classic bucket.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + 'a {
        self.bounds
            .iter()
            .copied()
            .zip(self.cumulative.iter().copied())
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The full sketch (allocates; for quantiles and merging).
    pub fn sketch(&self) -> Sketch {
        self.source.sketch()
    }
}

/// Receives the contents of a registry, family by family.
///
/// Calls come in order: `family`, then that family's series, then the next
/// `family`. Series values are read at the moment of the call.
pub trait Visitor {
    /// A new family starts.
    fn family(&mut self, info: &FamilyInfo<'_>);
    /// A counter series.
    fn counter(&mut self, labels: &Labels<'_>, value: u64);
    /// A counter series with a fractional value, such as CPU seconds read
    /// from the OS at scrape time.
    fn float_counter(&mut self, labels: &Labels<'_>, value: f64);
    /// An integer gauge series.
    fn gauge(&mut self, labels: &Labels<'_>, value: i64);
    /// A floating-point gauge series.
    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64);
    /// A histogram series.
    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>);
}

/// A source of metrics read at scrape time, such as process statistics.
///
/// Register one with [`Registry::register_collector`](crate::Registry::register_collector);
/// it is called on every render and snapshot, after the registered families.
pub trait Collector: Send + Sync {
    /// Emits families and series into `visitor`.
    fn collect(&self, visitor: &mut dyn Visitor);
}
