//! [`TrackedIo::serve`]: serving one tracked connection with hyper-util,
//! for a hand-written accept loop. Apart from `connection.rs` because it
//! hands requests their connection through `current_connection.rs`, which
//! itself builds on the connection types.

use super::connection::{TrackedIo, connection_failed_once};
use super::current_connection::ConnectionService;
use tokio::io::{AsyncRead, AsyncWrite};

impl<T> TrackedIo<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Serves this connection with `app` (HTTP/1.1 or HTTP/2, upgrades
    /// included), for a hand-written accept loop: each request is handed
    /// the connection (as [`TrackedRouter`](crate::TrackedRouter) does, without an
    /// extension), an HTTP protocol error ends the connection and is
    /// counted in `server_connections_failed_total`, and a connection that
    /// takes longer than the
    /// [`header_read_timeout`](crate::ServerMetricsBuilder::header_read_timeout)
    /// to send a request head (the first one or a later one) is closed and
    /// counted in `server_connections_timed_out_total`.
    ///
    /// ```no_run
    /// # async fn run(listener: tokio::net::TcpListener, app: axum::Router, metrics: vitals_server::ServerMetrics) {
    /// loop {
    ///     let Ok((stream, peer)) = listener.accept().await else { continue };
    ///     let io = vitals_server::TrackedIo::new(stream, Some(peer), &metrics);
    ///     tokio::spawn(io.serve(app.clone()));
    /// }
    /// # }
    /// ```
    pub async fn serve(self, app: axum::Router) {
        use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
        use tower::ServiceExt;
        let state = self.state().clone();
        let metrics = self.metrics().clone();
        // Each request finds its connection through `WithConnection`, with
        // no extension to insert.
        let service = ConnectionService::new(app, state.clone());
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                service.clone().oneshot(req.map(axum::body::Body::new))
            });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        if let Some(timeout) = metrics.inner.connection.header_read_timeout {
            // The first head is watched by the IO; hyper watches the later
            // ones on a kept-alive connection (and closes it when idle that long).
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
        }
        if let Err(e) = builder
            .serve_connection_with_upgrades(TokioIo::new(self), service)
            .await
        {
            if state.timed_out() {
                // Counted by the IO already.
            } else if is_header_timeout(&*e) {
                if state.mark_timed_out() {
                    metrics.side().connections_timed_out.inc();
                }
            } else {
                connection_failed_once(&metrics, &state, || format!("http: {e}"));
            }
        }
    }
}

/// Whether hyper gave up waiting for a request head.
fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}
