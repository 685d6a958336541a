//! The alerting tables: `alert_rules` (rules written over the API),
//! `alert_states` (one row per alert, its state as JSON) and
//! `alert_history` (every state change); and the tenants with services.

use super::failure::db;
use super::pool::PostgresStore;
use crate::model::{AlertEvent, AlertHistoryQuery, StoredAlert, StoredRule, UnixMs};
use crate::store::StoreResult;

impl PostgresStore {
    /// Every rule of `tenant`, or of every tenant.
    pub(super) async fn select_alert_rules(
        &self,
        tenant: Option<String>,
    ) -> StoreResult<Vec<StoredRule>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT tenant, name, spec, updated_ms FROM alert_rules
                 WHERE $1::text IS NULL OR tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| StoredRule {
                tenant: r.get(0),
                name: r.get(1),
                spec: r.get(2),
                updated_ms: r.get(3),
            })
            .collect())
    }

    /// Inserts a new rule or replaces an existing one.
    pub(super) async fn upsert_alert_rule(
        &self,
        rule: StoredRule,
        replace: bool,
    ) -> StoreResult<bool> {
        let c = self.client().await?;
        let n = if replace {
            c.execute(
                "UPDATE alert_rules SET spec = $3, updated_ms = $4 WHERE tenant = $1 AND name = $2",
                &[&rule.tenant, &rule.name, &rule.spec, &rule.updated_ms],
            )
            .await
        } else {
            c.execute(
                "INSERT INTO alert_rules (tenant, name, spec, updated_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&rule.tenant, &rule.name, &rule.spec, &rule.updated_ms],
            )
            .await
        }
        .map_err(db)?;
        Ok(n > 0)
    }

    /// Deletes a rule and its alerts' states.
    pub(super) async fn remove_alert_rule(
        &self,
        tenant: String,
        name: String,
    ) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let n = tx
            .execute(
                "DELETE FROM alert_rules WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await
            .map_err(db)?;
        tx.execute(
            "DELETE FROM alert_states WHERE tenant = $1 AND rule = $2",
            &[&tenant, &name],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }

    /// Every alert state.
    pub(super) async fn select_alert_states(&self) -> StoreResult<Vec<StoredAlert>> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT tenant, rule, service, state FROM alert_states", &[])
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| StoredAlert {
                tenant: r.get(0),
                rule: r.get(1),
                service: r.get(2),
                state: r.get(3),
            })
            .collect())
    }

    /// Upserts states, deletes removed ones and appends history, in one
    /// transaction.
    pub(super) async fn write_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        if !states.is_empty() {
            let upsert = tx
                .prepare(
                    "INSERT INTO alert_states (tenant, rule, service, state) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, rule, service) DO UPDATE SET state = excluded.state",
                )
                .await
                .map_err(db)?;
            for s in &states {
                tx.execute(&upsert, &[&s.tenant, &s.rule, &s.service, &s.state])
                    .await
                    .map_err(db)?;
            }
        }
        for (tenant, rule, service) in &removed {
            tx.execute(
                "DELETE FROM alert_states WHERE tenant = $1 AND rule = $2 AND service = $3",
                &[tenant, rule, service],
            )
            .await
            .map_err(db)?;
        }
        if !events.is_empty() {
            let append = tx
                .prepare(
                    "INSERT INTO alert_history
                     (tenant, rule, service, at_ms, from_state, to_state, value, labels)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await
                .map_err(db)?;
            for e in &events {
                tx.execute(
                    &append,
                    &[
                        &e.tenant, &e.rule, &e.service, &e.at_ms, &e.from, &e.to, &e.value,
                        &e.labels,
                    ],
                )
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    /// History entries matching `q`, newest first.
    pub(super) async fn select_alert_history(
        &self,
        q: AlertHistoryQuery,
    ) -> StoreResult<Vec<AlertEvent>> {
        let c = self.client().await?;
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows = c
            .query(
                "SELECT tenant, rule, service, at_ms, from_state, to_state, value, labels
                 FROM alert_history
                 WHERE tenant = $1 AND at_ms >= $2
                   AND ($3::text IS NULL OR to_state = $3) AND ($4::text IS NULL OR service = $4)
                 ORDER BY at_ms DESC, id DESC LIMIT $5",
                &[&q.tenant, &q.since_ms, &q.state, &q.service, &limit],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| AlertEvent {
                tenant: r.get(0),
                rule: r.get(1),
                service: r.get(2),
                at_ms: r.get(3),
                from: r.get(4),
                to: r.get(5),
                value: r.get(6),
                labels: r.get(7),
            })
            .collect())
    }

    /// Deletes history older than `before_ms`.
    pub(super) async fn delete_alert_history_before(&self, before_ms: UnixMs) -> StoreResult<u64> {
        let c = self.client().await?;
        c.execute("DELETE FROM alert_history WHERE at_ms < $1", &[&before_ms])
            .await
            .map_err(db)
    }

    /// Every tenant with a service.
    pub(super) async fn select_tenants(&self) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT DISTINCT tenant FROM services ORDER BY tenant", &[])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
