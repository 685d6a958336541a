//! The embedded SQLite back end (`sqlite://PATH`, `sqlite::memory:`).
//!
//! One connection, owned behind a mutex and only ever used on tokio's
//! blocking pool, so the async runtime never waits on disk. WAL journal with
//! `synchronous=FULL`: a write has reached the disk when `ingest` returns.
//! Schema versions live in `PRAGMA user_version` and migrate at open.

use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::model::{
    Bucket, BucketQuery, BucketStats, CustomPoint, CustomQuery, DirtyPeriod, IngestOutcome,
    IngestWrite, KeyRecord, Resolution, Role, RouteSum, Sample, SeriesKey, SeriesSelect,
    ServiceRecord, StatsSum, UnixMs, totals_of,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

mod custom;

use custom::{read_custom_sync, upsert_custom};

/// Schema migrations, applied in order; `user_version` is how many ran.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: keys, batch ids, buckets, dirty periods, samples, services.
    r#"
    CREATE TABLE api_keys (
        hash TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE batches (
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, service, batch_id)
    ) WITHOUT ROWID;
    CREATE INDEX batches_by_time ON batches (received_ms);
    CREATE TABLE buckets (
        resolution INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        method TEXT NOT NULL,
        route TEXT NOT NULL,
        status_class INTEGER NOT NULL,
        caller TEXT NOT NULL,
        count INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        satisfied INTEGER NOT NULL,
        tolerating INTEGER NOT NULL,
        sketch TEXT NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (resolution, tenant, service, start_ms, method, route, status_class, caller)
    ) WITHOUT ROWID;
    CREATE INDEX buckets_by_time ON buckets (resolution, tenant, start_ms);
    CREATE TABLE dirty_periods (
        resolution INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (resolution, tenant, start_ms)
    ) WITHOUT ROWID;
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        instance TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        route TEXT NOT NULL,
        status INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        caller TEXT,
        trace_id TEXT
    );
    CREATE INDEX samples_by_service ON samples (tenant, service, timestamp_ms);
    CREATE INDEX samples_by_time ON samples (timestamp_ms);
    CREATE TABLE services (
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, service)
    ) WITHOUT ROWID;
    "#,
    // Custom metrics: one row per (resolution, period, series), with the
    // last value by time, min and max.
    r#"
    CREATE TABLE custom_points (
        resolution INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        instance TEXT NOT NULL,
        kind TEXT NOT NULL,
        last REAL NOT NULL,
        last_ms INTEGER NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        PRIMARY KEY (resolution, tenant, service, start_ms, name, labels, instance)
    ) WITHOUT ROWID;
    CREATE INDEX custom_points_by_time ON custom_points (resolution, tenant, start_ms);
    CREATE INDEX custom_points_by_name ON custom_points (resolution, tenant, service, name, start_ms);
    "#,
    // Per-service total series: see TOTALS_MIGRATION.
    TOTALS_MIGRATION,
];

/// The migration adding per-service total series (`method = ''`):
/// indexes leading with `method` so reading totals never touches route
/// rows. Not partial indexes (`WHERE method = ''`): with one on the table,
/// SQLite's in-place `UPDATE` of a bucket, the ingest hot path, took 3×
/// as long (measured: 0.72 → 2.35 ms for 100 buckets), where full indexes
/// on columns an update never changes cost nothing there. `migrate` backfills
/// the totals of every stored bucket (`backfill_totals`) right after it, in
/// the same transaction. Recognised by its text, not its position, so it
/// stays self-contained whatever migrations come before or after it.
const TOTALS_MIGRATION: &str = r#"
    DELETE FROM buckets WHERE method = '';
    CREATE INDEX buckets_totals_by_service ON buckets (resolution, tenant, service, method, start_ms);
    CREATE INDEX buckets_totals_by_time ON buckets (resolution, tenant, method, start_ms);
    "#;

/// How many migrations run before [`TOTALS_MIGRATION`].
#[cfg(any(test, feature = "testing"))]
fn before_totals() -> usize {
    MIGRATIONS
        .iter()
        .position(|m| *m == TOTALS_MIGRATION)
        .unwrap_or(MIGRATIONS.len())
}

