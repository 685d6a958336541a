//! Helpers shared by the black-box tests.
#![allow(dead_code)] // each test binary uses its own share of them

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use vitals_server::RouteMetrics;

use std::time::Duration;
use vitals::snapshot::Value;
use vitals::{Registry, Snapshot};

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

/// Waits (up to 3 s) until `check` passes on a fresh snapshot, since
/// sessions and connections end asynchronously; returns the last snapshot.
pub async fn eventually(registry: &Registry, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    for _ in 0..300 {
        let snap = registry.snapshot();
        if check(&snap) {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    registry.snapshot()
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
