//! OTLP histograms as distributions of durations: explicit-bucket and
//! exponential data points checked and read into a [`Distribution`] (in
//! the sender's unit), one cumulative reading subtracted from a later one
//! ([`Distribution::since`]), and a distribution turned into the
//! collector's duration [`Sketch`] in milliseconds.

use opentelemetry_proto::tonic::metrics::v1::{ExponentialHistogramDataPoint, HistogramDataPoint};
use std::collections::BTreeMap;
use vitals::Sketch;

/// Largest exponential-histogram scale OTLP defines.
const MAX_SCALE: i32 = 20;
/// Smallest exponential-histogram scale OTLP defines.
const MIN_SCALE: i32 = -10;
/// Most buckets one data point may carry (explicit or exponential).
pub(crate) const MAX_BUCKETS: usize = 4096;

/// The buckets of one histogram data point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Buckets {
    /// Explicit bounds: `counts[i]` holds the values in
    /// `(bounds[i-1], bounds[i]]`, the first from minus infinity and the
    /// last to plus infinity.
    Explicit {
        /// Strictly increasing, finite upper bounds.
        bounds: Vec<f64>,
        /// One more count than bounds.
        counts: Vec<u64>,
    },
    /// Exponential: bucket `i` holds `(base^i, base^(i+1)]`, `base =
    /// 2^(2^-scale)`.
    Exponential {
        /// The scale.
        scale: i32,
        /// Values counted as zero.
        zero: u64,
        /// Positive buckets by index.
        positive: BTreeMap<i32, u64>,
        /// Values below zero (a duration cannot be: counted, not placed).
        negative: u64,
    },
}

/// One histogram data point read: its count, sum, range and buckets, in
/// the sender's unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Distribution {
    /// Values counted.
    pub count: u64,
    /// Their sum, when sent.
    pub sum: Option<f64>,
    /// Smallest value, when sent (only meaningful for a whole reading).
    pub min: Option<f64>,
    /// Largest value, when sent.
    pub max: Option<f64>,
    /// The buckets.
    pub buckets: Buckets,
}

/// What a later cumulative reading says relative to an earlier one.
#[derive(Debug, PartialEq)]
pub(crate) enum Since {
    /// The values recorded in between.
    Delta(Distribution),
    /// A count went down: the stream restarted.
    Reset,
    /// The buckets changed shape (other bounds, a finer scale): no delta
    /// can be computed.
    Incompatible,
}

fn finite_opt(v: Option<f64>) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !x.is_finite() => Err(format!("a non-finite value {x}")),
        other => Ok(other),
    }
}

