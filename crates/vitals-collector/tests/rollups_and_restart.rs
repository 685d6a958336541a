//! Rollups and retention through the real API, and restarts on one SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use vitals_collector::{BucketQuery, CollectorConfig, Resolution, SeriesSelect, now_ms};
use vitals_test_support::wait_until_async;

/// Records spread over the last `span_ms`, with their timestamps and durations.
fn spread(seed: u64, n: usize, now: i64, span_ms: i64) -> Vec<(i64, f64, u16)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let ts = now - 1 - (rng.unit() * span_ms as f64) as i64;
            let status = if rng.next() % 10 == 0 { 500 } else { 200 };
            (ts, rng.duration_ms(), status)
        })
        .collect()
}

async fn post_records(tc: &TestCollector, service: &str, recs: &[(i64, f64, u16)]) {
    for (i, chunk) in recs.chunks(2000).enumerate() {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|(ts, d, s)| json!({"method": "GET", "route": "/r", "status": s, "duration_ms": d, "timestamp_ms": ts}))
            .collect();
        let (status, body) = tc
            .post("/v1/requests", &json!({"service": service, "batch_id": format!("{service}-{i}"), "requests": requests}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn check(stats: &Value, recs: &[&(i64, f64, u16)], what: &str) {
    assert_eq!(stats["requests"], json!(recs.len()), "{what}: requests");
    assert_eq!(
        stats["errors"],
        json!(recs.iter().filter(|r| r.2 >= 500).count()),
        "{what}: errors"
    );
    let d: Vec<f64> = recs.iter().map(|r| r.1).collect();
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        assert_close(
            &stats[field],
            exact_quantile(&d, q),
            0.01,
            &format!("{what}: {field}"),
        );
    }
    // Apdex: an error is frustrated whatever its speed.
    let ok: Vec<f64> = recs.iter().filter(|r| r.2 < 500).map(|r| r.1).collect();
    let sat = ok.iter().filter(|&&x| x <= 500.0).count() as f64;
    let tol = ok.iter().filter(|&&x| x > 500.0 && x <= 2000.0).count() as f64;
    assert_close(
        &stats["apdex"],
        (sat + tol / 2.0) / d.len() as f64,
        1e-12,
        &format!("{what}: apdex"),
    );
}

#[tokio::test]
async fn coarse_queries_read_rollups_equal_to_the_raw_data() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let recs = spread(11, 6000, now, 5 * 3_600_000);
    post_records(&tc, "api", &recs).await;
    tc.collector
        .run_jobs_once(now_ms())
        .await
        .expect("rollup pass");

    for (window, resolution) in [("12h", "1h"), ("1h", "5m"), ("30m", "1m")] {
        let stats = tc
            .get_ok(&format!("/v1/services/api/stats?window={window}"))
            .await;
        assert_eq!(stats["window"]["resolution"], resolution, "{window}");
        let from = stats["window"]["from_ms"].as_i64().unwrap();
        let mine: Vec<&(i64, f64, u16)> = recs.iter().filter(|r| r.0 >= from).collect();
        check(&stats, &mine, window);
    }
    // Hour buckets in the store are exactly the merge of the minute buckets.
    let store = tc.collector.store();
    let read = |r: Resolution| {
        store.read_buckets(BucketQuery {
            tenant: "acme".into(),
            service: None,
            resolution: r,
            start_ms: 0,
            end_ms: i64::MAX,
            series: SeriesSelect::All,
        })
    };
    let minutes = read(Resolution::Minute).await.unwrap();
    for coarse in [Resolution::FiveMinutes, Resolution::Hour] {
        let got = read(coarse).await.unwrap();
        let mut want = std::collections::BTreeMap::new();
        for b in &minutes {
            want.entry((coarse.floor(b.start_ms), b.key.clone()))
                .or_insert_with(vitals_collector::BucketStats::default)
                .merge(&b.stats);
        }
        let got: std::collections::BTreeMap<_, _> = got
            .into_iter()
            .map(|b| ((b.start_ms, b.key), b.stats))
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{coarse}: one bucket per period and series"
        );
        for (k, g) in &got {
            let what = format!("{coarse} bucket {k:?}");
            let w = want.get(k).unwrap_or_else(|| panic!("{what} has no parts"));
            assert_eq!(
                (g.count, g.errors, g.satisfied, g.tolerating, g.last_seen_ms),
                (w.count, w.errors, w.satisfied, w.tolerating, w.last_seen_ms),
                "{what}"
            );
            let (gb, wb): (Vec<_>, Vec<_>) = (
                g.duration_ms.buckets().collect(),
                w.duration_ms.buckets().collect(),
            );
            assert_eq!(gb, wb, "{what}: sketch buckets");
            // Sums are floats added in another order: equal up to rounding.
            assert!(
                (g.duration_ms.sum() - w.duration_ms.sum()).abs()
                    <= 1e-9 * w.duration_ms.sum().abs(),
                "{what}: sum"
            );
        }
    }
}

