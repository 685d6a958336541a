//! What a batch of records becomes: figures computed exactly from the raw
//! requests (in memory, on PostgreSQL, on the Redis hot tier), aggregated
//! batches merged, duplicates counted once, escaped and non-ASCII text
//! stored unescaped, a record landing in the minute of its timestamp.

use crate::common::*;
use crate::external;
use crate::{Raw, raw_requests, records_body};
use serde_json::{Value, json};
use vitals::Sketch;
use vitals_collector::{CollectorConfig, now_ms};

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
