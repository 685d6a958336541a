//! One request from start to end: the record the layer opens when a
//! request arrives ([`InFlight`]), the handles it caches per route, and the
//! response body ([`MeteredBody`]) that closes the record when the body
//! completes, fails or is dropped (abandoned by the client). Every request
//! is recorded exactly once, here.

use super::connection::{ConnectionInfo, ConnectionState};
use super::current_connection;
use crate::labels::{UNMATCHED, method_label};
use crate::server_metrics::ServerMetrics;
use crate::servers::ServerSide;
use axum::extract::{ConnectInfo, MatchedPath};
use bytes::Buf;
use http::{Request, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use vitals::Event;

/// What one layered route service shares with its requests: the metrics
/// and the handles cached for its route, behind one `Arc` (axum clones the
/// service for every request, and each request keeps a reference: one
/// reference count to touch instead of two).
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) metrics: ServerMetrics,
    pub(super) cache: RouteCache,
}

/// Handles resolved for the first (method, route) this service saw.
///
/// axum applies `Router::layer` to each route's handler separately, so one
/// `HttpMetrics` nearly always serves a single route and method: caching
/// their handles skips three label lookups per request. Other combinations
/// (and other statuses than the cached one) fall back to the lookup.
#[derive(Debug, Default)]
pub(super) struct RouteCache {
    slot: OnceLock<CachedRoute>,
    /// The push series of the first successful (method, route, status
    /// class, caller) seen, when push is on.
    push: OnceLock<Arc<crate::push::Series>>,
}

#[derive(Debug)]
struct CachedRoute {
    server: usize,
    method: &'static str,
    route: Box<str>,
    /// The request's `MatchedPath` when the cache was filled: axum hands
    /// every request of a route a clone of the same `Arc<str>`, so
    /// comparing addresses settles most lookups without comparing text.
    matched: Option<MatchedPath>,
    duration: vitals::Histogram,
    first_byte: vitals::Histogram,
    /// The counter of the first successful status seen (typically 200).
    status: http::StatusCode,
    requests: vitals::Counter,
}

impl RouteCache {
    /// The cached handles if they are for this method and route.
    #[inline]
    fn get(&self, server: usize, method: &'static str, route: &str) -> Option<&CachedRoute> {
        self.slot.get().filter(|c| {
            // `method_label` hands out the same static strings: the
            // addresses match, except for a method outside its list.
            let same_method = std::ptr::eq(c.method, method) || c.method == method;
            let same_route = c.matched.as_ref().is_some_and(|m| {
                let m = m.as_str();
                std::ptr::eq(m.as_ptr(), route.as_ptr()) && m.len() == route.len()
            }) || &*c.route == route;
            c.server == server && same_method && same_route
        })
    }
}

/// What a response turned out to be, which decides where it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Normal,
    /// `101 Switching Protocols`: the session is measured by the WebSocket
    /// wrapper, not as a request duration.
    Upgrade,
    /// `text/event-stream`: long-lived; its bytes go to `sse_bytes_sent_total`.
    EventStream,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Completed,
    /// The body failed while streaming, or the handler failed.
    Failed,
    /// The response was dropped before its body finished: the client left.
    Abandoned,
}

/// Everything needed to record a request when it ends; records exactly once.
pub(super) struct InFlight {
    shared: Arc<Shared>,
    /// The declared server the request belongs to (its connection's, when
    /// the listener records into these same metrics).
    server: usize,
    start: Instant,
    method: &'static str,
    /// The route template, kept only when the cache does not hold this
    /// request's (method, route): on a hit the cached copy is used.
    route: Option<MatchedPath>,
    connection: Option<Arc<ConnectionState>>,
    http2: bool,
    status: Option<http::StatusCode>,
    kind: Kind,
    /// The cache holds this request's server, method and route (compared
    /// once, when the request starts), so nothing compares them again.
    hit: bool,
    /// The server's own endpoints answered: recorded apart from the
    /// application's figures (see `ServerMetricsBuilder::endpoints_as_application`).
    own: bool,
    done: bool,
    /// With push configured: the request's caller and sample, if any.
    push: Option<Box<crate::push::PushRequest>>,
}