/// An ingest write waiting for the next group commit.
struct Job {
    write: IngestWrite,
    done: tokio::sync::oneshot::Sender<StoreResult<IngestOutcome>>,
}

/// The SQLite store. Cheap to clone: clones share the connection.
///
/// Ingest writes queue up and are committed in groups: whichever blocking
/// task holds the connection writes every queued batch in one transaction,
/// so concurrent senders share one disk sync instead of waiting in line
/// for one each.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    pending: Arc<Mutex<std::collections::VecDeque<Job>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::sqlite(e)
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
        Self::init(move || Connection::open(&path), before_totals()).await
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
            migrate(&mut conn, migrations)?;
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

/// Runs the first `upto` migrations that have not run yet.
fn migrate(conn: &mut Connection, upto: usize) -> StoreResult<()> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db)?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(upto)
        .skip(version as usize)
    {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        if *sql == TOTALS_MIGRATION {
            backfill_totals(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

/// Writes the per-service totals of every stored bucket, at every
/// resolution, each from its own period's route rows (so it needs no finer
/// data): one (resolution, tenant, service, start) group at a time, so
/// memory stays bounded by one group.
fn backfill_totals(tx: &Connection) -> StoreResult<()> {
    let groups: Vec<(i64, String, String, i64)> = tx
        .prepare(
            "SELECT DISTINCT resolution, tenant, service, start_ms FROM buckets WHERE method <> ''",
        )
        .map_err(db)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let mut read = tx
        .prepare(
            "SELECT method, route, status_class, caller,
                 count, errors, satisfied, tolerating, sketch, last_seen_ms
             FROM buckets WHERE resolution = ?1 AND tenant = ?2 AND service = ?3 AND start_ms = ?4
               AND method <> ''",
        )
        .map_err(db)?;
    for (code, tenant, service, start_ms) in groups {
        let resolution = Resolution::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("bucket resolution {code}")))?;
        let routes: Vec<Bucket> = read
            .query_map(params![code, tenant, service, start_ms], |r| {
                Ok(Bucket {
                    tenant: tenant.clone(),
                    resolution,
                    start_ms,
                    key: SeriesKey {
                        service: service.clone(),
                        method: r.get(0)?,
                        route: r.get(1)?,
                        status_class: r.get(2)?,
                        caller: r.get(3)?,
                    },
                    stats: stats_from_row(r, 4)?,
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for total in totals_of(&routes) {
            insert_bucket(tx, &total)?;
        }
    }
    Ok(())
}

fn u64_to_sql(v: u64) -> i64 {
    // Counts are validated far below i64::MAX at ingest; saturate anyway.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sql_to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn encode_sketch(s: &vitals::Sketch) -> Vec<u8> {
    crate::codec::encode_sketch(s)
}

/// Sketches are stored as compact blobs; text is the JSON form older
/// databases hold, still read.
fn decode_sketch(v: rusqlite::types::ValueRef<'_>) -> StoreResult<vitals::Sketch> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Blob(b) => {
            crate::codec::decode_sketch(b).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
        }
        ValueRef::Text(t) => {
            serde_json::from_slice(t).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
        }
        _ => Err(StoreError::Corrupt("sketch: neither blob nor text".into())),
    }
}

fn mark_dirty(tx: &Connection, res: Resolution, tenant: &str, start: UnixMs) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO dirty_periods (resolution, tenant, start_ms, generation) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (resolution, tenant, start_ms) DO UPDATE SET generation = generation + 1",
    )
    .map_err(db)?
    .execute(params![res.code(), tenant, start])
    .map_err(db)?;
    Ok(())
}

fn insert_bucket(tx: &Connection, b: &Bucket) -> StoreResult<()> {
    let sketch = encode_sketch(&b.stats.duration_ms);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO buckets (resolution, tenant, service, start_ms, method, route,
             status_class, caller, count, errors, satisfied, tolerating, sketch, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .map_err(db)?
    .execute(params![
        b.resolution.code(),
        b.tenant,
        b.key.service,
        b.start_ms,
        b.key.method,
        b.key.route,
        b.key.status_class,
        b.key.caller,
        u64_to_sql(b.stats.count),
        u64_to_sql(b.stats.errors),
        u64_to_sql(b.stats.satisfied),
        u64_to_sql(b.stats.tolerating),
        sketch,
        b.stats.last_seen_ms,
    ])
    .map_err(db)?;
    Ok(())
}

fn stats_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<BucketStats> {
    let duration_ms = decode_sketch(row.get_ref(at + 4)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(at + 4, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(BucketStats {
        count: sql_to_u64(row.get(at)?),
        errors: sql_to_u64(row.get(at + 1)?),
        satisfied: sql_to_u64(row.get(at + 2)?),
        tolerating: sql_to_u64(row.get(at + 3)?),
        duration_ms,
        last_seen_ms: row.get(at + 5)?,
    })
}

/// Sample rows per multi-row INSERT, largest first: a batch's samples go
/// in a few statements (100 samples: 64 + 32 + 4 rows) instead of one
/// statement per row, each size prepared once and cached.
const SAMPLE_CHUNKS: [usize; 4] = [64, 32, 8, 1];

/// The INSERT of `rows` sample rows.
fn samples_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO samples (tenant, service, timestamp_ms, instance, method, path, route,
             status, duration_ms, caller, trace_id) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Inserts a write's samples, in order, with as few statements as
/// [`SAMPLE_CHUNKS`] allows.
fn insert_samples(tx: &Connection, w: &IngestWrite) -> StoreResult<()> {
    let mut rest = &w.samples[..];
    for size in SAMPLE_CHUNKS {
        if rest.len() < size {
            continue;
        }
        let mut stmt = tx.prepare_cached(&samples_sql(size)).map_err(db)?;
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(size * 11);
            for s in chunk {
                values.extend_from_slice(&[
                    &w.tenant,
                    &w.service,
                    &s.timestamp_ms,
                    &s.instance,
                    &s.method,
                    &s.path,
                    &s.route,
                    &s.status,
                    &s.duration_ms,
                    &s.caller,
                    &s.trace_id,
                ]);
            }
            stmt.execute(rusqlite::params_from_iter(values))
                .map_err(db)?;
            rest = tail;
        }
    }
    Ok(())
}

/// Writes one ingest inside the caller's transaction (see [`ingest_group`]).
fn ingest_one(tx: &Connection, w: &IngestWrite) -> StoreResult<IngestOutcome> {
    if let Some(id) = &w.batch_id {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO batches (tenant, service, batch_id, received_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db)?
            .execute(params![w.tenant, w.service, id, w.received_ms])
            .map_err(db)?;
        if inserted == 0 {
            return Ok(IngestOutcome::Duplicate);
        }
    }
    let mut marked: Vec<UnixMs> = Vec::new();
    for b in &w.buckets {
        let key = params![
            b.resolution.code(),
            w.tenant,
            b.start_ms,
            b.key.service,
            b.key.method,
            b.key.route,
            b.key.status_class,
            b.key.caller
        ];
        let existing = tx
            .prepare_cached(
                "SELECT count, errors, satisfied, tolerating, sketch, last_seen_ms FROM buckets
                 WHERE resolution = ?1 AND tenant = ?2 AND start_ms = ?3 AND service = ?4
                   AND method = ?5 AND route = ?6 AND status_class = ?7 AND caller = ?8",
            )
            .map_err(db)?
            .query_row(key, |r| stats_from_row(r, 0))
            .optional()
            .map_err(db)?;
        match existing {
            // An UPDATE in place leaves the primary key and the time index
            // alone, where INSERT OR REPLACE would delete and re-insert both.
            Some(mut stats) => {
                stats.merge(&b.stats);
                tx.prepare_cached(
                    "UPDATE buckets SET count = ?9, errors = ?10, satisfied = ?11, tolerating = ?12,
                         sketch = ?13, last_seen_ms = ?14
                     WHERE resolution = ?1 AND tenant = ?2 AND start_ms = ?3 AND service = ?4
                       AND method = ?5 AND route = ?6 AND status_class = ?7 AND caller = ?8",
                )
                .map_err(db)?
                .execute(params![
                    b.resolution.code(),
                    w.tenant,
                    b.start_ms,
                    b.key.service,
                    b.key.method,
                    b.key.route,
                    b.key.status_class,
                    b.key.caller,
                    u64_to_sql(stats.count),
                    u64_to_sql(stats.errors),
                    u64_to_sql(stats.satisfied),
                    u64_to_sql(stats.tolerating),
                    encode_sketch(&stats.duration_ms),
                    stats.last_seen_ms,
                ])
                .map_err(db)?;
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO buckets (resolution, tenant, start_ms, service, method, route,
                         status_class, caller, count, errors, satisfied, tolerating, sketch, last_seen_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(db)?
                .execute(params![
                    b.resolution.code(),
                    w.tenant,
                    b.start_ms,
                    b.key.service,
                    b.key.method,
                    b.key.route,
                    b.key.status_class,
                    b.key.caller,
                    u64_to_sql(b.stats.count),
                    u64_to_sql(b.stats.errors),
                    u64_to_sql(b.stats.satisfied),
                    u64_to_sql(b.stats.tolerating),
                    encode_sketch(&b.stats.duration_ms),
                    b.stats.last_seen_ms,
                ])
                .map_err(db)?;
            }
        }
        if let Some(target) = b.resolution.target() {
            let period = target.floor(b.start_ms);
            if !marked.contains(&period) {
                mark_dirty(tx, target, &w.tenant, period)?;
                marked.push(period);
            }
        }
    }
    for p in &w.custom {
        let mut p = p.clone();
        p.resolution = Resolution::Minute;
        p.start_ms = Resolution::Minute.floor(p.start_ms);
        p.key.service.clone_from(&w.service);
        upsert_custom(tx, &w.tenant, &p, true)?;
        let period = Resolution::FiveMinutes.floor(p.start_ms);
        if !marked.contains(&period) {
            mark_dirty(tx, Resolution::FiveMinutes, &w.tenant, period)?;
            marked.push(period);
        }
    }
    insert_samples(tx, w)?;
    tx.prepare_cached(
        "INSERT INTO services (tenant, service, last_seen_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, service) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
    )
    .map_err(db)?
    .execute(params![w.tenant, w.service, w.received_ms])
    .map_err(db)?;
    Ok(IngestOutcome::Stored)
}

/// Most ingest writes committed together.
const MAX_GROUP: usize = 256;

/// Group commit: writes every queued ingest in one transaction (one disk
/// sync), each inside its own savepoint so one failing write is rolled
/// back alone (a write alone in its group needs none: its transaction
/// rolls back); then answers each. A failed commit fails them all.
fn ingest_group(conn: &mut Connection, jobs: Vec<Job>) {
    let run = |conn: &mut Connection,
               jobs: &[Job]|
     -> rusqlite::Result<Vec<StoreResult<IngestOutcome>>> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let [job] = jobs {
            // Alone in its group: the transaction is the write's own, so
            // no savepoint (and no sub-journal of every page it touches)
            // is needed; a failed write rolls back with it.
            let result = ingest_one(&tx, &job.write);
            if result.is_ok() {
                tx.commit()?;
            }
            return Ok(vec![result]);
        }
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let sp = tx.savepoint()?;
            let result = ingest_one(&sp, &job.write);
            if result.is_ok() {
                sp.commit()?;
            }
            // An uncommitted savepoint rolls back when dropped.
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    };
    match run(conn, &jobs) {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.done.send(result);
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.done.send(Err(StoreError::sqlite(copy_of(&e))));
            }
        }
    }
}

/// A copy of a failed group commit's error, one for each write of the
/// group. SQLite's own failures (all that beginning, a savepoint or a
/// commit report) copy exactly; any other driver error is carried by its
/// text as a generic `SQLITE_ERROR`.
fn copy_of(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Columns [`read_buckets_sync`] reads, in its order.
const READ_COLS: &str = "start_ms, tenant, service, method, route, status_class,
    count, errors, satisfied, tolerating, sketch, last_seen_ms, caller";

/// The statement [`read_buckets_sync`] runs: parameters resolution,
/// tenant, (service,) start and end. Totals name their index: without
/// table statistics SQLite would rather range-scan the primary key, every
/// route row of the window included.
fn read_sql(one_service: bool, series: SeriesSelect) -> String {
    let (index, filter) = match (series, one_service) {
        (SeriesSelect::Totals, true) => {
            (" INDEXED BY buckets_totals_by_service", " AND method = ''")
        }
        (SeriesSelect::Totals, false) => (" INDEXED BY buckets_totals_by_time", " AND method = ''"),
        (SeriesSelect::Routes, _) => ("", " AND method <> ''"),
        (SeriesSelect::All, _) => ("", ""),
    };
    if one_service {
        format!(
            "SELECT {READ_COLS} FROM buckets{index} WHERE resolution = ?1 AND tenant = ?2
               AND service = ?3 AND start_ms >= ?4 AND start_ms < ?5{filter}"
        )
    } else {
        format!(
            "SELECT {READ_COLS} FROM buckets{index} WHERE resolution = ?1 AND tenant = ?2
               AND start_ms >= ?3 AND start_ms < ?4{filter}"
        )
    }
}

/// [`Store::route_sums`] without building a `Sketch` per row: each blob
/// is decoded straight into its route's [`StatsSum`].
fn route_sums_sync(conn: &Connection, q: &BucketQuery) -> StoreResult<Vec<RouteSum>> {
    // Method, then route: looked up by `&str`, so a row allocates nothing.
    let mut by: BTreeMap<String, BTreeMap<String, StatsSum>> = BTreeMap::new();
    let sql = "SELECT method, route, count, errors, satisfied, tolerating, sketch, last_seen_ms
         FROM buckets WHERE resolution = ?1 AND tenant = ?2 AND service = ?3
           AND start_ms >= ?4 AND start_ms < ?5 AND method <> ''";
    let sql_all = "SELECT method, route, count, errors, satisfied, tolerating, sketch, last_seen_ms
         FROM buckets WHERE resolution = ?1 AND tenant = ?2
           AND start_ms >= ?3 AND start_ms < ?4 AND method <> ''";
    let mut stmt;
    let mut rows = match &q.service {
        Some(service) => {
            stmt = conn.prepare_cached(sql).map_err(db)?;
            stmt.query(params![
                q.resolution.code(),
                q.tenant,
                service,
                q.start_ms,
                q.end_ms
            ])
        }
        None => {
            stmt = conn.prepare_cached(sql_all).map_err(db)?;
            stmt.query(params![q.resolution.code(), q.tenant, q.start_ms, q.end_ms])
        }
    }
    .map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        let counts = BucketStats {
            count: sql_to_u64(r.get(2).map_err(db)?),
            errors: sql_to_u64(r.get(3).map_err(db)?),
            satisfied: sql_to_u64(r.get(4).map_err(db)?),
            tolerating: sql_to_u64(r.get(5).map_err(db)?),
            duration_ms: vitals::Sketch::new(),
            last_seen_ms: r.get(7).map_err(db)?,
        };
        let method = r
            .get_ref(0)
            .map_err(db)?
            .as_str()
            .map_err(|e| db(e.into()))?;
        let route = r
            .get_ref(1)
            .map_err(db)?
            .as_str()
            .map_err(|e| db(e.into()))?;
        if !by.contains_key(method) {
            by.insert(method.to_string(), BTreeMap::new());
        }
        let routes = by
            .get_mut(method)
            .ok_or_else(|| StoreError::Task("route sums: method vanished".into()))?;
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), StatsSum::default());
        }
        let sum = routes
            .get_mut(route)
            .ok_or_else(|| StoreError::Task("route sums: route vanished".into()))?;
        match r.get_ref(6).map_err(db)? {
            rusqlite::types::ValueRef::Blob(b) => sum
                .add_encoded(&counts, b)
                .map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))?,
            other => sum.add(&BucketStats {
                duration_ms: decode_sketch(other)?,
                ..counts
            }),
        }
    }
    Ok(by
        .into_iter()
        .flat_map(|(method, routes)| {
            routes.into_iter().map(move |(route, sum)| RouteSum {
                method: method.clone(),
                route,
                stats: sum.finish(),
            })
        })
        .collect())
}

