//! Black-box tests of `/debug/events`, `/debug/history`, endpoint auth and
//! the task tracker: a real server on 127.0.0.1:0, real HTTP, WebSocket and
//! SSE clients (eventsource-stream parses the event stream).
//!
//! - `events`: `/debug/events` carries exactly what happened, filters by
//!   type, drops (and counts) for slow clients, ends at shutdown, caps its
//!   clients.
//! - `history`: `/debug/history` points match the requests sent.
//! - `auth`: every debug endpoint is protected and refusals are counted.
//! - `tasks`: the task tracker counts exactly.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseFrame, Sse};
use axum::routing::get;
use futures_util::Stream;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use vitals::{Format, Registry};
use vitals_server::{RouteMetrics, ServerMetrics};

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod events;
mod history;
mod tasks;

async fn sse(
    Query(q): Query<HashMap<String, u64>>,
    tracked: RouteMetrics,
) -> Sse<impl Stream<Item = Result<SseFrame, Infallible>>> {
    let n = q.get("n").copied().unwrap_or(3);
    let events =
        futures_util::stream::iter((0..n).map(|i| Ok(SseFrame::default().data(format!("{i}")))));
    Sse::new(tracked.sse(events))
}

fn app(metrics: &ServerMetrics) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("{{\"id\":{id}}}") }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .route("/ws", get(common::ws_echo))
        .route("/sse", get(sse))
        .merge(metrics.endpoints())
        .layer(metrics.layer())
}

struct Server {
    addr: SocketAddr,
    registry: Registry,
    metrics: ServerMetrics,
}

async fn start_with(
    f: impl FnOnce(vitals_server::ServerMetricsBuilder) -> vitals_server::ServerMetricsBuilder,
) -> Server {
    let registry = Registry::new();
    let metrics = f(ServerMetrics::builder().registry(registry.clone()))
        .build()
        .unwrap();
    let addr = common::serve(&metrics, app(&metrics)).await;
    Server {
        addr,
        registry,
        metrics,
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path` with extra headers; the response with its body still open.
async fn get_raw(
    s: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<hyper::body::Incoming> {
    let mut req = hyper::Request::get(format!("http://{}{}", s.addr, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client()
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap()
}

async fn get_with(s: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let res = get_raw(s, path, headers).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get_body(s: &Server, path: &str) -> (u16, String) {
    get_with(s, path, &[]).await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn exposition(s: &Server) -> String {
    String::from_utf8(s.registry.render(Format::Prometheus)).unwrap()
}
