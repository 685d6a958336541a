//! Both ends of one edge, through a real collector: `caller` calls
//! `callee` through vitals-server's instrumented HTTP client (tower layer
//! over hyper-util's client), both push to an in-process collector, and
//! `/v1/connections` must show the `caller → callee` edge with the callee's
//! figures and the caller's (`caller_observed`) side by side, agreeing on
//! every count.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::ServiceExt;
use vitals::{Event, Registry};
use vitals_collector::{Collector, CollectorConfig, Role};
use vitals_server::{ConnectionInfo, PushConfig, ServerMetrics, TrackedListener};
use vitals_test_support::wait_until_async;

fn metrics(service: &str, collector: SocketAddr, key: &str) -> ServerMetrics {
    ServerMetrics::builder()
        .registry(Registry::new())
        .without_process_metrics()
        .without_runtime_metrics()
        .push(
            // Long intervals: only the test's flushes close them.
            PushConfig::new(&format!("http://{collector}"), key)
                .unwrap()
                .service(service)
                .instance(format!("{service}-1"))
                .interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap()
}

async fn read(collector: SocketAddr, path: &str, key: &str) -> Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(format!("http://{collector}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {json}");
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_carries_the_callers_and_the_callees_figures_and_they_agree() {
    let collector = Collector::open(CollectorConfig {
        store: "sqlite::memory:".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ingest = collector.create_key("acme", Role::Ingest).await.unwrap();
    let read_key = collector.create_key("acme", Role::Read).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = listener.local_addr().unwrap();
    tokio::spawn(collector.serve(listener, std::future::pending()));

    // The callee: a pushing server.
    let callee = metrics("callee", c, &ingest);
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    let _sub = callee.events().subscribe("test", move |e| {
        if matches!(e.event, Event::RequestCompleted { .. }) {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let app = callee.instrument(
        Router::new()
            .route(
                "/users/{id}",
                get(|Path(id): Path<u32>| async move { format!("user {id}") }),
            )
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
            ),
    );
    let listener = TrackedListener::bind("127.0.0.1:0", &callee).await.unwrap();
    let callee_addr = axum::serve::Listener::local_addr(&listener).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnectionInfo>(),
        )
        .await
        .unwrap();
    });

    // The caller: a pushing process whose client names the callee as peer
    // (the caller header is its push service, `caller`, by default).
    let caller = metrics("caller", c, &ingest);
    let client_metrics = caller.client("users-api").unwrap().peer("callee").unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(client_metrics.layer())
        .service(
            Client::builder(TokioExecutor::new())
                .build::<_, Empty<Bytes>>(client_metrics.connector(HttpConnector::new())),
        );
    let mut statuses = Vec::new();
    for path in [
        "/users/1", "/users/2", "/fail", "/users/3", "/fail", "/users/4", "/users/5",
    ] {
        let req = http::Request::get(format!("http://{callee_addr}{path}"))
            .body(Empty::new())
            .unwrap();
        let res = client.clone().oneshot(req).await.unwrap();
        statuses.push(res.status().as_u16());
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(statuses, [200, 200, 500, 200, 500, 200, 200]);

    // Both sides recorded every call; deliver both intervals.
    wait_until_async(
        "7 requests served",
        Duration::from_secs(10),
        async || match served.load(Ordering::SeqCst) {
            7 => Ok(()),
            n => Err(format!("{n} served")),
        },
    )
    .await;
    for m in [&callee, &caller] {
        let report = m
            .push_client()
            .unwrap()
            .flush(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!((report.rejected, report.pending), (0, 0), "{report:?}");
    }

    let answer = read(c, "/v1/connections?window=15m", &read_key).await;
    let edges = answer["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{answer}");
    let edge = &edges[0];
    assert_eq!(
        (edge["caller"].as_str(), edge["callee"].as_str()),
        (Some("caller"), Some("callee")),
        "{edge}"
    );
    // The callee's side …
    assert_eq!(edge["requests"], 7, "{edge}");
    assert_eq!(edge["errors"], 2, "{edge}");
    // … and the caller's, which agrees on the counts.
    let mine = &edge["caller_observed"];
    assert_eq!(mine["requests"], 7, "{edge}");
    assert_eq!(mine["errors"], 2, "{edge}");
    // The caller waits at least as long as the callee works, give or take
    // the sketches' 1 %.
    let (theirs, ours) = (
        edge["p95_ms"].as_f64().unwrap(),
        mine["p95_ms"].as_f64().unwrap(),
    );
    assert!(
        ours >= theirs * 0.98,
        "caller {ours} ms < callee {theirs} ms"
    );

    // The client series stay out of the caller's routes and totals.
    let routes = read(c, "/v1/services/caller/routes?window=15m", &read_key).await;
    assert_eq!(routes["routes"].as_array().unwrap().len(), 0, "{routes}");
}
