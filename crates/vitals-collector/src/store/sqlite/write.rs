//! Writes: ingest by group commit (queued writes share one transaction
//! and one disk sync, each in its own savepoint), bucket merges in place,
//! dirty marks, rollup replacements, retention deletes and new keys.

use super::custom::upsert_custom;
use super::rows::{db, encode_sketch, stats_from_row, u64_to_sql};
use crate::model::{
    Bucket, CustomPoint, DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord, Resolution, UnixMs,
};
use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// An ingest write waiting for the next group commit.
pub(super) struct Job {
    write: IngestWrite,
    done: tokio::sync::oneshot::Sender<StoreResult<IngestOutcome>>,
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

pub(super) fn insert_bucket(tx: &Connection, b: &Bucket) -> StoreResult<()> {
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

/// The ingest writes waiting for the next group commit, shared by the
/// store's clones.
pub(super) type Queue = Arc<Mutex<VecDeque<Job>>>;

/// Queues `write` for the next group commit; the answer comes on the
/// returned channel once [`commit_queued`] has written it.
pub(super) fn enqueue(
    queue: &Queue,
    write: IngestWrite,
) -> tokio::sync::oneshot::Receiver<StoreResult<IngestOutcome>> {
    let (done, answer) = tokio::sync::oneshot::channel();
    queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(Job { write, done });
    answer
}

/// [`Store::ingest`](crate::store::Store::ingest), on the connection:
/// commits every queued write in groups (see [`ingest_group`]). Whoever
/// holds the connection takes every queued write; if another task already
/// took ours, there is nothing to do.
pub(super) fn commit_queued(c: &mut Connection, queue: &Queue) -> StoreResult<()> {
    loop {
        let jobs: Vec<Job> = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(MAX_GROUP);
            q.drain(..n).collect()
        };
        if jobs.is_empty() {
            return Ok(());
        }
        ingest_group(c, jobs);
    }
}

/// Replaces `period`'s buckets with `buckets`, marks the next coarser
/// period dirty and clears `period`'s mark if its generation is unchanged.
pub(super) fn replace_period(
    c: &mut Connection,
    period: &DirtyPeriod,
    buckets: &[Bucket],
) -> StoreResult<()> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    clear_period(&tx, "buckets", period)?;
    for b in buckets {
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
}

/// Replaces `period`'s custom points with `points`; dirty marks are left
/// alone.
pub(super) fn replace_custom_period(
    c: &mut Connection,
    period: &DirtyPeriod,
    points: &[CustomPoint],
) -> StoreResult<()> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    clear_period(&tx, "custom_points", period)?;
    for p in points {
        let mut p = p.clone();
        p.resolution = period.resolution;
        p.start_ms = period.start_ms;
        upsert_custom(&tx, &period.tenant, &p, false)?;
    }
    tx.commit().map_err(db)
}

/// Deletes buckets, custom points and dirty marks at `resolution` that
/// start before `before_ms`; returns the buckets and points removed.
pub(super) fn drop_buckets_before(
    c: &Connection,
    resolution: Resolution,
    before_ms: UnixMs,
) -> StoreResult<u64> {
    let buckets = c
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
    c.execute(
        "DELETE FROM dirty_periods WHERE resolution = ?1 AND start_ms < ?2",
        params![resolution.code(), before_ms],
    )
    .map_err(db)?;
    Ok((buckets + custom) as u64)
}

/// Deletes samples older than `before_ms`; returns how many.
pub(super) fn drop_samples_before(c: &Connection, before_ms: UnixMs) -> StoreResult<u64> {
    let n = c
        .execute("DELETE FROM samples WHERE timestamp_ms < ?1", [before_ms])
        .map_err(db)?;
    Ok(n as u64)
}

/// Forgets batch ids received before `before_ms`; returns how many.
pub(super) fn drop_batch_ids_before(c: &Connection, before_ms: UnixMs) -> StoreResult<u64> {
    let n = c
        .execute("DELETE FROM batches WHERE received_ms < ?1", [before_ms])
        .map_err(db)?;
    Ok(n as u64)
}

/// Stores a new key; [`StoreError::DuplicateKey`] when its hash exists.
pub(super) fn create_key(c: &Connection, key: &KeyRecord) -> StoreResult<()> {
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
}

/// Deletes the keys whose hash starts with `prefix` and returns them, in
/// one transaction.
pub(super) fn revoke_keys(c: &mut Connection, prefix: &str) -> StoreResult<Vec<KeyRecord>> {
    let tx = c.transaction().map_err(db)?;
    let rows = tx
        .prepare(
            "SELECT hash, tenant, role, created_ms FROM api_keys
             WHERE substr(hash, 1, length(?1)) = ?1 ORDER BY created_ms, hash",
        )
        .map_err(db)?
        .query_map([prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, UnixMs>(3)?,
            ))
        })
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    let mut doomed = Vec::with_capacity(rows.len());
    for (hash, tenant, role, created_ms) in rows {
        tx.execute("DELETE FROM api_keys WHERE hash = ?1", [&hash])
            .map_err(db)?;
        doomed.push(KeyRecord {
            hash,
            tenant,
            role: role.parse().map_err(StoreError::Corrupt)?,
            created_ms,
        });
    }
    tx.commit().map_err(db)?;
    Ok(doomed)
}
