//! `POST /v1/metrics` as the OTLP/HTTP specification asks: answers in the
//! request's encoding, `partialSuccess` for rejected points, `400` for a
//! malformed body (nothing stored), unknown fields ignored, what SDKs send
//! as JSON (64-bit integers as strings or numbers), and exports retried or
//! repeated counted once.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric::Data,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};
use vitals_collector::now_ms;

/// `google.rpc.Status`, as an error answer's body.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// One exchange, keeping the answer's headers and raw body.
async fn send(
    tc: &TestCollector,
    content_type: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{}/v1/metrics", tc.addr))
        .header("content-type", content_type);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        client.request(req.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .expect("answer in time")
    .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// A duration point: `counts` over the bounds 0.01, 0.1, 1 s.
fn point(
    route: &str,
    status: i64,
    start_ns: u64,
    time_ns: u64,
    counts: [u64; 4],
    sum: f64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.route", s(route)),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(status),
            ),
        ],
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts.to_vec(),
        explicit_bounds: vec![0.01, 0.1, 1.0],
        ..Default::default()
    }
}

fn request(
    service: &str,
    temporality: i32,
    points: Vec<HistogramDataPoint>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.request.duration".into(),
                    unit: "s".into(),
                    data: Some(Data::Histogram(Histogram {
                        data_points: points,
                        aggregation_temporality: temporality,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;

async fn requests_of(tc: &TestCollector, service: &str) -> Option<u64> {
    let (status, stats) = tc
        .get(&format!("/v1/services/{service}/stats?window=15m"))
        .await;
    (status == 200).then(|| stats["requests"].as_u64().unwrap())
}

#[tokio::test]
async fn answers_follow_the_otlp_http_specification() {
    let tc = TestCollector::start(memory_config()).await;
    let key = tc.ingest_key.clone();
    let now_ns = now_ms() as u64 * 1_000_000;

    // A good protobuf export: 200, an empty ExportMetricsServiceResponse.
    let good = request(
        "pb",
        DELTA,
        vec![point("/a", 200, now_ns - 1, now_ns, [1, 2, 0, 0], 0.12)],
    );
    let (st, h, body) = send(&tc, PB, Some(&key), &[], good.encode_to_vec()).await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], PB);
    let answer = ExportMetricsServiceResponse::decode(&body[..]).expect("a response message");
    assert_eq!(answer.partial_success, None);
    assert_eq!(requests_of(&tc, "pb").await, Some(3));

    // Malformed protobuf and JSON: 400 with a Status in the same encoding,
    // nothing stored.
    let (st, h, body) = send(
        &tc,
        PB,
        Some(&key),
        &[],
        vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 1],
    )
    .await;
    assert_eq!(
        (st, &h["content-type"]),
        (400, &PB.parse::<hyper::header::HeaderValue>().unwrap())
    );
    let status = Status::decode(&body[..]).expect("a Status message");
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(
        status.message.contains("ExportMetricsServiceRequest"),
        "{}",
        status.message
    );
    for bad in [
        &b"{not json"[..],
        br#"{"resourceMetrics": 5}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"timeUnixNano":"not a number"}]}}]}]}]}"#,
    ] {
        let (st, h, body) = send(&tc, JSON, Some(&key), &[], bad.to_vec()).await;
        assert_eq!(st, 400, "{}", String::from_utf8_lossy(bad));
        assert_eq!(h["content-type"], JSON);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((v["code"].as_i64(), v["reason"].as_str()), (Some(3), Some("invalid_json")), "{v}");
    }
    // Not OTLP at all, no key, a bomb.
    let (st, _, _) = send(&tc, "text/plain", Some(&key), &[], b"x".to_vec()).await;
    assert_eq!(st, 415);
    let (st, h, body) = send(&tc, PB, None, &[], good.encode_to_vec()).await;
    assert_eq!(
        (st, &h["content-type"]),
        (401, &PB.parse::<hyper::header::HeaderValue>().unwrap())
    );
    assert_eq!(
        Status::decode(&body[..]).unwrap().code,
        16,
        "UNAUTHENTICATED"
    );
    let (st, _, _) = send(
        &tc,
        PB,
        Some(&key),
        &[("content-encoding", "gzip")],
        gzip(&vec![0u8; 32 << 20]),
    )
    .await;
    assert_eq!(st, 413);

    // Wrong temporality, a histogram whose counts do not add up, and a
    // service name that cannot be queried back: those points are
    // rejected, the good one beside them stored, nothing half-way.
    let mut bad_counts = point("/b", 200, now_ns - 1, now_ns, [1, 1, 0, 0], 0.1);
    bad_counts.count = 5;
    let mut mixed = request(
        "mixed",
        DELTA,
        vec![
            point("/ok", 200, now_ns - 1, now_ns, [0, 4, 0, 0], 0.2),
            bad_counts,
        ],
    );
    let mut wrong = request(
        "mixed",
        0,
        vec![point("/c", 200, now_ns - 1, now_ns, [1, 0, 0, 0], 0.001)],
    );
    mixed.resource_metrics.append(&mut wrong.resource_metrics);
    let mut dots = request(
        "..",
        DELTA,
        vec![point("/d", 200, now_ns - 1, now_ns, [1, 0, 0, 0], 0.001)],
    );
    mixed.resource_metrics.append(&mut dots.resource_metrics);
    let (st, _, body) = send(&tc, PB, Some(&key), &[], mixed.encode_to_vec()).await;
    assert_eq!(st, 200);
    let partial = ExportMetricsServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_data_points, 3, "{}", partial.error_message);
    assert!(
        partial.error_message.contains("temporality"),
        "{}",
        partial.error_message
    );
    let routes = tc.get_ok("/v1/services/mixed/routes?window=15m").await;
    assert_eq!(
        routes["routes"].as_array().unwrap().len(),
        1,
        "only /ok: {routes}"
    );
    assert_eq!(routes["routes"][0]["requests"], 4);
    // The same in JSON: the answer is JSON, rejectedDataPoints an int64 string.
    let (st, h, body) = send(&tc, JSON, Some(&key), &[], serde_json::to_vec(&json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "mixed"}}]},
        "scopeMetrics": [{"metrics": [{"name": "http.server.request.duration", "unit": "s",
            "histogram": {"aggregationTemporality": 0, "dataPoints": [{"timeUnixNano": now_ns.to_string(), "count": "1", "bucketCounts": ["1"], "explicitBounds": []}]}}]}]}]})).unwrap()).await;
    assert_eq!((st, h["content-type"].to_str().unwrap()), (200, JSON));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1", "{v}");

    let text = tc.metrics_text().await;
    for (reason, n) in [
        ("invalid_temporality", 2),
        ("invalid_histogram", 1),
        ("invalid_service", 1),
        ("invalid_protobuf", 1),
        ("invalid_json", 3),
        ("unsupported_media_type", 1),
    ] {
        assert_eq!(
            metric_value(
                &text,
                &format!("vitals_rejected_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}:\n{text}"
        );
    }
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_otlp_data_points_total{outcome="rejected"}"#
        ),
        4
    );
}

