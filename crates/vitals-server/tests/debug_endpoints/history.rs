//! `/debug/history`: its points match the requests sent.

use crate::{exposition, get_body, json, start_with};
use std::time::Duration;

#[tokio::test]
async fn history_points_match_the_requests_sent() {
    let s = start_with(|b| b.history(Duration::from_millis(100), 50)).await;
    for i in 0..7 {
        assert_eq!(get_body(&s, &format!("/users/{i}")).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(get_body(&s, "/fail").await.0, 500);
    }
    // Let the sampler take a few points after the last request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, body) = get_body(&s, "/debug/history").await;
    assert_eq!(status, 200, "{body}");
    let h = json(&body);
    assert_eq!(h["interval_ms"], 100);
    assert_eq!(h["capacity"], 50);
    let points = h["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{h}");
    let (mut requests, mut errors) = (0, 0);
    for p in points {
        for key in [
            "t_ms",
            "uptime_seconds",
            "connections_active",
            "streams_active",
            "requests_active",
            "rate_per_sec",
            "errors_per_sec",
            "avg_latency_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "sent_rate_kbps",
            "recv_rate_kbps",
            "websocket_active",
            "sse_active",
            "tasks_in_flight",
        ] {
            assert!(p.get(key).is_some(), "missing {key}: {p}");
        }
        let n = p["requests"].as_u64().unwrap();
        let span = p["span_ms"].as_u64().unwrap() as f64 / 1000.0;
        let rate = p["rate_per_sec"].as_f64().unwrap();
        // The rate is the point's own count over its own span.
        assert!(
            (rate * span - n as f64).abs() < 0.01 * n.max(1) as f64,
            "{p}"
        );
        let err_rate = p["errors_per_sec"].as_f64().unwrap();
        let e = p["errors"].as_u64().unwrap();
        assert!(
            (err_rate * span - e as f64).abs() < 0.01 * e.max(1) as f64,
            "{p}"
        );
        // Percentiles exist exactly when requests finished in the point.
        assert_eq!(p["p50_ms"].is_null(), n == 0, "{p}");
        assert_eq!(p["p99_ms"].is_null(), n == 0, "{p}");
        if n > 0 {
            assert!(p["sent_rate_kbps"].as_f64().unwrap() > 0.0, "{p}");
        }
        requests += n;
        errors += e;
    }
    assert_eq!((requests, errors), (10, 3), "{h}");

    // since_ms keeps only newer points.
    let last = points.last().unwrap()["t_ms"].as_u64().unwrap();
    let (_, body) = get_body(&s, &format!("/debug/history?since_ms={last}")).await;
    let newer = json(&body);
    assert!(
        newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t_ms"].as_u64().unwrap() > last)
    );
    let first = points[0]["t_ms"].as_u64().unwrap();
    let (_, body) = get_body(&s, &format!("/debug/history?since_ms={first}")).await;
    assert!(json(&body)["points"].as_array().unwrap().len() >= points.len() - 1);

    for bad in ["since_ms=abc", "since_ms=-5", "since_ms=1&since_ms=2"] {
        let (status, body) = get_body(&s, &format!("/debug/history?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(json(&body)["error"].as_str().unwrap().contains("since_ms"));
    }
    assert!(exposition(&s).contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 3\n"));
}