#[tokio::test]
async fn the_background_job_rolls_up_by_itself() {
    let config = CollectorConfig {
        rollup_interval_secs: 1,
        ..memory_config()
    };
    let tc = TestCollector::start(config).await;
    let jobs = tc.collector.spawn_jobs();
    let now = now_ms();
    let recs = spread(12, 500, now, 3_600_000);
    post_records(&tc, "api", &recs).await;
    // Hour buckets appear without anyone asking.
    wait_until_async(
        "the background job to roll the 500 requests up into hours",
        Duration::from_secs(10),
        async || match tc.get_ok("/v1/services/api/stats?window=12h").await["requests"].as_u64() {
            Some(500) => Ok(()),
            seen => Err(format!("{seen:?} requests in the 12 h stats")),
        },
    )
    .await;
    jobs.abort();
}

#[tokio::test]
async fn retention_drops_each_resolution_after_its_time() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    post_records(&tc, "api", &spread(13, 300, now, 600_000)).await;
    let c = &tc.collector;
    c.run_jobs_once(now).await.unwrap();
    // Requests in the route series and, separately, in the per-service
    // totals: retention treats both alike.
    let counts = |r: Resolution| async move {
        let mut out = [0u64; 2];
        for (i, series) in [SeriesSelect::Routes, SeriesSelect::Totals]
            .into_iter()
            .enumerate()
        {
            out[i] = c
                .store()
                .read_buckets(BucketQuery {
                    tenant: "acme".into(),
                    service: None,
                    resolution: r,
                    start_ms: 0,
                    end_ms: i64::MAX,
                    series,
                })
                .await
                .unwrap()
                .iter()
                .map(|b| b.stats.count)
                .sum::<u64>();
        }
        out
    };
    let count = |r: Resolution| async move {
        let [routes, totals] = counts(r).await;
        assert_eq!(routes, totals, "{r}: totals follow their routes");
        routes
    };
    for r in Resolution::ALL {
        assert_eq!(count(r).await, 300, "{r} before retention");
    }
    // Three days on: minute buckets (2 days) are gone, the rest stay.
    c.run_jobs_once(now + 3 * 86_400_000).await.unwrap();
    assert_eq!(count(Resolution::Minute).await, 0);
    assert_eq!(count(Resolution::FiveMinutes).await, 300);
    assert_eq!(count(Resolution::Hour).await, 300);
    assert!(
        c.store()
            .recent_samples("acme".into(), "api".into(), 10)
            .await
            .unwrap()
            .is_empty(),
        "samples (2 days) are gone"
    );
    c.run_jobs_once(now + 15 * 86_400_000).await.unwrap();
    assert_eq!(count(Resolution::FiveMinutes).await, 0);
    assert_eq!(count(Resolution::Hour).await, 300);
    c.run_jobs_once(now + 401 * 86_400_000).await.unwrap();
    assert_eq!(count(Resolution::Hour).await, 0);
}

#[tokio::test]
async fn a_restart_on_the_same_file_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("vitals.db").display()),
        ..Default::default()
    };
    let tc = TestCollector::start(config.clone()).await;
    let now = now_ms();
    let recs = spread(14, 5000, now, 600_000);
    post_records(&tc, "api", &recs).await;
    let before = tc.get_ok("/v1/services/api/stats?window=15m").await;
    let collector = tc.stop().await;
    drop(collector);

    let tc = TestCollector::start(config).await;
    let after = tc.get_ok("/v1/services/api/stats?window=15m").await;
    for field in [
        "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "apdex", "avg_ms",
    ] {
        assert_eq!(before[field], after[field], "{field} survives the restart");
    }
    let all: Vec<&(i64, f64, u16)> = recs.iter().collect();
    check(&after, &all, "after restart");
    // The batch ids survive too: a retry after the restart is still a duplicate.
    let requests: Vec<Value> = recs[..2000].iter().map(|(ts, d, s)| json!({"method": "GET", "route": "/r", "status": s, "duration_ms": d, "timestamp_ms": ts})).collect();
    let (_, body) = tc
        .post(
            "/v1/requests",
            &json!({"service": "api", "batch_id": "api-0", "requests": requests}),
        )
        .await;
    assert_eq!(body["status"], "duplicate");
}
