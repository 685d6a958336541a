//! Several collectors as one: three `Collector`s on one PostgreSQL schema
//! and one Redis hot tier, batches spread over them at once. The limits
//! on services per tenant and routes per service hold for the group
//! (the store admits, atomically), and every collector answers the same.
//! Against the real servers (`VITALS_TEST_POSTGRES`, `VITALS_TEST_REDIS`);
//! a missing server fails unless `VITALS_SKIP_EXTERNAL=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod external;

use external::TestSchema;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use vitals_collector::model::{MemberKind, MemberSet};
use vitals_collector::store::Store;
use vitals_collector::{CollectorConfig, Limits, now_ms};

/// Services a tenant may have, and routes a service may have.
const MAX_SERVICES: usize = 3;
const MAX_ROUTES: usize = 4;

fn batch(service: &str, routes: &[String], id: &str, now: i64) -> Value {
    let requests: Vec<Value> = routes
        .iter()
        .map(|r| {
            json!({"method": "GET", "route": r, "status": 200, "duration_ms": 10.0,
                   "timestamp_ms": now - 1_000})
        })
        .collect();
    json!({"service": service, "instance": "i-1", "batch_id": id, "requests": requests})
}

/// An OTLP/JSON body: five requests of `route` as a delta histogram.
fn otlp(service: &str, route: &str) -> Value {
    let now_ns = now_ms() as u64 * 1_000_000;
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [{
            "name": "http.server.request.duration", "unit": "s",
            "histogram": {"aggregationTemporality": 1, "dataPoints": [{
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.route", "value": {"stringValue": route}},
                    {"key": "http.response.status_code", "value": {"intValue": "200"}}],
                "startTimeUnixNano": (now_ns - 1_000_000_000).to_string(),
                "timeUnixNano": now_ns.to_string(),
                "count": "5", "sum": 0.25,
                "bucketCounts": ["0", "5", "0"], "explicitBounds": [0.01, 0.1]}]}}]}]}]})
}

#[tokio::test]
async fn three_collectors_on_one_postgres_and_redis_admit_as_one() {
    let Some(schema) = TestSchema::create("scale").await else {
        return;
    };
    let Some(redis) = external::redis_url().await else {
        return;
    };
    let prefix = format!("{}:", external::random_name("vitals_test_scale"));
    let config = CollectorConfig {
        store: schema.url(),
        cache: Some(format!("{redis}/?prefix={prefix}")),
        limits: Limits {
            max_services_per_tenant: MAX_SERVICES,
            max_routes_per_service: MAX_ROUTES,
            ..Limits::default()
        },
        ..CollectorConfig::default()
    };
    let mut collectors = Vec::new();
    for _ in 0..3 {
        collectors.push(Arc::new(common::TestCollector::start(config.clone()).await));
    }
    let now = now_ms();

    // Ten new services at once, spread over the three collectors: exactly
    // the limit is admitted, the others refused with the limit's reason.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = collectors[i % 3].clone();
        let body = batch(&format!("svc-{i}"), &["/a".into()], &format!("s{i}"), now);
        tasks.push(tokio::spawn(
            async move { c.post("/v1/requests", &body).await },
        ));
    }
    let mut admitted = BTreeSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, reply) = t.await.expect("task");
        match status {
            200 => {
                admitted.insert(format!("svc-{i}"));
            }
            400 => assert_eq!(reply["reason"], "too_many_services", "{reply}"),
            other => panic!("svc-{i}: {other} {reply}"),
        }
    }
    assert_eq!(admitted.len(), MAX_SERVICES, "{admitted:?}");
    // An admitted service is admitted on every collector; a refused one
    // everywhere.
    let first = admitted.iter().next().expect("one").clone();
    for (i, c) in collectors.iter().enumerate() {
        let (status, reply) = c
            .post(
                "/v1/requests",
                &batch(&first, &["/a".into()], &format!("again{i}"), now),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        let (status, reply) = c
            .post(
                "/v1/requests",
                &batch("svc-new", &["/a".into()], &format!("new{i}"), now),
            )
            .await;
        assert_eq!(
            (status, reply["reason"].as_str()),
            (400, Some("too_many_services"))
        );
    }

    // Twelve routes of one service, one batch each, at once over the
    // three collectors: exactly the limit keep their name, the rest are
    // folded into the overflow route, and no request is lost.
    let mut tasks = Vec::new();
    for r in 0..12 {
        let c = collectors[r % 3].clone();
        let body = batch(
            &first,
            &[format!("/r{r}"), format!("/r{r}")],
            &format!("r{r}"),
            now,
        );
        tasks.push(tokio::spawn(
            async move { c.post("/v1/requests", &body).await },
        ));
    }
    for t in tasks {
        let (status, reply) = t.await.expect("task");
        assert_eq!(status, 200, "{reply}");
    }
    // OTLP routes count against the same shared set: six new routes of a
    // second service, one request each, spread over the collectors.
    let second = admitted.iter().nth(1).expect("two").clone();
    let mut tasks = Vec::new();
    for r in 0..6 {
        let c = collectors[r % 3].clone();
        let body = serde_json::to_vec(&otlp(&second, &format!("/o{r}"))).unwrap();
        tasks.push(tokio::spawn(async move {
            c.post_raw("/v1/metrics", body, &[("content-type", "application/json")])
                .await
        }));
    }
    for t in tasks {
        let (status, reply) = t.await.expect("task");
        assert_eq!(status, 200, "{reply}");
    }
    for c in &collectors {
        let routes = c
            .get_ok(&format!("/v1/services/{second}/routes?window=15m"))
            .await;
        let list = routes["routes"].as_array().expect("routes");
        let named = list.iter().filter(|r| r["route"] != "__overflow__").count();
        let total: u64 = list
            .iter()
            .map(|r| r["requests"].as_u64().unwrap_or(0))
            .sum();
        // "/a" from the first batches and three of the six.
        assert_eq!((named, total), (MAX_ROUTES, 1 + 6 * 5), "{routes}");
    }

    let mut answers = Vec::new();
    for c in &collectors {
        let services = c.get_ok("/v1/services?window=15m").await;
        let names: BTreeSet<String> = services["services"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["service"].as_str().expect("name").to_string())
            .collect();
        assert_eq!(names, admitted);
        let routes = c
            .get_ok(&format!("/v1/services/{first}/routes?window=15m"))
            .await;
        let mut list: Vec<(String, u64)> = routes["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|r| {
                (
                    r["route"].as_str().expect("route").to_string(),
                    r["requests"].as_u64().expect("requests"),
                )
            })
            .collect();
        list.sort();
        let named = list.iter().filter(|(r, _)| r != "__overflow__").count();
        // "/a" (from the first batches) and three of the twelve.
        assert_eq!(named, MAX_ROUTES, "{list:?}");
        let total: u64 = list.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 4 + 24, "{list:?}");
        let stats = c
            .get_ok(&format!("/v1/services/{first}/stats?window=15m"))
            .await;
        answers.push((
            names,
            list,
            stats["requests"].clone(),
            stats["p95_ms"].clone(),
        ));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    for c in collectors {
        Arc::into_inner(c).expect("sole owner").stop().await;
    }
    let (keys, mut conn) = external::redis_keys(&redis, &prefix).await;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
    schema.drop().await;
}

