//! Custom metrics: what identifies a custom series ([`CustomKey`]), what
//! one period knows about it ([`CustomStats`], merged with
//! [`CustomStats::merge`]), and the queries that read points.

use super::period::{Resolution, UnixMs};
use serde::{Deserialize, Serialize};

/// Counter or gauge: the kind of a custom metric (the wire type).
pub use vitals::wire::CustomKind;

/// What identifies one custom series inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CustomKey {
    /// The service that pushed it.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Label pairs in canonical form: a JSON object with sorted keys
    /// (see [`canonical_labels`]), so equal label sets compare equal.
    pub labels: String,
    /// The instance that pushed it (may be empty).
    pub instance: String,
}

/// The canonical form of a label set: compact JSON, keys sorted.
pub fn canonical_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    // A BTreeMap serializes in key order; serializing strings cannot fail.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

/// What one period knows about one custom series: the last value (by
/// time), and the smallest and largest values seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CustomStats {
    /// Counter or gauge (of the last value).
    pub kind: CustomKind,
    /// The latest value.
    pub last: f64,
    /// When the latest value was taken (ms since the epoch).
    pub last_ms: UnixMs,
    /// Smallest value in the period.
    pub min: f64,
    /// Largest value in the period.
    pub max: f64,
}

impl CustomStats {
    /// One value taken at `at_ms`.
    pub fn of(kind: CustomKind, value: f64, at_ms: UnixMs) -> Self {
        CustomStats {
            kind,
            last: value,
            last_ms: at_ms,
            min: value,
            max: value,
        }
    }

    /// Adds `other` into `self`: the later value (ties go to `other`, the
    /// newer write) becomes `last`; min and max widen.
    pub fn merge(&mut self, other: &CustomStats) {
        if other.last_ms >= self.last_ms {
            self.kind = other.kind;
            self.last = other.last;
            self.last_ms = other.last_ms;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One stored custom point: a custom series over one period at one
/// resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomPoint {
    /// Whose data this is.
    pub tenant: String,
    /// Period length.
    pub resolution: Resolution,
    /// Start of the period (a multiple of the resolution), ms since the epoch.
    pub start_ms: UnixMs,
    /// Which series.
    pub key: CustomKey,
    /// The values.
    pub stats: CustomStats,
}

/// Which custom points a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomQuery {
    /// Whose data (a query never crosses tenants).
    pub tenant: String,
    /// One service, or every service of the tenant.
    pub service: Option<String>,
    /// One metric name, or every one.
    pub name: Option<String>,
    /// The resolution to read.
    pub resolution: Resolution,
    /// Points with `start_ms >= start_ms` …
    pub start_ms: UnixMs,
    /// … and `start_ms < end_ms`.
    pub end_ms: UnixMs,
}

impl CustomQuery {
    /// Whether `p` is one of the points this query asks for (for back
    /// ends that filter in Rust).
    pub fn matches(&self, p: &CustomPoint) -> bool {
        p.start_ms >= self.start_ms
            && p.start_ms < self.end_ms
            && self.service.as_ref().is_none_or(|s| *s == p.key.service)
            && self.name.as_ref().is_none_or(|n| *n == p.key.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_merge_keeps_the_latest_and_widens() {
        let mut a = CustomStats::of(CustomKind::Gauge, 5.0, 100);
        a.merge(&CustomStats::of(CustomKind::Gauge, 9.0, 50));
        assert_eq!((a.last, a.last_ms, a.min, a.max), (5.0, 100, 5.0, 9.0));
        a.merge(&CustomStats::of(CustomKind::Gauge, -1.0, 100));
        assert_eq!((a.last, a.last_ms, a.min, a.max), (-1.0, 100, -1.0, 9.0));
        let labels: std::collections::BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "\"".into())].into();
        assert_eq!(canonical_labels(&labels), r#"{"a":"\"","b":"2"}"#);
    }
}
