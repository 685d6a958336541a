//! The Redis hot tier (`--cache redis://…`): a [`Store`] decorator that
//! keeps the last minutes of data in Redis, so several collectors behind a
//! load balancer accept and answer the same, and moves completed minutes
//! into the durable store in the background.
//!
//! How it stays exact:
//! - **Routing by minute.** Let `B` be the hot boundary (the current minute
//!   less the hot window, 15 minutes by default). A bucket of a minute
//!   `≥ B` is written to Redis; an older one (late data) too, but into a
//!   snapshot flushed to the store before `ingest` returns. `B` only grows,
//!   so every write of a minute `≥ B` went through Redis: reads take
//!   minutes `≥ B` from Redis alone and older ones from the store alone, so
//!   nothing is ever counted twice. (A flusher more than the window behind,
//!   say with the store down, leaves older minutes short in the store until
//!   it catches up; nothing is lost.)
//! - **One atomic script per ingest** (Lua): the batch-id check and record
//!   (with expiry), the merge into the query view of each hot minute and
//!   into the not-yet-flushed delta of each `(tenant, service, minute)`,
//!   the recent samples and the service's last-seen time. Custom points
//!   go the same way: `!c`-prefixed fields of the delta (so they are
//!   sealed and flushed with it) and a per-minute custom view, merged in
//!   the script (min, max, and the last value by its timestamp).
//! - **Flushing is idempotent.** A due delta is *sealed* atomically (renamed
//!   to a snapshot with a fresh random id, and listed as sealed; later
//!   writes start a new delta). The snapshot is written to the store as one
//!   ingest whose batch id is the snapshot id, and deleted only after. A
//!   crash after sealing leaves the snapshot listed, and any collector
//!   flushes it later; a crash after the store write makes the retry a
//!   duplicate in the store, so nothing is lost or counted twice.
//!
//! - **Route and total series apart.** A minute's query view is two
//!   hashes: route series and the per-service totals ingest adds, so a
//!   service-wide read ([`crate::model::SeriesSelect::Totals`]) fetches
//!   only the few total fields. Deltas and snapshots hold both, and reach
//!   the store as ordinary series. (Minutes written by a collector from
//!   before totals have none: during a rolling upgrade, service-wide views
//!   undercount those minutes.)
//!
//! Redis must be durable enough for "accepted" to mean "kept" (AOF with
//! `appendfsync everysec` or `always`). The hot tier reads those settings
//! at start and every flush pass, warns when they fall short, and reports
//! them as `vitals_collector_hot_durable`. Clocks of collectors sharing one
//! Redis should agree within seconds: a skew shifts `B` between them.

use super::hot_tier_metrics::{Durability, HotTierCollector, HotTierMetrics};
use super::{BoxFuture, Store, StoreError, StoreResult};
use crate::clock::now_ms;
use crate::model::{
    Bucket, BucketQuery, BucketStats, CustomPoint, CustomQuery, DirtyPeriod, IngestOutcome,
    IngestWrite, KeyRecord, Resolution, Sample, SeriesKey, SeriesSelect, ServiceRecord, UnixMs,
    roll_up,
};
use redis::aio::ConnectionManager;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

mod custom;

use custom::{CUSTOM_FIELD, decode_custom};

const MINUTE_MS: i64 = 60_000;
/// Batch ids of flushed snapshots start with this.
pub const HOT_BATCH_PREFIX: &str = "vitals-hot-tier/";
/// Extra life of hot keys past the window, so a key never expires while
/// a reader may still need it.
const KEY_MARGIN_MS: i64 = 5 * MINUTE_MS;
/// Units sealed or snapshots flushed per pass and kind, so a pass is bounded.
const PER_PASS: isize = 1000;
/// Most minutes (past the window's end, i.e. clock skew) one tenant's
/// minute index keeps.
const MAX_VIEW_MINUTES: usize = 10_000;
/// Largest count or integer field one write may add (exact in Lua and
/// far from overflowing Redis's 64-bit integers).
const MAX_INCREMENT: u64 = 1 << 53;

