//! The rules API: who may do what, create, list, replace, delete, and
//! hostile input, each refusal a clear JSON error counted in
//! `vitals_rejected_total{reason}`.

use super::*;

const CONFIG: &str = r#"
    [alerting]
    health_rule = false
    max_rules_per_tenant = 3
    [[alerting.rules]]
    tenant = "acme"
    name = "from_file"
    service = "checkout"
    signal = "rate"
    op = "<"
    threshold = 1.0
"#;

fn rule(name: &str) -> Value {
    json!({
        "name": name,
        "service": "checkout",
        "route": "/pay",
        "method": "POST",
        "signal": "p95_ms",
        "op": ">",
        "threshold": 250,
        "window": "10m",
        "for": "2m",
        "keep_firing_for": "1m",
        "labels": { "severity": "warning" },
        "annotations": { "summary": "p95 {{ $value }} ms" },
    })
}

async fn send(
    tc: &TestCollector,
    method: &str,
    path: &str,
    key: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    tc.request(
        method,
        path,
        Some(key),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

async fn send_json(
    tc: &TestCollector,
    method: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    send(tc, method, path, key, serde_json::to_vec(body).unwrap()).await
}

#[tokio::test]
async fn admin_keys_write_rules_and_read_keys_only_list_them() {
    let tc = TestCollector::start(config_with(CONFIG)).await;
    let admin = admin_key(&tc).await;
    let read = tc.read_key.clone();
    let ingest = tc.ingest_key.clone();
    // Roles.
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &read, &rule("slow")).await;
    assert_eq!((s, v["reason"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, _) = tc
        .request("GET", "/v1/alert-rules", Some(&ingest), &[], vec![])
        .await;
    assert_eq!(s, 403);
    let (s, _) = tc
        .request("GET", "/v1/alert-rules", None, &[], vec![])
        .await;
    assert_eq!(s, 401);
    // Create, then list with a read key and with the admin key.
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &rule("slow")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["rule"]["name"], "slow");
    let listed = tc.get_ok("/v1/alert-rules").await;
    let names: Vec<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from_file", "slow"]);
    let slow = rule_state(&tc, "slow", "checkout").await;
    assert_eq!(slow["source"], "api");
    assert_eq!(slow["for"], "2m");
    assert_eq!(slow["route"], "/pay");
    assert_eq!(slow["threshold"], 250.0);
    assert_eq!(slow["state"], "inactive");
    let (s, _) = tc
        .request("GET", "/v1/alert-rules", Some(&admin), &[], vec![])
        .await;
    assert_eq!(s, 200, "an admin key reads too");
    // Another tenant sees none of it.
    let other = tc.collector.create_key("other", Role::Read).await.unwrap();
    let (_, v) = tc
        .request("GET", "/v1/alert-rules", Some(&other), &[], vec![])
        .await;
    assert_eq!(v["rules"], json!([]));

    // Create again: conflict. Replace: changed. Replace unknown: 404.
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &rule("slow")).await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("rule_exists")));
    let mut changed = rule("slow");
    changed["threshold"] = json!(500);
    let (s, v) = send_json(&tc, "PUT", "/v1/alert-rules/slow", &admin, &changed).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        rule_state(&tc, "slow", "checkout").await["threshold"],
        500.0
    );
    let (s, v) = send_json(&tc, "PUT", "/v1/alert-rules/nope", &admin, &rule("nope")).await;
    assert_eq!((s, v["reason"].as_str()), (404, Some("unknown_rule")));
    let (s, v) = send_json(&tc, "PUT", "/v1/alert-rules/slow", &admin, &rule("fast")).await;
    assert_eq!((s, v["reason"].as_str()), (400, Some("invalid_rule")));
    // The configuration's rule is read-only here.
    for method in ["PUT", "DELETE"] {
        let (s, v) = send_json(
            &tc,
            method,
            "/v1/alert-rules/from_file",
            &admin,
            &rule("from_file"),
        )
        .await;
        assert_eq!(
            (s, v["reason"].as_str()),
            (409, Some("rule_from_config")),
            "{method}"
        );
    }
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &rule("from_file")).await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("rule_from_config")));
    // Delete, twice.
    let (s, v) = send(&tc, "DELETE", "/v1/alert-rules/slow", &admin, vec![]).await;
    assert_eq!((s, v["deleted"].as_str()), (200, Some("slow")));
    let (s, v) = send(&tc, "DELETE", "/v1/alert-rules/slow", &admin, vec![]).await;
    assert_eq!((s, v["reason"].as_str()), (404, Some("unknown_rule")));
    assert_eq!(rule_state(&tc, "slow", "checkout").await, Value::Null);
}

