//! A mergeable quantile sketch with a fixed relative error.
//!
//! Values are counted in exponential buckets that use the same mapping as
//! OpenTelemetry's (and Prometheus' native) exponential histograms at scale
//! [`SCALE`]: bucket `i` holds the values in `(base^i, base^(i+1)]` with
//! `base = 2^(2^-SCALE)`. Reporting the harmonic centre of a bucket keeps the
//! relative error of any quantile below [`RELATIVE_ERROR`] (about 0.54 %), and
//! two sketches merge exactly by adding their bucket counts, so a sketch of the
//! union equals the merge of the sketches of the parts.
//!
//! [`Sketch`] is the plain-data form used by snapshots, the collector's wire
//! format and rollups; the live, lock-free form lives in
//! [`Histogram`](crate::Histogram) and shares this mapping.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The exponential-histogram scale: `2^SCALE` buckets per power of two.
pub const SCALE: i32 = 6;
/// Buckets per power of two.
pub(crate) const BUCKETS_PER_OCTAVE: i32 = 1 << SCALE;
/// Smallest binary exponent kept apart from zero: values `<= 2^MIN_EXP`
/// (about 0.23 ns when recording seconds) count in the zero bucket.
pub const MIN_EXP: i32 = -32;
/// Largest binary exponent: larger values are clamped into the top bucket.
pub const MAX_EXP: i32 = 63;
/// Lowest bucket index that is not the zero bucket.
pub(crate) const MIN_INDEX: i32 = MIN_EXP * BUCKETS_PER_OCTAVE;
/// Highest bucket index.
pub(crate) const MAX_INDEX: i32 = (MAX_EXP + 1) * BUCKETS_PER_OCTAVE - 1;
/// Number of distinct non-zero bucket indices.
pub(crate) const INDEX_COUNT: usize = (MAX_INDEX - MIN_INDEX + 1) as usize;

/// Largest relative error of a quantile read from a sketch:
/// `(base - 1) / (base + 1)` with `base = 2^(1/64)`.
pub const RELATIVE_ERROR: f64 = 0.005_415_16;

const MANTISSA_BITS: u32 = 52;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;
/// Linear sub-buckets per octave used to find the logarithmic bucket without
/// computing a logarithm: 128 is the first power of two finer than the
/// narrowest log bucket, so each sub-bucket straddles at most one boundary.
const LINEAR_BITS: u32 = 7;
const LINEAR: usize = 1 << LINEAR_BITS;

/// Per linear sub-bucket: the log bucket (within the octave) at its start,
/// and the mantissa of the one log boundary inside it (`u64::MAX` if none).
struct LookupTable {
    first: [u8; LINEAR],
    boundary: [u64; LINEAR],
}

/// Mantissa bits of `2^(k/64)` for k in 0..64.
const fn boundary_mantissa(k: usize) -> u64 {
    BOUNDARIES[k]
}

include!("sketch_boundaries.rs");

const TABLE: LookupTable = {
    let mut first = [0u8; LINEAR];
    let mut boundary = [u64::MAX; LINEAR];
    let mut j = 0;
    while j < LINEAR {
        let start = (j as u64) << (MANTISSA_BITS - LINEAR_BITS);
        let end = ((j as u64 + 1) << (MANTISSA_BITS - LINEAR_BITS)) - 1;
        // Log bucket k holds mantissas in (B[k], B[k+1]]; the start of the
        // sub-bucket lies in the bucket of the last boundary strictly below it.
        let mut k = 0;
        while k + 1 < 64 && boundary_mantissa(k + 1) < start {
            k += 1;
        }
        first[j] = k as u8;
        if k + 1 < 64 && boundary_mantissa(k + 1) <= end {
            boundary[j] = boundary_mantissa(k + 1);
        }
        j += 1;
    }
    LookupTable { first, boundary }
};

/// Where a value lands in the sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Zero, or too small to tell from zero.
    Zero,
    /// A bucket index in `MIN_INDEX..=MAX_INDEX`.
    Bucket(i32),
    /// Negative, NaN or infinite: not recordable.
    Invalid,
}

/// Maps a value to its bucket. Monotonic: `a <= b` implies `slot(a) <= slot(b)`.
#[inline]
pub(crate) fn slot_of(value: f64) -> Slot {
    let bits = value.to_bits();
    // Sign bit clear and exponent below all-ones: a finite value >= +0.
    if bits >= 0x7ff0_0000_0000_0000 {
        return if bits == f64::INFINITY.to_bits() {
            Slot::Bucket(MAX_INDEX)
        } else if bits == (-0.0f64).to_bits() {
            Slot::Zero
        } else {
            Slot::Invalid
        };
    }
    let exp = (bits >> MANTISSA_BITS) as i32 - 1023;
    let mantissa = bits & MANTISSA_MASK;
    if exp < MIN_EXP || (exp == MIN_EXP && mantissa == 0) {
        return Slot::Zero;
    }
    if exp > MAX_EXP {
        return Slot::Bucket(MAX_INDEX);
    }
    let index = if mantissa == 0 {
        // An exact power of two is the inclusive upper end of the bucket below.
        exp * BUCKETS_PER_OCTAVE - 1
    } else {
        let j = (mantissa >> (MANTISSA_BITS - LINEAR_BITS)) as usize;
        let k = TABLE.first[j] as i32 + (mantissa > TABLE.boundary[j]) as i32;
        exp * BUCKETS_PER_OCTAVE + k
    };
    Slot::Bucket(index)
}

