//! Refusals: hostile bodies, invalid query parameters and what the router
//! refuses before any handler runs are clear JSON errors with a specific
//! reason, and counted.

use crate::common::*;
use crate::{raw_requests, records_body};
use serde_json::{Value, json};
use vitals::Sketch;
use vitals_collector::{CollectorConfig, Limits, now_ms};

/// A body, its headers, the status and reason it must get.
type HostileCase = (
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
);

#[tokio::test]
async fn hostile_bodies_are_refused_clearly_and_counted() {
    let config = CollectorConfig {
        limits: Limits {
            max_body_bytes: 4 << 20,
            max_decompressed_bytes: 8 << 20,
            ..Limits::default()
        },
        ..memory_config()
    };
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let rec = |extra: Value| {
        let mut r = json!({"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        json!({"service": "api", "requests": [r]})
    };
    let big_label = "x".repeat(1 << 20);
    let cases: Vec<HostileCase> = vec![
        (b"{not json".to_vec(), vec![], 400, "invalid_json"),
        (b"[]".to_vec(), vec![], 400, "invalid_json"),
        (br#"{"service":"api","requests":[{"method":"GET","route":"/a","status":200,"duration_ms":1e999}]}"#.to_vec(), vec![], 400, "invalid_json"),
        (serde_json::to_vec(&rec(json!({"duration_ms": -5.0}))).unwrap(), vec![], 400, "invalid_duration"),
        (serde_json::to_vec(&rec(json!({"duration_ms": 1e12}))).unwrap(), vec![], 400, "invalid_duration"),
        (serde_json::to_vec(&rec(json!({"status": 700}))).unwrap(), vec![], 400, "invalid_status"),
        (serde_json::to_vec(&rec(json!({"status": 99}))).unwrap(), vec![], 400, "invalid_status"),
        (serde_json::to_vec(&rec(json!({"status": 99999}))).unwrap(), vec![], 400, "invalid_json"),
        (serde_json::to_vec(&rec(json!({"route": big_label}))).unwrap(), vec![], 400, "label_too_long"),
        (serde_json::to_vec(&rec(json!({"caller": "a\u{0}b"}))).unwrap(), vec![], 400, "invalid_label"),
        (br#"{"service":"api","requests":[{"method":"GET","route":"/a","caller":"\u0085","status":200,"duration_ms":1}]}"#.to_vec(), vec![], 400, "invalid_label"),
        (br#"{"service":"api","requests":[{"method":"GET","route":"\/a\u007f","status":200,"duration_ms":1}]}"#.to_vec(), vec![], 400, "invalid_label"),
        (br#"{"service":"api","requests":[{"method":"GET","route":"/a","trace_id":"\ud800","status":200,"duration_ms":1}]}"#.to_vec(), vec![], 400, "invalid_json"),
        (br#"{"service":"api","requests":[{"method":"GET","route":5,"status":200,"duration_ms":1}]}"#.to_vec(), vec![], 400, "invalid_json"),
        (serde_json::to_vec(&rec(json!({"method": "GET /evil"}))).unwrap(), vec![], 400, "invalid_method"),
        (serde_json::to_vec(&rec(json!({"timestamp_ms": 1}))).unwrap(), vec![], 400, "timestamp_out_of_range"),
        (serde_json::to_vec(&rec(json!({"timestamp_ms": now + 86_400_000}))).unwrap(), vec![], 400, "timestamp_out_of_range"),
        (serde_json::to_vec(&json!({"service": big_label, "requests": []})).unwrap(), vec![], 400, "label_too_long"),
        (serde_json::to_vec(&json!({"service": "", "requests": []})).unwrap(), vec![], 400, "missing_field"),
        (b"{}".to_vec(), vec![("content-encoding", "br")], 415, "unsupported_encoding"),
        (b"not gzip".to_vec(), vec![("content-encoding", "gzip")], 400, "invalid_gzip"),
        // A gzip bomb: 64 MiB of zeros inflating from about 64 KiB.
        (gzip(&vec![b' '; 64 << 20]), vec![("content-encoding", "gzip")], 413, "decompressed_too_large"),
        (vec![b' '; 5 << 20], vec![], 413, "body_too_large"),
    ];
    for (body, headers, want_status, want_reason) in &cases {
        let (status, answer) = tc.post_raw("/v1/requests", body.clone(), headers).await;
        assert_eq!(status, *want_status, "{want_reason}: {answer}");
        assert_eq!(answer["reason"], *want_reason, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && e.len() < 2000),
            "a short readable error: {answer}"
        );
    }
    // Hostile aggregates.
    let agg = |route: Value| json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 10_000, "routes": [route]});
    let mut sk = Sketch::new();
    sk.record(1.0);
    let mut huge = Sketch::new();
    huge.record(1e15);
    let agg_cases = vec![
        (
            agg(json!({"method": "GET", "route": "/a", "status_class": 2, "count": 1e30})),
            400,
            "invalid_json",
        ),
        (
            agg(json!({"method": "GET", "route": "/a", "status_class": 2, "count": u64::MAX})),
            400,
            "count_out_of_range",
        ),
        (
            agg(
                json!({"method": "GET", "route": "/a", "status_class": 2, "count": 1, "errors": 2}),
            ),
            400,
            "inconsistent_counts",
        ),
        (
            agg(
                json!({"method": "GET", "route": "/a", "status_class": 2, "count": 1, "satisfied": u64::MAX, "tolerating": 2}),
            ),
            400,
            "inconsistent_counts",
        ),
        (
            agg(json!({"method": "GET", "route": "/a", "status_class": 9, "count": 1})),
            400,
            "invalid_status",
        ),
        (
            agg(
                json!({"method": "GET", "route": "/a", "status_class": 2, "count": 1, "duration_ms": huge}),
            ),
            400,
            "invalid_duration",
        ),
        (
            agg(
                json!({"method": "GET", "route": "/a", "status_class": 2, "count": 0, "duration_ms": sk}),
            ),
            400,
            "inconsistent_counts",
        ),
        (
            agg(
                json!({"method": "GET", "route": "/a", "status_class": 2, "count": 1, "duration_ms": {"buckets": [[999999, 1]]}}),
            ),
            400,
            "invalid_json",
        ),
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 0}),
            400,
            "invalid_interval",
        ),
        // The client series' method is reserved: no sender may fake them.
        (
            agg(json!({"method": "__client__", "route": "callee", "status_class": 2, "count": 1})),
            400,
            "invalid_method",
        ),
        // The caller's side of outbound calls, checked like routes.
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 10_000,
                   "clients": [{"peer": "callee", "method": "GET", "status_class": 2, "count": 1, "errors": 2}]}),
            400,
            "inconsistent_counts",
        ),
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 10_000,
                   "clients": [{"peer": "", "method": "GET", "status_class": 2, "count": 1}]}),
            400,
            "missing_field",
        ),
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 10_000,
                   "clients": [{"peer": "callee", "method": "GET /x", "status_class": 2, "count": 1}]}),
            400,
            "invalid_method",
        ),
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 10_000,
                   "clients": [{"peer": "callee", "method": "GET", "status_class": 0, "count": 1}]}),
            400,
            "invalid_status",
        ),
        (
            json!({"batch_id": "", "service": "api", "start_unix_ms": now, "interval_ms": 1}),
            400,
            "missing_field",
        ),
        (
            json!({"batch_id": "h", "service": "api", "start_unix_ms": now, "interval_ms": 1, "apdex_t_ms": -1.0}),
            400,
            "invalid_apdex_t",
        ),
    ];
    for (body, want_status, want_reason) in &agg_cases {
        let (status, answer) = tc.post("/v1/ingest", body).await;
        assert_eq!(
            (status, answer["reason"].as_str()),
            (*want_status, Some(*want_reason)),
            "{body}: {answer}"
        );
    }
    // 100k routes in one batch: over the batch limit, whether it arrives plain or gzipped.
    let routes: Vec<Value> = (0..100_000)
        .map(|i| json!({"method": "GET", "route": format!("/r{i}"), "status_class": 2, "count": 1}))
        .collect();
    let body = serde_json::to_vec(&json!({"batch_id": "many", "service": "api", "start_unix_ms": now, "interval_ms": 10_000, "routes": routes})).unwrap();
    let (status, answer) = tc
        .post_raw("/v1/ingest", gzip(&body), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (413, Some("batch_too_large")),
        "{answer}"
    );
    let (status, answer) = tc.post_raw("/v1/ingest", body, &[]).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (413, Some("body_too_large")),
        "{answer}"
    );

    // Nothing of it was stored, and every refusal was counted by reason.
    let (s, _) = tc.get("/v1/services/api/stats").await;
    assert_eq!(s, 404, "no refused batch stored anything");
    let text = tc.metrics_text().await;
    for reason in [
        "invalid_json",
        "invalid_duration",
        "invalid_status",
        "label_too_long",
        "decompressed_too_large",
        "body_too_large",
        "batch_too_large",
        "inconsistent_counts",
        "timestamp_out_of_range",
    ] {
        assert!(
            metric_value(
                &text,
                &format!("vitals_rejected_total{{reason=\"{reason}\"}}")
            ) >= 1,
            "{reason} counted:\n{text}"
        );
    }
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_json"}"#),
        8
    );
}

