//! The Redis hot tier against the real server at `VITALS_TEST_REDIS`
//! (`scripts/test` sets `redis://127.0.0.1:6379`), each test under a random
//! key prefix removed at the end. In CI (`CI=true`) a missing server fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod external;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use vitals_collector::model::{
    Bucket, BucketQuery, BucketStats, IngestOutcome, IngestWrite, Resolution, Sample, SeriesSelect,
};
use vitals_collector::rollup::merge_by_key;
use vitals_collector::store::{HotTier, HotTierConfig, SqliteStore, Store};
use vitals_collector::testing::{self, assert_stats_eq, key, minute_bucket};
use vitals_collector::{Collector, now_ms};

fn config(prefix: &str) -> HotTierConfig {
    HotTierConfig {
        prefix: format!("{prefix}:"),
        // Tests drive flushing themselves unless they say otherwise.
        flush_interval: None,
        ..HotTierConfig::default()
    }
}

async fn tier(url: &str, store: Arc<dyn Store>, cfg: HotTierConfig) -> HotTier {
    HotTier::open(url, store, cfg).await.expect("open hot tier")
}

async fn memory() -> Arc<dyn Store> {
    Arc::new(SqliteStore::open_in_memory().await.expect("sqlite"))
}

fn write(tenant: &str, id: Option<&str>, at: i64, buckets: Vec<Bucket>) -> IngestWrite {
    IngestWrite {
        tenant: tenant.into(),
        service: "api".into(),
        batch_id: id.map(str::to_string),
        received_ms: at,
        buckets,
        samples: vec![],
        custom: vec![],
    }
}

async fn read(store: &dyn Store, tenant: &str, res: Resolution, from: i64, to: i64) -> Vec<Bucket> {
    let mut got = store
        .read_buckets(BucketQuery {
            tenant: tenant.into(),
            service: None,
            resolution: res,
            start_ms: from,
            end_ms: to,
            series: SeriesSelect::All,
        })
        .await
        .expect("read");
    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
    got
}

fn total(buckets: &[Bucket]) -> u64 {
    buckets.iter().map(|b| b.stats.count).sum()
}

fn assert_same(got: &[Bucket], want: &[Bucket], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: bucket count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.start_ms, &g.key), (w.start_ms, &w.key), "{what}");
        assert_stats_eq(&g.stats, &w.stats, what);
    }
}

#[tokio::test]
async fn hot_tier_over_sqlite_passes_the_store_suite() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_suite");
    // With the background flusher running, as in production; batch ids are
    // kept until retention forgets them (the suite's clock is in 2001).
    let cfg = HotTierConfig {
        flush_interval: Some(Duration::from_millis(50)),
        dedup_ms: None,
        ..config(&prefix)
    };
    let hot = Arc::new(tier(&url, memory().await, cfg).await);
    testing::run_store_suite(hot.clone()).await;
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn hot_tier_over_postgres_passes_the_store_suite() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let Some(schema) = external::TestSchema::create("hot").await else {
        return;
    };
    let pg: Arc<dyn Store> = Arc::new(schema.open().await.expect("postgres"));
    let cfg = HotTierConfig {
        dedup_ms: None,
        ..config(&external::random_name("vitals_test_pgsuite"))
    };
    let hot = Arc::new(tier(&url, pg, cfg).await);
    testing::run_store_suite(hot.clone()).await;
    hot.clear().await.expect("clear");
    drop(hot);
    schema.drop().await;
}

/// Minute buckets of the last few minutes (all inside the hot window).
fn recent_buckets(tenant: &str, now: i64, n: usize, seed: u64) -> Vec<Bucket> {
    let keys = [key("api", "/users/{id}", ""), key("api", "/orders", "web")];
    (0..n)
        .map(|i| {
            let t = now - (i as i64 % 4) * 60_000;
            let durations: Vec<f64> = (0..(i % 5 + 1))
                .map(|j| (seed as f64 + 1.0) * (j as f64 + 0.5) * 3.0)
                .collect();
            minute_bucket(tenant, &keys[i % 2], t, &durations, (i % 3 == 0) as u64)
        })
        .collect()
}

