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

use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::clock::now_ms;
use crate::model::{
    Bucket, BucketQuery, BucketStats, CustomPoint, CustomQuery, DirtyPeriod, IngestOutcome,
    IngestWrite, KeyRecord, Resolution, Role, Sample, SeriesKey, SeriesSelect, ServiceRecord,
    UnixMs, totals_of,
};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

mod custom;

use custom::{CustomRows, custom_rows_of, custom_table, upsert_custom};

const DAY_MS: i64 = 86_400_000;
/// Connections kept open per store.
const POOL_SIZE: usize = 8;
/// Attempts of one transaction that failed on a deadlock or a partition
/// dropped under it.
const MAX_ATTEMPTS: usize = 5;
/// Days of partitions created ahead of today.
const DAYS_AHEAD: i64 = 2;
/// First key of the advisory locks (the second is the schema's hash).
const LOCK_MIGRATE: i32 = 0x7669_7401;
const LOCK_PARTITIONS: i32 = 0x7669_7402;

/// Schema migrations, applied in order; never edit a released entry.
const MIGRATIONS: &[&str] = &[
    // 1: keys, batch ids, partitioned buckets and samples, dirty periods, services.
    r#"
    CREATE TABLE api_keys (
        hash text PRIMARY KEY,
        tenant text NOT NULL,
        role text NOT NULL,
        created_ms bigint NOT NULL
    );
    CREATE TABLE batches (
        tenant text NOT NULL,
        service text NOT NULL,
        batch_id text NOT NULL,
        received_ms bigint NOT NULL,
        PRIMARY KEY (tenant, service, batch_id)
    );
    CREATE INDEX batches_by_time ON batches (received_ms);
    CREATE TABLE buckets_1m (
        tenant text NOT NULL,
        start_ms bigint NOT NULL,
        series_id bytea NOT NULL,
        service text NOT NULL,
        method text NOT NULL,
        route text NOT NULL,
        status_class smallint NOT NULL,
        caller text NOT NULL,
        count bigint NOT NULL,
        errors bigint NOT NULL,
        satisfied bigint NOT NULL,
        tolerating bigint NOT NULL,
        sketch bytea NOT NULL,
        last_seen_ms bigint NOT NULL,
        PRIMARY KEY (tenant, start_ms, series_id)
    ) PARTITION BY RANGE (start_ms);
    CREATE INDEX buckets_1m_by_service ON buckets_1m (tenant, service, start_ms);
    CREATE TABLE buckets_5m (LIKE buckets_1m INCLUDING ALL) PARTITION BY RANGE (start_ms);
    CREATE TABLE buckets_1h (LIKE buckets_1m INCLUDING ALL) PARTITION BY RANGE (start_ms);
    CREATE TABLE dirty_periods (
        resolution smallint NOT NULL,
        tenant text NOT NULL,
        start_ms bigint NOT NULL,
        generation bigint NOT NULL,
        PRIMARY KEY (resolution, tenant, start_ms)
    );
    CREATE TABLE samples (
        id bigserial NOT NULL,
        tenant text NOT NULL,
        service text NOT NULL,
        timestamp_ms bigint NOT NULL,
        instance text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        route text NOT NULL,
        status integer NOT NULL,
        duration_ms double precision NOT NULL,
        caller text,
        trace_id text
    ) PARTITION BY RANGE (timestamp_ms);
    CREATE INDEX samples_by_service ON samples (tenant, service, timestamp_ms DESC, id DESC);
    CREATE TABLE services (
        tenant text NOT NULL,
        service text NOT NULL,
        last_seen_ms bigint NOT NULL,
        PRIMARY KEY (tenant, service)
    );
    "#,
    // Custom metrics: one table per resolution, partitioned by day like
    // buckets; a series is keyed by a SHA-256 of (service, name, labels,
    // instance).
    r#"
    CREATE TABLE custom_1m (
        tenant text NOT NULL,
        start_ms bigint NOT NULL,
        series_id bytea NOT NULL,
        service text NOT NULL,
        name text NOT NULL,
        labels text NOT NULL,
        instance text NOT NULL,
        kind text NOT NULL,
        last double precision NOT NULL,
        last_ms bigint NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        PRIMARY KEY (tenant, start_ms, series_id)
    ) PARTITION BY RANGE (start_ms);
    CREATE INDEX custom_1m_by_service ON custom_1m (tenant, service, start_ms);
    CREATE INDEX custom_1m_by_name ON custom_1m (tenant, service, name, start_ms);
    CREATE TABLE custom_5m (LIKE custom_1m INCLUDING ALL) PARTITION BY RANGE (start_ms);
    CREATE TABLE custom_1h (LIKE custom_1m INCLUDING ALL) PARTITION BY RANGE (start_ms);
    "#,
    // Per-service total series: see TOTALS_MIGRATION.
    TOTALS_MIGRATION,
];

