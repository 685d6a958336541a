//! The Redis hot tier against the real server at `VITALS_TEST_REDIS`
//! (`scripts/test` sets `redis://127.0.0.1:6379`), each test under a random
//! key prefix removed at the end. In CI (`CI=true`) a missing server fails.
//!
//! - `store_contract`: the hot tier in front of SQLite or PostgreSQL passes
//!   the store suite; hostile names round-trip; oversized counts are
//!   refused before anything is written.
//! - `flushing`: hot data is answered from Redis and flushed exactly once,
//!   also across a crash between flush steps; batch ids expire; recent
//!   samples and route or total reads merge hot and stored data.
//! - `collectors`: two collectors sharing one hot tier answer the same and
//!   never double-count; `Collector::open` puts the tier in front.
//! - `custom`: custom points are shared hot and flushed exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../external/mod.rs"]
mod external;

mod collectors;
mod custom;
mod flushing;
mod store_contract;

use std::sync::Arc;
use vitals_collector::model::{Bucket, BucketQuery, IngestWrite, Resolution, SeriesSelect};
use vitals_collector::rollup::merge_by_key;
use vitals_collector::store::{HotTier, HotTierConfig, SqliteStore, Store};
use vitals_collector::testing::{assert_stats_eq, key, minute_bucket};

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
