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
        let t = &mut self.stats;
        t.count = t.count.saturating_add(s.count);
        t.errors = t.errors.saturating_add(s.errors);
        t.satisfied = t.satisfied.saturating_add(s.satisfied);
        t.tolerating = t.tolerating.saturating_add(s.tolerating);
        t.last_seen_ms = t.last_seen_ms.max(s.last_seen_ms);
        self.zero = self.zero.saturating_add(s.duration_ms.zero_count());
        self.sum += s.duration_ms.sum();
        for (i, c) in s.duration_ms.buckets() {
            self.cover(i);
            let slot = &mut self.dense[(i - self.base) as usize];
            *slot = slot.saturating_add(c);
        }
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