#[tokio::test]
async fn a_rule_written_over_the_api_is_evaluated() {
    let tc = TestCollector::start(config_with("[alerting]\nhealth_rule = false")).await;
    let admin = admin_key(&tc).await;
    let body = json!({
        "name": "errors", "service": "checkout", "signal": "error_rate",
        "op": ">=", "threshold": 0.2,
    });
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &body).await;
    assert_eq!(s, 201, "{v}");
    let t = base_minute();
    traffic_at(&tc, "checkout", 80, 20, t).await;
    tc.collector
        .alerting()
        .run_once(t + 30_000)
        .await
        .expect("round");
    let r = rule_state(&tc, "errors", "checkout").await;
    assert_eq!(
        (r["state"].as_str(), r["value"].as_f64()),
        (Some("firing"), Some(0.2))
    );
}

#[tokio::test]
async fn hostile_rules_are_refused_clearly_and_counted() {
    let tc = TestCollector::start(config_with(CONFIG)).await;
    let admin = admin_key(&tc).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut r = rule("r");
        f(&mut r);
        serde_json::to_vec(&r).unwrap()
    };
    let huge = "x".repeat(70 * 1024);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("{{\"name\": \"{huge}\"}}").into_bytes(),
            413,
            "body_too_large",
        ),
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"[]".to_vec(), 400, "invalid_json"),
        (with(&|r| r["colour"] = json!("red")), 400, "invalid_json"),
        (
            with(&|r| r["threshold"] = json!("high")),
            400,
            "invalid_json",
        ),
        (with(&|r| r["tenant"] = json!("other")), 400, "invalid_rule"),
        (with(&|r| r["name"] = json!("a/b")), 400, "invalid_rule"),
        (
            with(&|r| r["name"] = json!("service_health")),
            400,
            "invalid_rule",
        ),
        (
            with(&|r| r["service"] = json!("x".repeat(500))),
            400,
            "invalid_rule",
        ),
        (with(&|r| r["signal"] = json!("cpu")), 400, "invalid_rule"),
        (with(&|r| r["op"] = json!("!=")), 400, "invalid_rule"),
        (with(&|r| r["window"] = json!("1y")), 400, "invalid_rule"),
        (with(&|r| r["for"] = json!("-1m")), 400, "invalid_rule"),
        (
            with(&|r| r["labels"] = json!({"alertname": "x"})),
            400,
            "invalid_rule",
        ),
        (
            with(&|r| r["labels"] = json!({"team": "x".repeat(2000)})),
            400,
            "invalid_rule",
        ),
        (
            with(&|r| r["annotations"] = (0..50).map(|i| (format!("a{i}"), json!("v"))).collect()),
            400,
            "invalid_rule",
        ),
    ];
    let mut invalid_rule = 0;
    for (body, status, reason) in cases {
        let (s, v) = send(&tc, "POST", "/v1/alert-rules", &admin, body).await;
        assert_eq!((s, v["reason"].as_str()), (status, Some(reason)), "{v}");
        let message = v["error"].as_str().unwrap_or("");
        assert!(!message.is_empty() && message.len() < 600, "{message}");
        invalid_rule += usize::from(reason == "invalid_rule");
    }
    // Path names are checked too.
    let (s, v) = send_json(
        &tc,
        "PUT",
        &format!("/v1/alert-rules/{}", "n".repeat(200)),
        &admin,
        &rule("r"),
    )
    .await;
    assert_eq!((s, v["reason"].as_str()), (400, Some("invalid_rule_name")));
    // The tenant's rule limit (3).
    for name in ["a", "b", "c"] {
        let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &rule(name)).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = send_json(&tc, "POST", "/v1/alert-rules", &admin, &rule("d")).await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("too_many_rules")));
    // History parameters.
    for (query, reason) in [
        ("?state=burning", "invalid_state"),
        ("?since=yesterday", "invalid_since"),
        ("?limit=0", "invalid_limit"),
        ("?limit=5000", "invalid_limit"),
        ("?colour=red", "unknown_parameter"),
    ] {
        let (s, v) = tc.get(&format!("/v1/alerts{query}")).await;
        assert_eq!(
            (s, v["reason"].as_str()),
            (400, Some(reason)),
            "{query}: {v}"
        );
    }
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="invalid_rule"}"#),
        invalid_rule as u64
    );
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="body_too_large"}"#),
        1
    );
    assert_eq!(
        metric_value(&text, r#"vitals_rejected_total{reason="too_many_rules"}"#),
        1
    );
}
