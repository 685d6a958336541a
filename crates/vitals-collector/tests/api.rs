//! Black-box tests: a real collector on 127.0.0.1:0, a real HTTP client,
//! results compared with values computed exactly from the raw inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// A body, its headers, the status and reason it must get.
type HostileCase = (
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
);

use common::*;
use serde_json::{Value, json};
use vitals::Sketch;
use vitals_collector::{CollectorConfig, Limits, now_ms};

struct Raw {
    route: &'static str,
    method: &'static str,
    status: u16,
    duration: f64,
    caller: Option<&'static str>,
}

fn raw_requests(seed: u64, n: usize) -> Vec<Raw> {
    let mut rng = Rng(seed);
    let routes = ["/users/{id}", "/orders", "/health"];
    let callers = [None, Some("web"), Some("mobile")];
    (0..n)
        .map(|_| {
            let r = rng.next();
            Raw {
                route: routes[(r % 3) as usize],
                method: if r % 7 == 0 { "POST" } else { "GET" },
                status: match r % 20 {
                    0 => 503,
                    1 => 404,
                    _ => 200,
                },
                duration: rng.duration_ms(),
                caller: callers[((r >> 8) % 3) as usize],
            }
        })
        .collect()
}

fn records_body(service: &str, batch_id: Option<&str>, raw: &[Raw], ts: i64) -> Value {
    let requests: Vec<Value> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "method": r.method,
                "route": r.route,
                "path": r.route.replace("{id}", &i.to_string()),
                "status": r.status,
                "duration_ms": r.duration,
                "caller": r.caller,
                "timestamp_ms": ts + i as i64 % 1000,
            })
        })
        .collect();
    json!({ "service": service, "instance": "i-1", "batch_id": batch_id, "requests": requests })
}

fn check_figures(got: &Value, raw: &[&Raw], t: f64, what: &str) {
    let n = raw.len() as u64;
    assert_eq!(got["requests"], json!(n), "{what}: requests");
    let errors = raw.iter().filter(|r| r.status >= 500).count() as u64;
    assert_eq!(got["errors"], json!(errors), "{what}: errors");
    let d: Vec<f64> = raw.iter().map(|r| r.duration).collect();
    // Apdex: an error is frustrated whatever its speed.
    let ok: Vec<f64> = raw
        .iter()
        .filter(|r| r.status < 500)
        .map(|r| r.duration)
        .collect();
    let sat = ok.iter().filter(|&&x| x <= t).count() as f64;
    let tol = ok.iter().filter(|&&x| x > t && x <= 4.0 * t).count() as f64;
    assert_close(
        &got["apdex"],
        (sat + tol / 2.0) / n as f64,
        1e-12,
        &format!("{what}: apdex"),
    );
    assert_close(
        &got["avg_ms"],
        d.iter().sum::<f64>() / n as f64,
        1e-9,
        &format!("{what}: avg"),
    );
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        assert_close(
            &got[field],
            exact_quantile(&d, q),
            0.01,
            &format!("{what}: {field}"),
        );
    }
}

