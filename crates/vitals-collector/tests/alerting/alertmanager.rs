//! A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback
//! as a receiver: after errors past the rule's threshold its
//! `GET /api/v2/alerts` lists our alert with our labels; after recovery
//! the alert is resolved (ended, so no longer listed as active).

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vitals_test_support::external::require_command;
use vitals_test_support::wait::wait_until_async;

const BINARY: &str = "prometheus-alertmanager";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET url` as (status, body text).
async fn get(url: &str) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Our alert among Alertmanager's listed alerts, if there.
fn ours(alerts: &Value) -> Option<Value> {
    alerts
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "checkout_errors" && a["labels"]["tenant"] == "acme")
        .cloned()
}

#[tokio::test]
async fn a_real_alertmanager_lists_the_alert_then_sees_it_resolved() {
    if !require_command(
        BINARY,
        "Debian package prometheus-alertmanager (scripts/test installs it)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("write config");
    let port = free_port();
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let _guard = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_async(
        "Alertmanager is ready",
        Duration::from_secs(30),
        async || match get(&format!("{base}/-/ready")).await {
            Ok((200, _)) => Ok(()),
            Ok((s, b)) => Err(format!("{s}: {b}")),
            Err(e) => Err(e),
        },
    )
    .await;

    let toml = format!(
        r#"
        [alerting]
        health_rule = false
        retry_backoff = "50ms"
        [alerting.alertmanager]
        url = "{base}"
        [[alerting.rules]]
        tenant = "acme"
        name = "checkout_errors"
        service = "checkout"
        signal = "error_rate"
        op = ">"
        threshold = 0.1
        labels = {{ severity = "page", team = "payments" }}
        annotations = {{ summary = "error rate {{{{ $value }}}}" }}
        "#
    );
    let tc = TestCollector::start(config_with(&toml)).await;
    // Alertmanager judges endsAt by its own clock: these rounds run at
    // the wall clock, over traffic stamped now.
    traffic(&tc, "checkout", 80, 20).await;
    let (_, sent) = tc
        .collector
        .alerting()
        .run_once(now_ms())
        .await
        .expect("round");
    assert_eq!(sent, 1);
    let listed = wait_until_async(
        "Alertmanager lists the alert",
        Duration::from_secs(30),
        async || {
            let (status, body) = get(&format!("{base}/api/v2/alerts")).await?;
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}"))?;
            ours(&v).ok_or_else(|| format!("not listed yet: {v}"))
        },
    )
    .await;
    assert_eq!(listed["labels"]["service"], "checkout");
    assert_eq!(listed["labels"]["severity"], "page");
    assert_eq!(listed["labels"]["team"], "payments");
    assert_eq!(listed["annotations"]["summary"], "error rate 0.2");
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    assert!(
        listed["generatorURL"]
            .as_str()
            .unwrap_or("")
            .contains("#alerts?rule=checkout_errors"),
        "{listed}"
    );

    // Recovery: plenty of good requests bring the rate under 1 %.
    traffic(&tc, "checkout", 2000, 0).await;
    tc.collector
        .alerting()
        .run_once(now_ms())
        .await
        .expect("round");
    assert_eq!(
        rule_state(&tc, "checkout_errors", "checkout").await["state"],
        "resolved"
    );
    wait_until_async(
        "Alertmanager sees the alert resolved",
        Duration::from_secs(30),
        async || {
            let (status, body) = get(&format!("{base}/api/v2/alerts")).await?;
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}"))?;
            match ours(&v) {
                None => Ok(()),
                Some(a) => Err(format!("still active: {a}")),
            }
        },
    )
    .await;
    let text = tc.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_alert_notifications_total{receiver="alertmanager",outcome="delivered"}"#
        ),
        2,
        "firing, then resolved"
    );
}