fn expected(tenant: &str, parts: &[Bucket], res: Resolution) -> Vec<Bucket> {
    let mut by: std::collections::BTreeMap<i64, Vec<Bucket>> = Default::default();
    for p in parts {
        by.entry(res.floor(p.start_ms)).or_default().push(p.clone());
    }
    let mut out = Vec::new();
    for (start, bs) in by {
        for (key, stats) in merge_by_key(bs) {
            out.push(Bucket {
                tenant: tenant.into(),
                resolution: res,
                start_ms: start,
                key,
                stats,
            });
        }
    }
    out.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
    out
}

#[tokio::test]
async fn hot_data_is_answered_from_redis_and_flushed_exactly_once() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_flush");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    let mut parts = Vec::new();
    for i in 0..6u64 {
        let buckets = recent_buckets("t", now, 5, i);
        let w = write("t", Some(&format!("b{i}")), now, buckets.clone());
        assert_eq!(
            hot.ingest(w.clone()).await.expect("ingest"),
            IngestOutcome::Stored
        );
        assert_eq!(
            hot.ingest(w).await.expect("retry"),
            IngestOutcome::Duplicate
        );
        parts.extend(buckets);
    }
    let (from, to) = (now - 3_600_000, now + 60_000);
    let want = expected("t", &parts, Resolution::Minute);
    assert_same(
        &read(&hot, "t", Resolution::Minute, from, to).await,
        &want,
        "from Redis",
    );
    assert!(
        read(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty(),
        "nothing reaches the store before its minute is complete"
    );
    // Five-minute and hour reads over hot minutes merge them exactly.
    for res in [Resolution::FiveMinutes, Resolution::Hour] {
        let lo = res.floor(from);
        assert_same(
            &read(&hot, "t", res, lo, to).await,
            &expected("t", &parts, res),
            &format!("{res} from hot minutes"),
        );
    }
    // Flush as if every minute had ended: the store gets exactly the data,
    // the hot tier still answers the same (no double counting).
    let report = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert!(
        report.sealed >= 4 && report.flushed == report.sealed,
        "{report:?}"
    );
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "in the store",
    );
    assert_same(
        &read(&hot, "t", Resolution::Minute, from, to).await,
        &want,
        "after flush",
    );
    let again = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert_eq!(again.flushed, 0, "nothing left to flush: {again:?}");
    // Rollups read through the hot tier and write into the store.
    vitals_collector::rollup::rollup_pass(&hot)
        .await
        .expect("rollup");
    assert_eq!(
        total(
            &read(
                &hot,
                "t",
                Resolution::FiveMinutes,
                Resolution::FiveMinutes.floor(from),
                to
            )
            .await
        ),
        total(&parts)
    );
    // Services and recent samples come from both tiers.
    let services = hot.services("t".into()).await.expect("services");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].last_seen_ms, now);
    hot.clear().await.expect("clear");
}

fn sample(ts: i64, n: usize) -> Sample {
    Sample {
        timestamp_ms: ts,
        instance: "i-1".into(),
        method: "GET".into(),
        path: format!("/users/{n}"),
        route: "/users/{id}".into(),
        status: 200,
        duration_ms: n as f64,
        caller: None,
        trace_id: None,
    }
}

