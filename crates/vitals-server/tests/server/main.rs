//! Black-box tests: a real server on 127.0.0.1:0, real HTTP/1.1, HTTP/2,
//! WebSocket and SSE clients, and the metrics it reports afterwards.
//!
//! - `counting`: requests counted exactly per route template, status and
//!   method; random paths keep the series bounded.
//! - `streams`: HTTP/2 streams, WebSocket messages and SSE events.
//! - `connections`: clients leaving mid-request or mid-body, idle
//!   keep-alive connections, trackers without a tracked connection.
//! - `exposition`: `/debug/metrics` JSON and filters, `/metrics` format
//!   negotiation and namespace, hostile input keeping the exposition valid.
//! - `own_traffic`: the endpoints' own requests kept out of the
//!   application's figures, or counted in them when configured.
//! - `slow_clients`: the header-read timeout (slowloris) and the backlog.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use vitals::Registry;
use vitals_server::{RouteMetrics, ServerMetrics};

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod counting;
mod exposition;
mod own_traffic;
mod slow_clients;
mod streams;

async fn sse(
    Query(q): Query<HashMap<String, u64>>,
    tracked: RouteMetrics,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let n = q.get("n").copied().unwrap_or(3);
    let events =
        futures_util::stream::iter((0..n).map(|i| Ok(Event::default().data(format!("tick {i}")))));
    Sse::new(tracked.sse(events))
}

fn app(metrics: &ServerMetrics) -> Router {
    let api = Router::new().route(
        "/items/{item}",
        get(|Path(item): Path<String>| async move { item }),
    );
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("{{\"id\":{id}}}") }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(100)))
                    .await;
                "slow"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .route(
            "/flip/{n}",
            get(|Path(n): Path<u32>| async move {
                if n % 2 == 0 {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            })
            .post(|| async { StatusCode::CREATED }),
        )
        .route(
            "/big",
            get(|| async {
                // 64 MB in 64 KiB chunks, produced as the client reads.
                let chunks = futures_util::stream::iter(
                    (0..1024)
                        .map(|_| Ok::<_, Infallible>(bytes::Bytes::from(vec![b'x'; 64 * 1024]))),
                );
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route("/ws", get(common::ws_echo))
        .route("/sse", get(sse))
        .nest("/api", api)
        .merge(metrics.endpoints())
        .layer(metrics.layer())
}

struct Server {
    addr: SocketAddr,
    registry: Registry,
}

async fn start() -> Server {
    start_with(|b| b).await
}

async fn start_with(
    f: impl FnOnce(vitals_server::ServerMetricsBuilder) -> vitals_server::ServerMetricsBuilder,
) -> Server {
    let registry = Registry::new();
    let metrics = f(ServerMetrics::builder().registry(registry.clone()))
        .build()
        .unwrap();
    let addr = common::serve(&metrics, app(&metrics)).await;
    Server { addr, registry }
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_body(server: &Server, path: &str) -> (u16, String) {
    let uri = format!("http://{}{}", server.addr, path);
    let res = client().get(uri.parse().unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
