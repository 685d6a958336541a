//! The tower layer for outbound HTTP clients ([`ClientMetricsLayer`]):
//! wraps any `Service<http::Request<B>, Response = http::Response<R>>`
//! (hyper-util's client, and every tower-based client built on it) and
//! records each call, until its response body ([`ClientBody`]) completes.

use super::call::Call;
use super::error_kind::{ErrorKind, TimedOut};
use super::metrics::ClientMetrics;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};

/// The error of an instrumented call: the inner client's, or
/// [`TimedOut`] when the client's timeout elapsed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tower layer that records every outbound call of the client it wraps
/// in the `http_client_*` families, emits `ClientRequestCompleted`, sets
/// the caller header and a `traceparent`, and (with push on) adds the call
/// to the caller's side of the collector's edges.
///
/// ```no_run
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::ServiceExt;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let metrics = vitals_server::ServerMetrics::new()?;
/// let billing = metrics.client("billing")?.peer("billing")?;
/// let connector = billing.connector(hyper_util::client::legacy::connect::HttpConnector::new());
/// let client = Client::builder(TokioExecutor::new())
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
/// let client = tower::ServiceBuilder::new().layer(billing.layer()).service(client);
/// let req = http::Request::get("http://billing.internal:8080/invoices")
///     .body(http_body_util::Empty::new())?;
/// let res = client.oneshot(req).await?;
/// println!("{}", res.status());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientMetricsLayer {
    metrics: ClientMetrics,
}

impl ClientMetricsLayer {
    /// A layer recording into `metrics`' client.
    pub fn new(metrics: ClientMetrics) -> Self {
        ClientMetricsLayer { metrics }
    }
}

impl ClientMetrics {
    /// The tower layer recording every call of the service it wraps.
    pub fn layer(&self) -> ClientMetricsLayer {
        ClientMetricsLayer::new(self.clone())
    }
}

impl<S> Layer<S> for ClientMetricsLayer {
    type Service = ClientMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ClientMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct ClientMetricsService<S> {
    inner: S,
    metrics: ClientMetrics,
}

impl<S, B, R> Service<Request<B>> for ClientMetricsService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: Body,
{
    type Response = Response<ClientBody<R>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let call = Call::start(&self.metrics, &mut req);
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: self.metrics.timeout.map(tokio::time::sleep),
            call: Some(call),
        }
    }
}

pin_project! {
    /// The future of an instrumented call: the response, its body wrapped
    /// to record the call when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        call: Option<Call>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Into<BoxError>,
    R: Body,
{
    type Output = Result<Response<ClientBody<R>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.inner.poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => {
                if let Some(sleep) = this.sleep.as_pin_mut() {
                    if sleep.poll(cx).is_ready() {
                        if let Some(mut call) = this.call.take() {
                            call.finish(Err(ErrorKind::Timeout));
                        }
                        return Poll::Ready(Err(Box::new(TimedOut)));
                    }
                }
                return Poll::Pending;
            }
        };
        let Some(mut call) = this.call.take() else {
            // Polled again after completing: nothing left to record.
            return Poll::Ready(polled.map(|r| r.map(ClientBody::done)).map_err(Into::into));
        };
        match polled {
            Ok(res) => {
                call.headers(&res);
                Poll::Ready(Ok(res.map(|body| ClientBody::new(body, call))))
            }
            Err(e) => {
                let e: BoxError = e.into();
                call.finish(Err(ErrorKind::of(&*e)));
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// A response body that records its call when it completes, fails
    /// (`kind="protocol"`) or is dropped (the response counts as received).
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B> std::fmt::Debug for ClientBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("recording", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B> ClientBody<B> {
    pub(crate) fn new(inner: B, call: Call) -> Self {
        ClientBody {
            inner,
            call: Some(call),
        }
    }

    fn done(inner: B) -> Self {
        ClientBody { inner, call: None }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for ClientBody<B> {
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
            Some(Ok(_)) => {
                if inner.is_end_stream() {
                    if let Some(mut call) = this.call.take() {
                        call.finish(Ok(()));
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(mut call) = this.call.take() {
                    call.finish(Err(ErrorKind::Protocol));
                }
            }
            None => {
                if let Some(mut call) = this.call.take() {
                    call.finish(Ok(()));
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
