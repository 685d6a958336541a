//! A real Prometheus server scrapes a registry and its query API returns the
//! values that were recorded. Prometheus negotiates OpenMetrics through the
//! `Accept` header, so this also exercises `Format::from_accept` end to end.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`; scripts/test
//! installs it). Without it the test fails, unless `VITALS_SKIP_EXTERNAL=1`
//! skips it (never in CI): the rule of `vitals_test_support::external`.
#![cfg(feature = "enabled")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vitals::{Format, Options, Registry, Unit};
use vitals_test_support::{external, wait_until};

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `registry` at `/metrics` over HTTP/1.0, one request per
/// connection, recording the `Accept` header of each scrape.
fn serve(registry: Registry, accepts: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut accept = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("accept:") {
                    accept = v.trim().to_owned();
                }
                line.clear();
            }
            let format = Format::from_accept(&accept);
            accepts.lock().unwrap().push(accept);
            let body = registry.render(format);
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                format.content_type(),
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Runs an instant query and returns the single result's value.
fn query(port: u16, promql: &str) -> Option<String> {
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
    let body = http_get(port, &format!("/api/v1/query?query={enc}"))?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = json["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str().map(str::to_owned)
}

#[test]
fn real_prometheus_scrapes_and_reads_back_values() {
    if !external::require_command(
        "prometheus",
        "Debian package prometheus (scripts/test installs it)",
    ) {
        return;
    }
    let registry = Registry::new();
    let requests = registry
        .counter_vec(("scrape_requests_total", "Requests"), &["route", "note"])
        .unwrap();
    requests
        .get(&["/users/{id}", "quote\" back\\slash\nnewline 漢字"])
        .add(42);
    let latency = registry
        .histogram_vec(
            Options::new("scrape_latency", "Latency").unit(Unit::Seconds),
            &["route"],
        )
        .unwrap();
    for i in 1..=100 {
        latency.get(&["/users/{id}"]).record(i as f64 / 1000.0);
    }
    let temp = registry
        .float_gauge(("scrape_temperature", "A float"))
        .unwrap();
    temp.set(-12.5);

    let accepts = Arc::new(Mutex::new(Vec::new()));
    let target = serve(registry, accepts.clone());
    let dir = std::env::temp_dir().join(format!("vitals-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vitals\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let _guard = KillOnDrop(prometheus);

    let counter = wait_until(
        "Prometheus to store a scrape with the counter and the histogram",
        Duration::from_secs(60),
        || {
            let counter = query(web, r#"scrape_requests_total{route="/users/{id}"}"#);
            let count = query(web, "scrape_latency_seconds_count");
            match (counter, count) {
                (Some(counter), Some(_)) => Ok(counter),
                (counter, count) => Err(format!(
                    "counter {counter:?}, histogram count {count:?}, scrapes so far {:?}",
                    accepts.lock().unwrap().len()
                )),
            }
        },
    );
    assert_eq!(counter, "42");
    assert_eq!(query(web, "up").as_deref(), Some("1"));
    assert_eq!(
        query(web, "scrape_latency_seconds_count").as_deref(),
        Some("100")
    );
    assert_eq!(
        query(web, r#"scrape_latency_seconds_bucket{le="0.05"}"#).as_deref(),
        Some("50")
    );
    assert_eq!(query(web, "scrape_temperature").as_deref(), Some("-12.5"));
    // The hostile label value survived the trip intact.
    let note = query(
        web,
        r#"count(scrape_requests_total{note="quote\" back\\slash\nnewline 漢字"})"#,
    );
    assert_eq!(note.as_deref(), Some("1"));
    // histogram_quantile over our classic buckets lands in the right bucket.
    let p50: f64 = query(
        web,
        "histogram_quantile(0.5, scrape_latency_seconds_bucket)",
    )
    .and_then(|v| v.parse().ok())
    .unwrap();
    assert!((0.025..=0.05).contains(&p50), "p50 {p50}");
    let accepts = accepts.lock().unwrap();
    assert!(
        accepts
            .iter()
            .any(|a| Format::from_accept(a) == Format::OpenMetrics),
        "Prometheus should have negotiated OpenMetrics: {accepts:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