/// What the JavaScript SDK's JSON exporter sends: times as strings, counts
/// as numbers or strings, an int attribute as a string, unknown fields.
#[tokio::test]
async fn json_as_sdks_send_it_is_read() {
    let tc = TestCollector::start(memory_config()).await;
    let now_ns = now_ms() as u64 * 1_000_000;
    let body = json!({"resourceMetrics": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "js-shop"}},
        {"key": "telemetry.sdk.language", "value": {"stringValue": "nodejs"}}],
        "droppedAttributesCount": 0},
    "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
    "somethingNew": {"nested": [1, 2]},
    "scopeMetrics": [{
        "scope": {"name": "@opentelemetry/instrumentation-http", "version": "0.52.0"},
        "metrics": [
            {"name": "http.server.request.duration", "description": "", "unit": "s",
             "histogram": {"aggregationTemporality": 2, "dataPoints": [{
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.route", "value": {"stringValue": "/cart"}},
                    {"key": "http.response.status_code", "value": {"intValue": "200"}}],
                // Cumulative: counted whole only when the stream started
                // no earlier than the collector (in whole ms), so start it
                // now, never a nanosecond before (that raced the start).
                "startTimeUnixNano": now_ns.to_string(),
                "timeUnixNano": (now_ns + 1_000).to_string(),
                "count": 5, "sum": 0.25, "min": 0.02, "max": 0.09,
                "bucketCounts": [0, 5, "0", 0], "explicitBounds": [0.01, 0.1, 1],
                "exemplars": [], "flags": 0}]}},
            {"name": "queue.depth", "unit": "{job}",
             "gauge": {"dataPoints": [{"asInt": "7", "timeUnixNano": now_ns.to_string(),
                "attributes": [{"key": "queue", "value": {"stringValue": "mail"}}]}]}},
            {"name": "jobs.done", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
             "dataPoints": [{"asDouble": 3, "startTimeUnixNano": "1", "timeUnixNano": now_ns.to_string()}]}}
        ]}]}]});
    let (st, _, answer) = send(
        &tc,
        JSON,
        Some(&tc.ingest_key),
        &[],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap(), json!({}));
    let routes = tc.get_ok("/v1/services/js-shop/routes?window=15m").await;
    let r = &routes["routes"][0];
    assert_eq!(
        (
            r["method"].as_str(),
            r["route"].as_str(),
            r["requests"].as_u64()
        ),
        (Some("GET"), Some("/cart"), Some(5)),
        "{routes}"
    );
    assert_close(&r["avg_ms"], 50.0, 1e-9, "avg from the sum");
    let p50 = r["p50_ms"].as_f64().unwrap();
    assert!(
        (20.0..=90.0 * 1.006).contains(&p50),
        "within the bucket and min..max: {p50}"
    );
    let custom = tc.get_ok("/v1/services/js-shop/custom?window=15m").await;
    let names: Vec<&str> = custom["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"queue.depth") && names.contains(&"jobs.done"),
        "{custom}"
    );
}

