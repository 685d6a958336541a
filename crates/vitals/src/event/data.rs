//! The lifecycle events and the data they carry: what instrumentation
//! emits on an [`EventBus`](super::EventBus) and subscribers receive.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Direction of a message on a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client to the server.
    Received,
    /// From the server to the client.
    Sent,
}

/// A phase of the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifespanPhase {
    /// Start-up finished; `duration_secs` is how long it took.
    Startup,
    /// Shutdown began (graceful drain started).
    ShutdownStarted,
    /// Shut-down finished; `duration_secs` is how long it took.
    Shutdown,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Put on the queue.
    Enqueued,
    /// Picked up by a worker.
    Started,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Put back for another attempt.
    Retried,
}

/// Something that happened in an instrumented server.
///
/// Serialised as JSON with a `type` tag (`{"type":"request_completed",…}`),
/// which is what `/debug/events` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A connection was accepted.
    ConnectionOpened {
        /// Connection id, unique within the process.
        conn_id: u64,
        /// Peer address, when known.
        peer: Option<String>,
    },
    /// A connection closed.
    ConnectionClosed {
        /// Connection id.
        conn_id: u64,
        /// How long it was open.
        duration_secs: f64,
        /// Bytes written to it.
        bytes_sent: u64,
        /// Bytes read from it.
        bytes_received: u64,
    },
    /// Accepting or setting up a connection failed.
    ConnectionFailed {
        /// What went wrong.
        reason: String,
    },
    /// A request's response finished (or was abandoned).
    RequestCompleted {
        /// HTTP method.
        method: String,
        /// Matched route template.
        route: String,
        /// Response status.
        status: u16,
        /// Time until the response body completed.
        duration_secs: f64,
    },
    /// An outbound HTTP request (made through an instrumented client)
    /// finished: its response body completed, or it failed.
    ClientRequestCompleted {
        /// The client's declared name.
        client: String,
        /// HTTP method.
        method: String,
        /// The target's host (`host[:port]`) or declared peer name.
        host: String,
        /// Response status; `None` when no response came.
        status: Option<u16>,
        /// Why it failed without a response (`connect`, `timeout`, `tls`,
        /// `protocol`); `None` when it got one.
        error: Option<String>,
        /// Time until the response body completed or the call failed.
        duration_secs: f64,
    },
    /// A WebSocket session started.
    WebSocketOpened {
        /// Route template.
        route: String,
    },
    /// A WebSocket message passed.
    WebSocketMessage {
        /// Route template.
        route: String,
        /// Which way it went.
        direction: Direction,
        /// Payload size.
        bytes: u64,
    },
    /// A WebSocket session ended.
    WebSocketClosed {
        /// Route template.
        route: String,
        /// Close code, when one was sent.
        code: Option<u16>,
        /// Session length.
        duration_secs: f64,
    },
    /// An SSE stream started.
    SseOpened {
        /// Route template.
        route: String,
    },
    /// An SSE event was handed to the response body.
    ///
    /// Carries its position in the stream rather than its size: axum's
    /// `sse::Event` does not expose its encoded length (the wire bytes are
    /// counted in `sse_bytes_sent_total`).
    SseEvent {
        /// Route template.
        route: String,
        /// 1-based number of this event in its stream.
        index: u64,
    },
    /// An SSE stream ended.
    SseClosed {
        /// Route template.
        route: String,
        /// Events sent on it.
        events: u64,
        /// Stream length.
        duration_secs: f64,
    },
    /// A lifespan phase finished.
    Lifespan {
        /// Which phase.
        phase: LifespanPhase,
        /// How long it took.
        duration_secs: f64,
    },
    /// A worker process or thread started.
    WorkerSpawned {
        /// Worker number.
        worker: u32,
        /// OS process id, for process workers.
        pid: Option<u32>,
    },
    /// A worker exited.
    WorkerExited {
        /// Worker number.
        worker: u32,
        /// OS process id, for process workers.
        pid: Option<u32>,
        /// Exit code, when it exited normally.
        code: Option<i32>,
    },
    /// A task changed state.
    Task {
        /// Queue name.
        queue: String,
        /// New state.
        state: TaskState,
        /// Run time, for completed and failed tasks.
        duration_secs: Option<f64>,
    },
    /// An application-defined event.
    Custom {
        /// Event name.
        name: String,
        /// Free-form fields.
        fields: serde_json::Map<String, serde_json::Value>,
    },
}