impl InFlight {
    /// Counts `req` as started (in flight, an HTTP/2 stream, a busy
    /// connection) and opens its record.
    #[inline]
    pub(super) fn start<B>(shared: &Arc<Shared>, req: &Request<B>) -> InFlight {
        let metrics = &shared.metrics;
        let http2 = req.version() == Version::HTTP_2;
        // The connection: set by `TrackedRouter` or `TrackedIo::serve`, or
        // the extension of `into_make_service_with_connect_info`.
        let connection = current_connection::current().or_else(|| {
            req.extensions()
                .get::<ConnectInfo<ConnectionInfo>>()
                .map(|c| c.0.0.clone())
        });
        // A request belongs to the server its connection was accepted by
        // (when the listener records into these same metrics).
        let server = connection
            .as_ref()
            .filter(|c| Arc::ptr_eq(&c.metrics().inner, &metrics.inner))
            .map_or(metrics.server, |c| c.metrics().server);
        let side = &metrics.inner.servers[server];
        side.active_requests.inc();
        if http2 {
            side.streams_total.inc();
            side.streams_active.inc();
        }
        if let Some(c) = &connection {
            c.request_started(side);
        }
        let method = method_label(req.method());
        let matched = req.extensions().get::<MatchedPath>();
        let route = matched.map_or(UNMATCHED, MatchedPath::as_str);
        let hit = shared.cache.get(server, method, route).is_some();
        InFlight {
            start: Instant::now(),
            server,
            method,
            route: if hit { None } else { matched.cloned() },
            connection,
            http2,
            status: None,
            kind: Kind::Normal,
            hit,
            own: false,
            done: false,
            push: metrics
                .inner
                .push
                .as_ref()
                .and_then(|aggregator| aggregator.begin(req)),
            shared: shared.clone(),
        }
    }

    /// The metrics this request records into.
    pub(super) fn metrics(&self) -> &ServerMetrics {
        &self.shared.metrics
    }

    /// The server side this request records into.
    #[inline]
    fn side(&self) -> &ServerSide {
        &self.shared.metrics.inner.servers[self.server]
    }

    /// Whether the request came on a tracked connection (whose
    /// [`ConnectionInfo`] then leads handlers to the metrics).
    pub(super) fn has_connection(&self) -> bool {
        self.connection.is_some()
    }

    #[inline]
    pub(super) fn route(&self) -> &str {
        match (self.hit, self.shared.cache.slot.get()) {
            (true, Some(c)) => &c.route,
            _ => self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        }
    }

