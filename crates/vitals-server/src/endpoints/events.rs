//! `GET /debug/events`: the event bus as a Server-Sent Events stream.
//!
//! Each event is sent as
//!
//! ```text
//! event: request_completed
//! id: 42
//! data: {"id":42,"time_ms":1732380000000,"type":"request_completed","method":"GET",…}
//! ```
//!
//! (`event:` is [`Event::type_name`](vitals::Event::type_name), `id:` the bus's
//! increasing [`EventRecord::id`](vitals::EventRecord), `data:` the record as
//! JSON), with a `: heartbeat` comment every 15 s by default.
//!
//! - **Filter**: `?types=request,websocket` keeps the events whose
//!   [`Event::group`](vitals::Event::group) is listed. An unknown group is a
//!   400 with a JSON error listing the known ones, counted in
//!   `vitals_rejected_total{reason="debug_query_invalid"}`.
//! - **Slow clients lose events**: each client has a bounded buffer
//!   (default 1024 events). When it is full, newer events are dropped for
//!   that client and counted in
//!   `vitals_events_dropped_total{subscriber="debug_events"}`; the server
//!   never waits for a client. A client sees the loss as a gap in the ids
//!   (ids also skip the events its filter leaves out).
//! - **Client cap**: at most 16 concurrent streams by default; past it the
//!   answer is a 503 with a JSON error, counted in
//!   `vitals_rejected_total{reason="debug_events_clients"}`.
//! - **Shutdown**: when shutdown starts (the lifespan event that
//!   [`ServerMetrics::shutdown_signal`] emits), every stream ends after the
//!   events it holds, so open dashboards do not hold up a graceful shutdown.
//! - **No replay**: no past events are kept, so `Last-Event-ID` is ignored;
//!   a reconnecting client gets the events from then on (and
//!   `/debug/history` for the recent past).

use super::debug_history;
use super::query::{Query, QueryError};
use crate::record::layer::OwnEndpoint;
use crate::server_metrics::ServerMetrics;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseFrame, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use vitals::{Event, LifespanPhase, SharedEvent, Subscription};

/// The subscriber name each client's drops are counted under.
pub const EVENTS_SUBSCRIBER: &str = "debug_events";

struct EventsState {
    metrics: ServerMetrics,
    clients: AtomicUsize,
}

/// The router serving `/debug/events`.
pub(crate) fn router(metrics: &ServerMetrics) -> axum::Router {
    let state = Arc::new(EventsState {
        metrics: metrics.clone(),
        clients: AtomicUsize::new(0),
    });
    axum::Router::new()
        .route("/debug/events", get(events))
        .with_state(state)
}

/// A 503 for a client past the cap, counted in
/// `vitals_rejected_total{reason="debug_events_clients"}`.
fn too_many_clients(state: &EventsState, max: usize) -> Response {
    state
        .metrics
        .registry()
        .count_rejected("debug_events_clients");
    let body = json!({
        "error": format!("too many /debug/events clients: at most {max} at once; retry later"),
        "max_clients": max,
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// The groups a `?types=` query asks for (`None`: every group); other
/// parameters (the dashboard's own) are ignored.
fn parse_types(raw: Option<&str>) -> Result<Option<Vec<&'static str>>, QueryError> {
    let query = Query::parse(raw)?;
    let Some(value) = query.once("types")? else {
        return Ok(None);
    };
    let mut groups = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Event::GROUPS.iter().find(|g| **g == name) {
            Some(g) => groups.push(*g),
            None => return Err(QueryError::new(format!("unknown event type {name:?}"))),
        }
    }
    if groups.is_empty() {
        return Err(QueryError::new("\"types\" lists no event type"));
    }
    Ok(Some(groups))
}

async fn events(State(state): State<Arc<EventsState>>, RawQuery(query): RawQuery) -> Response {
    debug_history::ensure_sampler(&state.metrics);
    let wanted = match parse_types(query.as_deref()) {
        Ok(w) => w,
        Err(refused) => {
            return refused
                .with("known_types", Event::GROUPS)
                .respond(state.metrics.registry());
        }
    };
    let options = &state.metrics.inner.debug;
    let max = options.events_max_clients;
    let taken = state
        .clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
    if taken.is_err() {
        return too_many_clients(&state, max);
    }
    let slot = ClientSlot(state.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<SharedEvent>(options.events_buffer);
    // The sender goes away when shutdown starts, which ends the stream once
    // its buffer is sent: open streams must not hold a graceful shutdown.
    let tx = Mutex::new(Some(tx));
    // Runs on the emitting thread: filter, then try to queue; a full queue
    // refuses the event, which the bus counts as dropped for this client.
    let subscription =
        state
            .metrics
            .events()
            .subscribe_sink(EVENTS_SUBSCRIBER, move |e: &SharedEvent| {
                let shutdown = matches!(
                    e.event,
                    Event::Lifespan {
                        phase: LifespanPhase::ShutdownStarted,
                        ..
                    }
                );
                let mut tx = tx.lock().unwrap_or_else(PoisonError::into_inner);
                let group = e.event.group();
                let delivered = match tx.as_ref() {
                    Some(_) if wanted.as_ref().is_some_and(|w| !w.contains(&group)) => true,
                    Some(sender) => sender.try_send(e.clone()).is_ok(),
                    None => true,
                };
                if shutdown {
                    *tx = None;
                }
                delivered
            });
    let stream = EventStream {
        rx,
        _subscription: subscription,
        _slot: slot,
    };
    let mut response = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(options.events_heartbeat)
                .text("heartbeat"),
        )
        .into_response();
    // Not an application SSE session: keep its bytes out of the SSE figures.
    response.extensions_mut().insert(OwnEndpoint);
    response
}

/// Gives a client's place back when its stream ends.
struct ClientSlot(Arc<EventsState>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client's events; dropping it (the client left) unsubscribes.
struct EventStream {
    rx: tokio::sync::mpsc::Receiver<SharedEvent>,
    _subscription: Subscription,
    _slot: ClientSlot,
}

/// The SSE frame for one record.
fn frame(record: &SharedEvent) -> SseFrame {
    // Serialising plain data does not fail; should a custom event ever do
    // so, the client still gets its type and id.
    SseFrame::default()
        .json_data(&**record)
        .unwrap_or_else(|_| SseFrame::default().data("{}"))
        .event(record.event.type_name())
        .id(record.id.to_string())
}

impl Stream for EventStream {
    type Item = Result<SseFrame, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx
            .poll_recv(cx)
            .map(|record| record.map(|r| Ok(frame(&r))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_filter_parses_and_rejects() {
        assert_eq!(parse_types(None), Ok(None));
        assert_eq!(parse_types(Some("live=1")), Ok(None));
        assert_eq!(
            parse_types(Some("types=request,%20websocket")),
            Ok(Some(vec!["request", "websocket"]))
        );
        assert!(parse_types(Some("types=request,bogus")).is_err());
        assert!(parse_types(Some("types=")).is_err());
        assert!(parse_types(Some("types=request&types=sse")).is_err());
        assert!(parse_types(Some(&"x".repeat(5000))).is_err());
    }
}
