//! Black-box tests: a real collector on 127.0.0.1:0, a real HTTP client,
//! results compared with values computed exactly from the raw inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod external;

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
    records_are_aggregated_exactly_on(memory_config()).await;
}

/// The same figures from PostgreSQL: the store's sketches and counts
/// reach the query API unchanged.
#[tokio::test]
async fn per_request_records_are_aggregated_exactly_on_postgres() {
    let Some(schema) = external::TestSchema::create("api_exact").await else {
        return;
    };
    records_are_aggregated_exactly_on(CollectorConfig {
        store: schema.url(),
        ..Default::default()
    })
    .await;
    schema.drop().await;
}

/// The same figures from the Redis hot tier, which answers these recent
/// minutes by itself.
#[tokio::test]
async fn per_request_records_are_aggregated_exactly_on_the_redis_hot_tier() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = format!("{}:", external::random_name("vitals_test_api_exact"));
    records_are_aggregated_exactly_on(CollectorConfig {
        cache: Some(format!("{url}/?prefix={prefix}")),
        ..memory_config()
    })
    .await;
    let (keys, mut conn) = external::redis_keys(&url, &prefix).await;
    assert!(!keys.is_empty(), "the data went through Redis");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("del");
}

/// Posts 3,000 known records in two batches to a collector on `config`
/// and checks every query's figures against the raw data.
async fn records_are_aggregated_exactly_on(config: CollectorConfig) {
    let tc = TestCollector::start(config).await;
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
    tc.stop().await;
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

/// A `/v1/requests` body of one route's requests, given as (status, duration).
fn status_durations(service: &str, batch_id: &str, list: &[(u16, f64)], now: i64) -> Value {
    let requests: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, (status, d))| {
            json!({"method": "GET", "route": "/work", "status": status, "duration_ms": d,
                   "timestamp_ms": now - 1000 - i as i64})
        })
        .collect();
    json!({"service": service, "batch_id": batch_id, "requests": requests})
}

/// Apdex of raw (status, duration) pairs against `t`, the plain way:
/// satisfied at most T, tolerating at most 4T, errors frustrated.
fn exact_apdex(list: &[(u16, f64)], t: f64) -> f64 {
    let ok = list.iter().filter(|(s, _)| *s < 500);
    let sat = ok.clone().filter(|(_, d)| *d <= t).count() as f64;
    let tol = ok.filter(|(_, d)| *d > t && *d <= 4.0 * t).count() as f64;
    (sat + tol / 2.0) / list.len() as f64
}

