//! The PostgreSQL back end (`postgres://…`), on tokio-postgres with a
//! deadpool connection pool.
//!
//! - **Migrations** are versioned in a `schema_migrations` table and run at
//!   open inside one transaction holding an advisory lock, so two
//!   collectors starting at once migrate once.
//! - **Partitions**: buckets live in one table per resolution
//!   (`buckets_1m`, `buckets_5m`, `buckets_1h`) and samples in `samples`,
//!   each range-partitioned **by day** on the period start (or sample
//!   time). A partition is created when a write first needs it (late or
//!   early data included) and a few days ahead; retention **drops whole
//!   partitions**, never deletes bucket rows in bulk.
//! - **Writes** are one transaction per ingest: the batch id insert
//!   (`ON CONFLICT DO NOTHING`, so a retry is a no-op atomically with the
//!   data), then buckets merged with `SELECT … FOR UPDATE` and written with
//!   multi-row `UNNEST` statements, samples and the service record. Their
//!   statements are prepared once per pooled connection (deadpool's
//!   statement cache), so each costs one round trip, not two.
//!
//! Series are keyed by a SHA-256 of their labels (`series_id`), so long
//! labels never hit the btree index-row size limit.
//!
//! - `mod.rs`: connecting and migrating, and the [`Store`] impl, each
//!   method a call into one of the files below.
//! - `pool.rs`: the store value (its connection pool and known partitions).
//! - `schema.rs`: migrations and the totals backfill.
//! - `partitions.rs`: day partitions, created ahead and dropped by retention.
//! - `rows.rs`: rows to and from the model (series ids, counts, sketch
//!   blobs, `UNNEST` columns).
//! - `write.rs`: ingest, rollup replacements, keys; retries.
//! - `read.rs`: buckets, dirty periods, services, samples, keys.
//! - `custom.rs`: the custom points tables.
//! - `admission.rs`: the bounded sets (services per tenant, routes per
//!   service) every collector on the database shares.
//! - `alerts.rs`: the alerting tables (rules, states, history).
//! - `failure.rs`: driver errors, and which ones are worth a retry.

mod admission;
mod alerts;
mod custom;
mod failure;
mod partitions;
mod pool;
mod read;
mod rows;
mod schema;
mod write;

use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::clock::now_ms;
use crate::model::{
    Admission, AlertEvent, AlertHistoryQuery, Bucket, BucketQuery, CustomPoint, CustomQuery,
    DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord, MemberSet, Resolution, Sample,
    ServiceRecord, StoredAlert, StoredRule, TraceSample, UnixMs,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
pub use pool::PostgresStore;
use schema::MIGRATIONS;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::NoTls;

/// Connections kept open per store.
const POOL_SIZE: usize = 8;

impl PostgresStore {
    /// The schema version this build migrates to (how many migrations it has).
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Connects to the database a `postgres://` URL names (libpq URL
    /// syntax, e.g. `postgres://user:pw@host:5432/db?options=-csearch_path%3Dvitals`)
    /// and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::InvalidUrl {
            url: super::redact_password(url),
            reason: format!("not a PostgreSQL connection URL: {e}"),
        })?;
        Self::connect(config).await
    }

    /// Connects with an explicit configuration (for a `search_path` set
    /// through [`tokio_postgres::Config::options`], say) and migrates.
    pub async fn connect(config: tokio_postgres::Config) -> StoreResult<Self> {
        Self::connect_migrated(config, MIGRATIONS.len()).await
    }

    /// Test hook (feature `testing`): opens the database a URL names,
    /// migrated only as far as a collector from before per-service total
    /// series did, so a test can write data the old way and check the
    /// backfill when it reopens.
    #[cfg(feature = "testing")]
    pub async fn open_before_totals(url: &str) -> StoreResult<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::InvalidUrl {
            url: super::redact_password(url),
            reason: format!("not a PostgreSQL connection URL: {e}"),
        })?;
        Self::connect_migrated(config, schema::before_totals()).await
    }

    /// Connects and runs the first `migrations` migrations not run yet.
    async fn connect_migrated(
        mut config: tokio_postgres::Config,
        migrations: usize,
    ) -> StoreResult<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| {
                StoreError::postgres_client(
                    format!("the connection pool cannot be built: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        let store = PostgresStore {
            pool,
            partitions: Mutex::new(HashSet::new()),
        };
        store.migrate(migrations).await?;
        store.create_ahead(now_ms()).await?;
        Ok(store)
    }
}

/// Every method is one call into `read.rs`, `write.rs`, `partitions.rs`
/// or `custom.rs`.
impl Store for PostgresStore {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        Box::pin(self.write_batch(write))
    }

    fn read_buckets(&self, q: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        Box::pin(self.select_buckets(q))
    }

    fn read_custom(&self, q: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        Box::pin(self.select_custom(q))
    }

    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.replace_custom_period(period, points))
    }

    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        Box::pin(self.select_dirty_periods(resolution, before_ms, limit))
    }

    fn dirty_starts(
        &self,
        tenant: String,
        resolution: Resolution,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<Vec<UnixMs>>> {
        Box::pin(self.select_dirty_starts(tenant, resolution, start_ms, end_ms))
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.replace_period(period, buckets))
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.drop_bucket_partitions_before(resolution, before_ms))
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.drop_partitions_before("samples", before_ms))
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.delete_batch_ids_before(before_ms))
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        Box::pin(self.select_services(tenant))
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        Box::pin(self.select_recent_samples(tenant, service, limit))
    }

    fn trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TraceSample>>> {
        Box::pin(self.select_trace_samples(tenant, trace_id, limit))
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.insert_key(key))
    }

    fn admit(
        &self,
        set: MemberSet,
        seed: Vec<String>,
        members: Vec<String>,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Admission>>> {
        Box::pin(async move { self.admit_members(set, seed, members, max).await.map(Some) })
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        Box::pin(self.select_key(hash))
    }

    fn alert_rules(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<StoredRule>>> {
        Box::pin(self.select_alert_rules(tenant))
    }

    fn put_alert_rule(&self, rule: StoredRule, replace: bool) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.upsert_alert_rule(rule, replace))
    }

    fn delete_alert_rule(&self, tenant: String, name: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.remove_alert_rule(tenant, name))
    }

    fn alert_states(&self) -> BoxFuture<'_, StoreResult<Vec<StoredAlert>>> {
        Box::pin(self.select_alert_states())
    }

    fn save_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.write_alerts(states, removed, events))
    }

    fn alert_history(
        &self,
        query: AlertHistoryQuery,
    ) -> BoxFuture<'_, StoreResult<Vec<AlertEvent>>> {
        Box::pin(self.select_alert_history(query))
    }

    fn drop_alert_history_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.delete_alert_history_before(before_ms))
    }

    fn tenants(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(self.select_tenants())
    }

    fn list_keys(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        Box::pin(self.select_keys(tenant))
    }

    fn revoke_keys(&self, hash_prefix: String) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        Box::pin(self.delete_keys(hash_prefix))
    }
}
