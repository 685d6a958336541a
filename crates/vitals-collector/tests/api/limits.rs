//! Limits that shape a batch rather than refuse it outright: routes past
//! the limit fold into overflow (also over a hundred thousand routes in
//! many batches); sampled requests past the batch limit refuse the batch.

use crate::common::*;
use serde_json::{Value, json};
use vitals::Sketch;
use vitals_collector::{CollectorConfig, Limits, now_ms};

#[tokio::test]
async fn routes_past_the_limit_fold_into_overflow() {
    let config = CollectorConfig {
        limits: Limits {
            max_routes_per_service: 3,
            ..Limits::default()
        },
        ..memory_config()
    };
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let requests: Vec<Value> = (0..10).map(|i| json!({"method": "GET", "path": format!("/item/{i}?q=1"), "status": 200, "duration_ms": 1.0, "timestamp_ms": now})).collect();
    let (s, b) = tc
        .post(
            "/v1/requests",
            &json!({"service": "shop", "requests": requests}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["overflowed"], json!(7));
    let routes = tc.get_ok("/v1/services/shop/routes").await;
    let mut names: Vec<(String, u64)> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("/item/0".into(), 1),
            ("/item/1".into(), 1),
            ("/item/2".into(), 1),
            ("__overflow__".into(), 7)
        ]
    );
    // A route already known keeps its own series.
    let (s, _) = tc.post("/v1/requests", &json!({"service": "shop", "requests": [{"method": "GET", "route": "/item/1", "status": 200, "duration_ms": 1.0}]})).await;
    assert_eq!(s, 200);
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, "vitals_collector_route_overflow_total"),
        7,
        "{text}"
    );
}

#[tokio::test]
async fn sampled_requests_past_the_batch_limit_refuse_the_batch() {
    let config = CollectorConfig {
        limits: Limits {
            max_samples_per_batch: 5,
            samples_per_request_batch: 3,
            ..Limits::default()
        },
        ..memory_config()
    };
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let batch = |id: &str, samples: usize| {
        let requests: Vec<Value> = (0..samples)
            .map(|i| json!({"timestamp_unix_ms": now - 1000 + i as i64, "method": "GET",
                            "path": format!("/a/{i}"), "route": "/a/{id}", "status": 200, "duration_ms": 2.0}))
            .collect();
        json!({"batch_id": id, "service": "api", "start_unix_ms": now - 10_000, "interval_ms": 10_000,
               "routes": [{"method": "GET", "route": "/a/{id}", "status_class": 2, "count": 7, "satisfied": 7}],
               "requests": requests})
    };
    // One sample over: the whole batch is refused, aggregates included
    // (nothing is half-taken or silently cut).
    let (status, b) = tc.post("/v1/ingest", &batch("over", 6)).await;
    assert_eq!(
        (status, b["reason"].as_str()),
        (413, Some("batch_too_large")),
        "{b}"
    );
    let e = b["error"].as_str().unwrap();
    assert!(
        e.contains("6 sampled requests") && e.contains("limit of 5"),
        "{e}"
    );
    let (status, _) = tc.get("/v1/services/api/stats").await;
    assert_eq!(status, 404, "the refused batch stored nothing");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="batch_too_large"}"#),
        1,
        "{text}"
    );
    // At the limit: stored whole.
    let (status, b) = tc.post("/v1/ingest", &batch("at", 5)).await;
    assert_eq!(status, 200, "{b}");
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(stats["requests"], json!(7));
    let recent = tc.get_ok("/v1/services/api/recent?limit=100").await;
    assert_eq!(recent["requests"].as_array().unwrap().len(), 5);

    // A records body is not refused for its size in samples: all its
    // records count, and only its last `samples_per_request_batch` are
    // kept as samples.
    let requests: Vec<Value> = (0..10)
        .map(|i| {
            json!({"method": "GET", "route": "/r", "path": format!("/r?i={i}"), "status": 200,
                        "duration_ms": 1.0, "timestamp_ms": now - 500 + i})
        })
        .collect();
    let (status, b) = tc
        .post(
            "/v1/requests",
            &json!({"service": "rec", "requests": requests}),
        )
        .await;
    assert_eq!((status, b["requests"].as_u64()), (200, Some(10)), "{b}");
    let recent = tc.get_ok("/v1/services/rec/recent?limit=100").await;
    let paths: Vec<&str> = recent["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/r?i=9", "/r?i=8", "/r?i=7"]);
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="batch_too_large"}"#),
        1,
        "keeping fewer samples is no refusal: {text}"
    );
}

