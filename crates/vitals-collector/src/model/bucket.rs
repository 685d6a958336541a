//! Request series: what identifies one ([`SeriesKey`]), what one bucket
//! knows about it ([`BucketStats`], merged with [`BucketStats::merge`]),
//! and the queries that read buckets.

use super::period::{Resolution, UnixMs};
use serde::{Deserialize, Serialize};
use vitals::Sketch;

/// The route every series beyond a service's route limit is folded into.
pub const OVERFLOW_ROUTE: &str = "__overflow__";

/// The method of a *client* series: the caller's side of its outbound
/// calls (`IngestBatch::clients`), stored as a route series of the calling
/// service whose route is the peer it called. Ingest refuses it as a
/// route aggregate's method, leaves client series out of the per-service
/// totals, and the routes view leaves them out; `/v1/connections` reads
/// them for the caller-observed side of each edge.
pub const CLIENT_METHOD: &str = "__client__";

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

    /// Whether this is a client series (see [`CLIENT_METHOD`]).
    pub fn is_client(&self) -> bool {
        self.method == CLIENT_METHOD
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
/// see [`with_totals`](super::with_totals)). Views over whole services read the few total rows
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

#[cfg(test)]
mod tests {
    use super::*;

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