/// Lower (exclusive) bound of bucket `index`.
pub(crate) fn lower_bound(index: i32) -> f64 {
    (index as f64 / BUCKETS_PER_OCTAVE as f64).exp2()
}

/// The value reported for bucket `index`: the harmonic centre of its bounds,
/// which minimises the worst relative error over the bucket.
pub(crate) fn representative(index: i32) -> f64 {
    let lower = lower_bound(index);
    let upper = lower_bound(index + 1);
    2.0 * lower * upper / (lower + upper)
}

/// A mergeable histogram sketch in plain data.
///
/// Quantiles are within [`RELATIVE_ERROR`] of the exact value of the same
/// rank; counts and sums are exact. Negative, NaN and infinite values are
/// rejected and counted in [`Sketch::rejected`].
///
/// ```
/// use vitals::Sketch;
/// let mut a = Sketch::new();
/// for ms in 1..=100 { a.record(ms as f64 / 1000.0); }
/// let p99 = a.quantile(0.99).unwrap();
/// assert!((p99 - 0.099).abs() / 0.099 < 0.01);
/// let mut b = Sketch::new();
/// b.record(5.0);
/// a.merge(&b);
/// assert_eq!(a.count(), 101);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Values counted as zero (including those below the resolution).
    #[serde(default)]
    zero_count: u64,
    /// Sum of all recorded values.
    #[serde(default)]
    sum: f64,
    /// Values that could not be recorded (negative, NaN, -inf).
    #[serde(default)]
    rejected: u64,
    /// Non-empty buckets: index to count.
    #[serde(default, with = "bucket_pairs")]
    buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one value.
    pub fn record(&mut self, value: f64) {
        self.record_n(value, 1);
    }

    /// Records `n` occurrences of one value.
    pub fn record_n(&mut self, value: f64, n: u64) {
        match slot_of(value) {
            Slot::Zero => {
                self.zero_count += n;
                self.sum += value * n as f64;
            }
            Slot::Bucket(i) => {
                *self.buckets.entry(i).or_insert(0) += n;
                self.sum += value * n as f64;
            }
            Slot::Invalid => self.rejected += n,
        }
    }

    /// Adds every value of `other` into `self`.
    pub fn merge(&mut self, other: &Sketch) {
        self.zero_count += other.zero_count;
        self.sum += other.sum;
        self.rejected += other.rejected;
        for (&i, &c) in &other.buckets {
            *self.buckets.entry(i).or_insert(0) += c;
        }
    }

    /// Removes `earlier` from `self`, where `earlier` is an older read of the
    /// same histogram: what remains is the sketch of the values recorded in
    /// between (a sliding window from two cumulative reads). Counts saturate
    /// at zero if `earlier` is not in fact older.
    pub fn subtract(&mut self, earlier: &Sketch) {
        self.zero_count = self.zero_count.saturating_sub(earlier.zero_count);
        self.sum -= earlier.sum;
        self.rejected = self.rejected.saturating_sub(earlier.rejected);
        for (&i, &c) in &earlier.buckets {
            if let Some(n) = self.buckets.get_mut(&i) {
                *n = n.saturating_sub(c);
            }
        }
        self.buckets.retain(|_, n| *n > 0);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.zero_count + self.buckets.values().sum::<u64>()
    }

    /// Sum of recorded values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Values refused because they were negative, NaN or negative infinity.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Values counted as zero.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Non-empty buckets as `(index, count)`, lowest first. Bucket `i` holds
    /// values in `(2^(i/64), 2^((i+1)/64)]`, as an OpenTelemetry exponential
    /// histogram at scale 6.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().map(|(&i, &c)| (i, c))
    }

    /// Non-empty buckets as `(value, count)`, lowest first: the value a
    /// bucket reports (within [`RELATIVE_ERROR`] of every value in it), for
    /// exporters that send values rather than bucket indices (StatsD).
    pub fn bucket_values(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets.iter().map(|(&i, &c)| (representative(i), c))
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Estimates the `q`-quantile (`0.0..=1.0`) by nearest rank: the value
    /// at 1-based position `ceil(q * count)` in sorted order (the smallest
    /// value for `q = 0`), within [`RELATIVE_ERROR`]. So p99 of three values
    /// is the largest, as a person reading a dashboard expects. `None` when
    /// the sketch is empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let count = self.count();
        if count == 0 {
            return None;
        }
        // 0-based nearest rank; the float product is clamped into range.
        let rank = ((q * count as f64).ceil() as u64)
            .saturating_sub(1)
            .min(count - 1);
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for (&i, &c) in &self.buckets {
            seen += c;
            if rank < seen {
                return Some(representative(i));
            }
        }
        self.buckets.keys().next_back().map(|&i| representative(i))
    }

    /// Number of values `<= bound`, estimated at bucket resolution (exact when
    /// `bound` is a bucket boundary).
    pub fn count_at_most(&self, bound: f64) -> u64 {
        match slot_of(bound) {
            Slot::Invalid => 0,
            Slot::Zero => self.zero_count,
            Slot::Bucket(b) => {
                self.zero_count + self.buckets.range(..=b).map(|(_, &c)| c).sum::<u64>()
            }
        }
    }

    /// Builds a sketch from stored parts, as [`Sketch::zero_count`],
    /// [`Sketch::sum`] and [`Sketch::buckets`] return them, for storage back
    /// ends with their own encoding (the collector's SQLite store).
    /// Repeated indices add up, saturating; zero counts are dropped. `None`
    /// when an index is outside the sketch's range.
    pub fn from_buckets(
        zero_count: u64,
        sum: f64,
        buckets: impl IntoIterator<Item = (i32, u64)>,
    ) -> Option<Sketch> {
        let pairs: Vec<(i32, u64)> = buckets.into_iter().filter(|&(_, c)| c > 0).collect();
        if pairs
            .iter()
            .any(|(i, _)| !(MIN_INDEX..=MAX_INDEX).contains(i))
        {
            return None;
        }
        // Stored sketches come sorted and unique: build the map in bulk.
        let map = if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.into_iter().collect()
        } else {
            let mut map = BTreeMap::new();
            for (i, c) in pairs {
                let slot = map.entry(i).or_insert(0u64);
                *slot = slot.saturating_add(c);
            }
            map
        };
        Some(Sketch {
            zero_count,
            sum,
            rejected: 0,
            buckets: map,
        })
    }

    pub(crate) fn from_parts(zero_count: u64, sum: f64, buckets: BTreeMap<i32, u64>) -> Self {
        Sketch {
            zero_count,
            sum,
            rejected: 0,
            buckets,
        }
    }

    pub(crate) fn set_rejected(&mut self, rejected: u64) {
        self.rejected = rejected;
    }
}

