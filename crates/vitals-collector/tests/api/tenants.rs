//! Tenants: one never sees another's services or data, and the limit on
//! services per tenant holds, also after a restart and when new services
//! arrive concurrently.

use crate::common::*;
use crate::{raw_requests, records_body};
use serde_json::{Value, json};
use vitals_collector::{CollectorConfig, Limits, now_ms};

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
