//! Black-box tests: a real server on 127.0.0.1:0, real HTTP/1.1, HTTP/2,
//! WebSocket and SSE clients, and the metrics it reports afterwards.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitals::{Format, Registry};
use vitals_server::{ConnectionInfo, RouteMetrics, ServerMetrics, TrackedListener};

mod common;
use common::{eventually, value};

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
    let listener = TrackedListener::bind("127.0.0.1:0", &metrics)
        .await
        .unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = app(&metrics);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnectionInfo>(),
        )
        .await
        .unwrap();
    });
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

#[tokio::test]
async fn exact_counts_per_route_template() {
    let s = start().await;
    for _ in 0..3 {
        assert_eq!(get_body(&s, "/").await.0, 200);
    }
    assert_eq!(get_body(&s, "/users/1").await.0, 200);
    assert_eq!(get_body(&s, "/users/2").await.0, 200);
    assert_eq!(get_body(&s, "/api/items/x").await.0, 200);
    assert_eq!(get_body(&s, "/fail").await.0, 500);
    assert_eq!(get_body(&s, "/no/such/path").await.0, 404);
    let snap = eventually(
        &s.registry,
        "the request to /no/such/path, counted as unmatched 404",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
            ) == Some(1)
        },
    )
    .await;
    let req = |route: &str, status: &str| {
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(req("/", "200"), Some(3));
    assert_eq!(
        req("/users/{id}", "200"),
        Some(2),
        "both users share one series"
    );
    assert_eq!(
        req("/api/items/{item}", "200"),
        Some(1),
        "nested routers keep the full template"
    );
    assert_eq!(req("/fail", "500"), Some(1));
    assert_eq!(req("unmatched", "404"), Some(1));
    let errors = |route: &str| {
        value(
            &snap,
            "http_server_request_errors",
            &[("method", "GET"), ("route", route)],
        )
    };
    assert_eq!(errors("/fail"), Some(1));
    assert_eq!(errors("/"), None);
    let durations = |route: &str| {
        value(
            &snap,
            "http_server_request_duration_seconds",
            &[("method", "GET"), ("route", route)],
        )
    };
    assert_eq!(durations("/users/{id}"), Some(2));
    assert_eq!(value(&snap, "http_server_active_requests", &[]), Some(0));
    // No raw path ever becomes a label.
    let text = String::from_utf8(s.registry.render(Format::Prometheus)).unwrap();
    assert!(!text.contains("/users/1\""), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(value(&snap, "server_connections", &[]).unwrap() >= 1);
    assert!(value(&snap, "server_bytes_received", &[]).unwrap() > 0);
}

#[tokio::test]
async fn mixed_statuses_and_methods_on_one_route_count_exactly() {
    // The layer caches handles for the first (method, route, status) it sees;
    // everything else must still land in its own series.
    let s = start().await;
    for n in 0..10 {
        get_body(&s, &format!("/flip/{n}")).await;
    }
    let c: Client<_, String> = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..3 {
        let req = http::Request::post(format!("http://{}/flip/1", s.addr))
            .body(String::new())
            .unwrap();
        c.request(req)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
    }
    let snap = eventually(
        &s.registry,
        "the three POSTs to /flip/{n}, counted",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[
                    ("method", "POST"),
                    ("route", "/flip/{n}"),
                    ("status", "201"),
                ],
            ) == Some(3)
        },
    )
    .await;
    let req = |method: &str, status: &str| {
        value(
            &snap,
            "http_server_requests",
            &[
                ("method", method),
                ("route", "/flip/{n}"),
                ("status", status),
            ],
        )
    };
    assert_eq!(req("GET", "200"), Some(5));
    assert_eq!(req("GET", "503"), Some(5));
    assert_eq!(req("POST", "201"), Some(3));
    let by = |family: &str, method: &str| {
        value(&snap, family, &[("method", method), ("route", "/flip/{n}")])
    };
    assert_eq!(by("http_server_request_duration_seconds", "GET"), Some(10));
    assert_eq!(
        by("http_server_time_to_first_byte_seconds", "GET"),
        Some(10)
    );
    assert_eq!(by("http_server_request_duration_seconds", "POST"), Some(3));
    assert_eq!(by("http_server_request_errors", "GET"), Some(5));
    assert_eq!(by("http_server_request_errors", "POST"), None);
}

#[tokio::test]
async fn many_random_paths_keep_series_bounded() {
    let s = start().await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let uri = format!(
            "http://{}/random/{}/{}",
            s.addr,
            i.wrapping_mul(2_654_435_761),
            i
        );
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let res = c.get(uri.parse().unwrap()).await.unwrap();
            res.into_body().collect().await.unwrap();
        }));
        if tasks.len() >= 64 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let snap = eventually(
        &s.registry,
        "all 10 000 unmatched requests, counted",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
            ) == Some(10_000)
        },
    )
    .await;
    let fam = snap.family("http_server_requests").unwrap();
    assert_eq!(fam.series.len(), 1, "{:?}", fam.series);
}

