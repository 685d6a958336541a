//! Custom metrics end to end: an application's own counter and gauge, in
//! the registry its vitals-server push client reads, reach a real
//! collector and come back from `/v1/services/{service}/custom`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;
use vitals::Registry;
use vitals_collector::{Collector, CollectorConfig, Role};
use vitals_server::{PushConfig, ServerMetrics};

async fn get(addr: std::net::SocketAddr, path: &str, key: &str) -> (u16, Value) {
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_apps_counter_and_gauge_reach_the_collectors_custom_api() {
    let collector = Collector::open(CollectorConfig {
        store: "sqlite::memory:".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ingest = collector.create_key("acme", Role::Ingest).await.unwrap();
    let read = collector.create_key("acme", Role::Read).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(collector.clone().serve(listener, std::future::pending()));

    let registry = Registry::new();
    let orders = registry
        .counter_vec(("orders_total", "Orders placed"), &["shop"])
        .unwrap();
    let depth = registry.gauge(("queue_depth", "Jobs waiting")).unwrap();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .push(
            PushConfig::new(&format!("http://{addr}"), &ingest)
                .unwrap()
                .service("shop")
                .instance("shop-1")
                .interval(Duration::from_secs(3600))
                .push_metrics(["orders_total", "queue_depth"]),
        )
        .build()
        .unwrap();
    let push = metrics.push_client().unwrap();

    orders.get(&["eu"]).add(3);
    depth.set(7);
    assert_eq!(
        push.flush(Duration::from_secs(5)).await.unwrap().delivered,
        1
    );
    orders.get(&["eu"]).add(4);
    depth.set(2);
    assert_eq!(
        push.flush(Duration::from_secs(5)).await.unwrap().delivered,
        1
    );

    let (status, list) = get(addr, "/v1/services/shop/custom?window=15m", &read).await;
    assert_eq!(status, 200, "{list}");
    let metrics_list = list["metrics"].as_array().unwrap();
    assert_eq!(metrics_list.len(), 2, "{list}");
    let c = metrics_list
        .iter()
        .find(|m| m["name"] == "orders_total")
        .unwrap();
    assert_eq!(c["kind"], "counter");
    assert_eq!(c["labels"], json!({ "shop": "eu" }));
    assert_eq!(c["value"], json!(7.0), "the cumulative value");
    // Both pushes in one minute leave one stored point (no increase seen
    // yet); across a minute boundary the increase is 4.
    let span = (list["window"]["to_ms"].as_i64().unwrap()
        - list["window"]["from_ms"].as_i64().unwrap()) as f64
        / 1000.0;
    let rate = c["rate_per_sec"].as_f64().unwrap();
    assert!(rate == 0.0 || (rate - 4.0 / span).abs() < 1e-12, "{rate}");
    let g = metrics_list
        .iter()
        .find(|m| m["name"] == "queue_depth")
        .unwrap();
    assert_eq!(g["kind"], "gauge");
    assert_eq!(
        (g["value"].clone(), g["min"].clone(), g["max"].clone()),
        (json!(2.0), json!(2.0), json!(7.0))
    );

    let (status, s) = get(
        addr,
        "/v1/services/shop/custom/queue_depth?window=15m&step=1m",
        &read,
    )
    .await;
    assert_eq!(status, 200, "{s}");
    let last = s["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|p| !p["value"].is_null())
        .unwrap()
        .clone();
    assert_eq!(last["value"], json!(2.0), "{s}");
    metrics.finish_push(Duration::from_secs(1)).await;
}
