//! What the collector exports, and how: one minute of a tenant's stored
//! buckets and custom points becomes remote-write series, with counters
//! and histograms kept *cumulative* across minutes ([`Cumulative`], saved
//! with the export cursor), so `rate()` and `histogram_quantile()` work
//! on the receiver, a dropped request loses resolution but no count, and
//! a collector restart is not a counter reset.
//!
//! Series (labels sorted; an empty value means no label, so `caller` is
//! left out for requests with no known caller; `tenant` is added when the
//! receiver has no tenant header):
//!
//! | name | labels | kind |
//! |---|---|---|
//! | `vitals_http_requests_total` | `service`, `method`, `route`, `status` (`2xx`…), `caller` | counter |
//! | `vitals_http_request_duration_seconds_bucket` / `_sum` / `_count` | `service`, `method`, `route` (+ `le`) | classic histogram |
//! | `vitals_http_request_duration_seconds` | `service`, `method`, `route` | native histogram (opt-in) |
//! | `vitals_apdex_satisfied_total`, `vitals_apdex_tolerating_total` | `service`, `method`, `route` | counter |
//! | `vitals_service_apdex` | `service` | gauge, the minute's Apdex |
//! | `vitals_service_apdex_threshold_seconds` | `service` | gauge, T |
//! | `vitals_service_health` | `service` | gauge: 0 healthy, 1 degraded, 2 down |
//! | custom metrics | their own name and labels, `service`, `instance` | their kind, the minute's last value |
//!
//! Every sample of minute `m` is stamped `m + 60 s` (the minute's end),
//! once; a series without data in a minute has no sample for it.

use super::proto::{BucketSpan, Histogram, Label, Sample, TimeSeries};
use crate::config::CollectorConfig;
use crate::model::{Bucket, BucketStats, CustomPoint};
use crate::query::{Figures, Health, health};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vitals::Sketch;

/// The duration histogram's name (classic series add `_bucket`, `_sum`,
/// `_count`).
pub const DURATION: &str = "vitals_http_request_duration_seconds";

/// Running totals of every exported counter and histogram, by series
/// (the JSON of its tenant and sorted labels): what makes the export
/// cumulative. Saved with the cursor, so it survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cumulative {
    counters: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Sketch>,
}

impl Cumulative {
    /// How many series it keeps totals for.
    pub fn len(&self) -> usize {
        self.counters.len() + self.histograms.len()
    }

    /// Whether it keeps none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, tenant: &str, labels: &Labels, by: f64) -> f64 {
        let total = self.counters.entry(series_id(tenant, labels)).or_default();
        *total += by;
        *total
    }

    fn merge(&mut self, tenant: &str, labels: &Labels, sketch: &Sketch) -> &Sketch {
        let total = self
            .histograms
            .entry(series_id(tenant, labels))
            .or_default();
        total.merge(sketch);
        total
    }
}

/// How series are shaped for one receiver.
#[derive(Debug, Clone)]
pub struct Shape<'a> {
    /// Health and Apdex policies.
    pub config: &'a CollectorConfig,
    /// Classic histogram bounds, seconds.
    pub buckets: &'a [f64],
    /// Whether to add native histograms.
    pub native: bool,
    /// Whether series carry a `tenant` label (no tenant header).
    pub tenant_label: bool,
}

type Labels = Vec<(String, String)>;

fn series_id(tenant: &str, labels: &Labels) -> String {
    // Strings only: serializing cannot fail.
    serde_json::to_string(&(tenant, labels)).unwrap_or_default()
}

