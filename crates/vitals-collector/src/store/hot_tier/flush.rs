//! Flushing: due deltas are sealed into snapshots (atomically renamed),
//! each written to the store as one ingest whose batch id is the snapshot
//! id, and deleted only after, so a crash at any point loses nothing and
//! counts nothing twice. Each pass also reads Redis's durability settings
//! and how old the oldest waiting data is, for the metrics.

use super::custom::decode_custom;
use super::fields::decode_buckets;
use super::keys::{Keys, random_id};
use super::metrics::Durability;
use super::{FlushReport, HOT_BATCH_PREFIX, Inner, MINUTE_MS, rerr};
use crate::model::{IngestOutcome, IngestWrite, Sample, UnixMs};
use crate::store::{StoreError, StoreResult};
use std::collections::HashMap;

/// Units sealed or snapshots flushed per pass and kind, so a pass is bounded.
const PER_PASS: isize = 1000;

impl Inner {
    /// Seals every delta due at `now`; returns the new snapshot ids.
    pub(super) async fn seal_due(&self, now: UnixMs) -> StoreResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let due_before = now - MINUTE_MS - self.config.flush_grace_ms;
        let units: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.dirty())
            .arg("-inf")
            .arg(due_before)
            .arg("LIMIT")
            .arg(0)
            .arg(PER_PASS)
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        let mut ids = Vec::new();
        for unit in units {
            let id = random_id()?;
            let snapshot = self.keys.snapshot(&id);
            let sealed: i64 = self
                .seal
                .key(&unit)
                .key(Keys::samples_of(&unit))
                .key(&snapshot)
                .key(Keys::samples_of(&snapshot))
                .key(self.keys.dirty())
                .key(self.keys.sealed())
                .arg(&unit)
                .arg(now)
                .arg(&id)
                .invoke_async(&mut conn)
                .await
                .map_err(rerr)?;
            if sealed == 1 {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Writes snapshot `id` to the store (batch id = snapshot id, so a
    /// second write is a duplicate). `false` when it is gone already.
    pub(super) async fn write_snapshot(&self, id: &str) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let key = self.keys.snapshot(id);
        let (fields, samples): (Vec<(String, String)>, Vec<String>) = redis::pipe()
            .cmd("HGETALL")
            .arg(&key)
            .cmd("LRANGE")
            .arg(Keys::samples_of(&key))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        if fields.is_empty() {
            return Ok(false);
        }
        let meta = |name: &str| {
            fields
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| StoreError::Corrupt(format!("hot tier snapshot {id} lacks {name}")))
        };
        let tenant = meta("!t")?;
        let service = meta("!s")?;
        let received_ms: i64 = meta("!r")?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("hot tier snapshot {id}: received time")))?;
        let custom = decode_custom(&tenant, fields.iter().cloned(), None, None)?;
        let buckets = decode_buckets(&tenant, fields, None, None)?;
        let samples = samples
            .iter()
            .map(|s| {
                serde_json::from_str(s)
                    .map_err(|e| StoreError::Corrupt(format!("hot tier sample: {e}")))
            })
            .collect::<StoreResult<Vec<Sample>>>()?;
        let written = buckets.len();
        let outcome = self
            .store
            .ingest(IngestWrite {
                tenant,
                service,
                batch_id: Some(format!("{HOT_BATCH_PREFIX}{id}")),
                received_ms,
                buckets,
                samples,
                custom,
            })
            .await?;
        if outcome == IngestOutcome::Stored {
            self.metrics.flushed(written);
        }
        Ok(true)
    }

    /// Writes snapshot `id` to the store, then deletes it from Redis.
    pub(super) async fn flush_snapshot(&self, id: &str) -> StoreResult<bool> {
        let written = self.write_snapshot(id).await?;
        let key = self.keys.snapshot(id);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&key)
            .arg(Keys::samples_of(&key))
            .ignore()
            .cmd("ZREM")
            .arg(self.keys.sealed())
            .arg(id)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        Ok(written)
    }

    /// Reads Redis's persistence settings into the `hot_durable` gauge,
    /// and warns when they cannot keep what the collector acknowledges
    /// (once, and again whenever they change).
    pub(super) async fn check_durability(&self) {
        let mut conn = self.conn.clone();
        type Setting = HashMap<String, String>;
        let answer: Result<(Setting, Setting), _> = redis::pipe()
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async(&mut conn)
            .await;
        let durability = match &answer {
            Ok((only, fsync)) => Durability::of(
                only.get("appendonly").map(String::as_str),
                fsync.get("appendfsync").map(String::as_str),
            ),
            Err(_) => Durability::Unknown,
        };
        if self.metrics.set_durability(&durability) {
            if let Durability::NotDurable(why) = &durability {
                eprintln!("vitals collector: warning: the hot tier is not durable: {why}");
            }
        }
    }

    /// [`flush_due`](Self::flush_due), counted in the metrics, which then
    /// learn how old the oldest data still waiting in Redis is.
    pub(super) async fn flush_pass(&self, now: UnixMs) -> StoreResult<FlushReport> {
        let result = self.flush_due(now).await;
        if result.is_err() {
            self.metrics.pass_failed();
        }
        self.check_durability().await;
        // Best effort: with Redis down the last known value stays.
        let mut conn = self.conn.clone();
        type Oldest = Vec<(String, i64)>;
        let oldest: Result<(Oldest, Oldest), _> = redis::pipe()
            .cmd("ZRANGE")
            .arg(self.keys.dirty())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(self.keys.sealed())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await;
        if let Ok((dirty, sealed)) = oldest {
            let since = dirty.into_iter().chain(sealed).map(|(_, t)| t).min();
            self.metrics.set_oldest_unflushed(since);
        }
        result
    }

    /// One flush pass (see [`HotTier::flush_due`](super::HotTier::flush_due)).
    async fn flush_due(&self, now: UnixMs) -> StoreResult<FlushReport> {
        let mut conn = self.conn.clone();
        if let Some(ttl) = self.config.dedup_ms {
            let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
                .arg(self.keys.dedup())
                .arg("-inf")
                .arg(format!("({}", now.saturating_sub(ttl)))
                .query_async(&mut conn)
                .await
                .map_err(rerr)?;
        }
        let mut report = FlushReport::default();
        for id in self.seal_due(now).await? {
            report.sealed += 1;
            if self.flush_snapshot(&id).await? {
                report.flushed += 1;
            }
        }
        let orphans: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.sealed())
            .arg("-inf")
            .arg(now - self.config.orphan_after_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(PER_PASS)
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        for id in orphans {
            if self.flush_snapshot(&id).await? {
                report.flushed += 1;
            }
        }
        Ok(report)
    }
}
