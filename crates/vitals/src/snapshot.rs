//! `Snapshot`: a registry's contents as plain data.

use crate::name::Unit;
use crate::sketch::Sketch;
use crate::visit::{FamilyInfo, HistogramView, Labels, MetricKind, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every family and series of a registry at one moment, as plain data for
/// programs and the JSON endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Families in registration order.
    pub families: Vec<FamilySnapshot>,
}

/// One metric family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilySnapshot {
    /// Family name (counters without `_total`).
    pub name: String,
    /// Help text.
    pub help: String,
    /// Unit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Its series.
    pub series: Vec<SeriesSnapshot>,
}

/// One series: its labels and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    /// Label names to values (`overflow: "true"` on the overflow series).
    pub labels: BTreeMap<String, String>,
    /// The value.
    #[serde(flatten)]
    pub value: Value,
}

/// The value of a series.
///
/// In JSON a value is a bare number under `value` (non-finite floats are the
/// strings `"NaN"`, `"+Inf"`, `"-Inf"`); the family's `type` says what it is.
/// Read back, a non-negative integer is always `Unsigned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A counter (or a non-negative integer gauge read back from JSON).
    Unsigned {
        /// The value.
        value: u64,
    },
    /// An integer gauge.
    Signed {
        /// The value.
        value: i64,
    },
    /// A float gauge.
    Float {
        /// The value.
        #[serde(with = "float_text")]
        value: f64,
    },
    /// A histogram.
    Histogram(HistogramSnapshot),
}

/// JSON has no NaN or infinity: write them as the exposition formats do.
mod float_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(v) => Ok(v),
            NumberOrText::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                _ => Err(D::Error::custom(format_args!(
                    "expected a number, \"NaN\", \"+Inf\" or \"-Inf\", got {t:?}"
                ))),
            },
        }
    }
}

/// A histogram series as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Classic buckets: `(upper bound, cumulative count)`; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// p50, p90, p95 and p99 from the sketch (`None` when empty).
    pub quantiles: Quantiles,
    /// The full sketch, for merging and other quantiles.
    pub sketch: Sketch,
}

/// Common quantiles of a histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

impl Quantiles {
    /// Reads the quantiles from a sketch.
    pub fn of(sketch: &Sketch) -> Self {
        Quantiles {
            p50: sketch.quantile(0.5),
            p90: sketch.quantile(0.9),
            p95: sketch.quantile(0.95),
            p99: sketch.quantile(0.99),
        }
    }
}

impl Snapshot {
    /// The family with this name.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| f.name == name)
    }
}

impl FamilySnapshot {
    /// The series whose labels are exactly these pairs.
    pub fn series(&self, labels: &[(&str, &str)]) -> Option<&SeriesSnapshot> {
        self.series.iter().find(|s| {
            s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// Builds a [`Snapshot`] from visitor calls.
#[derive(Debug, Default)]
pub struct SnapshotVisitor {
    snapshot: Snapshot,
}

impl SnapshotVisitor {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The finished snapshot.
    pub fn finish(self) -> Snapshot {
        self.snapshot
    }

    fn push(&mut self, labels: &Labels<'_>, value: Value) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(f) = self.snapshot.families.last_mut() {
            f.series.push(SeriesSnapshot { labels, value });
        }
    }
}

impl Visitor for SnapshotVisitor {
    fn family(&mut self, info: &FamilyInfo<'_>) {
        self.snapshot.families.push(FamilySnapshot {
            name: info.name.to_owned(),
            help: info.help.to_owned(),
            unit: info.unit,
            kind: info.kind,
            series: Vec::new(),
        });
    }
    fn counter(&mut self, labels: &Labels<'_>, value: u64) {
        self.push(labels, Value::Unsigned { value });
    }
    fn float_counter(&mut self, labels: &Labels<'_>, value: f64) {
        self.push(labels, Value::Float { value });
    }
    fn gauge(&mut self, labels: &Labels<'_>, value: i64) {
        self.push(labels, Value::Signed { value });
    }
    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64) {
        self.push(labels, Value::Float { value });
    }
    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>) {
        let sketch = view.sketch();
        self.push(
            labels,
            Value::Histogram(HistogramSnapshot {
                count: view.count(),
                sum: view.sum(),
                buckets: view.buckets().collect(),
                quantiles: Quantiles::of(&sketch),
                sketch,
            }),
        );
    }
}