impl Distribution {
    /// Reads an explicit-bucket histogram data point, checking that its
    /// bounds increase, its bucket counts add up to its count, and its
    /// numbers are finite.
    pub(crate) fn explicit(p: &HistogramDataPoint) -> Result<Self, String> {
        if p.bucket_counts.len() > MAX_BUCKETS {
            return Err(format!(
                "{} buckets, over the limit of {MAX_BUCKETS}",
                p.bucket_counts.len()
            ));
        }
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return Err(format!(
                "{} bucket counts for {} explicit bounds (want one more count than bounds)",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            ));
        }
        if p.explicit_bounds.iter().any(|b| !b.is_finite())
            || p.explicit_bounds.windows(2).any(|w| w[0] >= w[1])
        {
            return Err("explicit bounds must be finite and strictly increasing".into());
        }
        let total = p
            .bucket_counts
            .iter()
            .try_fold(0u64, |n, &c| n.checked_add(c));
        if !p.bucket_counts.is_empty() && total != Some(p.count) {
            return Err(format!(
                "the bucket counts do not add up to the count {}",
                p.count
            ));
        }
        Ok(Distribution {
            count: p.count,
            sum: finite_opt(p.sum)?,
            min: finite_opt(p.min)?,
            max: finite_opt(p.max)?,
            buckets: Buckets::Explicit {
                bounds: p.explicit_bounds.clone(),
                counts: p.bucket_counts.clone(),
            },
        })
    }

    /// Reads an exponential histogram data point, checking its scale, its
    /// bucket range and that its counts add up.
    pub(crate) fn exponential(p: &ExponentialHistogramDataPoint) -> Result<Self, String> {
        if !(MIN_SCALE..=MAX_SCALE).contains(&p.scale) {
            return Err(format!(
                "scale {} is outside {MIN_SCALE}..={MAX_SCALE}",
                p.scale
            ));
        }
        let empty = Default::default();
        let pos = p.positive.as_ref().unwrap_or(&empty);
        let neg = p.negative.as_ref().unwrap_or(&empty);
        if pos.bucket_counts.len() + neg.bucket_counts.len() > MAX_BUCKETS {
            return Err(format!("over {MAX_BUCKETS} buckets"));
        }
        let mut positive = BTreeMap::new();
        let mut total = Some(p.zero_count);
        for (i, &c) in pos.bucket_counts.iter().enumerate() {
            let index = i32::try_from(i)
                .ok()
                .and_then(|i| pos.offset.checked_add(i))
                .ok_or("a bucket index outside the 32-bit range")?;
            if c > 0 {
                positive.insert(index, c);
            }
            total = total.and_then(|t| t.checked_add(c));
        }
        let negative = neg
            .bucket_counts
            .iter()
            .try_fold(0u64, |n, &c| n.checked_add(c));
        total = total.and_then(|t| negative.and_then(|n| t.checked_add(n)));
        if total != Some(p.count) {
            return Err(format!(
                "the zero count and bucket counts do not add up to the count {}",
                p.count
            ));
        }
        if !(p.zero_threshold.is_finite() && p.zero_threshold >= 0.0) {
            return Err(format!(
                "zero threshold {} is not a non-negative number",
                p.zero_threshold
            ));
        }
        Ok(Distribution {
            count: p.count,
            sum: finite_opt(p.sum)?,
            min: finite_opt(p.min)?,
            max: finite_opt(p.max)?,
            buckets: Buckets::Exponential {
                scale: p.scale,
                zero: p.zero_count,
                positive,
                negative: negative.unwrap_or(0),
            },
        })
    }

    /// `self` minus `earlier`, two cumulative readings of one stream: the
    /// values recorded in between. An exponential histogram whose scale
    /// went down (an SDK rescales as its range grows) is compared at the
    /// coarser scale.
    pub(crate) fn since(&self, earlier: &Distribution) -> Since {
        let buckets = match (&self.buckets, &earlier.buckets) {
            (
                Buckets::Explicit { bounds, counts },
                Buckets::Explicit {
                    bounds: old_bounds,
                    counts: old_counts,
                },
            ) => {
                if bounds != old_bounds || counts.len() != old_counts.len() {
                    return Since::Incompatible;
                }
                let mut delta = Vec::with_capacity(counts.len());
                for (a, b) in counts.iter().zip(old_counts) {
                    match a.checked_sub(*b) {
                        Some(d) => delta.push(d),
                        None => return Since::Reset,
                    }
                }
                Buckets::Explicit {
                    bounds: bounds.clone(),
                    counts: delta,
                }
            }
            (
                Buckets::Exponential {
                    scale,
                    zero,
                    positive,
                    negative,
                },
                Buckets::Exponential {
                    scale: old_scale,
                    zero: old_zero,
                    positive: old_positive,
                    negative: old_negative,
                },
            ) => {
                if old_scale < scale {
                    return Since::Incompatible;
                }
                let shift = old_scale - scale;
                let mut old = BTreeMap::new();
                for (&i, &c) in old_positive {
                    *old.entry(i >> shift).or_insert(0u64) += c;
                }
                let mut delta = BTreeMap::new();
                for (&i, &c) in positive {
                    let before = old.remove(&i).unwrap_or(0);
                    match c.checked_sub(before) {
                        Some(0) => {}
                        Some(d) => {
                            delta.insert(i, d);
                        }
                        None => return Since::Reset,
                    }
                }
                if old.values().any(|&c| c > 0) {
                    return Since::Reset;
                }
                let (Some(zero), Some(negative)) = (
                    zero.checked_sub(*old_zero),
                    negative.checked_sub(*old_negative),
                ) else {
                    return Since::Reset;
                };
                Buckets::Exponential {
                    scale: *scale,
                    zero,
                    positive: delta,
                    negative,
                }
            }
            _ => return Since::Incompatible,
        };
        let Some(count) = self.count.checked_sub(earlier.count) else {
            return Since::Reset;
        };
        let sum = match (self.sum, earlier.sum) {
            (Some(a), Some(b)) => Some((a - b).max(0.0)),
            _ => None,
        };
        Since::Delta(Distribution {
            count,
            sum,
            min: None,
            max: None,
            buckets,
        })
    }

    /// The distribution as the collector's sketch of milliseconds: each
    /// bucket's count at one value inside it (an explicit bucket's middle,
    /// within the sent min and max; an exponential bucket's geometric
    /// middle), the sum as sent. Quantiles read from it are within the
    /// sent buckets' resolution. `to_ms` converts the sender's unit.
    /// Values below zero are left out (a duration cannot be negative).
    pub(crate) fn to_sketch(&self, to_ms: f64) -> Sketch {
        let mut sketch = Sketch::new();
        let clamp = |v: f64| {
            let v = self.min.map_or(v, |m| v.max(m));
            self.max.map_or(v, |m| v.min(m))
        };
        match &self.buckets {
            Buckets::Explicit { bounds, counts } => {
                for (i, &c) in counts.iter().enumerate() {
                    if c == 0 {
                        continue;
                    }
                    let hi = bounds.get(i).copied();
                    let lo = i.checked_sub(1).and_then(|j| bounds.get(j)).copied();
                    let value = match (lo, hi) {
                        (Some(lo), Some(hi)) => (lo + hi) / 2.0,
                        // The first bucket, from minus infinity: its bound,
                        // or the middle from the sent minimum.
                        (None, Some(hi)) => self.min.map_or(hi, |m| (m.min(hi) + hi) / 2.0),
                        // The last bucket, to infinity: from its bound to
                        // the sent maximum.
                        (Some(lo), None) => self.max.map_or(lo, |m| (lo + m.max(lo)) / 2.0),
                        (None, None) => self.sum.map_or(0.0, |s| s / c as f64),
                    };
                    sketch.record_n(clamp(value).max(0.0) * to_ms, c);
                }
            }
            Buckets::Exponential {
                scale,
                zero,
                positive,
                ..
            } => {
                sketch.record_n(0.0, *zero);
                let width = (-f64::from(*scale)).exp2();
                for (&i, &c) in positive {
                    let middle = ((f64::from(i) + 0.5) * width).exp2();
                    sketch.record_n(clamp(middle) * to_ms, c);
                }
            }
        }
        match self.sum {
            Some(sum) if sum >= 0.0 => {
                Sketch::from_buckets(sketch.zero_count(), sum * to_ms, sketch.buckets())
                    .unwrap_or(sketch)
            }
            _ => sketch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets as ExpBuckets;

    fn explicit(bounds: &[f64], counts: &[u64], sum: f64) -> HistogramDataPoint {
        HistogramDataPoint {
            count: counts.iter().sum(),
            sum: Some(sum),
            bucket_counts: counts.to_vec(),
            explicit_bounds: bounds.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn explicit_buckets_become_a_sketch_within_their_resolution() {
        let p = explicit(&[0.005, 0.01, 0.025, 0.05], &[0, 3, 5, 2, 0], 0.2);
        let d = Distribution::explicit(&p).expect("valid");
        let s = d.to_sketch(1000.0);
        assert_eq!(s.count(), 10);
        assert!((s.sum() - 200.0).abs() < 1e-9);
        let p50 = s.quantile(0.5).expect("p50");
        assert!((10.0..=25.0).contains(&p50), "{p50}");
        let p99 = s.quantile(0.99).expect("p99");
        assert!((25.0..=50.0).contains(&p99), "{p99}");
    }

    #[test]
    fn malformed_histograms_are_refused() {
        let mut p = explicit(&[1.0, 2.0], &[1, 1, 1], 3.0);
        p.count = 4;
        assert!(Distribution::explicit(&p).is_err(), "counts do not add up");
        assert!(Distribution::explicit(&explicit(&[2.0, 1.0], &[1, 1, 1], 3.0)).is_err());
        assert!(Distribution::explicit(&explicit(&[1.0], &[1, 1, 1], 3.0)).is_err());
        let p = HistogramDataPoint {
            count: 1,
            bucket_counts: vec![u64::MAX, 2],
            explicit_bounds: vec![1.0],
            ..Default::default()
        };
        assert!(Distribution::explicit(&p).is_err(), "an overflowing total");
        let e = ExponentialHistogramDataPoint {
            scale: 21,
            ..Default::default()
        };
        assert!(Distribution::exponential(&e).is_err());
        let e = ExponentialHistogramDataPoint {
            count: 1,
            positive: Some(ExpBuckets {
                offset: i32::MAX,
                bucket_counts: vec![0, 1],
            }),
            ..Default::default()
        };
        assert!(Distribution::exponential(&e).is_err(), "index overflow");
    }

    #[test]
    fn cumulative_readings_subtract_with_resets_and_rescaling() {
        let a = Distribution::explicit(&explicit(&[1.0, 2.0], &[1, 2, 0], 3.5)).expect("a");
        let b = Distribution::explicit(&explicit(&[1.0, 2.0], &[2, 2, 1], 7.0)).expect("b");
        let Since::Delta(d) = b.since(&a) else {
            panic!("a delta")
        };
        assert_eq!(d.count, 2);
        assert_eq!(d.sum, Some(3.5));
        assert_eq!(a.since(&b), Since::Reset);
        let other = Distribution::explicit(&explicit(&[5.0], &[1, 0], 1.0)).expect("other");
        assert_eq!(other.since(&a), Since::Incompatible);

        let exp = |scale, offset, counts: Vec<u64>| {
            Distribution::exponential(&ExponentialHistogramDataPoint {
                scale,
                count: counts.iter().sum(),
                sum: Some(1.0),
                positive: Some(ExpBuckets {
                    offset,
                    bucket_counts: counts,
                }),
                ..Default::default()
            })
            .expect("valid")
        };
        // Scale 2 buckets 8..=11 fold into scale 1 buckets 4 and 5.
        let fine = exp(2, 8, vec![1, 1, 1, 1]);
        let coarse = exp(1, 4, vec![3, 4]);
        let Since::Delta(d) = coarse.since(&fine) else {
            panic!("a delta")
        };
        assert_eq!(d.count, 3);
        assert_eq!(
            d.buckets,
            Buckets::Exponential {
                scale: 1,
                zero: 0,
                positive: BTreeMap::from([(4, 1), (5, 2)]),
                negative: 0
            }
        );
        assert_eq!(fine.since(&coarse), Since::Incompatible);
    }

    #[test]
    fn exponential_buckets_keep_their_quantiles() {
        // Scale 3: bucket 26 is (2^(26/8), 2^(27/8)] = (9.51, 10.37] s.
        let d = Distribution::exponential(&ExponentialHistogramDataPoint {
            scale: 3,
            count: 5,
            zero_count: 1,
            sum: Some(40.0),
            positive: Some(ExpBuckets {
                offset: 26,
                bucket_counts: vec![4],
            }),
            ..Default::default()
        })
        .expect("valid");
        let s = d.to_sketch(1.0);
        assert_eq!(s.count(), 5);
        assert_eq!(s.zero_count(), 1);
        let p90 = s.quantile(0.9).expect("p90");
        assert!((9.51..=10.38).contains(&p90), "{p90}");
    }
}
