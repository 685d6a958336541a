//! The same metrics from a plain hyper-util accept loop (no `axum::serve`):
//! connections, idle tracking through `ConnectionInfo`, protocol errors.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::routing::get;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitals::{Registry, Snapshot};
use vitals_server::{ServerMetrics, TrackedIo};

mod common;
use common::{eventually, value};

fn int(snap: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
    value(snap, name, labels).map(|v| v as i64)
}

#[tokio::test]
async fn hyper_util_loop_reports_connections_requests_and_protocol_errors() {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .build()
        .unwrap();
    let app = metrics.instrument(axum::Router::new().route("/", get(|| async { "hello" })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let m = metrics.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let io = TrackedIo::new(stream, Some(peer), &m);
            tokio::spawn(io.serve(app.clone()));
        }
    });

    // Two requests on one keep-alive connection, then it sits idle.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    }
    let snap = eventually(&registry, "the keep-alive connection to turn idle", |s| {
        int(s, "server_connections_idle", &[]) == Some(1)
    })
    .await;
    assert_eq!(int(&snap, "server_connections_active", &[]), Some(1));
    assert_eq!(
        int(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/"), ("status", "200")]
        ),
        Some(2)
    );
    // A client speaking something else is a failed connection.
    let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
    bad.write_all(b"\x16\x03\x01\x02\x00 this is a TLS hello, not HTTP\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), bad.read_to_end(&mut sink)).await;
    let snap = eventually(
        &registry,
        "the non-HTTP connection, counted as failed",
        |s| int(s, "server_connections_failed", &[]) == Some(1),
    )
    .await;
    assert_eq!(int(&snap, "server_connections_failed", &[]), Some(1));
    drop(conn);
    let snap = eventually(&registry, "the keep-alive connection to close", |s| {
        int(s, "server_connections_active", &[]) == Some(0)
    })
    .await;
    assert_eq!(int(&snap, "server_connections", &[]), Some(2));
    assert_eq!(int(&snap, "server_connections_idle", &[]), Some(0));
    assert!(int(&snap, "server_bytes_sent", &[]).unwrap() > 100);
}