/// How the hot tier behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct HotTierConfig {
    /// Prefix of every Redis key (`vitals:`), so several deployments or
    /// tests can share one Redis.
    pub prefix: String,
    /// How many recent minutes queries read from Redis (15 minutes).
    pub window_ms: i64,
    /// Pause between background flush passes; `None` runs no background
    /// job (call [`HotTier::flush_due`] yourself).
    pub flush_interval: Option<Duration>,
    /// A minute is flushed this long after it ends, so most of its data
    /// has arrived (5 s).
    pub flush_grace_ms: i64,
    /// A sealed snapshot older than this is some collector's interrupted
    /// flush, taken over by whoever flushes next (30 s).
    pub orphan_after_ms: i64,
    /// How long batch ids are remembered, by their received time (1 hour);
    /// a retry later than that counts again. `None`: until
    /// [`Store::drop_batch_ids_before`] (the retention job) forgets them.
    pub dedup_ms: Option<i64>,
    /// Recent samples kept per service (1000).
    pub recent_cap: usize,
}

impl Default for HotTierConfig {
    fn default() -> Self {
        HotTierConfig {
            prefix: "vitals:".into(),
            window_ms: 15 * MINUTE_MS,
            flush_interval: Some(Duration::from_secs(5)),
            flush_grace_ms: 5_000,
            orphan_after_ms: 30_000,
            dedup_ms: Some(3_600_000),
            recent_cap: 1000,
        }
    }
}

/// What one flush pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Deltas sealed into snapshots.
    pub sealed: usize,
    /// Snapshots written to the store (new or retried).
    pub flushed: usize,
}

/// The ingest script: an optional batch-id check, then a list of
/// operations `(op, key index, a, b)`. Atomic: nothing is written for a
/// duplicate, and no reader sees half a write.
const INGEST_LUA: &str = r#"
if ARGV[1] ~= '' then
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local i = 3
while i <= #ARGV do
  local op, k, a, b = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'i' then
    redis.call('HINCRBY', k, a, b)
  elseif op == 'f' then
    local cur = tonumber(redis.call('HGET', k, a) or '0')
    redis.call('HSET', k, a, string.format('%.17g', cur + tonumber(b)))
  elseif op == 'm' then
    local cur = redis.call('HGET', k, a)
    if (not cur) or tonumber(cur) < tonumber(b) then redis.call('HSET', k, a, b) end
  elseif op == 'n' then
    local cur = redis.call('HGET', k, a)
    if (not cur) or tonumber(cur) > tonumber(b) then redis.call('HSET', k, a, b) end
  elseif op == 'L' then
    local t, v, kind = string.match(b, '^(%S+) (%S+) (%S+)$')
    local cur = redis.call('HGET', k, a .. 't')
    if (not cur) or tonumber(cur) <= tonumber(t) then
      redis.call('HSET', k, a .. 't', t, a .. 'v', v, a .. 'k', kind)
    end
  elseif op == 's' then
    redis.call('HSET', k, a, b)
  elseif op == 'z' then
    redis.call('ZADD', k, a, b)
  elseif op == 'l' then
    redis.call('RPUSH', k, a)
  elseif op == 'x' then
    local cur = redis.call('PEXPIRETIME', k)
    if cur == -1 or cur < tonumber(a) then redis.call('PEXPIREAT', k, a) end
  elseif op == 'r' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. a)
    redis.call('ZREMRANGEBYRANK', k, 0, -tonumber(b) - 1)
  end
  i = i + 4
end
return 1
"#;

/// Seals one delta: KEYS = delta, its samples, snapshot, its samples,
/// dirty set, sealed set; ARGV = delta name, now, snapshot id.
const SEAL_LUA: &str = r#"
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
return 1
"#;

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

/// A length-prefixed key part, so arbitrary names never run into each other.
fn part(s: &str) -> String {
    format!("{}:{s}", s.len())
}

fn rerr(e: redis::RedisError) -> StoreError {
    StoreError::redis(e)
}

fn random_id() -> StoreResult<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|source| StoreError::Randomness { source })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Field-name separator inside hashes (JSON never holds it raw).
const SEP: char = '\u{1f}';

