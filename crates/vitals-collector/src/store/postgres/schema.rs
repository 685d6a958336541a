//! The PostgreSQL schema: migrations versioned in `schema_migrations`, run
//! at open inside one transaction holding an advisory lock (so two
//! collectors starting at once migrate once), and the backfill of
//! per-service totals that one of them needs.

use super::PostgresStore;
use super::failure::{Failure, db};
use super::rows::{bucket_from_row, bucket_table, rows_of};
use super::write::insert_rows;
use crate::model::{Bucket, Resolution, totals_of};
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;
use std::collections::BTreeMap;

/// First key of the advisory lock serializing migrations (the second is
/// the schema's hash).
const LOCK_MIGRATE: i32 = 0x7669_7401;

/// Schema migrations, applied in order; never edit a released entry.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // Request journeys: the samples of one trace, across services
    // (inherited by each day partition).
    r#"
    CREATE INDEX samples_by_trace ON samples (tenant, trace_id) WHERE trace_id IS NOT NULL;
    "#,
    // 4: the bounded sets every collector on this database shares
    // (services per tenant, routes per service; see `admission.rs`).
    r#"
    CREATE TABLE limit_members (
        tenant text NOT NULL,
        kind text NOT NULL,
        owner text NOT NULL,
        member text NOT NULL,
        admitted_ms bigint NOT NULL,
        PRIMARY KEY (tenant, kind, owner, member)
    );
    "#,
    // 5: alerting: rules written over the API, each alert's state, and the
    // history of state changes (see `alerts.rs`). History is small (one
    // row per state change), so a plain table with a time index.
    r#"
    CREATE TABLE alert_rules (
        tenant text NOT NULL,
        name text NOT NULL,
        spec text NOT NULL,
        updated_ms bigint NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE alert_states (
        tenant text NOT NULL,
        rule text NOT NULL,
        service text NOT NULL,
        state text NOT NULL,
        PRIMARY KEY (tenant, rule, service)
    );
    CREATE TABLE alert_history (
        id bigserial PRIMARY KEY,
        tenant text NOT NULL,
        rule text NOT NULL,
        service text NOT NULL,
        at_ms bigint NOT NULL,
        from_state text NOT NULL,
        to_state text NOT NULL,
        value double precision,
        labels text NOT NULL
    );
    CREATE INDEX alert_history_by_tenant ON alert_history (tenant, at_ms);
    CREATE INDEX alert_history_by_time ON alert_history (at_ms);
    "#,
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
pub(super) fn before_totals() -> usize {
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

impl PostgresStore {
    /// Runs the first `upto` migrations not run yet.
    pub(super) async fn migrate(&self, upto: usize) -> StoreResult<()> {
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
}
