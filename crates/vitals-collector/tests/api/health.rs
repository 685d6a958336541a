//! Health: each service is judged by its own policy (Apdex T, p95
//! objective, error rates, staleness), falling back to the defaults.

use crate::common::*;
use serde_json::{Value, json};
use vitals_collector::{CollectorConfig, now_ms};

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
