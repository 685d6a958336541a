//! Query latency over 24 hours of data on SQLite, over real HTTP: the
//! services overview for 20 services × 50 routes and the per-route table
//! (p50/p95/p99 from merged sketches) of one service; the default
//! 15-minute overview over minute buckets; and custom metrics (1,000 series
//! of one service: the list, and one metric's 100 label sets hour by hour).
//! The data holds the per-service total series ingest writes, computed by
//! the same function (`with_totals`). Also prints the stored bytes per
//! series-minute. Run:
//! `cargo bench -p vitals-collector --bench query`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use vitals::Sketch;
use vitals_collector::model::{CustomKey, CustomKind, CustomPoint, CustomStats};
use vitals_collector::{
    Bucket, BucketStats, Collector, CollectorConfig, DirtyPeriod, IngestWrite, Resolution, Role,
    SeriesKey, now_ms, with_totals,
};

const SERVICES: usize = 20;
const ROUTES: usize = 50;

fn sketch(seed: &mut u64, n: usize) -> Sketch {
    let mut sk = Sketch::new();
    for _ in 0..n {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (*seed >> 11) as f64 / (1u64 << 53) as f64;
        sk.record((0.5f64.ln() + u * (5000.0f64 / 0.5).ln()).exp());
    }
    sk
}

