//! [`Figures`]: one read of the registry's families, by name, for the
//! JSON endpoints. Read through the registry (never the handles), so a
//! prefork worker sees the whole server, every worker's slot merged, or
//! one worker with `?worker=N`; a single process reads its own families
//! the same way.

use crate::server_metrics::ServerMetrics;
use std::collections::HashMap;
use vitals::visit::HistogramView;
use vitals::{FamilyInfo, Labels, Sketch, Visitor};

/// One series' value.
#[derive(Debug, Clone)]
pub(crate) enum Fig {
    Count(u64),
    Gauge(i64),
    Float(f64),
    Sketch(Sketch),
}

/// One series: its label values and value.
type SeriesFig = (Vec<Box<str>>, Fig);

/// The series of every family, keyed by the family's exposed name (a
/// counter's without `_total`). Label values are empty for a family's
/// overflow series, as `Family::for_each` gives them.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    namespace: String,
    families: HashMap<String, Vec<SeriesFig>>,
    current: String,
}

/// Which processes a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Scope {
    /// The whole server (every worker, with prefork).
    #[default]
    Server,
    /// One prefork worker.
    #[cfg_attr(not(all(unix, feature = "prefork")), allow(dead_code))]
    Worker(usize),
}

impl Figures {
    /// Reads the families of `metrics`' registry over `scope`.
    pub(crate) fn read(metrics: &ServerMetrics, scope: Scope) -> Figures {
        let mut f = Figures {
            namespace: metrics.namespace().to_owned(),
            ..Figures::default()
        };
        match scope {
            Scope::Server => metrics.registry().visit_families(&mut f),
            #[cfg(all(unix, feature = "prefork"))]
            Scope::Worker(n) => metrics.registry().visit_worker(n, &mut f),
            #[cfg(not(all(unix, feature = "prefork")))]
            Scope::Worker(_) => {}
        }
        f
    }

    /// The exposed name of the server family `base` under the namespace.
    pub(crate) fn name(&self, base: &str) -> String {
        if self.namespace.is_empty() {
            base.to_owned()
        } else {
            format!("{}_{base}", self.namespace)
        }
    }

    fn series(&self, name: &str) -> &[SeriesFig] {
        self.families.get(name).map_or(&[], Vec::as_slice)
    }

    /// Calls `f` with each counter series of family `name`.
    pub(crate) fn each_count(&self, name: &str, mut f: impl FnMut(&[Box<str>], u64)) {
        for (values, fig) in self.series(name) {
            if let Fig::Count(n) = fig {
                f(values, *n);
            }
        }
    }

    /// Calls `f` with each integer gauge series of family `name`.
    pub(crate) fn each_gauge(&self, name: &str, mut f: impl FnMut(&[Box<str>], i64)) {
        for (values, fig) in self.series(name) {
            match fig {
                Fig::Gauge(v) => f(values, *v),
                Fig::Float(v) => f(values, *v as i64),
                _ => {}
            }
        }
    }

    /// Calls `f` with each histogram series of family `name`.
    pub(crate) fn each_sketch(&self, name: &str, mut f: impl FnMut(&[Box<str>], &Sketch)) {
        for (values, fig) in self.series(name) {
            if let Fig::Sketch(s) = fig {
                f(values, s);
            }
        }
    }

    /// The sum of server counter family `base` (namespaced).
    pub(crate) fn count(&self, base: &str) -> u64 {
        let mut total = 0;
        self.each_count(&self.name(base), |_, n| total += n);
        total
    }

    /// The sum of server counter family `base` (namespaced), only the
    /// series of the server labelled `label` when given (the `server`
    /// label leads a declared server's series).
    pub(crate) fn count_of_server(&self, base: &str, label: Option<&str>) -> u64 {
        let mut total = 0;
        self.each_count(&self.name(base), |values, n| {
            if label.is_none_or(|l| values.first().is_some_and(|v| &**v == l)) {
                total += n;
            }
        });
        total
    }

    /// As [`count_of_server`](Self::count_of_server), for a gauge family.
    pub(crate) fn gauge_of_server(&self, base: &str, label: Option<&str>) -> i64 {
        let mut total = 0;
        self.each_gauge(&self.name(base), |values, n| {
            if label.is_none_or(|l| values.first().is_some_and(|v| &**v == l)) {
                total += n;
            }
        });
        total
    }

    /// The sum of server gauge family `base` (namespaced).
    pub(crate) fn gauge(&self, base: &str) -> i64 {
        let mut total = 0;
        self.each_gauge(&self.name(base), |_, n| total += n);
        total
    }
}

fn values(labels: &Labels<'_>) -> Vec<Box<str>> {
    if labels.is_overflow() {
        Vec::new()
    } else {
        labels.iter().map(|(_, v)| Box::from(v)).collect()
    }
}

impl Visitor for Figures {
    fn family(&mut self, info: &FamilyInfo<'_>) {
        self.current = info.name.to_owned();
    }
    fn counter(&mut self, labels: &Labels<'_>, value: u64) {
        let v = values(labels);
        self.families
            .entry(self.current.clone())
            .or_default()
            .push((v, Fig::Count(value)));
    }
    fn float_counter(&mut self, labels: &Labels<'_>, value: f64) {
        let v = values(labels);
        self.families
            .entry(self.current.clone())
            .or_default()
            .push((v, Fig::Count(value as u64)));
    }
    fn gauge(&mut self, labels: &Labels<'_>, value: i64) {
        let v = values(labels);
        self.families
            .entry(self.current.clone())
            .or_default()
            .push((v, Fig::Gauge(value)));
    }
    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64) {
        let v = values(labels);
        self.families
            .entry(self.current.clone())
            .or_default()
            .push((v, Fig::Float(value)));
    }
    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>) {
        let v = values(labels);
        self.families
            .entry(self.current.clone())
            .or_default()
            .push((v, Fig::Sketch(view.sketch())));
    }
}
