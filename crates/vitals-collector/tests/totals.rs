//! Per-service total series through the real API: the service-wide views
//! (overview, stats, connections) read totals and must equal what the raw
//! requests say, at every resolution; senders can never write a total
//! themselves; and a database from before totals gets them on reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use vitals::Sketch;
use vitals_collector::{
    Bucket, BucketStats, CollectorConfig, DirtyPeriod, IngestWrite, Resolution, SeriesKey,
    SqliteStore, Store, now_ms,
};

/// One raw request as a sender would report it.
#[derive(Debug, Clone)]
struct Req {
    service: &'static str,
    route: String,
    status: u16,
    caller: &'static str,
    ts: i64,
    ms: f64,
}

/// Many routes, every status class, several callers, over the last 5 h.
fn requests(seed: u64, n: usize, now: i64) -> Vec<Req> {
    let mut rng = Rng(seed);
    let services = ["api", "db", "auth"];
    let callers = ["", "web", "mobile", "api"];
    let statuses = [200, 201, 302, 404, 500, 503, 101];
    (0..n)
        .map(|_| Req {
            service: services[(rng.next() % 3) as usize],
            route: format!("/r/{}", rng.next() % 30),
            status: statuses[(rng.next() % statuses.len() as u64) as usize],
            caller: callers[(rng.next() % callers.len() as u64) as usize],
            ts: now - 1 - (rng.unit() * 5.0 * 3_600_000.0) as i64,
            ms: rng.duration_ms(),
        })
        .collect()
}

