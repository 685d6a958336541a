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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vitals::Sketch;
use vitals_collector::{Collector, CollectorConfig, IngestWrite, Role, now_ms};

const ID_SLOT: &str = "BATCHID_0000000000000000";

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
    let (collector, addr) = rt.block_on(async {
        let collector = Collector::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, collector.router()).into_future());
        (collector, addr)
    });
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

/// 100 route aggregates of 100 requests each: 10,000 events.
fn aggregated_body() -> (Vec<u8>, u64) {
    let mut routes = Vec::new();
    let mut x = 1u64;
    for r in 0..100 {
        let mut sk = Sketch::new();
        for _ in 0..100 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            sk.record(0.5 + (x >> 40) as f64 / (1u64 << 24) as f64 * 500.0);
        }
        routes.push(json!({"method": "GET", "route": format!("/route/{r}"), "status_class": 2, "count": 100, "satisfied": 100, "duration_ms": sk}));
    }
    let body = json!({"batch_id": ID_SLOT, "service": "bench", "instance": "b-1", "start_unix_ms": now_ms(), "interval_ms": 10_000, "routes": routes});
    (serde_json::to_vec(&body).unwrap(), 10_000)
}

/// 1,000 per-request records over 20 routes.
fn records_body() -> (Vec<u8>, u64) {
    let now = now_ms();
    let requests: Vec<Value> = (0..1000)
        .map(|i| json!({"method": "GET", "route": format!("/route/{}", i % 20), "status": if i % 50 == 0 { 500 } else { 200 }, "duration_ms": 1.0 + (i % 97) as f64 * 3.1, "timestamp_ms": now}))
        .collect();
    let body = json!({"service": "bench-records", "batch_id": ID_SLOT, "requests": requests});
    (serde_json::to_vec(&body).unwrap(), 1000)
}

fn with_id(template: &[u8], n: u64) -> Bytes {
    let text = std::str::from_utf8(template).unwrap();
    Bytes::from(text.replacen(ID_SLOT, &format!("BATCHID_{n:016}"), 1))
}

static IDS: AtomicU64 = AtomicU64::new(0);

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
            let batch: vitals::wire::RequestBatch =
                vitals_collector::ingest::decode_body(&rec, false, usize::MAX).unwrap();
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
