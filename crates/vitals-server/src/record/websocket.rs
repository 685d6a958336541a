//! WebSocket session metrics: a wrapper around axum's `WebSocket` (or any
//! `Stream` + `Sink` of messages) counting messages and bytes per direction,
//! session length and close codes, labelled by route.

use super::extract::RouteMetrics;
use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use vitals::{Direction, Event};

/// What the tracker needs to know about a message type.
pub trait WsMessage {
    /// Payload size in bytes, for data messages; `None` for control frames
    /// (ping, pong, close), which are not counted as messages.
    fn data_len(&self) -> Option<usize>;
    /// The close code, for a close frame that carries one.
    fn close_code(&self) -> Option<u16>;
    /// True for a close frame.
    fn is_close(&self) -> bool;
}

impl WsMessage for axum::extract::ws::Message {
    fn data_len(&self) -> Option<usize> {
        use axum::extract::ws::Message::*;
        match self {
            Text(t) => Some(t.len()),
            Binary(b) => Some(b.len()),
            _ => None,
        }
    }
    fn close_code(&self) -> Option<u16> {
        match self {
            axum::extract::ws::Message::Close(Some(frame)) => Some(frame.code),
            _ => None,
        }
    }
    fn is_close(&self) -> bool {
        matches!(self, axum::extract::ws::Message::Close(_))
    }
}

/// A WebSocket whose traffic is counted. Use it as you would the socket it
/// wraps: it is a `Stream` of received messages and a `Sink` of messages to
/// send, with `recv` and `send` helpers like axum's.
///
/// ```no_run
/// use axum::extract::ws::WebSocketUpgrade;
/// use vitals_server::RouteMetrics;
///
/// async fn echo(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> axum::response::Response {
///     upgrade.on_upgrade(move |socket| async move {
///         let mut socket = tracked.websocket(socket);
///         while let Some(Ok(msg)) = socket.recv().await {
///             if socket.send(msg).await.is_err() { break; }
///         }
///     })
/// }
/// ```
pub struct TrackedWebSocket<S> {
    socket: S,
    route: RouteMetrics,
    opened: Instant,
    close_code: Option<u16>,
}

impl<S> std::fmt::Debug for TrackedWebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedWebSocket")
            .field("route", &self.route.route)
            .finish()
    }
}

impl RouteMetrics {
    /// Starts tracking a WebSocket session on this route.
    pub fn websocket<S>(self, socket: S) -> TrackedWebSocket<S> {
        let m = &self.metrics.inner;
        let route = [self.route.as_str()];
        m.ws_connections.get(&route).inc();
        m.ws_active.get(&route).inc();
        let r = &self.route;
        self.metrics
            .events()
            .emit_with(|| Event::WebSocketOpened { route: r.clone() });
        TrackedWebSocket {
            socket,
            route: self,
            opened: Instant::now(),
            close_code: None,
        }
    }
}

impl<S> TrackedWebSocket<S> {
    /// The wrapped socket.
    pub fn get_ref(&self) -> &S {
        &self.socket
    }

    fn count<M: WsMessage>(&mut self, msg: &M, direction: Direction) {
        if let Some(code) = msg.close_code() {
            self.close_code.get_or_insert(code);
        }
        let Some(len) = msg.data_len() else { return };
        let m = &self.route.metrics.inner;
        let route = [self.route.route.as_str()];
        let (messages, bytes) = match direction {
            Direction::Received => (&m.ws_messages_received, &m.ws_bytes_received),
            Direction::Sent => (&m.ws_messages_sent, &m.ws_bytes_sent),
        };
        messages.get(&route).inc();
        bytes.get(&route).add(len as u64);
        let r = &self.route.route;
        self.route
            .metrics
            .events()
            .emit_with(|| Event::WebSocketMessage {
                route: r.clone(),
                direction,
                bytes: len as u64,
            });
    }
}

impl<S, M, E> TrackedWebSocket<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    M: WsMessage,
{
    /// Receives the next message (`None` when the socket is closed).
    pub async fn recv(&mut self) -> Option<Result<M, E>> {
        futures_util::StreamExt::next(self).await
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: M) -> Result<(), <S as Sink<M>>::Error> {
        futures_util::SinkExt::send(self, msg).await
    }
}

impl<S, M, E> Stream for TrackedWebSocket<S>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    M: WsMessage,
{
    type Item = Result<M, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.socket).poll_next(cx));
        if let Some(Ok(msg)) = &item {
            self.count(msg, Direction::Received);
        }
        Poll::Ready(item)
    }
}

impl<S, M> Sink<M> for TrackedWebSocket<S>
where
    S: Sink<M> + Unpin,
    M: WsMessage,
{
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        self.count(&item, Direction::Sent);
        Pin::new(&mut self.socket).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_close(cx)
    }
}

impl<S> Drop for TrackedWebSocket<S> {
    fn drop(&mut self) {
        let m = &self.route.metrics.inner;
        let route = self.route.route.as_str();
        let secs = self.opened.elapsed().as_secs_f64();
        m.ws_active.get(&[route]).dec();
        m.ws_duration.get(&[route]).record(secs);
        let code = self
            .close_code
            .map_or_else(|| "none".to_owned(), |c| c.to_string());
        m.ws_close_codes.get(&[route, &code]).inc();
        let close_code = self.close_code;
        self.route
            .metrics
            .events()
            .emit_with(|| Event::WebSocketClosed {
                route: route.to_owned(),
                code: close_code,
                duration_secs: secs,
            });
    }
}
