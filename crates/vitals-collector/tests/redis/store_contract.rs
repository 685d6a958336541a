//! The hot tier keeps the store contract: in front of SQLite or PostgreSQL
//! it passes the shared store suite, hostile names round-trip through
//! Redis, and oversized counts are refused before anything is written.

use crate::external;
use crate::{config, memory, tier, write};
use std::sync::Arc;
use std::time::Duration;
use vitals_collector::model::{BucketStats, IngestOutcome};
use vitals_collector::now_ms;
use vitals_collector::store::{HotTierConfig, Store};
use vitals_collector::testing::{self, key, minute_bucket};

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
