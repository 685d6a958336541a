//! The Redis hot tier (`--cache redis://…`): a [`Store`] decorator that
//! keeps the last minutes of data in Redis, so several collectors behind a
//! load balancer accept and answer the same, and moves completed minutes
//! into the durable store in the background.
//!
//! How it stays exact:
//! - **Routing by minute.** Let `B` be the hot boundary (the current minute
//!   less the hot window, 15 minutes by default). A bucket of a minute
//!   `≥ B` is written to Redis; an older one (late data) too, but into a
//!   snapshot flushed to the store before `ingest` returns. `B` only grows,
//!   so every write of a minute `≥ B` went through Redis: reads take
//!   minutes `≥ B` from Redis alone and older ones from the store alone, so
//!   nothing is ever counted twice. (A flusher more than the window behind,
//!   say with the store down, leaves older minutes short in the store until
//!   it catches up; nothing is lost.)
//! - **One atomic script per ingest** (Lua): the batch-id check and record
//!   (with expiry), the merge into the query view of each hot minute and
//!   into the not-yet-flushed delta of each `(tenant, service, minute)`,
//!   the recent samples and the service's last-seen time. Custom points
//!   go the same way: `!c`-prefixed fields of the delta (so they are
//!   sealed and flushed with it) and a per-minute custom view, merged in
//!   the script (min, max, and the last value by its timestamp).
//! - **Flushing is idempotent.** A due delta is *sealed* atomically (renamed
//!   to a snapshot with a fresh random id, and listed as sealed; later
//!   writes start a new delta). The snapshot is written to the store as one
//!   ingest whose batch id is the snapshot id, and deleted only after. A
//!   crash after sealing leaves the snapshot listed, and any collector
//!   flushes it later; a crash after the store write makes the retry a
//!   duplicate in the store, so nothing is lost or counted twice.
//!
//! - **Route and total series apart.** A minute's query view is two
//!   hashes: route series and the per-service totals ingest adds, so a
//!   service-wide read ([`crate::model::SeriesSelect::Totals`]) fetches
//!   only the few total fields. Deltas and snapshots hold both, and reach
//!   the store as ordinary series. (Minutes written by a collector from
//!   before totals have none: during a rolling upgrade, service-wide views
//!   undercount those minutes.)
//!
//! Redis must be durable enough for "accepted" to mean "kept" (AOF with
//! `appendfsync everysec` or `always`). The hot tier reads those settings
//! at start and every flush pass, warns when they fall short, and reports
//! them as `vitals_collector_hot_durable`. Clocks of collectors sharing one
//! Redis should agree within seconds: a skew shifts `B` between them.
//!
//! - `mod.rs`: the configuration, [`HotTier`] (opening, the flusher) and
//!   its [`Store`] impl.
//! - `write.rs`: ingest through the script.
//! - `read.rs`: reads split at the hot boundary.
//! - `flush.rs`: sealing and flushing to the store.
//! - `script.rs`: the Lua scripts and their operations.
//! - `fields.rs`: hash fields back into buckets.
//! - `keys.rs`: key names and ids.
//! - `custom.rs`: custom points, the same ways.
//! - `metrics.rs`: the hot tier's own metrics.

mod custom;
mod fields;
mod flush;
mod keys;
mod metrics;
mod read;
mod script;
mod write;

use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::clock::now_ms;
use crate::model::{
    Admission, AlertEvent, AlertHistoryQuery, Bucket, BucketQuery, CustomPoint, CustomQuery,
    DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord, MemberSet, Resolution, Sample,
    ServiceRecord, StoredAlert, StoredRule, TraceSample, UnixMs,
};
use keys::{Keys, glob_escape};
use metrics::{HotTierCollector, HotTierMetrics};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;
/// Batch ids of flushed snapshots start with this.
pub const HOT_BATCH_PREFIX: &str = "vitals-hot-tier/";

