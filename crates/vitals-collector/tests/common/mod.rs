//! A real collector on 127.0.0.1:0 and a real HTTP client for the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use vitals_collector::{Collector, CollectorConfig, Role};

pub struct TestCollector {
    pub collector: Collector,
    pub addr: SocketAddr,
    pub ingest_key: String,
    pub read_key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    server: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestCollector {
    pub async fn start(config: CollectorConfig) -> Self {
        let collector = Collector::open(config).await.expect("open collector");
        Self::start_with(collector).await
    }

    pub async fn start_with(collector: Collector) -> Self {
        let ingest_key = collector
            .create_key("acme", Role::Ingest)
            .await
            .expect("key");
        let read_key = collector.create_key("acme", Role::Read).await.expect("key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = collector.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        TestCollector {
            collector,
            addr,
            ingest_key,
            read_key,
            client: Client::builder(TokioExecutor::new()).build_http(),
            server,
            stop: Some(tx),
        }
    }

    /// Stops serving and waits until the server task ends.
    pub async fn stop(mut self) -> Collector {
        // As `Collector::serve` does: open event streams end first.
        self.collector.end_live_streams();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("server stops in time")
            .expect("server task");
        self.collector.clone()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("answer in time")
            .expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            Some(&self.ingest_key),
            &[("content-type", "application/json")],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.request("POST", path, Some(&self.ingest_key), headers, body)
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(&self.read_key), &[], Vec::new())
            .await
    }

    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn metrics_text(&self) -> String {
        let (_, v) = self.request("GET", "/metrics", None, &[], Vec::new()).await;
        v.as_str().map(str::to_string).unwrap_or_default()
    }
}

pub fn memory_config() -> CollectorConfig {
    CollectorConfig {
        store: "sqlite::memory:".into(),
        ..Default::default()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Deterministic pseudo-random numbers (SplitMix64), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A latency-like value in ms: log-uniform from 0.5 ms to 5 s.
    pub fn duration_ms(&mut self) -> f64 {
        (0.5f64.ln() + self.unit() * (5000.0f64 / 0.5).ln()).exp()
    }
}

/// Exact nearest-rank quantile of raw values.
pub fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).max(1) - 1;
    v[rank.min(v.len() - 1)]
}

pub fn assert_close(got: &Value, want: f64, rel: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    let err = if want == 0.0 {
        g.abs()
    } else {
        ((g - want) / want).abs()
    };
    assert!(
        err <= rel,
        "{what}: got {g}, want {want} (relative error {err})"
    );
}

pub fn metric_value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0)
}