/// Deletes `period`'s rows from `table` (`buckets` or `custom_points`),
/// before a rollup writes their replacement.
fn clear_period(tx: &Connection, table: &str, period: &DirtyPeriod) -> StoreResult<()> {
    tx.prepare_cached(&format!(
        "DELETE FROM {table} WHERE resolution = ?1 AND tenant = ?2 AND start_ms = ?3"
    ))
    .map_err(db)?
    .execute(params![
        period.resolution.code(),
        period.tenant,
        period.start_ms
    ])
    .map_err(db)?;
    Ok(())
}

fn read_buckets_sync(conn: &Connection, q: &BucketQuery) -> StoreResult<Vec<Bucket>> {
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String, SeriesKey, BucketStats)> {
        let stats = stats_from_row(r, 6)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            SeriesKey {
                service: r.get(2)?,
                method: r.get(3)?,
                route: r.get(4)?,
                status_class: r.get(5)?,
                caller: r.get(12)?,
            },
            stats,
        ))
    };
    let rows: Vec<_> = match &q.service {
        Some(service) => conn
            .prepare_cached(&read_sql(true, q.series))
            .map_err(db)?
            .query_map(
                params![q.resolution.code(), q.tenant, service, q.start_ms, q.end_ms],
                map,
            )
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?,
        None => conn
            .prepare_cached(&read_sql(false, q.series))
            .map_err(db)?
            .query_map(
                params![q.resolution.code(), q.tenant, q.start_ms, q.end_ms],
                map,
            )
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?,
    };
    Ok(rows
        .into_iter()
        .map(|(start_ms, tenant, key, stats)| Bucket {
            tenant,
            resolution: q.resolution,
            start_ms,
            key,
            stats,
        })
        .collect())
}

