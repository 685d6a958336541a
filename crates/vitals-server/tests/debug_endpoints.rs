//! Black-box tests of `/debug/events`, `/debug/history`, endpoint auth and
//! the task tracker: a real server on 127.0.0.1:0, real HTTP, WebSocket and
//! SSE clients (eventsource-stream parses the event stream).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseFrame, Sse};
use axum::routing::get;
use base64::Engine as _;
use eventsource_stream::Eventsource;
use futures_util::{SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use vitals::{Event, Format, Registry};
use vitals_server::{ConnectionInfo, RouteMetrics, ServerMetrics, TrackedListener};
use vitals_test_support::wait_until_async;

mod common;
use common::{eventually, value};

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

type Events = Pin<Box<dyn Stream<Item = eventsource_stream::Event> + Send>>;

/// Opens `/debug/events{query}` and returns its parsed events.
async fn subscribe(s: &Server, query: &str) -> Events {
    let res = get_raw(s, &format!("/debug/events{query}"), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let body = http_body_util::BodyStream::new(res.into_body())
        .filter_map(|f| async move { f.ok()?.into_data().ok().map(Ok::<_, std::io::Error>) });
    Box::pin(body.eventsource().map(|e| e.unwrap()))
}

async fn next_event(events: &mut Events) -> eventsource_stream::Event {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream is open")
}

/// `(type, summary)` of an SSE event, after checking that `event:`, `id:`
/// and the JSON record agree.
fn summary(e: &eventsource_stream::Event) -> (String, String) {
    let data = json(&e.data);
    assert_eq!(data["type"], e.event.as_str(), "{data}");
    assert_eq!(data["id"].as_u64().unwrap().to_string(), e.id, "{data}");
    assert!(data["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let detail = match e.event.as_str() {
        "request_completed" => format!("{} {} {}", data["method"], data["route"], data["status"]),
        "web_socket_message" => format!("{} {}", data["direction"], data["bytes"]),
        "web_socket_closed" => format!("{} {}", data["route"], data["code"]),
        "sse_event" => format!("{} {}", data["route"], data["index"]),
        "sse_closed" => format!("{} {}", data["route"], data["events"]),
        "task" => format!("{} {}", data["queue"], data["state"]),
        _ => data["route"].to_string(),
    };
    (e.event.clone(), detail.replace('"', ""))
}

#[tokio::test]
async fn events_stream_carries_exactly_what_happened_in_order() {
    let s = start_with(|b| b).await;
    let mut events = subscribe(&s, "?types=request,websocket,sse").await;

    assert_eq!(get_body(&s, "/users/1").await.0, 200);
    assert_eq!(get_body(&s, "/fail").await.0, 500);

    // One WebSocket session: one message each way, closed by the client.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hi");
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    socket
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let route = [("route", "/ws")];
    eventually(&s.registry, "the WebSocket session to end", |snap| {
        value(snap, "websocket_connections_active", &route) == Some(0)
    })
    .await;

    // One SSE stream of two events, read to the end.
    let (status, body) = get_body(&s, "/sse?n=2").await;
    assert_eq!(status, 200);
    assert_eq!(body.matches("data:").count(), 2);
    eventually(&s.registry, "the SSE stream to end", |snap| {
        value(snap, "sse_connections_active", &[("route", "/sse")]) == Some(0)
    })
    .await;
    // A last request marks the end: nothing may come between.
    assert_eq!(get_body(&s, "/users/2").await.0, 200);

    let expected = [
        ("request_completed", "GET /users/{id} 200"),
        ("request_completed", "GET /fail 500"),
        ("request_completed", "GET /ws 101"),
        ("web_socket_opened", "/ws"),
        ("web_socket_message", "received 2"),
        ("web_socket_message", "sent 2"),
        ("web_socket_closed", "/ws 1000"),
        ("sse_opened", "/sse"),
        ("sse_event", "/sse 1"),
        ("sse_event", "/sse 2"),
        ("request_completed", "GET /sse 200"),
        ("sse_closed", "/sse 2"),
        ("request_completed", "GET /users/{id} 200"),
    ];
    let mut got = Vec::new();
    let mut last_id = 0;
    for _ in 0..expected.len() {
        let e = next_event(&mut events).await;
        let id: u64 = e.id.parse().unwrap();
        assert!(id > last_id, "ids increase: {id} after {last_id}");
        last_id = id;
        got.push(summary(&e));
    }
    let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, expected);

    // The events stream itself is not an application SSE session: its
    // bytes stay out of the SSE figures, while /sse's are there.
    let snap = s.registry.snapshot();
    assert!(value(&snap, "sse_bytes_sent", &[("route", "/sse")]).unwrap_or(0) > 0);
    assert_eq!(
        value(&snap, "sse_bytes_sent", &[("route", "/debug/events")]),
        None
    );
}

#[tokio::test]
async fn connection_events_report_what_the_connection_counted() {
    let s = start_with(|b| b).await;
    let mut events = subscribe(&s, "?types=connection").await;
    // A fresh client: one new connection, closed when the client goes.
    let (status, body) = get_body(&s, "/users/5").await;
    assert_eq!((status, body.as_str()), (200, "{\"id\":5}"));
    let opened = json(&next_event(&mut events).await.data);
    assert_eq!(opened["type"], "connection_opened", "{opened}");
    assert!(
        opened["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{opened}"
    );
    let closed = json(&next_event(&mut events).await.data);
    assert_eq!(closed["type"], "connection_closed", "{closed}");
    assert_eq!(closed["conn_id"], opened["conn_id"]);
    // The request and its response crossed this connection.
    assert!(closed["bytes_received"].as_u64().unwrap() > 30, "{closed}");
    assert!(closed["bytes_sent"].as_u64().unwrap() > 60, "{closed}");
    // Emitted after the gauge was updated: the subscriber's view agrees.
    assert_eq!(
        value(&s.registry.snapshot(), "server_connections_active", &[]),
        Some(1) // the event stream's own connection
    );
}

#[tokio::test]
async fn types_filter_selects_groups_and_rejects_unknown_ones() {
    let s = start_with(|b| b).await;
    let mut tasks_only = subscribe(&s, "?types=task").await;
    get_body(&s, "/users/1").await; // a request event, filtered out
    let q = s.metrics.tasks().queue("mail");
    q.enqueued();
    q.start().complete();
    let got: Vec<(String, String)> = [
        next_event(&mut tasks_only).await,
        next_event(&mut tasks_only).await,
        next_event(&mut tasks_only).await,
    ]
    .iter()
    .map(summary)
    .collect();
    assert_eq!(
        got,
        [
            ("task".to_owned(), "mail enqueued".to_owned()),
            ("task".to_owned(), "mail started".to_owned()),
            ("task".to_owned(), "mail completed".to_owned()),
        ]
    );

    for bad in ["types=request,bogus", "types=", "types=sse&types=task"] {
        let (status, body) = get_body(&s, &format!("/debug/events?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let j = json(&body);
        assert!(j["error"].as_str().unwrap().len() > 10, "{j}");
        assert_eq!(
            j["known_types"].as_array().unwrap().len(),
            Event::GROUPS.len()
        );
    }
    assert!(
        exposition(&s).contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 3\n"),
        "{}",
        exposition(&s)
    );
}

#[tokio::test]
async fn a_slow_client_loses_events_counted_and_never_blocks_emitters() {
    let s = start_with(|b| b.events_buffer(8)).await;
    let mut events = subscribe(&s, "?types=custom").await;
    let bus = s.registry.events().clone();
    const N: usize = 5000;
    // The client reads nothing while these are emitted, and this test's
    // (single-threaded) runtime cannot run the server's stream meanwhile:
    // the loop ending at all shows emitters never wait for a reader.
    for i in 0..N {
        let mut fields = serde_json::Map::new();
        fields.insert("i".into(), i.into());
        bus.emit(Event::Custom {
            name: "load".into(),
            fields,
        });
    }
    let dropped: u64 = bus
        .dropped_counts()
        .into_iter()
        .filter(|(n, _)| n == vitals_server::EVENTS_SUBSCRIBER)
        .map(|(_, n)| n)
        .sum();
    assert!(dropped > 0 && dropped < N as u64, "{dropped}");
    let kept = N - dropped as usize;
    let mut last = -1i64;
    for _ in 0..kept {
        let e = next_event(&mut events).await;
        assert_eq!(e.event, "custom");
        let i = json(&e.data)["fields"]["i"].as_i64().unwrap();
        assert!(i > last, "order kept: {i} after {last}");
        last = i;
    }
    let text = exposition(&s);
    assert!(
        text.contains(&format!(
            "vitals_events_dropped_total{{subscriber=\"debug_events\"}} {dropped}\n"
        )),
        "{text}"
    );
    // Nothing more is queued for this client: the next event is a new one.
    bus.emit(Event::Custom {
        name: "after".into(),
        fields: Default::default(),
    });
    let e = next_event(&mut events).await;
    assert_eq!(json(&e.data)["name"], "after");
}

#[tokio::test]
async fn streams_end_when_shutdown_starts() {
    let s = start_with(|b| b).await;
    let mut all = subscribe(&s, "").await;
    let mut requests = subscribe(&s, "?types=request").await;
    s.metrics.shutdown_started();
    // (The second client's connection_opened may come first.)
    loop {
        let e = next_event(&mut all).await;
        if e.event == "lifespan" {
            assert_eq!(json(&e.data)["phase"], "shutdown_started");
            break;
        }
    }
    for stream in [&mut all, &mut requests] {
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(matches!(end, Ok(None)), "the stream ended");
    }
}

#[tokio::test]
async fn client_cap_answers_503_and_frees_slots_when_clients_leave() {
    let s = start_with(|b| {
        b.events_max_clients(2)
            .events_heartbeat(Duration::from_millis(50))
    })
    .await;
    let first = get_raw(&s, "/debug/events", &[]).await;
    assert_eq!(first.status(), 200);
    let mut second = get_raw(&s, "/debug/events", &[]).await;
    assert_eq!(second.status(), 200);
    // The heartbeat is an SSE comment.
    let frame = tokio::time::timeout(Duration::from_secs(5), second.body_mut().frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        frame.into_data().unwrap(),
        bytes::Bytes::from_static(b": heartbeat\n\n")
    );

    let third = get_raw(&s, "/debug/events", &[]).await;
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["content-type"], "application/json");
    let body = third.into_body().collect().await.unwrap().to_bytes();
    let j = json(&String::from_utf8_lossy(&body));
    assert!(j["error"].as_str().unwrap().contains("at most 2"), "{j}");
    assert!(exposition(&s).contains("vitals_rejected_total{reason=\"debug_events_clients\"} 1\n"));

    // A client leaving frees its slot (noticed at the next heartbeat).
    drop(first);
    wait_until_async(
        "a /debug/events slot freed by the client that left",
        Duration::from_secs(10),
        async || match get_raw(&s, "/debug/events", &[]).await.status().as_u16() {
            200 => Ok(()),
            other => Err(format!("status {other}")),
        },
    )
    .await;
}

#[tokio::test]
async fn history_points_match_the_requests_sent() {
    let s = start_with(|b| b.history(Duration::from_millis(100), 50)).await;
    for i in 0..7 {
        assert_eq!(get_body(&s, &format!("/users/{i}")).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(get_body(&s, "/fail").await.0, 500);
    }
    // Let the sampler take a few points after the last request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, body) = get_body(&s, "/debug/history").await;
    assert_eq!(status, 200, "{body}");
    let h = json(&body);
    assert_eq!(h["interval_ms"], 100);
    assert_eq!(h["capacity"], 50);
    let points = h["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{h}");
    let (mut requests, mut errors) = (0, 0);
    for p in points {
        for key in [
            "t_ms",
            "uptime_seconds",
            "connections_active",
            "streams_active",
            "requests_active",
            "rate_per_sec",
            "errors_per_sec",
            "avg_latency_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "sent_rate_kbps",
            "recv_rate_kbps",
            "websocket_active",
            "sse_active",
            "tasks_in_flight",
        ] {
            assert!(p.get(key).is_some(), "missing {key}: {p}");
        }
        let n = p["requests"].as_u64().unwrap();
        let span = p["span_ms"].as_u64().unwrap() as f64 / 1000.0;
        let rate = p["rate_per_sec"].as_f64().unwrap();
        // The rate is the point's own count over its own span.
        assert!(
            (rate * span - n as f64).abs() < 0.01 * n.max(1) as f64,
            "{p}"
        );
        let err_rate = p["errors_per_sec"].as_f64().unwrap();
        let e = p["errors"].as_u64().unwrap();
        assert!(
            (err_rate * span - e as f64).abs() < 0.01 * e.max(1) as f64,
            "{p}"
        );
        // Percentiles exist exactly when requests finished in the point.
        assert_eq!(p["p50_ms"].is_null(), n == 0, "{p}");
        assert_eq!(p["p99_ms"].is_null(), n == 0, "{p}");
        if n > 0 {
            assert!(p["sent_rate_kbps"].as_f64().unwrap() > 0.0, "{p}");
        }
        requests += n;
        errors += e;
    }
    assert_eq!((requests, errors), (10, 3), "{h}");

    // since_ms keeps only newer points.
    let last = points.last().unwrap()["t_ms"].as_u64().unwrap();
    let (_, body) = get_body(&s, &format!("/debug/history?since_ms={last}")).await;
    let newer = json(&body);
    assert!(
        newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t_ms"].as_u64().unwrap() > last)
    );
    let first = points[0]["t_ms"].as_u64().unwrap();
    let (_, body) = get_body(&s, &format!("/debug/history?since_ms={first}")).await;
    assert!(json(&body)["points"].as_array().unwrap().len() >= points.len() - 1);

    for bad in ["since_ms=abc", "since_ms=-5", "since_ms=1&since_ms=2"] {
        let (status, body) = get_body(&s, &format!("/debug/history?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(json(&body)["error"].as_str().unwrap().contains("since_ms"));
    }
    assert!(exposition(&s).contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 3\n"));
}

#[tokio::test]
async fn auth_protects_every_endpoint_and_counts_refusals() {
    let s = start_with(|b| b.auth_bearer("t0ken").auth_basic("ops", "pw")).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good_basic = format!("Basic {}", b64("ops:pw"));
    let bad_basic = format!("Basic {}", b64("ops:pX"));

    // No credentials: 401 with both challenges and a JSON error.
    let res = get_raw(&s, "/metrics", &[]).await;
    assert_eq!(res.status(), 401);
    let challenges: Vec<&str> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"vitals\"",
            "Basic realm=\"vitals\", charset=\"UTF-8\""
        ]
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(json(&String::from_utf8_lossy(&body))["error"].is_string());

    let long = format!("Bearer {}", "x".repeat(5000));
    for (path, header, want) in [
        ("/debug/metrics", None, 401),
        ("/debug/history", None, 401),
        ("/debug/events", None, 401),
        ("/metrics", Some("Bearer wrong"), 401),
        ("/metrics", Some("Bearer t0ke"), 401),
        ("/metrics", Some("Bearer t0ken0"), 401),
        ("/metrics", Some(bad_basic.as_str()), 401),
        ("/metrics", Some("Basic %%%"), 401),
        ("/metrics", Some(long.as_str()), 401),
        ("/metrics", Some("Bearer t0ken"), 200),
        ("/metrics", Some(good_basic.as_str()), 200),
        ("/debug/metrics", Some("bearer t0ken"), 200),
        ("/debug/history", Some(good_basic.as_str()), 200),
        ("/debug/events", Some("Bearer t0ken"), 200),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("authorization", h)).into_iter().collect();
        let res = get_raw(&s, path, &headers).await;
        assert_eq!(res.status().as_u16(), want, "{path} {header:?}");
    }
    // The application's own routes stay open; unknown paths stay 404.
    assert_eq!(get_body(&s, "/users/1").await.0, 200);
    assert_eq!(get_body(&s, "/debug/nope").await.0, 404);

    let text = exposition(&s);
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_auth_missing\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_auth_invalid\"} 6\n"),
        "{text}"
    );
}

#[tokio::test]
async fn task_tracker_counts_exactly_in_debug_metrics_and_exposition() {
    let s = start_with(|b| b.namespace("app")).await;
    let emails = s.metrics.tasks().queue("emails");
    let thumbs = s.metrics.tasks().queue("thumbs");
    for _ in 0..5 {
        emails.enqueued();
    }
    for _ in 0..3 {
        emails.start().complete();
    }
    emails.start().fail();
    emails.start().retry();
    emails.start().complete();
    let running = thumbs.start();
    assert_eq!(
        thumbs.run(async { Err::<(), _>("corrupt image") }).await,
        Err("corrupt image")
    );

    let (status, body) = get_body(&s, "/debug/metrics").await;
    assert_eq!(status, 200);
    let t = &json(&body)["tasks"];
    assert_eq!(t["enqueued"], 5, "{t}");
    assert_eq!(t["started"], 8, "{t}");
    assert_eq!(t["completed"], 4, "{t}");
    assert_eq!(t["failed"], 2, "{t}");
    assert_eq!(t["retried"], 1, "{t}");
    assert_eq!(t["in_flight"], 1, "{t}");
    assert!(t["rate_per_sec"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["p95_ms"].as_f64().is_some(), "{t}");
    let queues = t["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["queue"], "emails");
    assert_eq!(queues[0]["started"], 6);
    assert_eq!(queues[0]["in_flight"], 0);
    assert_eq!(queues[1]["queue"], "thumbs");
    assert_eq!(queues[1]["failed"], 1);
    assert_eq!(queues[1]["in_flight"], 1);

    let text = exposition(&s);
    for line in [
        "app_task_enqueued_total{queue=\"emails\"} 5\n",
        "app_task_started_total{queue=\"emails\"} 6\n",
        "app_task_completed_total{queue=\"emails\"} 4\n",
        "app_task_failed_total{queue=\"emails\"} 1\n",
        "app_task_retried_total{queue=\"emails\"} 1\n",
        "app_task_in_flight{queue=\"thumbs\"} 1\n",
        "app_task_duration_seconds_count{queue=\"emails\"} 5\n",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    running.complete();
    let (_, body) = get_body(&s, "/debug/metrics").await;
    assert_eq!(json(&body)["tasks"]["in_flight"], 0);
}
