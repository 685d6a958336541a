//! Hot tier flush health in the collector's own `GET /metrics`: a real
//! Redis (`VITALS_TEST_REDIS`) in front of a store that fails on demand.
//! While the store is down flush failures are counted and the age of the
//! oldest unflushed data grows; once it is back everything reaches it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod external;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vitals_collector::model::{
    AlertEvent, AlertHistoryQuery, Bucket, BucketQuery, CustomPoint, CustomQuery, DirtyPeriod,
    IngestOutcome, IngestWrite, KeyRecord, Resolution, Sample, SeriesSelect, ServiceRecord,
    StoredAlert, StoredRule, UnixMs,
};
use vitals_collector::store::{HotTier, HotTierConfig, SqliteStore};
use vitals_collector::testing::{key, minute_bucket};
use vitals_collector::{BoxFuture, Collector, Store, StoreError, StoreResult, now_ms};

/// A store whose ingest fails while `down` is set; everything else passes
/// through to the wrapped store.
struct FlakyStore {
    inner: Arc<dyn Store>,
    down: AtomicBool,
}

impl Store for FlakyStore {
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Task("store down (test)".into()));
            }
            self.inner.ingest(write).await
        })
    }
    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>> {
        self.inner.read_buckets(query)
    }
    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>> {
        self.inner.read_custom(query)
    }
    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.write_custom_rollup(period, points)
    }
    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>> {
        self.inner.dirty_periods(resolution, before_ms, limit)
    }
    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.write_rollup(period, buckets)
    }
    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.drop_buckets_before(resolution, before_ms)
    }
    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.drop_samples_before(before_ms)
    }
    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.drop_batch_ids_before(before_ms)
    }
    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>> {
        self.inner.services(tenant)
    }
    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>> {
        self.inner.recent_samples(tenant, service, limit)
    }
    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.create_key(key)
    }
    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>> {
        self.inner.key_by_hash(hash)
    }
    fn alert_rules(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<StoredRule>>> {
        self.inner.alert_rules(tenant)
    }
    fn put_alert_rule(&self, rule: StoredRule, replace: bool) -> BoxFuture<'_, StoreResult<bool>> {
        self.inner.put_alert_rule(rule, replace)
    }
    fn delete_alert_rule(&self, tenant: String, name: String) -> BoxFuture<'_, StoreResult<bool>> {
        self.inner.delete_alert_rule(tenant, name)
    }
    fn alert_states(&self) -> BoxFuture<'_, StoreResult<Vec<StoredAlert>>> {
        self.inner.alert_states()
    }
    fn save_alerts(
        &self,
        states: Vec<StoredAlert>,
        removed: Vec<(String, String, String)>,
        events: Vec<AlertEvent>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.save_alerts(states, removed, events)
    }
    fn alert_history(
        &self,
        query: AlertHistoryQuery,
    ) -> BoxFuture<'_, StoreResult<Vec<AlertEvent>>> {
        self.inner.alert_history(query)
    }
    fn drop_alert_history_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>> {
        self.inner.drop_alert_history_before(before_ms)
    }
    fn tenants(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.inner.tenants()
    }
    fn list_keys(&self, tenant: Option<String>) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.inner.list_keys(tenant)
    }
    fn revoke_keys(&self, prefix: String) -> BoxFuture<'_, StoreResult<Vec<KeyRecord>>> {
        self.inner.revoke_keys(prefix)
    }
}

