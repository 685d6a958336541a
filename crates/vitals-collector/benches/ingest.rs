//! Ingest throughput on SQLite (file, `synchronous=FULL`), over real HTTP:
//! aggregated batches (`POST /v1/ingest`) and per-request records
//! (`POST /v1/requests`), plus the store alone. Criterion reports request
//! events per second (`Throughput::Elements`).
//!
//! The collector runs on a tokio runtime with one worker thread (SQLite
//! writes go to the blocking pool); the client is the bench thread. Run:
//! `cargo bench -p vitals-collector --bench ingest`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use vitals_collector::{Collector, CollectorConfig, IngestWrite, Role, now_ms};

mod common;

use common::{ID_SLOT, IDS, aggregated_body, records_body, with_id};

struct Setup {
    rt: tokio::runtime::Runtime,
    client_rt: tokio::runtime::Runtime,
    collector: Collector,
    url: String,
    key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("bench.db").display()),
        ..Default::default()
    };
    let (collector, addr) = rt.block_on(common::serve(config));
    let key = rt
        .block_on(collector.create_key("bench", Role::Ingest))
        .unwrap();
    Setup {
        rt,
        client_rt,
        collector,
        url: format!("http://{addr}"),
        key,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _dir: dir,
    }
}

/// 1,000 custom metric values (10 names × 100 label sets), no routes: a
/// full batch at the default `max_custom_per_batch`.
fn custom_body() -> (Vec<u8>, u64) {
    let custom: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("app_metric_{}", i % 10), "kind": if i % 2 == 0 { "counter" } else { "gauge" }, "labels": {"shard": format!("{}", i / 10), "region": "eu-west-1"}, "value": i as f64 * 1.5}))
        .collect();
    let body = json!({"batch_id": ID_SLOT, "service": "bench-custom", "instance": "b-1", "start_unix_ms": now_ms(), "interval_ms": 10_000, "routes": [], "custom": custom});
    (serde_json::to_vec(&body).unwrap(), 1000)
}

fn post(s: &Setup, path: &str, body: Bytes) {
    s.client_rt.block_on(async {
        let req = hyper::Request::post(format!("{}{path}", s.url))
            .header("authorization", format!("Bearer {}", s.key))
            .body(Full::new(body))
            .unwrap();
        let resp = s.client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    });
}

/// `n` posts in flight at once (one iteration = all of them answered).
fn post_concurrent(s: &Setup, path: &str, template: &[u8], n: usize) {
    s.client_rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let body = with_id(template, IDS.fetch_add(1, Ordering::Relaxed));
            let req = hyper::Request::post(format!("{}{path}", s.url))
                .header("authorization", format!("Bearer {}", s.key))
                .body(Full::new(body))
                .unwrap();
            let client = s.client.clone();
            set.spawn(async move {
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

/// Senders in flight at once in the concurrent variants.
const IN_FLIGHT: usize = 8;

fn ingest(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("collector_ingest_sqlite");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));

    let (agg, agg_events) = aggregated_body();
    g.throughput(Throughput::Elements(agg_events));
    g.bench_function("http_aggregated_100x100", |b| {
        b.iter(|| {
            post(
                &s,
                "/v1/ingest",
                with_id(&agg, IDS.fetch_add(1, Ordering::Relaxed)),
            )
        })
    });

    let (rec, rec_events) = records_body();
    g.throughput(Throughput::Elements(rec_events));
    g.bench_function("http_records_1000", |b| {
        b.iter(|| {
            post(
                &s,
                "/v1/requests",
                with_id(&rec, IDS.fetch_add(1, Ordering::Relaxed)),
            )
        })
    });

    let (custom, custom_values) = custom_body();
    g.throughput(Throughput::Elements(custom_values));
    g.bench_function("http_custom_1000", |b| {
        b.iter(|| {
            post(
                &s,
                "/v1/ingest",
                with_id(&custom, IDS.fetch_add(1, Ordering::Relaxed)),
            )
        })
    });

    g.throughput(Throughput::Elements(agg_events * IN_FLIGHT as u64));
    g.bench_function("http_aggregated_100x100_8_in_flight", |b| {
        b.iter(|| post_concurrent(&s, "/v1/ingest", &agg, IN_FLIGHT))
    });
    g.throughput(Throughput::Elements(rec_events * IN_FLIGHT as u64));
    g.bench_function("http_records_1000_8_in_flight", |b| {
        b.iter(|| post_concurrent(&s, "/v1/requests", &rec, IN_FLIGHT))
    });

    // Decoding and aggregating alone (no HTTP, no store): the CPU part.
    let config = CollectorConfig::default();
    let limiter = vitals_collector::ingest::RouteLimiter::default();
    g.throughput(Throughput::Elements(rec_events));
    g.bench_function("decode_and_aggregate_records_1000", |b| {
        b.iter(|| {
            let json = vitals_collector::ingest::inflate_body(&rec, false, usize::MAX).unwrap();
            let batch: vitals::wire::RequestBatchRef<'_> =
                vitals_collector::ingest::parse_body(&json).unwrap();
            vitals_collector::ingest::prepare_records(
                "bench",
                batch,
                now_ms(),
                &config,
                86_400_000,
                &limiter,
            )
            .unwrap()
        })
    });

    // The store alone: one write of 100 minute buckets (10,000 events).
    let batch: vitals::wire::IngestBatch = serde_json::from_slice(&agg).unwrap();
    let write_template = IngestWrite {
        tenant: "bench".into(),
        service: "store-only".into(),
        batch_id: None,
        received_ms: now_ms(),
        buckets: batch
            .routes
            .iter()
            .map(|r| vitals_collector::Bucket {
                tenant: "bench".into(),
                resolution: vitals_collector::Resolution::Minute,
                start_ms: vitals_collector::Resolution::Minute.floor(now_ms()),
                key: vitals_collector::SeriesKey {
                    service: "store-only".into(),
                    method: r.method.clone(),
                    route: r.route.clone(),
                    status_class: 2,
                    caller: String::new(),
                },
                stats: vitals_collector::BucketStats {
                    count: r.count,
                    errors: 0,
                    satisfied: r.satisfied,
                    tolerating: 0,
                    duration_ms: r.duration_ms.clone(),
                    last_seen_ms: now_ms(),
                },
            })
            .collect(),
        samples: vec![],
        custom: vec![],
    };
    g.throughput(Throughput::Elements(agg_events));
    g.bench_function("store_only_100_buckets", |b| {
        b.iter(|| {
            let mut w = write_template.clone();
            w.batch_id = Some(format!("s{}", IDS.fetch_add(1, Ordering::Relaxed)));
            s.rt.block_on(s.collector.store().ingest(w)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
