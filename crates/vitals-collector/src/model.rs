//! The plain data the collector stores and reads: series keys, bucket
//! statistics, sampled requests and API keys. Back ends persist these; the
//! ingest, rollup and query layers build and read them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vitals::Sketch;

/// Milliseconds since the Unix epoch.
pub type UnixMs = i64;

/// The route every series beyond a service's route limit is folded into.
pub const OVERFLOW_ROUTE: &str = "__overflow__";

/// How long one bucket lasts: data is ingested per minute and rolled up to
/// five minutes and one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// 1-minute buckets, written by ingest.
    Minute,
    /// 5-minute buckets, rolled up from minutes.
    FiveMinutes,
    /// 1-hour buckets, rolled up from five-minute buckets.
    Hour,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [
        Resolution::Minute,
        Resolution::FiveMinutes,
        Resolution::Hour,
    ];

    /// Length of one bucket in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::FiveMinutes => 300_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// Start of the bucket that holds `t`.
    pub const fn floor(self, t: UnixMs) -> UnixMs {
        t.div_euclid(self.millis()) * self.millis()
    }

    /// The resolution this one is rolled up from, if any.
    pub const fn source(self) -> Option<Resolution> {
        match self {
            Resolution::Minute => None,
            Resolution::FiveMinutes => Some(Resolution::Minute),
            Resolution::Hour => Some(Resolution::FiveMinutes),
        }
    }

    /// The resolution this one rolls up into, if any.
    pub const fn target(self) -> Option<Resolution> {
        match self {
            Resolution::Minute => Some(Resolution::FiveMinutes),
            Resolution::FiveMinutes => Some(Resolution::Hour),
            Resolution::Hour => None,
        }
    }

    /// A small integer for storage (1, 5, 60: the bucket length in minutes).
    pub const fn code(self) -> i64 {
        match self {
            Resolution::Minute => 1,
            Resolution::FiveMinutes => 5,
            Resolution::Hour => 60,
        }
    }

    /// The resolution stored under [`Resolution::code`].
    pub const fn from_code(code: i64) -> Option<Resolution> {
        match code {
            1 => Some(Resolution::Minute),
            5 => Some(Resolution::FiveMinutes),
            60 => Some(Resolution::Hour),
            _ => None,
        }
    }

    /// A short name: `1m`, `5m`, `1h`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::Hour => "1h",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies one series inside a tenant: the callee service, the
/// request's method, route template and status class, and the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The service that served the requests.
    pub service: String,
    /// HTTP method.
    pub method: String,
    /// Route template, or [`OVERFLOW_ROUTE`].
    pub route: String,
    /// 1 to 5 (2 means 2xx).
    pub status_class: u8,
    /// The calling service; empty when unknown.
    pub caller: String,
}

impl SeriesKey {
    /// Whether this is a per-service total series (empty method and
    /// route, which ingest never accepts from a sender) rather than a
    /// route series.
    pub fn is_total(&self) -> bool {
        // The method alone decides, as the stores' SQL (`method = ''`) does.
        self.method.is_empty()
    }

    /// The key of the total series this route series adds into: same
    /// service, status class and caller, empty method and route.
    pub fn total(&self) -> SeriesKey {
        SeriesKey {
            service: self.service.clone(),
            method: String::new(),
            route: String::new(),
            status_class: self.status_class,
            caller: self.caller.clone(),
        }
    }
}

/// Which series a [`BucketQuery`] reads.
///
/// Every minute ingest writes per route, it also writes one *total*
/// series per service, status class and caller (method and route empty,
/// see [`with_totals`]). Views over whole services read the few total rows
/// instead of every route's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SeriesSelect {
    /// Route series only (method and route set): the routes table.
    Routes,
    /// Per-service total series only: overview, service stats and
    /// timeseries, caller → callee edges.
    Totals,
    /// Both: rollups, which carry every series.
    #[default]
    All,
}

impl SeriesSelect {
    /// Whether a series with `key` belongs to the selection.
    pub fn includes(self, key: &SeriesKey) -> bool {
        match self {
            SeriesSelect::Routes => !key.is_total(),
            SeriesSelect::Totals => key.is_total(),
            SeriesSelect::All => true,
        }
    }
}