#[tokio::test]
async fn query_parameters_are_validated() {
    let tc = TestCollector::start(memory_config()).await;
    assert_eq!(
        tc.post(
            "/v1/requests",
            &records_body("api", None, &raw_requests(5, 10), now_ms())
        )
        .await
        .0,
        200
    );
    for (path, reason) in [
        ("/v1/services?window=abc", "invalid_window"),
        ("/v1/services?window=10s", "invalid_window"),
        ("/v1/services?window=9999d", "invalid_window"),
        ("/v1/services?window=1h&window=2h", "invalid_query"),
        ("/v1/services?evil=1", "unknown_parameter"),
        ("/v1/services/api/recent?limit=0", "invalid_limit"),
        ("/v1/services/api/recent?limit=100000", "invalid_limit"),
        ("/v1/services/api/recent?limit=-1", "invalid_limit"),
        ("/v1/services/api/timeseries?metric=bogus", "invalid_metric"),
        (
            "/v1/services/api/timeseries?metric=p95_ms&step=30s",
            "invalid_step",
        ),
        (
            "/v1/services/api/timeseries?metric=p95_ms&step=1m&window=30d",
            "invalid_step",
        ),
        (
            "/v1/services/api/timeseries?step=2h&window=1h",
            "invalid_step",
        ),
        ("/v1/connections?window=", "invalid_window"),
    ] {
        let (status, body) = tc.get(path).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (400, Some(reason)),
            "{path}: {body}"
        );
    }
    let long = format!("/v1/services?window={}", "1".repeat(5000));
    let (status, body) = tc.get(&long).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("query_too_long"))
    );
    let (status, body) = tc.get("/v2/nothing").await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("not_found")));
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_step"}"#),
        3,
        "{text}"
    );
    // Good parameters pass.
    tc.get_ok("/v1/services/api/timeseries?metric=error_rate&step=5m&window=1h")
        .await;
    tc.get_ok("/v1/services/api/timeseries?metric=apdex&window=7d")
        .await;
}

