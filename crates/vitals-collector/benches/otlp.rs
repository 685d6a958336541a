//! OTLP/HTTP ingest (`POST /v1/metrics`) beside our own `/v1/ingest`, over
//! real HTTP on SQLite (file, `synchronous=FULL`): the same 100 route
//! aggregates of 100 requests each, sent as an OTLP export of 100
//! `http.server.request.duration` data points (explicit buckets, delta),
//! in protobuf and in JSON, and as one of our batches. Criterion reports
//! data points (route aggregates) per second; the collector runs on one
//! tokio worker thread, so the figure is per core of request handling.
//! Run: `cargo bench -p vitals-collector --bench otlp`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric::Data,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vitals_collector::{CollectorConfig, Role, now_ms};

#[allow(dead_code)] // the records body is for the other benches
mod common;

use common::{ID_SLOT, IDS, aggregated_body, with_id};

/// Data points (route aggregates) per request, in every variant.
const POINTS: u64 = 100;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// 100 routes × 100 requests as one OTLP export; the resource carries
/// [`ID_SLOT`] so each posted copy differs (an identical export is a retry).
fn otlp_request() -> ExportMetricsServiceRequest {
    let now_ns = now_ms() as u64 * 1_000_000;
    let bounds = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    let points = (0..POINTS)
        .map(|r| HistogramDataPoint {
            attributes: vec![
                kv("http.request.method", "GET"),
                kv("http.route", &format!("/route/{r}")),
                KeyValue {
                    key: "http.response.status_code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(200)),
                    }),
                    ..Default::default()
                },
            ],
            start_time_unix_nano: now_ns - 10_000_000_000,
            time_unix_nano: now_ns,
            count: 100,
            sum: Some(12.5),
            bucket_counts: vec![5, 10, 20, 20, 15, 10, 10, 5, 3, 2, 0, 0, 0, 0, 0],
            explicit_bounds: bounds.clone(),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "bench-otlp"), kv("bench.copy", ID_SLOT)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.request.duration".into(),
                    unit: "s".into(),
                    data: Some(Data::Histogram(Histogram {
                        data_points: points,
                        aggregation_temporality: 1,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `template` (binary) with copy number `n` in its [`ID_SLOT`] (same length).
fn with_id_bytes(template: &[u8], n: u64) -> Bytes {
    let slot = ID_SLOT.as_bytes();
    let at = template
        .windows(slot.len())
        .position(|w| w == slot)
        .unwrap();
    let mut out = template.to_vec();
    out[at..at + slot.len()].copy_from_slice(format!("BATCHID_{n:016}").as_bytes());
    Bytes::from(out)
}

fn otlp(c: &mut Criterion) {
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
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let post = |path: &str, content_type: &str, body: Bytes| {
        client_rt.block_on(async {
            let req = hyper::Request::post(format!("http://{addr}{path}"))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", content_type)
                .body(Full::new(body))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(
                !body.windows(7).any(|w| w == b"rejecte"),
                "nothing rejected"
            );
        })
    };

    let mut g = c.benchmark_group("collector_otlp_sqlite");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(POINTS));
    let request = otlp_request();
    let protobuf = request.encode_to_vec();
    g.bench_function("otlp_protobuf_100_points", |b| {
        b.iter(|| {
            let n = IDS.fetch_add(1, Ordering::Relaxed);
            post(
                "/v1/metrics",
                "application/x-protobuf",
                with_id_bytes(&protobuf, n),
            )
        })
    });
    let json = serde_json::to_vec(&request).unwrap();
    g.bench_function("otlp_json_100_points", |b| {
        b.iter(|| {
            let n = IDS.fetch_add(1, Ordering::Relaxed);
            post("/v1/metrics", "application/json", with_id(&json, n))
        })
    });
    let (agg, _) = aggregated_body();
    g.bench_function("vitals_ingest_100_aggregates", |b| {
        b.iter(|| {
            let n = IDS.fetch_add(1, Ordering::Relaxed);
            post("/v1/ingest", "application/json", with_id(&agg, n))
        })
    });
    g.finish();
    drop(collector);
}

criterion_group!(benches, otlp);
criterion_main!(benches);
