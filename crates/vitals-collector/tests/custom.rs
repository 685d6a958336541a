//! Custom metrics end to end over HTTP: raw pushes in, exact answers out
//! (two instances, a counter reset, gauge min/max), rollups, tenancy and
//! hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use vitals_collector::model::Resolution;
use vitals_collector::{CollectorConfig, Limits, Role, now_ms};

/// One push of custom metrics whose interval ends at `at`.
fn push(service: &str, instance: &str, id: &str, at: i64, custom: Value) -> Value {
    json!({
        "batch_id": id,
        "service": service,
        "instance": instance,
        "start_unix_ms": at - 5_000,
        "interval_ms": 5_000,
        "routes": [],
        "custom": custom,
    })
}

fn counter(v: f64) -> Value {
    json!([{ "name": "orders_total", "kind": "counter", "labels": { "shop": "eu" }, "value": v }])
}

fn gauge(v: f64) -> Value {
    json!([{ "name": "queue_depth", "kind": "gauge", "value": v }])
}

/// The raw pushes: `(instance, at offset from m0, custom)`.
fn raw(m0: i64) -> Vec<(&'static str, i64, Value)> {
    const M: i64 = 60_000;
    vec![
        // Counter, instance 1: 100 → 160 → reset → 10, 30.
        ("i-1", m0 + 30_000, counter(100.0)),
        ("i-1", m0 + 5 * M + 30_000, counter(160.0)),
        ("i-1", m0 + 10 * M + 10_000, counter(10.0)),
        ("i-1", m0 + 10 * M + 40_000, counter(30.0)),
        // Counter, instance 2: 5 → 20, 65.
        ("i-2", m0 + 30_000, counter(5.0)),
        ("i-2", m0 + 10 * M + 20_000, counter(20.0)),
        ("i-2", m0 + 10 * M + 50_000, counter(65.0)),
        // Gauge: instance 1 says 4 then 1 in one minute, later 7; instance 2 says -2.
        ("i-1", m0 + 30_000, gauge(4.0)),
        ("i-1", m0 + 40_000, gauge(1.0)),
        ("i-1", m0 + 5 * M + 30_000, gauge(7.0)),
        ("i-2", m0 + 5 * M + 10_000, gauge(-2.0)),
    ]
}

async fn push_all(tc: &TestCollector, service: &str, m0: i64) {
    for (n, (instance, at, custom)) in raw(m0).into_iter().enumerate() {
        let (status, body) = tc
            .post(
                "/v1/ingest",
                &push(service, instance, &format!("b{n}"), at, custom),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["custom"], json!(1), "{body}");
    }
}

fn metric<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn span_secs(body: &Value) -> f64 {
    let w = &body["window"];
    (w["to_ms"].as_i64().unwrap() - w["from_ms"].as_i64().unwrap()) as f64 / 1000.0
}

fn values_at(series: &Value, m0: i64) -> Vec<Value> {
    let points = series["points"].as_array().expect("points");
    (0..3)
        .map(|k| {
            let t = m0 + k * 300_000;
            points
                .iter()
                .find(|p| p["t"] == t)
                .map(|p| p["value"].clone())
                .unwrap_or_else(|| panic!("no point at {t}: {series}"))
        })
        .collect()
}

