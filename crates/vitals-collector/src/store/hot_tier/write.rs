//! Ingest into the hot tier: one atomic script per write (see the
//! module docs of `hot_tier`), hot minutes into their deltas and query
//! views, late minutes into a snapshot flushed to the store at once.

use super::Inner;
use super::custom::CUSTOM_FIELD;
use super::fields::SEP;
use super::keys::{Keys, part, random_id};
use super::script::Ops;
use super::{MINUTE_MS, rerr};
use crate::model::{IngestOutcome, IngestWrite, Resolution, UnixMs};
use crate::store::{StoreError, StoreResult};
use std::collections::HashMap;

/// Extra life of hot keys past the window, so a key never expires while
/// a reader may still need it.
const KEY_MARGIN_MS: i64 = 5 * MINUTE_MS;

/// Most minutes (past the window's end, i.e. clock skew) one tenant's
/// minute index keeps.
const MAX_VIEW_MINUTES: usize = 10_000;

/// Largest count or integer field one write may add (exact in Lua and
/// far from overflowing Redis's 64-bit integers).
const MAX_INCREMENT: u64 = 1 << 53;

fn check_write(w: &IngestWrite) -> StoreResult<()> {
    for p in &w.custom {
        let s = &p.stats;
        if !(s.last.is_finite() && s.min.is_finite() && s.max.is_finite()) {
            return Err(StoreError::Unstorable(format!(
                "the hot tier keeps only finite values; custom series {:?} has another",
                p.key
            )));
        }
    }
    for b in &w.buckets {
        let s = &b.stats;
        let big = [
            s.count,
            s.errors,
            s.satisfied,
            s.tolerating,
            s.duration_ms.zero_count(),
        ]
        .into_iter()
        .chain(s.duration_ms.buckets().map(|(_, c)| c))
        .any(|v| v > MAX_INCREMENT);
        if big || !s.duration_ms.sum().is_finite() {
            return Err(StoreError::Unstorable(format!(
                "the hot tier keeps counts up to 2^53 and finite sums; series {:?} has more",
                b.key
            )));
        }
    }
    Ok(())
}

