//! The state machine over real data, with the rounds' times chosen by the
//! test: pending → firing after `for`, no flapping with `keep_firing_for`,
//! resolved, `no_data`, the health rule, the history, and a restart in
//! each state.

use super::*;

const S: i64 = 1_000;
const M: i64 = 60_000;

fn errors_rule(name: &str, extra: &str) -> String {
    format!(
        r#"
        [[alerting.rules]]
        tenant = "acme"
        name = "{name}"
        service = "checkout"
        signal = "error_rate"
        op = ">"
        threshold = 0.1
        {extra}
        "#
    )
}

#[tokio::test]
async fn pending_then_firing_after_for_then_resolved_with_history() {
    let toml = format!(
        "[alerting]\nhealth_rule = false\n{}",
        errors_rule(
            "checkout_errors",
            r#"window = "5m"
            for = "1m"
            labels = { severity = "page" }
            annotations = { summary = "error rate {{ $value }} over {{ $threshold }} on {{ $labels.service }}" }"#
        )
    );
    let tc = TestCollector::start(config_with(&toml)).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 80, 20, t).await;
    let a = tc.collector.alerting();
    for (at, want) in [
        (t + 10 * S, "pending"),
        (t + 40 * S, "pending"),
        (t + 70 * S, "firing"),
        (t + 4 * M, "firing"),
    ] {
        a.run_once(at).await.expect("round");
        let r = rule_state(&tc, "checkout_errors", "checkout").await;
        assert_eq!(r["state"], want, "at +{} s: {r}", (at - t) / S);
        assert_eq!(r["value"], 0.2, "{r}");
    }
    let r = rule_state(&tc, "checkout_errors", "checkout").await;
    assert_eq!(r["active_ms"], t + 10 * S);
    assert_eq!(r["starts_ms"], t + 70 * S);
    assert_eq!(r["source"], "config");
    assert_eq!(
        r["current_annotations"]["summary"],
        "error rate 0.2 over 0.1 on checkout"
    );
    // The window moves past the errors: the value is gone, the alert resolves.
    a.run_once(t + 7 * M).await.expect("round");
    let r = rule_state(&tc, "checkout_errors", "checkout").await;
    assert_eq!(r["state"], "resolved", "{r}");
    assert_eq!(r["value"], Value::Null);
    assert_eq!(r["ends_ms"], t + 7 * M);

    let all = history(&tc, "").await;
    let steps: Vec<(&str, &str, i64)> = all
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["at_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("firing", "resolved", t + 7 * M),
            ("pending", "firing", t + 70 * S),
            ("inactive", "pending", t + 10 * S),
        ],
        "newest first"
    );
    assert_eq!(all[1]["labels"]["severity"], "page");
    assert_eq!(all[1]["labels"]["alertname"], "checkout_errors");
    assert_eq!(all[1]["value"], 0.2);
    assert_eq!(history(&tc, "?state=firing").await.len(), 1);
    assert_eq!(history(&tc, "?service=other").await.len(), 0);
    assert_eq!(history(&tc, "?service=checkout&limit=2").await.len(), 2);
    let since = history(&tc, &format!("?since={}", t + 71 * S)).await;
    assert_eq!(since.len(), 1);
    assert_eq!(since[0]["to"], "resolved");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_transitions_total{to="firing"}"#
        ),
        1
    );
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_rounds_total{outcome="ok"}"#
        ),
        5
    );
    // History is kept as long as the hour rollups (400 days by default).
    tc.collector
        .run_jobs_once(t + 399 * 86_400_000)
        .await
        .expect("jobs");
    assert_eq!(history(&tc, "").await.len(), 3);
    tc.collector
        .run_jobs_once(t + 401 * 86_400_000)
        .await
        .expect("jobs");
    assert_eq!(
        history(&tc, "").await.len(),
        0,
        "dropped with the hour buckets"
    );
}

#[tokio::test]
async fn keep_firing_for_stops_flapping_where_a_plain_rule_flaps() {
    let toml = format!(
        "[alerting]\nhealth_rule = false\n{}{}",
        errors_rule("kept", "window = \"1m\"\nkeep_firing_for = \"2m\""),
        errors_rule("plain", "window = \"1m\""),
    );
    let tc = TestCollector::start(config_with(&toml)).await;
    let t = base_minute();
    // Minute 0: 20 % errors; minute 1: healthy; minute 2: errors again.
    traffic_at(&tc, "checkout", 80, 20, t).await;
    traffic_at(&tc, "checkout", 1000, 0, t + M).await;
    traffic_at(&tc, "checkout", 0, 400, t + 2 * M).await;
    let a = tc.collector.alerting();
    let mut kept = Vec::new();
    let mut plain = Vec::new();
    for minute in 0..6 {
        a.run_once(t + minute * M + 30 * S).await.expect("round");
        kept.push(rule_state(&tc, "kept", "checkout").await["state"].clone());
        plain.push(rule_state(&tc, "plain", "checkout").await["state"].clone());
    }
    assert_eq!(
        kept,
        ["firing", "firing", "firing", "firing", "firing", "resolved"],
        "kept firing through the healthy minute, resolved 2 m after it last held"
    );
    assert_eq!(
        plain,
        [
            "firing", "resolved", "firing", "firing", "resolved", "resolved"
        ]
    );
    let fired = |rule: &str, all: &[Value]| {
        all.iter()
            .filter(|e| e["rule"] == rule && e["to"] == "firing")
            .count()
    };
    let all = history(&tc, "").await;
    assert_eq!(fired("kept", &all), 1);
    assert_eq!(fired("plain", &all), 2);
}