#[tokio::test]
async fn recent_samples_merge_hot_and_stored_without_duplicates() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_samples");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    // Old samples (late data, straight to the store) and recent ones.
    let old: Vec<Sample> = (0..5)
        .map(|i| sample(now - 3_600_000 + i, i as usize))
        .collect();
    let new: Vec<Sample> = (0..5)
        .map(|i| sample(now - 60_000 + i, 10 + i as usize))
        .collect();
    let mut w = write("t", Some("old"), now - 3_600_000, vec![]);
    w.samples = old.clone();
    hot.ingest(w).await.expect("old");
    let mut w = write("t", Some("new"), now, vec![]);
    w.samples = new.clone();
    hot.ingest(w).await.expect("new");
    let want: Vec<Sample> = new.iter().rev().chain(old.iter().rev()).cloned().collect();
    for flushed in [false, true] {
        if flushed {
            hot.flush_due(now + 3 * 60_000).await.expect("flush");
            assert_eq!(
                store
                    .recent_samples("t".into(), "api".into(), 100)
                    .await
                    .expect("store")
                    .len(),
                10,
                "the store got every sample once"
            );
        }
        for limit in [3, 5, 7, 10, 50] {
            let got = hot
                .recent_samples("t".into(), "api".into(), limit)
                .await
                .expect("recent");
            let n = limit.min(10);
            assert_eq!(got, want[..n].to_vec(), "limit {limit}, flushed {flushed}");
        }
    }
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn two_collectors_answer_the_same_and_never_double_count() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_two");
    let store = memory().await;
    let a = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let b = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let now = now_ms();
    let mut parts = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..30u64 {
        let buckets = recent_buckets("t", now, 4, i);
        parts.extend(buckets.clone());
        let w = write("t", Some(&format!("batch-{i}")), now, buckets);
        // Every batch goes to both collectors at once (a retry through the
        // load balancer): exactly one accepts it.
        for tier in [a.clone(), b.clone()] {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                tier.ingest(w).await.expect("ingest")
            }));
        }
    }
    let mut stored = 0;
    for t in tasks {
        stored += (t.await.expect("task") == IngestOutcome::Stored) as usize;
    }
    assert_eq!(stored, 30);
    let (from, to) = (now - 3_600_000, now + 60_000);
    let want = expected("t", &parts, Resolution::Minute);
    for res in Resolution::ALL {
        let lo = res.floor(from);
        let (ga, gb) = (
            read(&*a, "t", res, lo, to).await,
            read(&*b, "t", res, lo, to).await,
        );
        assert_same(&ga, &gb, &format!("{res}: both collectors answer the same"));
    }
    assert_same(
        &read(&*a, "t", Resolution::Minute, from, to).await,
        &want,
        "exact",
    );
    // Both flush at once: every minute reaches the store exactly once.
    let later = now + 3 * 60_000;
    let (ra, rb) = tokio::join!(a.flush_due(later), b.flush_due(later));
    let (ra, rb) = (ra.expect("flush a"), rb.expect("flush b"));
    assert!(ra.sealed + rb.sealed >= 4, "{ra:?} {rb:?}");
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "store",
    );
    assert_same(
        &read(&*b, "t", Resolution::Minute, from, to).await,
        &want,
        "after flush",
    );
    a.clear().await.expect("clear");
}

#[tokio::test]
async fn a_crash_between_flush_steps_loses_and_doubles_nothing() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_crash");
    let store = memory().await;
    let now = now_ms();
    let later = now + 3 * 60_000;
    let (from, to) = (now - 3_600_000, now + 60_000);
    let cfg = config(&prefix);
    let orphan_age = cfg.orphan_after_ms;

    // 1. Sealed, then the collector died before writing the store.
    let first = tier(&url, store.clone(), cfg.clone()).await;
    let p1 = recent_buckets("t", now, 6, 1);
    first
        .ingest(write("t", Some("one"), now, p1.clone()))
        .await
        .expect("ingest");
    let ids = first.seal_due_then_crash(later).await.expect("seal");
    assert!(!ids.is_empty());
    drop(first);
    assert!(
        read(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty()
    );
    // A new collector reads the data (Redis still has it) …
    let second = tier(&url, store.clone(), cfg.clone()).await;
    let want = expected("t", &p1, Resolution::Minute);
    assert_same(
        &read(&second, "t", Resolution::Minute, from, to).await,
        &want,
        "sealed, unflushed",
    );
    // … and takes over the orphaned snapshots once they are old enough.
    let early = second.flush_due(later).await.expect("flush");
    assert_eq!(
        early.flushed, 0,
        "a fresh seal belongs to its collector a while"
    );
    let report = second.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(report.flushed, ids.len(), "{report:?}");
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "taken over",
    );

    // 2. Written to the store, then the collector died before cleaning up.
    let p2 = recent_buckets("t", now, 6, 2);
    second
        .ingest(write("t", Some("two"), now, p2.clone()))
        .await
        .expect("ingest");
    let ids = second.seal_due_then_crash(later).await.expect("seal");
    for id in &ids {
        second.flush_then_crash(id).await.expect("write");
    }
    drop(second);
    let all: Vec<Bucket> = p1.iter().chain(&p2).cloned().collect();
    let want = expected("t", &all, Resolution::Minute);
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "written once",
    );
    let third = tier(&url, store.clone(), cfg).await;
    let report = third.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(report.flushed, ids.len(), "the retry runs: {report:?}");
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "the retried write was a duplicate in the store",
    );
    assert_same(
        &read(&third, "t", Resolution::Minute, from, to).await,
        &want,
        "hot view",
    );
    let idle = third.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(idle, Default::default(), "nothing left behind");
    third.clear().await.expect("clear");
}