/// Statistics of one series as hash-field increments.
#[derive(Default)]
struct Acc {
    count: u64,
    errors: u64,
    satisfied: u64,
    tolerating: u64,
    zero: u64,
    sum: f64,
    last_seen: i64,
    buckets: BTreeMap<i32, u64>,
}

impl Acc {
    fn set(&mut self, stat: &str, value: &str) -> StoreResult<()> {
        let int = || -> StoreResult<u64> {
            let v: i64 = value
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("hot tier field {stat}={value:?}")))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        match stat {
            "c" => self.count = int()?,
            "e" => self.errors = int()?,
            "s" => self.satisfied = int()?,
            "t" => self.tolerating = int()?,
            "z" => self.zero = int()?,
            "S" => {
                self.sum = value
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("hot tier sum {value:?}")))?
            }
            "l" => {
                self.last_seen = value
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("hot tier last seen {value:?}")))?
            }
            other => {
                let idx: i32 = other
                    .strip_prefix('b')
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("hot tier stat {other:?}")))?;
                self.buckets.insert(idx, int()?);
            }
        }
        Ok(())
    }

    fn into_stats(self) -> StoreResult<BucketStats> {
        // Like the stores' codec, the count of rejected values is not kept.
        let sketch =
            vitals::Sketch::from_buckets(self.zero, self.sum, self.buckets).ok_or_else(|| {
                StoreError::Corrupt("hot tier sketch: bucket index out of range".into())
            })?;
        Ok(BucketStats {
            count: self.count,
            errors: self.errors,
            satisfied: self.satisfied,
            tolerating: self.tolerating,
            duration_ms: sketch,
            last_seen_ms: self.last_seen,
        })
    }
}

/// Collects the script's keys and operations.
struct Ops {
    keys: Vec<String>,
    index: HashMap<String, usize>,
    args: Vec<String>,
}

impl Ops {
    fn key(&mut self, k: String) -> usize {
        if let Some(i) = self.index.get(&k) {
            return *i;
        }
        self.keys.push(k.clone());
        let i = self.keys.len();
        self.index.insert(k, i);
        i
    }
    fn op(&mut self, op: &str, key: usize, a: impl ToString, b: impl ToString) {
        self.args.push(op.into());
        self.args.push(key.to_string());
        self.args.push(a.to_string());
        self.args.push(b.to_string());
    }
    /// Adds one series' statistics into hash `key`, fields prefixed `prefix`.
    fn add_stats(&mut self, key: usize, prefix: &str, s: &BucketStats) {
        for (stat, v) in [
            ("c", s.count),
            ("e", s.errors),
            ("s", s.satisfied),
            ("t", s.tolerating),
            ("z", s.duration_ms.zero_count()),
        ] {
            if v > 0 || stat == "c" {
                self.op("i", key, format!("{prefix}{stat}"), v);
            }
        }
        self.op("f", key, format!("{prefix}S"), s.duration_ms.sum());
        self.op("m", key, format!("{prefix}l"), s.last_seen_ms);
        for (i, c) in s.duration_ms.buckets() {
            self.op("i", key, format!("{prefix}b{i}"), c);
        }
    }
}

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