#[tokio::test]
async fn http2_streams_are_counted() {
    let s = start().await;
    let c: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for i in 0..5 {
        let uri = format!("http://{}/users/{i}", s.addr);
        let res = c.get(uri.parse().unwrap()).await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        res.into_body().collect().await.unwrap();
    }
    let snap = eventually(&s.registry, "5 HTTP/2 streams, counted", |snap| {
        value(snap, "server_streams", &[]) == Some(5)
    })
    .await;
    assert_eq!(value(&snap, "server_streams", &[]), Some(5));
    assert_eq!(value(&snap, "server_streams_active", &[]), Some(0));
    assert_eq!(
        value(&snap, "server_connections", &[]),
        Some(1),
        "one HTTP/2 connection carries all streams"
    );
}

#[tokio::test]
async fn websocket_messages_bytes_and_close_code() {
    let s = start().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    use tokio_tungstenite::tungstenite::Message;
    for text in ["one", "two", "three!"] {
        socket.send(Message::text(text)).await.unwrap();
        let echo = socket.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    socket
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let route = [("route", "/ws")];
    let snap = eventually(&s.registry, "the WebSocket session to end", |snap| {
        value(snap, "websocket_connections_active", &route) == Some(0)
    })
    .await;
    assert_eq!(value(&snap, "websocket_connections", &route), Some(1));
    assert_eq!(value(&snap, "websocket_messages_received", &route), Some(3));
    assert_eq!(value(&snap, "websocket_messages_sent", &route), Some(3));
    assert_eq!(value(&snap, "websocket_bytes_received", &route), Some(12));
    assert_eq!(value(&snap, "websocket_bytes_sent", &route), Some(12));
    assert_eq!(
        value(
            &snap,
            "websocket_close_codes",
            &[("route", "/ws"), ("code", "1000")]
        ),
        Some(1)
    );
    assert_eq!(
        value(&snap, "websocket_session_duration_seconds", &route),
        Some(1)
    );
    // The upgrade is a request, but not a latency sample.
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/ws"), ("status", "101")]
        ),
        Some(1)
    );
    assert_eq!(
        value(
            &snap,
            "http_server_request_duration_seconds",
            &[("method", "GET"), ("route", "/ws")]
        ),
        None
    );
}

#[tokio::test]
async fn sse_events_and_bytes() {
    use eventsource_stream::Eventsource;
    let s = start().await;
    let uri = format!("http://{}/sse?n=5", s.addr);
    let res = client().get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    // Count the raw bytes while a real SSE parser reads the events.
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = bytes.clone();
    let body = http_body_util::BodyStream::new(res.into_body()).filter_map(move |frame| {
        let counted = counted.clone();
        async move {
            let data = frame.ok()?.into_data().ok()?;
            counted.fetch_add(data.len(), std::sync::atomic::Ordering::Relaxed);
            Some(Ok::<_, std::io::Error>(data))
        }
    });
    let events: Vec<_> = body.eventsource().collect().await;
    let data: Vec<String> = events.into_iter().map(|e| e.unwrap().data).collect();
    assert_eq!(data, ["tick 0", "tick 1", "tick 2", "tick 3", "tick 4"]);
    let route = [("route", "/sse")];
    let snap = eventually(&s.registry, "the SSE session to end", |snap| {
        value(snap, "sse_connections_active", &route) == Some(0)
    })
    .await;
    assert_eq!(value(&snap, "sse_connections", &route), Some(1));
    assert_eq!(value(&snap, "sse_events_sent", &route), Some(5));
    let sent = bytes.load(std::sync::atomic::Ordering::Relaxed) as i128;
    assert_eq!(value(&snap, "sse_bytes_sent", &route), Some(sent));
    assert_eq!(
        value(&snap, "sse_session_duration_seconds", &route),
        Some(1)
    );
    assert_eq!(
        value(
            &snap,
            "http_server_request_duration_seconds",
            &[("method", "GET"), ("route", "/sse")]
        ),
        None
    );
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/sse"), ("status", "200")]
        ),
        Some(1)
    );
}

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
    // No per-server or per-worker view in this version: refused, never
    // answered unfiltered.
    for unavailable in ["server=0", "server=1", "worker=0", "server=abc&route=%2F"] {
        let (status, body) = get_body(&s, &format!("/debug/metrics?{unavailable}")).await;
        assert_eq!(status, 400, "{unavailable}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(
            error.contains("is not available in this version"),
            "{unavailable}: {json}"
        );
        assert_eq!(
            json["known_filters"],
            serde_json::json!(["route"]),
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
    if !vitals_test_support::external::require_command(
        "promtool",
        "Debian package prometheus (scripts/test installs it)",
    ) {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&text).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "promtool rejected the exposition: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
