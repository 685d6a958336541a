//! `Histogram`: a lock-free, mergeable distribution with exact classic
//! buckets and quantiles within 1 %.

use super::gauge::atomic_add_f64;
use crate::error::Error;
use crate::options::{DEFAULT_BUCKETS, MAX_BUCKETS};
use crate::sketch::{self, MIN_INDEX, Sketch, Slot, slot_of};
use std::collections::BTreeMap;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use std::time::Instant;

/// Buckets per chunk: one octave (power of two) of the sketch.
const CHUNK: usize = 64;
const CHUNKS: usize = sketch::INDEX_COUNT / CHUNK;
/// Chunks per group: the chunk pointers are allocated a group of octaves
/// at a time, on first use, so a series holds pointers only for the range
/// its values span (96 pointers inline would be 768 bytes per series).
const GROUP: usize = 8;
const GROUPS: usize = CHUNKS / GROUP;
const _: () = assert!(CHUNKS % GROUP == 0);

/// Classic bucket bounds shared by every series of a family, with where each
/// falls in the sketch so that reads can give exact `le` counts.
#[derive(Debug)]
#[doc(hidden)]
pub struct BucketLayout {
    pub(crate) bounds: Box<[f64]>,
    /// Sketch offset (`index - MIN_INDEX`) of the bucket holding each bound.
    offsets: Box<[usize]>,
    /// One bit per sketch offset: set where a bound lies inside the bucket.
    marked: Box<[u64]>,
}

impl BucketLayout {
    pub(crate) fn new(metric: &str, bounds: &[f64]) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidBuckets {
            metric: metric.to_owned(),
            reason,
        };
        if bounds.len() > MAX_BUCKETS {
            return Err(invalid(format!(
                "{} bounds given; at most {MAX_BUCKETS} are allowed",
                bounds.len()
            )));
        }
        let min = (sketch::MIN_EXP as f64).exp2();
        let mut offsets = Vec::with_capacity(bounds.len());
        let mut marked = vec![0u64; sketch::INDEX_COUNT.div_ceil(64)];
        for (i, &b) in bounds.iter().enumerate() {
            if !b.is_finite() || b <= min {
                return Err(invalid(format!(
                    "bound {b} must be finite and greater than {min:e} (+Inf is implied)"
                )));
            }
            if i > 0 && b <= bounds[i - 1] {
                return Err(invalid(format!(
                    "bounds must increase strictly, but {b} follows {}",
                    bounds[i - 1]
                )));
            }
            let Slot::Bucket(index) = slot_of(b) else {
                return Err(invalid(format!("bound {b} is out of range")));
            };
            let off = (index - MIN_INDEX) as usize;
            offsets.push(off);
            marked[off / 64] |= 1 << (off % 64);
        }
        Ok(BucketLayout {
            bounds: bounds.into(),
            offsets: offsets.into(),
            marked: marked.into(),
        })
    }

    #[inline]
    fn is_marked(&self, off: usize) -> bool {
        self.marked[off / 64] & (1 << (off % 64)) != 0
    }
}

type Chunk = [AtomicU64; CHUNK];
type Group = [AtomicPtr<Chunk>; GROUP];

/// A distribution of observed values (durations in seconds, sizes in bytes).
///
/// Recording is lock-free: one relaxed add on a bucket and one on the sum.
/// It keeps a sketch whose quantiles are within 1 % of the exact value
/// (see [`Sketch`]) and renders classic Prometheus `le` buckets that are
/// exact for the bounds configured. Memory is bounded: about 0.2 KiB, plus
/// 64 bytes for each group of eight powers of two and 0.5 KiB for each
/// power of two the values actually span.
///
/// ```
/// let latency = vitals::Histogram::new();
/// latency.record(0.020);
/// latency.record(0.180);
/// {
///     let _t = latency.start_timer(); // records the elapsed time when dropped
/// }
/// assert_eq!(latency.count(), 3);
/// let p50 = latency.sketch().quantile(0.5).unwrap();
/// assert!((p50 - 0.020).abs() / 0.020 < 0.01);
/// ```
#[derive(Clone)]
pub struct Histogram {
    pub(crate) core: Arc<HistogramCore>,
}

pub(crate) struct HistogramCore {
    /// Groups of chunk pointers, each allocated on first use.
    groups: [AtomicPtr<Group>; GROUPS],
    zero: AtomicU64,
    sum: AtomicU64,
    rejected: AtomicU64,
    /// Per classic bound: values in the bound's own sketch bucket that are
    /// `<= bound`. Only values landing in such a bucket touch it.
    splits: Box<[AtomicU64]>,
    layout: Arc<BucketLayout>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .finish()
    }
}