#[tokio::test]
async fn per_request_records_are_aggregated_exactly() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let raw = raw_requests(1, 3000);
    let (first, second) = raw.split_at(1700);
    for (i, part) in [first, second].into_iter().enumerate() {
        let (status, body) = tc
            .post(
                "/v1/requests",
                &records_body("api", Some(&format!("r{i}")), part, now - 240_000),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "stored");
        assert_eq!(body["requests"], json!(part.len()));
    }

    let all: Vec<&Raw> = raw.iter().collect();
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(stats["window"]["resolution"], "1m");
    check_figures(&stats, &all, 500.0, "service stats");
    assert_close(
        &stats["error_rate"],
        raw.iter().filter(|r| r.status >= 500).count() as f64 / 3000.0,
        1e-12,
        "error rate",
    );
    assert_eq!(
        stats["status_classes"]["4xx"],
        json!(raw.iter().filter(|r| r.status == 404).count())
    );

    let routes = tc.get_ok("/v1/services/api/routes?window=15m").await;
    let list = routes["routes"].as_array().unwrap();
    let mut pairs: Vec<(&str, &str)> = raw.iter().map(|r| (r.method, r.route)).collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(list.len(), pairs.len());
    for r in list {
        let (m, route) = (r["method"].as_str().unwrap(), r["route"].as_str().unwrap());
        let mine: Vec<&Raw> = raw
            .iter()
            .filter(|x| x.method == m && x.route == route)
            .collect();
        check_figures(r, &mine, 500.0, &format!("{m} {route}"));
        assert!(r["last_seen_ms"].as_i64().unwrap() >= now);
    }
    let counts: Vec<u64> = list
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "busiest route first: {counts:?}"
    );

    let edges = tc.get_ok("/v1/connections?window=15m").await;
    let edges = edges["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{edges:?}");
    for e in edges {
        let caller = e["caller"].as_str().unwrap();
        assert_eq!(e["callee"], "api");
        let mine: Vec<&Raw> = raw.iter().filter(|r| r.caller == Some(caller)).collect();
        assert_eq!(e["requests"], json!(mine.len()));
        assert_eq!(
            e["errors"],
            json!(mine.iter().filter(|r| r.status >= 500).count())
        );
        let d: Vec<f64> = mine.iter().map(|r| r.duration).collect();
        assert_close(&e["p95_ms"], exact_quantile(&d, 0.95), 0.01, "edge p95");
    }

    let ts = tc
        .get_ok("/v1/services/api/timeseries?metric=requests&step=1m&window=15m")
        .await;
    let points = ts["points"].as_array().unwrap();
    let sum: f64 = points.iter().filter_map(|p| p["value"].as_f64()).sum();
    assert_eq!(sum, 3000.0, "timeseries steps add up to the total");
    assert!(
        points.len() >= 15 && points.len() <= 17,
        "{} points",
        points.len()
    );
    let p99 = tc
        .get_ok("/v1/services/api/timeseries?metric=p99_ms&step=15m&window=15m")
        .await;
    let vals: Vec<f64> = p99["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert_eq!(vals.len(), 1, "one step holds all data: {p99}");
    assert_close(
        &json!(vals[0]),
        exact_quantile(&raw.iter().map(|r| r.duration).collect::<Vec<_>>(), 0.99),
        0.01,
        "p99 step",
    );

    let recent = tc.get_ok("/v1/services/api/recent?limit=5").await;
    let recent = recent["requests"].as_array().unwrap();
    assert_eq!(recent.len(), 5);
    let ts: Vec<i64> = recent
        .iter()
        .map(|r| r["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first: {ts:?}");

    let overview = tc.get_ok("/v1/services").await;
    let s = &overview["services"][0];
    assert_eq!(s["service"], "api");
    assert_eq!(s["requests"], json!(3000));
    assert!(s["health"].is_string());
}

#[tokio::test]
async fn aggregated_batches_merge_sketches_and_apdex_counts() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let raw = raw_requests(2, 2000);
    let mut all = Vec::new();
    let mut ok = Vec::new();
    // Four instances push their own aggregates for the same interval.
    for (i, chunk) in raw.chunks(500).enumerate() {
        let mut routes: Vec<Value> = Vec::new();
        for route in ["/users/{id}", "/orders", "/health"] {
            for class in [2u8, 4, 5] {
                let mine: Vec<&Raw> = chunk
                    .iter()
                    .filter(|r| {
                        r.route == route
                            && (r.status / 100) as u8 == class
                            && r.method == "GET"
                            && r.caller.is_none()
                    })
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let mut sk = Sketch::new();
                for r in &mine {
                    sk.record(r.duration);
                }
                all.extend(mine.iter().map(|r| r.duration));
                ok.extend(mine.iter().filter(|r| r.status < 500).map(|r| r.duration));
                routes.push(json!({
                    "method": "GET", "route": route, "status_class": class,
                    "count": mine.len(),
                    "errors": mine.iter().filter(|r| r.status >= 500).count(),
                    "satisfied": mine.iter().filter(|r| r.status < 500 && r.duration <= 500.0).count(),
                    "tolerating": mine.iter().filter(|r| r.status < 500 && r.duration > 500.0 && r.duration <= 2000.0).count(),
                    "duration_ms": sk,
                }));
            }
        }
        let batch = json!({
            "batch_id": format!("b{i}"), "service": "checkout", "instance": format!("c-{i}"),
            "start_unix_ms": now - 120_000, "interval_ms": 10_000, "routes": routes,
            "requests": [{"timestamp_unix_ms": now - 119_000, "method": "GET", "path": "/users/7", "route": "/users/{id}", "status": 200, "duration_ms": 3.5, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}],
        });
        let (status, body) = tc
            .post_raw(
                "/v1/ingest",
                gzip(&serde_json::to_vec(&batch).unwrap()),
                &[("content-encoding", "gzip")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let stats = tc.get_ok("/v1/services/checkout/stats?window=15m").await;
    assert_eq!(stats["requests"], json!(all.len()));
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        assert_close(&stats[field], exact_quantile(&all, q), 0.01, field);
    }
    // Apdex: an error is frustrated whatever its speed.
    let sat = ok.iter().filter(|&&d| d <= 500.0).count() as f64;
    let tol = ok.iter().filter(|&&d| d > 500.0 && d <= 2000.0).count() as f64;
    assert_close(
        &stats["apdex"],
        (sat + tol / 2.0) / all.len() as f64,
        1e-12,
        "apdex",
    );
    let recent = tc.get_ok("/v1/services/checkout/recent").await;
    assert_eq!(recent["requests"].as_array().unwrap().len(), 4);
    assert_eq!(
        recent["requests"][0]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[tokio::test]
async fn duplicate_batches_are_counted_once() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let raw = raw_requests(3, 100);
    let body = records_body("api", Some("retry-me"), &raw, now - 60_000);
    let (s1, b1) = tc.post("/v1/requests", &body).await;
    let (s2, b2) = tc.post("/v1/requests", &body).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(
        (b1["status"].as_str(), b2["status"].as_str()),
        (Some("stored"), Some("duplicate"))
    );
    let mut sk = Sketch::new();
    sk.record(5.0);
    let batch = json!({"batch_id": "agg-1", "service": "api", "start_unix_ms": now - 60_000, "interval_ms": 10_000,
        "routes": [{"method": "GET", "route": "/x", "status_class": 2, "count": 1, "satisfied": 1, "duration_ms": sk}]});
    for want in ["stored", "duplicate", "duplicate"] {
        let (s, b) = tc.post("/v1/ingest", &batch).await;
        assert_eq!((s, b["status"].as_str()), (200, Some(want)), "{b}");
    }
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(stats["requests"], json!(101), "retries never count twice");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_batches_total{endpoint="ingest",outcome="duplicate"}"#
        ),
        2,
        "{text}"
    );
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let tc = TestCollector::start(memory_config()).await;
    let other_ingest = tc
        .collector
        .create_key("globex", vitals_collector::Role::Ingest)
        .await
        .unwrap();
    let other_read = tc
        .collector
        .create_key("globex", vitals_collector::Role::Read)
        .await
        .unwrap();
    let now = now_ms();
    let raw = raw_requests(4, 50);
    assert_eq!(
        tc.post("/v1/requests", &records_body("api", Some("1"), &raw, now))
            .await
            .0,
        200
    );
    let body = serde_json::to_vec(&records_body("api", Some("1"), &raw[..10], now)).unwrap();
    let (s, b) = tc
        .request("POST", "/v1/requests", Some(&other_ingest), &[], body)
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (200, Some("stored")),
        "the same batch id in another tenant is new data"
    );

    let (_, mine) = tc.get("/v1/services/api/stats?window=15m").await;
    assert_eq!(mine["requests"], json!(50));
    let (s, theirs) = tc
        .request(
            "GET",
            "/v1/services/api/stats?window=15m",
            Some(&other_read),
            &[],
            vec![],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(theirs["requests"], json!(10));
    let (_, list) = tc
        .request("GET", "/v1/services", Some(&other_read), &[], vec![])
        .await;
    assert_eq!(list["services"].as_array().unwrap().len(), 1);
    let (_, recent) = tc
        .request(
            "GET",
            "/v1/services/api/recent?limit=1000",
            Some(&other_read),
            &[],
            vec![],
        )
        .await;
    assert_eq!(recent["requests"].as_array().unwrap().len(), 10);

    // Roles and keys.
    let (s, b) = tc
        .request("GET", "/v1/services", Some(&tc.ingest_key), &[], vec![])
        .await;
    assert_eq!((s, b["reason"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = tc
        .request(
            "POST",
            "/v1/requests",
            Some(&tc.read_key),
            &[],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!((s, b["reason"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = tc.request("GET", "/v1/services", None, &[], vec![]).await;
    assert_eq!(
        (s, b["reason"].as_str()),
        (401, Some("unauthorized")),
        "{b}"
    );
    let (s, _) = tc
        .request("GET", "/v1/services", Some("vk_not-a-key"), &[], vec![])
        .await;
    assert_eq!(s, 401);
    let (s, _) = tc
        .request(
            "GET",
            "/v1/services",
            Some(&"x".repeat(10_000)),
            &[],
            vec![],
        )
        .await;
    assert_eq!(s, 401);
    let (s, b) = tc.get("/v1/services/nope/stats").await;
    assert_eq!((s, b["reason"].as_str()), (404, Some("unknown_service")));
}

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

/// Records are read in place from the body; strings with JSON escapes or
/// non-ASCII text must come out unescaped, whether the body was gzipped
/// or not, in the series and in the recent samples.
#[tokio::test]
async fn escaped_and_unicode_records_are_stored_unescaped() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let body = format!(
        r#"{{"service":"caf\u00e9","instance":"i\/1","requests":[
            {{"method":"GET","path":"\/users\/1?q=\"x\"","status":200,"duration_ms":2.5,"caller":"w\u00e9b","timestamp_ms":{now}}},
            {{"method":"GET","route":"/über/{{id}}","path":"/über/7","status":503,"duration_ms":4,"timestamp_ms":{now},"trace_id":"\u0074r"}}]}}"#
    );
    for (i, gzipped) in [false, true].into_iter().enumerate() {
        let (wire, headers) = if gzipped {
            (gzip(body.as_bytes()), vec![("content-encoding", "gzip")])
        } else {
            (body.clone().into_bytes(), vec![])
        };
        let (status, answer) = tc.post_raw("/v1/requests", wire, &headers).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["requests"], json!(2));
        let routes = tc.get_ok("/v1/services/caf%C3%A9/routes?window=15m").await;
        let mut got: Vec<(String, u64)> = routes["routes"]
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
        got.sort();
        let n = i as u64 + 1;
        assert_eq!(
            got,
            vec![("/users/1".to_string(), n), ("/über/{id}".to_string(), n)]
        );
    }
    let recent = tc.get_ok("/v1/services/caf%C3%A9/recent?limit=2").await;
    let recent = recent["requests"].as_array().unwrap();
    let find = |route: &str| {
        recent
            .iter()
            .find(|s| s["route"] == route)
            .unwrap_or_else(|| panic!("{route} in {recent:?}"))
    };
    let first = find("/users/1");
    assert_eq!(first["path"], "/users/1?q=\"x\"");
    assert_eq!(first["caller"], "wéb");
    assert_eq!(first["instance"], "i/1");
    let second = find("/über/{id}");
    assert_eq!(second["path"], "/über/7");
    assert_eq!(second["trace_id"], "tr");
    let edges = tc.get_ok("/v1/connections?window=15m").await;
    assert_eq!(edges["edges"][0]["caller"], "wéb");
    assert_eq!(edges["edges"][0]["callee"], "café");
}

#[tokio::test]
async fn a_batch_counted_against_another_apdex_t_is_re_read_from_its_sketch() {
    // The sender counted Apdex against T = 100 ms; the service's T is the
    // default 500 ms. The collector re-reads the counts from the sketch.
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let durations: Vec<f64> = (0..2000).map(|i| 1.0 + (i as f64) * 1.3).collect();
    let mut sk = Sketch::new();
    for &d in &durations {
        sk.record(d);
    }
    let sent_sat = durations.iter().filter(|&&d| d <= 100.0).count();
    let sent_tol = durations
        .iter()
        .filter(|&&d| d > 100.0 && d <= 400.0)
        .count();
    let batch = json!({"batch_id": "t100", "service": "api", "start_unix_ms": now - 60_000,
    "interval_ms": 10_000, "apdex_t_ms": 100.0,
    "routes": [
        {"method": "GET", "route": "/x", "status_class": 2, "count": 2000,
         "satisfied": sent_sat, "tolerating": sent_tol, "duration_ms": sk},
        {"method": "GET", "route": "/x", "status_class": 5, "count": 10, "errors": 10,
         "satisfied": 10, "duration_ms": Sketch::new()},
    ]});
    let (status, body) = tc.post("/v1/ingest", &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["apdex_estimated"], json!(2), "{body}");
    let sat = durations.iter().filter(|&&d| d <= 500.0).count() as f64;
    let tol = durations
        .iter()
        .filter(|&&d| d > 500.0 && d <= 2000.0)
        .count() as f64;
    // Errors are frustrated; the bound is read at the sketch's resolution.
    let want = (sat + tol / 2.0) / 2010.0;
    let sent = (sent_sat as f64 + sent_tol as f64 / 2.0 + 10.0) / 2010.0;
    let stats = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_close(&stats["apdex"], want, 0.01, "apdex against the service's T");
    assert!(
        (stats["apdex"].as_f64().unwrap() - sent).abs() > 0.1,
        "not the sender's counts: {stats}"
    );
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, "vitals_collector_apdex_estimated_total"),
        2,
        "{text}"
    );
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

/// `timestamp` (the design's name) is read as `timestamp_ms`: records sent
/// with it land in their own minute, not in the minute they arrived.
#[tokio::test]
async fn records_with_timestamp_land_in_its_minute() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let then = now - 30 * 60_000;
    let rec = |ts: Option<(&str, i64)>| {
        let mut r = json!({"method": "GET", "route": "/a", "status": 200, "duration_ms": 2.0});
        if let Some((field, t)) = ts {
            r[field] = json!(t);
        }
        r
    };
    let body = json!({"service": "api", "requests": [
        rec(Some(("timestamp", then))),
        rec(Some(("timestamp", then + 1))),
        rec(Some(("timestamp", then + 2))),
        rec(Some(("timestamp_ms", then + 3))),
        rec(None),
    ]});
    let (s, b) = tc.post("/v1/requests", &body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["requests"], json!(5));

    // Only the record without a timestamp is in the last 15 minutes.
    let recent = tc.get_ok("/v1/services/api/stats?window=15m").await;
    assert_eq!(recent["requests"], json!(1), "{recent}");
    let wider = tc.get_ok("/v1/services/api/stats?window=45m").await;
    assert_eq!(wider["requests"], json!(5), "{wider}");

    let ts = tc
        .get_ok("/v1/services/api/timeseries?metric=requests&step=1m&window=1h")
        .await;
    let points = ts["points"].as_array().unwrap();
    let at = |t: i64| {
        points
            .iter()
            .find(|p| p["t"] == json!(t))
            .and_then(|p| p["value"].as_f64())
            .unwrap_or(0.0)
    };
    let minute = then - then.rem_euclid(60_000);
    assert_eq!(
        at(minute),
        4.0,
        "the four timestamped records in their minute: {ts}"
    );
    // The untimestamped record is in its arrival minute (the last or, at a
    // minute's turn, the one before), nowhere near `then`.
    let total: f64 = points.iter().filter_map(|p| p["value"].as_f64()).sum();
    assert_eq!(total, 5.0, "{ts}");
    let arrived = at(now - now.rem_euclid(60_000)) + at(now - now.rem_euclid(60_000) + 60_000);
    assert_eq!(arrived, 1.0, "{ts}");

    // Both names in one record: refused, not one silently winning.
    let both = json!({"service": "api", "requests": [
        {"method": "GET", "route": "/a", "status": 200, "duration_ms": 2.0,
         "timestamp": then, "timestamp_ms": now}]});
    let (s, b) = tc.post("/v1/requests", &both).await;
    assert_eq!(
        (s, b["reason"].as_str()),
        (400, Some("invalid_json")),
        "{b}"
    );
    assert!(
        b["error"].as_str().unwrap().contains("duplicate field"),
        "{b}"
    );
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_json"}"#),
        1,
        "{text}"
    );
}
