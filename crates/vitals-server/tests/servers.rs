//! Two servers in one process, one registry: requests to each port land in
//! their own `server` series, `/debug/metrics?server=` shows exactly one
//! (by index or name), an unknown server is a 400 with a JSON error, and
//! either server's `/metrics` shows the whole process.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use axum::routing::get as route_get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use vitals::Registry;
use vitals_server::ServerMetrics;

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn each_server_has_its_own_series_and_debug_view() {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .server("public")
        .server("admin")
        .build()
        .unwrap();
    let routes = axum::Router::new()
        .route("/hello", route_get(|| async { "hello" }))
        .route("/users/{id}", route_get(|| async { "user" }));
    // One app, served on both ports; each listener records into its server.
    let app = metrics.instrument(routes);
    let public = common::serve(&metrics.server("public").unwrap(), app.clone()).await;
    let admin = common::serve(&metrics.server("1").unwrap(), app).await;
    for _ in 0..3 {
        assert_eq!(get(public, "/hello").await.0, 200);
    }
    assert_eq!(get(public, "/users/1").await.0, 200);
    for _ in 0..2 {
        assert_eq!(get(admin, "/hello").await.0, 200);
    }

    let requests = |server: &str, route: &str| {
        common::value(
            &registry.snapshot(),
            "http_server_requests",
            &[
                ("server", server),
                ("method", "GET"),
                ("route", route),
                ("status", "200"),
            ],
        )
    };
    assert_eq!(requests("public", "/hello"), Some(3));
    assert_eq!(requests("public", "/users/{id}"), Some(1));
    assert_eq!(requests("admin", "/hello"), Some(2));
    assert_eq!(requests("admin", "/users/{id}"), None);
    let snap = registry.snapshot();
    // Each client above opened one connection per request.
    let conns = |server| common::value(&snap, "server_connections", &[("server", server)]);
    assert_eq!((conns("public"), conns("admin")), (Some(4), Some(2)));

    // `?server=` by name or index: exactly that server's routes.
    for q in ["public", "0"] {
        let j = json(admin, &format!("/debug/metrics?server={q}&route=%2Fhello")).await;
        assert_eq!(j["requests"]["total"], 3, "{j}");
        assert_eq!(j["server"], 0, "{j}");
        assert_eq!(j["connections"]["total"], 4, "{j}");
    }
    let j = json(public, "/debug/metrics?server=admin").await;
    let routes: Vec<(&str, u64)> = j["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .filter(|(route, _)| !route.starts_with("/debug"))
        .collect();
    // The two `/debug/metrics` calls above went to the admin port too.
    assert_eq!(routes, [("/hello", 2)], "{j}");
    assert_eq!(
        j["servers"],
        serde_json::json!([{ "index": 0, "name": "public" }, { "index": 1, "name": "admin" }])
    );
    // Without it: both, summed.
    let j = json(public, "/debug/metrics?route=%2Fhello").await;
    assert_eq!(j["requests"]["total"], 5, "{j}");
    assert_eq!(j["server"], Value::Null);

    for unknown in ["2", "internal", ""] {
        let (status, body) = get(public, &format!("/debug/metrics?server={unknown}")).await;
        assert_eq!(status, 400, "{unknown}: {body}");
        let j: Value = serde_json::from_str(&body).unwrap();
        assert!(
            j["error"].as_str().unwrap().contains("unknown server"),
            "{j}"
        );
        assert_eq!(j["known_servers"].as_array().unwrap().len(), 2, "{j}");
    }

    // Either port's /metrics is the whole process.
    let (_, a) = get(public, "/metrics").await;
    let (_, b) = get(admin, "/metrics").await;
    for text in [&a, &b] {
        assert!(
            text.contains("server_connections_total{server=\"public\"}"),
            "{text}"
        );
        assert!(
            text.contains("server_connections_total{server=\"admin\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "http_server_requests_total{server=\"admin\",method=\"GET\",route=\"/hello\",status=\"200\"} 2"
            ),
            "{text}"
        );
    }
}

#[test]
fn server_declarations_are_checked() {
    let build = |b: vitals_server::ServerMetricsBuilder| b.registry(Registry::new()).build();
    assert!(build(ServerMetrics::builder().server("a").server("a")).is_err());
    assert!(build(ServerMetrics::builder().server("42")).is_err());
    assert!(build(ServerMetrics::builder().server("no spaces")).is_err());
    assert!(build(ServerMetrics::builder().servers(vitals_server::MAX_SERVERS + 1)).is_err());
    let m = build(ServerMetrics::builder().servers(2)).unwrap();
    assert_eq!(m.servers(), [(0, None), (1, None)]);
    assert_eq!(m.server("1").unwrap().server_index(), 1);
}
