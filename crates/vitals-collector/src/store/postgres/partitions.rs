//! Day partitions: every bucket, custom and sample table is
//! range-partitioned by day on its period start (or sample time). A
//! partition is created when a write first needs it and a few days ahead;
//! retention drops whole partitions, never deletes rows in bulk. Creates
//! and drops of all collectors sharing a schema are serialized by an
//! advisory lock.

use super::PostgresStore;
use super::custom::custom_table;
use super::failure::db;
use super::rows::{bucket_table, sql_to_u64};
use crate::clock::now_ms;
use crate::model::{Resolution, UnixMs};
use crate::store::StoreResult;
use std::collections::BTreeSet;

/// One day in milliseconds.
pub(super) const DAY_MS: i64 = 86_400_000;
/// Days of partitions created ahead of today.
const DAYS_AHEAD: i64 = 2;
/// First key of the advisory lock serializing partition creates and drops
/// (the second is the schema's hash).
const LOCK_PARTITIONS: i32 = 0x7669_7402;

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

/// The day (since the epoch) holding `t`.
pub(super) fn day_of(t: UnixMs) -> i64 {
    t.div_euclid(DAY_MS)
}

impl PostgresStore {
    /// Creates today's and the next days' partitions of every table.
    pub(super) async fn create_ahead(&self, now: UnixMs) -> StoreResult<()> {
        let today = day_of(now);
        let needs: Vec<_> = PARTITIONED
            .iter()
            .flat_map(|t| (0..=DAYS_AHEAD).map(move |d| (*t, today + d)))
            .collect();
        self.ensure_partitions(needs).await
    }

    /// Creates the partitions in `needs` this process has not seen yet.
    pub(super) async fn ensure_partitions(
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

    /// Forgets which partitions exist (one was dropped under us).
    pub(super) fn forget_partitions(&self) {
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
    pub(super) async fn drop_partitions_before(
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

    /// [`Store::drop_buckets_before`](crate::store::Store::drop_buckets_before):
    /// drops the bucket and custom partitions at `resolution` that end by
    /// `before_ms` and their dirty marks, then creates the days ahead
    /// (retention runs regularly, so they stay ready).
    pub(super) async fn drop_bucket_partitions_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> StoreResult<u64> {
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
        self.create_ahead(now_ms()).await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
