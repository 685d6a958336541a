//! The collector's own `/metrics`: ingest rate and latency per endpoint
//! (our two and OTLP), rejections by reason, store write latency, rollup
//! pass time and lag, all Prometheus-scrapable and clean under
//! `promtool check metrics`.

use crate::common::*;
use crate::{raw_requests, records_body};
use serde_json::json;
use vitals_collector::now_ms;
use vitals_test_support::external::promtool_check_metrics;

fn sample_count(text: &str, series: &str) -> u64 {
    metric_value(text, series)
}

#[tokio::test]
async fn the_collectors_own_metrics_cover_ingest_store_and_rollups() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let (st, _) = tc
        .post(
            "/v1/requests",
            &records_body("api", Some("r1"), &raw_requests(3, 20), now),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = tc
        .post(
            "/v1/ingest",
            &json!({"batch_id": "b1", "service": "api", "start_unix_ms": now, "interval_ms": 10_000}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = tc
        .post("/v1/requests", &json!({"service": "..", "requests": []}))
        .await;
    assert_eq!(st, 400);
    let (st, _) = tc
        .request(
            "POST",
            "/v1/metrics",
            Some(&tc.ingest_key),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(st, 200);
    tc.collector
        .run_jobs_once(now_ms())
        .await
        .expect("a rollup pass");

    let text = tc.metrics_text().await;
    for endpoint in ["requests", "ingest", "otlp"] {
        assert!(
            sample_count(
                &text,
                &format!(
                    "vitals_collector_ingest_duration_seconds_count{{endpoint=\"{endpoint}\"}}"
                )
            ) >= 1,
            "{endpoint} latency:\n{text}"
        );
    }
    assert_eq!(
        sample_count(
            &text,
            r#"vitals_collector_requests_ingested_total{endpoint="requests"}"#
        ),
        20
    );
    assert_eq!(
        sample_count(&text, r#"vitals_rejected_total{reason="invalid_service"}"#),
        1
    );
    assert_eq!(
        sample_count(&text, "vitals_collector_store_write_duration_seconds_count"),
        2,
        "{text}"
    );
    assert_eq!(
        sample_count(&text, "vitals_collector_rollup_pass_duration_seconds_count"),
        1
    );
    assert!(
        sample_count(&text, "vitals_collector_rollup_periods_total") >= 1,
        "{text}"
    );
    let last: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vitals_collector_rollup_last_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the last success is exposed");
    assert!((last - now_ms() as f64 / 1000.0).abs() < 60.0, "{last}");
    assert!(
        text.contains("vitals_collector_rollup_lag_seconds "),
        "{text}"
    );
    assert!(
        text.contains("vitals_collector_otlp_data_points_total"),
        "{text}"
    );

    let Some(report) = promtool_check_metrics(text.as_bytes()) else {
        return;
    };
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}
