//! The tower layer: per-route HTTP request metrics.

use crate::ServerMetrics;
use crate::connection::ConnectionInfo;
use axum::extract::{ConnectInfo, MatchedPath};
use bytes::Buf;
use http::{Method, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service};
use vitals::Event;

/// Largest body, in bytes, that counts as complete when the headers are
/// ready if its exact size is known (a buffered JSON or text answer); larger
/// or streaming bodies are timed until their last frame.
pub const INLINE_BODY_MAX: u64 = 64 * 1024;

/// Route label for requests no route matched.
pub const UNMATCHED: &str = "unmatched";
/// Method label for methods outside the standard set.
pub const OTHER_METHOD: &str = "_OTHER";

/// A tower layer recording `http_server_*` metrics per method and route.
///
/// Add it with `Router::layer`, last (after routes, nests, merges and the
/// fallback), so that axum's `MatchedPath` (the route template, nested
/// routers included) is known and unmatched requests pass through it too;
/// they are labelled `route="unmatched"`. Duration runs until the response body
/// is complete; WebSocket upgrades and SSE streams are counted but kept out
/// of the latency histograms.
#[derive(Debug, Clone)]
pub struct HttpMetricsLayer {
    metrics: ServerMetrics,
}

impl HttpMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: &ServerMetrics) -> Self {
        HttpMetricsLayer {
            metrics: metrics.clone(),
        }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics {
            inner,
            metrics: self.metrics.clone(),
            cache: Arc::new(RouteCache::default()),
        }
    }
}

/// The service [`HttpMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: ServerMetrics,
    cache: Arc<RouteCache>,
}

/// Handles resolved for the first (method, route) this service saw.
///
/// axum applies `Router::layer` to each route's handler separately, so one
/// `HttpMetrics` nearly always serves a single route and method: caching
/// their handles skips three label lookups per request. Other combinations
/// (and other statuses than the cached one) fall back to the lookup.
#[derive(Debug, Default)]
struct RouteCache {
    slot: OnceLock<CachedRoute>,
    /// The push series of the first successful (method, route, status
    /// class, caller) seen, when push is on.
    push: OnceLock<Arc<crate::push::Series>>,
}

#[derive(Debug)]
struct CachedRoute {
    method: &'static str,
    route: Box<str>,
    duration: vitals::Histogram,
    first_byte: vitals::Histogram,
    /// The counter of the first successful status seen (typically 200).
    status: http::StatusCode,
    requests: vitals::Counter,
}

impl RouteCache {
    /// The cached handles if they are for this method and route.
    #[inline]
    fn get(&self, method: &str, route: &str) -> Option<&CachedRoute> {
        self.slot
            .get()
            .filter(|c| c.method == method && &*c.route == route)
    }
}

/// The method as a label: one of the standard methods, or `_OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => OTHER_METHOD,
    }
}

/// What a response turned out to be, which decides where it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    /// `101 Switching Protocols`: the session is measured by the WebSocket
    /// wrapper, not as a request duration.
    Upgrade,
    /// `text/event-stream`: long-lived; its bytes go to `sse_bytes_sent_total`.
    EventStream,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    /// The body failed while streaming, or the handler failed.
    Failed,
    /// The response was dropped before its body finished: the client left.
    Abandoned,
}

/// Everything needed to record a request when it ends; records exactly once.
struct InFlight {
    metrics: ServerMetrics,
    cache: Arc<RouteCache>,
    start: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    connection: Option<Arc<crate::connection::ConnectionState>>,
    http2: bool,
    status: Option<http::StatusCode>,
    kind: Kind,
    /// `cache` holds this request's method and route (checked once, when
    /// the headers are ready), so `finish` need not compare them again.
    hit: bool,
    done: bool,
    /// Set only when push is configured.
    push: Option<crate::push::PushRequest>,
}

