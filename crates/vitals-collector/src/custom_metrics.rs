//! Answers about custom metrics, computed from stored [`CustomPoint`]s:
//! the list of a service's metrics with their latest values and counter
//! rates, and per-label-set series of points.
//!
//! Semantics, per series `(name, labels)`:
//! - **Instances** are summed: a gauge's value is the sum over instances of
//!   each one's latest value; a counter's rate is the sum of each one's rate.
//! - **Counter increases** are read from consecutive stored points of one
//!   instance (oldest first): a point whose `min` is below the previous
//!   point's `last` saw a reset, and adds its whole `last` (the counter
//!   restarted from zero); any other point adds `last − previous last`.
//!   The first point of the window only sets the baseline. Increases that
//!   happen before a reset inside one stored period are not seen.

use crate::model::{CustomKind, CustomPoint, UnixMs};
use crate::query::Point;
use serde::Serialize;
use std::collections::BTreeMap;

/// One custom series of a service, summed over instances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomSummary {
    /// Metric name.
    pub name: String,
    /// Counter or gauge (of the newest value).
    pub kind: CustomKind,
    /// Label pairs.
    pub labels: serde_json::Value,
    /// Sum over instances of each instance's latest value in the window.
    pub value: f64,
    /// Smallest value any instance reported in the window.
    pub min: f64,
    /// Largest value any instance reported in the window.
    pub max: f64,
    /// Instances that reported the series in the window.
    pub instances: usize,
    /// When the newest value was taken (ms since the epoch).
    pub last_ms: UnixMs,
    /// Counters: increase per second over the window, reset-aware per
    /// instance; `None` for gauges.
    pub rate_per_sec: Option<f64>,
}

/// One label set's points, as `/custom/{name}` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomSeries {
    /// Label pairs.
    pub labels: serde_json::Value,
    /// Counter or gauge (of the newest value).
    pub kind: CustomKind,
    /// One point per step: gauge, the sum over instances of each one's
    /// last value in the step; counter, the increase per second in the
    /// step. `null` when nothing was reported (or, for a counter, when the
    /// step holds only a baseline).
    pub points: Vec<Point>,
}

/// `(name, labels)` → instance → points oldest first.
type Grouped<'a> = BTreeMap<(&'a str, &'a str), BTreeMap<&'a str, Vec<&'a CustomPoint>>>;

fn group(points: &[CustomPoint]) -> Grouped<'_> {
    let mut out: Grouped<'_> = BTreeMap::new();
    for p in points {
        out.entry((p.key.name.as_str(), p.key.labels.as_str()))
            .or_default()
            .entry(p.key.instance.as_str())
            .or_default()
            .push(p);
    }
    for instances in out.values_mut() {
        for list in instances.values_mut() {
            list.sort_by_key(|p| (p.start_ms, p.stats.last_ms));
        }
    }
    out
}

fn labels_value(canonical: &str) -> serde_json::Value {
    serde_json::from_str(canonical).unwrap_or_else(|_| serde_json::Value::String(canonical.into()))
}

/// The increase a point adds after `prev` (see the module docs).
fn increase(prev: &CustomPoint, p: &CustomPoint) -> f64 {
    if p.stats.min < prev.stats.last || p.stats.last < prev.stats.last {
        p.stats.last.max(0.0)
    } else {
        p.stats.last - prev.stats.last
    }
}

fn newest<'a>(instances: &BTreeMap<&str, Vec<&'a CustomPoint>>) -> Option<&'a CustomPoint> {
    instances
        .values()
        .filter_map(|l| l.iter().max_by_key(|p| p.stats.last_ms))
        .max_by_key(|p| p.stats.last_ms)
        .copied()
}

/// Every custom series in `points` (one service's, one window), sorted by
/// name then labels. `span_secs` is the window length rates divide by.
pub fn summaries(points: &[CustomPoint], span_secs: f64) -> Vec<CustomSummary> {
    let span = span_secs.max(1e-3);
    group(points)
        .into_iter()
        .filter_map(|((name, labels), instances)| {
            let newest = newest(&instances)?;
            let mut value = 0.0;
            let mut increase_total = 0.0;
            let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
            for list in instances.values() {
                for p in list {
                    min = min.min(p.stats.min);
                    max = max.max(p.stats.max);
                }
                if let Some(latest) = list.iter().max_by_key(|p| p.stats.last_ms) {
                    value += latest.stats.last;
                }
                for pair in list.windows(2) {
                    increase_total += increase(pair[0], pair[1]);
                }
            }
            let kind = newest.stats.kind;
            Some(CustomSummary {
                name: name.to_string(),
                kind,
                labels: labels_value(labels),
                value,
                min,
                max,
                instances: instances.len(),
                last_ms: newest.stats.last_ms,
                rate_per_sec: (kind == CustomKind::Counter).then_some(increase_total / span),
            })
        })
        .collect()
}

