//! Connections: a client leaving mid-request or mid-body is counted as
//! abandoned, idle keep-alive connections are tracked, and the trackers
//! work without a tracked connection.

use crate::common::{eventually, value};
use crate::{Server, app, start};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitals::Registry;
use vitals_server::ServerMetrics;

/// Waits for the one abandoned request on `route` and checks it was counted
/// with `status` and as a connection the peer closed.
async fn assert_one_abandoned(s: &Server, route: &str, status: &str) -> vitals::Snapshot {
    let labels = [("method", "GET"), ("route", route)];
    let snap = eventually(
        &s.registry,
        &format!("the abandoned request on {route}, counted"),
        |snap| value(snap, "http_server_requests_abandoned", &labels) == Some(1),
    )
    .await;
    assert_eq!(
        value(&snap, "http_server_requests_abandoned", &labels),
        Some(1)
    );
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", route), ("status", status)]
        ),
        Some(1)
    );
    assert_eq!(value(&snap, "server_connections_peer_closed", &[]), Some(1));
    snap
}

#[tokio::test]
async fn client_leaving_mid_request_is_counted() {
    let s = start().await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    let snap = assert_one_abandoned(&s, "/slow", "499").await;
    assert_eq!(value(&snap, "server_connections_active", &[]), Some(0));
    assert_eq!(value(&snap, "server_connections_idle", &[]), Some(0));
}

#[tokio::test]
async fn the_connection_also_reaches_the_layer_as_connect_info() {
    // `into_make_service_with_connect_info::<ConnectionInfo>()` instead of
    // `TrackedRouter`: the layer finds the connection in the extension.
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .build()
        .unwrap();
    let addr = crate::common::serve_with_connect_info(&metrics, app(&metrics)).await;
    let s = Server { addr, registry };
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    assert_one_abandoned(&s, "/slow", "499").await;
}

#[tokio::test]
async fn client_leaving_mid_body_is_counted() {
    let s = start().await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < 200 * 1024 {
        got += stream.read(&mut buf).await.unwrap();
    }
    drop(stream);
    assert_one_abandoned(&s, "/big", "200").await;
}

#[tokio::test]
async fn idle_keep_alive_connections() {
    let s = start().await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    let snap = eventually(
        &s.registry,
        "the connection to turn idle after its response",
        |snap| value(snap, "server_connections_idle", &[]) == Some(1),
    )
    .await;
    assert_eq!(value(&snap, "server_connections_active", &[]), Some(1));
    drop(stream);
    let snap = eventually(&s.registry, "the connection to close", |snap| {
        value(snap, "server_connections_active", &[]) == Some(0)
    })
    .await;
    assert_eq!(value(&snap, "server_connections_idle", &[]), Some(0));
    assert_eq!(value(&snap, "server_connections_peer_closed", &[]), Some(0));
}

#[tokio::test]
async fn trackers_work_without_a_tracked_connection() {
    // No TrackedListener, no ConnectInfo: the layer hands the metrics to the
    // RouteMetrics extractor through a request extension instead.
    use tower::ServiceExt;
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .build()
        .unwrap();
    let app = app(&metrics);
    let req = http::Request::get("/sse?n=2")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body).matches("data: tick").count(),
        2
    );
    let snap = eventually(&registry, "the SSE session to end", |snap| {
        value(snap, "sse_connections_active", &[("route", "/sse")]) == Some(0)
    })
    .await;
    assert_eq!(
        value(&snap, "sse_events_sent", &[("route", "/sse")]),
        Some(2)
    );
    assert_eq!(value(&snap, "server_connections", &[]), Some(0));
}
