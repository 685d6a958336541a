//! Reads: buckets (route series, per-service totals or both, with a
//! literal filter so the planner can use the partial totals indexes),
//! dirty periods, services, recent samples, the samples of one trace, and
//! keys.

use super::PostgresStore;
use super::failure::db;
use super::rows::{bucket_from_row, bucket_table};
use crate::model::{
    Bucket, BucketQuery, DirtyPeriod, KeyRecord, Resolution, Role, Sample, SeriesSelect,
    ServiceRecord, TraceSample, UnixMs,
};
use crate::store::{StoreError, StoreResult, sort_journey};

impl PostgresStore {
    /// [`Store::read_buckets`](crate::store::Store::read_buckets).
    pub(super) async fn select_buckets(&self, q: BucketQuery) -> StoreResult<Vec<Bucket>> {
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
    }

    /// [`Store::dirty_periods`](crate::store::Store::dirty_periods).
    pub(super) async fn select_dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> StoreResult<Vec<DirtyPeriod>> {
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
    }

    /// [`Store::dirty_starts`](crate::store::Store::dirty_starts): from
    /// the primary key, ascending.
    pub(super) async fn select_dirty_starts(
        &self,
        tenant: String,
        resolution: Resolution,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> StoreResult<Vec<UnixMs>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT start_ms FROM dirty_periods
                 WHERE resolution = $1 AND tenant = $2 AND start_ms >= $3 AND start_ms < $4
                 ORDER BY start_ms",
                &[&(resolution.code() as i16), &tenant, &start_ms, &end_ms],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// [`Store::trace_samples`](crate::store::Store::trace_samples): from
    /// the `samples_by_trace` index of each day partition.
    pub(super) async fn select_trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> StoreResult<Vec<TraceSample>> {
        let c = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = c
            .query(
                "SELECT timestamp_ms, instance, method, path, route, status, duration_ms, caller,
                     trace_id, service
                 FROM samples WHERE tenant = $1 AND trace_id = $2
                 ORDER BY timestamp_ms, id LIMIT $3",
                &[&tenant, &trace_id, &limit],
            )
            .await
            .map_err(db)?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(TraceSample {
                    sample: sample_from_row(r)?,
                    service: r.get(9),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        sort_journey(&mut out);
        Ok(out)
    }

    /// [`Store::services`](crate::store::Store::services).
    pub(super) async fn select_services(&self, tenant: String) -> StoreResult<Vec<ServiceRecord>> {
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
    }

    /// [`Store::recent_samples`](crate::store::Store::recent_samples).
    pub(super) async fn select_recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> StoreResult<Vec<Sample>> {
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
        rows.iter().map(sample_from_row).collect()
    }

    /// [`Store::key_by_hash`](crate::store::Store::key_by_hash).
    pub(super) async fn select_key(&self, hash: String) -> StoreResult<Option<KeyRecord>> {
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
    }

    /// [`Store::list_keys`](crate::store::Store::list_keys).
    pub(super) async fn select_keys(&self, tenant: Option<String>) -> StoreResult<Vec<KeyRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT hash, tenant, role, created_ms FROM api_keys
                 WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_ms, hash",
                &[&tenant],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(KeyRecord {
                    hash: r.get(0),
                    tenant: r.get(1),
                    role: r.get::<_, &str>(2).parse().map_err(StoreError::Corrupt)?,
                    created_ms: r.get(3),
                })
            })
            .collect()
    }
}

/// A sample from the first nine columns of `samples`' usual select.
fn sample_from_row(r: &tokio_postgres::Row) -> StoreResult<Sample> {
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
}
