//! Merging, next to the data it merges: per-service totals of route
//! buckets, fast sums of many bucket statistics ([`StatsSum`]), route
//! sums, merges by series key, and rolling finer buckets or custom points
//! up into coarser periods. The rollup job, every store back end and the
//! hot tier merge through these, so "a coarse bucket is the merge of its
//! parts" is written once.

use super::bucket::{Bucket, BucketStats, RouteSum, SeriesKey};
use super::custom::{CustomKey, CustomPoint, CustomStats};
use super::period::{Resolution, UnixMs};
use std::collections::BTreeMap;

/// The per-service total buckets of a set of route buckets: for every
/// (tenant, resolution, start, service, status class, caller), the merge
/// of its route buckets, keyed by [`SeriesKey::total`]. Total buckets in
/// the input are ignored, so the result depends on route rows alone.
///
/// The one place totals are computed: ingest, the migrations' backfill,
/// the hot tier's flush and the benches all call it.
pub fn totals_of<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Vec<Bucket> {
    type Group<'b> = (&'b str, Resolution, UnixMs, &'b str, u8, &'b str);
    let mut by: BTreeMap<Group<'a>, (&'a Bucket, StatsSum)> = BTreeMap::new();
    for b in buckets {
        // Client series are the caller's side of other services' requests.
        if b.key.is_total() || b.key.is_client() {
            continue;
        }
        let group = (
            b.tenant.as_str(),
            b.resolution,
            b.start_ms,
            b.key.service.as_str(),
            b.key.status_class,
            b.key.caller.as_str(),
        );
        by.entry(group)
            .or_insert_with(|| (b, StatsSum::default()))
            .1
            .add(&b.stats);
    }
    by.into_values()
        .map(|(first, sum)| Bucket {
            tenant: first.tenant.clone(),
            resolution: first.resolution,
            start_ms: first.start_ms,
            key: first.key.total(),
            stats: sum.finish(),
        })
        .collect()
}

/// `buckets` (route buckets) followed by their totals ([`totals_of`]);
/// total buckets already in `buckets` are replaced by recomputed ones.
pub fn with_totals(mut buckets: Vec<Bucket>) -> Vec<Bucket> {
    let totals = totals_of(&buckets);
    buckets.retain(|b| !b.key.is_total());
    buckets.extend(totals);
    buckets
}

/// Adds up many [`BucketStats`] quickly: sketch counts go into a dense
/// array over the range of bucket indices seen (a few KiB for latencies)
/// instead of a map insert per bucket per merge, so a query over thousands
/// of buckets costs one pass over their counts. The result equals merging
/// them one by one with [`BucketStats::merge`].
#[derive(Debug, Clone, Default)]
pub struct StatsSum {
    stats: BucketStats,
    zero: u64,
    sum: f64,
    /// Index of `dense[0]`.
    base: i32,
    dense: Vec<u64>,
    /// Reused buffer for [`StatsSum::add_encoded`].
    scratch: Vec<(i32, u64)>,
}

impl StatsSum {
    /// Grows the dense range to cover bucket index `i`.
    fn cover(&mut self, i: i32) {
        if self.dense.is_empty() {
            self.base = i;
            self.dense.push(0);
        } else if i < self.base {
            let mut grown = vec![0; (self.base - i) as usize];
            grown.extend_from_slice(&self.dense);
            self.dense = grown;
            self.base = i;
        } else if (i - self.base) as usize >= self.dense.len() {
            self.dense.resize((i - self.base) as usize + 1, 0);
        }
    }

    /// Adds one bucket's statistics.
    pub fn add(&mut self, s: &BucketStats) {
        self.add_counts(s);
        self.zero = self.zero.saturating_add(s.duration_ms.zero_count());
        self.sum += s.duration_ms.sum();
        for (i, c) in s.duration_ms.buckets() {
            self.add_bucket(i, c);
        }
    }

