//! Reads, split at the hot boundary: minutes from it on come from Redis
//! alone, older ones from the store alone, and coarser periods holding hot
//! minutes are merged from their minutes ([`crate::model::roll_up`]).
//! [`Split`] says which part goes where, for buckets and custom points
//! alike. A journey (the samples of one trace) is the store's older
//! samples and Redis's recent ones, found inside Redis by a script.

use super::Inner;
use super::fields::{SEP, decode_buckets};
use super::rerr;
use crate::model::{
    Bucket, BucketQuery, CustomQuery, Resolution, Sample, SeriesSelect, ServiceRecord, TraceSample,
    UnixMs, roll_up,
};
use crate::store::{StoreError, StoreResult, sort_journey};
use std::collections::BTreeMap;
use std::future::Future;

/// How a read of `[start_ms, end_ms)` at one resolution splits at the hot
/// boundary (the first minute kept in Redis).
///
/// Every write of a minute at or after the boundary went through Redis,
/// so minutes before it are the store's alone and minutes from it on are
/// Redis's alone: nothing is counted twice. A coarser period from the one
/// holding the boundary on is merged from its minutes (exact and fresh);
/// older periods are the store's rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Split {
    /// Read from the store as asked, up to here: `[start_ms, store_end)`.
    pub(super) store_end: Option<UnixMs>,
    /// Minutes `[from, to)`: read from Redis at minute resolution; at a
    /// coarser one, read as minutes (themselves split) and merged into
    /// periods.
    pub(super) minutes: Option<(UnixMs, UnixMs)>,
}

impl Split {
    /// The split of a read at `res` with the hot boundary at `boundary`.
    pub(super) fn of(res: Resolution, boundary: UnixMs, start_ms: UnixMs, end_ms: UnixMs) -> Split {
        let split = res.floor(boundary);
        let store_end = (start_ms < split).then(|| end_ms.min(split));
        let minutes = if res == Resolution::Minute {
            (end_ms > boundary).then(|| (start_ms.max(boundary), end_ms))
        } else {
            merged_span(res, split, start_ms, end_ms)
        };
        Split { store_end, minutes }
    }
}

/// The minutes, `[first, last_end)`, of the whole `res` periods that start
/// in `[max(start_ms, split), end_ms)`: the periods a read merges from hot
/// minutes rather than takes from the store's rollups. `None` when no
/// period starts there.
fn merged_span(
    res: Resolution,
    split: UnixMs,
    start_ms: UnixMs,
    end_ms: UnixMs,
) -> Option<(UnixMs, UnixMs)> {
    let from = start_ms.max(split);
    let first = if res.floor(from) == from {
        from
    } else {
        res.floor(from).saturating_add(res.millis())
    };
    (first < end_ms).then(|| (first, res.floor(end_ms - 1).saturating_add(res.millis())))
}

/// A query over `[start_ms, end_ms)` at one resolution, as
/// [`Inner::split_read`] cuts it: its span, and a copy with another.
pub(super) trait Spanned: Clone {
    /// `(resolution, start_ms, end_ms)`.
    fn span(&self) -> (Resolution, UnixMs, UnixMs);
    /// The same query over another span.
    fn with_span(&self, resolution: Resolution, start_ms: UnixMs, end_ms: UnixMs) -> Self;
}

impl Spanned for BucketQuery {
    fn span(&self) -> (Resolution, UnixMs, UnixMs) {
        (self.resolution, self.start_ms, self.end_ms)
    }
    fn with_span(&self, resolution: Resolution, start_ms: UnixMs, end_ms: UnixMs) -> Self {
        BucketQuery {
            resolution,
            start_ms,
            end_ms,
            ..self.clone()
        }
    }
}

impl Spanned for CustomQuery {
    fn span(&self) -> (Resolution, UnixMs, UnixMs) {
        (self.resolution, self.start_ms, self.end_ms)
    }
    fn with_span(&self, resolution: Resolution, start_ms: UnixMs, end_ms: UnixMs) -> Self {
        CustomQuery {
            resolution,
            start_ms,
            end_ms,
            ..self.clone()
        }
    }
}

impl Inner {
    /// The minutes in `[from, to)` that `tenant` has a view of in Redis
    /// (buckets and custom points share the per-minute index).
    pub(super) async fn hot_minutes(
        &self,
        tenant: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> StoreResult<Vec<UnixMs>> {
        let mut conn = self.conn.clone();
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.view_minutes(tenant))
            .arg(from)
            .arg(format!("({to}"))
            .query_async(&mut conn)
            .await
            .map_err(rerr)
    }