/// One exchange with the collector, keeping the answer's headers (the
/// shared helper keeps only status and body).
async fn exchange(
    tc: &TestCollector,
    method: &str,
    path: &str,
    key: &str,
) -> (u16, hyper::HeaderMap, Value) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{}{}", tc.addr, path))
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        Value::String(format!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    });
    (status, headers, body)
}

/// What the router refuses before any handler runs (wrong method, a path
/// segment that is not UTF-8, a service name no service can have, an
/// unknown path) is the same JSON error as every other refusal, with a
/// specific reason, and counted.
#[tokio::test]
async fn router_refusals_are_json_errors_and_counted() {
    let tc = TestCollector::start(memory_config()).await;
    let (ik, rk) = (tc.ingest_key.clone(), tc.read_key.clone());
    let now = now_ms();
    let body = json!({"service": "café", "requests": [
        {"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0, "timestamp_ms": now}]});
    let (s, b) = tc.post("/v1/requests", &body).await;
    assert_eq!(s, 200, "{b}");

    let max = Limits::default().max_name_len;
    let long = "x".repeat(max + 1);
    let longest = "x".repeat(max);
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        ("GET", "/v1/ingest".into(), &ik, 405, "method_not_allowed"),
        ("PUT", "/v1/requests".into(), &ik, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/services/café/stats".replace('é', "%C3%A9"),
            &rk,
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/v1/services".into(),
            &rk,
            405,
            "method_not_allowed",
        ),
        ("POST", "/metrics".into(), &rk, 405, "method_not_allowed"),
        ("GET", "/v1/services/%FF/stats".into(), &rk, 400, "bad_path"),
        (
            "GET",
            "/v1/services/%C3%28/timeseries".into(),
            &rk,
            400,
            "bad_path",
        ),
        (
            "GET",
            "/v1/services/api/custom/%FF%FE".into(),
            &rk,
            400,
            "bad_path",
        ),
        (
            "GET",
            format!("/v1/services/{long}/stats"),
            &rk,
            400,
            "service_too_long",
        ),
        (
            "GET",
            format!("/v1/services/{long}/custom/m"),
            &rk,
            400,
            "service_too_long",
        ),
        (
            "GET",
            "/v1/services/a%00b/recent".into(),
            &rk,
            400,
            "invalid_service",
        ),
        (
            "GET",
            "/v1/services/a%C2%85b/routes".into(),
            &rk,
            400,
            "invalid_service",
        ),
        // At the limit the name is fine, just unknown.
        (
            "GET",
            format!("/v1/services/{longest}/stats"),
            &rk,
            404,
            "unknown_service",
        ),
        ("GET", "/v2/nothing".into(), &rk, 404, "not_found"),
    ];
    for (method, path, key, want_status, want_reason) in &cases {
        let (status, headers, answer) = exchange(&tc, method, path, key).await;
        let what = format!("{method} {path}");
        assert_eq!(
            (status, answer["reason"].as_str()),
            (*want_status, Some(*want_reason)),
            "{what}: {answer}"
        );
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{what}"
        );
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && e.len() < 1000),
            "{what}: a short readable error: {answer}"
        );
        if *want_status == 405 {
            let allow = headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let wanted = if path.starts_with("/v1/ingest") || path.starts_with("/v1/requests") {
                "POST"
            } else {
                "GET"
            };
            assert!(
                allow.split(',').any(|m| m.trim() == wanted),
                "{what}: Allow {allow:?}"
            );
        }
    }
    // The error names what was wrong.
    let (_, _, a) = exchange(&tc, "GET", "/v1/ingest", &ik).await;
    assert!(a["error"].as_str().unwrap().contains("GET"), "{a}");

    // A well-encoded segment still decodes: "caf%C3%A9" is "café".
    let stats = tc.get_ok("/v1/services/caf%C3%A9/stats?window=15m").await;
    assert_eq!(
        (stats["service"].as_str(), stats["requests"].as_u64()),
        (Some("café"), Some(1))
    );

    let text = tc.metrics_text().await;
    for (reason, n) in [
        ("method_not_allowed", 6),
        ("bad_path", 3),
        ("service_too_long", 2),
        ("invalid_service", 2),
        ("unknown_service", 1),
        ("not_found", 1),
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
}