    /// Records time to first byte; returns it (seconds) for normal
    /// responses. `own`: the server's own endpoints answered.
    pub(super) fn headers_ready(
        &mut self,
        status: http::StatusCode,
        kind: Kind,
        own: bool,
    ) -> Option<f64> {
        self.status = Some(status);
        self.kind = kind;
        if status.is_client_error() {
            if let Some(c) = &self.connection {
                c.answered(status);
            }
        }
        if own && !self.shared.metrics.inner.endpoints_as_application {
            self.own = true;
            return None;
        }
        if kind != Kind::Normal {
            return None;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let cache = &self.shared.cache;
        match (self.hit, cache.slot.get()) {
            (true, Some(c)) => c.first_byte.record(elapsed),
            _ => {
                let m = &self.shared.metrics.inner;
                let side = self.side();
                let route = self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
                let method_route = [self.method, route];
                let first_byte = side.with_labels(&method_route, |l| m.first_byte.get(l));
                first_byte.record(elapsed);
                if status.is_success() && cache.slot.get().is_none() {
                    let status_labels = [self.method, route, status.as_str()];
                    let filled = cache
                        .slot
                        .set(CachedRoute {
                            server: self.server,
                            method: self.method,
                            route: route.into(),
                            matched: self.route.clone(),
                            duration: side
                                .with_labels(&method_route, |l| m.duration.get(l))
                                .clone(),
                            first_byte: first_byte.clone(),
                            status,
                            requests: side
                                .with_labels(&status_labels, |l| m.requests.get(l))
                                .clone(),
                        })
                        .is_ok();
                    if filled {
                        self.hit = true;
                    }
                }
            }
        }
        Some(elapsed)
    }

    pub(super) fn finish(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        self.finish_at(outcome, elapsed);
    }

    /// Records the request as ended `elapsed` seconds after it started.
    pub(super) fn finish_at(&mut self, outcome: Outcome, elapsed: f64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let shared = &*self.shared;
        let m = &shared.metrics.inner;
        let side = &m.servers[self.server];
        let cached = if self.hit {
            shared.cache.slot.get()
        } else {
            None
        };
        // Not `self.route()`, so `self.push` stays free to take.
        let route = match cached {
            Some(c) => &*c.route,
            None => self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        };
        // No response yet: 499 (client closed request, as nginx logs it)
        // when the client left, 500 when the handler failed.
        let status = match (&self.status, outcome) {
            (Some(s), _) => s.as_str(),
            (None, Outcome::Abandoned) => "499",
            (None, _) => "500",
        };
        if self.own {
            m.endpoint_requests.get(&[route, status]).inc();
            side.active_requests.dec();
            if self.http2 {
                side.streams_active.dec();
            }
            if let Some(c) = &self.connection {
                c.request_finished(side);
            }
            return;
        }
        let method_route = [self.method, route];
        match cached {
            Some(c) if self.status == Some(c.status) => c.requests.inc(),
            _ => side.with_labels(&[self.method, route, status], |l| m.requests.get(l).inc()),
        }
        if self.kind == Kind::Normal {
            match cached {
                Some(c) => c.duration.record(elapsed),
                None => side.with_labels(&method_route, |l| m.duration.get(l).record(elapsed)),
            }
        }
        let server_error = self.status.is_some_and(|s| s.is_server_error());
        if server_error || outcome == Outcome::Failed {
            side.with_labels(&method_route, |l| m.request_errors.get(l).inc());
        }
        if outcome == Outcome::Abandoned {
            side.with_labels(&method_route, |l| m.requests_abandoned.get(l).inc());
        }
        side.active_requests.dec();
        if self.http2 {
            side.streams_active.dec();
        }
        if let Some(c) = &self.connection {
            c.request_finished(side);
        }
        let code = match (self.status, outcome) {
            (Some(s), _) => s.as_u16(),
            (None, Outcome::Abandoned) => 499,
            (None, _) => 500,
        };
        let method = self.method;
        if let Some(aggregator) = &m.push {
            aggregator.finish(
                &shared.cache.push,
                // The layer's cache already matched the method and route.
                cached.is_some(),
                self.push.take(),
                crate::push::Ended {
                    method,
                    route,
                    status: code,
                    error: server_error || outcome == Outcome::Failed,
                    elapsed_secs: elapsed,
                    timed: self.kind == Kind::Normal,
                },
            );
        }
        shared
            .metrics
            .events()
            .emit_with(|| Event::RequestCompleted {
                method: method.to_owned(),
                route: route.to_owned(),
                status: code,
                duration_secs: elapsed,
            });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped without an explicit end: the future or body went away.
        self.finish(Outcome::Abandoned);
    }
}

pin_project! {
    /// A response body that records the request when it ends: completed,
    /// failed, or dropped early (abandoned by the client).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
        sse_bytes: Option<vitals::Counter>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut f) = this.in_flight.take() {
                f.finish(Outcome::Abandoned);
            }
        }
    }
}

impl<B> MeteredBody<B> {
    /// `inner`, recording `in_flight` when it ends; counting its data
    /// bytes in `sse_bytes` too for an application event stream.
    pub(super) fn new(inner: B, in_flight: InFlight, sse_bytes: Option<vitals::Counter>) -> Self {
        MeteredBody {
            inner,
            in_flight: Some(in_flight),
            sse_bytes,
        }
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = ready!(inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let (Some(counter), Some(data)) = (this.sse_bytes.as_ref(), frame.data_ref()) {
                    counter.add(data.remaining() as u64);
                }
                // hyper stops polling once the body says it has ended.
                if inner.is_end_stream() {
                    if let Some(mut f) = this.in_flight.take() {
                        f.finish(Outcome::Completed);
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(mut f) = this.in_flight.take() {
                    f.finish(Outcome::Failed);
                }
            }
            None => {
                if let Some(mut f) = this.in_flight.take() {
                    f.finish(Outcome::Completed);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
