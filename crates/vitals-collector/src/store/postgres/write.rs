//! Writes: one transaction per ingest (the batch id first, so a retry is
//! a no-op atomically with the data; buckets merged with `SELECT … FOR
//! UPDATE` and written with multi-row `UNNEST` statements; custom points,
//! dirty marks, samples and the service record), rollup replacements,
//! and keys. Statements are prepared once per pooled connection
//! (deadpool's statement cache), so each costs one round trip. A
//! transaction that deadlocks, or finds a partition dropped under it, runs
//! again ([`PostgresStore::retrying`]).

use super::PostgresStore;
use super::custom::{CustomRows, custom_rows_of, custom_table, upsert_custom};
use super::failure::{Failure, db};
use super::partitions::day_of;
use super::rows::{Columns, Row, Rows, bucket_table, decode_sketch, rows_of, sql_to_u64};
use crate::model::{
    Bucket, BucketStats, CustomPoint, DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord,
    Resolution, UnixMs,
};
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;
use std::collections::{BTreeSet, HashSet};

/// Attempts of one transaction that failed on a deadlock or a partition
/// dropped under it.
const MAX_ATTEMPTS: usize = 5;

/// Inserts `rows` into `table`; with `merge_conflicts` false an existing
/// row is left alone and its key returned (the caller merges it).
pub(super) async fn insert_rows(
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

impl PostgresStore {
    /// Runs `attempt` until it succeeds, retrying deadlocks and writes into
    /// a partition dropped meanwhile (after re-creating it).
    pub(super) async fn retrying<T, F, Fut>(
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

    /// [`Store::ingest`](crate::store::Store::ingest): the write's rows
    /// keyed in lock order, its partitions made sure of, then one
    /// transaction (run again on a deadlock).
    pub(super) async fn write_batch(&self, write: IngestWrite) -> StoreResult<IngestOutcome> {
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

    /// [`Store::write_rollup`](crate::store::Store::write_rollup).
    pub(super) async fn replace_period(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> StoreResult<()> {
        let mut buckets = buckets;
        for b in &mut buckets {
            b.start_ms = period.start_ms;
        }
        let rows = rows_of(&buckets);
        let needs = vec![(bucket_table(period.resolution), day_of(period.start_ms))];
        self.retrying(needs, || self.write_rollup_once(&period, &rows))
            .await
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

    /// [`Store::write_custom_rollup`](crate::store::Store::write_custom_rollup):
    /// replaces the period's custom points; dirty marks are left alone.
    pub(super) async fn replace_custom_period(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> StoreResult<()> {
        let mut points = points;
        for p in &mut points {
            p.start_ms = period.start_ms;
        }
        let rows = custom_rows_of(&points);
        let table = custom_table(period.resolution);
        let needs = vec![(table, day_of(period.start_ms))];
        self.retrying(needs, || async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = $1 AND start_ms = $2"),
                &[&period.tenant, &period.start_ms],
            )
            .await?;
            upsert_custom(&tx, table, &period.tenant, &rows, false).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// [`Store::drop_batch_ids_before`](crate::store::Store::drop_batch_ids_before).
    pub(super) async fn delete_batch_ids_before(&self, before_ms: UnixMs) -> StoreResult<u64> {
        let c = self.client().await?;
        c.execute("DELETE FROM batches WHERE received_ms < $1", &[&before_ms])
            .await
            .map_err(db)
    }

    /// [`Store::create_key`](crate::store::Store::create_key).
    pub(super) async fn insert_key(&self, key: KeyRecord) -> StoreResult<()> {
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
    }

    /// [`Store::revoke_keys`](crate::store::Store::revoke_keys): one
    /// statement, so two revocations never both report the same key.
    pub(super) async fn delete_keys(&self, prefix: String) -> StoreResult<Vec<KeyRecord>> {
        let c = self.client().await?;
        // `starts_with` rather than LIKE: the prefix is hex, but no
        // pattern character can then ever widen it.
        let rows = c
            .query(
                "DELETE FROM api_keys WHERE starts_with(hash, $1)
                 RETURNING hash, tenant, role, created_ms",
                &[&prefix],
            )
            .await
            .map_err(db)?;
        let mut keys = rows
            .iter()
            .map(|r| {
                Ok(KeyRecord {
                    hash: r.get(0),
                    tenant: r.get(1),
                    role: r.get::<_, &str>(2).parse().map_err(StoreError::Corrupt)?,
                    created_ms: r.get(3),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        keys.sort_by(|a, b| (a.created_ms, &a.hash).cmp(&(b.created_ms, &b.hash)));
        Ok(keys)
    }
}
