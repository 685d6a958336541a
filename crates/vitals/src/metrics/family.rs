//! `Family`: one metric name, many series keyed by label values.

use super::series_map::SeriesMap;
use super::{Counter, FloatGauge, Gauge, Histogram, ShardedCounter, histogram::BucketLayout};
use crate::limits::{Limits, Reason};
use crate::name::Unit;
use crate::visit::{FamilyInfo, HistogramView, Labels, MetricKind, Visitor};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// A metric type that can live in a [`Family`]. Sealed: implemented by
/// [`Counter`], [`ShardedCounter`], [`Gauge`], [`FloatGauge`] and [`Histogram`].
pub trait Metric: Clone + Send + Sync + 'static + sealed::Sealed {
    /// What a new series needs (sharding, bucket layout).
    #[doc(hidden)]
    type Config: Send + Sync + 'static;
    /// The type reported in `# TYPE`.
    #[doc(hidden)]
    const KIND: MetricKind;
    #[doc(hidden)]
    fn create(config: &Self::Config) -> Self;
    #[doc(hidden)]
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, scratch: &mut Vec<u64>);
    /// A histogram family's bucket layout (for reading shared slots).
    #[doc(hidden)]
    fn layout(_config: &Self::Config) -> Option<&BucketLayout> {
        None
    }
    /// A series whose cells live in this worker's slot of a shared region
    /// (falls back to the heap when the slot is full).
    #[doc(hidden)]
    #[cfg(feature = "shared")]
    fn create_shared(config: &Self::Config, place: &SharedPlace<'_>) -> Self;
}

/// Where a new series of a shared registry goes, and what it is.
#[doc(hidden)]
#[cfg(feature = "shared")]
pub struct SharedPlace<'a> {
    pub(crate) writer: &'a Arc<crate::shared::slot::SlotWriter>,
    pub(crate) mode: crate::options::GaugeMode,
    pub(crate) name: &'a str,
    pub(crate) values: &'a [&'a str],
    pub(crate) overflow: bool,
}

#[cfg(feature = "shared")]
impl SharedPlace<'_> {
    fn cells(&self, kind: u8, n: usize) -> Option<std::ptr::NonNull<AtomicU64>> {
        self.writer.series(
            kind,
            self.mode.code(),
            self.name,
            self.values,
            self.overflow,
            n,
        )
    }

    fn owner(&self) -> Arc<dyn super::cell::Owner> {
        self.writer.clone()
    }
}

/// What a family of a shared registry needs to place its series.
#[cfg(feature = "shared")]
pub(crate) type Backing = Option<(
    Arc<crate::shared::slot::SlotWriter>,
    crate::options::GaugeMode,
)>;
/// Nothing, without the `shared` feature.
#[cfg(not(feature = "shared"))]
#[derive(Default)]
pub(crate) struct Backing;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Counter {}
    impl Sealed for super::ShardedCounter {}
    impl Sealed for super::Gauge {}
    impl Sealed for super::FloatGauge {}
    impl Sealed for super::Histogram {}
}

impl Metric for Counter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;
    fn create(_: &()) -> Self {
        Counter::new()
    }
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, _: &mut Vec<u64>) {
        visitor.counter(labels, self.get());
    }
    #[cfg(feature = "shared")]
    fn create_shared(_: &(), place: &SharedPlace<'_>) -> Self {
        match place.cells(crate::shared::layout::COUNTER, 1) {
            // SAFETY: the cell lies in the slot's mapping, which the owner
            // (the slot's writer, holding the region) keeps alive.
            Some(cell) => unsafe { Counter::in_shared(cell, place.owner()) },
            None => Counter::new(),
        }
    }
}

