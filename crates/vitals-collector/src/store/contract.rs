//! The [`Store`] trait: what every back end does, and the contract the
//! shared suite checks. Its own file, below the back ends that implement
//! it, so `mod.rs` only declares and re-exports.

use super::error::StoreResult;
use crate::model::{
    Admission, AlertEvent, AlertHistoryQuery, Bucket, BucketQuery, CustomPoint, CustomQuery,
    DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord, MemberSet, Resolution, RouteSum, Sample,
    SeriesSelect, ServiceRecord, StoredAlert, StoredRule, TraceSample, UnixMs, sum_routes,
};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what [`Store`] methods return, so the trait
/// can be used as `Arc<dyn Store>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the collector keeps its data. Implementations must be safe to
/// share between tasks and must never block the async runtime (run
/// blocking drivers on `spawn_blocking` or a dedicated thread).
///
/// Contract, checked by `testing::run_store_suite`:
/// - [`Store::ingest`] is atomic and durable when it returns `Ok`: either
///   every bucket, sample and the batch id are stored, or none is. A batch
///   id already stored for the same tenant and service returns
///   [`IngestOutcome::Duplicate`] and writes nothing. Each written minute
///   bucket is *merged* (counts added, sketches merged) into any stored one
///   with the same key, and marks its five-minute period dirty.
/// - Custom points of an ingest are part of it (stored atomically with it,
///   skipped with a duplicate). Each is merged into any stored point with
///   the same key ([`crate::model::CustomStats::merge`]: the later value
///   is `last`, min and max widen) and marks its five-minute period dirty
///   like a bucket does.
/// - [`Store::write_rollup`] *replaces* the target period's buckets,
///   marks the next coarser period dirty, and clears the dirty mark only if
///   its generation is unchanged. [`Store::write_custom_rollup`] replaces
///   the period's custom points and touches no mark: the rollup job calls
///   it first, so a failure in between leaves the period dirty and the
///   next pass redoes both.
/// - [`Store::drop_buckets_before`] drops custom points of that resolution
///   with the buckets (one retention per resolution).
/// - [`Store::dirty_starts`] lists exactly the tenant's periods whose
///   stored rollup may lack data: the reads in [`super::fresh`] put the
///   finer data in their place, so every window sees every acknowledged
///   write at once.
/// - Reads never return another tenant's data.
pub trait Store: Send + Sync + 'static {
    /// Durably stores one ingest write (see the trait docs).
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>>;

    /// Buckets matching `query`, in no particular order.
    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>>;

    /// Custom points matching `query`, in no particular order.
    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>>;

    /// Replaces the custom points of `period` (its tenant, resolution and
    /// start) with `points`; dirty marks are left alone (see the trait docs).
    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// The route series matching `query` (its `series` is ignored) added
    /// up per (method, route), in no particular order; equal to
    /// [`crate::model::sum_routes`] of those buckets. Back ends may sum
    /// stored sketches without decoding them into [`vitals::Sketch`]s.
    fn route_sums(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<RouteSum>>> {
        Box::pin(async move {
            let buckets = self
                .read_buckets(BucketQuery {
                    series: SeriesSelect::Routes,
                    ..query
                })
                .await?;
            Ok(sum_routes(&buckets))
        })
    }

    /// Up to `limit` periods at `resolution` (five-minute or hour) marked
    /// dirty whose start is before `before_ms`, oldest first.
    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>>;

    /// Starts of `tenant`'s periods at `resolution` (five-minute or hour)
    /// in `[start_ms, end_ms)` marked dirty, ascending: the periods whose
    /// stored rollup may not hold every write yet. The default filters
    /// [`Store::dirty_periods`]; back ends answer from an index.
    fn dirty_starts(
        &self,
        tenant: String,
        resolution: Resolution,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<Vec<UnixMs>>> {
        Box::pin(async move {
            let mut starts: Vec<UnixMs> = self
                .dirty_periods(resolution, end_ms, usize::MAX)
                .await?
                .into_iter()
                .filter(|p| p.tenant == tenant && p.start_ms >= start_ms)
                .map(|p| p.start_ms)
                .collect();
            starts.sort_unstable();
            Ok(starts)
        })
    }

    /// Replaces the buckets of `period` with `buckets` (all of the period's
    /// tenant, resolution and start), marks the next coarser period dirty,
    /// and clears `period`'s mark if its generation is unchanged.
    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Deletes buckets and custom points at `resolution` that start before
    /// `before_ms`; returns how many were removed (back ends that drop whole partitions
    /// may return an estimate).
    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>>;

    /// Deletes samples older than `before_ms`; returns how many were removed.
    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>>;

    /// Forgets batch ids received before `before_ms` (a retry after that
    /// would count again, so keep them at least as long as ingest accepts
    /// a batch's timestamps); returns how many were removed.
    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>>;

    /// The tenant's services with the time data last arrived for each.
    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>>;

    /// The newest `limit` samples of one service, newest first.
    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>>;

    /// Up to `limit` samples of any of `tenant`'s services carrying
    /// `trace_id`, oldest first: one request journey. The default reads
    /// each service's recent samples; back ends answer from an index.
    fn trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TraceSample>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for s in self.services(tenant.clone()).await? {
                for sample in self
                    .recent_samples(tenant.clone(), s.service.clone(), usize::MAX)
                    .await?
                {
                    if sample.trace_id.as_deref() == Some(trace_id.as_str()) {
                        out.push(TraceSample {
                            service: s.service.clone(),
                            sample,
                        });
                    }
                }
            }
            sort_journey(&mut out);
            out.truncate(limit);
            Ok(out)
        })
    }

    /// Stores a new key. A key whose hash exists already is
    /// [`StoreError::DuplicateKey`](super::StoreError::DuplicateKey).
    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// The key with this hash, if any.
    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>>;

    /// Every stored key (of one tenant, or of all), oldest first: what
    /// `vitals collector keys list` shows. Only hashes are stored, so no
    /// secret can be listed.
    fn list_keys(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>>;

    /// Deletes the keys whose hash starts with `hash_prefix` (at least
    /// [`crate::auth::MIN_KEY_ID_LEN`] hex digits) and returns them. The
    /// caller refuses a prefix that names more than one key before
    /// calling this; a running collector stops accepting a revoked key
    /// within [`crate::auth::KEY_CACHE_TTL`].
    fn revoke_keys(&self, hash_prefix: String) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>>;

    /// Admits `members` into the bounded, shared `set` (a tenant's
    /// services, a service's routes) while it has fewer than `max`
    /// members, atomically across every collector on this store. `seed`
    /// fills the set first when it has no member yet (what the store held
    /// before sets were kept: a collector passes the services or recent
    /// routes it read). `Ok(None)` means the back end keeps no shared sets
    /// (SQLite: one process), and the collector counts in its own memory,
    /// which is the default.
    fn admit(
        &self,
        set: MemberSet,
        seed: Vec<String>,
        members: Vec<String>,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Admission>>> {
        let _ = (set, seed, members, max);
        Box::pin(async { Ok(None) })
    }

    /// Adds the back end's own metrics (if it has any) to the collector's
    /// registry, served at `GET /metrics`; called once per collector built
    /// over this store. The default has none. The Redis hot tier reports
    /// its flushing here.
    fn register_metrics(&self, registry: &vitals::Registry) {
        let _ = registry;
    }

    // Alerting (see `crate::alerting`): rules written over the API, the
    // state of each alert, and the history of state changes.

    /// The alert rules written over the API, of one tenant or (`None`) of
    /// every tenant, in no particular order.
    fn alert_rules(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<StoredRule>>>;

    /// Stores a rule. With `replace` false it must be new (`Ok(false)`, and
    /// nothing written, when the tenant has a rule of that name); with
    /// `replace` true it must exist (`Ok(false)` when it does not).
    fn put_alert_rule(&self, rule: StoredRule, replace: bool) -> BoxFuture<'_, StoreResult<bool>>;

    /// Deletes a rule and its alerts' states; `Ok(false)` when there was
    /// no such rule. Its history stays.
    fn delete_alert_rule(&self, tenant: String, name: String) -> BoxFuture<'_, StoreResult<bool>>;

    /// Every stored alert state, of every tenant.
    fn alert_states(&self) -> BoxFuture<'_, StoreResult<Vec<StoredAlert>>>;

    /// In one transaction: upserts `states` (by tenant, rule and service),
    /// deletes the states keyed in `removed`, and appends `events` to the
    /// history. Either all of it is stored or none.
    fn save_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// History entries matching `query`, newest first.
    fn alert_history(
        &self,
        query: AlertHistoryQuery,
    ) -> BoxFuture<'_, StoreResult<Vec<AlertEvent>>>;

    /// Deletes history entries older than `before_ms`; returns how many.
    fn drop_alert_history_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>>;

    /// Every tenant with at least one service, sorted (the built-in health
    /// rule watches each one's services).
    fn tenants(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}

/// Puts a journey in order: oldest first, then by service, so equal
/// timestamps come out the same way from every back end.
pub fn sort_journey(samples: &mut [TraceSample]) {
    samples.sort_by(|a, b| {
        (a.sample.timestamp_ms, &a.service)
            .cmp(&(b.sample.timestamp_ms, &b.service))
            .then_with(|| a.sample.duration_ms.total_cmp(&b.sample.duration_ms))
    });
}