impl InFlight {
    fn route(&self) -> &str {
        self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str)
    }

    /// Records time to first byte; returns it (seconds) for normal responses.
    fn headers_ready(&mut self, status: http::StatusCode, kind: Kind) -> Option<f64> {
        self.status = Some(status);
        self.kind = kind;
        if status.is_client_error() {
            if let Some(c) = &self.connection {
                c.answered(status);
            }
        }
        if kind != Kind::Normal {
            return None;
        }
        {
            let elapsed = self.start.elapsed().as_secs_f64();
            let route = self.route();
            match self.cache.get(self.method, route) {
                Some(c) => {
                    c.first_byte.record(elapsed);
                    self.hit = true;
                }
                None => {
                    let m = &self.metrics.inner;
                    let first_byte = m.first_byte.get(&[self.method, route]);
                    first_byte.record(elapsed);
                    if status.is_success() && self.cache.slot.get().is_none() {
                        self.hit = self
                            .cache
                            .slot
                            .set(CachedRoute {
                                method: self.method,
                                route: route.into(),
                                duration: m.duration.get(&[self.method, route]).clone(),
                                first_byte: first_byte.clone(),
                                status,
                                requests: m
                                    .requests
                                    .get(&[self.method, route, status.as_str()])
                                    .clone(),
                            })
                            .is_ok();
                    }
                }
            }
            Some(elapsed)
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        self.finish_at(outcome, elapsed);
    }

    /// Records the request as ended `elapsed` seconds after it started.
    fn finish_at(&mut self, outcome: Outcome, elapsed: f64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let push = self.push.take();
        let m = &self.metrics.inner;
        let route = self.route();
        // No response yet: 499 (client closed request, as nginx logs it)
        // when the client left, 500 when the handler failed.
        let status = match (&self.status, outcome) {
            (Some(s), _) => s.as_str(),
            (None, Outcome::Abandoned) => "499",
            (None, _) => "500",
        };
        let cached = if self.hit {
            self.cache.slot.get()
        } else {
            None
        };
        match cached {
            Some(c) if self.status == Some(c.status) => c.requests.inc(),
            _ => m.requests.get(&[self.method, route, status]).inc(),
        }
        if self.kind == Kind::Normal {
            match cached {
                Some(c) => c.duration.record(elapsed),
                None => m.duration.get(&[self.method, route]).record(elapsed),
            }
        }
        let server_error = self.status.is_some_and(|s| s.is_server_error());
        if server_error || outcome == Outcome::Failed {
            m.request_errors.get(&[self.method, route]).inc();
        }
        if outcome == Outcome::Abandoned {
            m.requests_abandoned.get(&[self.method, route]).inc();
        }
        m.active_requests.dec();
        if self.http2 {
            m.streams_active.dec();
        }
        if let Some(c) = &self.connection {
            c.request_finished(&self.metrics);
        }
        let code = match (self.status, outcome) {
            (Some(s), _) => s.as_u16(),
            (None, Outcome::Abandoned) => 499,
            (None, _) => 500,
        };
        let method = self.method;
        if let (Some(p), Some(aggregator)) = (push, &m.push) {
            aggregator.finish(
                &self.cache.push,
                p,
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
        self.metrics.events().emit_with(|| Event::RequestCompleted {
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpMetrics<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = bytes::Bytes> + Send + 'static,
    ResB::Error: Into<axum::BoxError>,
{
    type Response = Response<axum::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let m = &self.metrics.inner;
        let http2 = req.version() == Version::HTTP_2;
        let connection = req
            .extensions()
            .get::<ConnectInfo<ConnectionInfo>>()
            .map(|c| c.0.0.clone());
        m.active_requests.inc();
        if http2 {
            m.streams_total.inc();
            m.streams_active.inc();
        }
        if let Some(c) = &connection {
            c.request_started(&self.metrics);
        }
        let in_flight = InFlight {
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
            start: Instant::now(),
            method: method_label(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
            connection,
            http2,
            status: None,
            kind: Kind::Normal,
            hit: false,
            done: false,
            push: m.push.as_ref().map(|aggregator| aggregator.begin(&req)),
        };
        // Lets the WebSocket and SSE extractors find the metrics; with a
        // tracked connection they find them through `ConnectionInfo`, which
        // saves an extension (and often a map resize) per request.
        if in_flight.connection.is_none() {
            req.extensions_mut().insert(self.metrics.clone());
        }
        ResponseFuture {
            inner: self.inner.call(req),
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// Response future of [`HttpMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<axum::body::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(mut in_flight) = this.in_flight.take() else {
            // Polled after completion: nothing left to record.
            return Poll::Ready(result.map(|r| r.map(axum::body::Body::new)));
        };
        match result {
            Ok(response) => {
                let kind = if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    Kind::Upgrade
                } else if is_event_stream(&response) {
                    Kind::EventStream
                } else {
                    Kind::Normal
                };
                let at_headers = in_flight.headers_ready(response.status(), kind);
                let sse_bytes = (kind == Kind::EventStream).then(|| {
                    in_flight
                        .metrics
                        .inner
                        .sse_bytes
                        .get(&[in_flight.route()])
                        .clone()
                });
                Poll::Ready(Ok(response.map(|body| {
                    // An empty body (101, 204, HEAD) may never be polled, and
                    // a small body already in memory is complete now: record
                    // them at once and hand the body on unwrapped, which
                    // spares axum boxing it again.
                    let small = kind == Kind::Normal
                        && body
                            .size_hint()
                            .exact()
                            .is_some_and(|n| n <= INLINE_BODY_MAX);
                    if body.is_end_stream() || small {
                        match at_headers {
                            Some(elapsed) => in_flight.finish_at(Outcome::Completed, elapsed),
                            None => in_flight.finish(Outcome::Completed),
                        }
                        return axum::body::Body::new(body);
                    }
                    axum::body::Body::new(MeteredBody {
                        inner: body,
                        in_flight: Some(in_flight),
                        sse_bytes,
                    })
                })))
            }
            Err(e) => {
                in_flight.finish(Outcome::Failed);
                Poll::Ready(Err(e))
            }
        }
    }
}

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
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