impl Metric for ShardedCounter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;
    fn create(_: &()) -> Self {
        ShardedCounter::new()
    }
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, _: &mut Vec<u64>) {
        visitor.counter(labels, self.get());
    }
    #[cfg(feature = "shared")]
    fn create_shared(_: &(), place: &SharedPlace<'_>) -> Self {
        use crossbeam_utils::CachePadded;
        let shards = super::counter::shard_count();
        let pad = std::mem::size_of::<CachePadded<AtomicU64>>();
        let align = std::mem::align_of::<CachePadded<AtomicU64>>();
        // Room to align the first shard; readers sum every cell, and the
        // unused ones stay zero.
        let cells = (shards * pad + align) / 8;
        let Some(start) = place.cells(crate::shared::layout::SHARDED, cells) else {
            return ShardedCounter::new();
        };
        let skip = start.as_ptr().align_offset(align);
        // SAFETY: `skip + shards * pad` bytes fit in the cells allocated
        // above; the memory is zeroed atomics (a valid `CachePadded`).
        unsafe {
            let first = start
                .as_ptr()
                .cast::<u8>()
                .add(skip * 8)
                .cast::<CachePadded<AtomicU64>>();
            let slice = std::ptr::slice_from_raw_parts_mut(first, shards);
            ShardedCounter {
                shards: super::cell::Cell::shared(
                    std::ptr::NonNull::new_unchecked(slice),
                    place.owner(),
                ),
            }
        }
    }
}

impl Metric for Gauge {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;
    fn create(_: &()) -> Self {
        Gauge::new()
    }
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, _: &mut Vec<u64>) {
        visitor.gauge(labels, self.get());
    }
    #[cfg(feature = "shared")]
    fn create_shared(_: &(), place: &SharedPlace<'_>) -> Self {
        match place.cells(crate::shared::layout::GAUGE, 1) {
            // SAFETY: an 8-aligned cell of the mapping the owner keeps.
            Some(cell) => Gauge {
                value: unsafe { super::cell::Cell::shared(cell.cast(), place.owner()) },
            },
            None => Gauge::new(),
        }
    }
}

impl Metric for FloatGauge {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;
    fn create(_: &()) -> Self {
        FloatGauge::new()
    }
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, _: &mut Vec<u64>) {
        visitor.float_gauge(labels, self.get());
    }
    #[cfg(feature = "shared")]
    fn create_shared(_: &(), place: &SharedPlace<'_>) -> Self {
        match place.cells(crate::shared::layout::FLOAT_GAUGE, 1) {
            // SAFETY: an 8-aligned cell of the mapping the owner keeps.
            Some(cell) => FloatGauge {
                bits: unsafe { super::cell::Cell::shared(cell, place.owner()) },
            },
            None => FloatGauge::new(),
        }
    }
}

impl Metric for Histogram {
    type Config = Arc<BucketLayout>;
    const KIND: MetricKind = MetricKind::Histogram;
    fn create(layout: &Arc<BucketLayout>) -> Self {
        Histogram::with_layout(layout.clone())
    }
    fn visit(&self, labels: &Labels<'_>, visitor: &mut dyn Visitor, scratch: &mut Vec<u64>) {
        let (count, sum) = self.read_classic(scratch);
        let view = HistogramView::new(self.bounds(), scratch, count, sum, self);
        visitor.histogram(labels, &view);
    }
    fn layout(config: &Arc<BucketLayout>) -> Option<&BucketLayout> {
        Some(config)
    }
    #[cfg(feature = "shared")]
    fn create_shared(layout: &Arc<BucketLayout>, place: &SharedPlace<'_>) -> Self {
        let n = Histogram::shared_cells(layout);
        let Some(start) = place.cells(crate::shared::layout::HISTOGRAM, n) else {
            return Histogram::with_layout(layout.clone());
        };
        let slice = std::ptr::slice_from_raw_parts_mut(start.as_ptr(), n);
        // SAFETY: `n` cells of the mapping the owner keeps; chunk offsets
        // were published by this slot's arena.
        unsafe {
            let cells =
                super::cell::Cell::shared(std::ptr::NonNull::new_unchecked(slice), place.owner());
            Histogram::in_shared(
                layout.clone(),
                cells,
                place.writer.clone(),
                place.writer.base(),
            )
        }
    }
}