    /// Adds one stored bucket: the counts of `counts` (its sketch is
    /// ignored) and the sketch `encoded` in [`crate::codec`]'s form,
    /// decoded straight into the dense array without building a
    /// [`vitals::Sketch`] (a map insert per sketch bucket): what makes the
    /// routes table cheap. The result equals [`StatsSum::add`] of the
    /// decoded bucket; on a malformed sketch nothing is added.
    pub fn add_encoded(&mut self, counts: &BucketStats, encoded: &[u8]) -> Result<(), String> {
        let mut pairs = std::mem::take(&mut self.scratch);
        let parts = crate::codec::decode_sketch_parts(encoded, &mut pairs);
        let result = parts.and_then(|(zero, sum)| {
            let lo = pairs.iter().map(|p| p.0).min();
            let hi = pairs.iter().map(|p| p.0).max();
            if let (Some(lo), Some(hi)) = (lo, hi)
                && vitals::Sketch::from_buckets(0, 0.0, [(lo, 1), (hi, 1)]).is_none()
            {
                return Err("sketch index out of range".to_string());
            }
            self.add_counts(counts);
            self.zero = self.zero.saturating_add(zero);
            self.sum += sum;
            for &(i, c) in &pairs {
                if c > 0 {
                    self.add_bucket(i, c);
                }
            }
            Ok(())
        });
        self.scratch = pairs;
        result
    }

    fn add_bucket(&mut self, i: i32, c: u64) {
        self.cover(i);
        let slot = &mut self.dense[(i - self.base) as usize];
        *slot = slot.saturating_add(c);
    }

    fn add_counts(&mut self, s: &BucketStats) {
        let t = &mut self.stats;
        t.count = t.count.saturating_add(s.count);
        t.errors = t.errors.saturating_add(s.errors);
        t.satisfied = t.satisfied.saturating_add(s.satisfied);
        t.tolerating = t.tolerating.saturating_add(s.tolerating);
        t.last_seen_ms = t.last_seen_ms.max(s.last_seen_ms);
    }

    /// The total.
    pub fn finish(self) -> BucketStats {
        let buckets = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, &c)| (k as i32 + self.base, c));
        let duration_ms =
            vitals::Sketch::from_buckets(self.zero, self.sum, buckets).unwrap_or_default();
        BucketStats {
            duration_ms,
            ..self.stats
        }
    }
}

/// Adds route buckets up per (method, route); total series are skipped.
/// The reference [`crate::store::Store::route_sums`] back ends must equal.
pub fn sum_routes<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Vec<RouteSum> {
    let mut by: BTreeMap<(&str, &str), StatsSum> = BTreeMap::new();
    for b in buckets {
        if !b.key.is_total() {
            by.entry((&b.key.method, &b.key.route))
                .or_default()
                .add(&b.stats);
        }
    }
    by.into_iter()
        .map(|((method, route), sum)| RouteSum {
            method: method.into(),
            route: route.into(),
            stats: sum.finish(),
        })
        .collect()
}

/// Merges buckets by series key: what a coarser bucket over the same
/// series holds.
pub fn merge_by_key(buckets: impl IntoIterator<Item = Bucket>) -> BTreeMap<SeriesKey, BucketStats> {
    merge_keyed(
        buckets.into_iter().map(|b| (b.key, b.stats)),
        BucketStats::merge,
    )
}

/// Merges custom points by series key, oldest period first: what a
/// coarser point over the same series holds (last by time, min, max).
pub fn merge_custom_by_key(
    points: impl IntoIterator<Item = CustomPoint>,
) -> BTreeMap<CustomKey, CustomStats> {
    let mut points: Vec<CustomPoint> = points.into_iter().collect();
    // Ties in time resolve the same way whatever order the store returned.
    points.sort_by_key(|p| (p.start_ms, p.stats.last_ms));
    merge_keyed(
        points.into_iter().map(|p| (p.key, p.stats)),
        CustomStats::merge,
    )
}