/// Checks both endpoints for a window answered at `res`.
async fn check_answers(tc: &TestCollector, window: &str, res: &str, m0: i64) {
    let list = tc
        .get_ok(&format!("/v1/services/shop/custom?window={window}"))
        .await;
    assert_eq!(list["window"]["resolution"], res, "{list}");
    let c = metric(&list, "orders_total");
    assert_eq!(c["kind"], "counter");
    assert_eq!(c["labels"], json!({ "shop": "eu" }));
    assert_eq!(c["value"], json!(95.0), "latest 30 + 65");
    assert_eq!(c["instances"], json!(2));
    assert_eq!(
        (c["min"].clone(), c["max"].clone()),
        (json!(5.0), json!(160.0))
    );
    // i-1: +60, then a reset to 30: +30; i-2: +60.
    assert_close(&c["rate_per_sec"], 150.0 / span_secs(&list), 1e-12, "rate");
    let g = metric(&list, "queue_depth");
    assert_eq!(g["kind"], "gauge");
    assert_eq!(g["labels"], json!({}));
    assert_eq!(g["value"], json!(5.0), "latest 7 + -2");
    assert_eq!(
        (g["min"].clone(), g["max"].clone()),
        (json!(-2.0), json!(7.0))
    );
    assert_eq!(g["rate_per_sec"], Value::Null);

    let s = tc
        .get_ok(&format!(
            "/v1/services/shop/custom/orders_total?window={window}&step=5m"
        ))
        .await;
    assert_eq!(s["step_ms"], json!(300_000));
    let series = s["series"].as_array().expect("series");
    assert_eq!(series.len(), 1, "{s}");
    assert_eq!(series[0]["labels"], json!({ "shop": "eu" }));
    assert_eq!(
        values_at(&series[0], m0),
        vec![Value::Null, json!(60.0 / 300.0), json!(90.0 / 300.0)],
        "counter: increase per second per step"
    );
    let s = tc
        .get_ok(&format!(
            "/v1/services/shop/custom/queue_depth?window={window}&step=5m"
        ))
        .await;
    assert_eq!(
        values_at(&s["series"][0], m0),
        vec![json!(1.0), json!(5.0), Value::Null],
        "gauge: sum of each instance's last value per step"
    );
}