/// A family of series of one metric, keyed by label values.
///
/// Looking up a label set returns a borrowed handle; the lookup takes no
/// lock (see the series map's design notes) and recording on the handle is
/// the metric's own atomic. Clone the handle (`.clone()`) to keep it, which
/// skips the lookup altogether on the hot path.
///
/// Each family has a cardinality limit (default
/// [`DEFAULT_CARDINALITY_LIMIT`](crate::DEFAULT_CARDINALITY_LIMIT)). Past it, new label sets share one series
/// labelled `overflow="true"` and are counted in
/// `vitals_cardinality_overflow_total{family}`, so memory stays bounded
/// whatever values arrive. Label values longer than the registry's limit are
/// truncated and counted in `vitals_rejected_total{reason="label_value_too_long"}`.
///
/// ```
/// let registry = vitals::Registry::new();
/// let requests = registry
///     .counter_vec(("http_requests_total", "Requests served"), &["method", "status"])
///     .unwrap();
/// requests.get(&["GET", "200"]).inc();
/// let ok = requests.get(&["GET", "200"]).clone(); // keep a handle
/// ok.inc();
/// assert_eq!(requests.get(&["GET", "200"]).get(), 2);
/// ```
pub struct Family<M: Metric> {
    pub(crate) inner: Arc<FamilyInner<M>>,
}

impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Metric> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.inner.desc.name)
            .field("labels", &self.inner.desc.label_names)
            .field("series", &self.inner.map.len())
            .finish()
    }
}

/// Counters keyed by label values.
pub type CounterVec = Family<Counter>;
/// Sharded counters keyed by label values.
pub type ShardedCounterVec = Family<ShardedCounter>;
/// Integer gauges keyed by label values.
pub type GaugeVec = Family<Gauge>;
/// Float gauges keyed by label values.
pub type FloatGaugeVec = Family<FloatGauge>;
/// Histograms keyed by label values.
pub type HistogramVec = Family<Histogram>;

/// The registered identity of a family.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Descriptor {
    /// Exposed family name (counters: without `_total`; with unit suffix).
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) unit: Option<Unit>,
    pub(crate) kind: MetricKind,
    pub(crate) label_names: Box<[Box<str>]>,
    /// Distinguishes `Gauge` from `FloatGauge`, and histogram layouts.
    pub(crate) variant: String,
}

impl Descriptor {
    pub(crate) fn info(&self) -> FamilyInfo<'_> {
        FamilyInfo {
            name: &self.name,
            help: &self.help,
            unit: self.unit,
            kind: self.kind,
        }
    }
}

pub(crate) struct FamilyInner<M: Metric> {
    pub(crate) desc: Descriptor,
    config: M::Config,
    map: SeriesMap<M>,
    limit: usize,
    overflow: OnceLock<M>,
    overflow_count: AtomicU64,
    limits: Arc<Limits>,
    #[cfg_attr(not(feature = "shared"), allow(dead_code))]
    backing: Backing,
}

impl<M: Metric> Family<M> {
    pub(crate) fn new(
        desc: Descriptor,
        config: M::Config,
        limit: usize,
        limits: Arc<Limits>,
        backing: Backing,
    ) -> Self {
        let family = Family {
            inner: Arc::new(FamilyInner {
                desc,
                config,
                map: SeriesMap::new(),
                limit: limit.max(1),
                overflow: OnceLock::new(),
                overflow_count: AtomicU64::new(0),
                limits,
                backing,
            }),
        };
        if family.inner.desc.label_names.is_empty() {
            // An unlabelled metric is a family with its one series made now.
            let _ = family.get::<&str>(&[]);
        }
        family
    }