impl Histogram {
    /// A histogram with the [`DEFAULT_BUCKETS`], not registered anywhere.
    pub fn new() -> Self {
        static DEFAULT: std::sync::OnceLock<Arc<BucketLayout>> = std::sync::OnceLock::new();
        let layout = DEFAULT.get_or_init(|| {
            Arc::new(
                BucketLayout::new("default", DEFAULT_BUCKETS)
                    .unwrap_or_else(|e| unreachable!("default buckets are valid: {e}")),
            )
        });
        Self::with_layout(layout.clone())
    }

    /// A histogram with these classic bucket bounds (finite, positive,
    /// strictly increasing; `+Inf` is implied).
    pub fn with_buckets(bounds: &[f64]) -> Result<Self, Error> {
        Ok(Self::with_layout(Arc::new(BucketLayout::new(
            "histogram",
            bounds,
        )?)))
    }

    pub(crate) fn with_layout(layout: Arc<BucketLayout>) -> Self {
        Histogram {
            core: Arc::new(HistogramCore {
                groups: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
                zero: AtomicU64::new(0),
                sum: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                splits: layout.bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                layout,
            }),
        }
    }

    /// Records one value. Negative, NaN and `-inf` values are refused and
    /// counted ([`Sketch::rejected`]); `+inf` lands in the top bucket.
    #[inline]
    pub fn record(&self, value: f64) {
        let core = &*self.core;
        match slot_of(value) {
            Slot::Bucket(index) => {
                let off = (index - MIN_INDEX) as usize;
                core.chunk(off / CHUNK)[off % CHUNK].fetch_add(1, Relaxed);
                if core.layout.is_marked(off) {
                    core.record_split(off, value);
                }
                atomic_add_f64(&core.sum, value);
            }
            Slot::Zero => {
                core.zero.fetch_add(1, Relaxed);
                atomic_add_f64(&core.sum, value);
            }
            Slot::Invalid => {
                core.rejected.fetch_add(1, Relaxed);
            }
        }
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn record_duration(&self, d: std::time::Duration) {
        self.record(d.as_secs_f64());
    }

    /// Starts a timer that records the elapsed seconds when dropped.
    pub fn start_timer(&self) -> Timer<'_> {
        Timer {
            histogram: Some(self),
            start: Instant::now(),
        }
    }

    /// Runs `f` and records how long it took.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let _timer = self.start_timer();
        f()
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        let core = &*self.core;
        let mut n = core.zero.load(Relaxed);
        for ci in 0..CHUNKS {
            if let Some(chunk) = core.loaded_chunk(ci) {
                n += chunk.iter().map(|b| b.load(Relaxed)).sum::<u64>();
            }
        }
        n
    }

    /// Sum of recorded values.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.core.sum.load(Relaxed))
    }

    /// A copy of the sketch, for quantiles and merging.
    pub fn sketch(&self) -> Sketch {
        self.core.to_sketch()
    }

    /// The classic bucket bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.core.layout.bounds
    }

    /// Reads the classic cumulative counts into `cumulative` (resized to the
    /// number of bounds) and returns `(count, sum)`.
    pub(crate) fn read_classic(&self, cumulative: &mut Vec<u64>) -> (u64, f64) {
        self.core.read_classic(cumulative)
    }
}

