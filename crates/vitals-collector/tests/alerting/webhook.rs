//! A real webhook receiver (axum, in the test) behind the collector's
//! notifications: it fails on demand, and keeps every message it took.

use super::*;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const S: i64 = 1_000;
const M: i64 = 60_000;

/// A receiver answering `fail_with` to its first `failures` posts, then 200.
#[derive(Clone)]
struct Receiver {
    posts: Arc<AtomicUsize>,
    taken: Arc<Mutex<Vec<Value>>>,
    failures: usize,
    fail_with: StatusCode,
}

impl Receiver {
    async fn start(failures: usize, fail_with: StatusCode) -> (Receiver, String) {
        let r = Receiver {
            posts: Arc::default(),
            taken: Arc::default(),
            failures,
            fail_with,
        };
        async fn hook(State(r): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
            let n = r.posts.fetch_add(1, Ordering::SeqCst);
            if n < r.failures {
                return r.fail_with;
            }
            let v: Value = serde_json::from_slice(&body).expect("the body is JSON");
            r.taken.lock().unwrap().push(v);
            StatusCode::OK
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (r, url)
    }

    fn taken(&self) -> Vec<Value> {
        self.taken.lock().unwrap().clone()
    }
}

fn alerting_toml(url: &str) -> String {
    format!(
        r#"
        [alerting]
        health_rule = false
        external_url = "http://collector.example:7070/"
        group_wait = "0s"
        group_interval = "0s"
        retry_attempts = 5
        retry_backoff = "10ms"
        timeout = "2s"
        [[alerting.webhook]]
        name = "ops"
        url = "{url}"
        [[alerting.rules]]
        tenant = "acme"
        name = "checkout_errors"
        service = "checkout"
        signal = "error_rate"
        op = ">"
        threshold = 0.1
        labels = {{ severity = "page" }}
        annotations = {{ summary = "error rate {{{{ $value }}}}" }}
        "#
    )
}

async fn open_at(path: &std::path::Path, toml: &str) -> TestCollector {
    let mut c = config_with(toml);
    c.store = format!("sqlite://{}", path.display());
    TestCollector::start(c).await
}

#[tokio::test]
async fn two_failures_then_one_delivery_then_resolved_in_order_and_no_duplicate_after_a_restart() {
    let (receiver, url) = Receiver::start(2, StatusCode::SERVICE_UNAVAILABLE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let toml = alerting_toml(&url);
    let tc = open_at(&path, &toml).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 80, 20, t).await;
    let (_, sent) = tc
        .collector
        .alerting()
        .run_once(t + 30 * S)
        .await
        .expect("round");
    assert_eq!(sent, 1);
    assert_eq!(
        receiver.posts.load(Ordering::SeqCst),
        3,
        "two failures, then delivered"
    );
    let taken = receiver.taken();
    assert_eq!(taken.len(), 1, "delivered once: {taken:?}");
    let m = &taken[0];
    assert_eq!(m["version"], "4");
    assert_eq!(m["status"], "firing");
    assert_eq!(m["receiver"], "ops");
    assert_eq!(m["truncatedAlerts"], 0);
    assert_eq!(m["externalURL"], "http://collector.example:7070");
    assert_eq!(
        m["groupKey"],
        r#"{}:{alertname="checkout_errors", service="checkout", tenant="acme"}"#
    );
    assert_eq!(
        m["groupLabels"],
        json!({"alertname": "checkout_errors", "service": "checkout", "tenant": "acme"})
    );
    assert_eq!(m["commonLabels"]["severity"], "page");
    assert_eq!(m["commonAnnotations"]["summary"], "error rate 0.2");
    let alert = &m["alerts"][0];
    assert_eq!(m["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "checkout_errors");
    assert_eq!(alert["labels"]["service"], "checkout");
    assert_eq!(alert["annotations"]["summary"], "error rate 0.2");
    assert_eq!(
        alert["startsAt"],
        vitals_collector::alerting::rfc3339(t + 30 * S)
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alert["generatorURL"],
        "http://collector.example:7070/#alerts?rule=checkout_errors&service=checkout"
    );
    assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_delivery_failures_total{receiver="ops"}"#
        ),
        2
    );
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_notifications_total{receiver="ops",outcome="delivered"}"#
        ),
        1
    );

    // Still firing: nothing new before repeat_interval (4 h), also not
    // after a restart.
    tc.collector
        .alerting()
        .run_once(t + 45 * S)
        .await
        .expect("round");
    let tc = {
        tc.stop().await;
        open_at(&path, &toml).await
    };
    tc.collector
        .alerting()
        .run_once(t + 60 * S)
        .await
        .expect("round");
    assert_eq!(receiver.taken().len(), 1, "no duplicate");

    // Recovery: one resolved message, after the firing one.
    tc.collector
        .alerting()
        .run_once(t + 7 * M)
        .await
        .expect("round");
    tc.collector
        .alerting()
        .run_once(t + 8 * M)
        .await
        .expect("round");
    let taken = receiver.taken();
    let statuses: Vec<&str> = taken
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    let resolved = &taken[1]["alerts"][0];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["endsAt"],
        vitals_collector::alerting::rfc3339(t + 7 * M)
    );
    assert_eq!(
        resolved["fingerprint"],
        taken[0]["alerts"][0]["fingerprint"]
    );
    // The alerts page sees the receiver's counts.
    let list = tc.get_ok("/v1/alert-rules").await;
    assert_eq!(list["receivers"][0]["name"], "ops");
    assert_eq!(list["receivers"][0]["delivered"], 1, "since this restart");
    tc.stop().await;
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_the_failure_is_counted_and_shown() {
    let (receiver, url) = Receiver::start(usize::MAX, StatusCode::BAD_REQUEST).await;
    let tc = TestCollector::start(config_with(&alerting_toml(&url))).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 80, 20, t).await;
    let (_, sent) = tc
        .collector
        .alerting()
        .run_once(t + 30 * S)
        .await
        .expect("round");
    assert_eq!(sent, 0);
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 1, "one attempt only");
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_notifications_total{receiver="ops",outcome="failed"}"#
        ),
        1
    );
    // The alerting series pass Prometheus's own checker.
    if let Some(lint) = vitals_test_support::external::promtool_check_metrics(text.as_bytes()) {
        assert!(
            !lint.contains("alert"),
            "promtool on the alerting series: {lint}"
        );
    }
    let list = tc.get_ok("/v1/alert-rules").await;
    let ops = &list["receivers"][0];
    assert_eq!(ops["failed"], 1);
    assert!(
        ops["last_error"].as_str().unwrap_or("").contains("400"),
        "{ops}"
    );
    // Not marked as told: the next round tries again.
    tc.collector
        .alerting()
        .run_once(t + 45 * S)
        .await
        .expect("round");
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    let toml = alerting_toml(&format!("http://{addr}/hook"))
        .replace("timeout = \"2s\"", "timeout = \"200ms\"")
        .replace("retry_attempts = 5", "retry_attempts = 3");
    let tc = TestCollector::start(config_with(&toml)).await;
    let t = base_minute();
    traffic_at(&tc, "checkout", 80, 20, t).await;
    let (_, sent) = tc
        .collector
        .alerting()
        .run_once(t + 30 * S)
        .await
        .expect("round");
    assert_eq!(sent, 0);
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_delivery_failures_total{receiver="ops"}"#
        ),
        3
    );
    let list = tc.get_ok("/v1/alert-rules").await;
    assert!(
        list["receivers"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no answer"),
        "{list}"
    );
}