/// One metric's series per label set over steps of `step` ms starting at
/// `from` (aligned to the step) up to `to`; `points` are that metric's.
pub fn series(points: &[CustomPoint], from: UnixMs, to: UnixMs, step: i64) -> Vec<CustomSeries> {
    let start = from.div_euclid(step) * step;
    let n = ((to - start) / step + 1).max(1) as usize;
    let slot = |t: UnixMs| -> Option<usize> {
        usize::try_from((t - start).div_euclid(step))
            .ok()
            .filter(|i| *i < n)
    };
    group(points)
        .into_iter()
        .filter_map(|((_, labels), instances)| {
            let kind = newest(&instances)?.stats.kind;
            let mut values: Vec<Option<f64>> = vec![None; n];
            for list in instances.values() {
                match kind {
                    CustomKind::Gauge => {
                        // Per step, this instance's newest point.
                        let mut last: BTreeMap<usize, &CustomPoint> = BTreeMap::new();
                        for p in list {
                            if let Some(i) = slot(p.start_ms) {
                                let e = last.entry(i).or_insert(p);
                                if p.stats.last_ms >= e.stats.last_ms {
                                    *e = p;
                                }
                            }
                        }
                        for (i, p) in last {
                            *values[i].get_or_insert(0.0) += p.stats.last;
                        }
                    }
                    CustomKind::Counter => {
                        for pair in list.windows(2) {
                            if let Some(i) = slot(pair[1].start_ms) {
                                *values[i].get_or_insert(0.0) += increase(pair[0], pair[1]);
                            }
                        }
                    }
                }
            }
            let step_secs = step as f64 / 1000.0;
            let points = values
                .into_iter()
                .enumerate()
                .map(|(i, v)| Point {
                    t: start + i as i64 * step,
                    value: match kind {
                        CustomKind::Gauge => v,
                        CustomKind::Counter => v.map(|inc| inc / step_secs),
                    },
                })
                .collect();
            Some(CustomSeries {
                labels: labels_value(labels),
                kind,
                points,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CustomKey, CustomStats, Resolution};

    fn point(instance: &str, kind: CustomKind, start: i64, last: f64, min: f64) -> CustomPoint {
        CustomPoint {
            tenant: "t".into(),
            resolution: Resolution::Minute,
            start_ms: start,
            key: CustomKey {
                service: "s".into(),
                name: "m".into(),
                labels: r#"{"a":"1"}"#.into(),
                instance: instance.into(),
            },
            stats: CustomStats {
                kind,
                last,
                last_ms: start + 30_000,
                min,
                max: last.max(min),
            },
        }
    }

    #[test]
    fn counters_sum_instances_and_survive_resets() {
        let c = CustomKind::Counter;
        let pts = vec![
            point("a", c, 0, 100.0, 100.0),
            point("a", c, 60_000, 160.0, 130.0),
            // Reset: restarted and reached 30.
            point("a", c, 120_000, 30.0, 10.0),
            point("b", c, 0, 5.0, 5.0),
            point("b", c, 120_000, 65.0, 20.0),
        ];
        let s = summaries(&pts, 180.0);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 95.0);
        assert_eq!(s[0].instances, 2);
        // a: +60, +30 (reset); b: +60.
        assert_eq!(s[0].rate_per_sec, Some(150.0 / 180.0));
        let ser = series(&pts, 0, 179_999, 60_000);
        let v: Vec<Option<f64>> = ser[0].points.iter().map(|p| p.value).collect();
        assert_eq!(v, vec![None, Some(1.0), Some(1.5)]);
    }

    #[test]
    fn gauges_sum_each_instances_last_value_per_step() {
        let g = CustomKind::Gauge;
        let pts = vec![
            point("a", g, 0, 4.0, 1.0),
            point("a", g, 60_000, 6.0, 6.0),
            point("b", g, 60_000, -1.0, -3.0),
        ];
        let s = summaries(&pts, 120.0);
        assert_eq!((s[0].value, s[0].rate_per_sec), (5.0, None));
        assert_eq!((s[0].min, s[0].max), (-3.0, 6.0));
        assert_eq!(s[0].labels, serde_json::json!({"a": "1"}));
        let ser = series(&pts, 0, 119_999, 120_000);
        assert_eq!(ser[0].points.len(), 1);
        assert_eq!(ser[0].points[0].value, Some(5.0));
        let ser = series(&pts, 0, 119_999, 60_000);
        let v: Vec<Option<f64>> = ser[0].points.iter().map(|p| p.value).collect();
        assert_eq!(v, vec![Some(4.0), Some(5.0)]);
    }
}