#[tokio::test]
async fn retried_and_repeated_exports_count_once() {
    let tc = TestCollector::start(memory_config()).await;
    let key = tc.ingest_key.clone();
    let now_ns = now_ms() as u64 * 1_000_000;
    let start = now_ns - 60_000_000_000;
    // Delta: the same bytes twice (an exporter's retry) count once.
    let delta = request(
        "d",
        DELTA,
        vec![point("/a", 200, now_ns - 10, now_ns, [1, 1, 1, 0], 0.5)],
    )
    .encode_to_vec();
    for _ in 0..2 {
        let (st, _, body) = send(&tc, PB, Some(&key), &[], delta.clone()).await;
        let answer = ExportMetricsServiceResponse::decode(&body[..]).unwrap();
        assert_eq!((st, answer.partial_success), (200, None));
    }
    assert_eq!(requests_of(&tc, "d").await, Some(3));

    // Cumulative, from a stream that began before this collector: the
    // first reading is a baseline; a repeat adds nothing; a later reading
    // adds the difference; a reset (a new start time) counts whole.
    let first = request(
        "c",
        CUMULATIVE,
        vec![point("/a", 200, 1, start, [10, 0, 0, 0], 0.05)],
    );
    let again = first.clone();
    let later = request(
        "c",
        CUMULATIVE,
        vec![point("/a", 200, 1, start + 1_000, [10, 4, 1, 0], 0.75)],
    );
    let reset = request(
        "c",
        CUMULATIVE,
        vec![point(
            "/a",
            200,
            start + 2_000,
            start + 3_000,
            [2, 0, 0, 0],
            0.01,
        )],
    );
    let older = request(
        "c",
        CUMULATIVE,
        vec![point("/a", 200, 1, start + 500, [10, 9, 9, 0], 9.0)],
    );
    let mut totals = Vec::new();
    for r in [first, again, later, reset, older] {
        assert_eq!(
            send(&tc, PB, Some(&key), &[], r.encode_to_vec()).await.0,
            200
        );
        totals.push(requests_of(&tc, "c").await.unwrap_or(0));
    }
    assert_eq!(totals, vec![0, 0, 5, 7, 7]);
    // A stream that began after the collector started counts whole at once.
    let fresh = request(
        "f",
        CUMULATIVE,
        vec![point(
            "/a",
            200,
            now_ns,
            now_ns + 1_000_000,
            [3, 0, 0, 0],
            0.01,
        )],
    );
    assert_eq!(
        send(&tc, PB, Some(&key), &[], fresh.encode_to_vec())
            .await
            .0,
        200
    );
    assert_eq!(requests_of(&tc, "f").await, Some(3));
}