/// How the hot tier behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct HotTierConfig {
    /// Prefix of every Redis key (`vitals:`), so several deployments or
    /// tests can share one Redis.
    pub prefix: String,
    /// How many recent minutes queries read from Redis (15 minutes).
    pub window_ms: i64,
    /// Pause between background flush passes; `None` runs no background
    /// job (call [`HotTier::flush_due`] yourself).
    pub flush_interval: Option<Duration>,
    /// A minute is flushed this long after it ends, so most of its data
    /// has arrived (5 s).
    pub flush_grace_ms: i64,
    /// A sealed snapshot older than this is some collector's interrupted
    /// flush, taken over by whoever flushes next (30 s).
    pub orphan_after_ms: i64,
    /// How long batch ids are remembered, by their received time (1 hour);
    /// a retry later than that counts again. `None`: until
    /// [`Store::drop_batch_ids_before`] (the retention job) forgets them.
    pub dedup_ms: Option<i64>,
    /// Recent samples kept per service (1000).
    pub recent_cap: usize,
}

impl Default for HotTierConfig {
    fn default() -> Self {
        HotTierConfig {
            prefix: "vitals:".into(),
            window_ms: 15 * MINUTE_MS,
            flush_interval: Some(Duration::from_secs(5)),
            flush_grace_ms: 5_000,
            orphan_after_ms: 30_000,
            dedup_ms: Some(3_600_000),
            recent_cap: 1000,
        }
    }
}

/// What one flush pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Deltas sealed into snapshots.
    pub sealed: usize,
    /// Snapshots written to the store (new or retried).
    pub flushed: usize,
}

/// A Redis error as a store error.
fn rerr(e: redis::RedisError) -> StoreError {
    StoreError::redis(e)
}

struct Inner {
    store: Arc<dyn Store>,
    conn: ConnectionManager,
    config: HotTierConfig,
    keys: Keys,
    ingest: redis::Script,
    seal: redis::Script,
    metrics: Arc<HotTierMetrics>,
}

/// A [`Store`] with a shared Redis hot tier in front of another store.
/// Cheap to share; dropping it stops its background flusher.
pub struct HotTier {
    inner: Arc<Inner>,
    flusher: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for HotTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotTier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Drop for HotTier {
    fn drop(&mut self) {
        if let Some(f) = &self.flusher {
            f.abort();
        }
    }
}

impl HotTier {
    /// Connects to Redis at `url` (`redis://host:port/db`) in front of
    /// `store`, and starts the background flusher (if configured).
    pub async fn open(
        url: &str,
        store: Arc<dyn Store>,
        config: HotTierConfig,
    ) -> StoreResult<HotTier> {
        if config.window_ms < MINUTE_MS || config.window_ms % MINUTE_MS != 0 {
            return Err(StoreError::InvalidUrl {
                url: url.into(),
                reason: format!(
                    "the hot window must be whole minutes, got {} ms",
                    config.window_ms
                ),
            });
        }
        let client = redis::Client::open(url).map_err(|e| StoreError::InvalidUrl {
            url: url.into(),
            reason: format!("not a Redis URL: {e}"),
        })?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(rerr)?;
        let keys = Keys {
            prefix: config.prefix.clone(),
        };
        let inner = Arc::new(Inner {
            store,
            conn,
            config,
            keys,
            ingest: redis::Script::new(script::INGEST_LUA),
            seal: redis::Script::new(script::SEAL_LUA),
            metrics: Arc::default(),
        });
        inner.check_durability().await;
        let flusher = inner.config.flush_interval.map(|every| {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = inner.flush_pass(now_ms()).await {
                        eprintln!("vitals collector: hot tier flush failed, retrying: {e}");
                    }
                }
            })
        });
        Ok(HotTier { inner, flusher })
    }

    /// The durable store behind the hot tier.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The first minute read from Redis at time `now`.
    pub fn boundary(&self, now: UnixMs) -> UnixMs {
        self.inner.boundary(now)
    }

    /// One flush pass at time `now`: forgets expired batch ids, seals
    /// every delta of a minute that ended at least the grace period ago
    /// and writes it to the store, and retries snapshots left by an
    /// interrupted flush. The background job runs this.
    pub async fn flush_due(&self, now: UnixMs) -> StoreResult<FlushReport> {
        self.inner.flush_pass(now).await
    }

    /// Removes every key under this hot tier's prefix (tests, teardown).
    pub async fn clear(&self) -> StoreResult<u64> {
        let mut conn = self.inner.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.inner.config.prefix));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(rerr)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(rerr)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Test hook: seals due deltas but writes nothing to the store, as if
    /// the collector died right after sealing. Returns the snapshot ids.
    #[cfg(feature = "testing")]
    pub async fn seal_due_then_crash(&self, now: UnixMs) -> StoreResult<Vec<String>> {
        self.inner.seal_due(now).await
    }

    /// Test hook: writes snapshot `id` to the store but leaves it in Redis,
    /// as if the collector died between the store write and the cleanup.
    #[cfg(feature = "testing")]
    pub async fn flush_then_crash(&self, id: &str) -> StoreResult<()> {
        self.inner.write_snapshot(id).await.map(|_| ())
    }
}