#[tokio::test]
async fn no_data_fires_when_the_window_is_empty_and_for_unknown_services() {
    let toml = r#"
        [alerting]
        health_rule = false
        [[alerting.rules]]
        tenant = "acme"
        name = "silent"
        service = "checkout"
        signal = "no_data"
        window = "1m"
        [[alerting.rules]]
        tenant = "acme"
        name = "never_seen"
        service = "ghost"
        signal = "no_data"
        window = "1m"
        [[alerting.rules]]
        tenant = "acme"
        name = "slow"
        service = "checkout"
        signal = "p95_ms"
        op = ">"
        threshold = 5.0
        window = "1m"
    "#;
    let tc = TestCollector::start(config_with(toml)).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 10, 0, t).await;
    let a = tc.collector.alerting();
    a.run_once(t + 30 * S).await.expect("round");
    assert_eq!(
        rule_state(&tc, "silent", "checkout").await["state"],
        "inactive"
    );
    assert_eq!(rule_state(&tc, "silent", "checkout").await["value"], 10.0);
    assert_eq!(
        rule_state(&tc, "never_seen", "ghost").await["state"],
        "firing"
    );
    assert_eq!(rule_state(&tc, "slow", "checkout").await["state"], "firing");
    a.run_once(t + 10 * M).await.expect("round");
    let silent = rule_state(&tc, "silent", "checkout").await;
    assert_eq!(silent["state"], "firing", "{silent}");
    assert_eq!(silent["value"], 0.0);
    // A percentile without requests has no value: it resolves, not fires.
    let slow = rule_state(&tc, "slow", "checkout").await;
    assert_eq!(slow["state"], "resolved", "{slow}");
    assert_eq!(slow["value"], Value::Null);
}

#[tokio::test]
async fn the_health_rule_follows_each_service_and_can_be_switched_off() {
    let tc = TestCollector::start(config_with("[alerting]\nhealth_window = \"1m\"")).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 40, 60, t).await;
    traffic_at(&tc, "search", 100, 0, t).await;
    let a = tc.collector.alerting();
    a.run_once(t + 30 * S).await.expect("round");
    let down = rule_state(&tc, "service_health", "checkout").await;
    assert_eq!(down["state"], "firing", "{down}");
    assert_eq!(down["source"], "builtin");
    assert_eq!(down["value"], 2.0);
    assert_eq!(down["current_annotations"]["health"], "down");
    assert_eq!(
        down["current_annotations"]["summary"],
        "service checkout is down"
    );
    assert_eq!(
        rule_state(&tc, "service_health", "search").await["state"],
        "inactive"
    );
    // Firing first in the list.
    let list = tc.get_ok("/v1/alert-rules").await;
    assert_eq!(list["rules"][0]["service"], "checkout");
    a.run_once(t + 4 * M).await.expect("round");
    assert_eq!(
        rule_state(&tc, "service_health", "checkout").await["state"],
        "resolved"
    );

    let off = TestCollector::start(config_with("[alerting]\nhealth_rule = false")).await;
    traffic_at(&off, "checkout", 40, 60, t).await;
    off.collector
        .alerting()
        .run_once(t + 30 * S)
        .await
        .expect("round");
    assert_eq!(
        off.get_ok("/v1/alert-rules").await["rules"],
        json!([]),
        "no built-in rule when switched off"
    );
}

/// A collector on the SQLite file `path` with `toml`'s alerting.
async fn open_at(path: &std::path::Path, toml: &str) -> TestCollector {
    let mut c = config_with(toml);
    c.store = format!("sqlite://{}", path.display());
    TestCollector::start(c).await
}

/// Stops `tc` and opens a new collector on the same file.
async fn restart(tc: TestCollector, path: &std::path::Path, toml: &str) -> TestCollector {
    tc.stop().await;
    open_at(path, toml).await
}

