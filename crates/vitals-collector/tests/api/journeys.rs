//! What the web UI draws from: request journeys (`/v1/traces/{id}`)
//! across services, oldest first, on SQLite, PostgreSQL and the Redis hot
//! tier; every route of a service (no top-N) with an optional `limit`; the
//! overview's sparkline only when asked for.

use crate::common::*;
use serde_json::{Value, json};
use vitals_collector::{CollectorConfig, Role, now_ms};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER: &str = "00f067aa0ba902b700f067aa0ba902b7";

#[tokio::test]
async fn journeys_cross_services_in_time_order() {
    journeys_on(memory_config()).await;
}

#[tokio::test]
async fn journeys_cross_services_in_time_order_on_postgres() {
    crate::on_postgres("api_journey", journeys_on).await;
}

#[tokio::test]
async fn journeys_cross_services_in_time_order_on_the_redis_hot_tier() {
    crate::on_redis_hot_tier("vitals_test_api_journey", journeys_on).await;
}

fn record(route: &str, status: u16, ms: f64, at: i64, trace: Option<&str>) -> Value {
    json!({
        "method": "GET", "route": route, "path": route, "status": status,
        "duration_ms": ms, "timestamp_ms": at, "trace_id": trace, "caller": "web",
    })
}

async fn journeys_on(config: CollectorConfig) {
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    // An earlier request of the trace, then recent ones in two services,
    // posted out of order.
    let batches = [
        (
            "web",
            vec![
                record("/checkout", 200, 80.0, now - 3_000, Some(TRACE)),
                record("/home", 200, 5.0, now - 2_500, Some(OTHER)),
                record("/old", 200, 3.0, now - 600_000, Some(TRACE)),
            ],
        ),
        (
            "payments <script>",
            vec![
                record("/charge", 502, 40.0, now - 2_000, Some(TRACE)),
                record("/charge", 200, 9.0, now - 1_000, None),
            ],
        ),
    ];
    for (i, (service, requests)) in batches.iter().enumerate() {
        let body = json!({ "service": service, "batch_id": format!("j{i}"), "requests": requests });
        let (status, answer) = tc.post("/v1/requests", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let journey = tc.get_ok(&format!("/v1/traces/{TRACE}")).await;
    assert_eq!(journey["trace_id"], TRACE);
    let steps: Vec<(String, String, i64)> = journey["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            assert_eq!(r["trace_id"], TRACE);
            (
                r["service"].as_str().expect("service").to_string(),
                r["route"].as_str().expect("route").to_string(),
                r["timestamp_ms"].as_i64().expect("timestamp"),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("web".into(), "/old".into(), now - 600_000),
            ("web".into(), "/checkout".into(), now - 3_000),
            ("payments <script>".into(), "/charge".into(), now - 2_000),
        ]
    );
    // Each step has every field of a /recent sample, with the same values.
    let recent = tc
        .get_ok("/v1/services/payments%20%3Cscript%3E/recent")
        .await;
    let sample = recent["requests"]
        .as_array()
        .expect("recent")
        .iter()
        .find(|s| s["trace_id"] == TRACE)
        .expect("the traced sample")
        .clone();
    let mut step = journey["requests"][2].clone();
    step.as_object_mut().expect("object").remove("service");
    assert_eq!(step, sample);

    let limited = tc.get_ok(&format!("/v1/traces/{TRACE}?limit=2")).await;
    assert_eq!(limited["requests"].as_array().expect("requests").len(), 2);
    assert_eq!(limited["requests"][0]["route"], "/old", "the oldest first");
    let none = tc
        .get_ok("/v1/traces/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(none["requests"], json!([]));

    // Another tenant sees none of it.
    let other = tc
        .collector
        .create_key("globex", Role::Read)
        .await
        .expect("key");
    let (status, theirs) = tc
        .request(
            "GET",
            &format!("/v1/traces/{TRACE}"),
            Some(&other),
            &[],
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(theirs["requests"], json!([]));

    // Hostile ids and parameters: clear, counted 400s.
    for (path, reason) in [
        (
            "/v1/traces/4BF92F3577B34DA6A3CE929D0E0E4736",
            "invalid_trace_id",
        ),
        ("/v1/traces/4bf92f35", "invalid_trace_id"),
        (
            "/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736%00",
            "invalid_trace_id",
        ),
        (
            &format!("/v1/traces/{}", "a".repeat(300)),
            "invalid_trace_id",
        ),
        (&format!("/v1/traces/{TRACE}?limit=0"), "invalid_limit"),
        (&format!("/v1/traces/{TRACE}?limit=1001"), "invalid_limit"),
        (
            &format!("/v1/traces/{TRACE}?window=1h"),
            "unknown_parameter",
        ),
    ] {
        let (status, body) = tc.get(path).await;
        assert_eq!(
            (status, body["reason"].clone()),
            (400, json!(reason)),
            "{path}"
        );
    }
    let (status, _) = tc
        .request("GET", &format!("/v1/traces/{TRACE}"), None, &[], vec![])
        .await;
    assert_eq!(status, 401);
    assert!(
        metric_value(
            &tc.metrics_text().await,
            r#"vitals_rejected_total{reason="invalid_trace_id"}"#
        ) >= 4
    );
    tc.stop().await;
}

#[tokio::test]
async fn routes_lists_every_route_and_sparklines_come_on_request() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let requests: Vec<Value> = (0..60)
        .flat_map(|i| {
            (0..=i % 3).map(move |_| record(&format!("/r{i:02}"), 200, 1.0, now - 60_000, None))
        })
        .collect();
    let body = json!({ "service": "api", "requests": requests });
    let (status, answer) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{answer}");

    let routes = tc.get_ok("/v1/services/api/routes?window=1h").await;
    let list = routes["routes"].as_array().expect("routes");
    assert_eq!(list.len(), 60, "every route, no top-N");
    let counts: Vec<u64> = list
        .iter()
        .map(|r| r["requests"].as_u64().expect("requests"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "busiest first");
    let capped = tc.get_ok("/v1/services/api/routes?limit=5").await;
    assert_eq!(capped["routes"].as_array().expect("routes").len(), 5);
    assert_eq!(
        (
            &capped["routes"][0]["route"],
            &capped["routes"][0]["requests"]
        ),
        (
            &routes["routes"][0]["route"],
            &routes["routes"][0]["requests"]
        )
    );
    for bad in ["0", "x", "100001"] {
        let (status, body) = tc
            .get(&format!("/v1/services/api/routes?limit={bad}"))
            .await;
        assert_eq!(
            (status, body["reason"].clone()),
            (400, json!("invalid_limit"))
        );
    }

    let plain = tc.get_ok("/v1/services?window=1h").await;
    assert!(plain["services"][0].get("sparkline").is_none());
    let spark = tc.get_ok("/v1/services?window=1h&sparkline=1").await;
    let points = spark["services"][0]["sparkline"]
        .as_array()
        .expect("sparkline");
    // 1h is read at 5 minutes: 12 steps, plus the current partial one.
    assert!((12..=13).contains(&points.len()), "{} points", points.len());
    let total: f64 = points
        .iter()
        .map(|p| p["value"].as_f64().expect("value") * 5.0)
        .sum();
    assert_eq!(
        total as u64,
        spark["services"][0]["requests"].as_u64().expect("n")
    );
    assert!(
        points
            .windows(2)
            .all(|w| w[1]["t"].as_i64() > w[0]["t"].as_i64())
    );
    let (status, body) = tc.get("/v1/services?sparkline=yes").await;
    assert_eq!(
        (status, body["reason"].clone()),
        (400, json!("invalid_sparkline"))
    );
    tc.stop().await;
}