/// Decodes hash fields `[{minute}␟]{series json}␟{stat}` into buckets.
fn decode_buckets(
    tenant: &str,
    fields: impl IntoIterator<Item = (String, String)>,
    minute: Option<UnixMs>,
    service: Option<&str>,
) -> StoreResult<Vec<Bucket>> {
    let mut accs: BTreeMap<(UnixMs, String), Acc> = BTreeMap::new();
    for (field, value) in fields {
        if field.starts_with('!') {
            continue;
        }
        let corrupt = || StoreError::Corrupt(format!("hot tier field {field:?}"));
        let (rest, stat) = field.rsplit_once(SEP).ok_or_else(corrupt)?;
        let (start, series) = match minute {
            Some(m) => (m, rest),
            None => {
                let (m, series) = rest.split_once(SEP).ok_or_else(corrupt)?;
                (m.parse().map_err(|_| corrupt())?, series)
            }
        };
        accs.entry((start, series.to_string()))
            .or_default()
            .set(stat, &value)?;
    }
    let mut out = Vec::with_capacity(accs.len());
    for ((start, series), acc) in accs {
        let key: SeriesKey = serde_json::from_str(&series)
            .map_err(|e| StoreError::Corrupt(format!("hot tier series {series:?}: {e}")))?;
        if service.is_some_and(|s| s != key.service) {
            continue;
        }
        out.push(Bucket {
            tenant: tenant.to_string(),
            resolution: Resolution::Minute,
            start_ms: start,
            key,
            stats: acc.into_stats()?,
        });
    }
    Ok(out)
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn dedup(&self) -> String {
        format!("{}dedup", self.prefix)
    }
    fn dirty(&self) -> String {
        format!("{}dirty", self.prefix)
    }
    fn sealed(&self) -> String {
        format!("{}sealed", self.prefix)
    }
    fn services(&self, tenant: &str) -> String {
        format!("{}svc:{}", self.prefix, part(tenant))
    }
    fn recent(&self, tenant: &str, service: &str) -> String {
        format!("{}rs:{}{}", self.prefix, part(tenant), part(service))
    }
    /// The query view of one tenant's minute (every service).
    fn view(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}q:{}{minute}", self.prefix, part(tenant))
    }
    /// The custom query view of one tenant's minute (every service).
    fn custom_view(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}cq:{}{minute}", self.prefix, part(tenant))
    }

    /// The query view of one tenant's minute holding only the per-service
    /// total series, so overviews read a few fields instead of every route.
    fn view_totals(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}qt:{}{minute}", self.prefix, part(tenant))
    }
    /// The minutes with a query view, per tenant.
    fn view_minutes(&self, tenant: &str) -> String {
        format!("{}qm:{}", self.prefix, part(tenant))
    }
    /// Not-yet-flushed data of one `(tenant, service, minute)`.
    fn delta(&self, tenant: &str, service: &str, minute: UnixMs) -> String {
        format!("{}u:{}{}{minute}", self.prefix, part(tenant), part(service))
    }
    fn snapshot(&self, id: &str) -> String {
        format!("{}f:{id}", self.prefix)
    }
    fn samples_of(unit: &str) -> String {
        format!("{unit}:s")
    }
}

struct Inner {
    store: Arc<dyn Store>,
    conn: ConnectionManager,
    config: HotTierConfig,
    keys: Keys,
    ingest: redis::Script,
    seal: redis::Script,
    metrics: Arc<HotTierMetrics>,
}

