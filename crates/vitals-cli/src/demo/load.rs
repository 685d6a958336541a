//! The demo's load: HTTP/1 requests of every kind (each in a trace of its
//! own), some over one HTTP/2 connection, WebSocket chat sessions with
//! messages both ways, and Server-Sent Events subscribers.

use super::apps::HttpClient;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// WebSocket chat sessions kept open at once.
pub(super) const CHAT_SESSIONS: usize = 3;
/// SSE price subscribers kept open at once.
pub(super) const SSE_SUBSCRIBERS: usize = 2;

/// A new W3C `traceparent`: a random trace, sampled.
fn new_traceparent() -> String {
    format!(
        "00-{:016x}{:016x}-{:016x}-01",
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u64>() | 1
    )
}

/// Sends one GET with a trace of its own; returns the status, or 0 when
/// the request failed.
async fn get_status(client: &HttpClient, url: &str) -> u16 {
    let Ok(request) = http::Request::get(url)
        .header("traceparent", new_traceparent())
        .body(Empty::<bytes::Bytes>::new())
    else {
        return 0;
    };
    match client.request(request).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = res.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

/// Everything the demo sends, until dropped (its tasks are aborted then).
pub(super) fn start(frontend: SocketAddr, users: SocketAddr, rate: u32) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(http_mix(frontend, users, rate));
    for i in 0..CHAT_SESSIONS {
        tasks.spawn(chat_sessions(frontend, i));
    }
    for _ in 0..SSE_SUBSCRIBERS {
        tasks.spawn(price_subscribers(frontend));
    }
    tasks
}

/// About `rate` requests per second: checkouts (which call `users`),
/// look-ups, a few unknown pages, failures and slow calls; one look-up in
/// ten goes over a single HTTP/2 connection.
async fn http_mix(frontend: SocketAddr, users: SocketAddr, rate: u32) {
    let http1: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let http2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let id = rand::random_range(0..100u32);
        let (client, url) = match n % 20 {
            0 if n % 40 == 0 => (&http1, format!("http://{users}/fail")),
            1 => (
                &http1,
                format!("http://{users}/slow?ms={}", rand::random_range(50..400)),
            ),
            2 => (&http1, format!("http://{frontend}/no-such-page")),
            3..=9 => (&http1, format!("http://{frontend}/checkout/{id}")),
            10 => (&http1, format!("http://{frontend}/")),
            11 | 12 => (&http2, format!("http://{users}/users/{id}")),
            _ => (&http1, format!("http://{users}/users/{id}")),
        };
        let (client, url) = (client.clone(), url);
        tokio::spawn(async move {
            get_status(&client, &url).await;
        });
    }
}

/// One chat user after another: each sends 20 to 40 messages, 300 ms
/// apart, reads each echo, and says goodbye.
async fn chat_sessions(frontend: SocketAddr, who: usize) {
    let url = format!("ws://{frontend}/chat");
    loop {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            for i in 0..rand::random_range(20..40) {
                let text = format!("user {who} says hello {i}");
                if ws.send(Message::text(text)).await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let _ = ws.close(None).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One subscriber after another: each reads the price feed for 5 to 15
/// seconds, then leaves.
async fn price_subscribers(frontend: SocketAddr) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{frontend}/prices");
    loop {
        let Ok(request) = http::Request::get(url.as_str())
            .header("accept", "text/event-stream")
            .body(Empty::<bytes::Bytes>::new())
        else {
            return;
        };
        if let Ok(res) = client.request(request).await {
            let stay = Duration::from_secs(rand::random_range(5..15));
            let mut body = res.into_body();
            let _ = tokio::time::timeout(stay, async {
                while let Some(Ok(_)) = body.frame().await {}
            })
            .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_gets_a_trace_of_its_own() {
        let (a, b) = (new_traceparent(), new_traceparent());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4, "{a}");
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        assert!(parts[1].bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