/// The migration adding per-service total series (`method = ''`): partial
/// indexes on every bucket table (inherited by each day partition), so
/// reading totals never touches route rows. `migrate` backfills the totals
/// of every stored bucket (`backfill_totals`) right after it, in the same
/// transaction. Recognised by its text, not its position, so it stays
/// self-contained whatever migrations come before or after it.
const TOTALS_MIGRATION: &str = r#"
    DELETE FROM buckets_1m WHERE method = '';
    DELETE FROM buckets_5m WHERE method = '';
    DELETE FROM buckets_1h WHERE method = '';
    CREATE INDEX buckets_1m_totals_by_service ON buckets_1m (tenant, service, start_ms) WHERE method = '';
    CREATE INDEX buckets_1m_totals_by_time ON buckets_1m (tenant, start_ms) WHERE method = '';
    CREATE INDEX buckets_5m_totals_by_service ON buckets_5m (tenant, service, start_ms) WHERE method = '';
    CREATE INDEX buckets_5m_totals_by_time ON buckets_5m (tenant, start_ms) WHERE method = '';
    CREATE INDEX buckets_1h_totals_by_service ON buckets_1h (tenant, service, start_ms) WHERE method = '';
    CREATE INDEX buckets_1h_totals_by_time ON buckets_1h (tenant, start_ms) WHERE method = '';
    "#;

/// How many migrations run before [`TOTALS_MIGRATION`].
#[cfg(any(test, feature = "testing"))]
fn before_totals() -> usize {
    MIGRATIONS
        .iter()
        .position(|m| *m == TOTALS_MIGRATION)
        .unwrap_or(MIGRATIONS.len())
}

/// Route rows fetched per round by the totals backfill.
const BACKFILL_FETCH: i64 = 5000;

/// Writes the per-service totals of every stored bucket, at every
/// resolution, each from its own period's route rows (so it needs no finer
/// data). Streams the route rows through a cursor in (tenant, service,
/// start) order, so memory stays bounded by one fetch and one group.
async fn backfill_totals(tx: &impl GenericClient) -> Result<(), Failure> {
    for res in Resolution::ALL {
        let table = bucket_table(res);
        tx.batch_execute(&format!(
            "DECLARE totals_backfill NO SCROLL CURSOR FOR
             SELECT start_ms, service, method, route, status_class, caller,
                 count, errors, satisfied, tolerating, sketch, last_seen_ms, tenant
             FROM {table} WHERE method <> '' ORDER BY tenant, service, start_ms"
        ))
        .await?;
        let mut group: Vec<Bucket> = Vec::new();
        let mut totals: Vec<Bucket> = Vec::new();
        loop {
            let rows = tx
                .query(&format!("FETCH {BACKFILL_FETCH} FROM totals_backfill"), &[])
                .await?;
            let done = rows.is_empty();
            for r in &rows {
                let tenant: String = r.get(12);
                let b = bucket_from_row(r, &tenant, res)?;
                let same = group.first().is_some_and(|g| {
                    g.tenant == b.tenant
                        && g.key.service == b.key.service
                        && g.start_ms == b.start_ms
                });
                if !same {
                    totals.extend(totals_of(&group));
                    group.clear();
                }
                group.push(b);
            }
            if done {
                totals.extend(totals_of(&group));
            }
            if done || totals.len() >= 1000 {
                let mut by_tenant: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
                for t in totals.drain(..) {
                    by_tenant.entry(t.tenant.clone()).or_default().push(t);
                }
                for (tenant, buckets) in by_tenant {
                    insert_rows(tx, table, &tenant, &rows_of(&buckets)).await?;
                }
            }
            if done {
                break;
            }
        }
        tx.batch_execute("CLOSE totals_backfill").await?;
    }
    Ok(())
}

/// The day-partitioned tables.
const PARTITIONED: [&str; 7] = [
    "buckets_1m",
    "buckets_5m",
    "buckets_1h",
    "samples",
    "custom_1m",
    "custom_5m",
    "custom_1h",
];

fn bucket_table(r: Resolution) -> &'static str {
    match r {
        Resolution::Minute => "buckets_1m",
        Resolution::FiveMinutes => "buckets_5m",
        Resolution::Hour => "buckets_1h",
    }
}