#[tokio::test]
async fn health_follows_each_services_own_policy() {
    // Defaults differ from the built-in values (T 500 ms, p95 1 s, 5 %,
    // 50 %), and `slow` has its own T and objective.
    let config = CollectorConfig::from_toml(
        r#"
        store = "sqlite::memory:"
        [defaults]
        apdex_t_ms = 300.0
        objective_p95_ms = 2000.0
        degraded_error_rate = 0.1
        down_error_rate = 0.4
        [services.slow]
        apdex_t_ms = 100.0
        objective_p95_ms = 200.0
        [services.sleepy]
        stale_after_secs = 1
        "#,
    )
    .expect("valid config");
    let tc = TestCollector::start(config).await;
    let now = now_ms();

    // Sent first: it must go quiet for over a second.
    let sleepy: Vec<(u16, f64)> = (0..20).map(|i| (200, 5.0 + f64::from(i))).collect();
    let (s, b) = tc
        .post(
            "/v1/requests",
            &status_durations("sleepy", "z", &sleepy, now),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let sleepy_sent = std::time::Instant::now();

    // 5 % errors: degraded under the built-in 5 %, healthy under the
    // configured 10 %. Durations on T and 4T exactly (satisfied,
    // tolerating) and just past 4T (frustrated).
    let mut fine: Vec<(u16, f64)> = vec![(200, 300.0), (200, 1200.0), (200, 1200.5)];
    fine.extend((0..5).map(|_| (503, 20.0)));
    fine.extend((0..92).map(|i| (200, 1.0 + f64::from(i) * 2.7)));
    // Exactly at the degraded error rate.
    let mut flaky: Vec<(u16, f64)> = (0..10).map(|_| (500, 10.0)).collect();
    flaky.extend((0..90).map(|i| (200, 10.0 + f64::from(i))));
    // Fewer errors than `fine`, but a p95 near 800 ms: over its own
    // 200 ms objective, under the default 2 s and the built-in 1 s.
    // Errors are fast yet frustrated; T and 4T (100, 400) exactly.
    let mut slow: Vec<(u16, f64)> = vec![
        (503, 5.0),
        (500, 5.0),
        (200, 100.0),
        (200, 400.0),
        (200, 400.5),
        (404, 0.0),
    ];
    slow.extend((0..50).map(|i| (200, 1.0 + f64::from(i) * 1.9)));
    slow.extend((0..26).map(|i| (200, 101.0 + f64::from(i) * 11.5)));
    slow.extend((0..18).map(|i| (200, 600.0 + f64::from(i) * 15.0)));
    // Exactly at the down error rate.
    let mut broken: Vec<(u16, f64)> = (0..40).map(|_| (502, 3.0)).collect();
    broken.extend((0..60).map(|_| (200, 3.0)));
    let scenarios: [(&str, &Vec<(u16, f64)>); 4] = [
        ("fine", &fine),
        ("flaky", &flaky),
        ("slow", &slow),
        ("broken", &broken),
    ];
    for (service, list) in scenarios {
        // In two batches, so the figures are merged ones.
        let (a, b) = list.split_at(list.len() / 2);
        for (i, part) in [a, b].into_iter().enumerate() {
            let (s, body) = tc
                .post(
                    "/v1/requests",
                    &status_durations(service, &format!("{service}-{i}"), part, now),
                )
                .await;
            assert_eq!(s, 200, "{body}");
        }
    }
    let slow_durations: Vec<f64> = slow.iter().map(|r| r.1).collect();
    let slow_p95 = exact_quantile(&slow_durations, 0.95);
    assert!(
        slow_p95 > 700.0 && slow_p95 < 1000.0,
        "the scenario is what it says: {slow_p95}"
    );

    /// What a service's health answer must say.
    struct Expected<'a> {
        service: &'a str,
        health: &'a str,
        reasons: &'a [&'a str],
        apdex_t_ms: f64,
        objective_p95_ms: f64,
        raw: &'a [(u16, f64)],
    }
    let by_default = |service, health, reasons, raw| Expected {
        service,
        health,
        reasons,
        apdex_t_ms: 300.0,
        objective_p95_ms: 2000.0,
        raw,
    };
    let want = [
        by_default("fine", "healthy", &[], &fine),
        by_default("flaky", "degraded", &["error rate 10.0 % ≥ 10.0 %"], &flaky),
        Expected {
            service: "slow",
            health: "degraded",
            // Checked apart: the p95 in it comes from the sketch.
            reasons: &[],
            apdex_t_ms: 100.0,
            objective_p95_ms: 200.0,
            raw: &slow,
        },
        by_default("broken", "down", &["error rate 40.0 % ≥ 40.0 %"], &broken),
    ];
    let overview = tc.get_ok("/v1/services?window=15m").await;
    let listed = overview["services"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{overview}");
    for w in &want {
        let service = w.service;
        let stats = tc
            .get_ok(&format!("/v1/services/{service}/stats?window=15m"))
            .await;
        let entry = listed
            .iter()
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("{service} in {overview}"));
        for (what, got) in [("stats", &stats), ("overview", entry)] {
            let what = format!("{service} {what}");
            assert_eq!(got["health"], w.health, "{what}: {got}");
            if service == "slow" {
                let r = got["health_reasons"].as_array().unwrap();
                assert_eq!(r.len(), 1, "{what}: {got}");
                let r = r[0].as_str().unwrap();
                assert!(
                    r.starts_with("p95 ") && r.ends_with(" ms > objective 200 ms"),
                    "{what}: {r}"
                );
            } else {
                assert_eq!(got["health_reasons"], json!(w.reasons), "{what}");
            }
            assert_eq!(got["apdex_t_ms"], json!(w.apdex_t_ms), "{what}");
            assert_eq!(got["objective_p95_ms"], json!(w.objective_p95_ms), "{what}");
            assert_eq!(got["requests"], json!(w.raw.len()), "{what}");
            // Exact counts against the service's own T.
            assert_close(
                &got["apdex"],
                exact_apdex(w.raw, w.apdex_t_ms),
                1e-12,
                &format!("{what}: apdex"),
            );
        }
    }
    // The overridden T really is the one used: under the default T the
    // score would differ.
    assert!((exact_apdex(&slow, 100.0) - exact_apdex(&slow, 300.0)).abs() > 0.1);
    let slow_stats = tc.get_ok("/v1/services/slow/stats?window=15m").await;
    assert_close(&slow_stats["p95_ms"], slow_p95, 0.01, "slow p95");

    // `sleepy` goes stale once more than its 1 s passes without data;
    // the others (300 s) stay fresh.
    let wait = std::time::Duration::from_millis(1100).saturating_sub(sleepy_sent.elapsed());
    tokio::time::sleep(wait).await;
    let overview = tc.get_ok("/v1/services?window=15m").await;
    for s in overview["services"].as_array().unwrap() {
        let (health, reasons) = (&s["health"], &s["health_reasons"]);
        if s["service"] == "sleepy" {
            assert_eq!(health, "down", "{s}");
            assert_eq!(reasons, &json!(["no data for over 1 s"]), "{s}");
            assert_eq!(s["requests"], json!(20), "its data is still there");
        } else {
            assert!(
                !reasons.to_string().contains("no data"),
                "fresh services are not stale: {s}"
            );
        }
    }
    let stats = tc.get_ok("/v1/services/sleepy/stats?window=15m").await;
    assert_eq!(stats["health"], "down", "{stats}");
    assert_eq!(stats["health_reasons"], json!(["no data for over 1 s"]));
    // New data revives it.
    let (s, b) = tc
        .post(
            "/v1/requests",
            &status_durations("sleepy", "z2", &sleepy, now_ms()),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let stats = tc.get_ok("/v1/services/sleepy/stats?window=15m").await;
    assert_eq!(stats["health"], "healthy", "{stats}");
}