#[tokio::test]
async fn postgres_admits_into_a_shared_set_atomically_and_seeds_it_once() {
    let Some(schema) = TestSchema::create("admit").await else {
        return;
    };
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(schema.open().await.expect("open")),
        Arc::new(schema.open().await.expect("open")),
    ];
    let set = |owner: &str| MemberSet {
        tenant: "t".into(),
        kind: MemberKind::Routes,
        owner: owner.into(),
    };
    // The seed fills an empty set once; a later seed is ignored.
    let a = stores[0]
        .admit(set("api"), vec!["/x".into(), "/y".into()], vec![], 5)
        .await
        .expect("admit")
        .expect("postgres shares sets");
    assert_eq!((a.size, a.full), (2, None));
    let a = stores[1]
        .admit(set("api"), vec!["/z".into()], vec!["/x".into()], 5)
        .await
        .expect("admit")
        .expect("shared");
    assert_eq!((a.admitted, a.size), (vec!["/x".to_string()], 2));
    // Forty names at once from two stores: exactly three more fit.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = stores[i % 2].clone();
        let set = set("api");
        tasks.push(tokio::spawn(async move {
            s.admit(set, vec![], vec![format!("/n{i}")], 5)
                .await
                .expect("admit")
                .expect("shared")
        }));
    }
    let mut got = 0;
    for t in tasks {
        got += t.await.expect("task").admitted.len();
    }
    assert_eq!(got, 3);
    let last = stores[0]
        .admit(set("api"), vec![], vec!["/late".into(), "/x".into()], 5)
        .await
        .expect("admit")
        .expect("shared");
    assert_eq!(last.admitted, vec!["/x".to_string()]);
    let full = last.full.expect("full");
    assert_eq!(full.len(), 5, "{full:?}");
    // Sets are per owner and kind.
    let other = stores[1]
        .admit(set("web"), vec![], vec!["/x".into()], 1)
        .await
        .expect("admit")
        .expect("shared");
    assert_eq!((other.admitted.len(), other.size), (1, 1));
    schema.drop().await;
}
