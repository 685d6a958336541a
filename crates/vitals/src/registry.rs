//! `Registry`: where metrics are registered and read from.

use crate::error::Error;
use crate::event::EventBus;
use crate::limits::{Limits, Reason};
use crate::metrics::family::{Descriptor, FamilyInner};
use crate::metrics::histogram::BucketLayout;
use crate::metrics::{
    Counter, CounterVec, Family, FloatGauge, FloatGaugeVec, Gauge, GaugeVec, Histogram,
    HistogramVec, Metric, ShardedCounter, ShardedCounterVec,
};
use crate::name::{MAX_HELP_LEN, MAX_LABELS, validate_label_name, validate_metric_name};
use crate::options::{DEFAULT_BUCKETS, DEFAULT_CARDINALITY_LIMIT, Options};
use crate::visit::{Collector, FamilyInfo, Labels, MetricKind, Visitor};
use std::any::Any;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A set of metric families, rendered together.
///
/// Most programs use the process-wide [`global()`](crate::global) registry;
/// create your own for tests or to keep a library's metrics apart. Cloning a
/// `Registry` gives another handle to the same set.
///
/// ```
/// let registry = vitals::Registry::new();
/// let jobs = registry.counter(("jobs_done_total", "Jobs finished")).unwrap();
/// jobs.add(3);
/// let text = registry.render(vitals::Format::Prometheus);
/// assert!(String::from_utf8(text).unwrap().contains("jobs_done_total 3"));
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    families: RwLock<Vec<Arc<dyn AnyFamily>>>,
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
    limits: Arc<Limits>,
    events: EventBus,
    /// This worker's slot, when the registry lives in a shared region.
    #[cfg(feature = "shared")]
    shared: Option<Arc<crate::shared::slot::SlotWriter>>,
    /// What this process has parsed of the region's slots.
    #[cfg(feature = "shared")]
    merge_cache: std::sync::Mutex<crate::shared::merge::MergeCache>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.families.read().map_or(0, |f| f.len());
        f.debug_struct("Registry").field("families", &n).finish()
    }
}