/// A one-record `/v1/requests` body for `service`.
fn one_record(service: &str, batch_id: &str) -> Value {
    json!({"service": service, "batch_id": batch_id,
           "requests": [{"method": "GET", "route": "/a", "status": 200, "duration_ms": 1.0}]})
}

/// The tenant's services listed by `GET /v1/services`, with their requests.
async fn listed_services(tc: &TestCollector) -> Vec<(String, u64)> {
    let overview = tc.get_ok("/v1/services?window=15m").await;
    overview["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn services_past_the_tenant_limit_are_refused_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("vitals.db").display()),
        limits: Limits {
            max_services_per_tenant: 3,
            ..Limits::default()
        },
        ..Default::default()
    };
    let tc = TestCollector::start(config.clone()).await;
    for s in ["s0", "s1", "s2"] {
        let (status, b) = tc.post("/v1/requests", &one_record(s, s)).await;
        assert_eq!(status, 200, "{b}");
    }
    let refused = |status: u16, b: &Value, service: &str| {
        assert_eq!(
            (status, b["reason"].as_str()),
            (400, Some("too_many_services")),
            "{b}"
        );
        let e = b["error"].as_str().unwrap();
        assert!(
            e.contains(&format!("{service:?}")) && e.contains("max_services_per_tenant"),
            "says which service and which limit: {e}"
        );
    };
    let (status, b) = tc.post("/v1/requests", &one_record("s3", "s3")).await;
    refused(status, &b, "s3");
    let batch = json!({"batch_id": "agg", "service": "s4", "start_unix_ms": now_ms(), "interval_ms": 10_000,
        "routes": [{"method": "GET", "route": "/a", "status_class": 2, "count": 1, "satisfied": 1}]});
    let (status, b) = tc.post("/v1/ingest", &batch).await;
    refused(status, &b, "s4");
    // Known services still take data; another tenant has its own limit.
    let (status, b) = tc.post("/v1/requests", &one_record("s1", "again")).await;
    assert_eq!(status, 200, "{b}");
    let globex = tc
        .collector
        .create_key("globex", vitals_collector::Role::Ingest)
        .await
        .unwrap();
    let body = serde_json::to_vec(&one_record("s3", "g")).unwrap();
    let (status, b) = tc
        .request("POST", "/v1/requests", Some(&globex), &[], body)
        .await;
    assert_eq!(status, 200, "{b}");

    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_rejected_total{reason="too_many_services"}"#
        ),
        2,
        "{text}"
    );
    for endpoint in ["requests", "ingest"] {
        assert_eq!(
            metric_value(
                &text,
                &format!(
                    r#"vitals_collector_batches_total{{endpoint="{endpoint}",outcome="rejected"}}"#
                )
            ),
            1,
            "{endpoint}: {text}"
        );
    }
    // The refused batches did not land; the accepted ones did.
    let want: Vec<(String, u64)> = vec![("s0".into(), 1), ("s1".into(), 2), ("s2".into(), 1)];
    assert_eq!(listed_services(&tc).await, want);
    for s in ["s3", "s4"] {
        let (status, b) = tc.get(&format!("/v1/services/{s}/stats")).await;
        assert_eq!(
            (status, b["reason"].as_str()),
            (404, Some("unknown_service"))
        );
    }
    drop(tc.stop().await);

    // A new process on the same file knows the tenant's services.
    let tc = TestCollector::start(config).await;
    let (status, b) = tc.post("/v1/requests", &one_record("s3", "s3-after")).await;
    refused(status, &b, "s3");
    let (status, b) = tc.post("/v1/requests", &one_record("s0", "s0-after")).await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = tc.post("/v1/requests", &one_record("s5", "s5-after")).await;
    refused(status, &b, "s5");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_rejected_total{reason="too_many_services"}"#
        ),
        2,
        "{text}"
    );
    let want: Vec<(String, u64)> = vec![("s0".into(), 2), ("s1".into(), 2), ("s2".into(), 1)];
    assert_eq!(listed_services(&tc).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_new_services_cannot_pass_the_limit_together() {
    let config = CollectorConfig {
        limits: Limits {
            max_services_per_tenant: 3,
            ..Limits::default()
        },
        ..memory_config()
    };
    let tc = std::sync::Arc::new(TestCollector::start(config).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let tc = tc.clone();
        tasks.spawn(async move {
            let service = format!("new-{i}");
            let (status, b) = tc.post("/v1/requests", &one_record(&service, "1")).await;
            (status, b["reason"].as_str().map(str::to_string))
        });
    }
    let mut answers = Vec::new();
    while let Some(a) = tasks.join_next().await {
        answers.push(a.unwrap());
    }
    let accepted = answers.iter().filter(|a| a.0 == 200).count();
    let refused = answers
        .iter()
        .filter(|a| a == &&(400, Some("too_many_services".to_string())))
        .count();
    assert_eq!((accepted, refused), (3, 21), "{answers:?}");
    assert_eq!(listed_services(&tc).await.len(), 3);
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_rejected_total{reason="too_many_services"}"#
        ),
        21,
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