    /// Minute buckets in `[from, to)`, all at or after the boundary, from Redis.
    pub(super) async fn read_hot(
        &self,
        tenant: &str,
        service: Option<&str>,
        from: UnixMs,
        to: UnixMs,
        series: SeriesSelect,
    ) -> StoreResult<Vec<Bucket>> {
        let minutes = self.hot_minutes(tenant, from, to).await?;
        if minutes.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.conn.clone();
        // Route and total series live in separate hashes per minute.
        let mut pipe = redis::pipe();
        let mut read: Vec<UnixMs> = Vec::new();
        for m in &minutes {
            if series != SeriesSelect::Totals {
                pipe.cmd("HGETALL").arg(self.keys.view(tenant, *m));
                read.push(*m);
            }
            if series != SeriesSelect::Routes {
                pipe.cmd("HGETALL").arg(self.keys.view_totals(tenant, *m));
                read.push(*m);
            }
        }
        let views: Vec<Vec<(String, String)>> = pipe.query_async(&mut conn).await.map_err(rerr)?;
        let mut out = Vec::new();
        for (m, fields) in read.into_iter().zip(views) {
            out.extend(
                decode_buckets(tenant, fields, Some(m), service)?
                    .into_iter()
                    .filter(|b| series.includes(&b.key)),
            );
        }
        Ok(out)
    }

    /// [`Store::read_buckets`](crate::store::Store::read_buckets), split at
    /// the boundary (see [`Split`]).
    pub(super) async fn read_buckets(&self, q: BucketQuery) -> StoreResult<Vec<Bucket>> {
        let tenant = q.tenant.clone();
        self.split_read(
            q,
            |q| self.store.read_buckets(q),
            |q, from, to| async move {
                self.read_hot(&q.tenant, q.service.as_deref(), from, to, q.series)
                    .await
            },
            |res, minutes| roll_up(&tenant, res, minutes),
        )
        .await
    }

    /// The one split-and-merge read, for buckets and custom points alike:
    /// the store's rows before the boundary, Redis's minutes from it on,
    /// and at a coarser resolution the periods holding hot minutes merged
    /// from their minutes (themselves split the same way) by `roll_up`.
    pub(super) async fn split_read<Q, T, S, SF, H, HF>(
        &self,
        q: Q,
        store: S,
        hot: H,
        roll_up: impl FnOnce(Resolution, Vec<T>) -> Vec<T>,
    ) -> StoreResult<Vec<T>>
    where
        Q: Spanned,
        S: Fn(Q) -> SF,
        SF: Future<Output = StoreResult<Vec<T>>>,
        H: Fn(Q, UnixMs, UnixMs) -> HF,
        HF: Future<Output = StoreResult<Vec<T>>>,
    {
        let b = self.boundary(self.now());
        let (res, start_ms, end_ms) = q.span();
        let split = Split::of(res, b, start_ms, end_ms);
        let mut out = match split.store_end {
            Some(store_end) => store(q.with_span(res, start_ms, store_end)).await?,
            None => Vec::new(),
        };
        let Some((from, to)) = split.minutes else {
            return Ok(out);
        };
        if res == Resolution::Minute {
            out.extend(hot(q, from, to).await?);
            return Ok(out);
        }
        let inner = Split::of(Resolution::Minute, b, from, to);
        let mut minutes = match inner.store_end {
            Some(store_end) => store(q.with_span(Resolution::Minute, from, store_end)).await?,
            None => Vec::new(),
        };
        if let Some((hot_from, hot_to)) = inner.minutes {
            minutes.extend(hot(q, hot_from, hot_to).await?);
        }
        out.extend(roll_up(res, minutes));
        Ok(out)
    }

    /// [`Store::recent_samples`](crate::store::Store::recent_samples):
    /// Redis's recent samples, then the store's older ones.
    pub(super) async fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> StoreResult<Vec<Sample>> {
        let b = self.boundary(self.now());
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(self.keys.recent(&tenant, &service))
            .arg("+inf")
            .arg(b)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        let mut out = Vec::with_capacity(limit);
        for m in members {
            let json = m
                .split_once(SEP)
                .map(|(_, j)| j)
                .ok_or_else(|| StoreError::Corrupt("hot tier sample".into()))?;
            out.push(
                serde_json::from_str::<Sample>(json)
                    .map_err(|e| StoreError::Corrupt(format!("hot tier sample: {e}")))?,
            );
        }
        if out.len() >= limit {
            return Ok(out);
        }
        // The store holds the older samples, plus (flushed) copies of the
        // hot ones: skip those, they came from Redis above.
        let older = self
            .store
            .recent_samples(tenant, service, limit + out.len())
            .await?;
        let want = limit - out.len();
        out.extend(older.into_iter().filter(|s| s.timestamp_ms < b).take(want));
        Ok(out)
    }