impl HistogramCore {
    /// Chunk `i`, allocated (with its group) if it does not exist yet.
    #[inline]
    fn chunk(&self, i: usize) -> &Chunk {
        let group = match load_published(&self.groups[i / GROUP]) {
            Some(g) => g,
            None => publish(&self.groups[i / GROUP], || {
                std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut()))
            }),
        };
        let slot = &group[i % GROUP];
        match load_published(slot) {
            Some(c) => c,
            None => publish(slot, || std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Chunk `i` if a value has landed in it.
    #[inline]
    fn loaded_chunk(&self, i: usize) -> Option<&Chunk> {
        load_published(&load_published(&self.groups[i / GROUP])?[i % GROUP])
    }

    #[cold]
    fn record_split(&self, off: usize, value: f64) {
        for (j, (&o, &b)) in self
            .layout
            .offsets
            .iter()
            .zip(self.layout.bounds.iter())
            .enumerate()
        {
            if o == off && value <= b {
                self.splits[j].fetch_add(1, Relaxed);
            }
        }
    }

    fn read_classic(&self, cumulative: &mut Vec<u64>) -> (u64, f64) {
        let offsets = &self.layout.offsets;
        cumulative.clear();
        cumulative.resize(offsets.len(), 0);
        let mut running = self.zero.load(Relaxed);
        let mut next = 0;
        for ci in 0..CHUNKS {
            let base = ci * CHUNK;
            let Some(chunk) = self.loaded_chunk(ci) else {
                while next < offsets.len() && offsets[next] < base + CHUNK {
                    cumulative[next] = running;
                    next += 1;
                }
                continue;
            };
            for (s, bucket) in chunk.iter().enumerate() {
                let n = bucket.load(Relaxed);
                while next < offsets.len() && offsets[next] == base + s {
                    // The split is bumped after the bucket: never let a racing
                    // read make it exceed the bucket it splits.
                    cumulative[next] = running + self.splits[next].load(Relaxed).min(n);
                    next += 1;
                }
                running += n;
            }
        }
        while next < offsets.len() {
            cumulative[next] = running;
            next += 1;
        }
        (running, f64::from_bits(self.sum.load(Relaxed)))
    }

    fn to_sketch(&self) -> Sketch {
        let mut buckets = BTreeMap::new();
        for ci in 0..CHUNKS {
            if let Some(chunk) = self.loaded_chunk(ci) {
                for (s, b) in chunk.iter().enumerate() {
                    let n = b.load(Relaxed);
                    if n > 0 {
                        buckets.insert((ci * CHUNK + s) as i32 + MIN_INDEX, n);
                    }
                }
            }
        }
        let mut sketch = Sketch::from_parts(
            self.zero.load(Relaxed),
            f64::from_bits(self.sum.load(Relaxed)),
            buckets,
        );
        sketch.set_rejected(self.rejected.load(Relaxed));
        sketch
    }
}

impl crate::visit::SketchSource for Histogram {
    fn sketch(&self) -> Sketch {
        self.core.to_sketch()
    }
}

/// What `p` points at, once `publish` has set it.
#[inline]
fn load_published<T>(p: &AtomicPtr<T>) -> Option<&T> {
    // Acquire pairs with the AcqRel publish in `publish`.
    let raw = p.load(Acquire);
    // SAFETY: non-null pointers were published by `publish` from a live
    // Box and are freed only in `drop`, which has exclusive access.
    unsafe { raw.as_ref() }
}

/// Sets the empty `p` to a new `make()` (or finds the one a racing thread
/// set first) and returns it; lives until the histogram drops.
#[cold]
fn publish<T>(p: &AtomicPtr<T>, make: impl FnOnce() -> T) -> &T {
    let fresh = Box::into_raw(Box::new(make()));
    match p.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
        // SAFETY: we just published `fresh`; it lives until `drop`.
        Ok(_) => unsafe { &*fresh },
        Err(existing) => {
            // SAFETY: `fresh` was never shared; reclaim it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: a published pointer is never freed before `drop`.
            unsafe { &*existing }
        }
    }
}

impl Drop for HistogramCore {
    fn drop(&mut self) {
        for g in self.groups.iter_mut() {
            let raw = *g.get_mut();
            if raw.is_null() {
                continue;
            }
            // SAFETY: allocated by `Box::into_raw` in `publish`, and
            // `&mut self` means no reader remains.
            let mut group = unsafe { Box::from_raw(raw) };
            for c in group.iter_mut() {
                let raw = *c.get_mut();
                if !raw.is_null() {
                    // SAFETY: as above, for the chunk.
                    drop(unsafe { Box::from_raw(raw) });
                }
            }
        }
    }
}

/// Records the time since it started into a histogram when dropped.
#[must_use = "a timer records when dropped; bind it to a variable"]
pub struct Timer<'a> {
    histogram: Option<&'a Histogram>,
    start: Instant,
}

impl std::fmt::Debug for Timer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("elapsed", &self.start.elapsed())
            .finish()
    }
}

