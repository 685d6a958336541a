//! What the server exposes: `/debug/metrics` as JSON with its filters,
//! `/metrics` negotiating its format with the namespace applied, and an
//! exposition that stays valid whatever paths, methods and headers arrive.

use crate::common::{eventually, value};
use crate::{client, get_body, start, start_with};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitals::Format;

#[tokio::test]
async fn debug_metrics_json_and_filters() {
    let s = start().await;
    for _ in 0..4 {
        get_body(&s, "/users/7").await;
    }
    get_body(&s, "/fail").await;
    let (status, body) = get_body(&s, "/debug/metrics").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "uptime_seconds",
        "connections",
        "streams",
        "requests",
        "bytes",
        "websocket",
        "sse",
        "workers",
        "tasks",
        "routes",
        "custom",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["requests"]["total"], 5);
    assert_eq!(json["requests"]["errors"], 1);
    assert!(json["requests"]["rate_per_sec"].as_f64().unwrap() > 0.0);
    assert!(json["requests"]["p99_ms"].as_f64().is_some());
    let routes = json["routes"].as_array().unwrap();
    let users = routes.iter().find(|r| r["route"] == "/users/{id}").unwrap();
    assert_eq!(users["requests"], 4);
    assert_eq!(users["method"], "GET");

    let (status, body) = get_body(&s, "/debug/metrics?route=%2Fusers%2F%7Bid%7D").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["requests"]["total"], 4);
    assert_eq!(json["routes"].as_array().unwrap().len(), 1);

    for bad in ["route=%2Fnope", "route=a&route=b"] {
        let (status, body) = get_body(&s, &format!("/debug/metrics?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].as_str().unwrap().len() > 10, "{json}");
    }
    // No per-worker view in this version: refused, never answered
    // unfiltered.
    let (status, body) = get_body(&s, "/debug/metrics?worker=0").await;
    assert_eq!(status, 400, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("is not available in this version"),
        "{json}"
    );
    assert_eq!(
        json["known_filters"],
        serde_json::json!(["route", "server", "client"]),
        "{json}"
    );
    // One server (none declared): `?server=0` is it; any other server or
    // an undeclared client is a 400 naming the known ones.
    let (status, body) = get_body(&s, "/debug/metrics?server=0&route=%2Fusers%2F%7Bid%7D").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["requests"]["total"], 4, "{json}");
    for unknown in ["server=1", "server=abc&route=%2F", "client=0"] {
        let (status, body) = get_body(&s, &format!("/debug/metrics?{unknown}")).await;
        assert_eq!(status, 400, "{unknown}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(error.starts_with("unknown "), "{unknown}: {json}");
        assert!(
            json.get("known_servers").is_some() || json.get("known_clients").is_some(),
            "{json}"
        );
    }
    let long = format!("/debug/metrics?route={}", "x".repeat(5000));
    assert_eq!(get_body(&s, &long).await.0, 400);
    let text = String::from_utf8(s.registry.render(Format::Prometheus)).unwrap();
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 7"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_endpoint_negotiates_format_and_namespace_applies() {
    let s = start_with(|b| b.namespace("pagi")).await;
    get_body(&s, "/").await;
    let c: Client<_, Empty<bytes::Bytes>> = client();
    let req = http::Request::get(format!("http://{}/metrics", s.addr))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .body(Empty::new())
        .unwrap();
    let res = c.request(req).await.unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("\npagi_server_connections_total "), "{body}");
    assert!(
        body.contains(
            "pagi_http_server_requests_total{method=\"GET\",route=\"/\",status=\"200\"} 1"
        ),
        "{body}"
    );
    assert!(
        body.contains("# TYPE pagi_server_uptime_seconds gauge"),
        "{body}"
    );
    // Byte counters are named as the contract says, the unit not doubled.
    assert!(
        body.contains("# TYPE pagi_server_bytes_sent counter\n")
            && body.contains("\npagi_server_bytes_sent_total ")
            && body.contains("\npagi_server_bytes_received_total "),
        "{body}"
    );
    assert!(!body.contains("_bytes_total"), "{body}");
    let (_, text) = get_body(&s, "/metrics").await;
    assert!(
        text.contains("# TYPE pagi_server_connections_total counter"),
        "{text}"
    );
    for name in [
        "pagi_server_bytes_sent_total",
        "pagi_server_bytes_received_total",
        "pagi_websocket_bytes_received_total",
        "pagi_websocket_bytes_sent_total",
        "pagi_sse_bytes_sent_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} counter\n")),
            "{name}:\n{text}"
        );
    }
    assert!(!text.contains("_bytes_total"), "{text}");
    // Process and runtime figures are read at scrape time (not namespaced:
    // they are the standard names every exporter uses).
    for name in [
        "process_threads ",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "tokio_runtime_workers ",
        "tokio_runtime_alive_tasks ",
    ] {
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} missing:\n{text}"
        );
    }
    // A hostile Accept header gets the default format and is counted.
    let huge = format!("application/openmetrics-text,{}", "x".repeat(5000));
    let req = http::Request::get(format!("http://{}/metrics", s.addr))
        .header("accept", huge)
        .body(Empty::new())
        .unwrap();
    let res = c.request(req).await.unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        body.contains("vitals_rejected_total{reason=\"accept_header_invalid\"} 1"),
        "{body}"
    );
}

#[tokio::test]
async fn hostile_paths_methods_and_headers_keep_the_exposition_valid() {
    let s = start().await;
    let hostile = [
        "GET /%22quote%5C%0Anewline HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        "FOO / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        "GET /users/%F0%9F%98%80 HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\nX-Evil: {}\r\n\r\n",
            "a".repeat(4000),
            "\"\\".repeat(1000)
        ),
        "GET /users/1 HTTP/1.1\r\nHost: x\r\nAccept: \"}\n{\r\n\r\n".to_owned(),
        "NOT HTTP AT ALL\r\n\r\n".to_owned(),
    ];
    for raw in &hostile {
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
        })
        .await;
    }
    // `/` serves GET only: axum answers FOO with 405 under the route's
    // template, and an unknown method is labelled _OTHER.
    let snap = eventually(
        &s.registry,
        "the FOO request, counted as _OTHER / 405",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[("method", "_OTHER"), ("route", "/"), ("status", "405")],
            ) == Some(1)
        },
    )
    .await;
    let fam = snap.family("http_server_requests").unwrap();
    assert!(
        fam.series.iter().any(|s| s.labels["method"] == "_OTHER"),
        "a FOO request is labelled _OTHER: {:?}",
        fam.series
    );
    assert!(fam.series.iter().all(|s| s.labels["route"] == "unmatched"
        || s.labels["route"] == "/users/{id}"
        || s.labels["route"] == "/"));
    for s in &fam.series {
        assert!(
            ["GET", "_OTHER"].contains(&s.labels["method"].as_str()),
            "{s:?}"
        );
    }
    let text = s.registry.render(Format::Prometheus);
    // The exposition stays valid for Prometheus's own checker.
    // Any lint finding is accepted here: the point is that it parses.
    let _ = vitals_test_support::external::promtool_check_metrics(&text);
}
