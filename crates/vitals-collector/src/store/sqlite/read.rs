//! Reads: buckets (route series, per-service totals or both, each with
//! the index that serves it), route sums decoded straight into a
//! [`StatsSum`], dirty periods, services, recent samples, the samples of
//! one trace, and keys.

use super::rows::{db, decode_sketch, sql_to_u64, stats_from_row};
use crate::model::{
    Bucket, BucketQuery, BucketStats, DirtyPeriod, KeyRecord, Resolution, Role, RouteSum, Sample,
    SeriesKey, SeriesSelect, ServiceRecord, StatsSum, TraceSample, UnixMs,
};
use crate::store::{StoreError, StoreResult, sort_journey};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

/// Columns [`buckets`] reads, in its order.
const READ_COLS: &str = "start_ms, tenant, service, method, route, status_class,
    count, errors, satisfied, tolerating, sketch, last_seen_ms, caller";

/// The statement [`buckets`] runs: parameters resolution,
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

/// [`Store::route_sums`](crate::store::Store::route_sums) without building a `Sketch` per row: each blob
/// is decoded straight into its route's [`StatsSum`].
pub(super) fn route_sums(conn: &Connection, q: &BucketQuery) -> StoreResult<Vec<RouteSum>> {
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

pub(super) fn buckets(conn: &Connection, q: &BucketQuery) -> StoreResult<Vec<Bucket>> {
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

/// Up to `limit` dirty periods at `resolution` starting before `before_ms`,
/// oldest first.
pub(super) fn dirty_periods(
    c: &Connection,
    resolution: Resolution,
    before_ms: UnixMs,
    limit: usize,
) -> StoreResult<Vec<DirtyPeriod>> {
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
}

/// Starts of `tenant`'s dirty periods at `resolution` in `[start, end)`,
/// ascending (the primary key's order).
pub(super) fn dirty_starts(
    c: &Connection,
    tenant: &str,
    resolution: Resolution,
    start_ms: UnixMs,
    end_ms: UnixMs,
) -> StoreResult<Vec<UnixMs>> {
    c.prepare_cached(
        "SELECT start_ms FROM dirty_periods
         WHERE resolution = ?1 AND tenant = ?2 AND start_ms >= ?3 AND start_ms < ?4
         ORDER BY start_ms",
    )
    .map_err(db)?
    .query_map(params![resolution.code(), tenant, start_ms, end_ms], |r| {
        r.get(0)
    })
    .map_err(db)?
    .collect::<Result<_, _>>()
    .map_err(db)
}

/// Up to `limit` samples of `tenant` carrying `trace_id`, oldest first.
pub(super) fn trace_samples(
    c: &Connection,
    tenant: &str,
    trace_id: &str,
    limit: usize,
) -> StoreResult<Vec<TraceSample>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out: Vec<TraceSample> = c
        .prepare_cached(
            "SELECT timestamp_ms, instance, method, path, route, status, duration_ms, caller,
                 trace_id, service
             FROM samples WHERE tenant = ?1 AND trace_id = ?2
             ORDER BY timestamp_ms, id LIMIT ?3",
        )
        .map_err(db)?
        .query_map(params![tenant, trace_id, limit], |r| {
            Ok(TraceSample {
                sample: sample_from_row(r)?,
                service: r.get(9)?,
            })
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    sort_journey(&mut out);
    Ok(out)
}

/// A sample from the first nine columns of `samples`' usual select.
fn sample_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sample> {
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
}

/// The tenant's services, by name.
pub(super) fn services(c: &Connection, tenant: &str) -> StoreResult<Vec<ServiceRecord>> {
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
}

/// The newest `limit` samples of one service, newest first.
pub(super) fn recent_samples(
    c: &Connection,
    tenant: &str,
    service: &str,
    limit: usize,
) -> StoreResult<Vec<Sample>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.prepare_cached(
        "SELECT timestamp_ms, instance, method, path, route, status, duration_ms, caller, trace_id
         FROM samples WHERE tenant = ?1 AND service = ?2
         ORDER BY timestamp_ms DESC, id DESC LIMIT ?3",
    )
    .map_err(db)?
    .query_map(params![tenant, service, limit], sample_from_row)
    .map_err(db)?
    .collect::<Result<_, _>>()
    .map_err(db)
}

/// The key with this hash, if any.
pub(super) fn key_by_hash(c: &Connection, hash: String) -> StoreResult<Option<KeyRecord>> {
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
}

/// Every key (of `tenant`, or all), oldest first.
pub(super) fn list_keys(c: &Connection, tenant: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT hash, tenant, role, created_ms FROM api_keys
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_ms, hash",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([tenant], |r| {
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
    rows.into_iter()
        .map(|(hash, tenant, role, created_ms)| {
            Ok(KeyRecord {
                hash,
                tenant,
                role: role.parse().map_err(StoreError::Corrupt)?,
                created_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::schema::{MIGRATIONS, migrate};
    use super::*;

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
}