impl Event {
    /// Every name [`group`](Self::group) returns, in a stable order: what a
    /// `?types=` filter may name.
    pub const GROUPS: &'static [&'static str] = &[
        "connection",
        "request",
        "client",
        "websocket",
        "sse",
        "lifespan",
        "worker",
        "task",
        "custom",
    ];

    /// The event's type name, as in its JSON `type` tag and the SSE `event:`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::ConnectionOpened { .. } => "connection_opened",
            Event::ConnectionClosed { .. } => "connection_closed",
            Event::ConnectionFailed { .. } => "connection_failed",
            Event::RequestCompleted { .. } => "request_completed",
            Event::ClientRequestCompleted { .. } => "client_request_completed",
            Event::WebSocketOpened { .. } => "web_socket_opened",
            Event::WebSocketMessage { .. } => "web_socket_message",
            Event::WebSocketClosed { .. } => "web_socket_closed",
            Event::SseOpened { .. } => "sse_opened",
            Event::SseEvent { .. } => "sse_event",
            Event::SseClosed { .. } => "sse_closed",
            Event::Lifespan { .. } => "lifespan",
            Event::WorkerSpawned { .. } => "worker_spawned",
            Event::WorkerExited { .. } => "worker_exited",
            Event::Task { .. } => "task",
            Event::Custom { .. } => "custom",
        }
    }

    /// The broad group the event belongs to (`connection`, `request`,
    /// `client`, `websocket`, `sse`, `lifespan`, `worker`, `task`, `custom`), for
    /// filters such as `?types=request,websocket`.
    pub fn group(&self) -> &'static str {
        match self {
            Event::ConnectionOpened { .. }
            | Event::ConnectionClosed { .. }
            | Event::ConnectionFailed { .. } => "connection",
            Event::RequestCompleted { .. } => "request",
            Event::ClientRequestCompleted { .. } => "client",
            Event::WebSocketOpened { .. }
            | Event::WebSocketMessage { .. }
            | Event::WebSocketClosed { .. } => "websocket",
            Event::SseOpened { .. } | Event::SseEvent { .. } | Event::SseClosed { .. } => "sse",
            Event::Lifespan { .. } => "lifespan",
            Event::WorkerSpawned { .. } | Event::WorkerExited { .. } => "worker",
            Event::Task { .. } => "task",
            Event::Custom { .. } => "custom",
        }
    }
}

/// An event as delivered: with its id (increasing per bus) and the time it
/// was emitted (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Increasing per bus, starting at 1; fit for SSE `id:`.
    pub id: u64,
    /// Emission time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A shared, immutable event record, as passed to subscribers.
pub type SharedEvent = Arc<EventRecord>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_serialise_with_a_type_tag() {
        let rec = EventRecord {
            id: 7,
            time_ms: 1,
            event: Event::RequestCompleted {
                method: "GET".into(),
                route: "/users/{id}".into(),
                status: 200,
                duration_secs: 0.5,
            },
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["type"], "request_completed");
        assert_eq!(json["id"], 7);
        assert_eq!(json["route"], "/users/{id}");
        assert_eq!(rec.event.type_name(), "request_completed");
        assert_eq!(rec.event.group(), "request");
        let back: EventRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn every_group_is_listed() {
        let samples = [
            Event::ConnectionFailed { reason: "x".into() },
            Event::RequestCompleted {
                method: "GET".into(),
                route: "/".into(),
                status: 200,
                duration_secs: 0.0,
            },
            Event::ClientRequestCompleted {
                client: "billing".into(),
                method: "GET".into(),
                host: "billing:8080".into(),
                status: None,
                error: Some("connect".into()),
                duration_secs: 0.0,
            },
            Event::WebSocketOpened { route: "/".into() },
            Event::SseEvent {
                route: "/".into(),
                index: 1,
            },
            Event::Lifespan {
                phase: LifespanPhase::Startup,
                duration_secs: 0.0,
            },
            Event::WorkerSpawned {
                worker: 0,
                pid: None,
            },
            Event::Task {
                queue: "q".into(),
                state: TaskState::Started,
                duration_secs: None,
            },
            Event::Custom {
                name: "c".into(),
                fields: Default::default(),
            },
        ];
        let groups: Vec<&str> = samples.iter().map(Event::group).collect();
        assert_eq!(groups, Event::GROUPS);
    }
}
