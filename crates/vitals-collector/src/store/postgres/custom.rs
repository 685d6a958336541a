//! Custom metric points in PostgreSQL: `custom_1m`, `custom_5m` and
//! `custom_1h`, partitioned by day like buckets; a series is keyed by a
//! SHA-256 of (service, name, labels, instance), written with one
//! multi-row `UNNEST` upsert (merging at ingest, replacing in rollups).

use super::PostgresStore;
use super::failure::{Failure, db};
use crate::model::{
    CustomKey, CustomKind, CustomPoint, CustomQuery, CustomStats, Resolution, UnixMs, merge_keyed,
};
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The custom points table of a resolution.
pub(super) fn custom_table(r: Resolution) -> &'static str {
    match r {
        Resolution::Minute => "custom_1m",
        Resolution::FiveMinutes => "custom_5m",
        Resolution::Hour => "custom_1h",
    }
}

/// A stable id of a custom series: SHA-256 over the length-prefixed fields.
fn custom_series_id(k: &CustomKey) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [&k.service, &k.name, &k.labels, &k.instance] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_vec()
}

fn kind_str(k: CustomKind) -> &'static str {
    match k {
        CustomKind::Counter => "counter",
        CustomKind::Gauge => "gauge",
    }
}

pub(super) type CustomRows = BTreeMap<(UnixMs, Vec<u8>), (CustomKey, CustomStats)>;

/// Custom points keyed and merged by `(start, series)`, in lock order.
pub(super) fn custom_rows_of<'a>(points: impl IntoIterator<Item = &'a CustomPoint>) -> CustomRows {
    merge_keyed(
        points.into_iter().map(|p| {
            (
                (p.start_ms, custom_series_id(&p.key)),
                (p.key.clone(), p.stats),
            )
        }),
        |have, more| have.1.merge(&more.1),
    )
}

/// Writes `rows` into `table`: merged into existing rows (`merge`), or
/// replacing them.
pub(super) async fn upsert_custom(
    tx: &impl GenericClient,
    table: &str,
    tenant: &str,
    rows: &CustomRows,
    merge: bool,
) -> Result<(), Failure> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut start = Vec::new();
    let mut id = Vec::new();
    let mut service = Vec::new();
    let mut name = Vec::new();
    let mut labels = Vec::new();
    let mut instance = Vec::new();
    let mut kind = Vec::new();
    let mut last = Vec::new();
    let mut last_ms = Vec::new();
    let mut min = Vec::new();
    let mut max = Vec::new();
    for ((s, i), (k, v)) in rows {
        start.push(*s);
        id.push(i.clone());
        service.push(k.service.as_str());
        name.push(k.name.as_str());
        labels.push(k.labels.as_str());
        instance.push(k.instance.as_str());
        kind.push(kind_str(v.kind));
        last.push(v.last);
        last_ms.push(v.last_ms);
        min.push(v.min);
        max.push(v.max);
    }
    let update = if merge {
        "kind = CASE WHEN excluded.last_ms >= t.last_ms THEN excluded.kind ELSE t.kind END,
         last = CASE WHEN excluded.last_ms >= t.last_ms THEN excluded.last ELSE t.last END,
         last_ms = GREATEST(t.last_ms, excluded.last_ms),
         min = LEAST(t.min, excluded.min),
         max = GREATEST(t.max, excluded.max)"
    } else {
        "kind = excluded.kind, last = excluded.last, last_ms = excluded.last_ms,
         min = excluded.min, max = excluded.max"
    };
    tx.execute(
        &format!(
            "INSERT INTO {table} AS t (tenant, start_ms, series_id, service, name, labels, instance,
                 kind, last, last_ms, min, max)
             SELECT $1, s, i, sv, nm, lb, ins, k, l, lm, mn, mx
             FROM unnest($2::int8[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::text[], $9::float8[], $10::int8[], $11::float8[], $12::float8[])
                 WITH ORDINALITY AS u(s, i, sv, nm, lb, ins, k, l, lm, mn, mx, n)
             ORDER BY n
             ON CONFLICT (tenant, start_ms, series_id) DO UPDATE SET {update}"
        ),
        &[
            &tenant, &start, &id, &service, &name, &labels, &instance, &kind, &last, &last_ms,
            &min, &max,
        ],
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    /// [`Store::read_custom`](crate::store::Store::read_custom).
    pub(super) async fn select_custom(&self, q: CustomQuery) -> StoreResult<Vec<CustomPoint>> {
        let table = custom_table(q.resolution);
        let c = self.client().await?;
        let rows = c
                .query(
                    &format!(
                        "SELECT start_ms, service, name, labels, instance, kind, last, last_ms, min, max
                         FROM {table} WHERE tenant = $1 AND start_ms >= $2 AND start_ms < $3
                           AND ($4::text IS NULL OR service = $4)
                           AND ($5::text IS NULL OR name = $5)"
                    ),
                    &[&q.tenant, &q.start_ms, &q.end_ms, &q.service, &q.name],
                )
                .await
                .map_err(db)?;
        rows.iter()
            .map(|r| {
                let kind = match r.get::<_, &str>(5) {
                    "counter" => CustomKind::Counter,
                    "gauge" => CustomKind::Gauge,
                    other => {
                        return Err(StoreError::Corrupt(format!("custom metric kind {other:?}")));
                    }
                };
                Ok(CustomPoint {
                    tenant: q.tenant.clone(),
                    resolution: q.resolution,
                    start_ms: r.get(0),
                    key: CustomKey {
                        service: r.get(1),
                        name: r.get(2),
                        labels: r.get(3),
                        instance: r.get(4),
                    },
                    stats: CustomStats {
                        kind,
                        last: r.get(6),
                        last_ms: r.get(7),
                        min: r.get(8),
                        max: r.get(9),
                    },
                })
            })
            .collect()
    }
}
