//! HTTP protocol errors under `axum::serve`, which discards hyper's error:
//! the tracked listener must still count them as failed connections, and
//! must not count the application's own 400s.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals::Registry;
use vitals_server::ServerMetrics;

mod common;
use common::{eventually, value};

async fn start() -> (SocketAddr, ServerMetrics, Registry) {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "hello" })).route(
        "/bad",
        get(|| async { (StatusCode::BAD_REQUEST, "you asked wrong") }),
    );
    let app = metrics.instrument(app);
    let addr = common::serve(&metrics, app).await;
    (addr, metrics, registry)
}

/// Sends `bytes`, reads until the server closes (bounded), returns what it sent back.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// Waits until `total` connections were accepted and all closed, then
/// checks that exactly `failed` of them counted as failed.
async fn expect_failed(registry: &Registry, failed: i128, total: i128) {
    let snap = eventually(
        registry,
        &format!("{total} connections accepted and closed, {failed} of them failed"),
        |s| {
            value(s, "server_connections_failed", &[]) == Some(failed)
                && value(s, "server_connections", &[]) == Some(total)
                && value(s, "server_connections_active", &[]) == Some(0)
        },
    )
    .await;
    let read = |name| value(&snap, name, &[]);
    assert_eq!(
        (
            read("server_connections_failed"),
            read("server_connections"),
            read("server_connections_active")
        ),
        (Some(failed), Some(total), Some(0)),
        "(failed, total, active)"
    );
}

#[tokio::test]
async fn malformed_http1_requests_count_as_failed_connections() {
    let (addr, _metrics, registry) = start().await;

    // A TLS ClientHello on the plain-text port: hyper answers 400 and closes.
    let tls_hello = [
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x00, 0x01, 0x02, 0x03,
        0x04, 0x05, 0x06, 0x07, 0x0d, 0x0a, 0x0d, 0x0a,
    ];
    let reply = exchange(addr, &tls_hello).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    expect_failed(&registry, 1, 1).await;

    // A header block larger than hyper accepts: 431.
    let mut huge = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 600 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let reply = exchange(addr, &huge).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    expect_failed(&registry, 2, 2).await;

    // A broken request line after a good request on the same connection.
    let reply = exchange(
        addr,
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /\x01 HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    expect_failed(&registry, 3, 3).await;
    let snap = registry.snapshot();
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/"), ("status", "200")]
        ),
        Some(1)
    );
}

#[tokio::test]
async fn the_applications_own_400s_are_not_protocol_errors() {
    let (addr, _metrics, registry) = start().await;
    let reply = exchange(
        addr,
        b"GET /bad HTTP/1.1\r\nhost: x\r\n\r\nGET /bad HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(text.matches("HTTP/1.1 400").count(), 2, "{text}");
    expect_failed(&registry, 0, 1).await;
    let snap = registry.snapshot();
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/bad"), ("status", "400")]
        ),
        Some(2)
    );
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn http2_connection_errors_count_as_failed_and_clean_goaways_do_not() {
    let (addr, _metrics, registry) = start().await;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    // A DATA frame on stream 0 is a connection error (PROTOCOL_ERROR).
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    bytes.extend(frame(0x0, 0, 0, b"oops")); // DATA on stream 0
    let reply = exchange(addr, &bytes).await;
    assert!(
        !reply.is_empty(),
        "the server answers with SETTINGS and GOAWAY"
    );
    expect_failed(&registry, 1, 1).await;

    // A client that says goodbye politely is not a failure.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[]));
    bytes.extend(frame(0x7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0])); // GOAWAY NO_ERROR
    let _ = exchange(addr, &bytes).await;
    expect_failed(&registry, 1, 2).await;
}