#[tokio::test]
async fn a_restart_in_each_state_continues_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let toml = format!(
        "[alerting]\nhealth_rule = false\n{}{}",
        errors_rule("errors", "for = \"1m\""),
        // Never met: stays inactive across restarts.
        r#"
        [[alerting.rules]]
        tenant = "acme"
        name = "calm"
        service = "checkout"
        signal = "error_rate"
        op = ">"
        threshold = 0.9
        "#
    );
    let t = base_minute();
    let tc = open_at(&path, &toml).await;
    traffic_at(&tc, "checkout", 80, 20, t).await;
    tc.collector
        .alerting()
        .run_once(t + 10 * S)
        .await
        .expect("round");
    assert_eq!(
        rule_state(&tc, "errors", "checkout").await["state"],
        "pending"
    );
    assert_eq!(
        rule_state(&tc, "calm", "checkout").await["state"],
        "inactive"
    );

    // Pending across a restart: `for` counts from the first pending round.
    let tc = restart(tc, &path, &toml).await;
    let r = rule_state(&tc, "errors", "checkout").await;
    assert_eq!(r["state"], "pending", "before any round: {r}");
    assert_eq!(
        rule_state(&tc, "calm", "checkout").await["state"],
        "inactive"
    );
    tc.collector
        .alerting()
        .run_once(t + 40 * S)
        .await
        .expect("round");
    assert_eq!(
        rule_state(&tc, "errors", "checkout").await["state"],
        "pending"
    );
    let tc = restart(tc, &path, &toml).await;
    tc.collector
        .alerting()
        .run_once(t + 70 * S)
        .await
        .expect("round");
    let r = rule_state(&tc, "errors", "checkout").await;
    assert_eq!(r["state"], "firing", "{r}");
    assert_eq!(r["active_ms"], t + 10 * S);

    // Firing across a restart: still firing, no second firing.
    let tc = restart(tc, &path, &toml).await;
    assert_eq!(
        rule_state(&tc, "errors", "checkout").await["state"],
        "firing"
    );
    tc.collector
        .alerting()
        .run_once(t + 90 * S)
        .await
        .expect("round");
    let r = rule_state(&tc, "errors", "checkout").await;
    assert_eq!(
        (r["state"].as_str(), r["starts_ms"].as_i64()),
        (Some("firing"), Some(t + 70 * S))
    );

    // Resolved across a restart: stays resolved, no new change.
    tc.collector
        .alerting()
        .run_once(t + 7 * M)
        .await
        .expect("round");
    let tc = restart(tc, &path, &toml).await;
    assert_eq!(
        rule_state(&tc, "errors", "checkout").await["state"],
        "resolved"
    );
    tc.collector
        .alerting()
        .run_once(t + 8 * M)
        .await
        .expect("round");
    assert_eq!(
        rule_state(&tc, "errors", "checkout").await["state"],
        "resolved"
    );

    let all = history(&tc, "?service=checkout").await;
    let steps: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("firing", "resolved"),
            ("pending", "firing"),
            ("inactive", "pending")
        ],
        "each change once, whatever the restarts"
    );
    tc.stop().await;
}

#[tokio::test]
async fn a_custom_metric_rule_reads_the_gauge_summed_over_label_sets() {
    let toml = r#"
        [alerting]
        health_rule = false
        [[alerting.rules]]
        tenant = "acme"
        name = "queue_deep"
        service = "worker"
        signal = "custom:queue_depth"
        op = ">"
        threshold = 10.0
        window = "5m"
        annotations = { summary = "{{ $value }} jobs waiting" }
    "#;
    let tc = TestCollector::start(config_with(toml)).await;
    let t = base_minute();
    let body = json!({
        "batch_id": "custom-1",
        "service": "worker",
        "instance": "w-1",
        "start_unix_ms": t,
        "interval_ms": 10_000,
        "routes": [],
        "custom": [
            { "name": "queue_depth", "kind": "gauge", "labels": { "queue": "a" }, "value": 7.0 },
            { "name": "queue_depth", "kind": "gauge", "labels": { "queue": "b" }, "value": 5.0 },
            { "name": "other", "kind": "gauge", "labels": {}, "value": 100.0 },
        ],
    });
    let (status, answer) = tc.post("/v1/ingest", &body).await;
    assert_eq!(status, 200, "{answer}");
    let a = tc.collector.alerting();
    a.run_once(t + 30 * S).await.expect("round");
    let r = rule_state(&tc, "queue_deep", "worker").await;
    assert_eq!(
        (r["state"].as_str(), r["value"].as_f64()),
        (Some("firing"), Some(12.0)),
        "{r}"
    );
    assert_eq!(r["current_annotations"]["summary"], "12 jobs waiting");
    // Past the window there is no value: resolved.
    a.run_once(t + 10 * M).await.expect("round");
    let r = rule_state(&tc, "queue_deep", "worker").await;
    assert_eq!(
        (r["state"].as_str(), r["value"].as_f64()),
        (Some("resolved"), None),
        "{r}"
    );
}