    /// The series for these label values (in the order the label names were
    /// registered), created on first use.
    ///
    /// Never fails: a wrong number of values, or a new label set past the
    /// cardinality limit, returns the overflow series and is counted. Use
    /// [`try_get`](Self::try_get) to see the arity error instead.
    #[inline]
    pub fn get<S: AsRef<str>>(&self, values: &[S]) -> &M {
        let inner = &*self.inner;
        if values.len() == inner.desc.label_names.len() {
            if let Some(m) = inner.map.get(values) {
                return m;
            }
            return inner.get_slow(values);
        }
        inner.limits.count_rejected(Reason::LabelCount);
        inner.overflow_series()
    }

    /// Like [`get`](Self::get), but a wrong number of label values is an error.
    pub fn try_get<S: AsRef<str>>(&self, values: &[S]) -> Result<&M, crate::Error> {
        let expected = self.inner.desc.label_names.len();
        if values.len() != expected {
            return Err(crate::Error::LabelCount {
                metric: self.inner.desc.name.clone(),
                expected,
                got: values.len(),
            });
        }
        Ok(self.get(values))
    }

    /// Calls `f` with the label values and metric of every series, in the
    /// order they were created, then (if present) the overflow series with no
    /// values. New series wait while this runs.
    pub fn for_each(&self, mut f: impl FnMut(&[Box<str>], &M)) {
        self.inner.map.for_each(&mut f);
        if let Some(m) = self.inner.overflow.get() {
            f(&[], m);
        }
    }

    /// Number of series (not counting the overflow series).
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// True when no series exists yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label sets refused because the family was full.
    pub fn overflow_count(&self) -> u64 {
        self.inner.overflow_count.load(Relaxed)
    }

    /// The exposed family name.
    pub fn name(&self) -> &str {
        &self.inner.desc.name
    }
}

impl<M: Metric> FamilyInner<M> {
    #[cold]
    fn get_slow<S: AsRef<str>>(&self, values: &[S]) -> &M {
        let max = self.limits.max_label_value_len;
        let too_long = values.iter().any(|v| v.as_ref().len() > max);
        let control = values.iter().any(|v| has_control(v.as_ref()));
        if !too_long && !control {
            return self.get_or_create(values);
        }
        if too_long {
            self.limits.count_rejected(Reason::LabelValueTooLong);
        }
        if control {
            self.limits.count_rejected(Reason::LabelValueControlChar);
        }
        let cleaned: Vec<String> = values
            .iter()
            .map(|v| sanitize(truncate(v.as_ref(), max)))
            .collect();
        self.get_or_create(&cleaned)
    }

    fn get_or_create<S: AsRef<str>>(&self, values: &[S]) -> &M {
        let limit = self.limit;
        let found = if self.map.len() >= limit {
            self.map.get(values)
        } else {
            self.map
                .get_or_insert(values, |n| n < limit, || self.make(values, false))
        };
        found.unwrap_or_else(|| {
            self.overflow_count.fetch_add(1, Relaxed);
            self.overflow_series()
        })
    }

    fn overflow_series(&self) -> &M {
        self.overflow.get_or_init(|| self.make::<&str>(&[], true))
    }

    /// A new series: in this worker's slot for a shared registry, on the
    /// heap otherwise.
    fn make<S: AsRef<str>>(&self, values: &[S], overflow: bool) -> M {
        #[cfg(feature = "shared")]
        if let Some((writer, mode)) = &self.backing {
            let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
            return M::create_shared(
                &self.config,
                &SharedPlace {
                    writer,
                    mode: *mode,
                    name: &self.desc.name,
                    values: &values,
                    overflow,
                },
            );
        }
        let _ = (values, overflow);
        M::create(&self.config)
    }

    /// The family's bucket layout, for a histogram family.
    pub(crate) fn layout(&self) -> Option<&BucketLayout> {
        M::layout(&self.config)
    }