/// Name of `table`'s partition for day `day` (days since the epoch).
fn partition_name(table: &str, day: i64) -> String {
    if day < 0 {
        format!("{table}_dm{}", day.unsigned_abs())
    } else {
        format!("{table}_d{day}")
    }
}

/// The day a partition name stands for, if it is one of `table`'s.
fn partition_day(table: &str, name: &str) -> Option<i64> {
    let rest = name.strip_prefix(table)?.strip_prefix("_d")?;
    match rest.strip_prefix('m') {
        Some(neg) => neg.parse::<i64>().ok().map(|d| -d),
        None => rest.parse().ok(),
    }
}

/// `[from, to)` bounds of a day partition, as SQL literals.
fn day_bounds(day: i64) -> (String, String) {
    let from = day
        .checked_mul(DAY_MS)
        .map_or_else(|| "MINVALUE".to_string(), |v| v.to_string());
    let to = day
        .checked_add(1)
        .and_then(|d| d.checked_mul(DAY_MS))
        .map_or_else(|| "MAXVALUE".to_string(), |v| v.to_string());
    (from, to)
}

fn day_of(t: UnixMs) -> i64 {
    t.div_euclid(DAY_MS)
}

/// A stable id of a series' labels: SHA-256 over the length-prefixed fields.
fn series_id(k: &SeriesKey) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [
        k.service.as_bytes(),
        k.method.as_bytes(),
        k.route.as_bytes(),
        &[k.status_class],
        k.caller.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::postgres(e)
}

/// A failure inside a transaction: a PostgreSQL error (maybe worth a
/// retry) or anything else.
enum Failure {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Failure {
    fn code(&self) -> Option<&SqlState> {
        match self {
            Failure::Pg(e) => e.code(),
            Failure::Store(_) => None,
        }
    }
    /// Deadlocks and serialization failures: run the transaction again.
    fn retryable(&self) -> bool {
        matches!(self.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE)
    }
    /// "no partition of relation … found for row": a partition this
    /// process thought existed was dropped (retention elsewhere).
    fn missing_partition(&self) -> bool {
        self.code() == Some(&SqlState::CHECK_VIOLATION)
    }
    fn into_store(self) -> StoreError {
        match self {
            Failure::Pg(e) => db(e),
            Failure::Store(e) => e,
        }
    }
}

fn u64_to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sql_to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Sketches are stored in the collector's compact binary form ([`crate::codec`]).
fn encode_sketch(s: &vitals::Sketch) -> Vec<u8> {
    crate::codec::encode_sketch(s)
}

fn decode_sketch(b: &[u8]) -> StoreResult<vitals::Sketch> {
    crate::codec::decode_sketch(b).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
}

/// One bucket row to write, keyed by `(start_ms, series_id)`.
#[derive(Clone)]
struct Row {
    key: SeriesKey,
    stats: BucketStats,
}

type Rows = BTreeMap<(UnixMs, Vec<u8>), Row>;

/// Buckets keyed and merged by `(start, series)`: one row per key, in
/// the order rows are locked (so concurrent writers never deadlock on
/// each other's rows in opposite orders).
fn rows_of<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Rows {
    let mut rows = Rows::new();
    for b in buckets {
        match rows.entry((b.start_ms, series_id(&b.key))) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.get_mut().stats.merge(&b.stats)
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Row {
                    key: b.key.clone(),
                    stats: b.stats.clone(),
                });
            }
        }
    }
    rows
}

/// Column arrays of `rows`, for `UNNEST`.
struct Columns {
    start: Vec<i64>,
    id: Vec<Vec<u8>>,
    service: Vec<String>,
    method: Vec<String>,
    route: Vec<String>,
    status_class: Vec<i16>,
    caller: Vec<String>,
    count: Vec<i64>,
    errors: Vec<i64>,
    satisfied: Vec<i64>,
    tolerating: Vec<i64>,
    sketch: Vec<Vec<u8>>,
    last_seen: Vec<i64>,
}