async fn post_requests(tc: &TestCollector, reqs: &[Req]) {
    let mut by: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for r in reqs {
        let mut rec = json!({
            "method": if r.status == 201 { "POST" } else { "GET" },
            "route": r.route,
            "status": r.status,
            "duration_ms": r.ms,
            "timestamp_ms": r.ts,
        });
        if !r.caller.is_empty() {
            rec["caller"] = json!(r.caller);
        }
        by.entry(r.service).or_default().push(rec);
    }
    for (service, recs) in by {
        for chunk in recs.chunks(5000) {
            let (status, body) = tc
                .post(
                    "/v1/requests",
                    &json!({ "service": service, "requests": chunk }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

/// Requests, errors and the exact sketch of a set of raw requests.
fn figures<'a>(reqs: impl IntoIterator<Item = &'a Req>) -> (u64, u64, Sketch) {
    let (mut n, mut errors, mut sk) = (0, 0, Sketch::new());
    for r in reqs {
        n += 1;
        errors += u64::from(r.status >= 500);
        sk.record(r.ms);
    }
    (n, errors, sk)
}

fn assert_p95(got: &Value, sk: &Sketch, what: &str) {
    match sk.quantile(0.95) {
        Some(want) => assert_close(got, want, 1e-12, what),
        None => assert!(got.is_null(), "{what}: {got}"),
    }
}

/// Checks the overview, every service's stats (status classes included)
/// and the connections of `window` against the raw requests.
async fn check_views(tc: &TestCollector, reqs: &[Req], window: &str, resolution: &str) {
    let overview = tc.get_ok(&format!("/v1/services?window={window}")).await;
    assert_eq!(overview["window"]["resolution"], resolution, "{window}");
    let from = overview["window"]["from_ms"].as_i64().unwrap();
    let inside: Vec<&Req> = reqs.iter().filter(|r| r.ts >= from).collect();
    for s in overview["services"].as_array().unwrap() {
        let name = s["service"].as_str().unwrap();
        let what = format!("{window} overview of {name}");
        let (n, errors, sk) = figures(inside.iter().copied().filter(|r| r.service == name));
        assert!(n > 0, "{what}: no raw data");
        assert_eq!(s["requests"], json!(n), "{what}: requests");
        assert_eq!(s["errors"], json!(errors), "{what}: errors");
        assert_p95(&s["p95_ms"], &sk, &format!("{what}: p95"));

        let stats = tc
            .get_ok(&format!("/v1/services/{name}/stats?window={window}"))
            .await;
        assert_eq!(stats["requests"], json!(n), "{what}: stats requests");
        assert_eq!(stats["errors"], json!(errors), "{what}: stats errors");
        assert_p95(&stats["p95_ms"], &sk, &format!("{what}: stats p95"));
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for r in inside.iter().filter(|r| r.service == name) {
            *classes.entry(format!("{}xx", r.status / 100)).or_default() += 1;
        }
        assert_eq!(
            stats["status_classes"],
            json!(classes),
            "{what}: status classes"
        );
        // The service timeseries, step by step.
        let ts = tc
            .get_ok(&format!(
                "/v1/services/{name}/timeseries?metric=requests&step={resolution}&window={window}"
            ))
            .await;
        let step = ts["step_ms"].as_i64().unwrap();
        let mut steps = 0;
        for p in ts["points"].as_array().unwrap() {
            let t = p["t"].as_i64().unwrap();
            let want = inside
                .iter()
                .filter(|r| r.service == name && r.ts >= t && r.ts < t + step)
                .count();
            assert_eq!(p["value"], json!(want as f64), "{what}: timeseries at {t}");
            steps += want;
        }
        assert_eq!(steps as u64, n, "{what}: timeseries steps add up");
        // The routes table (route series) adds up to the same total.
        let routes = tc
            .get_ok(&format!("/v1/services/{name}/routes?window={window}"))
            .await;
        let sum: u64 = routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, n, "{what}: routes add up to the total");
    }
    let conns = tc.get_ok(&format!("/v1/connections?window={window}")).await;
    let mut want: BTreeMap<(&str, &str), Vec<&Req>> = BTreeMap::new();
    for r in inside.iter().filter(|r| !r.caller.is_empty()) {
        want.entry((r.caller, r.service)).or_default().push(r);
    }
    let edges = conns["edges"].as_array().unwrap();
    assert_eq!(edges.len(), want.len(), "{window}: edges");
    for e in edges {
        let key = (e["caller"].as_str().unwrap(), e["callee"].as_str().unwrap());
        let (n, errors, sk) = figures(want[&key].iter().copied());
        let what = format!("{window} edge {key:?}");
        assert_eq!(e["requests"], json!(n), "{what}: requests");
        assert_eq!(e["errors"], json!(errors), "{what}: errors");
        assert_p95(&e["p95_ms"], &sk, &format!("{what}: p95"));
    }
}

#[tokio::test]
async fn service_views_equal_the_raw_requests_at_every_resolution() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    let reqs = requests(21, 12_000, now);
    post_requests(&tc, &reqs).await;
    // Minutes straight from ingest.
    check_views(&tc, &reqs, "15m", "1m").await;
    // Five-minute and hour buckets from the rollup job, totals included.
    tc.collector.run_jobs_once(now_ms()).await.expect("rollup");
    check_views(&tc, &reqs, "15m", "1m").await;
    check_views(&tc, &reqs, "2h", "5m").await;
    check_views(&tc, &reqs, "12h", "1h").await;
}

#[tokio::test]
async fn senders_cannot_write_an_empty_method_or_route() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms() as u64;
    let mut sk = Sketch::new();
    sk.record(5.0);
    let aggregate = |method: &str, route: &str| {
        json!({
            "service": "api", "instance": "i", "batch_id": format!("b-{method}-{route}"),
            "start_unix_ms": now, "interval_ms": 10_000, "apdex_t_ms": 500.0,
            "routes": [{ "method": method, "route": route, "status_class": 2, "count": 1,
                "errors": 0, "satisfied": 1, "tolerating": 0,
                "duration_ms": sk }],
        })
    };
    for (method, route, code) in [
        ("", "/a", "invalid_method"),
        ("GET", "", "missing_field"),
        ("", "", "invalid_method"),
    ] {
        let (status, body) = tc.post("/v1/ingest", &aggregate(method, route)).await;
        assert_eq!(status, 400, "{method:?} {route:?}: {body}");
        assert_eq!(body["reason"], code, "{body}");
    }
    for (rec, code) in [
        (
            json!({ "method": "", "route": "/a", "status": 200, "duration_ms": 1.0 }),
            "invalid_method",
        ),
        (
            json!({ "method": "GET", "route": "", "status": 200, "duration_ms": 1.0 }),
            "missing_field",
        ),
        (
            json!({ "method": "GET", "route": "", "path": "", "status": 200, "duration_ms": 1.0 }),
            "missing_field",
        ),
    ] {
        let (status, body) = tc
            .post(
                "/v1/requests",
                &json!({ "service": "api", "requests": [rec] }),
            )
            .await;
        assert_eq!(status, 400, "{rec}: {body}");
        assert_eq!(body["reason"], code, "{body}");
    }
    // Nothing was stored: the service does not exist.
    let (status, _) = tc.get("/v1/services/api/stats").await;
    assert_eq!(status, 404);
}

fn route_bucket(
    res: Resolution,
    start: i64,
    service: &str,
    route: &str,
    class: u8,
    n: u64,
) -> Bucket {
    let mut sk = Sketch::new();
    for i in 0..n {
        sk.record(1.0 + (i * 37 % 400) as f64 * (class as f64));
    }
    Bucket {
        tenant: "acme".into(),
        resolution: res,
        start_ms: start,
        key: SeriesKey {
            service: service.into(),
            method: "GET".into(),
            route: route.into(),
            status_class: class,
            caller: if class == 5 {
                "web".into()
            } else {
                String::new()
            },
        },
        stats: BucketStats {
            count: n,
            errors: if class == 5 { n } else { 0 },
            satisfied: n / 2,
            tolerating: n / 4,
            duration_ms: sk,
            last_seen_ms: start,
        },
    }
}

#[tokio::test]
async fn a_database_from_before_totals_gets_them_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db").display().to_string();
    let now = now_ms();
    let mut routes: Vec<Bucket> = Vec::new();
    {
        // The schema before total series, and route rows only, as a
        // collector of that time left them, at every resolution.
        let store = SqliteStore::open_before_totals(&path).await.expect("open");
        let minute = Resolution::Minute.floor(now);
        for (res, starts) in [
            (Resolution::Minute, vec![minute - 60_000, minute - 300_000]),
            (
                Resolution::FiveMinutes,
                vec![Resolution::FiveMinutes.floor(now) - 600_000],
            ),
            (
                Resolution::Hour,
                vec![
                    Resolution::Hour.floor(now) - 3_600_000,
                    Resolution::Hour.floor(now) - 5 * 3_600_000,
                ],
            ),
        ] {
            for start in starts {
                let mut period = Vec::new();
                for (service, route, class, n) in [
                    ("api", "/a", 2, 10),
                    ("api", "/b", 2, 7),
                    ("api", "/b", 5, 3),
                    ("db", "/q", 2, 4),
                    ("db", "/q", 4, 2),
                ] {
                    period.push(route_bucket(res, start, service, route, class, n));
                }
                routes.extend(period.clone());
                if res == Resolution::Minute {
                    for service in ["api", "db"] {
                        let buckets = period
                            .iter()
                            .filter(|b| b.key.service == service)
                            .cloned()
                            .collect();
                        store
                            .ingest(IngestWrite {
                                tenant: "acme".into(),
                                service: service.into(),
                                batch_id: None,
                                received_ms: now,
                                buckets,
                                samples: vec![],
                                custom: vec![],
                            })
                            .await
                            .expect("ingest");
                    }
                } else {
                    let p = DirtyPeriod {
                        resolution: res,
                        tenant: "acme".into(),
                        start_ms: start,
                        generation: 0,
                    };
                    store.write_rollup(p, period).await.expect("rollup");
                }
            }
        }
    }
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let totals: i64 = conn
            .query_row("SELECT count(*) FROM buckets WHERE method = ''", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(totals, 0, "no totals before the migration");
        // The coarse rows above are written as they are, not rolled up
        // from the minutes: clear the minutes' dirty marks, so reads take
        // each resolution's rows as stored (a marked period would be read
        // from its minutes, every window being fresh).
        conn.execute("DELETE FROM dirty_periods", [])
            .expect("clear dirty marks");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert!(version < SqliteStore::SCHEMA_VERSION, "an old schema");
    }
    let tc = TestCollector::start(CollectorConfig {
        store: format!("sqlite://{path}"),
        ..Default::default()
    })
    .await;
    for (window, resolution) in [("15m", "1m"), ("1h", "5m"), ("12h", "1h")] {
        let overview = tc.get_ok(&format!("/v1/services?window={window}")).await;
        assert_eq!(overview["window"]["resolution"], resolution);
        let from = overview["window"]["from_ms"].as_i64().unwrap();
        let res = match resolution {
            "1m" => Resolution::Minute,
            "5m" => Resolution::FiveMinutes,
            _ => Resolution::Hour,
        };
        for service in ["api", "db"] {
            let mine: Vec<&Bucket> = routes
                .iter()
                .filter(|b| b.resolution == res && b.start_ms >= from && b.key.service == service)
                .collect();
            let mut sum = BucketStats::default();
            for b in &mine {
                sum.merge(&b.stats);
            }
            assert!(sum.count > 0, "{window} {service}: test data in the window");
            let s = overview["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == service)
                .unwrap();
            let what = format!("{window} {service}");
            assert_eq!(s["requests"], json!(sum.count), "{what}: requests");
            assert_eq!(s["errors"], json!(sum.errors), "{what}: errors");
            assert_p95(&s["p95_ms"], &sum.duration_ms, &what);
        }
    }
    let version = SqliteStore::open(&path)
        .await
        .expect("reopen")
        .schema_version()
        .await
        .expect("version");
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
}

/// Posts one request per route to service `shop`; returns how many overflowed.
async fn post_routes(tc: &TestCollector, routes: &[&str]) -> u64 {
    let requests: Vec<Value> = routes
        .iter()
        .map(|r| json!({"method": "GET", "route": r, "status": 200, "duration_ms": 1.0}))
        .collect();
    let body = json!({"service": "shop", "requests": requests});
    let (status, answer) = tc.post("/v1/requests", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["overflowed"].as_u64().unwrap()
}

#[tokio::test]
async fn the_route_limit_after_a_restart_counts_routes_not_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("v.db").display()),
        limits: vitals_collector::Limits {
            max_routes_per_service: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let tc = TestCollector::start(config.clone()).await;
    assert_eq!(post_routes(&tc, &["/b", "/a"]).await, 0);
    drop(tc.stop().await);
    // The restarted collector seeds the limit from the stored route
    // series: both routes, and no slot taken by the total series.
    let tc = TestCollector::start(config).await;
    assert_eq!(
        post_routes(&tc, &["/a", "/b"]).await,
        0,
        "known routes keep their series"
    );
    assert_eq!(
        post_routes(&tc, &["/c"]).await,
        1,
        "a third route overflows"
    );
    let routes = tc.get_ok("/v1/services/shop/routes").await;
    let mut names: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["/a", "/b", "__overflow__"]);
}
