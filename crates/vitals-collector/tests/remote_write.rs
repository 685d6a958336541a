//! Prometheus remote-write export against a real Prometheus (Debian's
//! `prometheus`, `--web.enable-remote-write-receiver`, on loopback), and
//! the protocol's details against a receiver the test plays: headers,
//! body, retries on 5xx and 429, drops on other 4xx. A missing
//! `prometheus` fails unless `VITALS_SKIP_EXTERNAL=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{HeaderMap, StatusCode};
use common::{TestCollector, metric_value};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vitals_collector::remote_write::WriteRequest;
use vitals_collector::{Collector, CollectorConfig, config::RemoteWriteConfig, now_ms};
use vitals_test_support::{external, wait_until};

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(dir: &Path, port: u16) -> KillOnDrop {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--enable-feature=native-histograms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let guard = KillOnDrop(child);
    wait_until("Prometheus to be ready", Duration::from_secs(60), || {
        http_get(port, "/-/ready")
            .filter(|b| b.contains("Ready"))
            .ok_or("not ready")
    });
    guard
}

/// GET over plain HTTP/1.0; returns the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// An instant query's single value (at `time`, seconds, if given).
fn query(port: u16, promql: &str, time: Option<f64>) -> Option<f64> {
    let enc: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let at = time.map(|t| format!("&time={t}")).unwrap_or_default();
    let body = http_get(port, &format!("/api/v1/query?query={enc}{at}"))?;
    let json: Value = serde_json::from_str(&body).ok()?;
    let result = json["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn records(n: usize, at: i64, first_ms: f64) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({"method": "GET", "route": "/users/{id}", "status": if i % 10 == 0 { 500 } else { 200 },
                   "duration_ms": first_ms + i as f64, "timestamp_ms": at + i as i64})
        })
        .collect();
    json!({"service": "api", "instance": "i-1", "requests": requests})
}

