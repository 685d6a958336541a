//! A real OpenTelemetry SDK (Python `opentelemetry-sdk` with
//! `opentelemetry-exporter-otlp-proto-http`) records known HTTP server
//! durations and exports them to `POST /v1/metrics`: protobuf through the
//! SDK's exporter, JSON through the SDK's encoder and protobuf's JSON
//! mapping; delta and cumulative; explicit and exponential histograms. The
//! service and its routes then appear in `/v1/services/{s}/routes` with
//! the counts sent and percentiles within the resolution of the buckets
//! sent.

use crate::common::*;
use serde_json::{Value, json};
use vitals_test_support::external::require_python_module;

const SCRIPT: &str = include_str!("otlp_export.py");
/// The SDK's explicit bounds (the semantic conventions' advice), seconds.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

struct Sent {
    method: &'static str,
    route: &'static str,
    status: u16,
    seconds: f64,
}

fn rounds(seed: u64) -> Vec<Vec<Sent>> {
    let mut rng = Rng(seed);
    (0..3)
        .map(|_| {
            (0..120)
                .map(|_| {
                    let r = rng.next();
                    let (method, route) = match r % 3 {
                        0 => ("GET", "/users/{id}"),
                        1 => ("POST", "/orders"),
                        _ => ("GET", "/health"),
                    };
                    Sent {
                        method,
                        route,
                        status: if r % 10 == 0 { 503 } else { 200 },
                        seconds: rng.duration_ms() / 1000.0,
                    }
                })
                .collect()
        })
        .collect()
}

fn export(tc: &TestCollector, service: &str, mode: [&str; 3], rounds: &[Vec<Sent>]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("otlp_export.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let rounds: Vec<Vec<Value>> = rounds
        .iter()
        .map(|r| {
            r.iter()
                .map(|s| json!([s.method, s.route, s.status, s.seconds]))
                .collect()
        })
        .collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}/v1/metrics", tc.addr))
        .arg(&tc.ingest_key)
        .arg(service)
        .args(mode)
        .arg(serde_json::to_string(&rounds).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the SDK's exports succeed ({mode:?}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// The bucket `(lo, hi]` (of the SDK's explicit bounds, in ms) that holds `ms`.
fn explicit_bucket(ms: f64) -> (f64, f64) {
    let mut lo = 0.0;
    for b in BOUNDS {
        if ms <= b * 1000.0 {
            return (lo, b * 1000.0);
        }
        lo = b * 1000.0;
    }
    (lo, f64::INFINITY)
}

async fn check_routes(tc: &TestCollector, service: &str, sent: &[&Sent], exponential: bool) {
    let routes = tc
        .get_ok(&format!("/v1/services/{service}/routes?window=15m"))
        .await;
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{routes}");
    for r in list {
        let (m, route) = (r["method"].as_str().unwrap(), r["route"].as_str().unwrap());
        let mine: Vec<&&Sent> = sent
            .iter()
            .filter(|s| s.method == m && s.route == route)
            .collect();
        let what = format!("{service} {m} {route}");
        assert_eq!(r["requests"], json!(mine.len()), "{what}: {r}");
        assert_eq!(
            r["errors"],
            json!(mine.iter().filter(|s| s.status >= 500).count()),
            "{what}"
        );
        let ms: Vec<f64> = mine.iter().map(|s| s.seconds * 1000.0).collect();
        let avg = ms.iter().sum::<f64>() / ms.len() as f64;
        assert_close(
            &r["avg_ms"],
            avg,
            1e-6,
            &format!("{what} avg (the sum is sent exactly)"),
        );
        for (q, field) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
            let exact = exact_quantile(&ms, q);
            let got = r[field].as_f64().unwrap();
            if exponential {
                // The SDK picks the scale (160 buckets over this range:
                // scale 3 or finer, buckets within 9.1 % of each other).
                let err = (got - exact).abs() / exact;
                assert!(
                    err <= 0.091 + 0.006,
                    "{what} {field}: got {got}, exact {exact}"
                );
            } else {
                let (lo, hi) = explicit_bucket(exact);
                assert!(
                    got >= lo * 0.994 && got <= hi * 1.006,
                    "{what} {field}: got {got}, exact {exact}, bucket ({lo}, {hi}]"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_sdk_exports_and_its_routes_appear_with_their_counts() {
    if !require_python_module(
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http",
    ) {
        return;
    }
    let tc = TestCollector::start(memory_config()).await;
    let cases = [
        ("py-delta", ["delta", "explicit", "protobuf"]),
        ("py-cumulative", ["cumulative", "explicit", "protobuf"]),
        ("py-exponential", ["cumulative", "exponential", "protobuf"]),
        ("py-delta-exp", ["delta", "exponential", "protobuf"]),
        ("py-json", ["cumulative", "explicit", "json"]),
        ("py-json-exp", ["delta", "exponential", "json"]),
    ];
    for (i, (service, mode)) in cases.iter().enumerate() {
        let sent = rounds(100 + i as u64);
        let tc2 = &tc;
        let service2 = service.to_string();
        let mode2 = *mode;
        tokio::task::block_in_place(|| export(tc2, &service2, mode2, &sent));
        let all: Vec<&Sent> = sent.iter().flatten().collect();
        check_routes(&tc, service, &all, mode[1] == "exponential").await;
        // The SDK's counter arrives as a custom metric.
        let custom = tc
            .get_ok(&format!("/v1/services/{service}/custom?window=15m"))
            .await;
        let orders = custom["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "orders")
            .unwrap_or_else(|| panic!("{service}: orders kept: {custom}"));
        assert_eq!(orders["kind"], "counter", "{orders}");
        assert_eq!(
            orders["value"],
            json!(all.len() as f64),
            "{service}: {orders}"
        );
    }
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_otlp_data_points_total{outcome="rejected"}"#
        ),
        0,
        "{text}"
    );
    assert!(
        metric_value(
            &text,
            r#"vitals_collector_batches_total{endpoint="otlp",outcome="stored"}"#
        ) >= 18,
        "{text}"
    );
}