#[tokio::test]
async fn custom_metrics_are_answered_exactly_before_and_after_rollup() {
    let tc = TestCollector::start(memory_config()).await;
    let now = now_ms();
    // Three five-minute periods, the last ending before now.
    let m0 = Resolution::FiveMinutes.floor(now) - 30 * 60_000;
    push_all(&tc, "shop", m0).await;
    // A retried batch changes nothing.
    let (status, body) = tc
        .post(
            "/v1/ingest",
            &push("shop", "i-1", "b0", m0 + 11 * 60_000, counter(1e6)),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    // 45 minutes are answered from minute points.
    check_answers(&tc, "45m", "1m", m0).await;
    // Two hours are answered from five-minute rollups.
    tc.collector.run_jobs_once(now_ms()).await.expect("jobs");
    check_answers(&tc, "2h", "5m", m0).await;
    // An unknown metric has no series; an unknown service is a 404.
    let s = tc
        .get_ok("/v1/services/shop/custom/nothing?window=1h")
        .await;
    assert_eq!(s["series"], json!([]));
    let (status, body) = tc.get("/v1/services/nope/custom").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("unknown_service"))
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_custom_metrics() {
    let tc = TestCollector::start(memory_config()).await;
    let m0 = Resolution::FiveMinutes.floor(now_ms()) - 30 * 60_000;
    push_all(&tc, "shop", m0).await;
    let other_ingest = tc
        .collector
        .create_key("other", Role::Ingest)
        .await
        .expect("key");
    let other_read = tc
        .collector
        .create_key("other", Role::Read)
        .await
        .expect("key");
    let get_other = |path: String| {
        let key = other_read.clone();
        let tc = &tc;
        async move { tc.request("GET", &path, Some(&key), &[], vec![]).await }
    };
    // Before it pushes anything, the other tenant does not know "shop".
    let (status, _) = get_other("/v1/services/shop/custom".into()).await;
    assert_eq!(status, 404);
    let body = serde_json::to_vec(&push("shop", "i-1", "b0", m0 + 30_000, gauge(1000.0))).unwrap();
    let (status, answer) = tc
        .request(
            "POST",
            "/v1/ingest",
            Some(&other_ingest),
            &[("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    let (status, list) = get_other("/v1/services/shop/custom?window=45m".into()).await;
    assert_eq!(status, 200);
    assert_eq!(list["metrics"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(metric(&list, "queue_depth")["value"], json!(1000.0));
    // Tenant acme's answers are untouched.
    check_answers(&tc, "45m", "1m", m0).await;
    // Ingest keys cannot read.
    let (status, _) = tc
        .request(
            "GET",
            "/v1/services/shop/custom",
            Some(&tc.ingest_key),
            &[],
            vec![],
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn hostile_custom_input_is_refused_or_dropped_and_counted() {
    let config = CollectorConfig {
        limits: Limits {
            max_custom_series_per_service: 3,
            max_custom_per_batch: 10,
            ..Limits::default()
        },
        ..memory_config()
    };
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let many = |n: usize, from: usize| -> Value {
        (from..from + n)
            .map(|i| json!({ "name": "jobs", "kind": "gauge", "labels": { "k": i.to_string() }, "value": i }))
            .collect()
    };
    // Five series for a limit of three: two dropped, the batch stored.
    let (status, body) = tc
        .post("/v1/ingest", &push("svc", "i-1", "h1", now, many(5, 0)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["custom"].clone(), body["custom_dropped"].clone()),
        (json!(3), json!(2))
    );
    // Known series still pass, new ones do not.
    let (_, body) = tc
        .post("/v1/ingest", &push("svc", "i-2", "h2", now, many(4, 1)))
        .await;
    assert_eq!(
        (body["custom"].clone(), body["custom_dropped"].clone()),
        (json!(2), json!(2))
    );
    let list = tc.get_ok("/v1/services/svc/custom").await;
    assert_eq!(list["metrics"].as_array().map(Vec::len), Some(3), "{list}");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_rejected_total{reason="custom_series_limit"}"#
        ),
        4,
        "{text}"
    );
    // Refused whole batches, each with a clear reason.
    let nan = br#"{"batch_id":"n","service":"svc","instance":"","start_unix_ms":1,"interval_ms":1,"routes":[],"custom":[{"name":"x","kind":"gauge","value":NaN}]}"#;
    let (status, body) = tc
        .post_raw(
            "/v1/ingest",
            nan.to_vec(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("invalid_json"))
    );
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            push("svc", "i", "t1", now, many(11, 0)),
            413,
            "batch_too_large",
        ),
        (
            push(
                "svc",
                "i",
                "t2",
                now,
                json!([{ "name": "", "kind": "gauge", "value": 1 }]),
            ),
            400,
            "missing_field",
        ),
        (
            push(
                "svc",
                "i",
                "t3",
                now,
                json!([{ "name": "x".repeat(200), "kind": "gauge", "value": 1 }]),
            ),
            400,
            "label_too_long",
        ),
        (
            push(
                "svc",
                "i",
                "t4",
                now,
                json!([{ "name": "x", "kind": "summary", "value": 1 }]),
            ),
            400,
            "invalid_json",
        ),
        (
            push("svc", "i", "t5", now + 3_600_000, gauge(1.0)),
            400,
            "timestamp_out_of_range",
        ),
    ];
    for (batch, want_status, reason) in cases {
        let (status, body) = tc.post("/v1/ingest", &batch).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (want_status, Some(reason)),
            "{body}"
        );
    }
    // Query parameters are validated and counted.
    let long = format!("/v1/services/svc/custom/{}", "m".repeat(200));
    for (path, reason) in [
        ("/v1/services/svc/custom?window=abc", "invalid_window"),
        ("/v1/services/svc/custom?step=1m", "unknown_parameter"),
        ("/v1/services/svc/custom/jobs?step=30s", "invalid_step"),
        (
            "/v1/services/svc/custom/jobs?step=2h&window=1h",
            "invalid_step",
        ),
        (
            "/v1/services/svc/custom/jobs?window=1h&window=2h",
            "invalid_query",
        ),
        (long.as_str(), "invalid_metric"),
    ] {
        let (status, body) = tc.get(path).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (400, Some(reason)),
            "{path}: {body}"
        );
    }
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_metric"}"#),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn the_custom_series_limit_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("vitals.db").display()),
        limits: Limits {
            max_custom_series_per_service: 2,
            ..Limits::default()
        },
        ..Default::default()
    };
    let series = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({ "name": n, "kind": "gauge", "value": 1 }))
            .collect()
    };
    let tc = TestCollector::start(config.clone()).await;
    let (_, body) = tc
        .post(
            "/v1/ingest",
            &push("svc", "i", "r1", now_ms(), series(&["a", "b"])),
        )
        .await;
    assert_eq!(body["custom"], json!(2), "{body}");
    drop(tc.stop().await);
    // The new process learns the service's series from the store.
    let tc = TestCollector::start(config).await;
    let (_, body) = tc
        .post(
            "/v1/ingest",
            &push("svc", "i", "r2", now_ms(), series(&["c", "b"])),
        )
        .await;
    assert_eq!(
        (body["custom"].clone(), body["custom_dropped"].clone()),
        (json!(1), json!(1)),
        "{body}"
    );
}
