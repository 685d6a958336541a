//! Every window sees every acknowledged batch at once: data rolled up,
//! then more data into the same periods (recent and two hours back), read
//! right after the answer in every window (15m, 1h, 6h, 24h, 7d) and every
//! view (overview, stats, routes, timeseries, custom, connections), on
//! SQLite, PostgreSQL and the Redis hot tier.

use crate::common::*;
use crate::{Raw, raw_requests, records_body};
use serde_json::{Value, json};
use vitals_collector::{CollectorConfig, now_ms};

const WINDOWS: [&str; 5] = ["15m", "1h", "6h", "24h", "7d"];

#[tokio::test]
async fn every_window_sees_every_acknowledged_batch() {
    every_window_sees_every_batch_on(memory_config()).await;
}

#[tokio::test]
async fn every_window_sees_every_acknowledged_batch_on_postgres() {
    crate::on_postgres("api_fresh", every_window_sees_every_batch_on).await;
}

#[tokio::test]
async fn every_window_sees_every_acknowledged_batch_on_the_redis_hot_tier() {
    crate::on_redis_hot_tier("vitals_test_api_fresh", every_window_sees_every_batch_on).await;
}

fn gauge_push(id: &str, at: i64, value: f64) -> Value {
    json!({
        "batch_id": id,
        "service": "api",
        "instance": "i-1",
        "start_unix_ms": at - 5_000,
        "interval_ms": 5_000,
        "routes": [],
        "custom": [{ "name": "queue_depth", "kind": "gauge", "value": value }],
    })
}

/// Stored records (timestamps) so far, to count what each window holds.
struct Sent {
    at: Vec<(i64, bool, bool)>,
}

impl Sent {
    fn add(&mut self, raw: &[Raw], ts: i64) {
        for (i, r) in raw.iter().enumerate() {
            self.at
                .push((ts + i as i64 % 1000, r.status >= 500, r.caller.is_some()));
        }
    }
    /// (requests, errors, requests with a caller) from `from_ms` on.
    fn since(&self, from_ms: i64) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for &(t, err, called) in &self.at {
            if t >= from_ms {
                out.0 += 1;
                out.1 += err as u64;
                out.2 += called as u64;
            }
        }
        out
    }
}

async fn post_records(tc: &TestCollector, sent: &mut Sent, id: &str, seed: u64, ts: i64) {
    let raw = raw_requests(seed, 200);
    let (status, body) = tc
        .post("/v1/requests", &records_body("api", Some(id), &raw, ts))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "stored");
    sent.add(&raw, ts);
}

async fn every_window_sees_every_batch_on(config: CollectorConfig) {
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let (recent, earlier) = (now - 120_000, now - 2 * 3_600_000);
    let mut sent = Sent { at: Vec::new() };
    post_records(&tc, &mut sent, "a1", 1, recent).await;
    post_records(&tc, &mut sent, "a2", 2, earlier).await;
    let (status, body) = tc.post("/v1/ingest", &gauge_push("g1", recent, 7.0)).await;
    assert_eq!(status, 200, "{body}");
    // Everything rolled up: the coarse periods exist and are clean.
    tc.collector.run_jobs_once(now_ms()).await.expect("rollup");
    check_every_window(&tc, &sent, 7.0, "after the rollup").await;

    // More data into the same, already rolled-up periods, read at once.
    post_records(&tc, &mut sent, "b1", 3, recent).await;
    post_records(&tc, &mut sent, "b2", 4, earlier).await;
    let (status, body) = tc
        .post("/v1/ingest", &gauge_push("g2", now - 30_000, 9.0))
        .await;
    assert_eq!(status, 200, "{body}");
    check_every_window(&tc, &sent, 9.0, "right after the second batches").await;

    // And once rolled up, the same answers from the rollups.
    tc.collector.run_jobs_once(now_ms()).await.expect("rollup");
    check_every_window(&tc, &sent, 9.0, "after the second rollup").await;
}

async fn check_every_window(tc: &TestCollector, sent: &Sent, gauge: f64, when: &str) {
    for window in WINDOWS {
        let what = format!("{when}, window {window}");
        let stats = tc
            .get_ok(&format!("/v1/services/api/stats?window={window}"))
            .await;
        let from = stats["window"]["from_ms"].as_i64().expect("from_ms");
        let (requests, errors, called) = sent.since(from);
        assert!(requests > 0, "{what}: the window holds data");
        assert_eq!(stats["requests"], json!(requests), "{what}: stats");
        assert_eq!(stats["errors"], json!(errors), "{what}: stats errors");

        let overview = tc
            .get_ok(&format!("/v1/services?window={window}&sparkline=1"))
            .await;
        let api = &overview["services"][0];
        assert_eq!(api["requests"], json!(requests), "{what}: overview");
        let spark: f64 = api["sparkline"]
            .as_array()
            .expect("sparkline")
            .iter()
            .map(|p| p["value"].as_f64().expect("value"))
            .sum();
        let step = overview_step(&overview);
        assert!(
            (spark * step as f64 / 60_000.0 - requests as f64).abs() < 1e-6,
            "{what}: the sparkline adds up to the requests ({spark} per min)"
        );

        let routes = tc
            .get_ok(&format!("/v1/services/api/routes?window={window}"))
            .await;
        let by_routes: u64 = routes["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|r| r["requests"].as_u64().expect("requests"))
            .sum();
        assert_eq!(by_routes, requests, "{what}: routes");

        let ts = tc
            .get_ok(&format!(
                "/v1/services/api/timeseries?window={window}&metric=requests"
            ))
            .await;
        let in_steps: f64 = ts["points"]
            .as_array()
            .expect("points")
            .iter()
            .filter_map(|p| p["value"].as_f64())
            .sum();
        assert_eq!(in_steps as u64, requests, "{what}: timeseries");

        let edges = tc.get_ok(&format!("/v1/connections?window={window}")).await;
        let by_edges: u64 = edges["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["requests"].as_u64().expect("requests"))
            .sum();
        assert_eq!(by_edges, called, "{what}: connections");

        let custom = tc
            .get_ok(&format!("/v1/services/api/custom?window={window}"))
            .await;
        assert_eq!(
            custom["metrics"][0]["value"],
            json!(gauge),
            "{what}: custom {custom}"
        );
    }
}

/// The sparkline's step: the distance between its first two points.
fn overview_step(overview: &Value) -> i64 {
    let points = overview["services"][0]["sparkline"]
        .as_array()
        .expect("sparkline");
    match points.as_slice() {
        [a, b, ..] => b["t"].as_i64().expect("t") - a["t"].as_i64().expect("t"),
        _ => 60_000,
    }
}
