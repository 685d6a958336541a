//! Several collectors over one hot tier: they answer the same and never
//! double-count, also over HTTP; `Collector::open` puts the hot tier in
//! front of the store.

use crate::common;
use crate::external;
use crate::{assert_same, config, expected, memory, read, recent_buckets, tier, write};
use serde_json::json;
use std::sync::Arc;
use vitals_collector::model::{IngestOutcome, Resolution};
use vitals_collector::store::Store;
use vitals_collector::{Collector, now_ms};

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