fn query(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("query.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = CollectorConfig {
        store: format!("sqlite://{}", db.display()),
        ..Default::default()
    };
    let (collector, addr, key) = rt.block_on(async {
        let collector = Collector::open(config).await.unwrap();
        let store = collector.store().clone();
        let now = now_ms();
        let mut seed = 7u64;
        // 24 hour buckets per series, as the rollup job leaves them.
        for h in 0..25 {
            let start = Resolution::Hour.floor(now) - h * 3_600_000;
            let mut buckets = Vec::new();
            for s in 0..SERVICES {
                for r in 0..ROUTES {
                    let duration_ms = sketch(&mut seed, 2000);
                    buckets.push(Bucket {
                        tenant: "bench".into(),
                        resolution: Resolution::Hour,
                        start_ms: start,
                        key: SeriesKey { service: format!("svc-{s}"), method: "GET".into(), route: format!("/route/{r}"), status_class: 2, caller: String::new() },
                        stats: BucketStats { count: 2000, errors: 10, satisfied: 1500, tolerating: 300, duration_ms, last_seen_ms: now },
                    });
                }
            }
            let period = DirtyPeriod { resolution: Resolution::Hour, tenant: "bench".into(), start_ms: start, generation: 0 };
            // Rolled up from minutes that carried totals: the hour holds them too.
            store.write_rollup(period, with_totals(buckets)).await.unwrap();
        }
        // Custom metrics of svc-0: 10 names × 100 label sets, 24 hour
        // points each, as the rollup job leaves them.
        for h in 0..25 {
            let start = Resolution::Hour.floor(now) - h * 3_600_000;
            let points: Vec<CustomPoint> = (0..1000)
                .map(|i| CustomPoint {
                    tenant: "bench".into(),
                    resolution: Resolution::Hour,
                    start_ms: start,
                    key: CustomKey { service: "svc-0".into(), name: format!("app_metric_{}", i % 10), labels: format!(r#"{{"shard":"{}"}}"#, i / 10), instance: "i-1".into() },
                    stats: CustomStats { kind: if i % 2 == 0 { CustomKind::Counter } else { CustomKind::Gauge }, last: (25 - h) as f64 * 100.0, last_ms: start + 3_000_000, min: 0.0, max: 2500.0 },
                })
                .collect();
            let period = DirtyPeriod { resolution: Resolution::Hour, tenant: "bench".into(), start_ms: start, generation: 0 };
            store.write_custom_rollup(period, points).await.unwrap();
        }
        // The last 15 minutes at minute resolution (what the default
        // overview reads), 100 requests per route and minute, as ingest
        // writes them (route series plus totals). Registers the services.
        for m in 0..16 {
            let t = Resolution::Minute.floor(now) - m * 60_000;
            for s in 0..SERVICES {
                let buckets: Vec<Bucket> = (0..ROUTES)
                    .map(|r| Bucket {
                        tenant: "bench".into(),
                        resolution: Resolution::Minute,
                        start_ms: t,
                        key: SeriesKey { service: format!("svc-{s}"), method: "GET".into(), route: format!("/route/{r}"), status_class: 2, caller: String::new() },
                        stats: BucketStats { count: 100, errors: 1, satisfied: 80, tolerating: 10, duration_ms: sketch(&mut seed, 100), last_seen_ms: now },
                    })
                    .collect();
                let w = IngestWrite { tenant: "bench".into(), service: format!("svc-{s}"), batch_id: None, received_ms: now, buckets: with_totals(buckets), samples: vec![], custom: vec![] };
                store.ingest(w).await.unwrap();
            }
        }
        // Bytes per series-minute: one hour of minute buckets for one
        // service, once as route rows alone (as stored before totals) and
        // once with the totals ingest adds.
        let checkpoint = || {
            // Rows still in the WAL would otherwise land in the file during
            // a measurement and count as its growth.
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
            std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        };
        for (service, totals) in [("bytes-routes-only", false), ("bytes", true)] {
            let before = checkpoint();
            let (mut minute_rows, mut stored_rows) = (0u64, 0u64);
            for m in 0..60 {
                let t = Resolution::Minute.floor(now) - m * 60_000;
                let buckets: Vec<Bucket> = (0..ROUTES)
                    .map(|r| Bucket {
                        tenant: "bench".into(),
                        resolution: Resolution::Minute,
                        start_ms: t,
                        key: SeriesKey { service: service.into(), method: "GET".into(), route: format!("/route/{r}"), status_class: 2, caller: String::new() },
                        stats: BucketStats { count: 100, errors: 0, satisfied: 100, tolerating: 0, duration_ms: sketch(&mut seed, 100), last_seen_ms: now },
                    })
                    .collect();
                minute_rows += buckets.len() as u64;
                let buckets = if totals { with_totals(buckets) } else { buckets };
                stored_rows += buckets.len() as u64;
                store.ingest(IngestWrite { tenant: "bench".into(), service: service.into(), batch_id: None, received_ms: now, buckets, samples: vec![], custom: vec![] }).await.unwrap();
            }
            let after = checkpoint();
            println!(
                "stored bytes per route series-minute (100 requests each, minute buckets, {}): {:.0} ({} route series-minutes, {} stored rows, {} bytes)",
                if totals { "with totals" } else { "route rows only" },
                (after.saturating_sub(before)) as f64 / minute_rows as f64,
                minute_rows,
                stored_rows,
                after.saturating_sub(before)
            );
        }
        let key = collector.create_key("bench", Role::Read).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, collector.router()).into_future());
        (collector, addr, key)
    });
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        client_rt.block_on(async {
            let req = hyper::Request::get(format!("http://{addr}{path}"))
                .header("authorization", format!("Bearer {key}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap().to_bytes()
        })
    };
    let overview: serde_json::Value =
        serde_json::from_slice(&get("/v1/services?window=24h")).unwrap();
    assert_eq!(overview["window"]["resolution"], "1h");
    assert_eq!(
        overview["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == "svc-0")
            .unwrap()["requests"],
        serde_json::json!(2000 * ROUTES as u64 * 25),
        "24 full hours plus the current one per service"
    );
    let recent: serde_json::Value =
        serde_json::from_slice(&get("/v1/services?window=15m")).unwrap();
    assert_eq!(recent["window"]["resolution"], "1m");
    let svc0 = recent["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "svc-0")
        .unwrap();
    let n = svc0["requests"].as_u64().unwrap();
    assert!(
        n == 100 * ROUTES as u64 * 15 || n == 100 * ROUTES as u64 * 16,
        "15 or 16 minutes: {n}"
    );
    let routes: serde_json::Value =
        serde_json::from_slice(&get("/v1/services/svc-3/routes?window=24h")).unwrap();
    assert_eq!(
        routes["routes"].as_array().unwrap().len(),
        ROUTES,
        "route rows only"
    );

    let mut g = c.benchmark_group("collector_query_sqlite_24h");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("services_overview_20x50", |b| {
        b.iter(|| get("/v1/services?window=24h"))
    });
    g.bench_function("routes_p99_one_service_50_routes", |b| {
        b.iter(|| get("/v1/services/svc-3/routes?window=24h"))
    });
    g.bench_function("stats_one_service", |b| {
        b.iter(|| get("/v1/services/svc-3/stats?window=24h"))
    });
    let custom: serde_json::Value =
        serde_json::from_slice(&get("/v1/services/svc-0/custom?window=24h")).unwrap();
    assert_eq!(custom["metrics"].as_array().map(Vec::len), Some(1000));
    g.bench_function("custom_list_one_service_1000_series", |b| {
        b.iter(|| get("/v1/services/svc-0/custom?window=24h"))
    });
    g.bench_function("custom_series_one_metric_100_label_sets", |b| {
        b.iter(|| get("/v1/services/svc-0/custom/app_metric_3?window=24h&step=1h"))
    });
    g.bench_function("services_overview_15m_minutes_20x50", |b| {
        b.iter(|| get("/v1/services?window=15m"))
    });
    g.finish();
    drop(collector);
}

criterion_group!(benches, query);
criterion_main!(benches);