    pub(crate) fn visit(&self, visitor: &mut dyn Visitor, scratch: &mut Vec<u64>) {
        visitor.family(&self.desc.info());
        let names = &self.desc.label_names;
        self.map.for_each(|values, m| {
            m.visit(&Labels::new(names, values), visitor, scratch);
        });
        if let Some(m) = self.overflow.get() {
            m.visit(&Labels::overflow(), visitor, scratch);
        }
    }

    pub(crate) fn overflow_count(&self) -> u64 {
        self.overflow_count.load(Relaxed)
    }
}

/// Control characters other than tab and newline: a raw carriage return
/// splits lines for readers with universal newlines (Python's `open`), and
/// NUL ends strings for C consumers, so they never reach the exposition.
fn is_unsafe_control(c: char) -> bool {
    (c.is_ascii_control() && c != '\t' && c != '\n') || ('\u{80}'..='\u{9f}').contains(&c)
}

fn has_control(s: &str) -> bool {
    s.chars().any(is_unsafe_control)
}

/// Replaces unsafe control characters with U+FFFD.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe_control(c) { '\u{fffd}' } else { c })
        .collect()
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a
/// character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(labels: &[&str], limit: usize) -> (CounterVec, Arc<Limits>) {
        let limits = Arc::new(Limits::default());
        let desc = Descriptor {
            name: "t".into(),
            help: String::new(),
            unit: None,
            kind: MetricKind::Counter,
            label_names: labels.iter().map(|&l| Box::from(l)).collect(),
            variant: String::new(),
        };
        (
            Family::new(desc, (), limit, limits.clone(), Default::default()),
            limits,
        )
    }

    #[test]
    fn overflow_past_the_limit() {
        let (f, _) = family(&["id"], 10);
        for i in 0..1000 {
            f.get(&[i.to_string()]).inc();
        }
        assert_eq!(f.len(), 10);
        assert_eq!(f.overflow_count(), 990);
        // Existing series still resolve to themselves.
        f.get(&["3"]).inc();
        assert_eq!(f.get(&["3"]).get(), 2);
        assert_eq!(f.inner.overflow.get().map(Counter::get), Some(990));
    }

    #[test]
    fn long_values_are_truncated_and_counted() {
        let (f, limits) = family(&["v"], 10);
        let long = "é".repeat(5000);
        f.get(&[long.as_str()]).inc();
        f.get(&[long.as_str()]).inc();
        assert_eq!(f.len(), 1);
        let mut seen = Vec::new();
        f.inner
            .map
            .for_each(|v, c| seen.push((v[0].len(), c.get())));
        assert_eq!(seen.len(), 1);
        assert!(seen[0].0 <= limits.max_label_value_len);
        assert_eq!(seen[0].1, 2);
        assert_eq!(limits.rejected(Reason::LabelValueTooLong), 2);
    }

    #[test]
    fn wrong_arity_goes_to_overflow_and_is_counted() {
        let (f, limits) = family(&["a", "b"], 10);
        f.get(&["only one"]).inc();
        assert!(
            f.try_get(&["x"])
                .unwrap_err()
                .to_string()
                .contains("2 labels but 1")
        );
        assert_eq!(limits.rejected(Reason::LabelCount), 1);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn control_characters_are_replaced_and_counted() {
        let (f, limits) = family(&["v"], 10);
        f.get(&["a\rb\u{0}c\td\ne\u{85}"]).inc();
        f.get(&["a\rb\u{0}c\td\ne\u{85}"]).inc();
        let mut seen = Vec::new();
        f.inner
            .map
            .for_each(|v, c| seen.push((v[0].to_string(), c.get())));
        assert_eq!(
            seen,
            vec![("a\u{fffd}b\u{fffd}c\td\ne\u{fffd}".to_string(), 2)]
        );
        assert_eq!(limits.rejected(Reason::LabelValueControlChar), 2);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
