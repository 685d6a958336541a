//! SSE stream metrics: a wrapper around an event stream counting streams,
//! events and session length per route. Bytes on the wire are counted by
//! the layer (`sse_bytes_sent_total`), which sees the encoded body.

use super::extract::RouteMetrics;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use vitals::Event;

/// An SSE event stream whose events are counted.
///
/// ```no_run
/// use axum::response::sse::{Event, Sse};
/// use vitals_server::RouteMetrics;
///
/// async fn ticks(tracked: RouteMetrics) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
///     let events = futures_util::stream::iter((0..3).map(|i| Ok(Event::default().data(i.to_string()))));
///     Sse::new(tracked.sse(events))
/// }
/// ```
pub struct TrackedEventStream<S> {
    stream: S,
    route: RouteMetrics,
    opened: Instant,
    events: u64,
}

impl<S> std::fmt::Debug for TrackedEventStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedEventStream")
            .field("route", &self.route.route)
            .field("events", &self.events)
            .finish()
    }
}

impl RouteMetrics {
    /// Starts tracking an SSE stream on this route.
    pub fn sse<S>(self, stream: S) -> TrackedEventStream<S> {
        let m = &self.metrics.inner;
        let route = [self.route.as_str()];
        m.sse_connections.get(&route).inc();
        m.sse_active.get(&route).inc();
        let r = &self.route;
        self.metrics
            .events()
            .emit_with(|| Event::SseOpened { route: r.clone() });
        TrackedEventStream {
            stream,
            route: self,
            opened: Instant::now(),
            events: 0,
        }
    }
}

impl<S, T, E> Stream for TrackedEventStream<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.stream).poll_next(cx));
        if let Some(Ok(_)) = &item {
            self.events += 1;
            let m = &self.route.metrics.inner;
            m.sse_events.get(&[self.route.route.as_str()]).inc();
            // After the count, so a subscriber reading the metrics agrees.
            let (route, index) = (&self.route.route, self.events);
            self.route.metrics.events().emit_with(|| Event::SseEvent {
                route: route.clone(),
                index,
            });
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S> Drop for TrackedEventStream<S> {
    fn drop(&mut self) {
        let m = &self.route.metrics.inner;
        let route = self.route.route.as_str();
        let secs = self.opened.elapsed().as_secs_f64();
        m.sse_active.get(&[route]).dec();
        m.sse_duration.get(&[route]).record(secs);
        let events = self.events;
        self.route.metrics.events().emit_with(|| Event::SseClosed {
            route: route.to_owned(),
            events,
            duration_secs: secs,
        });
    }
}