/// The per-service total buckets of a set of route buckets: for every
/// (tenant, resolution, start, service, status class, caller), the merge
/// of its route buckets, keyed by [`SeriesKey::total`]. Total buckets in
/// the input are ignored, so the result depends on route rows alone.
///
/// The one place totals are computed: ingest, the migrations' backfill,
/// the hot tier's flush and the benches all call it.
pub fn totals_of<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Vec<Bucket> {
    type Group<'b> = (&'b str, Resolution, UnixMs, &'b str, u8, &'b str);
    let mut by: std::collections::BTreeMap<Group<'a>, (&'a Bucket, StatsSum)> =
        std::collections::BTreeMap::new();
    for b in buckets {
        if b.key.is_total() {
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

/// What one bucket knows about one series. Counts are exact; durations are
/// a mergeable sketch in milliseconds, so percentiles of a longer window
/// come from the merged sketch, never from averaged percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Requests.
    pub count: u64,
    /// Of those, errors (5xx and handler failures).
    pub errors: u64,
    /// Of those, at most the Apdex threshold T.
    pub satisfied: u64,
    /// Of those, above T and at most 4T.
    pub tolerating: u64,
    /// Durations in milliseconds.
    pub duration_ms: Sketch,
    /// The latest time data for this series arrived (ms since the epoch).
    pub last_seen_ms: UnixMs,
}

impl BucketStats {
    /// Adds `other` into `self`. Counts saturate instead of wrapping, so a
    /// hostile count can never turn a total small again.
    pub fn merge(&mut self, other: &BucketStats) {
        self.count = self.count.saturating_add(other.count);
        self.errors = self.errors.saturating_add(other.errors);
        self.satisfied = self.satisfied.saturating_add(other.satisfied);
        self.tolerating = self.tolerating.saturating_add(other.tolerating);
        self.duration_ms.merge(&other.duration_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
    }

    /// Apdex score: `(satisfied + tolerating / 2) / count`, `None` without requests.
    pub fn apdex(&self) -> Option<f64> {
        (self.count > 0)
            .then(|| (self.satisfied as f64 + self.tolerating as f64 / 2.0) / self.count as f64)
    }
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

/// One stored bucket: a series' statistics over one period at one resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Whose data this is.
    pub tenant: String,
    /// Bucket length.
    pub resolution: Resolution,
    /// Start of the period (a multiple of the resolution), ms since the epoch.
    pub start_ms: UnixMs,
    /// Which series.
    pub key: SeriesKey,
    /// The statistics.
    pub stats: BucketStats,
}

/// One sampled request, kept for the "recent requests" view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the request started, ms since the epoch.
    pub timestamp_ms: UnixMs,
    /// Service instance that served it (may be empty).
    pub instance: String,
    /// HTTP method.
    pub method: String,
    /// Raw path (may be empty).
    pub path: String,
    /// Route template.
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Calling service, if known.
    pub caller: Option<String>,
    /// W3C trace id, if known.
    pub trace_id: Option<String>,
}

/// Everything one accepted ingest request writes, atomically: the
/// per-minute aggregates, the sampled requests, and the batch id that makes
/// a retry a no-op.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestWrite {
    /// Whose data this is.
    pub tenant: String,
    /// The service the batch is about.
    pub service: String,
    /// The batch id; `None` when the sender gave none (no dedup then).
    pub batch_id: Option<String>,
    /// When the collector received the batch (ms since the epoch).
    pub received_ms: UnixMs,
    /// Minute buckets to merge into what is stored (resolution is always
    /// [`Resolution::Minute`], tenant always `tenant`).
    pub buckets: Vec<Bucket>,
    /// Sampled requests, all of `service`.
    pub samples: Vec<Sample>,
    /// Custom metric points to merge into what is stored (resolution
    /// always [`Resolution::Minute`], tenant `tenant`, service `service`).
    pub custom: Vec<CustomPoint>,
}

/// Counter or gauge: the kind of a custom metric (the wire type).
pub use vitals::wire::CustomKind;

/// What identifies one custom series inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CustomKey {
    /// The service that pushed it.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Label pairs in canonical form: a JSON object with sorted keys
    /// (see [`canonical_labels`]), so equal label sets compare equal.
    pub labels: String,
    /// The instance that pushed it (may be empty).
    pub instance: String,
}

/// The canonical form of a label set: compact JSON, keys sorted.
pub fn canonical_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    // A BTreeMap serializes in key order; serializing strings cannot fail.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

/// What one period knows about one custom series: the last value (by
/// time), and the smallest and largest values seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CustomStats {
    /// Counter or gauge (of the last value).
    pub kind: CustomKind,
    /// The latest value.
    pub last: f64,
    /// When the latest value was taken (ms since the epoch).
    pub last_ms: UnixMs,
    /// Smallest value in the period.
    pub min: f64,
    /// Largest value in the period.
    pub max: f64,
}

impl CustomStats {
    /// One value taken at `at_ms`.
    pub fn of(kind: CustomKind, value: f64, at_ms: UnixMs) -> Self {
        CustomStats {
            kind,
            last: value,
            last_ms: at_ms,
            min: value,
            max: value,
        }
    }

