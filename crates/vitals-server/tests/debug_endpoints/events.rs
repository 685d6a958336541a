//! `/debug/events`: the stream carries exactly what happened, in order,
//! with what each connection counted; the types filter selects groups and
//! rejects unknown ones; a slow client loses events (counted) and never
//! blocks emitters; streams end when shutdown starts; a client cap answers
//! 503 and frees its slots when clients leave.

use crate::common::{eventually, value};
use crate::{Server, exposition, get_body, get_raw, json, start_with};
use eventsource_stream::Eventsource;
use futures_util::{SinkExt, Stream, StreamExt};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::time::Duration;
use vitals::Event;
use vitals_test_support::wait_until_async;

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
