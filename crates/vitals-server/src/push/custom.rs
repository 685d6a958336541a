//! The application's own metrics, pushed with each batch as custom metrics.
//!
//! [`PushConfig::push_metrics`](super::PushConfig::push_metrics) and
//! [`PushConfig::push_metrics_prefix`](super::PushConfig::push_metrics_prefix)
//! choose families of the server's [`Registry`] by name. At the end of each
//! interval the push task reads them through the registry's [`Visitor`]
//! interface (the request path is not involved at all) and turns every
//! series into a [`CustomMetric`]:
//! - a counter is sent under its exposed name (`orders_total`) with its
//!   cumulative value, kind `counter`;
//! - a gauge under its name, kind `gauge`;
//! - a histogram as two counters, `<name>_count` and `<name>_sum`
//!   (buckets and quantiles are not pushed).
//!
//! A series the collector would refuse (name over [`MAX_NAME_LEN`] bytes,
//! more than [`MAX_CUSTOM_LABELS`] labels, a label value over
//! [`MAX_ROUTE_LEN`] bytes, a control character, a non-finite value) is
//! left out and counted as `vitals_push_custom_dropped_total{reason="invalid"}`,
//! so it never gets the whole batch refused; series past
//! [`PushConfig::max_custom`](super::PushConfig::max_custom) per batch are
//! left out and counted with `reason="batch_limit"`.

use super::config::CustomSelection;
use super::limits::{MAX_NAME_LEN, MAX_ROUTE_LEN};
use std::collections::BTreeMap;
use vitals::visit::{FamilyInfo, HistogramView, Labels, MetricKind, Visitor};
use vitals::wire::{CustomKind, CustomMetric};
use vitals::{Counter, Registry};

/// Most labels of one pushed series (the collector refuses more).
pub const MAX_CUSTOM_LABELS: usize = 32;
/// Default most custom series per batch; set with the other push defaults
/// in [`PushConfig`](super::PushConfig).
pub use super::config::DEFAULT_MAX_CUSTOM;

/// Whether family `info` is chosen: by its name, its exposed counter name
/// (`<name>_total`), or a prefix of either.
fn chosen(selection: &CustomSelection, info: &FamilyInfo<'_>) -> bool {
    let exposed = exposed_name(info);
    let named = |n: &str| selection.names.iter().any(|x| x == n);
    named(info.name)
        || named(&exposed)
        || selection
            .prefixes
            .iter()
            .any(|p| info.name.starts_with(p.as_str()) || exposed.starts_with(p.as_str()))
}

fn exposed_name(info: &FamilyInfo<'_>) -> String {
    match info.kind {
        MetricKind::Counter => format!("{}_total", info.name),
        _ => info.name.to_string(),
    }
}

/// Counters of series left out of a batch.
pub(crate) struct CustomDrops {
    invalid: Counter,
    batch_limit: Counter,
}

impl CustomDrops {
    pub(crate) fn new(r: &Registry) -> Result<Self, vitals::Error> {
        let dropped = r.counter_vec(
            (
                "vitals_push_custom_dropped_total",
                "Custom metric series left out of pushed batches: invalid (the collector would refuse it) or batch_limit",
            ),
            &["reason"],
        )?;
        Ok(CustomDrops {
            invalid: dropped.get(&["invalid"]).clone(),
            batch_limit: dropped.get(&["batch_limit"]).clone(),
        })
    }
}

/// Reads the chosen families of `registry` into custom metrics, counting
/// what is left out in `drops`.
pub(crate) fn collect(
    registry: &Registry,
    selection: &CustomSelection,
    drops: &CustomDrops,
) -> Vec<CustomMetric> {
    if selection.is_empty() {
        return Vec::new();
    }
    let mut v = CustomVisitor {
        selection,
        family: None,
        out: Vec::new(),
        invalid: 0,
        over: 0,
    };
    registry.visit(&mut v);
    drops.invalid.add(v.invalid);
    drops.batch_limit.add(v.over);
    v.out
}

struct CustomVisitor<'a> {
    selection: &'a CustomSelection,
    /// The current family's pushed name, when it is chosen.
    family: Option<String>,
    out: Vec<CustomMetric>,
    invalid: u64,
    over: u64,
}

fn valid_text(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control)
}

impl CustomVisitor<'_> {
    fn emit(&mut self, name: String, kind: CustomKind, labels: &Labels<'_>, value: f64) {
        let mut map = BTreeMap::new();
        let mut ok = value.is_finite() && !name.is_empty() && valid_text(&name, MAX_NAME_LEN);
        for (k, v) in labels.iter() {
            ok &= !k.is_empty() && valid_text(k, MAX_NAME_LEN) && valid_text(v, MAX_ROUTE_LEN);
            map.insert(k.to_string(), v.to_string());
        }
        ok &= map.len() <= MAX_CUSTOM_LABELS;
        if !ok {
            self.invalid += 1;
            return;
        }
        if self.out.len() >= self.selection.max {
            self.over += 1;
            return;
        }
        self.out.push(CustomMetric {
            name,
            kind,
            labels: map,
            value,
        });
    }

    fn scalar(&mut self, kind: CustomKind, labels: &Labels<'_>, value: f64) {
        if let Some(name) = self.family.clone() {
            self.emit(name, kind, labels, value);
        }
    }
}