    /// Adds `other` into `self`: the later value (ties go to `other`, the
    /// newer write) becomes `last`; min and max widen.
    pub fn merge(&mut self, other: &CustomStats) {
        if other.last_ms >= self.last_ms {
            self.kind = other.kind;
            self.last = other.last;
            self.last_ms = other.last_ms;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One stored custom point: a custom series over one period at one
/// resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomPoint {
    /// Whose data this is.
    pub tenant: String,
    /// Period length.
    pub resolution: Resolution,
    /// Start of the period (a multiple of the resolution), ms since the epoch.
    pub start_ms: UnixMs,
    /// Which series.
    pub key: CustomKey,
    /// The values.
    pub stats: CustomStats,
}

/// Which custom points a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomQuery {
    /// Whose data (a query never crosses tenants).
    pub tenant: String,
    /// One service, or every service of the tenant.
    pub service: Option<String>,
    /// One metric name, or every one.
    pub name: Option<String>,
    /// The resolution to read.
    pub resolution: Resolution,
    /// Points with `start_ms >= start_ms` …
    pub start_ms: UnixMs,
    /// … and `start_ms < end_ms`.
    pub end_ms: UnixMs,
}

impl CustomQuery {
    /// Whether `p` is one of the points this query asks for (for back
    /// ends that filter in Rust).
    pub fn matches(&self, p: &CustomPoint) -> bool {
        p.start_ms >= self.start_ms
            && p.start_ms < self.end_ms
            && self.service.as_ref().is_none_or(|s| *s == p.key.service)
            && self.name.as_ref().is_none_or(|n| *n == p.key.name)
    }
}

/// What happened to an ingest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored durably.
    Stored,
    /// The batch id was seen before for this tenant and service: nothing written.
    Duplicate,
}

/// A period at one resolution whose source data changed since it was last
/// rolled up. `generation` changes every time the period is marked again,
/// so a rollup that raced a newer write does not clear the mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirtyPeriod {
    /// The resolution to (re)compute.
    pub resolution: Resolution,
    /// Whose data.
    pub tenant: String,
    /// Start of the period at `resolution`.
    pub start_ms: UnixMs,
    /// Marker version, opaque to callers.
    pub generation: i64,
}

/// Which buckets a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketQuery {
    /// Whose data (a query never crosses tenants).
    pub tenant: String,
    /// One service, or every service of the tenant.
    pub service: Option<String>,
    /// The resolution to read.
    pub resolution: Resolution,
    /// Buckets with `start_ms >= start_ms` …
    pub start_ms: UnixMs,
    /// … and `start_ms < end_ms`.
    pub end_ms: UnixMs,
    /// Route series, per-service totals, or both.
    pub series: SeriesSelect,
}

/// One route's buckets of a window added up (what the routes table shows),
/// from [`crate::store::Store::route_sums`].
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSum {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Every status class and caller of the route, merged.
    pub stats: BucketStats,
}

/// Adds route buckets up per (method, route); total series are skipped.
/// The reference [`crate::store::Store::route_sums`] back ends must equal.
pub fn sum_routes<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Vec<RouteSum> {
    let mut by: std::collections::BTreeMap<(&str, &str), StatsSum> =
        std::collections::BTreeMap::new();
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

/// A service as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Service name.
    pub service: String,
    /// When data for it last arrived (ms since the epoch).
    pub last_seen_ms: UnixMs,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May post to `/v1/ingest` and `/v1/requests`.
    Ingest,
    /// May read the query API.
    Read,
}

impl Role {
    /// `ingest` or `read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            other => Err(format!("unknown role {other:?}: expected ingest or read")),
        }
    }
}

/// A stored API key: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Lowercase hex SHA-256 of the secret key.
    pub hash: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// What the key may do.
    pub role: Role,
    /// When the key was created (ms since the epoch).
    pub created_ms: UnixMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_floor_and_chain() {
        assert_eq!(Resolution::FiveMinutes.floor(299_999), 0);
        assert_eq!(Resolution::FiveMinutes.floor(300_000), 300_000);
        assert_eq!(Resolution::Minute.floor(-1), -60_000);
        assert_eq!(Resolution::Hour.source(), Some(Resolution::FiveMinutes));
        assert_eq!(Resolution::Minute.target(), Some(Resolution::FiveMinutes));
        for r in Resolution::ALL {
            assert_eq!(Resolution::from_code(r.code()), Some(r));
        }
    }

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
    fn custom_merge_keeps_the_latest_and_widens() {
        let mut a = CustomStats::of(CustomKind::Gauge, 5.0, 100);
        a.merge(&CustomStats::of(CustomKind::Gauge, 9.0, 50));
        assert_eq!((a.last, a.last_ms, a.min, a.max), (5.0, 100, 5.0, 9.0));
        a.merge(&CustomStats::of(CustomKind::Gauge, -1.0, 100));
        assert_eq!((a.last, a.last_ms, a.min, a.max), (-1.0, 100, -1.0, 9.0));
        let labels: std::collections::BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "\"".into())].into();
        assert_eq!(canonical_labels(&labels), r#"{"a":"\"","b":"2"}"#);
    }

    #[test]
    fn merge_saturates() {
        let mut a = BucketStats {
            count: u64::MAX - 1,
            ..Default::default()
        };
        a.merge(&BucketStats {
            count: 5,
            last_seen_ms: 9,
            ..Default::default()
        });
        assert_eq!(a.count, u64::MAX);
        assert_eq!(a.last_seen_ms, 9);
    }
}