    /// [`Store::trace_samples`](crate::store::Store::trace_samples):
    /// Redis's recent samples of every hot service of the tenant that
    /// carry the trace id (found by a script inside Redis, so only matches
    /// cross the network), and the store's older ones. Redis keeps a
    /// service's samples from the hot window on, flushed or not, so a
    /// stored sample equal to one of Redis's is the same request, shown
    /// once. (Like `/recent`: a sample already older than the hot window
    /// when it arrived shows once its arrival minute is flushed.)
    pub(super) async fn trace_samples(
        &self,
        tenant: String,
        trace_id: String,
        limit: usize,
    ) -> StoreResult<Vec<TraceSample>> {
        let b = self.boundary(self.now());
        let mut conn = self.conn.clone();
        let services: Vec<String> = redis::cmd("HKEYS")
            .arg(self.keys.services(&tenant))
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        let mut out: Vec<TraceSample> = Vec::new();
        if !services.is_empty() {
            // Serialized samples hold `"trace_id":"<id>"` literally: quotes
            // inside other values are escaped, so nothing else matches.
            let needle = serde_json::to_string(&trace_id)
                .map(|id| format!("\"trace_id\":{id}"))
                .map_err(|e| StoreError::Corrupt(format!("trace id: {e}")))?;
            let lua = redis::Script::new(TRACE_LUA);
            let mut script = lua.prepare_invoke();
            for s in &services {
                script.key(self.keys.recent(&tenant, s));
            }
            let found: Vec<(usize, String)> = script
                .arg(needle)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(rerr)?;
            for (i, member) in found {
                let json = member
                    .split_once(SEP)
                    .map(|(_, j)| j)
                    .ok_or_else(|| StoreError::Corrupt("hot tier sample".into()))?;
                let sample = serde_json::from_str::<Sample>(json)
                    .map_err(|e| StoreError::Corrupt(format!("hot tier sample: {e}")))?;
                let service = services
                    .get(i.wrapping_sub(1))
                    .ok_or_else(|| StoreError::Corrupt("hot tier trace script".into()))?;
                if sample.trace_id.as_deref() == Some(trace_id.as_str()) {
                    out.push(TraceSample {
                        service: service.clone(),
                        sample,
                    });
                }
            }
        }
        let older: Vec<TraceSample> = self
            .store
            .trace_samples(tenant, trace_id, limit)
            .await?
            .into_iter()
            .filter(|s| s.sample.timestamp_ms < b && !out.contains(s))
            .collect();
        out.extend(older);
        sort_journey(&mut out);
        out.truncate(limit);
        Ok(out)
    }

    /// [`Store::services`](crate::store::Store::services): the store's
    /// and Redis's, each with its latest time.
    pub(super) async fn services(&self, tenant: String) -> StoreResult<Vec<ServiceRecord>> {
        let mut conn = self.conn.clone();
        let hot: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(self.keys.services(&tenant))
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        let mut all: BTreeMap<String, i64> = BTreeMap::new();
        for s in self.store.services(tenant).await? {
            all.insert(s.service, s.last_seen_ms);
        }
        for (service, seen) in hot {
            let slot = all.entry(service).or_insert(seen);
            *slot = (*slot).max(seen);
        }
        Ok(all
            .into_iter()
            .map(|(service, last_seen_ms)| ServiceRecord {
                service,
                last_seen_ms,
            })
            .collect())
    }
}

/// Finds the recent samples (`KEYS`, one sorted set per service) whose
/// text holds `ARGV[1]`, at most `ARGV[2]`: pairs of the key's index
/// (from 1) and the member.
const TRACE_LUA: &str = r#"
local out = {}
local found = 0
for i, key in ipairs(KEYS) do
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if found < tonumber(ARGV[2]) and string.find(m, ARGV[1], 1, true) then
      table.insert(out, i)
      table.insert(out, m)
      found = found + 1
    end
  end
end
return out
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_split_at_the_boundary() {
        let b = 3_600_000;
        // Minutes: the store before the boundary, Redis from it on.
        assert_eq!(
            Split::of(Resolution::Minute, b, 0, 2 * b),
            Split {
                store_end: Some(b),
                minutes: Some((b, 2 * b))
            }
        );
        assert_eq!(
            Split::of(Resolution::Minute, b, b + 60_000, 2 * b).store_end,
            None
        );
        assert_eq!(Split::of(Resolution::Minute, b, 0, b).minutes, None);
        // Five minutes, boundary inside a period: that whole period is
        // merged from minutes, the ones before are the store's rollups.
        let b = 3_660_000;
        let split = Split::of(Resolution::FiveMinutes, b, 0, 4_200_000);
        assert_eq!(split.store_end, Some(3_600_000));
        assert_eq!(split.minutes, Some((3_600_000, 4_200_000)));
        // A window ending inside a period still merges the whole period.
        let split = Split::of(Resolution::FiveMinutes, b, 3_600_000, 3_700_000);
        assert_eq!(split.store_end, None);
        assert_eq!(split.minutes, Some((3_600_000, 3_900_000)));
    }
}
