//! The collector on PostgreSQL, over real HTTP: ingest throughput
//! (aggregated batches, per-request records, the store alone) and query
//! latency over 24 hours of data for 20 services × 50 routes, plus stored
//! bytes per series-minute. Criterion reports request events per second
//! for ingest and time per answer for queries. Stored data holds the
//! per-service total series ingest writes, computed by the same function
//! (`with_totals`).
//!
//! Needs the server at `VITALS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); works in a fresh schema,
//! dropped at the end. The collector runs on a tokio runtime with one
//! worker thread; the client is the bench thread. Run:
//! `cargo bench -p vitals-collector --bench postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vitals_collector::{
    Bucket, BucketStats, Collector, CollectorConfig, DirtyPeriod, IngestWrite, Resolution, Role,
    SeriesKey, now_ms, with_totals,
};

mod common;

use common::{IDS, aggregated_body, records_body, sketch_of, with_id};

struct Setup {
    rt: tokio::runtime::Runtime,
    client_rt: tokio::runtime::Runtime,
    collector: Collector,
    url: String,
    ingest_key: String,
    read_key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    admin: tokio_postgres::Client,
    schema: String,
}

fn setup() -> Setup {
    let base = std::env::var("VITALS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("vitals_bench_{}", std::process::id());
    let admin = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at VITALS_TEST_POSTGRES");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        client
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    let config = CollectorConfig {
        store: format!("{base}{sep}options=-csearch_path%3D{schema}"),
        ..Default::default()
    };
    let (collector, addr) = rt.block_on(common::serve(config));
    let ingest_key = rt
        .block_on(collector.create_key("bench", Role::Ingest))
        .unwrap();
    let read_key = rt
        .block_on(collector.create_key("bench", Role::Read))
        .unwrap();
    Setup {
        rt,
        client_rt,
        collector,
        url: format!("http://{addr}"),
        ingest_key,
        read_key,
        client: Client::builder(TokioExecutor::new()).build_http(),
        admin,
        schema,
    }
}

fn call(s: &Setup, method: &str, path: &str, key: &str, body: Bytes) {
    s.client_rt.block_on(async {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", s.url))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(body))
            .unwrap();
        let resp = s.client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.into_body().collect().await.unwrap();
    });
}

fn ingest(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("collector_ingest_postgres");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    let (agg, agg_events) = aggregated_body();
    g.throughput(Throughput::Elements(agg_events));
    g.bench_function("http_aggregated_100x100", |b| {
        b.iter(|| {
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            call(s, "POST", "/v1/ingest", &s.ingest_key, with_id(&agg, id))
        })
    });
    let (rec, rec_events) = records_body();
    g.throughput(Throughput::Elements(rec_events));
    g.bench_function("http_records_1000", |b| {
        b.iter(|| {
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            call(s, "POST", "/v1/requests", &s.ingest_key, with_id(&rec, id))
        })
    });
    // The store alone: one write of 100 minute buckets (10,000 events).
    let mut x = 7u64;
    let minute = Resolution::Minute.floor(now_ms());
    let template = IngestWrite {
        tenant: "bench".into(),
        service: "store-only".into(),
        batch_id: None,
        received_ms: now_ms(),
        buckets: with_totals(
            (0..100)
                .map(|r| bucket("store-only", r, Resolution::Minute, minute, 100, &mut x))
                .collect(),
        ),
        samples: vec![],
        custom: vec![],
    };
    g.throughput(Throughput::Elements(agg_events));
    g.bench_function("store_only_100_buckets", |b| {
        b.iter(|| {
            let mut w = template.clone();
            w.batch_id = Some(format!("s{}", IDS.fetch_add(1, Ordering::Relaxed)));
            s.rt.block_on(s.collector.store().ingest(w)).unwrap();
        })
    });
    g.finish();
}

fn bucket(
    service: &str,
    route: usize,
    res: Resolution,
    start: i64,
    n: usize,
    x: &mut u64,
) -> Bucket {
    let sketch = sketch_of(n, x);
    Bucket {
        tenant: "bench".into(),
        resolution: res,
        start_ms: start,
        key: SeriesKey {
            service: service.into(),
            method: "GET".into(),
            route: format!("/route/{route}"),
            status_class: 2,
            caller: String::new(),
        },
        stats: BucketStats {
            count: n as u64,
            errors: (route % 7 == 0) as u64,
            satisfied: n as u64,
            tolerating: 0,
            duration_ms: sketch,
            last_seen_ms: start,
        },
    }
}

/// 24 hours of hour buckets for 20 services × 50 routes (as the rollup
/// job leaves them), so a 24 h window reads the hour resolution.
fn populate_day(s: &Setup) {
    let now = now_ms();
    let mut x = 11u64;
    let first = Resolution::Hour.floor(now - 25 * 3_600_000);
    s.rt.block_on(async {
        for h in 0..26 {
            let start = first + h * 3_600_000;
            let buckets: Vec<Bucket> = (0..20)
                .flat_map(|svc| (0..50).map(move |r| (svc, r)))
                .map(|(svc, r)| {
                    bucket(
                        &format!("svc-{svc}"),
                        r,
                        Resolution::Hour,
                        start,
                        50,
                        &mut x,
                    )
                })
                .collect();
            let period = DirtyPeriod {
                resolution: Resolution::Hour,
                tenant: "bench".into(),
                start_ms: start,
                generation: 0,
            };
            // Rolled up from minutes that carried totals: the hour holds them too.
            s.collector
                .store()
                .write_rollup(period, with_totals(buckets))
                .await
                .unwrap();
        }
        // The services must be known for the overview.
        for svc in 0..20 {
            s.collector
                .store()
                .ingest(IngestWrite {
                    tenant: "bench".into(),
                    service: format!("svc-{svc}"),
                    batch_id: None,
                    received_ms: now,
                    buckets: vec![],
                    samples: vec![],
                    custom: vec![],
                })
                .await
                .unwrap();
        }
    });
}

fn queries(c: &mut Criterion, s: &Setup) {
    populate_day(s);
    let mut g = c.benchmark_group("collector_query_postgres");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("routes_p99_24h_one_service_50_routes", |b| {
        b.iter(|| {
            call(
                s,
                "GET",
                "/v1/services/svc-3/routes?window=24h",
                &s.read_key,
                Bytes::new(),
            )
        })
    });
    g.bench_function("services_overview_24h_20x50", |b| {
        b.iter(|| {
            call(
                s,
                "GET",
                "/v1/services?window=24h",
                &s.read_key,
                Bytes::new(),
            )
        })
    });
    g.finish();
}

/// Writes 60 minutes of 1,000 route series (sketches of 50 values each)
/// plus their totals, then reports the table's size with indexes per
/// route series-minute.
fn stored_bytes(s: &Setup) {
    let mut x = 3u64;
    let first = Resolution::Minute.floor(now_ms()) - 3 * 3_600_000;
    let (bytes, rows): (i64, i64) = s.rt.block_on(async {
        for m in 0..60 {
            let start = first + m * 60_000;
            let buckets: Vec<Bucket> = with_totals(
                (0..1000)
                    .map(|r| bucket("size", r, Resolution::Minute, start, 50, &mut x))
                    .collect(),
            );
            let w = IngestWrite {
                tenant: "bench".into(),
                service: "size".into(),
                batch_id: None,
                received_ms: start,
                buckets,
                samples: vec![],
                custom: vec![],
            };
            s.collector.store().ingest(w).await.unwrap();
        }
        s.admin
            .batch_execute(&format!("SET search_path TO {}", s.schema))
            .await
            .unwrap();
        // Alone: VACUUM cannot run inside the implicit transaction of a batch.
        s.admin
            .batch_execute("VACUUM ANALYZE buckets_1m")
            .await
            .unwrap();
        let r = s
            .admin
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8,
                        (SELECT count(*) FROM buckets_1m WHERE method <> '')
                 FROM pg_inherits WHERE inhparent = 'buckets_1m'::regclass",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    });
    eprintln!(
        "buckets_1m: {rows} route series-minutes (plus their totals) in {bytes} bytes with indexes: {:.0} bytes per route series-minute",
        bytes as f64 / rows.max(1) as f64
    );
}

fn all(c: &mut Criterion) {
    let s = setup();
    stored_bytes(&s);
    ingest(c, &s);
    queries(c, &s);
    s.rt.block_on(
        s.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", s.schema)),
    )
    .unwrap();
}

criterion_group!(benches, all);
criterion_main!(benches);
