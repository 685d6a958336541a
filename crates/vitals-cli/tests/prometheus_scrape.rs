//! The scrape configuration documented in docs/interop.md, run by a real
//! Prometheus (Debian's `prometheus`) against a Vitals server and the
//! collector: both targets are up, and Prometheus's query API returns the
//! requests the server served and the records the collector ingested.
//!
//! Needs the `prometheus` binary (scripts/test installs it); without it the
//! test fails unless `VITALS_SKIP_EXTERNAL=1` (the rule of
//! `vitals_test_support::external`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use axum::Router;
use axum::routing::get;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vitals_collector::{Collector, CollectorConfig, Role};
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};
use vitals_test_support::{external, wait_until};

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.0 exchange; returns the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    out.split_once("\r\n\r\n")
        .map(|(_, b)| (status, b.to_owned()))
}

/// An instant query's single value.
fn query(prometheus: SocketAddr, promql: &str) -> Option<String> {
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
    let (_, body) = http(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={enc}"),
        "",
        "",
    )?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = json["data"]["result"].as_array()?;
    (result.len() == 1).then(|| result[0]["value"][1].as_str().map(str::to_owned))?
}

/// The YAML block between the scrape-config markers of docs/interop.md.
fn documented_config() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/interop.md"
    ))
    .expect("docs/interop.md");
    let block = doc
        .split("<!-- scrape-config:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- scrape-config:end -->").next())
        .expect("the scrape-config markers");
    block
        .split("```yaml")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block between the markers")
        .to_owned()
}

#[test]
fn prometheus_scrapes_a_server_and_the_collector_with_the_documented_config() {
    if !external::require_command(
        "prometheus",
        "Debian package prometheus (scripts/test installs it)",
    ) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A collector and a Vitals server, on loopback.
    let (collector_addr, ingest_key) = rt.block_on(async {
        let config = CollectorConfig {
            store: "sqlite::memory:".into(),
            ..Default::default()
        };
        let collector = Collector::open(config).await.expect("collector");
        let key = collector
            .create_key("acme", Role::Ingest)
            .await
            .expect("key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(collector.serve(listener, std::future::pending()));
        (addr, key)
    });
    let server_addr = rt.block_on(async {
        let metrics = ServerMetrics::new().expect("server metrics");
        let app = metrics.instrument(Router::new().route("/hello", get(|| async { "hello\n" })));
        let listener = TrackedListener::bind("127.0.0.1:0", &metrics)
            .await
            .unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnectionInfo>(),
            )
            .await;
        });
        addr
    });
    for _ in 0..5 {
        let (status, _) = http(server_addr, "GET", "/hello", "", "").expect("the server answers");
        assert_eq!(status, 200);
    }
    let records = r#"{"service":"api","requests":[{"method":"GET","route":"/a","status":200,"duration_ms":3},{"method":"GET","route":"/a","status":500,"duration_ms":9}]}"#;
    let (status, answer) = http(
        collector_addr,
        "POST",
        "/v1/requests",
        &format!("Authorization: Bearer {ingest_key}\r\nContent-Type: application/json\r\n"),
        records,
    )
    .expect("the collector answers");
    assert_eq!(status, 200, "{answer}");

    // The documented configuration, pointed at the two, scraping every second.
    let config = documented_config()
        .replace("checkout-1:3000", &server_addr.to_string())
        .replace("vitals-collector:7070", &collector_addr.to_string())
        .replace(
            "scrape_interval: 15s",
            "scrape_interval: 1s\n  scrape_timeout: 1s",
        );
    assert!(
        config.contains(&server_addr.to_string()) && config.contains(&collector_addr.to_string()),
        "{config}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
    let web = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let _guard = KillOnDrop(prometheus);

    let (ingested, served) = wait_until(
        "Prometheus to scrape both targets",
        Duration::from_secs(60),
        || {
            let ingested = query(
                web,
                r#"vitals_collector_requests_ingested_total{job="vitals-collector",endpoint="requests"}"#,
            );
            let served = query(
                web,
                r#"sum(http_server_requests_total{job="vitals-servers",route="/hello"})"#,
            );
            match (ingested, served) {
                (Some(i), Some(s)) => Ok((i, s)),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert_eq!(ingested, "2");
    assert_eq!(served, "5");
    assert_eq!(
        query(web, r#"up{job="vitals-collector"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        query(web, r#"up{job="vitals-servers"}"#).as_deref(),
        Some("1")
    );
    // The collector's own latency histograms are queryable as documented.
    let p99: f64 = query(
        web,
        "histogram_quantile(0.99, sum by (le) (vitals_collector_store_write_duration_seconds_bucket))",
    )
    .and_then(|v| v.parse().ok())
    .expect("a store write p99");
    assert!(p99 > 0.0 && p99 < 10.0, "{p99}");
    drop(rt);
}
