//! The tower layer: per-route HTTP request metrics. The layer opens a
//! request's record ([`InFlight`]) when it arrives and hands the response
//! on in a [`MeteredBody`] that closes it; see `in_flight.rs` for what is
//! recorded.

use super::in_flight::{InFlight, Kind, MeteredBody, Outcome, RouteCache, Shared};
use crate::server_metrics::ServerMetrics;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};

/// Largest body, in bytes, that counts as complete when the headers are
/// ready if its exact size is known (a buffered JSON or text answer); larger
/// or streaming bodies are timed until their last frame.
pub const INLINE_BODY_MAX: u64 = 64 * 1024;

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
            shared: Arc::new(Shared {
                metrics: self.metrics.clone(),
                cache: RouteCache::default(),
            }),
        }
    }
}

/// The service [`HttpMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
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
        let in_flight = InFlight::start(&self.shared, &req);
        // Lets the WebSocket and SSE extractors find the metrics; with a
        // tracked connection they find them through it, which saves an
        // extension (and often a map resize) per request.
        if !in_flight.has_connection() {
            req.extensions_mut().insert(self.shared.metrics.clone());
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
                // A small body already in memory (a JSON or text answer)
                // is complete now, and is never an event stream: only
                // other bodies need the content type looked up.
                let small = response
                    .body()
                    .size_hint()
                    .exact()
                    .is_some_and(|n| n <= INLINE_BODY_MAX);
                let kind = if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    Kind::Upgrade
                } else if !small && is_event_stream(&response) {
                    Kind::EventStream
                } else {
                    Kind::Normal
                };
                let own = response.extensions().get::<OwnEndpoint>().is_some();
                let at_headers = in_flight.headers_ready(response.status(), kind, own);
                // The server's own streams (`/debug/events`) are not
                // application SSE sessions: their bytes stay out of the SSE
                // figures, as their sessions do.
                let sse_bytes = (kind == Kind::EventStream && !own).then(|| {
                    in_flight
                        .metrics()
                        .inner
                        .sse_bytes
                        .get(&[in_flight.route()])
                        .clone()
                });
                Poll::Ready(Ok(response.map(|body| {
                    // An empty body (101, 204, HEAD) may never be polled, and
                    // a small body is complete now: record them at once and
                    // hand the body on unwrapped, which spares axum boxing it
                    // again.
                    if body.is_end_stream() || (small && kind == Kind::Normal) {
                        match at_headers {
                            Some(elapsed) => in_flight.finish_at(Outcome::Completed, elapsed),
                            None => in_flight.finish(Outcome::Completed),
                        }
                        return axum::body::Body::new(body);
                    }
                    axum::body::Body::new(MeteredBody::new(body, in_flight, sse_bytes))
                })))
            }
            Err(e) => {
                in_flight.finish(Outcome::Failed);
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Response extension marking an answer of the server's own endpoints
/// (`/metrics`, `/debug/*`): the layer records it apart from the
/// application's traffic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnEndpoint;

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}