#[tokio::test]
async fn batch_ids_expire_after_the_dedup_window() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_dedup");
    let cfg = HotTierConfig {
        dedup_ms: Some(60_000),
        ..config(&prefix)
    };
    let hot = tier(&url, memory().await, cfg).await;
    let now = now_ms();
    let w = write("t", Some("x"), now, recent_buckets("t", now, 1, 0));
    assert_eq!(
        hot.ingest(w.clone()).await.expect("1"),
        IngestOutcome::Stored
    );
    hot.flush_due(now + 30_000).await.expect("flush");
    assert_eq!(
        hot.ingest(w.clone()).await.expect("2"),
        IngestOutcome::Duplicate
    );
    hot.flush_due(now + 61_000).await.expect("flush");
    assert_eq!(
        hot.ingest(w).await.expect("3"),
        IngestOutcome::Stored,
        "remembered for the dedup window only"
    );
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn hostile_names_round_trip_through_redis() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    // Hot: answered from Redis, then flushed and answered again.
    let prefix = external::random_name("vitals_test_hostile");
    let hot = tier(&url, memory().await, config(&prefix)).await;
    external::hostile_round_trip(&hot, now_ms()).await;
    hot.flush_due(now_ms() + 3 * 60_000).await.expect("flush");
    hot.clear().await.expect("clear");
    // Late: through a snapshot into the store at once.
    let prefix = external::random_name("vitals_test_hostile_late");
    let late = tier(&url, memory().await, config(&prefix)).await;
    external::hostile_round_trip(&late, 1_000_000_000_000).await;
    late.clear().await.expect("clear");
}

#[tokio::test]
async fn oversized_counts_are_refused_before_anything_is_written() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_big");
    let hot = tier(&url, memory().await, config(&prefix)).await;
    let now = now_ms();
    let mut b = minute_bucket("t", &key("api", "/", ""), now, &[1.0], 0);
    b.stats = BucketStats {
        count: u64::MAX,
        ..b.stats
    };
    let err = hot
        .ingest(write("t", Some("big"), now, vec![b]))
        .await
        .expect_err("too big");
    assert!(err.to_string().contains("2^53"), "{err}");
    // The batch id was not taken: a fixed retry goes through.
    let ok = minute_bucket("t", &key("api", "/", ""), now, &[1.0], 0);
    assert_eq!(
        hot.ingest(write("t", Some("big"), now, vec![ok]))
            .await
            .expect("retry"),
        IngestOutcome::Stored
    );
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn two_collectors_over_http_share_one_hot_tier() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_http");
    let store = memory().await;
    let mut collectors = Vec::new();
    for _ in 0..2 {
        let hot: Arc<dyn Store> = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
        let c = Collector::with_store(common::memory_config(), hot).expect("collector");
        collectors.push(common::TestCollector::start_with(c).await);
    }
    let now = now_ms();
    let mut sent = 0u64;
    for i in 0..10 {
        let requests: Vec<_> = (0..(i + 1))
            .map(|j| {
                json!({"method": "GET", "route": "/users/{id}", "path": format!("/users/{j}"),
                       "status": if j % 4 == 0 { 500 } else { 200 }, "duration_ms": 5.0 + j as f64,
                       "timestamp_ms": now - 1_000})
            })
            .collect();
        let body = json!({"service": "api", "instance": "i-1", "batch_id": format!("b{i}"),
                          "requests": requests});
        // The client retries through the load balancer: both see the batch.
        let (s1, r1) = collectors[i % 2].post("/v1/requests", &body).await;
        let (s2, r2) = collectors[(i + 1) % 2].post("/v1/requests", &body).await;
        assert_eq!((s1, s2), (200, 200), "{r1} {r2}");
        assert_eq!(
            (r1["status"].as_str(), r2["status"].as_str()),
            (Some("stored"), Some("duplicate"))
        );
        sent += i as u64 + 1;
    }
    let a = collectors[0]
        .get_ok("/v1/services/api/stats?window=15m")
        .await;
    let b = collectors[1]
        .get_ok("/v1/services/api/stats?window=15m")
        .await;
    assert_eq!(a["requests"], json!(sent), "{a}");
    for field in ["requests", "errors", "p50_ms", "p95_ms", "p99_ms"] {
        assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
    }
    let ra = collectors[0]
        .get_ok("/v1/services/api/recent?limit=20")
        .await;
    let rb = collectors[1]
        .get_ok("/v1/services/api/recent?limit=20")
        .await;
    assert_eq!(ra, rb, "recent requests agree");
    for c in collectors {
        c.stop().await;
    }
    let cleanup = tier(&url, store, config(&prefix)).await;
    cleanup.clear().await.expect("clear");
}