impl Columns {
    fn of<'a>(
        rows: impl IntoIterator<Item = (&'a (UnixMs, Vec<u8>), &'a Row)>,
    ) -> StoreResult<Self> {
        let mut c = Columns {
            start: vec![],
            id: vec![],
            service: vec![],
            method: vec![],
            route: vec![],
            status_class: vec![],
            caller: vec![],
            count: vec![],
            errors: vec![],
            satisfied: vec![],
            tolerating: vec![],
            sketch: vec![],
            last_seen: vec![],
        };
        for ((start, id), r) in rows {
            c.start.push(*start);
            c.id.push(id.clone());
            c.service.push(r.key.service.clone());
            c.method.push(r.key.method.clone());
            c.route.push(r.key.route.clone());
            c.status_class.push(i16::from(r.key.status_class));
            c.caller.push(r.key.caller.clone());
            c.count.push(u64_to_sql(r.stats.count));
            c.errors.push(u64_to_sql(r.stats.errors));
            c.satisfied.push(u64_to_sql(r.stats.satisfied));
            c.tolerating.push(u64_to_sql(r.stats.tolerating));
            c.sketch.push(encode_sketch(&r.stats.duration_ms));
            c.last_seen.push(r.stats.last_seen_ms);
        }
        Ok(c)
    }
}

/// Inserts `rows` into `table`; with `merge_conflicts` false an existing
/// row is left alone and its key returned (the caller merges it).
async fn insert_rows(
    tx: &impl GenericClient,
    table: &str,
    tenant: &str,
    rows: &Rows,
) -> Result<HashSet<(i64, Vec<u8>)>, Failure> {
    let c = Columns::of(rows.iter())?;
    let inserted = tx
        .query(
            &tx.prepare_cached(&format!(
                "INSERT INTO {table} (tenant, start_ms, series_id, service, method, route,
                     status_class, caller, count, errors, satisfied, tolerating, sketch, last_seen_ms)
                 SELECT $1, * FROM unnest($2::int8[], $3::bytea[], $4::text[], $5::text[], $6::text[],
                     $7::int2[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
                     $13::bytea[], $14::int8[])
                 ON CONFLICT (tenant, start_ms, series_id) DO NOTHING
                 RETURNING start_ms, series_id"
            ))
            .await?,
            &[
                &tenant,
                &c.start,
                &c.id,
                &c.service,
                &c.method,
                &c.route,
                &c.status_class,
                &c.caller,
                &c.count,
                &c.errors,
                &c.satisfied,
                &c.tolerating,
                &c.sketch,
                &c.last_seen,
            ],
        )
        .await?;
    Ok(inserted
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
        .collect())
}

/// Merges `rows` into `table`: existing rows are locked, merged in Rust
/// (sketches) and updated; missing ones inserted. A row another writer
/// inserted in between is found by the next round.
async fn merge_rows(
    tx: &impl GenericClient,
    table: &str,
    tenant: &str,
    mut pending: Rows,
) -> Result<(), Failure> {
    for _round in 0..3 {
        if pending.is_empty() {
            return Ok(());
        }
        let starts: Vec<i64> = pending.keys().map(|k| k.0).collect();
        let ids: Vec<Vec<u8>> = pending.keys().map(|k| k.1.clone()).collect();
        let existing = tx
            .query(
                &tx.prepare_cached(&format!(
                    "SELECT start_ms, series_id, count, errors, satisfied, tolerating, sketch, last_seen_ms
                     FROM {table}
                     WHERE tenant = $1 AND (start_ms, series_id) IN
                         (SELECT * FROM unnest($2::int8[], $3::bytea[]))
                     ORDER BY start_ms, series_id FOR UPDATE"
                ))
                .await?,
                &[&tenant, &starts, &ids],
            )
            .await?;
        let mut updates = Rows::new();
        for r in &existing {
            let k = (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1));
            let Some(new) = pending.remove(&k) else {
                continue;
            };
            let mut stats = BucketStats {
                count: sql_to_u64(r.get(2)),
                errors: sql_to_u64(r.get(3)),
                satisfied: sql_to_u64(r.get(4)),
                tolerating: sql_to_u64(r.get(5)),
                duration_ms: decode_sketch(r.get(6))?,
                last_seen_ms: r.get(7),
            };
            stats.merge(&new.stats);
            updates.insert(
                k,
                Row {
                    key: new.key,
                    stats,
                },
            );
        }
        if !updates.is_empty() {
            let c = Columns::of(updates.iter())?;
            tx.execute(
                &tx.prepare_cached(&format!(
                    "UPDATE {table} AS b SET count = u.count, errors = u.errors, satisfied = u.satisfied,
                         tolerating = u.tolerating, sketch = u.sketch, last_seen_ms = u.last_seen_ms
                     FROM unnest($2::int8[], $3::bytea[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                         $8::bytea[], $9::int8[])
                         AS u(start_ms, series_id, count, errors, satisfied, tolerating, sketch, last_seen_ms)
                     WHERE b.tenant = $1 AND b.start_ms = u.start_ms AND b.series_id = u.series_id"
                ))
                .await?,
                &[
                    &tenant,
                    &c.start,
                    &c.id,
                    &c.count,
                    &c.errors,
                    &c.satisfied,
                    &c.tolerating,
                    &c.sketch,
                    &c.last_seen,
                ],
            )
            .await?;
        }
        if pending.is_empty() {
            return Ok(());
        }
        let inserted = insert_rows(tx, table, tenant, &pending).await?;
        pending.retain(|k, _| !inserted.contains(k));
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(Failure::Store(StoreError::postgres_client(
            "bucket rows kept changing under a merge (other writers); the write was not stored, try again",
            None,
        )))
    }
}