/// Serialises the bucket map as a list of `[index, count]` pairs, which is
/// compact in JSON and keeps integer keys integers.
mod bucket_pairs {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};
    use std::collections::BTreeMap;

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<i32, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(map.len()))?;
        for (i, c) in map {
            seq.serialize_element(&(i, c))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<i32, u64>, D::Error> {
        let pairs: Vec<(i32, u64)> = Vec::deserialize(d)?;
        let mut map = BTreeMap::new();
        for (i, c) in pairs {
            if !(super::MIN_INDEX..=super::MAX_INDEX).contains(&i) {
                return Err(serde::de::Error::custom(format_args!(
                    "sketch bucket index {i} is outside {}..={}",
                    super::MIN_INDEX,
                    super::MAX_INDEX
                )));
            }
            let slot = map.entry(i).or_insert(0u64);
            *slot = slot.checked_add(c).ok_or_else(|| {
                serde::de::Error::custom(format_args!("sketch bucket {i} count overflows"))
            })?;
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_index(v: f64) -> i32 {
        // ceil(log2(v) * 64) - 1, computed in the slow, obvious way.
        ((v.log2() * BUCKETS_PER_OCTAVE as f64).ceil() as i32) - 1
    }

    #[test]
    fn boundary_table_matches_exp2() {
        for (k, &m) in BOUNDARIES.iter().enumerate() {
            let want = ((k as f64 / 64.0).exp2() - 1.0) * (1u64 << 52) as f64;
            assert!((m as f64 - want).abs() <= 2.0, "k={k}: {m} vs {want}");
        }
    }

    #[test]
    fn powers_of_two_are_upper_inclusive() {
        assert_eq!(slot_of(1.0), Slot::Bucket(-1));
        assert_eq!(slot_of(2.0), Slot::Bucket(63));
        assert_eq!(slot_of(0.5), Slot::Bucket(-65));
        assert_eq!(slot_of(0.0), Slot::Zero);
        assert_eq!(slot_of(-1.0), Slot::Invalid);
        assert_eq!(slot_of(f64::NAN), Slot::Invalid);
        assert_eq!(slot_of(f64::NEG_INFINITY), Slot::Invalid);
        assert_eq!(slot_of(f64::INFINITY), Slot::Bucket(MAX_INDEX));
        assert_eq!(slot_of(1e300), Slot::Bucket(MAX_INDEX));
        assert_eq!(slot_of(1e-300), Slot::Zero);
    }

    proptest! {
        #[test]
        fn subtract_undoes_merge(a in prop::collection::vec(0.0f64..100.0, 0..200), b in prop::collection::vec(0.0f64..100.0, 0..200)) {
            let sk = |vs: &[f64]| { let mut s = Sketch::new(); for &v in vs { s.record(v); } s };
            let (sa, sb) = (sk(&a), sk(&b));
            let mut both = sa.clone();
            both.merge(&sb);
            both.subtract(&sa);
            prop_assert_eq!(both.buckets().collect::<Vec<_>>(), sb.buckets().collect::<Vec<_>>());
            prop_assert_eq!(both.count(), sb.count());
            prop_assert!((both.sum() - sb.sum()).abs() < 1e-6);
        }
    }

    #[test]
    fn from_buckets_round_trips_and_refuses_bad_indices() {
        let mut s = Sketch::new();
        for v in [0.0, 1.5, 1.5, 300.0] {
            s.record(v);
        }
        let back = Sketch::from_buckets(s.zero_count(), s.sum(), s.buckets()).unwrap();
        assert_eq!(back, s);
        assert_eq!(Sketch::from_buckets(0, 0.0, [(MAX_INDEX + 1, 1)]), None);
        let sat = Sketch::from_buckets(0, 0.0, [(0, u64::MAX), (0, 5), (1, 0)]).unwrap();
        assert_eq!(sat.buckets().collect::<Vec<_>>(), vec![(0, u64::MAX)]);
    }

    #[test]
    fn hostile_sketch_json_is_refused_clearly() {
        let ok: Sketch = serde_json::from_str(r#"{"sum":1.5,"buckets":[[0,2],[0,3]]}"#).unwrap();
        assert_eq!(ok.count(), 5, "repeated indices add up");
        for (json, want) in [
            (r#"{"buckets":[[99999,1]]}"#, "outside"),
            (r#"{"buckets":[[-99999,1]]}"#, "outside"),
            (
                r#"{"buckets":[[0,18446744073709551615],[0,1]]}"#,
                "overflows",
            ),
            (r#"{"buckets":[[0,-1]]}"#, "invalid value"),
            (r#"{"buckets":"nope"}"#, "invalid type"),
        ] {
            let err = serde_json::from_str::<Sketch>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut s = Sketch::new();
        for v in [1.0, 2.0, 3.0] {
            s.record(v);
        }
        let near = |q: f64, want: f64| {
            let got = s.quantile(q).unwrap();
            assert!(
                ((got - want) / want).abs() <= RELATIVE_ERROR,
                "q={q}: {got} vs {want}"
            );
        };
        near(0.0, 1.0);
        near(0.33, 1.0);
        near(0.34, 2.0);
        near(0.5, 2.0);
        near(0.99, 3.0);
        near(1.0, 3.0);
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn relative_error_constant_is_right() {
        let base = (1.0f64 / 64.0).exp2();
        assert!(((base - 1.0) / (base + 1.0) - RELATIVE_ERROR).abs() < 1e-7);
    }

    proptest! {
        #[test]
        fn index_matches_logarithm(v in 1e-9f64..1e12) {
            let Slot::Bucket(i) = slot_of(v) else { panic!("{v} not bucketed") };
            let e = exact_index(v);
            // Away from a boundary the table lookup must equal the logarithm;
            // within rounding of one, either neighbour is acceptable.
            let lo = lower_bound(e);
            let hi = lower_bound(e + 1);
            let near = ((v - lo) / v).abs() < 1e-12 || ((hi - v) / v).abs() < 1e-12;
            prop_assert!(i == e || near, "v={v} table={i} log={e}");
            prop_assert!(v >= lower_bound(i) * (1.0 - 1e-12) && v <= lower_bound(i + 1) * (1.0 + 1e-12));
        }

        #[test]
        fn mapping_is_monotonic(a in 0.0f64..1e15, b in 0.0f64..1e15) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let key = |s: Slot| match s { Slot::Zero => i64::MIN, Slot::Bucket(i) => i as i64, Slot::Invalid => i64::MAX };
            prop_assert!(key(slot_of(lo)) <= key(slot_of(hi)));
        }

        #[test]
        fn representative_is_within_error(v in 1e-9f64..1e15) {
            let Slot::Bucket(i) = slot_of(v) else { panic!() };
            let r = representative(i);
            prop_assert!(((r - v) / v).abs() <= RELATIVE_ERROR * 1.0001, "v={v} r={r}");
        }
    }
}