/// One minute of one tenant as remote-write series. `buckets` and
/// `custom` are the minute buckets and custom points of the minute
/// starting at `start_ms` (route and total series both); `totals`
/// advances.
pub fn minute_series(
    totals: &mut Cumulative,
    tenant: &str,
    start_ms: i64,
    buckets: &[Bucket],
    custom: &[CustomPoint],
    shape: &Shape<'_>,
) -> Vec<TimeSeries> {
    let at = start_ms + 60_000;
    let mut out = Out {
        series: Vec::new(),
        tenant,
        at,
        tenant_label: shape.tenant_label,
    };
    // Route series: requests by status, then per (service, method, route)
    // durations and Apdex counts over every status and caller.
    let mut requests: BTreeMap<Labels, u64> = BTreeMap::new();
    let mut routes: BTreeMap<Labels, BucketStats> = BTreeMap::new();
    let mut services: BTreeMap<&str, BucketStats> = BTreeMap::new();
    for b in buckets {
        let k = &b.key;
        if k.is_total() {
            services.entry(&k.service).or_default().merge(&b.stats);
            continue;
        }
        let route = vec![
            ("method".to_string(), k.method.clone()),
            ("route".to_string(), k.route.clone()),
            ("service".to_string(), k.service.clone()),
        ];
        let mut by_status = route.clone();
        by_status.push(("status".into(), format!("{}xx", k.status_class)));
        by_status.push(("caller".into(), k.caller.clone()));
        *requests.entry(by_status).or_default() += b.stats.count;
        routes.entry(route).or_default().merge(&b.stats);
    }
    for (labels, n) in requests {
        let total = totals.add(
            tenant,
            &named("vitals_http_requests_total", &labels),
            n as f64,
        );
        out.float("vitals_http_requests_total", &labels, &[], total);
    }
    for (labels, stats) in &routes {
        for (name, n) in [
            ("vitals_apdex_satisfied_total", stats.satisfied),
            ("vitals_apdex_tolerating_total", stats.tolerating),
        ] {
            let total = totals.add(tenant, &named(name, labels), n as f64);
            out.float(name, labels, &[], total);
        }
        if stats.duration_ms.is_empty() {
            continue;
        }
        let sketch = totals.merge(tenant, &named(DURATION, labels), &stats.duration_ms);
        let count = sketch.count() as f64;
        for le in shape.buckets {
            let n = sketch.count_at_most(le * 1000.0) as f64;
            out.float(
                &format!("{DURATION}_bucket"),
                labels,
                &[("le", format!("{le}"))],
                n,
            );
        }
        out.float(
            &format!("{DURATION}_bucket"),
            labels,
            &[("le", "+Inf".into())],
            count,
        );
        out.float(
            &format!("{DURATION}_sum"),
            labels,
            &[],
            sketch.sum() / 1000.0,
        );
        out.float(&format!("{DURATION}_count"), labels, &[], count);
        if shape.native {
            let h = native(sketch, at);
            out.histogram(DURATION, labels, h);
        }
    }
    // Service series, from the per-service totals of the minute.
    for (service, stats) in services {
        let labels = vec![("service".to_string(), service.to_string())];
        let policy = shape.config.policy(service);
        let f = Figures::of(&stats, 60.0);
        if let Some(apdex) = f.apdex {
            out.float("vitals_service_apdex", &labels, &[], apdex);
        }
        out.float(
            "vitals_service_apdex_threshold_seconds",
            &labels,
            &[],
            policy.apdex_t_ms / 1000.0,
        );
        let (h, _) = health(&f, Some(at), &policy, at);
        let code = match h {
            Health::Healthy => 0.0,
            Health::Degraded => 1.0,
            Health::Down => 2.0,
        };
        out.float("vitals_service_health", &labels, &[], code);
    }
    for p in custom {
        let mut labels: BTreeMap<String, String> =
            serde_json::from_str::<BTreeMap<String, String>>(&p.key.labels)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (label_name(&k), v))
                .collect();
        labels.insert("service".into(), p.key.service.clone());
        labels.insert("instance".into(), p.key.instance.clone());
        let labels: Labels = labels.into_iter().collect();
        out.float(&metric_name(&p.key.name), &labels, &[], p.stats.last);
    }
    out.series
}

/// `labels` with the metric's name, as a key of the running totals.
fn named(name: &str, labels: &Labels) -> Labels {
    let mut l = labels.clone();
    l.push(("__name__".into(), name.into()));
    l
}

/// Series being built for one minute.
struct Out<'a> {
    series: Vec<TimeSeries>,
    tenant: &'a str,
    at: i64,
    tenant_label: bool,
}

impl Out<'_> {
    fn labels(&self, name: &str, labels: &Labels, extra: &[(&str, String)]) -> Vec<Label> {
        let mut all: Vec<Label> = std::iter::once(("__name__", name))
            .chain(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .chain(self.tenant_label.then_some(("tenant", self.tenant)))
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| Label {
                name: k.into(),
                value: v.into(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|a, b| a.name == b.name);
        all
    }

    fn float(&mut self, name: &str, labels: &Labels, extra: &[(&str, String)], value: f64) {
        let labels = self.labels(name, labels, extra);
        self.series.push(TimeSeries {
            labels,
            samples: vec![Sample {
                value,
                timestamp: self.at,
            }],
            histograms: Vec::new(),
        });
    }

    fn histogram(&mut self, name: &str, labels: &Labels, h: Histogram) {
        let labels = self.labels(name, labels, &[]);
        self.series.push(TimeSeries {
            labels,
            samples: Vec::new(),
            histograms: vec![h],
        });
    }
}

/// A metric name Prometheus accepts: `[a-zA-Z_:][a-zA-Z0-9_:]*`, other
/// characters (the dots of OpenTelemetry names) as `_`.
pub fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':') {
        out.insert(0, '_');
    }
    out
}