impl Visitor for CustomVisitor<'_> {
    fn family(&mut self, info: &FamilyInfo<'_>) {
        self.family = chosen(self.selection, info).then(|| match info.kind {
            MetricKind::Histogram => info.name.to_string(),
            _ => exposed_name(info),
        });
    }
    fn counter(&mut self, labels: &Labels<'_>, value: u64) {
        self.scalar(CustomKind::Counter, labels, value as f64);
    }
    fn float_counter(&mut self, labels: &Labels<'_>, value: f64) {
        self.scalar(CustomKind::Counter, labels, value);
    }
    fn gauge(&mut self, labels: &Labels<'_>, value: i64) {
        self.scalar(CustomKind::Gauge, labels, value as f64);
    }
    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64) {
        self.scalar(CustomKind::Gauge, labels, value);
    }
    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>) {
        if let Some(name) = self.family.clone() {
            self.emit(
                format!("{name}_count"),
                CustomKind::Counter,
                labels,
                view.count() as f64,
            );
            self.emit(
                format!("{name}_sum"),
                CustomKind::Counter,
                labels,
                view.sum(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(names: &[&str], prefixes: &[&str], max: usize) -> CustomSelection {
        CustomSelection {
            names: names.iter().map(|s| s.to_string()).collect(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            max,
        }
    }

    fn find<'a>(got: &'a [CustomMetric], name: &str, labels: &[(&str, &str)]) -> &'a CustomMetric {
        got.iter()
            .find(|m| {
                m.name == name
                    && m.labels
                        == labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {got:?}"))
    }

    #[test]
    fn chosen_families_become_custom_metrics() {
        let r = Registry::new();
        let drops = CustomDrops::new(&r).unwrap();
        let orders = r
            .counter_vec(("orders_total", "Orders"), &["shop"])
            .unwrap();
        orders.get(&["eu"]).add(7);
        orders.get(&["us"]).add(2);
        let depth = r.gauge(("queue_depth", "Depth")).unwrap();
        depth.set(-4);
        let temp = r.float_gauge(("app_temp_celsius", "T")).unwrap();
        temp.set(21.5);
        let jobs = r.histogram(("app_job_seconds", "Jobs")).unwrap();
        jobs.record(0.5);
        jobs.record(1.5);
        let other = r.counter(("not_chosen_total", "x")).unwrap();
        other.inc();

        let got = collect(
            &r,
            &selection(&["orders_total", "queue_depth"], &["app_"], 100),
            &drops,
        );
        assert_eq!(got.len(), 6, "{got:?}");
        let eu = find(&got, "orders_total", &[("shop", "eu")]);
        assert_eq!((eu.kind, eu.value), (CustomKind::Counter, 7.0));
        assert_eq!(find(&got, "orders_total", &[("shop", "us")]).value, 2.0);
        let d = find(&got, "queue_depth", &[]);
        assert_eq!((d.kind, d.value), (CustomKind::Gauge, -4.0));
        assert_eq!(find(&got, "app_temp_celsius", &[]).value, 21.5);
        let count = find(&got, "app_job_seconds_count", &[]);
        assert_eq!((count.kind, count.value), (CustomKind::Counter, 2.0));
        assert_eq!(find(&got, "app_job_seconds_sum", &[]).value, 2.0);
        assert!(!got.iter().any(|m| m.name.starts_with("not_chosen")));
        // The family name without `_total` chooses a counter too.
        let got = collect(&r, &selection(&["orders"], &[], 100), &drops);
        assert_eq!(got.len(), 2);
        // Nothing chosen: nothing read.
        assert!(collect(&r, &CustomSelection::default(), &drops).is_empty());
    }

    #[test]
    fn series_past_the_cap_or_refusable_are_left_out_and_counted() {
        let r = Registry::new();
        let drops = CustomDrops::new(&r).unwrap();
        let g = r.gauge_vec(("load", "Load"), &["k"]).unwrap();
        for i in 0..5 {
            g.get(&[&i.to_string()]).set(i);
        }
        g.get(&["x".repeat(MAX_ROUTE_LEN + 1).as_str()]).set(1);
        let got = collect(&r, &selection(&["load"], &[], 3), &drops);
        assert_eq!(got.len(), 3);
        let text = String::from_utf8(r.render(vitals::Format::Prometheus)).unwrap();
        assert!(
            text.contains("vitals_push_custom_dropped_total{reason=\"batch_limit\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("vitals_push_custom_dropped_total{reason=\"invalid\"} 1\n"),
            "{text}"
        );
    }
}