/// Buckets merged into the `resolution` periods that hold them: one
/// bucket of `tenant` per (period, series), the merge of its parts. What
/// a rollup writes for a period, and what the hot tier answers for coarse
/// periods whose minutes are still in Redis.
pub fn roll_up(
    tenant: &str,
    resolution: Resolution,
    parts: impl IntoIterator<Item = Bucket>,
) -> Vec<Bucket> {
    merge_keyed(
        parts
            .into_iter()
            .map(|b| ((resolution.floor(b.start_ms), b.key), b.stats)),
        BucketStats::merge,
    )
    .into_iter()
    .map(|((start_ms, key), stats)| Bucket {
        tenant: tenant.to_string(),
        resolution,
        start_ms,
        key,
        stats,
    })
    .collect()
}

/// Custom points merged into the `resolution` periods that hold them, like
/// [`roll_up`]: within a period, oldest first (see [`merge_custom_by_key`]).
pub fn roll_up_custom(
    tenant: &str,
    resolution: Resolution,
    parts: impl IntoIterator<Item = CustomPoint>,
) -> Vec<CustomPoint> {
    let mut parts: Vec<CustomPoint> = parts.into_iter().collect();
    parts.sort_by_key(|p| (p.start_ms, p.stats.last_ms));
    merge_keyed(
        parts
            .into_iter()
            .map(|p| ((resolution.floor(p.start_ms), p.key), p.stats)),
        CustomStats::merge,
    )
    .into_iter()
    .map(|((start_ms, key), stats)| CustomPoint {
        tenant: tenant.to_string(),
        resolution,
        start_ms,
        key,
        stats,
    })
    .collect()
}

