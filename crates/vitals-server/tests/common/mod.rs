//! Helpers shared by the black-box tests.
#![allow(dead_code)] // each test binary uses its own share of them

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use std::net::SocketAddr;
use vitals_server::{ConnectionInfo, RouteMetrics, ServerMetrics, TrackedListener, TrackedRouter};

use std::time::Duration;
use vitals::snapshot::Value;
use vitals::{Registry, Snapshot};
use vitals_test_support::wait_until_async;

/// The value of one series as an integer: counters and gauges as they are,
/// histograms as their count, floats truncated. `None` if it does not exist.
pub fn value(snap: &Snapshot, family: &str, labels: &[(&str, &str)]) -> Option<i128> {
    match &snap.family(family)?.series(labels)?.value {
        Value::Unsigned { value } => Some(*value as i128),
        Value::Signed { value } => Some(*value as i128),
        Value::Histogram(h) => Some(h.count as i128),
        Value::Float { value } => Some(*value as i128),
    }
}

/// Waits until `check` passes on a fresh snapshot, since sessions and
/// connections end asynchronously, and returns that snapshot. Fails the
/// test after 10 s, naming `what` was awaited and listing every series of
/// the last snapshot (the wait ends as soon as `check` passes, so the long
/// timeout only costs time on a failure).
#[track_caller]
pub fn eventually<'a>(
    registry: &'a Registry,
    what: &'a str,
    check: impl Fn(&Snapshot) -> bool + 'a,
) -> impl Future<Output = Snapshot> + 'a {
    wait_until_async(what, Duration::from_secs(10), async move || {
        let snap = registry.snapshot();
        if check(&snap) {
            Ok(snap)
        } else {
            Err(Series(snap))
        }
    })
}

/// A snapshot shown one series a line: `family{label="value"} value`.
struct Series(Snapshot);

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for family in &self.0.families {
            for series in &family.series {
                let labels: Vec<String> = series
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                let value = match &series.value {
                    Value::Unsigned { value } => value.to_string(),
                    Value::Signed { value } => value.to_string(),
                    Value::Float { value } => value.to_string(),
                    Value::Histogram(h) => format!("count {}", h.count),
                };
                write!(f, "\n  {}{{{}}} {value}", family.name, labels.join(","))?;
            }
        }
        Ok(())
    }
}

/// A tracked WebSocket route that echoes every message until the client
/// closes.
pub async fn ws_echo(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let mut socket = tracked.websocket(socket);
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) || socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

/// Serves `app` on a [`TrackedListener`] at `127.0.0.1:0` in a background
/// task, as `axum::serve` with a [`TrackedRouter`] (which hands each request
/// its connection); returns the address it listens on.
pub async fn serve(metrics: &ServerMetrics, app: axum::Router) -> SocketAddr {
    let listener = TrackedListener::bind("127.0.0.1:0", metrics)
        .await
        .expect("bind 127.0.0.1:0");
    let addr = axum::serve::Listener::local_addr(&listener).expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, TrackedRouter::new(app))
            .await
            .expect("the test server runs");
    });
    addr
}

/// Like [`serve`], with the connection handed over the other supported
/// way: `into_make_service_with_connect_info::<ConnectionInfo>()`.
pub async fn serve_with_connect_info(metrics: &ServerMetrics, app: axum::Router) -> SocketAddr {
    let listener = TrackedListener::bind("127.0.0.1:0", metrics)
        .await
        .expect("bind 127.0.0.1:0");
    let addr = axum::serve::Listener::local_addr(&listener).expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnectionInfo>(),
        )
        .await
        .expect("the test server runs");
    });
    addr
}
