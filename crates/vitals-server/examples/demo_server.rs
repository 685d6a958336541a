//! Every kind of traffic vitals-server measures, on one small server: the
//! app the README's tour and the dashboard benchmark use. Each feature also
//! has its own example (`websocket.rs`, `sse.rs`, …).
//!
//! Run: `cargo run -p vitals-server --example demo_server -- --listen 127.0.0.1:3000`
//!
//! Routes: `GET /` text, `GET /users/{id}` JSON, `GET /slow?ms=N` (sleeps
//! N ms, at most 60 000), `GET /fail` (500), `GET /ws` (WebSocket echo),
//! `GET /sse?n=N&interval_ms=M` (N events, M ms apart, then closes).
//!
//! Then open <http://127.0.0.1:3000/debug/> (the live dashboard) and send it
//! traffic: `curl 127.0.0.1:3000/users/7`, `curl 127.0.0.1:3000/fail`,
//! `curl -N '127.0.0.1:3000/sse?n=20'`. `curl 127.0.0.1:3000/metrics` is
//! the Prometheus text (OpenMetrics with
//! `-H 'Accept: application/openmetrics-text'`), `/debug/metrics` the JSON.

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use vitals_server::{RouteMetrics, ServerMetrics, TrackedListener, TrackedRouter};

/// Longest `/slow` sleep and most `/sse` events, so a client cannot pin
/// the demo forever.
const MAX_SLOW_MS: u64 = 60_000;
const MAX_SSE_EVENTS: u64 = 10_000;

/// A small instrumented server with every kind of route.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
}

/// Query of `/slow` and `/sse`.
#[derive(Deserialize)]
struct Params {
    ms: Option<u64>,
    n: Option<u64>,
    interval_ms: Option<u64>,
}

async fn user(Path(id): Path<String>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": id, "name": format!("user {id}") }))
}

async fn slow(Query(p): Query<Params>) -> String {
    let ms = p.ms.unwrap_or(100).min(MAX_SLOW_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn ws(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let mut socket = tracked.websocket(socket);
        while let Some(Ok(msg)) = socket.recv().await {
            let data = matches!(msg, Message::Text(_) | Message::Binary(_));
            if data && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

async fn sse(Query(p): Query<Params>, tracked: RouteMetrics) -> impl IntoResponse {
    let n = p.n.unwrap_or(5).min(MAX_SSE_EVENTS);
    let interval = Duration::from_millis(p.interval_ms.unwrap_or(100).min(MAX_SLOW_MS));
    let events = futures_util::stream::unfold(0, move |i| async move {
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

/// The demo's routes, before instrumentation. The metric-name test
/// (`tests/metric_names.rs`) serves this same app.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { "vitals demo server\n" }))
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n") }),
        )
        .route("/ws", get(ws))
        .route("/sse", get(sse))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    // The endpoints (/metrics, /debug/…) and the layer over everything.
    let app = metrics.instrument(routes());
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("demo server on http://{addr}");
    axum::serve(listener, TrackedRouter::new(app)).await
}