/// A [`Store`] with a shared Redis hot tier in front of another store.
/// Cheap to share; dropping it stops its background flusher.
pub struct HotTier {
    inner: Arc<Inner>,
    flusher: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for HotTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotTier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Drop for HotTier {
    fn drop(&mut self) {
        if let Some(f) = &self.flusher {
            f.abort();
        }
    }
}

impl HotTier {
    /// Connects to Redis at `url` (`redis://host:port/db`) in front of
    /// `store`, and starts the background flusher (if configured).
    pub async fn open(
        url: &str,
        store: Arc<dyn Store>,
        config: HotTierConfig,
    ) -> StoreResult<HotTier> {
        if config.window_ms < MINUTE_MS || config.window_ms % MINUTE_MS != 0 {
            return Err(StoreError::InvalidUrl {
                url: url.into(),
                reason: format!(
                    "the hot window must be whole minutes, got {} ms",
                    config.window_ms
                ),
            });
        }
        let client = redis::Client::open(url).map_err(|e| StoreError::InvalidUrl {
            url: url.into(),
            reason: format!("not a Redis URL: {e}"),
        })?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(rerr)?;
        let keys = Keys {
            prefix: config.prefix.clone(),
        };
        let inner = Arc::new(Inner {
            store,
            conn,
            config,
            keys,
            ingest: redis::Script::new(INGEST_LUA),
            seal: redis::Script::new(SEAL_LUA),
            metrics: Arc::default(),
        });
        inner.check_durability().await;
        let flusher = inner.config.flush_interval.map(|every| {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = inner.flush_pass(now_ms()).await {
                        eprintln!("vitals collector: hot tier flush failed, retrying: {e}");
                    }
                }
            })
        });
        Ok(HotTier { inner, flusher })
    }

    /// The durable store behind the hot tier.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The first minute read from Redis at time `now`.
    pub fn boundary(&self, now: UnixMs) -> UnixMs {
        self.inner.boundary(now)
    }

    /// One flush pass at time `now`: forgets expired batch ids, seals
    /// every delta of a minute that ended at least the grace period ago
    /// and writes it to the store, and retries snapshots left by an
    /// interrupted flush. The background job runs this.
    pub async fn flush_due(&self, now: UnixMs) -> StoreResult<FlushReport> {
        self.inner.flush_pass(now).await
    }

    /// Removes every key under this hot tier's prefix (tests, teardown).
    pub async fn clear(&self) -> StoreResult<u64> {
        let mut conn = self.inner.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.inner.config.prefix));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(rerr)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(rerr)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Test hook: seals due deltas but writes nothing to the store, as if
    /// the collector died right after sealing. Returns the snapshot ids.
    #[cfg(feature = "testing")]
    pub async fn seal_due_then_crash(&self, now: UnixMs) -> StoreResult<Vec<String>> {
        self.inner.seal_due(now).await
    }

    /// Test hook: writes snapshot `id` to the store but leaves it in Redis,
    /// as if the collector died between the store write and the cleanup.
    #[cfg(feature = "testing")]
    pub async fn flush_then_crash(&self, id: &str) -> StoreResult<()> {
        self.inner.write_snapshot(id).await.map(|_| ())
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Inner {
    fn now(&self) -> UnixMs {
        now_ms()
    }

    fn boundary(&self, now: UnixMs) -> UnixMs {
        Resolution::Minute.floor(now) - self.config.window_ms
    }

    async fn ingest(&self, w: IngestWrite) -> StoreResult<IngestOutcome> {
        check_write(&w)?;
        let now = self.now();
        let hot_from = self.boundary(now);
        let k = &self.keys;
        let mut ops = Ops {
            keys: vec![],
            index: HashMap::new(),
            args: vec![],
        };
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

    /// Minute buckets in `[from, to)`, all at or after the boundary, from Redis.
    async fn read_hot(
        &self,
        tenant: &str,
        service: Option<&str>,
        from: UnixMs,
        to: UnixMs,
        series: SeriesSelect,
    ) -> StoreResult<Vec<Bucket>> {
        let mut conn = self.conn.clone();
        let minutes: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.view_minutes(tenant))
            .arg(from)
            .arg(format!("({to}"))
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        if minutes.is_empty() {
            return Ok(vec![]);
        }
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

    async fn read_minutes(&self, q: &BucketQuery, now: UnixMs) -> StoreResult<Vec<Bucket>> {
        let b = self.boundary(now);
        let mut out = Vec::new();
        if q.start_ms < b {
            let mut cold = q.clone();
            cold.end_ms = q.end_ms.min(b);
            out = self.store.read_buckets(cold).await?;
        }
        if q.end_ms > b {
            out.extend(
                self.read_hot(
                    &q.tenant,
                    q.service.as_deref(),
                    q.start_ms.max(b),
                    q.end_ms,
                    q.series,
                )
                .await?,
            );
        }
        Ok(out)
    }

    async fn read_buckets(&self, q: BucketQuery) -> StoreResult<Vec<Bucket>> {
        let now = self.now();
        let res = q.resolution;
        if res == Resolution::Minute {
            return self.read_minutes(&q, now).await;
        }
        // Coarser periods from the first one holding hot minutes on are
        // merged from minutes (exact and fresh); older ones are the
        // store's rollups.
        let split = res.floor(self.boundary(now));
        let mut out = Vec::new();
        if q.start_ms < split {
            let mut cold = q.clone();
            cold.end_ms = q.end_ms.min(split);
            out = self.store.read_buckets(cold).await?;
        }
        if let Some((first, last_end)) = merged_span(res, split, q.start_ms, q.end_ms) {
            let minutes = self
                .read_minutes(
                    &BucketQuery {
                        tenant: q.tenant.clone(),
                        service: q.service.clone(),
                        resolution: Resolution::Minute,
                        start_ms: first,
                        end_ms: last_end,
                        series: q.series,
                    },
                    now,
                )
                .await?;
            out.extend(roll_up(&q.tenant, res, minutes));
        }
        Ok(out)
    }

    async fn recent_samples(
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

    async fn services(&self, tenant: String) -> StoreResult<Vec<ServiceRecord>> {
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

    async fn seal_due(&self, now: UnixMs) -> StoreResult<Vec<String>> {
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
    async fn write_snapshot(&self, id: &str) -> StoreResult<bool> {
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

    async fn flush_snapshot(&self, id: &str) -> StoreResult<bool> {
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

    /// [`flush_due`](Self::flush_due), counted in the metrics, which then
    /// learn how old the oldest data still waiting in Redis is.
    /// Reads Redis's persistence settings into the `hot_durable` gauge,
    /// and warns when they cannot keep what the collector acknowledges
    /// (once, and again whenever they change).
    async fn check_durability(&self) {
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

    async fn flush_pass(&self, now: UnixMs) -> StoreResult<FlushReport> {
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

impl Store for HotTier {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        Box::pin(self.inner.ingest(write))
    }

    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        Box::pin(self.inner.read_buckets(query))
    }

    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        Box::pin(self.inner.read_custom(query))
    }

    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.write_custom_rollup(period, points)
    }

    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        self.inner.store.dirty_periods(resolution, before_ms, limit)
    }

    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.write_rollup(period, buckets)
    }

    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.store.drop_buckets_before(resolution, before_ms)
    }

    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.store.drop_samples_before(before_ms)
    }

    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let mut conn = self.inner.conn.clone();
            let hot: u64 = redis::cmd("ZREMRANGEBYSCORE")
                .arg(self.inner.keys.dedup())
                .arg("-inf")
                .arg(format!("({before_ms}"))
                .query_async(&mut conn)
                .await
                .map_err(rerr)?;
            let cold = self.inner.store.drop_batch_ids_before(before_ms).await?;
            Ok(hot + cold)
        })
    }

    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        Box::pin(self.inner.services(tenant))
    }

    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        Box::pin(self.inner.recent_samples(tenant, service, limit))
    }

    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.store.create_key(key)
    }

    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        self.inner.store.key_by_hash(hash)
    }

    fn register_metrics(&self, registry: &vitals::Registry) {
        registry.register_collector(HotTierCollector(self.inner.metrics.clone()));
        self.inner.store.register_metrics(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_never_run_into_each_other() {
        assert_ne!(
            format!("{}{}", part("a:1"), part("b")),
            format!("{}{}", part("a"), part("1:b"))
        );
        assert_eq!(glob_escape("p*?[x]\\:"), "p\\*\\?\\[x\\]\\\\:");
    }

    #[test]
    fn fields_decode_into_buckets() {
        let key = SeriesKey {
            service: "api".into(),
            method: "GET".into(),
            route: "/\u{1f}?".into(),
            status_class: 2,
            caller: String::new(),
        };
        let series = serde_json::to_string(&key).expect("json");
        assert!(!series.contains(SEP), "JSON escapes the separator");
        let mut sketch = vitals::Sketch::new();
        sketch.record(3.0);
        sketch.record(3.0);
        sketch.record(0.0);
        let stats = BucketStats {
            count: 3,
            errors: 1,
            satisfied: 3,
            tolerating: 0,
            duration_ms: sketch,
            last_seen_ms: 42,
        };
        let mut ops = Ops {
            keys: vec![],
            index: HashMap::new(),
            args: vec![],
        };
        ops.add_stats(1, &format!("60000{SEP}{series}{SEP}"), &stats);
        let fields: Vec<(String, String)> = ops
            .args
            .chunks(4)
            .map(|c| (c[2].clone(), c[3].clone()))
            .collect();
        let got = decode_buckets("t", fields, None, None).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].start_ms, 60_000);
        assert_eq!(got[0].key, key);
        assert_eq!(got[0].stats, stats);
        assert!(
            decode_buckets("t", vec![("junk".into(), "1".into())], None, None).is_err(),
            "a malformed field is a clear error"
        );
    }
}