impl Inner {
    /// [`Store::ingest`](crate::store::Store::ingest) through Redis.
    pub(super) async fn ingest(&self, w: IngestWrite) -> StoreResult<IngestOutcome> {
        check_write(&w)?;
        let now = self.now();
        let hot_from = self.boundary(now);
        let k = &self.keys;
        let mut ops = Ops::default();
        let dedup = ops.key(k.dedup());
        debug_assert_eq!(dedup, 1);
        let dirty = ops.key(k.dirty());
        let sealed = ops.key(k.sealed());
        ops.args.push(match &w.batch_id {
            Some(id) => format!("{}{}{id}", part(&w.tenant), part(&w.service)),
            None => String::new(),
        });
        ops.args.push(w.received_ms.to_string());
        let cold_id = random_id()?;
        let cold_key = k.snapshot(&cold_id);
        let mut cold_used = false;
        let mut units_seen: HashMap<usize, ()> = HashMap::new();
        // The delta (hot) or cold snapshot a minute's data goes to.
        let mut unit = |ops: &mut Ops, minute: UnixMs| -> (usize, bool) {
            let (name, hot) = if minute >= hot_from {
                (k.delta(&w.tenant, &w.service, minute), true)
            } else {
                cold_used = true;
                (cold_key.clone(), false)
            };
            let idx = ops.key(name.clone());
            if units_seen.insert(idx, ()).is_none() {
                ops.op("s", idx, "!t", &w.tenant);
                ops.op("s", idx, "!s", &w.service);
                ops.op("m", idx, "!r", w.received_ms);
                if hot {
                    ops.op("z", dirty, minute, name);
                }
            }
            (idx, hot)
        };
        let received_minute = Resolution::Minute.floor(w.received_ms);
        unit(&mut ops, received_minute);
        for b in &w.buckets {
            let minute = Resolution::Minute.floor(b.start_ms);
            let series = serde_json::to_string(&b.key)
                .map_err(|e| StoreError::Corrupt(format!("series key: {e}")))?;
            let (idx, hot) = unit(&mut ops, minute);
            ops.add_stats(idx, &format!("{minute}{SEP}{series}{SEP}"), &b.stats);
            if hot {
                let view = ops.key(if b.key.is_total() {
                    k.view_totals(&w.tenant, minute)
                } else {
                    k.view(&w.tenant, minute)
                });
                ops.add_stats(view, &format!("{series}{SEP}"), &b.stats);
                let expires = minute.saturating_add(self.config.window_ms + KEY_MARGIN_MS);
                ops.op("x", view, expires, "");
                let minutes = ops.key(k.view_minutes(&w.tenant));
                ops.op("z", minutes, minute, minute);
                ops.op("x", minutes, expires, "");
                // Forget minutes that left the window (bounded, however
                // long the tenant stays busy).
                ops.op("r", minutes, hot_from, MAX_VIEW_MINUTES);
            }
        }
        for p in &w.custom {
            let minute = Resolution::Minute.floor(p.start_ms);
            let mut key = p.key.clone();
            key.service.clone_from(&w.service);
            let series = serde_json::to_string(&key)
                .map_err(|e| StoreError::Corrupt(format!("custom series key: {e}")))?;
            let (idx, hot) = unit(&mut ops, minute);
            ops.add_custom(
                idx,
                &format!("{CUSTOM_FIELD}{minute}{SEP}{series}{SEP}"),
                &p.stats,
            );
            if hot {
                let view = ops.key(k.custom_view(&w.tenant, minute));
                ops.add_custom(view, &format!("{series}{SEP}"), &p.stats);
                let expires = minute.saturating_add(self.config.window_ms + KEY_MARGIN_MS);
                ops.op("x", view, expires, "");
                let minutes = ops.key(k.view_minutes(&w.tenant));
                ops.op("z", minutes, minute, minute);
                ops.op("x", minutes, expires, "");
                ops.op("r", minutes, hot_from, MAX_VIEW_MINUTES);
            }
        }
        if !w.samples.is_empty() {
            let (idx, _) = unit(&mut ops, received_minute);
            let list = ops.key(Keys::samples_of(&ops.keys[idx - 1].clone()));
            let recent = ops.key(k.recent(&w.tenant, &w.service));
            let mut newest = i64::MIN;
            for s in &w.samples {
                let json = serde_json::to_string(s)
                    .map_err(|e| StoreError::Corrupt(format!("sample: {e}")))?;
                if s.timestamp_ms >= hot_from {
                    ops.op(
                        "z",
                        recent,
                        s.timestamp_ms,
                        format!("{}{SEP}{json}", random_id()?),
                    );
                    newest = newest.max(s.timestamp_ms);
                }
                ops.op("l", list, json, "");
            }
            if newest > i64::MIN {
                ops.op("r", recent, hot_from, self.config.recent_cap);
                ops.op(
                    "x",
                    recent,
                    newest.saturating_add(self.config.window_ms + KEY_MARGIN_MS),
                    "",
                );
            }
        }
        let svc = ops.key(k.services(&w.tenant));
        ops.op("m", svc, &w.service, w.received_ms);
        ops.op(
            "x",
            svc,
            now.saturating_add(2 * self.config.window_ms + KEY_MARGIN_MS),
            "",
        );
        if cold_used {
            ops.op("z", sealed, now, &cold_id);
        }
        let mut inv = self.ingest.prepare_invoke();
        for key in &ops.keys {
            inv.key(key);
        }
        for a in &ops.args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        let stored: i64 = inv.invoke_async(&mut conn).await.map_err(rerr)?;
        if stored == 0 {
            return Ok(IngestOutcome::Duplicate);
        }
        if cold_used {
            // Late data: into the store now, so reads of old windows see
            // it. Durable in Redis already; a failure here is retried by
            // the next flush pass.
            if let Err(e) = self.flush_snapshot(&cold_id).await {
                self.metrics.late_data_failed();
                eprintln!(
                    "vitals collector: hot tier: late data kept in Redis, store write failed (retried later): {e}"
                );
            }
        }
        Ok(IngestOutcome::Stored)
    }
}
