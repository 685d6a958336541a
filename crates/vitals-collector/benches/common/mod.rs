//! What the ingest benches share: a collector on a loopback port, the
//! request bodies they post (the same data on every back end, so the
//! figures compare) and fresh batch ids.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::atomic::AtomicU64;
use vitals::Sketch;
use vitals_collector::{Collector, CollectorConfig, now_ms};

/// Opens a collector on `config` and serves its API on a loopback port.
pub async fn serve(config: CollectorConfig) -> (Collector, std::net::SocketAddr) {
    let collector = Collector::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, collector.router()).into_future());
    (collector, addr)
}

/// Where [`with_id`] puts a batch id in a body template.
pub const ID_SLOT: &str = "BATCHID_0000000000000000";

/// `n` pseudo-random durations from 0.5 to 500.5 ms.
pub fn sketch_of(n: usize, seed: &mut u64) -> Sketch {
    let mut sk = Sketch::new();
    for _ in 0..n {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        sk.record(0.5 + (*seed >> 40) as f64 / (1u64 << 24) as f64 * 500.0);
    }
    sk
}

/// 100 route aggregates of 100 requests each: 10,000 events.
pub fn aggregated_body() -> (Vec<u8>, u64) {
    let mut x = 1u64;
    let routes: Vec<Value> = (0..100)
        .map(|r| json!({"method": "GET", "route": format!("/route/{r}"), "status_class": 2, "count": 100, "satisfied": 100, "duration_ms": sketch_of(100, &mut x)}))
        .collect();
    let body = json!({"batch_id": ID_SLOT, "service": "bench", "instance": "b-1", "start_unix_ms": now_ms(), "interval_ms": 10_000, "routes": routes});
    (serde_json::to_vec(&body).unwrap(), 10_000)
}

/// 1,000 per-request records over 20 routes.
pub fn records_body() -> (Vec<u8>, u64) {
    let now = now_ms();
    let requests: Vec<Value> = (0..1000)
        .map(|i| json!({"method": "GET", "route": format!("/route/{}", i % 20), "status": if i % 50 == 0 { 500 } else { 200 }, "duration_ms": 1.0 + (i % 97) as f64 * 3.1, "timestamp_ms": now}))
        .collect();
    let body = json!({"service": "bench-records", "batch_id": ID_SLOT, "requests": requests});
    (serde_json::to_vec(&body).unwrap(), 1000)
}

/// `template` with a fresh batch id `n` in its [`ID_SLOT`].
pub fn with_id(template: &[u8], n: u64) -> Bytes {
    let text = std::str::from_utf8(template).unwrap();
    Bytes::from(text.replacen(ID_SLOT, &format!("BATCHID_{n:016}"), 1))
}

/// The next batch id.
pub static IDS: AtomicU64 = AtomicU64::new(0);
