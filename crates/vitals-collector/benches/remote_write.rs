//! Remote-write export rate: how many samples per second the collector
//! turns into requests, and takes end to end (store read, series, protobuf
//! and snappy, the on-disk queue with its fsyncs, one HTTP request per
//! 2,000 series to a loopback receiver that answers 204).
//!
//! One minute of one tenant: 10 services × 50 routes × 2 status classes
//! (1,000 route series with 100 durations each), plus the per-service
//! totals. Criterion reports samples per second (`Throughput::Elements`).
//! Run: `cargo bench -p vitals-collector --bench remote_write`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitals_collector::config::RemoteWriteConfig;
use vitals_collector::model::{Bucket, IngestWrite, SeriesKey};
use vitals_collector::remote_write::{Cumulative, Shape, WriteRequest, minute_series};
use vitals_collector::store::{SqliteStore, Store};
use vitals_collector::testing::minute_bucket;
use vitals_collector::{Collector, CollectorConfig, now_ms, with_totals};

fn minute(start: i64) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    for s in 0..10 {
        for r in 0..50 {
            for status in [2u8, 5] {
                let key = SeriesKey {
                    service: format!("svc-{s}"),
                    method: "GET".into(),
                    route: format!("/route/{r}/{{id}}"),
                    status_class: status,
                    caller: String::new(),
                };
                let durations: Vec<f64> = (0..100)
                    .map(|i| 0.5 + ((i * 37 + r * 11) % 500) as f64)
                    .collect();
                buckets.push(minute_bucket("bench", &key, start, &durations, 0));
            }
        }
    }
    with_totals(buckets)
}

fn series(c: &mut Criterion) {
    let config = CollectorConfig::default();
    let buckets = minute(0);
    let shape = Shape {
        config: &config,
        buckets: vitals_collector::config::DEFAULT_BUCKETS_SECONDS,
        native: false,
        tenant_label: false,
    };
    let samples = {
        let mut totals = Cumulative::default();
        let s = minute_series(&mut totals, "bench", 0, &buckets, &[], &shape);
        WriteRequest { timeseries: s }.sample_count()
    };
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(samples));
    g.bench_function("series_and_body_1000_routes", |b| {
        let mut totals = Cumulative::default();
        let mut start = 0;
        b.iter(|| {
            start += 60_000;
            let s = minute_series(&mut totals, "bench", start, &buckets, &[], &shape);
            let bodies: usize = s
                .chunks(2000)
                .map(|c| {
                    WriteRequest {
                        timeseries: c.to_vec(),
                    }
                    .to_body()
                    .len()
                })
                .sum();
            std::hint::black_box(bodies)
        })
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(rt.block_on(SqliteStore::open_in_memory()).unwrap());
    let start = now_ms() / 60_000 * 60_000 - 5 * 60_000;
    rt.block_on(store.ingest(IngestWrite {
        tenant: "bench".into(),
        service: "all".into(),
        batch_id: None,
        received_ms: start,
        buckets: minute(start),
        samples: vec![],
        custom: vec![],
    }))
    .unwrap();
    let url = rt.block_on(async {
        let app = axum::Router::new().route(
            "/push",
            axum::routing::post(|_body: axum::body::Bytes| async {
                axum::http::StatusCode::NO_CONTENT
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, app).into_future());
        format!("http://{addr}/push")
    });
    let dir = tempfile::tempdir().unwrap();
    let mut samples = 0;
    let mut g = c.benchmark_group("remote_write");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    // One iteration: a fresh exporter (new queue folder) exports the
    // minute and sends it; only the export and the sends are timed.
    let mut run = |n: u64| {
        let mut took = Duration::ZERO;
        for i in 0..n {
            let config = CollectorConfig {
                remote_write: vec![RemoteWriteConfig {
                    url: url.clone(),
                    tenants: vec!["bench".into()],
                    queue_dir: Some(
                        dir.path()
                            .join(format!("q{i}-{}", now_ms()))
                            .display()
                            .to_string(),
                    ),
                    delay: "1s".into(),
                    backfill: "6m".into(),
                    ..RemoteWriteConfig::default()
                }],
                ..CollectorConfig::default()
            };
            let collector = Collector::with_store(config, store.clone()).unwrap();
            let exporter = collector.remote_writers()[0].clone();
            let t = Instant::now();
            rt.block_on(async {
                exporter.export_due(now_ms()).await.unwrap();
                let report = exporter.send_pending().await;
                assert!(report.retry.is_none() && report.sent >= 1, "{report:?}");
            });
            took += t.elapsed();
        }
        took
    };
    // The samples of one export, for the throughput.
    {
        let mut totals = Cumulative::default();
        let config = CollectorConfig::default();
        let shape = Shape {
            config: &config,
            buckets: vitals_collector::config::DEFAULT_BUCKETS_SECONDS,
            native: false,
            tenant_label: true,
        };
        let s = minute_series(&mut totals, "bench", start, &minute(start), &[], &shape);
        samples += WriteRequest { timeseries: s }.sample_count();
    }
    g.throughput(Throughput::Elements(samples));
    g.bench_function("export_and_send_1000_routes", |b| b.iter_custom(&mut run));
    g.finish();
}

criterion_group!(benches, series, end_to_end);
criterion_main!(benches);