/// A family with its metric type erased, so one list can hold them all.
trait AnyFamily: Send + Sync {
    fn descriptor(&self) -> &Descriptor;
    #[cfg_attr(not(feature = "shared"), allow(dead_code))]
    fn layout(&self) -> Option<&BucketLayout>;
    fn visit(&self, visitor: &mut dyn Visitor, scratch: &mut Vec<u64>);
    fn overflow_count(&self) -> u64;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<M: Metric> AnyFamily for FamilyInner<M> {
    fn descriptor(&self) -> &Descriptor {
        &self.desc
    }
    fn layout(&self) -> Option<&BucketLayout> {
        FamilyInner::layout(self)
    }
    fn visit(&self, visitor: &mut dyn Visitor, scratch: &mut Vec<u64>) {
        FamilyInner::visit(self, visitor, scratch);
    }
    fn overflow_count(&self) -> u64 {
        FamilyInner::overflow_count(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl Registry {
    /// An empty registry with default limits.
    pub fn new() -> Self {
        Self::with_max_label_value_len(crate::limits::DEFAULT_MAX_LABEL_VALUE_LEN)
    }

    /// An empty registry whose label values are truncated past `max` bytes.
    pub fn with_max_label_value_len(max: usize) -> Self {
        Registry {
            inner: Arc::new(RegistryInner {
                families: RwLock::new(Vec::new()),
                collectors: RwLock::new(Vec::new()),
                limits: Arc::new(Limits::new(max)),
                events: EventBus::new(),
                #[cfg(feature = "shared")]
                shared: None,
                #[cfg(feature = "shared")]
                merge_cache: std::sync::Mutex::new(crate::shared::merge::MergeCache::new(0)),
            }),
        }
    }

    /// A registry in slot `slot` of `region` (see
    /// [`SharedRegion::registry`](crate::SharedRegion::registry)).
    #[cfg(feature = "shared")]
    pub(crate) fn in_shared(
        region: &crate::SharedRegion,
        slot: usize,
    ) -> std::io::Result<Registry> {
        let limits = Arc::new(Limits::new(crate::limits::DEFAULT_MAX_LABEL_VALUE_LEN));
        let writer = crate::shared::slot::SlotWriter::attach(region, slot, limits.clone())?;
        Ok(Registry {
            inner: Arc::new(RegistryInner {
                families: RwLock::new(Vec::new()),
                collectors: RwLock::new(Vec::new()),
                limits,
                events: EventBus::new(),
                merge_cache: std::sync::Mutex::new(crate::shared::merge::MergeCache::new(
                    region.slots(),
                )),
                shared: Some(writer),
            }),
        })
    }

    /// The shared region this registry lives in, if any.
    #[cfg(feature = "shared")]
    pub fn shared_region(&self) -> Option<&crate::SharedRegion> {
        self.inner.shared.as_ref().map(|w| &w.region)
    }

    /// This process's slot (worker number) in its shared region, if any.
    #[cfg(feature = "shared")]
    pub fn worker(&self) -> Option<usize> {
        self.inner.shared.as_ref().map(|w| w.slot)
    }

    /// Walks the registered families as slot `worker` alone holds them
    /// (its counters and histograms, its gauges while it is live), for a
    /// per-worker view. Without a shared region, `worker` 0 is this
    /// process and any other shows nothing. Collectors and the registry's
    /// own metrics are left out.
    #[cfg(feature = "shared")]
    pub fn visit_worker(&self, worker: usize, visitor: &mut dyn Visitor) {
        let families = self.family_list();
        match &self.inner.shared {
            Some(w) => self.visit_region(&w.region, &families, Some(worker), visitor),
            None if worker == 0 => {
                let mut scratch = Vec::new();
                for f in &families {
                    f.visit(visitor, &mut scratch);
                }
            }
            None => {}
        }
    }

    /// The registered families, without collectors or the registry's own
    /// metrics: the whole server's when the registry is shared.
    pub fn visit_families(&self, visitor: &mut dyn Visitor) {
        let families = self.family_list();
        self.visit_family_list(&families, visitor);
    }

    fn family_list(&self) -> Vec<Arc<dyn AnyFamily>> {
        self.inner
            .families
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn visit_family_list(&self, families: &[Arc<dyn AnyFamily>], visitor: &mut dyn Visitor) {
        #[cfg(feature = "shared")]
        if let Some(w) = &self.inner.shared {
            self.visit_region(&w.region, families, None, visitor);
            return;
        }
        let mut scratch = Vec::new();
        for f in families {
            f.visit(visitor, &mut scratch);
        }
    }

    /// The registry's event bus: lifecycle events and their subscribers.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Registers an unlabelled counter. Counter names end in `_total`
    /// (added if missing).
    pub fn counter(&self, opts: impl Into<Options>) -> Result<Counter, Error> {
        Ok(self.counter_vec(opts, &[])?.get::<&str>(&[]).clone())
    }

    /// Registers a family of counters with these label names.
    pub fn counter_vec(
        &self,
        opts: impl Into<Options>,
        labels: &[&str],
    ) -> Result<CounterVec, Error> {
        self.register(
            opts.into(),
            labels,
            MetricKind::Counter,
            "counter".into(),
            (),
        )
    }

    /// Registers an unlabelled [`ShardedCounter`](crate::ShardedCounter), for
    /// a series many threads update at once.
    pub fn sharded_counter(&self, opts: impl Into<Options>) -> Result<ShardedCounter, Error> {
        Ok(self
            .sharded_counter_vec(opts, &[])?
            .get::<&str>(&[])
            .clone())
    }

    /// Registers a family of sharded counters.
    pub fn sharded_counter_vec(
        &self,
        opts: impl Into<Options>,
        labels: &[&str],
    ) -> Result<ShardedCounterVec, Error> {
        self.register(
            opts.into(),
            labels,
            MetricKind::Counter,
            "sharded counter".into(),
            (),
        )
    }

    /// Registers an unlabelled integer gauge.
    pub fn gauge(&self, opts: impl Into<Options>) -> Result<Gauge, Error> {
        Ok(self.gauge_vec(opts, &[])?.get::<&str>(&[]).clone())
    }

    /// Registers a family of integer gauges.
    pub fn gauge_vec(&self, opts: impl Into<Options>, labels: &[&str]) -> Result<GaugeVec, Error> {
        self.register(
            opts.into(),
            labels,
            MetricKind::Gauge,
            "integer gauge".into(),
            (),
        )
    }

    /// Registers an unlabelled floating-point gauge.
    pub fn float_gauge(&self, opts: impl Into<Options>) -> Result<FloatGauge, Error> {
        Ok(self.float_gauge_vec(opts, &[])?.get::<&str>(&[]).clone())
    }

    /// Registers a family of floating-point gauges.
    pub fn float_gauge_vec(
        &self,
        opts: impl Into<Options>,
        labels: &[&str],
    ) -> Result<FloatGaugeVec, Error> {
        self.register(
            opts.into(),
            labels,
            MetricKind::Gauge,
            "float gauge".into(),
            (),
        )
    }

    /// Registers an unlabelled histogram.
    pub fn histogram(&self, opts: impl Into<Options>) -> Result<Histogram, Error> {
        Ok(self.histogram_vec(opts, &[])?.get::<&str>(&[]).clone())
    }

    /// Registers a family of histograms.
    pub fn histogram_vec(
        &self,
        opts: impl Into<Options>,
        labels: &[&str],
    ) -> Result<HistogramVec, Error> {
        let opts = opts.into();
        let bounds = opts
            .buckets
            .clone()
            .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
        let layout = Arc::new(BucketLayout::new(&opts.name, &bounds)?);
        let variant = format!("histogram buckets={bounds:?}");
        self.register(opts, labels, MetricKind::Histogram, variant, layout)
    }

    /// Counts one refused input under `vitals_rejected_total{reason}`, for
    /// limits enforced outside the registry (query strings, request bodies).
    /// `reason` should be a short snake_case word; at most 64 distinct
    /// reasons are kept, the rest count as `other`.
    pub fn count_rejected(&self, reason: &str) {
        self.inner.limits.count_custom(reason);
    }

    /// Adds a source read at every render and snapshot (process metrics,
    /// runtime figures), after the registered families.
    pub fn register_collector(&self, collector: impl Collector + 'static) {
        self.inner
            .collectors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(collector));
    }

    fn register<M: Metric>(
        &self,
        opts: Options,
        labels: &[&str],
        kind: MetricKind,
        variant: String,
        config: M::Config,
    ) -> Result<Family<M>, Error> {
        let desc = describe(&opts, labels, kind, variant)?;
        let mut families = self
            .inner
            .families
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = families.iter().find(|f| f.descriptor().name == desc.name) {
            let have = existing.descriptor();
            let same = have.kind == desc.kind
                && have.unit == desc.unit
                && have.label_names == desc.label_names
                && have.variant == desc.variant;
            if same {
                if let Ok(inner) = existing.clone().as_any().downcast::<FamilyInner<M>>() {
                    return Ok(Family { inner });
                }
            }
            return Err(Error::Conflict {
                name: desc.name.clone(),
                existing: summary(have),
                requested: summary(&desc),
            });
        }
        let limit = opts.cardinality_limit.unwrap_or(DEFAULT_CARDINALITY_LIMIT);
        #[cfg(feature = "shared")]
        let backing = self
            .inner
            .shared
            .as_ref()
            .map(|w| (w.clone(), opts.gauge_mode));
        #[cfg(not(feature = "shared"))]
        let backing = Default::default();
        let family = Family::new(desc, config, limit, self.inner.limits.clone(), backing);
        families.push(family.inner.clone());
        Ok(family)
    }

    /// Renders every metric in `format` (Prometheus text or OpenMetrics).
    pub fn render(&self, format: crate::Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        let mut enc = crate::encode::TextEncoder::new(&mut out, format);
        self.visit(&mut enc);
        enc.finish();
        out
    }

    /// Every family and series as plain data.
    pub fn snapshot(&self) -> crate::Snapshot {
        let mut v = crate::snapshot::SnapshotVisitor::new();
        self.visit(&mut v);
        v.finish()
    }

    /// Walks every family, collector and the registry's own health metrics.
    ///
    /// In a shared region (feature `shared`) the families are the whole
    /// server's, every worker's slot merged; collectors and the registry's
    /// own metrics are this process's.
    pub fn visit(&self, visitor: &mut dyn Visitor) {
        let families = self.family_list();
        self.visit_family_list(&families, visitor);
        let collectors: Vec<_> = self
            .inner
            .collectors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for c in &collectors {
            c.collect(visitor);
        }
        self.visit_own_metrics(&families, visitor);
    }

    /// `vitals_cardinality_overflow_total`, `vitals_rejected_total` and
    /// `vitals_events_dropped_total`, each shown once something happened.
    fn visit_own_metrics(&self, families: &[Arc<dyn AnyFamily>], visitor: &mut dyn Visitor) {
        let overflowed: Vec<(Box<str>, u64)> = families
            .iter()
            .map(|f| (Box::from(f.descriptor().name.as_str()), f.overflow_count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        emit_counter_family(
            visitor,
            "vitals_cardinality_overflow",
            "Label sets refused because the family reached its cardinality limit",
            "family",
            overflowed,
        );
        let limits = &self.inner.limits;
        let rejected: Vec<(Box<str>, u64)> = Reason::ALL
            .iter()
            .map(|&r| (Box::from(r.as_str()), limits.rejected(r)))
            .chain(
                limits
                    .custom()
                    .into_iter()
                    .map(|(k, n)| (Box::from(k.as_str()), n)),
            )
            .filter(|(_, n)| *n > 0)
            .collect();
        emit_counter_family(
            visitor,
            "vitals_rejected",
            "Inputs refused or altered by a limit, by reason",
            "reason",
            rejected,
        );
        let dropped: Vec<(Box<str>, u64)> = self
            .inner
            .events
            .dropped_counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (Box::from(name.as_str()), n))
            .collect();
        emit_counter_family(
            visitor,
            "vitals_events_dropped",
            "Events a slow subscriber lost",
            "subscriber",
            dropped,
        );
    }
}

#[cfg(feature = "shared")]
impl Registry {
    /// Visits `families` as read from every slot of `region` (or one).
    fn visit_region(
        &self,
        region: &crate::SharedRegion,
        families: &[Arc<dyn AnyFamily>],
        only: Option<usize>,
        visitor: &mut dyn Visitor,
    ) {
        let list: Vec<crate::shared::merge::LocalFamily<'_>> = families
            .iter()
            .map(|f| crate::shared::merge::LocalFamily {
                info: f.descriptor().info(),
                label_names: &f.descriptor().label_names,
                layout: f.layout(),
            })
            .collect();
        crate::shared::merge::visit_merged(region, &self.inner.merge_cache, &list, only, visitor);
    }
}

#[cfg(feature = "shared")]
impl crate::SharedRegion {
    /// A registry whose metrics live in slot `slot`: call it in the
    /// worker process that holds the slot, once. Series a previous holder
    /// created are taken over (counters and histograms go on from their
    /// totals; gauges start at zero), and the slot is marked live.
    pub fn registry(&self, slot: usize) -> std::io::Result<Registry> {
        Registry::in_shared(self, slot)
    }
}

fn emit_counter_family(
    visitor: &mut dyn Visitor,
    name: &str,
    help: &str,
    label: &str,
    series: Vec<(Box<str>, u64)>,
) {
    if series.is_empty() {
        return;
    }
    visitor.family(&FamilyInfo {
        name,
        help,
        unit: None,
        kind: MetricKind::Counter,
    });
    let names = [Box::from(label)];
    for (value, n) in series {
        let values = [value];
        visitor.counter(&Labels::new(&names, &values), n);
    }
}

fn summary(d: &Descriptor) -> String {
    let labels: Vec<&str> = d.label_names.iter().map(|l| &**l).collect();
    let unit = d
        .unit
        .map_or(String::new(), |u| format!(" unit={}", u.as_str()));
    format!("{}{unit} labels={labels:?}", d.variant)
}

/// Validates the options and works out the exposed family name.
fn describe(
    opts: &Options,
    labels: &[&str],
    kind: MetricKind,
    variant: String,
) -> Result<Descriptor, Error> {
    validate_metric_name(&opts.name)?;
    if opts.help.len() > MAX_HELP_LEN {
        return Err(Error::HelpTooLong {
            metric: opts.name.clone(),
            len: opts.help.len(),
            max: MAX_HELP_LEN,
        });
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::TooManyLabels {
            metric: opts.name.clone(),
            count: labels.len(),
            max: MAX_LABELS,
        });
    }
    for (i, l) in labels.iter().enumerate() {
        validate_label_name(&opts.name, l)?;
        if labels[..i].contains(l) {
            return Err(Error::DuplicateLabel {
                metric: opts.name.clone(),
                label: (*l).to_owned(),
            });
        }
    }
    let mut name = opts.name.as_str();
    if kind == MetricKind::Counter {
        name = name.strip_suffix("_total").unwrap_or(name);
    }
    let mut name = name.to_owned();
    if let Some(unit) = opts.unit {
        let suffix = format!("_{}", unit.as_str());
        if !name.ends_with(&suffix) {
            name.push_str(&suffix);
        }
    }
    if kind == MetricKind::Histogram
        && ["_bucket", "_count", "_sum"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        return Err(Error::InvalidMetricName { name });
    }
    Ok(Descriptor {
        name,
        help: opts.help.clone(),
        unit: opts.unit,
        kind,
        label_names: labels.iter().map(|&l| Box::from(l)).collect(),
        variant,
    })
}

/// The process-wide default registry.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Unit;

    #[test]
    fn registering_twice_returns_the_same_family() {
        let r = Registry::new();
        let a = r.counter_vec(("x_total", "h"), &["a"]).unwrap();
        let b = r.counter_vec(("x_total", "h"), &["a"]).unwrap();
        a.get(&["1"]).inc();
        assert_eq!(b.get(&["1"]).get(), 1);
        let err = r.gauge(("x", "h")).unwrap_err().to_string();
        assert!(err.contains("already registered as counter"), "{err}");
        let err = r
            .counter_vec(("x_total", "h"), &["b"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels=[\"a\"]"), "{err}");
    }

    struct Uptime;
    impl Collector for Uptime {
        fn collect(&self, v: &mut dyn Visitor) {
            v.family(&FamilyInfo {
                name: "process_uptime_seconds",
                help: "Uptime",
                unit: Some(Unit::Seconds),
                kind: MetricKind::Gauge,
            });
            v.float_gauge(&Labels::empty(), 12.5);
            v.family(&FamilyInfo {
                name: "process_cpu_seconds",
                help: "CPU",
                unit: Some(Unit::Seconds),
                kind: MetricKind::Counter,
            });
            v.float_counter(&Labels::empty(), 0.25);
        }
    }

    #[test]
    fn collectors_and_own_metrics_are_rendered() {
        let r = Registry::new();
        r.register_collector(Uptime);
        let (_sub, _rx) = r.events().subscribe_channel("slow", 1);
        for _ in 0..3 {
            r.events().emit(crate::Event::WorkerSpawned {
                worker: 0,
                pid: None,
            });
        }
        let text = String::from_utf8(r.render(crate::Format::Prometheus)).unwrap();
        assert!(text.contains("process_uptime_seconds 12.5\n"), "{text}");
        assert!(
            text.contains("vitals_events_dropped_total{subscriber=\"slow\"} 2\n"),
            "{text}"
        );
        let om = String::from_utf8(r.render(crate::Format::OpenMetrics)).unwrap();
        assert!(
            om.contains("# UNIT process_uptime_seconds seconds\n"),
            "{om}"
        );
        assert!(
            om.contains("# TYPE vitals_events_dropped counter\n"),
            "{om}"
        );
        assert!(
            om.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\nprocess_cpu_seconds_total 0.25\n"),
            "{om}"
        );
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 0.25\n"
            ),
            "{text}"
        );
        r.count_rejected("debug_query_invalid");
        r.count_rejected("bad reason!");
        let text = String::from_utf8(r.render(crate::Format::Prometheus)).unwrap();
        assert!(
            text.contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("vitals_rejected_total{reason=\"other\"} 1\n"),
            "{text}"
        );
        let snap = r.snapshot();
        assert_eq!(snap.families.len(), 4);
    }

    #[test]
    fn names_are_validated_and_suffixed() {
        let r = Registry::new();
        assert!(matches!(
            r.counter(("bad-name", "h")),
            Err(Error::InvalidMetricName { .. })
        ));
        let err = r.counter_vec(("ok", "h"), &["a", "a"]).unwrap_err();
        assert!(matches!(err, Error::DuplicateLabel { .. }));
        let err = r.counter_vec(("ok", "h"), &["le-x"]).unwrap_err();
        assert!(err.to_string().contains("\"le-x\""));
        let h = r
            .histogram_vec(
                Options::new("rpc_duration", "h").unit(Unit::Seconds),
                &["m"],
            )
            .unwrap();
        assert_eq!(h.name(), "rpc_duration_seconds");
        let c = r.counter_vec(("bytes_out", "h"), &[]).unwrap();
        assert_eq!(c.name(), "bytes_out");
        assert!(r.histogram(("x_bucket", "h")).is_err());
        assert!(r.counter(Options::new("long", "h".repeat(5000))).is_err());
    }
}
