//! Custom metric points in SQLite: the `custom_points` table (migration
//! 2), merged at ingest with one upsert per point (the later value by time
//! is `last`, min and max widen) and replaced by rollups.

use super::rows::db;
use crate::model::{CustomKey, CustomKind, CustomPoint, CustomQuery, CustomStats};
use crate::store::StoreResult;
use rusqlite::{Connection, params};

fn kind_str(k: CustomKind) -> &'static str {
    match k {
        CustomKind::Counter => "counter",
        CustomKind::Gauge => "gauge",
    }
}

fn kind_of(s: &str) -> rusqlite::Result<CustomKind> {
    match s {
        "counter" => Ok(CustomKind::Counter),
        "gauge" => Ok(CustomKind::Gauge),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("custom metric kind {other:?}").into(),
        )),
    }
}

/// Inserts a custom point; with `merge`, an existing one with the same
/// key is merged (latest value by time, min, max), else replaced.
pub(super) fn upsert_custom(
    tx: &Connection,
    tenant: &str,
    p: &CustomPoint,
    merge: bool,
) -> StoreResult<()> {
    let sql = if merge {
        "INSERT INTO custom_points (resolution, tenant, service, start_ms, name, labels, instance,
             kind, last, last_ms, min, max)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (resolution, tenant, service, start_ms, name, labels, instance) DO UPDATE SET
             kind = CASE WHEN excluded.last_ms >= last_ms THEN excluded.kind ELSE kind END,
             last = CASE WHEN excluded.last_ms >= last_ms THEN excluded.last ELSE last END,
             last_ms = max(last_ms, excluded.last_ms),
             min = min(min, excluded.min),
             max = max(max, excluded.max)"
    } else {
        "INSERT OR REPLACE INTO custom_points (resolution, tenant, service, start_ms, name, labels,
             instance, kind, last, last_ms, min, max)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    };
    tx.prepare_cached(sql)
        .map_err(db)?
        .execute(params![
            p.resolution.code(),
            tenant,
            p.key.service,
            p.start_ms,
            p.key.name,
            p.key.labels,
            p.key.instance,
            kind_str(p.stats.kind),
            p.stats.last,
            p.stats.last_ms,
            p.stats.min,
            p.stats.max,
        ])
        .map_err(db)?;
    Ok(())
}

/// Custom points matching `q`.
pub(super) fn read(conn: &Connection, q: &CustomQuery) -> StoreResult<Vec<CustomPoint>> {
    // One statement per filter shape, so each can use its index (an
    // `?5 IS NULL OR service = ?5` filter would scan the tenant's range).
    let filter = match (&q.service, &q.name) {
        (Some(_), Some(_)) => "AND service = ?5 AND name = ?6",
        (Some(_), None) => "AND service = ?5 AND ?6 IS NULL",
        (None, Some(_)) => "AND ?5 IS NULL AND name = ?6",
        (None, None) => "AND ?5 IS NULL AND ?6 IS NULL",
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT start_ms, service, name, labels, instance, kind, last, last_ms, min, max
             FROM custom_points WHERE resolution = ?1 AND tenant = ?2
               AND start_ms >= ?3 AND start_ms < ?4 {filter}"
        ))
        .map_err(db)?;
    let rows = stmt
        .query_map(
            params![
                q.resolution.code(),
                q.tenant,
                q.start_ms,
                q.end_ms,
                q.service,
                q.name
            ],
            |r| {
                Ok(CustomPoint {
                    tenant: q.tenant.clone(),
                    resolution: q.resolution,
                    start_ms: r.get(0)?,
                    key: CustomKey {
                        service: r.get(1)?,
                        name: r.get(2)?,
                        labels: r.get(3)?,
                        instance: r.get(4)?,
                    },
                    stats: CustomStats {
                        kind: kind_of(&r.get::<_, String>(5)?)?,
                        last: r.get(6)?,
                        last_ms: r.get(7)?,
                        min: r.get(8)?,
                        max: r.get(9)?,
                    },
                })
            },
        )
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}
