//! The embedded SQLite back end (`sqlite://PATH`, `sqlite::memory:`).
//!
//! One connection, owned behind a mutex and only ever used on tokio's
//! blocking pool, so the async runtime never waits on disk. WAL journal with
//! `synchronous=FULL`: a write has reached the disk when `ingest` returns.
//! Schema versions live in `PRAGMA user_version` and migrate at open.
//!
//! - `mod.rs`: the store, opening, and the [`Store`] impl, each method a
//!   call on the blocking pool into one of the files below.
//! - `schema.rs`: migrations and the totals backfill.
//! - `rows.rs`: rows to and from the model (counts, sketch blobs).
//! - `write.rs`: group-committed ingest, rollup replacements, retention.
//! - `read.rs`: buckets, route sums, dirty periods, services, samples, keys.
//! - `custom.rs`: the `custom_points` table.
//! - `alerts.rs`: the alerting tables (rules, states, history).

mod alerts;
mod custom;
mod read;
mod rows;
mod schema;
mod write;

use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::model::{
    AlertEvent, AlertHistoryQuery, Bucket, BucketQuery, CustomPoint, CustomQuery, DirtyPeriod,
    IngestOutcome, IngestWrite, KeyRecord, Resolution, RouteSum, Sample, ServiceRecord,
    StoredAlert, StoredRule, TraceSample, UnixMs,
};
use rows::db;
use rusqlite::Connection;
use schema::MIGRATIONS;
use std::sync::{Arc, Mutex};

/// The SQLite store. Cheap to clone: clones share the connection.
///
/// Ingest writes queue up and are committed in groups: whichever blocking
/// task holds the connection writes every queued batch in one transaction,
/// so concurrent senders share one disk sync instead of waiting in line
/// for one each.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    pending: write::Queue,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The schema version this build migrates to (how many migrations it has).
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open(path: &str) -> StoreResult<Self> {
        let path = path.to_string();
        Self::init(move || Connection::open(&path), MIGRATIONS.len()).await
    }

    /// A private in-memory database, gone when the store is dropped.
    pub async fn open_in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory, MIGRATIONS.len()).await
    }

    /// Test hook (feature `testing`): opens `path` migrated only as far as
    /// a collector from before per-service total series did, so a test can
    /// write data the old way and check the backfill when it reopens.
    #[cfg(feature = "testing")]
    pub async fn open_before_totals(path: &str) -> StoreResult<Self> {
        let path = path.to_string();
        Self::init(move || Connection::open(&path), schema::before_totals()).await
    }

    async fn init(
        connect: impl FnOnce() -> rusqlite::Result<Connection> + Send + 'static,
        migrations: usize,
    ) -> StoreResult<Self> {
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let mut conn = connect().map_err(db)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db)?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(db)?;
            conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(db)?;
            schema::migrate(&mut conn, migrations)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            pending: Arc::default(),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A panic while holding the lock leaves SQLite consistent
                // (the transaction rolls back on drop), so a poisoned lock
                // is still safe to use.
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut guard)
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        self.with(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(db)
        })
        .await
    }
}

/// Every method runs on the blocking pool (`SqliteStore::with`); the SQL
/// is in `read.rs`, `write.rs` and `custom.rs`.
impl Store for SqliteStore {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        let answer = write::enqueue(&self.pending, write);
        let queue = self.pending.clone();
        let run = self.with(move |c| write::commit_queued(c, &queue));
        Box::pin(async move {
            run.await?;
            answer
                .await
                .map_err(|_| StoreError::Task("the ingest write was dropped unanswered".into()))?
        })
    }

    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        self.with(move |c| read::buckets(c, &query))
    }

    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        self.with(move |c| custom::read(c, &query))
    }

    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| write::replace_custom_period(c, &period, &points))
    }

    fn route_sums(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<RouteSum>>> {
        self.with(move |c| read::route_sums(c, &query))
    }

    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        self.with(move |c| read::dirty_periods(c, resolution, before_ms, limit))
    }

    fn dirty_starts(
        &self,
        tenant: String,
        resolution: Resolution,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<Vec<UnixMs>>> {
        self.with(move |c| read::dirty_starts(c, &tenant, resolution, start_ms, end_ms))
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| write::replace_period(c, &period, &buckets))
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| write::drop_buckets_before(c, resolution, before_ms))
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| write::drop_samples_before(c, before_ms))
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| write::drop_batch_ids_before(c, before_ms))
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        self.with(move |c| read::services(c, &tenant))
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        self.with(move |c| read::recent_samples(c, &tenant, &service, limit))
    }

    fn trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TraceSample>>> {
        self.with(move |c| read::trace_samples(c, &tenant, &trace_id, limit))
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| write::create_key(c, &key))
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        self.with(move |c| read::key_by_hash(c, hash))
    }

    fn alert_rules(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<StoredRule>>> {
        self.with(move |c| alerts::rules(c, tenant.as_deref()))
    }

    fn put_alert_rule(&self, rule: StoredRule, replace: bool) -> BoxFuture<'_, StoreResult<bool>> {
        self.with(move |c| alerts::put_rule(c, &rule, replace))
    }

    fn delete_alert_rule(&self, tenant: String, name: String) -> BoxFuture<'_, StoreResult<bool>> {
        self.with(move |c| alerts::delete_rule(c, &tenant, &name))
    }

    fn alert_states(&self) -> BoxFuture<'_, StoreResult<Vec<StoredAlert>>> {
        self.with(|c| alerts::states(c))
    }

    fn save_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| alerts::save(c, &states, &removed, &events))
    }

    fn alert_history(
        &self,
        query: AlertHistoryQuery,
    ) -> BoxFuture<'_, StoreResult<Vec<AlertEvent>>> {
        self.with(move |c| alerts::history(c, &query))
    }

    fn drop_alert_history_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| alerts::drop_history_before(c, before_ms))
    }

    fn tenants(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.with(|c| alerts::tenants(c))
    }

    fn list_keys(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.with(move |c| read::list_keys(c, tenant.as_deref()))
    }

    fn revoke_keys(&self, hash_prefix: String) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.with(move |c| write::revoke_keys(c, &hash_prefix))
    }
}