/// The value of one series in Prometheus text (`name{labels}` as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(series)?;
            rest.starts_with(' ').then(|| rest.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

async fn minute_total(store: &dyn Store, from: i64, to: i64) -> (u64, u64) {
    let got = store
        .read_buckets(BucketQuery {
            tenant: "t".into(),
            service: None,
            resolution: Resolution::Minute,
            start_ms: from,
            end_ms: to,
            series: SeriesSelect::Routes,
        })
        .await
        .expect("read");
    got.iter()
        .fold((0, 0), |(c, e), b| (c + b.stats.count, e + b.stats.errors))
}

fn write(id: &str, at: i64, buckets: Vec<Bucket>) -> IngestWrite {
    IngestWrite {
        tenant: "t".into(),
        service: "api".into(),
        batch_id: Some(id.into()),
        received_ms: at,
        buckets,
        samples: vec![],
        custom: vec![],
    }
}

#[tokio::test]
async fn flush_failures_are_counted_and_nothing_is_lost_when_the_store_recovers() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_hotflush");
    let durable: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.expect("sqlite"));
    let flaky = Arc::new(FlakyStore {
        inner: durable.clone(),
        down: AtomicBool::new(true),
    });
    let config = HotTierConfig {
        prefix: format!("{prefix}:"),
        flush_interval: None,
        // A snapshot whose store write failed is retried by the next pass.
        orphan_after_ms: 0,
        ..HotTierConfig::default()
    };
    let hot = Arc::new(
        HotTier::open(&url, flaky.clone(), config)
            .await
            .expect("open"),
    );
    let collector = Collector::with_store(common::memory_config(), hot.clone()).expect("collector");
    let tc = common::TestCollector::start_with(collector).await;

    let now = now_ms();
    let minute = Resolution::Minute.floor(now) - 10 * 60_000;
    let series = key("api", "/orders", "");
    // Hot: ten minutes ago, inside the window, kept in Redis.
    let hot_data = vec![minute_bucket(
        "t",
        &series,
        minute + 1_000,
        &[1.0, 2.0, 3.0],
        1,
    )];
    assert_eq!(
        hot.ingest(write("hot", now, hot_data)).await.expect("hot"),
        IngestOutcome::Stored,
        "accepted while the store is down: Redis holds it"
    );
    // Late: older than the window, written to the store at once; that
    // fails, so it stays in Redis as a sealed snapshot.
    let late = Resolution::Minute.floor(now) - 40 * 60_000;
    let late_data = vec![minute_bucket("t", &series, late + 1_000, &[4.0, 5.0], 0)];
    assert_eq!(
        hot.ingest(write("late", now, late_data))
            .await
            .expect("late"),
        IngestOutcome::Stored
    );

    // A pass at a past moment when the hot minute was due: sealed then,
    // and its store write fails.
    let sealed_at = minute + 2 * 60_000;
    hot.flush_due(sealed_at).await.expect_err("store is down");
    let text = tc.metrics_text().await;
    let failures = |t: &str, stage: &str| {
        sample(
            t,
            &format!("vitals_collector_hot_flush_failures_total{{stage=\"{stage}\"}}"),
        )
    };
    assert_eq!(failures(&text, "pass"), 1.0, "{text}");
    assert_eq!(failures(&text, "late_data"), 1.0);
    assert_eq!(
        sample(&text, "vitals_collector_hot_flushed_snapshots_total"),
        0.0
    );
    // The oldest waiting data is the snapshot sealed at `sealed_at`.
    let age = sample(&text, "vitals_collector_hot_oldest_unflushed_age_seconds");
    let expected = (now_ms() - sealed_at) as f64 / 1000.0;
    assert!(
        (age - expected).abs() < 5.0 && age > 7.0 * 60.0,
        "age {age}, expected about {expected}"
    );
    // Still down: the retry fails too and is counted again.
    hot.flush_due(now_ms()).await.expect_err("still down");
    let text = tc.metrics_text().await;
    assert_eq!(failures(&text, "pass"), 2.0);
    assert_eq!(minute_total(&*durable, 0, i64::MAX).await, (0, 0));

    // The store recovers: the next pass writes everything.
    flaky.down.store(false, Ordering::SeqCst);
    let report = hot.flush_due(now_ms()).await.expect("store is back");
    assert!(report.flushed >= 2, "{report:?}");
    let text = tc.metrics_text().await;
    assert_eq!(failures(&text, "pass"), 2.0, "no new failure");
    assert!(sample(&text, "vitals_collector_hot_flushed_snapshots_total") >= 2.0);
    assert_eq!(
        sample(&text, "vitals_collector_hot_flushed_buckets_total"),
        2.0,
        "one bucket each for the hot and the late minute"
    );
    // Only the current minute (where the batches were received) waits.
    let age = sample(&text, "vitals_collector_hot_oldest_unflushed_age_seconds");
    assert!(age < 120.0, "age {age}");
    // Nothing lost, nothing counted twice.
    assert_eq!(
        minute_total(&*durable, minute, minute + 60_000).await,
        (3, 1)
    );
    assert_eq!(minute_total(&*durable, late, late + 60_000).await, (2, 0));
    assert_eq!(minute_total(&*durable, 0, i64::MAX).await, (5, 1));

    // Redis's persistence, as the gauge reports it, matches its settings.
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let setting = |name: &'static str| {
        let mut conn = conn.clone();
        async move {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await
                .expect("CONFIG GET");
            pair.get(1).cloned().unwrap_or_default()
        }
    };
    let aof = setting("appendonly").await == "yes"
        && ["always", "everysec"].contains(&setting("appendfsync").await.as_str());
    assert_eq!(
        sample(&tc.metrics_text().await, "vitals_collector_hot_durable"),
        if aof { 1.0 } else { 0.0 },
        "appendonly/appendfsync as Redis reports them"
    );

    tc.stop().await;
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn collector_open_applies_the_hot_tier_settings() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = format!("{}:", external::random_name("vitals_test_hotcfg"));
    let config = vitals_collector::CollectorConfig {
        cache: Some(format!("{url}/?prefix={prefix}")),
        hot_tier: vitals_collector::HotTierSettings {
            window: "2m".into(),
            recent_samples: 5,
            ..Default::default()
        },
        ..common::memory_config()
    };
    let tc = common::TestCollector::start(config).await;
    let now = now_ms();
    // Ten requests now and ten five minutes ago: inside the default 15-minute
    // window, outside this 2-minute one.
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let at = if i < 10 { now } else { now - 5 * 60_000 };
            serde_json::json!({"method": "GET", "route": "/a", "path": format!("/a/{i}"),
                               "status": 200, "duration_ms": 2.0, "timestamp_ms": at})
        })
        .collect();
    let body = serde_json::json!({"service": "api", "batch_id": "cfg", "requests": requests});
    let (status, reply) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{reply}");

    // The window: only the current minute has a query view in Redis; the
    // older minute went to the store as late data.
    let mut conn = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let minutes: Vec<i64> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}qm:4:acme"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("zrange");
    assert_eq!(minutes, vec![Resolution::Minute.floor(now)]);
    // Both halves are still counted, from Redis and from the store.
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(stats["requests"], serde_json::json!(20), "{stats}");
    // The recent-samples cap: 5 kept in Redis, not 10.
    let recent = tc.get_ok("/v1/services/api/recent?limit=100").await;
    let n = recent["requests"]
        .as_array()
        .or(recent.as_array())
        .map(Vec::len);
    assert_eq!(n, Some(5), "{recent}");

    tc.stop().await;
    let cleanup = HotTier::open(
        &url,
        Arc::new(SqliteStore::open_in_memory().await.expect("sqlite")),
        HotTierConfig {
            prefix,
            flush_interval: None,
            ..HotTierConfig::default()
        },
    )
    .await
    .expect("open");
    cleanup.clear().await.expect("clear");
}