/// 100 000 distinct routes for one service, each batch within every
/// limit: half as aggregates, half as per-request records, all through
/// HTTP (under 4 s in a debug build here). The service keeps its first
/// `max_routes_per_service` routes; the rest fold into one overflow series
/// and every request still counts.
#[tokio::test]
async fn a_hundred_thousand_routes_over_many_batches_fold_into_overflow() {
    let tc = TestCollector::start(memory_config()).await;
    let limits = Limits::default();
    let per_batch = limits
        .max_routes_per_batch
        .min(limits.max_records_per_batch);
    let max_routes = limits.max_routes_per_service;
    let now = now_ms();
    let (mut sent, mut sent_errors, mut overflowed) = (0u64, 0u64, 0u64);
    // Requests and errors per kept route, to compare series by series.
    let mut kept: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    // Bodies are written as text: building 100 000 `serde_json::Value`s
    // would take longer than the collector takes to ingest them.
    let sketch_json: Vec<Vec<String>> = (0..100)
        .map(|v| {
            (0..=3)
                .map(|count| {
                    let mut sk = Sketch::new();
                    for _ in 0..count {
                        sk.record(1.0 + f64::from(v));
                    }
                    serde_json::to_string(&sk).unwrap()
                })
                .collect()
        })
        .collect();
    let mut route_no = 0usize;
    for b in 0..10 {
        let mut counts = Vec::with_capacity(per_batch);
        let mut body = String::with_capacity(per_batch * 160);
        let path = if b < 5 {
            body.push_str(&format!(
                r#"{{"batch_id":"agg-{b}","service":"wide","start_unix_ms":{},"interval_ms":10000,"routes":["#,
                now - 30_000
            ));
            for j in 0..per_batch {
                let i = route_no + j;
                let count = 1 + (i % 3) as u64;
                let errors = if i % 7 == 0 { count } else { 0 };
                counts.push((format!("/r{i}"), count, errors));
                body.push_str(&format!(
                    r#"{}{{"method":"GET","route":"/r{i}","status_class":{},"count":{count},"errors":{errors},"satisfied":{},"duration_ms":{}}}"#,
                    if j == 0 { "" } else { "," },
                    if errors > 0 { 5 } else { 2 },
                    count - errors,
                    sketch_json[i % 100][count as usize],
                ));
            }
            "/v1/ingest"
        } else {
            body.push_str(&format!(
                r#"{{"batch_id":"rec-{b}","service":"wide","requests":["#
            ));
            for j in 0..per_batch {
                let i = route_no + j;
                let status = if i % 7 == 0 { 500 } else { 200 };
                counts.push((format!("/r{i}"), 1, u64::from(status == 500)));
                body.push_str(&format!(
                    r#"{}{{"method":"GET","route":"/r{i}","status":{status},"duration_ms":{},"timestamp_ms":{}}}"#,
                    if j == 0 { "" } else { "," },
                    i % 100,
                    now - 20_000
                ));
            }
            "/v1/requests"
        };
        body.push_str("]}");
        route_no += per_batch;
        let (status, answer) = tc.post_raw(path, body.into_bytes(), &[]).await;
        assert_eq!(status, 200, "batch {b}: {answer}");
        let batch_requests: u64 = counts.iter().map(|c| c.1).sum();
        assert_eq!(answer["requests"], json!(batch_requests), "batch {b}");
        overflowed += answer["overflowed"].as_u64().unwrap();
        sent += batch_requests;
        sent_errors += counts.iter().map(|c| c.2).sum::<u64>();
        for (route, n, e) in counts {
            if kept.len() < max_routes || kept.contains_key(&route) {
                kept.insert(route, (n, e));
            }
        }
    }
    assert_eq!(route_no, 100_000);
    assert_eq!(overflowed, (100_000 - max_routes) as u64);
    // A route already kept still has its own series afterwards; a new one
    // still folds.
    for (route, id) in [("/r5", "late-1"), ("/brand-new", "late-2")] {
        let body = json!({"service": "wide", "batch_id": id, "requests": [
            {"method": "GET", "route": route, "status": 200, "duration_ms": 1.0}]});
        let (status, answer) = tc.post("/v1/requests", &body).await;
        assert_eq!(status, 200, "{answer}");
        let folded = u64::from(route == "/brand-new");
        assert_eq!(answer["overflowed"], json!(folded), "{route}");
        overflowed += folded;
        sent += 1;
    }
    if let Some(k) = kept.get_mut("/r5") {
        k.0 += 1;
    }

    let routes = tc.get_ok("/v1/services/wide/routes?window=15m").await;
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), max_routes + 1, "kept routes and one overflow");
    let (mut total, mut errors) = (0u64, 0u64);
    let (mut kept_total, mut kept_errors) = (0u64, 0u64);
    for r in list {
        let route = r["route"].as_str().unwrap();
        let (n, e) = (
            r["requests"].as_u64().unwrap(),
            r["errors"].as_u64().unwrap(),
        );
        total += n;
        errors += e;
        if route == "__overflow__" {
            continue;
        }
        assert_eq!(kept.get(route), Some(&(n, e)), "{route}");
        kept_total += n;
        kept_errors += e;
    }
    assert_eq!((total, errors), (sent, sent_errors), "every request counts");
    let overflow = list.iter().find(|r| r["route"] == "__overflow__").unwrap();
    assert_eq!(
        (overflow["requests"].as_u64(), overflow["errors"].as_u64()),
        (Some(sent - kept_total), Some(sent_errors - kept_errors))
    );
    let stats = tc.get_ok("/v1/services/wide/stats?window=15m").await;
    assert_eq!(
        (stats["requests"].as_u64(), stats["errors"].as_u64()),
        (Some(sent), Some(sent_errors))
    );
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, "vitals_collector_route_overflow_total"),
        overflowed,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="route_overflow"}"#),
        11,
        "one counted refusal per batch that folded routes: {text}"
    );
}