#[tokio::test]
async fn collector_open_puts_the_hot_tier_in_front_of_the_store() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = format!("{}:", external::random_name("vitals_test_open"));
    let collector_config = vitals_collector::CollectorConfig {
        cache: Some(format!("{url}/?prefix={prefix}")),
        ..common::memory_config()
    };
    let tc = common::TestCollector::start(collector_config).await;
    let now = now_ms();
    let body = json!({"service": "api", "batch_id": "one", "requests": [
        {"method": "GET", "route": "/", "status": 200, "duration_ms": 3.0, "timestamp_ms": now}]});
    let (status, reply) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{reply}");
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(stats["requests"], json!(1), "{stats}");
    // The write went to Redis under the prefix, not straight to the store.
    let (keys, _) = external::redis_keys(&url, &prefix).await;
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("{prefix}q:"))),
        "{keys:?}"
    );
    tc.stop().await;
    let cleanup = tier(&url, memory().await, config(&prefix[..prefix.len() - 1])).await;
    cleanup.clear().await.expect("clear");
    // A cache URL that is not Redis is refused clearly.
    let bad = vitals_collector::CollectorConfig {
        cache: Some("memcached://x".into()),
        ..common::memory_config()
    };
    let err = Collector::open(bad)
        .await
        .expect_err("not redis")
        .to_string();
    assert!(err.contains("redis://"), "{err}");
}

async fn read_custom_points(
    store: &dyn Store,
    tenant: &str,
    res: Resolution,
    from: i64,
    to: i64,
) -> Vec<vitals_collector::model::CustomPoint> {
    let mut got = store
        .read_custom(vitals_collector::model::CustomQuery {
            tenant: tenant.into(),
            service: None,
            name: None,
            resolution: res,
            start_ms: from,
            end_ms: to,
        })
        .await
        .expect("read custom");
    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
    got
}

