//! The alerting tables: `alert_rules` (rules written over the API),
//! `alert_states` (one row per alert, its state as JSON) and
//! `alert_history` (every state change); and the tenants with services.

use super::rows::db;
use crate::model::{AlertEvent, AlertHistoryQuery, StoredAlert, StoredRule, UnixMs};
use crate::store::StoreResult;
use rusqlite::{Connection, OptionalExtension, params};

/// Every rule of `tenant`, or of every tenant.
pub(super) fn rules(c: &Connection, tenant: Option<&str>) -> StoreResult<Vec<StoredRule>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT tenant, name, spec, updated_ms FROM alert_rules
             WHERE ?1 IS NULL OR tenant = ?1",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok(StoredRule {
                tenant: r.get(0)?,
                name: r.get(1)?,
                spec: r.get(2)?,
                updated_ms: r.get(3)?,
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// Inserts a new rule or replaces an existing one (see `Store::put_alert_rule`).
pub(super) fn put_rule(c: &mut Connection, rule: &StoredRule, replace: bool) -> StoreResult<bool> {
    let tx = c.transaction().map_err(db)?;
    let exists = tx
        .query_row(
            "SELECT 1 FROM alert_rules WHERE tenant = ?1 AND name = ?2",
            params![rule.tenant, rule.name],
            |_| Ok(()),
        )
        .optional()
        .map_err(db)?
        .is_some();
    if exists != replace {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO alert_rules (tenant, name, spec, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, name) DO UPDATE SET spec = excluded.spec, updated_ms = excluded.updated_ms",
        params![rule.tenant, rule.name, rule.spec, rule.updated_ms],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(true)
}

/// Deletes a rule and its alerts' states.
pub(super) fn delete_rule(c: &mut Connection, tenant: &str, name: &str) -> StoreResult<bool> {
    let tx = c.transaction().map_err(db)?;
    let n = tx
        .execute(
            "DELETE FROM alert_rules WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )
        .map_err(db)?;
    tx.execute(
        "DELETE FROM alert_states WHERE tenant = ?1 AND rule = ?2",
        params![tenant, name],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(n > 0)
}

/// Every alert state.
pub(super) fn states(c: &Connection) -> StoreResult<Vec<StoredAlert>> {
    let mut stmt = c
        .prepare_cached("SELECT tenant, rule, service, state FROM alert_states")
        .map_err(db)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredAlert {
                tenant: r.get(0)?,
                rule: r.get(1)?,
                service: r.get(2)?,
                state: r.get(3)?,
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// Upserts states, deletes removed ones and appends history, in one
/// transaction.
pub(super) fn save(
    c: &mut Connection,
    states: &[StoredAlert],
    removed: &[(String, String, String)],
    events: &[AlertEvent],
) -> StoreResult<()> {
    let tx = c.transaction().map_err(db)?;
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO alert_states (tenant, rule, service, state) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, rule, service) DO UPDATE SET state = excluded.state",
            )
            .map_err(db)?;
        for s in states {
            upsert
                .execute(params![s.tenant, s.rule, s.service, s.state])
                .map_err(db)?;
        }
        let mut delete = tx
            .prepare_cached(
                "DELETE FROM alert_states WHERE tenant = ?1 AND rule = ?2 AND service = ?3",
            )
            .map_err(db)?;
        for (tenant, rule, service) in removed {
            delete.execute(params![tenant, rule, service]).map_err(db)?;
        }
        let mut append = tx
            .prepare_cached(
                "INSERT INTO alert_history
                 (tenant, rule, service, at_ms, from_state, to_state, value, labels)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db)?;
        for e in events {
            append
                .execute(params![
                    e.tenant, e.rule, e.service, e.at_ms, e.from, e.to, e.value, e.labels
                ])
                .map_err(db)?;
        }
    }
    tx.commit().map_err(db)
}

/// History entries matching `q`, newest first.
pub(super) fn history(c: &Connection, q: &AlertHistoryQuery) -> StoreResult<Vec<AlertEvent>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT tenant, rule, service, at_ms, from_state, to_state, value, labels
             FROM alert_history
             WHERE tenant = ?1 AND at_ms >= ?2
               AND (?3 IS NULL OR to_state = ?3) AND (?4 IS NULL OR service = ?4)
             ORDER BY at_ms DESC, id DESC LIMIT ?5",
        )
        .map_err(db)?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(
            params![q.tenant, q.since_ms, q.state, q.service, limit],
            |r| {
                Ok(AlertEvent {
                    tenant: r.get(0)?,
                    rule: r.get(1)?,
                    service: r.get(2)?,
                    at_ms: r.get(3)?,
                    from: r.get(4)?,
                    to: r.get(5)?,
                    value: r.get(6)?,
                    labels: r.get(7)?,
                })
            },
        )
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// Deletes history older than `before_ms`.
pub(super) fn drop_history_before(c: &Connection, before_ms: UnixMs) -> StoreResult<u64> {
    let n = c
        .execute("DELETE FROM alert_history WHERE at_ms < ?1", [before_ms])
        .map_err(db)?;
    Ok(n as u64)
}

/// Every tenant with a service.
pub(super) fn tenants(c: &Connection) -> StoreResult<Vec<String>> {
    let mut stmt = c
        .prepare_cached("SELECT DISTINCT tenant FROM services ORDER BY tenant")
        .map_err(db)?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}