impl Store for SqliteStore {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Job { write, done });
        let pending = self.pending.clone();
        let run = self.with(move |c| {
            // Whoever holds the connection takes every queued write; if
            // another task already took ours, there is nothing to do.
            loop {
                let jobs: Vec<Job> = {
                    let mut q = pending.lock().unwrap_or_else(|p| p.into_inner());
                    let n = q.len().min(MAX_GROUP);
                    q.drain(..n).collect()
                };
                if jobs.is_empty() {
                    return Ok(());
                }
                ingest_group(c, jobs);
            }
        });
        Box::pin(async move {
            run.await?;
            answer
                .await
                .map_err(|_| StoreError::Task("the ingest write was dropped unanswered".into()))?
        })
    }

    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        self.with(move |c| read_buckets_sync(c, &query))
    }

    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        self.with(move |c| read_custom_sync(c, &query))
    }

    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            clear_period(&tx, "custom_points", &period)?;
            for p in &points {
                let mut p = p.clone();
                p.resolution = period.resolution;
                p.start_ms = period.start_ms;
                upsert_custom(&tx, &period.tenant, &p, false)?;
            }
            tx.commit().map_err(db)
        })
    }

    fn route_sums(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<RouteSum>>> {
        self.with(move |c| route_sums_sync(c, &query))
    }

    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        self.with(move |c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            c.prepare_cached(
                "SELECT tenant, start_ms, generation FROM dirty_periods
                 WHERE resolution = ?1 AND start_ms < ?2 ORDER BY start_ms LIMIT ?3",
            )
            .map_err(db)?
            .query_map(params![resolution.code(), before_ms, limit], |r| {
                Ok(DirtyPeriod {
                    resolution,
                    tenant: r.get(0)?,
                    start_ms: r.get(1)?,
                    generation: r.get(2)?,
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            clear_period(&tx, "buckets", &period)?;
            for b in &buckets {
                let mut b = b.clone();
                b.tenant.clone_from(&period.tenant);
                b.resolution = period.resolution;
                b.start_ms = period.start_ms;
                insert_bucket(&tx, &b)?;
            }
            if let Some(target) = period.resolution.target() {
                mark_dirty(&tx, target, &period.tenant, target.floor(period.start_ms))?;
            }
            tx.prepare_cached(
                "DELETE FROM dirty_periods WHERE resolution = ?1 AND tenant = ?2 AND start_ms = ?3
                   AND generation = ?4",
            )
            .map_err(db)?
            .execute(params![
                period.resolution.code(),
                period.tenant,
                period.start_ms,
                period.generation
            ])
            .map_err(db)?;
            tx.commit().map_err(db)
        })
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM buckets WHERE resolution = ?1 AND start_ms < ?2",
                    params![resolution.code(), before_ms],
                )
                .map_err(db)?;
            let custom = c
                .execute(
                    "DELETE FROM custom_points WHERE resolution = ?1 AND start_ms < ?2",
                    params![resolution.code(), before_ms],
                )
                .map_err(db)?;
            let n = n + custom;
            c.execute(
                "DELETE FROM dirty_periods WHERE resolution = ?1 AND start_ms < ?2",
                params![resolution.code(), before_ms],
            )
            .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM samples WHERE timestamp_ms < ?1", [before_ms])
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM batches WHERE received_ms < ?1", [before_ms])
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        self.with(move |c| {
            c.prepare_cached(
                "SELECT service, last_seen_ms FROM services WHERE tenant = ?1 ORDER BY service",
            )
            .map_err(db)?
            .query_map([tenant], |r| {
                Ok(ServiceRecord {
                    service: r.get(0)?,
                    last_seen_ms: r.get(1)?,
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        self.with(move |c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            c.prepare_cached(
                "SELECT timestamp_ms, instance, method, path, route, status, duration_ms, caller, trace_id
                 FROM samples WHERE tenant = ?1 AND service = ?2
                 ORDER BY timestamp_ms DESC, id DESC LIMIT ?3",
            )
            .map_err(db)?
            .query_map(params![tenant, service, limit], |r| {
                Ok(Sample {
                    timestamp_ms: r.get(0)?,
                    instance: r.get(1)?,
                    method: r.get(2)?,
                    path: r.get(3)?,
                    route: r.get(4)?,
                    status: r.get(5)?,
                    duration_ms: r.get(6)?,
                    caller: r.get(7)?,
                    trace_id: r.get(8)?,
                })
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO api_keys (hash, tenant, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![key.hash, key.tenant, key.role.as_str(), key.created_ms],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::DuplicateKey);
            }
            Ok(())
        })
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        self.with(move |c| {
            let row = c
                .prepare_cached("SELECT tenant, role, created_ms FROM api_keys WHERE hash = ?1")
                .map_err(db)?
                .query_row([&hash], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .optional()
                .map_err(db)?;
            row.map(|(tenant, role, created_ms)| {
                let role: Role = role.parse().map_err(StoreError::Corrupt)?;
                Ok(KeyRecord {
                    hash,
                    tenant,
                    role,
                    created_ms,
                })
            })
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::ValueRef;

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

    /// The plan SQLite picks for `sql` (the detail column, joined).
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        rows.join("; ")
    }

    #[test]
    fn reading_totals_uses_the_totals_indexes() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn, MIGRATIONS.len()).expect("migrate");
        let explain = |one: bool, series| {
            let sql = read_sql(one, series)
                .replace("?1", "60")
                .replace("?2", "'t'")
                .replace("?3", if one { "'s'" } else { "0" })
                .replace("?4", if one { "0" } else { "10" })
                .replace("?5", "10");
            plan(&conn, &sql)
        };
        let one = explain(true, SeriesSelect::Totals);
        assert!(
            one.contains("USING INDEX buckets_totals_by_service (resolution=? AND tenant=? AND service=? AND method=? AND start_ms>? AND start_ms<?)"),
            "{one}"
        );
        let all = explain(false, SeriesSelect::Totals);
        assert!(
            all.contains("USING INDEX buckets_totals_by_time (resolution=? AND tenant=? AND method=? AND start_ms>? AND start_ms<?)"),
            "{all}"
        );
        // Routes of one service: one primary-key range.
        let routes = explain(true, SeriesSelect::Routes);
        assert!(routes.contains("USING PRIMARY KEY (resolution=? AND tenant=? AND service=? AND start_ms>? AND start_ms<?)"), "{routes}");
    }

    #[test]
    fn sketches_read_as_blob_or_legacy_json_and_refuse_garbage() {
        let mut s = vitals::Sketch::new();
        s.record(12.5);
        s.record(0.0);
        let blob = encode_sketch(&s);
        assert_eq!(decode_sketch(ValueRef::Blob(&blob)).ok(), Some(s.clone()));
        let json = serde_json::to_vec(&s).unwrap_or_default();
        assert_eq!(decode_sketch(ValueRef::Text(&json)).ok(), Some(s));
        assert!(decode_sketch(ValueRef::Blob(b"\x07junk")).is_err());
        assert!(decode_sketch(ValueRef::Text(b"{nope")).is_err());
        assert!(decode_sketch(ValueRef::Integer(3)).is_err());
    }
}
