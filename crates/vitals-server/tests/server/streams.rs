//! Long-lived exchanges: HTTP/2 streams, WebSocket messages, bytes and
//! close codes, SSE events and bytes.

use crate::common::{eventually, value};
use crate::{client, start};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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