/// A label name Prometheus accepts: `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__` (reserved).
pub fn label_name(name: &str) -> String {
    let mut out = metric_name(name).replace(':', "_");
    while out.starts_with("__") {
        out.remove(0);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Exponential schema of the native histograms: boundaries at powers of
/// `2^(1/64)`, the resolution of the collector's sketches.
const SCHEMA: i32 = 6;

/// A cumulative duration sketch (ms) as a native histogram in seconds at
/// schema 6. The sketch's buckets are powers of `2^(1/64)` in ms; ms to
/// seconds is no whole number of buckets, so each bucket's count moves to
/// the seconds bucket holding its midpoint (within one bucket, about 1 %).
pub fn native(sketch: &Sketch, at: i64) -> Histogram {
    let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
    for (i, c) in sketch.buckets() {
        let mid_s = ((i as f64 + 0.5) / 64.0).exp2() / 1000.0;
        let j = (mid_s.log2() * 64.0).ceil() as i32;
        *counts.entry(j).or_default() += c;
    }
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut deltas = Vec::with_capacity(counts.len());
    let (mut prev_index, mut prev_count) = (None::<i32>, 0i64);
    for (&j, &c) in &counts {
        match (prev_index, spans.last_mut()) {
            (Some(p), Some(last)) if j == p + 1 => last.length += 1,
            (Some(p), _) => spans.push(BucketSpan {
                offset: j - p - 1,
                length: 1,
            }),
            (None, _) => spans.push(BucketSpan {
                offset: j,
                length: 1,
            }),
        }
        let c = c as i64;
        deltas.push(c - prev_count);
        prev_count = c;
        prev_index = Some(j);
    }
    Histogram {
        count_int: sketch.count(),
        sum: sketch.sum() / 1000.0,
        schema: SCHEMA,
        zero_threshold: 1e-9,
        zero_count_int: sketch.zero_count(),
        positive_spans: spans,
        positive_deltas: deltas,
        reset_hint: 0,
        timestamp: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resolution, SeriesKey};

    fn bucket(route: &str, status: u8, durations: &[f64]) -> Bucket {
        let mut stats = BucketStats::default();
        for d in durations {
            stats.count += 1;
            stats.satisfied += u64::from(*d <= 500.0);
            stats.duration_ms.record(*d);
        }
        Bucket {
            tenant: "t".into(),
            resolution: Resolution::Minute,
            start_ms: 0,
            key: SeriesKey {
                service: "api".into(),
                method: "GET".into(),
                route: route.into(),
                status_class: status,
                caller: String::new(),
            },
            stats,
        }
    }

    fn value(series: &[TimeSeries], name: &str, extra: &[(&str, &str)]) -> Option<f64> {
        series
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && extra
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|l| l.name == *k && l.value == *v))
            })
            .and_then(|s| s.samples.first().map(|x| x.value))
    }

    #[test]
    fn counters_and_histograms_accumulate_over_minutes_with_sorted_labels() {
        let config = CollectorConfig::default();
        let shape = Shape {
            config: &config,
            buckets: &[0.01, 0.1, 1.0],
            native: true,
            tenant_label: true,
        };
        let mut totals = Cumulative::default();
        let first = vec![
            bucket("/a", 2, &[5.0, 50.0, 500.0]),
            bucket("/a", 5, &[2000.0]),
        ];
        let s1 = minute_series(&mut totals, "t", 0, &first, &[], &shape);
        let s2 = minute_series(&mut totals, "t", 60_000, &first[..1], &[], &shape);
        let ok = [("status", "2xx"), ("route", "/a"), ("tenant", "t")];
        assert_eq!(value(&s1, "vitals_http_requests_total", &ok), Some(3.0));
        assert_eq!(value(&s2, "vitals_http_requests_total", &ok), Some(6.0));
        // No 5xx in the second minute: no sample, not a zero.
        let err = [("status", "5xx")];
        assert_eq!(value(&s1, "vitals_http_requests_total", &err), Some(1.0));
        assert_eq!(value(&s2, "vitals_http_requests_total", &err), None);
        let b = |s: &[TimeSeries], le: &str| {
            value(
                s,
                "vitals_http_request_duration_seconds_bucket",
                &[("le", le)],
            )
        };
        assert_eq!(b(&s1, "0.01"), Some(1.0));
        assert_eq!(b(&s1, "0.1"), Some(2.0));
        assert_eq!(b(&s1, "1"), Some(3.0));
        assert_eq!(b(&s1, "+Inf"), Some(4.0));
        assert_eq!(b(&s2, "+Inf"), Some(7.0));
        assert_eq!(
            value(&s2, "vitals_apdex_satisfied_total", &[("route", "/a")]),
            Some(6.0)
        );
        for s in s1.iter().chain(&s2) {
            assert!(s.labels.windows(2).all(|w| w[0].name < w[1].name), "{s:?}");
            assert!(s.labels.iter().all(|l| !l.value.is_empty()), "{s:?}");
            for t in s.samples.iter().map(|x| x.timestamp) {
                assert!(t == 60_000 || t == 120_000);
            }
        }
        let h = s2
            .iter()
            .find_map(|s| s.histograms.first())
            .expect("native histogram");
        assert_eq!(h.count_int, 7);
        let buckets: i64 = h
            .positive_deltas
            .iter()
            .scan(0, |c, d| {
                *c += d;
                Some(*c)
            })
            .sum();
        assert_eq!(buckets as u64 + h.zero_count_int, 7);
        let spans: u32 = h.positive_spans.iter().map(|s| s.length).sum();
        assert_eq!(spans as usize, h.positive_deltas.len());
    }

    #[test]
    fn names_become_valid_prometheus_names() {
        assert_eq!(metric_name("http.client.duration"), "http_client_duration");
        assert_eq!(metric_name("9lives"), "_9lives");
        assert_eq!(label_name("__reserved"), "_reserved");
        assert_eq!(label_name("a:b"), "a_b");
    }
}
