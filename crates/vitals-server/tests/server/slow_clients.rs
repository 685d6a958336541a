//! Hostile and bursty clients: a connection that sends half a request head
//! or nothing is closed after the header-read timeout and counted in
//! `server_connections_timed_out_total` (under `axum::serve` and under
//! `TrackedIo::serve`), a prompt client is not, and a burst of connects
//! fits in the listen backlog instead of waiting for SYN retries.

use crate::common::{eventually, value};
use crate::{app, start_with};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals::Registry;
use vitals_server::{ServerMetrics, TrackedIo, TrackedListener};

const TIMEOUT: Duration = Duration::from_millis(300);

/// Reads until the server closes the connection; fails the test if it is
/// still open after 10 s. Returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    got
}

async fn assert_timed_out(registry: &Registry, n: i128) {
    let snap = eventually(
        registry,
        "the stalled connections, counted and closed",
        |snap| {
            value(snap, "server_connections_timed_out", &[]) == Some(n)
                && value(snap, "server_connections_active", &[]) == Some(0)
        },
    )
    .await;
    assert_eq!(value(&snap, "server_connections_failed", &[]), Some(0));
}

#[tokio::test]
async fn half_a_head_or_nothing_is_closed_after_the_timeout() {
    let s = start_with(|b| b.header_read_timeout(TIMEOUT)).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert!(read_until_closed(&mut slow).await.is_empty());
    assert!(
        started.elapsed() >= TIMEOUT / 2,
        "closed before the timeout"
    );
    assert_timed_out(&s.registry, 2).await;
}

#[tokio::test]
async fn a_prompt_client_is_not_timed_out() {
    let s = start_with(|b| b.header_read_timeout(TIMEOUT)).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    // The head in two parts, well within the timeout.
    stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(TIMEOUT / 3).await;
    stream.write_all(b"st: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    // Idle past the timeout, then a second request on the same connection.
    tokio::time::sleep(TIMEOUT * 2).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    let snap = s.registry.snapshot();
    assert_eq!(value(&snap, "server_connections_timed_out", &[]), Some(0));
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/"), ("status", "200")]
        ),
        Some(2)
    );
}

/// Serves `app` with a hand-written accept loop and `TrackedIo::serve`.
async fn serve_by_hand(metrics: &ServerMetrics) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(metrics);
    let metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let io = TrackedIo::new(stream, Some(peer), &metrics);
            tokio::spawn(io.serve(app.clone()));
        }
    });
    addr
}

#[tokio::test]
async fn tracked_io_serve_times_out_the_first_head_and_later_ones() {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .header_read_timeout(TIMEOUT)
        .build()
        .unwrap();
    let addr = serve_by_hand(&metrics).await;
    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    // One request served, then half of the next head (hyper's own timeout).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let rest = read_until_closed(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("hello"),
        "the half head was not answered"
    );
    assert_timed_out(&registry, 2).await;
}

#[tokio::test]
async fn a_burst_of_connects_fits_in_the_default_backlog() {
    // Nobody accepts: every connect that completes waits in the backlog.
    // With the runtime's default of 128 the rest would wait for a SYN
    // retry, a second or more.
    let registry = Registry::new();
    let metrics = ServerMetrics::builder().registry(registry).build().unwrap();
    let listener = TrackedListener::bind("127.0.0.1:0", &metrics)
        .await
        .unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let connects = (0..400).map(|_| TcpStream::connect(addr));
    let all = tokio::time::timeout(
        Duration::from_millis(900),
        futures_util::future::join_all(connects),
    )
    .await
    .expect("400 connects completed without waiting for a SYN retry");
    assert!(all.iter().all(Result::is_ok));
    drop(listener);
}

#[tokio::test]
async fn the_backlog_is_configurable() {
    // A backlog of 8: of 100 connects nobody accepts, most are left to
    // SYN retries (a second at least), so they are still pending at 500 ms.
    let metrics = ServerMetrics::builder()
        .registry(Registry::new())
        .listen_backlog(8)
        .build()
        .unwrap();
    let listener = TrackedListener::bind("127.0.0.1:0", &metrics)
        .await
        .unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            if let Ok(stream) = TcpStream::connect(addr).await {
                connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(stream);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = connected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n < 50, "{n} of 100 connects completed with a backlog of 8");
    for t in tasks {
        t.abort();
    }
    drop(listener);
}