fn collector_config(dir: &Path, url: String) -> CollectorConfig {
    CollectorConfig {
        store: format!("sqlite://{}", dir.join("vitals.db").display()),
        remote_write: vec![RemoteWriteConfig {
            url,
            tenants: vec!["acme".into()],
            queue_dir: Some(dir.join("queue").display().to_string()),
            delay: "1s".into(),
            backfill: "30m".into(),
            timeout: "5s".into(),
            native_histograms: true,
            ..RemoteWriteConfig::default()
        }],
        ..CollectorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_receives_counts_and_histograms_and_loses_nothing_in_an_outage() {
    if !external::require_command(
        "prometheus",
        "Debian package prometheus (scripts/test installs it)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut prometheus = Some(start_prometheus(dir.path(), port));
    let config = collector_config(dir.path(), format!("http://127.0.0.1:{port}/api/v1/write"));
    let tc = TestCollector::start(config.clone()).await;

    // 100 requests in one minute four minutes ago: 1..=100 ms, every
    // tenth a 500.
    let now = now_ms();
    let m1 = now / 60_000 * 60_000 - 4 * 60_000;
    let (status, reply) = tc
        .post("/v1/requests", &records(100, m1 + 1_000, 1.0))
        .await;
    assert_eq!(status, 200, "{reply}");
    let exporter = tc.collector.remote_writers()[0].clone();
    // Export up to the end of that minute only.
    let minutes = exporter.export_due(m1 + 60_000 + 1_000).await.unwrap();
    assert!(minutes >= 1);
    assert_eq!(exporter.cursor_ms().await, Some(m1 + 60_000));
    let report = exporter.send_pending().await;
    assert_eq!((report.retry, report.dropped), (None, 0), "{report:?}");
    assert!(report.sent >= 1, "{report:?}");

    let m1_end = (m1 + 60_000) as f64 / 1000.0;
    let total = wait_until(
        "Prometheus to answer the count",
        Duration::from_secs(30),
        || {
            query(
                port,
                r#"sum(vitals_http_requests_total{service="api"})"#,
                Some(m1_end),
            )
            .ok_or("no result")
        },
    );
    assert_eq!(total, 100.0);
    assert_eq!(
        query(
            port,
            r#"sum(vitals_http_requests_total{status="5xx",route="/users/{id}",tenant="acme"})"#,
            Some(m1_end)
        ),
        Some(10.0)
    );
    // The median (50 ms) from the classic buckets: within its bucket
    // (0.025, 0.05] s.
    let p50 = query(
        port,
        r#"histogram_quantile(0.5, sum by (le) (vitals_http_request_duration_seconds_bucket{service="api"}))"#,
        Some(m1_end),
    )
    .expect("classic p50");
    assert!((0.025..=0.05).contains(&p50), "classic p50 {p50}");
    // And from the native histogram, within its resolution (~1 %) and
    // Prometheus's interpolation inside one bucket.
    let p50 = query(
        port,
        r#"histogram_quantile(0.5, sum(vitals_http_request_duration_seconds{service="api"}))"#,
        Some(m1_end),
    )
    .expect("native p50");
    assert!((p50 - 0.05).abs() / 0.05 < 0.03, "native p50 {p50}");
    assert_eq!(
        query(
            port,
            r#"vitals_service_apdex_threshold_seconds{service="api"}"#,
            Some(m1_end)
        ),
        Some(0.5)
    );

    // Prometheus goes away; 50 more requests two minutes ago.
    drop(prometheus.take());
    let m2 = m1 + 2 * 60_000;
    let (status, reply) = tc
        .post("/v1/requests", &records(50, m2 + 1_000, 200.0))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(exporter.export_due(now_ms()).await.unwrap() >= 2);
    let report = exporter.send_pending().await;
    assert_eq!(report.retry.map(|r| r.0), Some("network"), "{report:?}");
    let text = tc.metrics_text().await;
    assert!(
        metric_value(
            &text,
            r#"vitals_collector_remote_write_queue_requests{remote="remote0"}"#
        ) >= 1,
        "{text}"
    );
    assert!(
        metric_value(
            &text,
            r#"vitals_collector_remote_write_failures_total{remote="remote0",reason="network"}"#
        ) >= 1,
        "{text}"
    );

    // The collector restarts (same store, same queue), then Prometheus.
    drop(exporter);
    drop(tc.stop().await);
    let collector = Collector::open(config).await.expect("reopen");
    let exporter = collector.remote_writers()[0].clone();
    assert!(exporter.cursor_ms().await.expect("saved cursor") > m2);
    let _prometheus = start_prometheus(dir.path(), port);
    let report = exporter.send_pending().await;
    assert_eq!((report.retry, report.dropped), (None, 0), "{report:?}");
    let m2_end = (m2 + 60_000) as f64 / 1000.0;
    let total = wait_until(
        "the queued minute in Prometheus",
        Duration::from_secs(30),
        || {
            query(
                port,
                r#"sum(vitals_http_requests_total{service="api"})"#,
                Some(m2_end),
            )
            .ok_or("no result")
        },
    );
    // Cumulative: the earlier 100 and the 50 sent during the outage.
    assert_eq!(total, 150.0);
    assert_eq!(
        query(
            port,
            r#"sum(vitals_http_requests_total{service="api"})"#,
            Some(m1_end)
        ),
        Some(100.0)
    );
    // rate() sees the 50 between the two minutes, no reset.
    let increase = query(
        port,
        r#"sum(increase(vitals_http_requests_total{service="api"}[3m]))"#,
        Some(m2_end),
    )
    .expect("increase");
    assert!(
        (increase - 75.0).abs() < 30.0,
        "extrapolated increase {increase}"
    );
    assert_eq!(
        query(
            port,
            r#"sum(vitals_http_request_duration_seconds_count{service="api"})"#,
            Some(m2_end)
        ),
        Some(150.0)
    );
}

/// What the test receiver saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: WriteRequest,
}

/// A receiver answering each request with the next status of `script`
/// (then 204), recording what it got.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            let script = script.clone();
            async move {
                let body = WriteRequest::from_body(&body).expect("snappy protobuf");
                log.lock().unwrap().push(Seen { headers, body });
                let code = script.lock().unwrap().next().unwrap_or(204);
                let mut resp = axum::response::Response::new(axum::body::Body::from("scripted"));
                *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                if code == 429 {
                    resp.headers_mut()
                        .insert("retry-after", axum::http::HeaderValue::from_static("0"));
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/push"), seen)
}

#[tokio::test]
async fn requests_carry_the_protocol_headers_and_failures_retry_or_drop_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    // 503 and 429 are retried (the request stays first); 400 drops it.
    let (url, seen) = receiver(vec![503, 429, 400]).await;
    let mut config = collector_config(dir.path(), url);
    config.remote_write[0].tenant_header = Some("X-Scope-OrgID".into());
    config.remote_write[0].tenant_id = Some("team-a".into());
    config.remote_write[0]
        .headers
        .insert("Authorization".into(), "Bearer secret".into());
    let tc = TestCollector::start(config).await;
    let now = now_ms();
    let m1 = now / 60_000 * 60_000 - 4 * 60_000;
    for (i, at) in [m1, m1 + 60_000].into_iter().enumerate() {
        let mut body = records(10, at + 1_000, 5.0);
        body["batch_id"] = json!(format!("b{i}"));
        let (status, reply) = tc.post("/v1/requests", &body).await;
        assert_eq!(status, 200, "{reply}");
    }
    let exporter = tc.collector.remote_writers()[0].clone();
    exporter.export_due(now).await.unwrap();
    let first = exporter.send_pending().await;
    assert_eq!(first.retry.map(|r| r.0), Some("http_5xx"), "{first:?}");
    let second = exporter.send_pending().await;
    assert_eq!(
        second.retry,
        Some(("http_429", Some(Duration::from_secs(0)))),
        "{second:?}"
    );
    // 400: the first minute's request is dropped; the second is sent.
    let third = exporter.send_pending().await;
    assert_eq!(
        (third.dropped, third.sent, third.retry),
        (1, 1, None),
        "{third:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        let h = |name: &str| {
            s.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        assert_eq!(h("content-encoding"), "snappy");
        assert_eq!(h("content-type"), "application/x-protobuf");
        assert!(h("user-agent").starts_with("vitals-collector/"));
        assert_eq!(h("x-prometheus-remote-write-version"), "0.1.0");
        assert_eq!(h("x-scope-orgid"), "team-a");
        assert_eq!(h("authorization"), "Bearer secret");
        // With a tenant header, series carry no tenant label.
        assert!(
            s.body
                .timeseries
                .iter()
                .all(|t| t.labels.iter().all(|l| l.name != "tenant"))
        );
    }
    // The same request three times, then the next minute's, cumulative.
    assert_eq!(seen[0].body, seen[2].body);
    let requests = |r: &WriteRequest| -> f64 {
        r.timeseries
            .iter()
            .filter(|t| {
                t.labels
                    .iter()
                    .any(|l| l.value == "vitals_http_requests_total")
            })
            .map(|t| t.samples[0].value)
            .sum()
    };
    assert_eq!(
        (requests(&seen[2].body), requests(&seen[3].body)),
        (10.0, 20.0)
    );
    let text = tc.metrics_text().await;
    for (series, want) in [
        (
            r#"vitals_collector_remote_write_failures_total{remote="remote0",reason="http_5xx"}"#,
            1,
        ),
        (
            r#"vitals_collector_remote_write_failures_total{remote="remote0",reason="http_429"}"#,
            1,
        ),
        (
            r#"vitals_collector_remote_write_failures_total{remote="remote0",reason="http_4xx"}"#,
            1,
        ),
        (
            r#"vitals_collector_remote_write_queue_requests{remote="remote0"}"#,
            0,
        ),
    ] {
        assert_eq!(metric_value(&text, series), want, "{series}\n{text}");
    }
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_remote_write_dropped_samples_total{remote="remote0",reason="http_4xx"}"#
        ),
        seen[2].body.sample_count()
    );
    assert_eq!(
        metric_value(
            &text,
            r#"vitals_collector_remote_write_sent_samples_total{remote="remote0"}"#
        ),
        seen[3].body.sample_count()
    );
    // The exporter's families pass Prometheus's own checker.
    if let Some(report) = external::promtool_check_metrics(text.as_bytes()) {
        let ours: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("remote_write"))
            .collect();
        assert!(ours.is_empty(), "{report}");
    }
    tc.stop().await;
}
