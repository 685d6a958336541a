//! A small instrumented server: the routes other issues and checks rely on.
//!
//! ```text
//! cargo run -p vitals-server --example demo_server -- --listen 127.0.0.1:3000
//! ```
//!
//! - `GET /` text, `GET /users/{id}` JSON, `GET /slow?ms=N` (sleeps N ms,
//!   at most 60 000), `GET /fail` (500), `GET /ws` (WebSocket echo),
//!   `GET /sse?n=N&interval_ms=M` (N events, M ms apart, then closes)
//! - `GET /metrics` (Prometheus or OpenMetrics by `Accept`),
//!   `GET /debug/metrics` (JSON), `GET /debug/` (the live dashboard: open
//!   http://127.0.0.1:3000/debug/ in a browser)

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use vitals_server::{ConnectionInfo, RouteMetrics, ServerMetrics, TrackedListener};

/// Longest `/slow` sleep, and most `/sse` events, so a client cannot pin
/// the demo forever.
const MAX_SLOW_MS: u64 = 60_000;
const MAX_SSE_EVENTS: u64 = 10_000;

#[derive(Deserialize)]
struct SlowParams {
    ms: Option<u64>,
}

#[derive(Deserialize)]
struct SseParams {
    n: Option<u64>,
    interval_ms: Option<u64>,
}

async fn user(Path(id): Path<String>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": id, "name": format!("user {id}") }))
}

async fn slow(Query(p): Query<SlowParams>) -> String {
    let ms = p.ms.unwrap_or(100).min(MAX_SLOW_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn fail() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n")
}

async fn ws(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let mut socket = tracked.websocket(socket);
        while let Some(Ok(msg)) = socket.recv().await {
            let close = matches!(msg, axum::extract::ws::Message::Close(_));
            if close || socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

async fn sse(Query(p): Query<SseParams>, tracked: RouteMetrics) -> impl IntoResponse {
    let n = p.n.unwrap_or(5).min(MAX_SSE_EVENTS);
    let interval = Duration::from_millis(p.interval_ms.unwrap_or(100).min(MAX_SLOW_MS));
    let events = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let event = Event::default().id(i.to_string()).data(format!("tick {i}"));
        Some((Ok::<_, Infallible>(event), i + 1))
    });
    Sse::new(tracked.sse(Box::pin(events))).keep_alive(KeepAlive::default())
}

/// The demo application (also used by the tests).
fn app(metrics: &ServerMetrics) -> Router {
    Router::new()
        .route("/", get(|| async { "vitals demo server\n" }))
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .route("/ws", get(ws))
        .route("/sse", get(sse))
        .merge(metrics.endpoints())
        .layer(metrics.layer())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:3000".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(a) => listen = a,
                None => {
                    return Err(std::io::Error::other(
                        "--listen needs an address, e.g. 127.0.0.1:3000",
                    ));
                }
            },
            "--help" | "-h" => {
                println!("usage: demo_server [--listen ADDR]   (default 127.0.0.1:3000)");
                return Ok(());
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unknown argument {other:?}; try --help"
                )));
            }
        }
    }
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let listener = TrackedListener::bind(&listen, &metrics).await?;
    eprintln!(
        "demo server on http://{}",
        axum::serve::Listener::local_addr(&listener)?
    );
    axum::serve(
        listener,
        app(&metrics).into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .await
}