#[tokio::test]
async fn custom_points_are_shared_hot_and_flushed_exactly_once() {
    use vitals_collector::model::{CustomKind, CustomPoint, CustomStats};
    use vitals_collector::testing::custom_point;
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_custom");
    let store = memory().await;
    let a = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let b = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let now = now_ms();
    let m = Resolution::Minute.floor(now) - 2 * 60_000;
    // Values of one gauge and one counter, pushed alternately through both
    // collectors, some out of time order (late, cold points go through the
    // store suite run over the hot tier).
    let pushes: Vec<(i64, CustomKind, f64)> = vec![
        (m + 10_000, CustomKind::Gauge, 5.0),
        (m + 50_000, CustomKind::Gauge, -3.5),
        (m + 30_000, CustomKind::Gauge, 12.25),
        (m + 60_000 + 5_000, CustomKind::Gauge, 0.1),
        (m + 10_000, CustomKind::Counter, 1e15),
        (m + 40_000, CustomKind::Counter, 1e15 + 7.0),
    ];
    let mut parts: Vec<CustomPoint> = Vec::new();
    for (i, (at, kind, value)) in pushes.into_iter().enumerate() {
        let name = if kind == CustomKind::Gauge {
            "g"
        } else {
            "c_total"
        };
        let p = custom_point(
            "t",
            "api",
            name,
            &[("k", "v \u{1f}\"")],
            "i-1",
            kind,
            value,
            at,
        );
        let w = IngestWrite {
            custom: vec![p.clone()],
            ..write("t", Some(&format!("c{i}")), now, vec![])
        };
        let tier = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            tier.ingest(w.clone()).await.expect("ingest"),
            IngestOutcome::Stored
        );
        // The retry reaches the other collector: a duplicate.
        let other = if i % 2 == 0 { &b } else { &a };
        assert_eq!(
            other.ingest(w).await.expect("retry"),
            IngestOutcome::Duplicate
        );
        parts.push(p);
    }
    let want = |res: Resolution| -> Vec<(i64, String, CustomStats)> {
        let mut by: std::collections::BTreeMap<(i64, String), CustomStats> = Default::default();
        for p in &parts {
            by.entry((res.floor(p.start_ms), p.key.name.clone()))
                .and_modify(|s| s.merge(&p.stats))
                .or_insert(p.stats);
        }
        by.into_iter().map(|((t, n), s)| (t, n, s)).collect()
    };
    let got = |points: Vec<CustomPoint>| -> Vec<(i64, String, CustomStats)> {
        points
            .into_iter()
            .map(|p| (p.start_ms, p.key.name, p.stats))
            .collect()
    };
    let (from, to) = (now - 3_600_000, now + 60_000);
    let minute = want(Resolution::Minute);
    assert_eq!(minute.len(), 3);
    let g0 = minute
        .iter()
        .find(|(t, n, _)| *t == m && n == "g")
        .expect("g");
    assert_eq!(
        g0.2,
        CustomStats {
            kind: CustomKind::Gauge,
            last: -3.5,
            last_ms: m + 50_000,
            min: -3.5,
            max: 12.25
        }
    );
    for tier in [&a, &b] {
        assert_eq!(
            got(read_custom_points(&**tier, "t", Resolution::Minute, from, to).await),
            minute,
            "both collectors answer the same from Redis"
        );
        for res in [Resolution::FiveMinutes, Resolution::Hour] {
            assert_eq!(
                got(read_custom_points(&**tier, "t", res, res.floor(from), to).await),
                want(res),
                "{res} merged from hot minutes"
            );
        }
    }
    assert!(
        read_custom_points(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty(),
        "nothing in the store before its minute is flushed"
    );
    let later = now + 3 * 60_000;
    let (ra, rb) = tokio::join!(a.flush_due(later), b.flush_due(later));
    assert!(ra.expect("flush a").sealed + rb.expect("flush b").sealed >= 2);
    assert_eq!(
        got(read_custom_points(&*store, "t", Resolution::Minute, from, to).await),
        minute,
        "the store holds every point exactly once"
    );
    assert_eq!(
        got(read_custom_points(&*a, "t", Resolution::Minute, from, to).await),
        minute,
        "after the flush"
    );
    // Rollups through the hot tier write exact five-minute points.
    vitals_collector::rollup::rollup_pass(&*a)
        .await
        .expect("rollup");
    assert_eq!(
        got(read_custom_points(
            &*store,
            "t",
            Resolution::FiveMinutes,
            Resolution::FiveMinutes.floor(from),
            to
        )
        .await),
        want(Resolution::FiveMinutes),
        "five-minute rollup in the store"
    );
    a.clear().await.expect("clear");
}

#[tokio::test]
async fn hot_reads_select_routes_or_totals_before_and_after_flushing() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_totals");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    let mut parts = Vec::new();
    for i in 0..5u64 {
        // As ingest writes them: route series plus their totals.
        let buckets = vitals_collector::with_totals(recent_buckets("t", now, 6, i));
        hot.ingest(write("t", Some(&format!("b{i}")), now, buckets.clone()))
            .await
            .expect("ingest");
        parts.extend(buckets);
    }
    assert!(parts.iter().any(|b| b.key.is_total()));
    let (from, to) = (now - 3_600_000, now + 60_000);
    let check = |what: &'static str| {
        let (hot, parts) = (&hot, &parts);
        async move {
            for res in Resolution::ALL {
                for series in [
                    SeriesSelect::Routes,
                    SeriesSelect::Totals,
                    SeriesSelect::All,
                ] {
                    let mut got = hot
                        .read_buckets(BucketQuery {
                            tenant: "t".into(),
                            service: Some("api".into()),
                            resolution: res,
                            start_ms: res.floor(from),
                            end_ms: to,
                            series,
                        })
                        .await
                        .expect("read");
                    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
                    let mine: Vec<Bucket> = parts
                        .iter()
                        .filter(|b| series.includes(&b.key))
                        .cloned()
                        .collect();
                    assert_same(
                        &got,
                        &expected("t", &mine, res),
                        &format!("{what}: {res} {series:?}"),
                    );
                }
            }
        }
    };
    check("from Redis").await;
    let report = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert!(report.flushed > 0, "{report:?}");
    check("after the flush").await;
    // The store got totals and routes as ordinary series.
    let stored = read(&*store, "t", Resolution::Minute, from, to).await;
    assert_same(
        &stored,
        &expected("t", &parts, Resolution::Minute),
        "flushed to the store",
    );
    hot.clear().await.expect("clear");
}