async fn mark_dirty(
    tx: &impl GenericClient,
    res: Resolution,
    tenant: &str,
    periods: &[i64],
) -> Result<(), Failure> {
    if periods.is_empty() {
        return Ok(());
    }
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO dirty_periods (resolution, tenant, start_ms, generation)
             SELECT $1, $2, p, 1 FROM unnest($3::int8[]) AS p
             ON CONFLICT (resolution, tenant, start_ms)
             DO UPDATE SET generation = dirty_periods.generation + 1",
        )
        .await?,
        &[&(res.code() as i16), &tenant, &periods],
    )
    .await?;
    Ok(())
}

/// The PostgreSQL store. Cheap to share: it holds a connection pool.
pub struct PostgresStore {
    pool: Pool,
    /// Partitions known to exist, as `(table, day)`.
    partitions: Mutex<HashSet<(&'static str, i64)>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

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
        Self::connect_migrated(config, before_totals()).await
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

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            // Connecting failed: the server refused the login (with a
            // SQLSTATE), or could not be reached at all.
            deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_none() => {
                StoreError::postgres_client(
                    format!("cannot connect: {e}; check that the server is up and reachable at the URL"),
                    Some(Box::new(e)),
                )
            }
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => StoreError::postgres_client(
                format!(
                    "no connection from the pool: {other}; check that the server is up and reachable at the URL"
                ),
                Some(Box::new(other)),
            ),
        })
    }

    async fn migrate(&self, upto: usize) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
            &[&LOCK_MIGRATE],
        )
        .await
        .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db)?;
        let found: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        let supported = MIGRATIONS.len() as i64;
        if i64::from(found) > supported {
            return Err(StoreError::SchemaTooNew {
                found: found.into(),
                supported,
            });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(upto)
            .skip(found.max(0) as usize)
        {
            tx.batch_execute(sql).await.map_err(db)?;
            if *sql == TOTALS_MIGRATION {
                backfill_totals(&tx).await.map_err(Failure::into_store)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// The schema version of the database (how many migrations ran).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        let c = self.client().await?;
        let v: i32 = c
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(v.into())
    }

    /// Creates today's and the next days' partitions of every table.
    async fn create_ahead(&self, now: UnixMs) -> StoreResult<()> {
        let today = day_of(now);
        let needs: Vec<_> = PARTITIONED
            .iter()
            .flat_map(|t| (0..=DAYS_AHEAD).map(move |d| (*t, today + d)))
            .collect();
        self.ensure_partitions(needs).await
    }

    /// Creates the partitions in `needs` this process has not seen yet.
    async fn ensure_partitions(
        &self,
        needs: impl IntoIterator<Item = (&'static str, i64)>,
    ) -> StoreResult<()> {
        let missing: BTreeSet<(&'static str, i64)> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            needs.into_iter().filter(|n| !known.contains(n)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Serialized with other collectors' creates and drops.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
            &[&LOCK_PARTITIONS],
        )
        .await
        .map_err(db)?;
        for (table, day) in &missing {
            let (from, to) = day_bounds(*day);
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})",
                partition_name(table, *day)
            ))
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(missing);
        Ok(())
    }

    fn forget_partitions(&self) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Day partitions of `table` that exist now, as days since the epoch.
    pub async fn partition_days(&self, table: &str) -> StoreResult<Vec<i64>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass($1)",
                &[&table],
            )
            .await
            .map_err(db)?;
        let mut days: Vec<i64> = rows
            .iter()
            .filter_map(|r| partition_day(table, r.get::<_, &str>(0)))
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// Drops every partition of `table` that ends at or before `before`;
    /// returns the rows they held.
    async fn drop_partitions_before(
        &self,
        table: &'static str,
        before: UnixMs,
    ) -> StoreResult<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
            &[&LOCK_PARTITIONS],
        )
        .await
        .map_err(db)?;
        let rows = tx
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass($1)",
                &[&table],
            )
            .await
            .map_err(db)?;
        let mut removed = 0u64;
        let mut dropped = Vec::new();
        for r in &rows {
            let name: &str = r.get(0);
            let Some(day) = partition_day(table, name) else {
                continue;
            };
            let ends = day.checked_add(1).and_then(|d| d.checked_mul(DAY_MS));
            if ends.is_some_and(|end| end <= before) {
                let n: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                    .await
                    .map_err(db)?
                    .get(0);
                tx.batch_execute(&format!("DROP TABLE {name}"))
                    .await
                    .map_err(db)?;
                removed += sql_to_u64(n);
                dropped.push(day);
            }
        }
        tx.commit().await.map_err(db)?;
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for day in dropped {
            known.remove(&(table, day));
        }
        Ok(removed)
    }

    /// Runs `attempt` until it succeeds, retrying deadlocks and writes into
    /// a partition dropped meanwhile (after re-creating it).
    async fn retrying<T, F, Fut>(
        &self,
        needs: Vec<(&'static str, i64)>,
        mut attempt: F,
    ) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        self.ensure_partitions(needs.iter().copied()).await?;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(f) if tries < MAX_ATTEMPTS && f.retryable() => continue,
                Err(f) if tries < MAX_ATTEMPTS && f.missing_partition() => {
                    self.forget_partitions();
                    self.ensure_partitions(needs.iter().copied()).await?;
                }
                Err(f) => return Err(f.into_store()),
            }
        }
    }

    async fn ingest_once(
        &self,
        w: &IngestWrite,
        rows: &Rows,
        custom: &CustomRows,
    ) -> Result<IngestOutcome, Failure> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if let Some(id) = &w.batch_id {
            let n = tx
                .execute(
                    &tx.prepare_cached(
                        "INSERT INTO batches (tenant, service, batch_id, received_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING",
                    )
                    .await?,
                    &[&w.tenant, &w.service, id, &w.received_ms],
                )
                .await?;
            if n == 0 {
                // Rolled back on drop: nothing of a duplicate is written.
                return Ok(IngestOutcome::Duplicate);
            }
        }
        if !rows.is_empty() {
            merge_rows(
                &tx,
                bucket_table(Resolution::Minute),
                &w.tenant,
                rows.clone(),
            )
            .await?;
        }
        upsert_custom(
            &tx,
            custom_table(Resolution::Minute),
            &w.tenant,
            custom,
            true,
        )
        .await?;
        let periods: BTreeSet<i64> = rows
            .keys()
            .chain(custom.keys())
            .map(|(start, _)| Resolution::FiveMinutes.floor(*start))
            .collect();
        let periods: Vec<i64> = periods.into_iter().collect();
        mark_dirty(&tx, Resolution::FiveMinutes, &w.tenant, &periods).await?;
        if !w.samples.is_empty() {
            let s = &w.samples;
            let ts: Vec<i64> = s.iter().map(|s| s.timestamp_ms).collect();
            let instance: Vec<&str> = s.iter().map(|s| s.instance.as_str()).collect();
            let method: Vec<&str> = s.iter().map(|s| s.method.as_str()).collect();
            let path: Vec<&str> = s.iter().map(|s| s.path.as_str()).collect();
            let route: Vec<&str> = s.iter().map(|s| s.route.as_str()).collect();
            let status: Vec<i32> = s.iter().map(|s| i32::from(s.status)).collect();
            let duration: Vec<f64> = s.iter().map(|s| s.duration_ms).collect();
            let caller: Vec<Option<&str>> = s.iter().map(|s| s.caller.as_deref()).collect();
            let trace: Vec<Option<&str>> = s.iter().map(|s| s.trace_id.as_deref()).collect();
            tx.execute(
                &tx.prepare_cached(
                    "INSERT INTO samples (tenant, service, timestamp_ms, instance, method, path, route,
                         status, duration_ms, caller, trace_id)
                     SELECT $1, $2, ts, instance, method, path, route, status, duration_ms, caller, trace_id
                     FROM unnest($3::int8[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::int4[], $9::float8[], $10::text[], $11::text[]) WITH ORDINALITY
                         AS u(ts, instance, method, path, route, status, duration_ms, caller, trace_id, n)
                     ORDER BY n",
                )
                .await?,
                &[
                    &w.tenant, &w.service, &ts, &instance, &method, &path, &route, &status,
                    &duration, &caller, &trace,
                ],
            )
            .await?;
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO services (tenant, service, last_seen_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, service)
                 DO UPDATE SET last_seen_ms = GREATEST(services.last_seen_ms, excluded.last_seen_ms)",
            )
            .await?,
            &[&w.tenant, &w.service, &w.received_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(IngestOutcome::Stored)
    }

    async fn write_rollup_once(&self, period: &DirtyPeriod, rows: &Rows) -> Result<(), Failure> {
        let table = bucket_table(period.resolution);
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Replacing one period's rows (not retention): a targeted delete.
        tx.execute(
            &format!("DELETE FROM {table} WHERE tenant = $1 AND start_ms = $2"),
            &[&period.tenant, &period.start_ms],
        )
        .await?;
        if !rows.is_empty() {
            insert_rows(&tx, table, &period.tenant, rows).await?;
        }
        if let Some(target) = period.resolution.target() {
            mark_dirty(
                &tx,
                target,
                &period.tenant,
                &[target.floor(period.start_ms)],
            )
            .await?;
        }
        tx.execute(
            "DELETE FROM dirty_periods WHERE resolution = $1 AND tenant = $2 AND start_ms = $3
               AND generation = $4",
            &[
                &(period.resolution.code() as i16),
                &period.tenant,
                &period.start_ms,
                &period.generation,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn bucket_from_row(r: &tokio_postgres::Row, tenant: &str, res: Resolution) -> StoreResult<Bucket> {
    let status: i16 = r.get(4);
    Ok(Bucket {
        tenant: tenant.to_string(),
        resolution: res,
        start_ms: r.get(0),
        key: SeriesKey {
            service: r.get(1),
            method: r.get(2),
            route: r.get(3),
            status_class: u8::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("status class {status}")))?,
            caller: r.get(5),
        },
        stats: BucketStats {
            count: sql_to_u64(r.get(6)),
            errors: sql_to_u64(r.get(7)),
            satisfied: sql_to_u64(r.get(8)),
            tolerating: sql_to_u64(r.get(9)),
            duration_ms: decode_sketch(r.get(10))?,
            last_seen_ms: r.get(11),
        },
    })
}

impl Store for PostgresStore {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        Box::pin(async move {
            let rows = rows_of(&write.buckets);
            let custom: Vec<CustomPoint> = write
                .custom
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    p.start_ms = Resolution::Minute.floor(p.start_ms);
                    p.key.service.clone_from(&write.service);
                    p
                })
                .collect();
            let custom = custom_rows_of(&custom);
            let mut needs: BTreeSet<(&'static str, i64)> = rows
                .keys()
                .map(|(start, _)| ("buckets_1m", day_of(*start)))
                .collect();
            needs.extend(
                custom
                    .keys()
                    .map(|(start, _)| ("custom_1m", day_of(*start))),
            );
            needs.extend(
                write
                    .samples
                    .iter()
                    .map(|s| ("samples", day_of(s.timestamp_ms))),
            );
            self.retrying(needs.into_iter().collect(), || {
                self.ingest_once(&write, &rows, &custom)
            })
            .await
        })
    }

    fn read_buckets(&self, q: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        Box::pin(async move {
            let table = bucket_table(q.resolution);
            let c = self.client().await?;
            const COLS: &str = "start_ms, service, method, route, status_class, caller,
                count, errors, satisfied, tolerating, sketch, last_seen_ms";
            // A literal condition, so the planner can use the partial
            // indexes on `method = ''` for totals.
            let series = match q.series {
                SeriesSelect::Routes => " AND method <> ''",
                SeriesSelect::Totals => " AND method = ''",
                SeriesSelect::All => "",
            };
            let rows = match &q.service {
                Some(service) => {
                    c.query(
                        &format!(
                            "SELECT {COLS} FROM {table} WHERE tenant = $1 AND service = $2
                               AND start_ms >= $3 AND start_ms < $4{series}"
                        ),
                        &[&q.tenant, service, &q.start_ms, &q.end_ms],
                    )
                    .await
                }
                None => {
                    c.query(
                        &format!(
                            "SELECT {COLS} FROM {table} WHERE tenant = $1
                               AND start_ms >= $2 AND start_ms < $3{series}"
                        ),
                        &[&q.tenant, &q.start_ms, &q.end_ms],
                    )
                    .await
                }
            }
            .map_err(db)?;
            rows.iter()
                .map(|r| bucket_from_row(r, &q.tenant, q.resolution))
                .collect()
        })
    }

    fn read_custom(&self, q: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        Box::pin(self.read_custom_points(q))
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
        Box::pin(async move {
            let c = self.client().await?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    "SELECT tenant, start_ms, generation FROM dirty_periods
                     WHERE resolution = $1 AND start_ms < $2 ORDER BY start_ms LIMIT $3",
                    &[&(resolution.code() as i16), &before_ms, &limit],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| DirtyPeriod {
                    resolution,
                    tenant: r.get(0),
                    start_ms: r.get(1),
                    generation: r.get(2),
                })
                .collect())
        })
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut buckets = buckets;
            for b in &mut buckets {
                b.start_ms = period.start_ms;
            }
            let rows = rows_of(&buckets);
            let needs = vec![(bucket_table(period.resolution), day_of(period.start_ms))];
            self.retrying(needs, || self.write_rollup_once(&period, &rows))
                .await
        })
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let removed = self
                .drop_partitions_before(bucket_table(resolution), before_ms)
                .await?
                + self
                    .drop_partitions_before(custom_table(resolution), before_ms)
                    .await?;
            let c = self.client().await?;
            c.execute(
                "DELETE FROM dirty_periods WHERE resolution = $1 AND start_ms < $2",
                &[&(resolution.code() as i16), &before_ms],
            )
            .await
            .map_err(db)?;
            drop(c);
            // Retention runs regularly: keep the days ahead ready.
            self.create_ahead(now_ms()).await?;
            Ok(removed)
        })
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.drop_partitions_before("samples", before_ms))
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute("DELETE FROM batches WHERE received_ms < $1", &[&before_ms])
                .await
                .map_err(db)
        })
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT service, last_seen_ms FROM services WHERE tenant = $1 ORDER BY service",
                    &[&tenant],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| ServiceRecord {
                    service: r.get(0),
                    last_seen_ms: r.get(1),
                })
                .collect())
        })
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    "SELECT timestamp_ms, instance, method, path, route, status, duration_ms, caller, trace_id
                     FROM samples WHERE tenant = $1 AND service = $2
                     ORDER BY timestamp_ms DESC, id DESC LIMIT $3",
                    &[&tenant, &service, &limit],
                )
                .await
                .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let status: i32 = r.get(5);
                    Ok(Sample {
                        timestamp_ms: r.get(0),
                        instance: r.get(1),
                        method: r.get(2),
                        path: r.get(3),
                        route: r.get(4),
                        status: u16::try_from(status)
                            .map_err(|_| StoreError::Corrupt(format!("status {status}")))?,
                        duration_ms: r.get(6),
                        caller: r.get(7),
                        trace_id: r.get(8),
                    })
                })
                .collect()
        })
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO api_keys (hash, tenant, role, created_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    &[&key.hash, &key.tenant, &key.role.as_str(), &key.created_ms],
                )
                .await
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::DuplicateKey);
            }
            Ok(())
        })
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "SELECT tenant, role, created_ms FROM api_keys WHERE hash = $1",
                    &[&hash],
                )
                .await
                .map_err(db)?;
            row.map(|r| {
                let role: Role = r.get::<_, &str>(1).parse().map_err(StoreError::Corrupt)?;
                Ok(KeyRecord {
                    hash: hash.clone(),
                    tenant: r.get(0),
                    role,
                    created_ms: r.get(2),
                })
            })
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_migration_is_listed_once() {
        assert_eq!(
            MIGRATIONS
                .iter()
                .filter(|m| **m == TOTALS_MIGRATION)
                .count(),
            1
        );
        assert!(before_totals() < MIGRATIONS.len());
    }

    #[test]
    fn partition_names_round_trip() {
        for day in [0, 1, 19_723, -1, -7305, i64::MAX / DAY_MS] {
            let name = partition_name("buckets_1m", day);
            assert_eq!(partition_day("buckets_1m", &name), Some(day), "{name}");
            assert_eq!(partition_day("buckets_5m", &name), None);
        }
        assert_eq!(partition_day("samples", "samples_dx"), None);
    }

    #[test]
    fn day_bounds_never_overflow() {
        assert_eq!(day_bounds(1), ("86400000".into(), "172800000".into()));
        assert_eq!(day_bounds(day_of(i64::MAX)).1, "MAXVALUE");
        assert_eq!(day_bounds(day_of(i64::MIN)).0, "MINVALUE");
    }

    #[test]
    fn series_ids_separate_fields() {
        let k = |s: &str, r: &str| SeriesKey {
            service: s.into(),
            method: "GET".into(),
            route: r.into(),
            status_class: 2,
            caller: String::new(),
        };
        assert_ne!(series_id(&k("ab", "c")), series_id(&k("a", "bc")));
        assert_eq!(series_id(&k("a", "b")), series_id(&k("a", "b")));
    }
}