/// Folds `(key, stats)` pairs into one entry a key, in the given order:
/// the first of a key is kept as is, each later one merged into it.
pub fn merge_keyed<K: Ord, S>(
    items: impl IntoIterator<Item = (K, S)>,
    merge: impl Fn(&mut S, &S),
) -> BTreeMap<K, S> {
    let mut out: BTreeMap<K, S> = BTreeMap::new();
    for (key, stats) in items {
        match out.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut have) => merge(have.get_mut(), &stats),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(stats);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SeriesSelect;

    #[test]
    fn stats_sum_equals_merging_one_by_one() {
        let mut parts = Vec::new();
        for k in 0..5u64 {
            let mut sk = vitals::Sketch::new();
            for v in [0.0, 0.5 + k as f64, 3.0 * k as f64, 1e6, 1e-12] {
                sk.record(v);
            }
            parts.push(BucketStats {
                count: 5,
                errors: k,
                satisfied: 2,
                tolerating: 1,
                duration_ms: sk,
                last_seen_ms: k as i64,
            });
        }
        let mut merged = BucketStats::default();
        let mut sum = StatsSum::default();
        for p in &parts {
            merged.merge(p);
            sum.add(p);
        }
        assert_eq!(sum.finish(), merged);
        assert_eq!(StatsSum::default().finish(), BucketStats::default());
    }

    fn random_stats(seed: &mut u64, k: i64) -> BucketStats {
        let mut next = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut sk = vitals::Sketch::new();
        let n = (next() * 300.0) as u64;
        for _ in 0..n {
            // Zeros, sub-millisecond and multi-second values alike.
            let u = next();
            sk.record(if u < 0.05 {
                0.0
            } else {
                (u * 25.0 - 8.0).exp()
            });
        }
        BucketStats {
            count: n,
            errors: n / 3,
            satisfied: n / 2,
            tolerating: n / 5,
            duration_ms: sk,
            last_seen_ms: k * 7 % 11,
        }
    }

    #[test]
    fn decoding_into_the_sum_equals_decoding_then_merging() {
        let mut seed = 3;
        for round in 0..50 {
            let parts: Vec<BucketStats> = (0..round % 7 + 1)
                .map(|k| random_stats(&mut seed, k))
                .collect();
            let mut want = StatsSum::default();
            let mut got = StatsSum::default();
            for p in &parts {
                let blob = crate::codec::encode_sketch(&p.duration_ms);
                want.add(&crate::codec::decode_sketch(&blob).map_or_else(
                    |e| panic!("decode: {e}"),
                    |duration_ms| BucketStats {
                        duration_ms,
                        ..p.clone()
                    },
                ));
                let counts = BucketStats {
                    duration_ms: vitals::Sketch::new(),
                    ..p.clone()
                };
                assert_eq!(got.add_encoded(&counts, &blob), Ok(()));
            }
            assert_eq!(got.finish(), want.finish(), "round {round}");
        }
    }

    #[test]
    fn a_bad_blob_adds_nothing() {
        let mut seed = 5;
        let good = random_stats(&mut seed, 1);
        let mut sum = StatsSum::default();
        sum.add(&good);
        let before = sum.clone().finish();
        let blob = crate::codec::encode_sketch(&good.duration_ms);
        let out_of_range = [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1,
        ];
        for bad in [&blob[..blob.len() - 1], &out_of_range[..], b"\x07junk"] {
            assert!(sum.add_encoded(&good, bad).is_err());
            assert_eq!(sum.clone().finish(), before);
        }
    }

    #[test]
    fn totals_merge_routes_per_service_class_and_caller() {
        let mut seed = 9;
        let mut buckets = Vec::new();
        for (service, route, class, caller, start) in [
            ("a", "/x", 2u8, "", 0i64),
            ("a", "/y", 2, "", 0),
            ("a", "/y", 5, "", 0),
            ("a", "/y", 2, "web", 0),
            ("a", "/x", 2, "", 60_000),
            ("b", "/x", 2, "", 0),
        ] {
            buckets.push(Bucket {
                tenant: "t".into(),
                resolution: Resolution::Minute,
                start_ms: start,
                key: SeriesKey {
                    service: service.into(),
                    method: "GET".into(),
                    route: route.into(),
                    status_class: class,
                    caller: caller.into(),
                },
                stats: random_stats(&mut seed, start),
            });
        }
        let totals = totals_of(&buckets);
        assert_eq!(
            totals.len(),
            5,
            "only /x and /y of a, 2xx, no caller, minute 0 merge"
        );
        let first = &totals[0];
        assert_eq!(
            (first.start_ms, &first.key.service, first.key.status_class),
            (0, &"a".to_string(), 2)
        );
        assert!(first.key.is_total() && first.key.route.is_empty());
        let mut want = buckets[0].stats.clone();
        want.merge(&buckets[1].stats);
        assert_eq!(first.stats, want);
        // Totals in the input are ignored, so recomputing is stable.
        let again = with_totals(with_totals(buckets.clone()));
        assert_eq!(again.len(), buckets.len() + totals.len());
        assert_eq!(totals_of(&again), totals);
        assert!(SeriesSelect::Totals.includes(&first.key));
        assert!(!SeriesSelect::Routes.includes(&first.key));
        assert!(SeriesSelect::Routes.includes(&buckets[0].key));
    }

    #[test]
    fn rolling_up_merges_each_period_by_key() {
        let mut seed = 11;
        let mut parts = Vec::new();
        for (route, start) in [
            ("/a", 0i64),
            ("/a", 60_000),
            ("/b", 60_000),
            ("/a", 300_000),
        ] {
            parts.push(Bucket {
                tenant: "t".into(),
                resolution: Resolution::Minute,
                start_ms: start,
                key: SeriesKey {
                    service: "s".into(),
                    method: "GET".into(),
                    route: route.into(),
                    status_class: 2,
                    caller: String::new(),
                },
                stats: random_stats(&mut seed, start),
            });
        }
        let got = roll_up("t", Resolution::FiveMinutes, parts.clone());
        let starts: Vec<(UnixMs, &str)> = got
            .iter()
            .map(|b| (b.start_ms, b.key.route.as_str()))
            .collect();
        assert_eq!(starts, [(0, "/a"), (0, "/b"), (300_000, "/a")]);
        let first = merge_by_key(parts[..2].iter().cloned());
        assert_eq!(Some(&got[0].stats), first.values().next());
        assert!(got.iter().all(|b| b.resolution == Resolution::FiveMinutes));
    }
}
