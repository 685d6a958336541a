//! Ingest hardening, tried as an attacker would: numbers no interval can
//! hold, several or oddly cased `Authorization` headers, and service names
//! that could never be queried back. Each is refused whole with a clear
//! reason and counted; nothing of it is stored.

use crate::common::*;
use serde_json::{Value, json};
use vitals::Sketch;
use vitals_collector::now_ms;

fn aggregate(now: i64, route: Value) -> Value {
    json!({"batch_id": "hostile", "service": "api", "start_unix_ms": now,
           "interval_ms": 10_000, "routes": [route]})
}

#[tokio::test]
async fn numbers_no_interval_can_hold_are_refused_and_counted() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let mut one = Sketch::new();
    one.record(10.0);
    let bucket = one.buckets().next().unwrap().0;
    let sketch = |sum: f64, rejected: Value, buckets: Value| json!({"zero_count": 0, "sum": sum, "rejected": rejected, "buckets": buckets});
    let route = |count: u64, duration: Value| json!({"method": "GET", "route": "/a", "status_class": 2, "count": count, "duration_ms": duration});
    let cases: Vec<(Value, &str)> = vec![
        // One request of 10 ms that claims a sum of 1e30 ms.
        (
            aggregate(now, route(1, sketch(1e30, json!(0), json!([[bucket, 1]])))),
            "invalid_duration",
        ),
        // A sum just under the limit for one request, but its bucket says 10 ms.
        (
            aggregate(
                now,
                route(1, sketch(3_000_000.0, json!(0), json!([[bucket, 1]]))),
            ),
            "invalid_duration",
        ),
        // 1000 requests of about 10 ms with a sum of zero.
        (
            aggregate(
                now,
                route(1000, sketch(0.0, json!(0), json!([[bucket, 1000]]))),
            ),
            "invalid_duration",
        ),
        // A sum with no values at all.
        (
            aggregate(now, route(5, sketch(100.0, json!(0), json!([])))),
            "invalid_duration",
        ),
        // A rejected count of 2^63 for one request.
        (
            aggregate(
                now,
                route(1, sketch(10.0, json!(1u64 << 63), json!([[bucket, 1]]))),
            ),
            "inconsistent_counts",
        ),
        (
            aggregate(now, route(1, sketch(10.0, json!(1), json!([[bucket, 1]])))),
            "inconsistent_counts",
        ),
        // Bucket counts that overflow u64 when added up.
        (
            aggregate(
                now,
                route(
                    1000,
                    sketch(
                        10.0,
                        json!(0),
                        json!([[bucket, 1u64 << 63], [bucket + 1, 1u64 << 63]]),
                    ),
                ),
            ),
            "inconsistent_counts",
        ),
        (
            json!({"batch_id": "t", "service": "api", "start_unix_ms": now, "interval_ms": 10_000, "apdex_t_ms": 9.2e18}),
            "invalid_apdex_t",
        ),
        (
            json!({"batch_id": "t", "service": "api", "start_unix_ms": now, "interval_ms": 10_000, "apdex_t_ms": 3_600_001.0}),
            "invalid_apdex_t",
        ),
    ];
    for (body, reason) in &cases {
        let (status, answer) = tc.post("/v1/ingest", body).await;
        assert_eq!(
            (status, answer["reason"].as_str()),
            (400, Some(*reason)),
            "{body}: {answer}"
        );
        assert!(answer["error"].as_str().is_some_and(|e| e.len() < 2000));
    }
    let (s, _) = tc.get("/v1/services/api/stats").await;
    assert_eq!(s, 404, "nothing of a refused batch is stored");
    let text = tc.metrics_text().await;
    for (reason, n) in [
        ("invalid_duration", 4),
        ("inconsistent_counts", 3),
        ("invalid_apdex_t", 2),
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

    // What a real sender sends still passes: values spread over many
    // buckets, rejected values within the count, the longest T.
    let mut real = Sketch::new();
    for i in 0..500 {
        real.record(0.3 + f64::from(i) * 7.3);
    }
    real.record(-1.0);
    real.record(0.0);
    let body = json!({"batch_id": "ok", "service": "api", "start_unix_ms": now, "interval_ms": 10_000,
        "apdex_t_ms": 3_600_000.0,
        "routes": [{"method": "GET", "route": "/a", "status_class": 2, "count": 502, "duration_ms": real}]});
    let (status, answer) = tc.post("/v1/ingest", &body).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_one_header_only() {
    let tc = TestCollector::start(memory_config()).await;
    let body = serde_json::to_vec(&json!({"service": "api", "requests": [
        {"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0}]}))
    .unwrap();
    let key = tc.ingest_key.clone();
    let ct = ("content-type", "application/json");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {key}");
        let (status, answer) = tc
            .request(
                "POST",
                "/v1/requests",
                None,
                &[ct, ("authorization", &auth)],
                body.clone(),
            )
            .await;
        assert_eq!(status, 200, "{scheme}: {answer}");
    }
    let good = format!("Bearer {key}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        // Two headers, even two equal ones: refused rather than one picked.
        vec![ct, ("authorization", &good), ("authorization", &good)],
        vec![
            ct,
            ("authorization", "Bearer vk_nobody"),
            ("authorization", &good),
        ],
        vec![
            ct,
            ("authorization", &good),
            ("authorization", "Bearer vk_nobody"),
        ],
        vec![ct, ("authorization", "Basic dXNlcjpwYXNz")],
        vec![ct, ("authorization", "Bearer")],
        vec![ct, ("authorization", "Bearer    ")],
        vec![ct],
    ];
    for headers in &cases {
        let (status, answer) = tc
            .request("POST", "/v1/requests", None, headers, body.clone())
            .await;
        assert_eq!(
            (status, answer["reason"].as_str()),
            (401, Some("unauthorized")),
            "{headers:?}: {answer}"
        );
    }
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="unauthorized"}"#),
        cases.len() as u64,
        "{text}"
    );
    // A read key in any case works on a query, too.
    let (status, _) = tc
        .request(
            "GET",
            "/v1/services",
            None,
            &[("authorization", &format!("bearer {}", tc.read_key))],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn service_names_that_cannot_be_queried_back_are_refused() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let bad = [
        ".",
        "..",
        "a/b",
        "/",
        "   ",
        "\u{3000}",
        "pay\u{202E}gnp",
        "x\u{2066}y",
        "\u{200F}",
        "line\u{2028}break",
        "para\u{2029}",
        "\u{061C}",
    ];
    for name in bad {
        let records = json!({"service": name, "requests": [
            {"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0}]});
        let batch =
            json!({"batch_id": "s", "service": name, "start_unix_ms": now, "interval_ms": 10_000});
        for (path, body) in [("/v1/requests", &records), ("/v1/ingest", &batch)] {
            let (status, answer) = tc.post(path, body).await;
            assert_eq!(
                (status, answer["reason"].as_str()),
                (400, Some("invalid_service")),
                "{path} {name:?}: {answer}"
            );
            let msg = answer["error"].as_str().unwrap();
            assert!(msg.contains("path segment"), "a clear reason: {msg}");
        }
    }
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_service"}"#),
        2 * bad.len() as u64,
        "{text}"
    );
    let services = tc.get_ok("/v1/services").await;
    assert_eq!(services["services"], json!([]), "none stored: {services}");

    // Names with dots, spaces inside and other scripts are fine, and can be
    // queried back.
    for name in ["a.b", "...", "my service", "café", "サービス", "x..y"] {
        let records = json!({"service": name, "requests": [
            {"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0}]});
        let (status, answer) = tc.post("/v1/requests", &records).await;
        assert_eq!(status, 200, "{name:?}: {answer}");
        let path: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'.' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        tc.get_ok(&format!("/v1/services/{path}/stats")).await;
    }
}