impl Timer<'_> {
    /// Records now and returns the elapsed seconds.
    pub fn stop(mut self) -> f64 {
        let secs = self.start.elapsed().as_secs_f64();
        if let Some(h) = self.histogram.take() {
            h.record(secs);
        }
        secs
    }

    /// Drops the timer without recording.
    pub fn discard(mut self) {
        self.histogram = None;
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.histogram {
            h.record(self.start.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_le(values: &[f64], bound: f64) -> u64 {
        values.iter().filter(|&&v| v <= bound).count() as u64
    }

    #[test]
    fn classic_buckets_are_exact_at_bounds() {
        let h = Histogram::new();
        // Values right at, just below and just above every bound.
        let mut values = Vec::new();
        for &b in DEFAULT_BUCKETS {
            values.extend([b, b * (1.0 - 1e-9), b * (1.0 + 1e-9), b * 0.999, b * 1.001]);
        }
        values.extend([0.0, 11.0, 1e9]);
        for &v in &values {
            h.record(v);
        }
        let mut cum = Vec::new();
        let (count, sum) = h.read_classic(&mut cum);
        assert_eq!(count, values.len() as u64);
        assert!((sum - values.iter().sum::<f64>()).abs() < 1e-6);
        for (&b, &c) in DEFAULT_BUCKETS.iter().zip(&cum) {
            assert_eq!(c, exact_le(&values, b), "le={b}");
        }
    }

    #[test]
    fn rejects_bad_bounds_clearly() {
        let e = Histogram::with_buckets(&[1.0, 0.5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.5 follows 1"), "{e}");
        let e = Histogram::with_buckets(&[f64::NAN])
            .unwrap_err()
            .to_string();
        assert!(e.contains("finite"), "{e}");
        let e = Histogram::with_buckets(&[0.0]).unwrap_err().to_string();
        assert!(e.contains("greater than"), "{e}");
        assert!(Histogram::with_buckets(&[]).is_ok());
    }

    #[test]
    fn invalid_values_are_counted_not_recorded() {
        let h = Histogram::new();
        h.record(-1.0);
        h.record(f64::NAN);
        h.record(1.0);
        assert_eq!(h.count(), 1);
        assert_eq!(h.sketch().rejected(), 2);
        assert_eq!(h.sum(), 1.0);
    }

    #[test]
    fn concurrent_records_count_exactly() {
        let h = Histogram::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let h = h.clone();
                s.spawn(move || {
                    for i in 0..20_000 {
                        h.record((i % 1000 + t) as f64 / 1000.0);
                    }
                });
            }
        });
        assert_eq!(h.count(), 80_000);
        assert_eq!(h.sketch().count(), 80_000);
    }

    #[test]
    fn timer_records_elapsed() {
        let h = Histogram::new();
        let t = h.start_timer();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let secs = t.stop();
        assert!(secs >= 0.005);
        h.start_timer().discard();
        assert_eq!(h.count(), 1);
        assert_eq!(h.time(|| 7), 7);
        assert_eq!(h.count(), 2);
    }

    fn heavy_tailed() -> impl Strategy<Value = Vec<f64>> {
        // Mixtures of uniform, log-uniform (spanning 12 orders of magnitude)
        // and Pareto-like tails.
        let one = prop_oneof![
            (1e-6f64..10.0),
            (-9.0f64..6.0).prop_map(|e| 10f64.powf(e)),
            (0.0001f64..1.0).prop_map(|u| 0.001 / u.powf(1.5)),
            Just(0.0),
        ];
        prop::collection::vec(one, 1..2000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn quantiles_within_one_percent(values in heavy_tailed(), qs in prop::collection::vec(0.0f64..=1.0, 1..10)) {
            let h = Histogram::new();
            for &v in &values { h.record(v); }
            let sketch = h.sketch();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in qs.into_iter().chain([0.0, 0.5, 0.95, 0.99, 1.0]) {
                // Nearest rank, as `Sketch::quantile` documents.
                let rank = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1).min(sorted.len() - 1);
                let exact = sorted[rank];
                let est = sketch.quantile(q).unwrap();
                if exact <= (sketch::MIN_EXP as f64).exp2() {
                    prop_assert!(est <= (sketch::MIN_EXP as f64).exp2());
                } else {
                    prop_assert!(((est - exact) / exact).abs() <= 0.01, "q={q} exact={exact} est={est}");
                }
            }
        }

        #[test]
        fn merge_is_union_and_associative(a in heavy_tailed(), b in heavy_tailed(), c in heavy_tailed()) {
            let sk = |vs: &[f64]| { let mut s = Sketch::new(); for &v in vs { s.record(v); } s };
            let (sa, sb, sc) = (sk(&a), sk(&b), sk(&c));
            let mut left = sa.clone(); left.merge(&sb); left.merge(&sc);
            let mut bc = sb.clone(); bc.merge(&sc);
            let mut right = sa.clone(); right.merge(&bc);
            let all: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
            let union = sk(&all);
            prop_assert_eq!(left.count(), union.count());
            prop_assert_eq!(left.buckets().collect::<Vec<_>>(), union.buckets().collect::<Vec<_>>());
            prop_assert_eq!(right.buckets().collect::<Vec<_>>(), union.buckets().collect::<Vec<_>>());
            prop_assert_eq!(left.zero_count(), union.zero_count());
            prop_assert!((left.sum() - union.sum()).abs() <= 1e-9 * union.sum().abs().max(1.0));
        }

        #[test]
        fn live_histogram_equals_plain_sketch(values in heavy_tailed()) {
            let h = Histogram::new();
            let mut s = Sketch::new();
            for &v in &values { h.record(v); s.record(v); }
            let live = h.sketch();
            prop_assert_eq!(live.buckets().collect::<Vec<_>>(), s.buckets().collect::<Vec<_>>());
            prop_assert_eq!(live.count(), s.count());
            let mut cum = Vec::new();
            let (count, _) = h.read_classic(&mut cum);
            prop_assert_eq!(count, values.len() as u64);
            for (&b, &c) in DEFAULT_BUCKETS.iter().zip(&cum) {
                prop_assert_eq!(c, exact_le(&values, b));
            }
        }
    }
}
