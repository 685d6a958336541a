//! Handing each request its connection without a request extension.
//!
//! `into_make_service_with_connect_info::<ConnectionInfo>()` inserts a
//! `ConnectInfo` into every request's extensions. With axum's own
//! `MatchedPath` and path parameters that makes three entries, one more than
//! the extension map's first allocation holds: the insert, a second
//! allocation and a rehash cost about 800 instructions per request, more
//! than everything the layer records.
//!
//! [`TrackedRouter`] serves the same router for `axum::serve` but passes the
//! connection in a thread-local instead: its per-connection service sets
//! it for the duration of each poll of a request's future (the layer opens
//! its record and handlers run inside that poll, on that thread) and puts
//! the previous value back afterwards. Moving an `Arc` in and out of a
//! `Cell` costs a few instructions and no atomic operation.

use super::connection::{ConnectionState, TrackedListener};
use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

thread_local! {
    static CURRENT: Cell<Option<Arc<ConnectionState>>> = const { Cell::new(None) };
}

/// The connection of the request being polled on this thread, if it came
/// through a [`TrackedRouter`] or [`TrackedIo::serve`](super::connection::TrackedIo::serve).
#[inline]
pub(crate) fn current() -> Option<Arc<ConnectionState>> {
    CURRENT
        .try_with(|c| {
            let conn = c.take();
            let copy = conn.clone();
            c.set(conn);
            copy
        })
        .ok()
        .flatten()
}

/// Runs `f` with `conn` as the current connection, then restores the
/// previous one (also if `f` panics).
#[inline]
fn with_current<R>(conn: &mut Option<Arc<ConnectionState>>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        slot: &'a mut Option<Arc<ConnectionState>>,
        previous: Option<Arc<ConnectionState>>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            *self.slot = CURRENT.try_with(|c| c.replace(previous)).ok().flatten();
        }
    }
    let previous = CURRENT.try_with(|c| c.replace(conn.take())).ok().flatten();
    let _restore = Restore {
        slot: conn,
        previous,
    };
    f()
}

pin_project! {
    /// A future polled with its connection set as the current one.
    pub struct WithConnection<F> {
        #[pin]
        inner: F,
        conn: Option<Arc<ConnectionState>>,
    }
}

impl<F> WithConnection<F> {
    /// `inner`, polled with `conn` as the current connection.
    #[cfg(test)]
    pub(crate) fn new(inner: F, conn: Arc<ConnectionState>) -> Self {
        WithConnection {
            inner,
            conn: Some(conn),
        }
    }
}

impl<F: Future> Future for WithConnection<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        with_current(this.conn, || inner.poll(cx))
    }
}

/// A make-service for `axum::serve` with a [`TrackedListener`]: serves
/// `router` and hands every request the connection it arrived on, so the
/// layer tracks idle connections and peers closing mid-request.
///
/// Use it instead of
/// `router.into_make_service_with_connect_info::<ConnectionInfo>()` (which
/// still works): it does the same without a request extension, about 800
/// instructions less per request. Handlers find the metrics and the
/// connection through [`RouteMetrics`](crate::RouteMetrics) either way.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use vitals_server::{ServerMetrics, TrackedListener, TrackedRouter};
/// let metrics = ServerMetrics::new().expect("metric names are valid");
/// let app = metrics.instrument(axum::Router::new());
/// let listener = TrackedListener::bind("127.0.0.1:3000", &metrics).await?;
/// axum::serve(listener, TrackedRouter::new(app)).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TrackedRouter {
    router: axum::Router,
}

impl TrackedRouter {
    /// Serves `router` (already instrumented: see
    /// [`ServerMetrics::instrument`](crate::ServerMetrics::instrument)).
    pub fn new(router: axum::Router) -> Self {
        TrackedRouter {
            router: prepared(router),
        }
    }
}

impl Service<axum::serve::IncomingStream<'_, TrackedListener>> for TrackedRouter {
    type Response = ConnectionService;
    type Error = Infallible;
    type Future = std::future::Ready<Result<ConnectionService, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, TrackedListener>) -> Self::Future {
        std::future::ready(Ok(ConnectionService {
            router: self.router.clone(),
            conn: stream.io().state().clone(),
        }))
    }
}

/// The service [`TrackedRouter`] makes for one connection.
#[derive(Debug, Clone)]
pub struct ConnectionService {
    router: axum::Router,
    conn: Arc<ConnectionState>,
}

impl ConnectionService {
    /// `router` serving the requests of `conn`.
    pub(crate) fn new(router: axum::Router, conn: Arc<ConnectionState>) -> Self {
        ConnectionService {
            router: prepared(router),
            conn,
        }
    }
}

impl Service<Request> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = WithConnection<axum::routing::future::RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Request) -> Self::Future {
        // Routing only builds the route's future: the layer opens its
        // record when that future is first polled, inside `WithConnection`.
        WithConnection {
            inner: self.router.call(req),
            conn: Some(self.conn.clone()),
        }
    }
}

/// `router` with its handlers turned into services once, as
/// `into_make_service` does: called as it is, a router builds every
/// handler's service (and applies every layer to it) again per request,
/// which would also start each layer's per-route cache from empty.
fn prepared(router: axum::Router) -> axum::Router {
    router.with_state(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_connection_is_set_while_polling_and_restored_after() {
        let metrics = crate::ServerMetrics::builder()
            .registry(vitals::Registry::new())
            .without_process_metrics()
            .without_runtime_metrics()
            .build()
            .unwrap();
        let io = super::super::connection::TrackedIo::new((), None, &metrics);
        let conn = io.state().clone();
        assert!(current().is_none());
        let fut = WithConnection::new(async { current().map(|c| c.id()) }, conn.clone());
        let seen = poll_once(fut);
        assert_eq!(seen, Some(conn.id()));
        assert!(current().is_none(), "restored after the poll");
    }

    /// Polls a future that is ready at once.
    fn poll_once<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the test future is ready at once"),
        }
    }
}