impl Inner {
    fn now(&self) -> UnixMs {
        now_ms()
    }

    fn boundary(&self, now: UnixMs) -> UnixMs {
        Resolution::Minute.floor(now) - self.config.window_ms
    }
}

impl Store for HotTier {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        Box::pin(self.inner.ingest(write))
    }

    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        Box::pin(self.inner.read_buckets(query))
    }

    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        Box::pin(self.inner.read_custom(query))
    }

    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.write_custom_rollup(period, points)
    }

    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        self.inner.store.dirty_periods(resolution, before_ms, limit)
    }

    fn dirty_starts(
        &self,
        tenant: String,
        resolution: Resolution,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<Vec<UnixMs>>> {
        self.inner
            .store
            .dirty_starts(tenant, resolution, start_ms, end_ms)
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.write_rollup(period, buckets)
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.store.drop_buckets_before(resolution, before_ms)
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.store.drop_samples_before(before_ms)
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let mut conn = self.inner.conn.clone();
            let hot: u64 = redis::cmd("ZREMRANGEBYSCORE")
                .arg(self.inner.keys.dedup())
                .arg("-inf")
                .arg(format!("({before_ms}"))
                .query_async(&mut conn)
                .await
                .map_err(rerr)?;
            let cold = self.inner.store.drop_batch_ids_before(before_ms).await?;
            Ok(hot + cold)
        })
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        Box::pin(self.inner.services(tenant))
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        Box::pin(self.inner.recent_samples(tenant, service, limit))
    }

    fn trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TraceSample>>> {
        Box::pin(self.inner.trace_samples(tenant, trace_id, limit))
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.create_key(key)
    }

    fn admit(
        &self,
        set: MemberSet,
        seed: Vec<String>,
        members: Vec<String>,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Admission>>> {
        // The durable store keeps the shared sets (PostgreSQL); an
        // embedded one keeps none, and each collector counts alone.
        self.inner.store.admit(set, seed, members, max)
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        self.inner.store.key_by_hash(hash)
    }

    fn list_keys(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.inner.store.list_keys(tenant)
    }

    fn revoke_keys(&self, hash_prefix: String) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.inner.store.revoke_keys(hash_prefix)
    }

    fn register_metrics(&self, registry: &vitals::Registry) {
        registry.register_collector(HotTierCollector(self.inner.metrics.clone()));
        self.inner.store.register_metrics(registry);
    }

    // Alerting lives in the store behind the hot tier.

    fn alert_rules(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<StoredRule>>> {
        self.inner.store.alert_rules(tenant)
    }

    fn put_alert_rule(&self, rule: StoredRule, replace: bool) -> BoxFuture<'_, StoreResult<bool>> {
        self.inner.store.put_alert_rule(rule, replace)
    }

    fn delete_alert_rule(&self, tenant: String, name: String) -> BoxFuture<'_, StoreResult<bool>> {
        self.inner.store.delete_alert_rule(tenant, name)
    }

    fn alert_states(&self) -> BoxFuture<'_, StoreResult<Vec<StoredAlert>>> {
        self.inner.store.alert_states()
    }

    fn save_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.save_alerts(states, removed, events)
    }

    fn alert_history(
        &self,
        query: AlertHistoryQuery,
    ) -> BoxFuture<'_, StoreResult<Vec<AlertEvent>>> {
        self.inner.store.alert_history(query)
    }

    fn drop_alert_history_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.store.drop_alert_history_before(before_ms)
    }

    fn tenants(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.inner.store.tenants()
    }
}
