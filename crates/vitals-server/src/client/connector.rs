//! [`TrackedConnector`]: wraps a hyper-util connector (`HttpConnector`, a
//! rustls or native-tls connector, any `Service<Uri>`) to count the
//! connections it opens and mark each one, so the client layer can count
//! the requests sent on a reused connection.

use super::call::ConnectionMark;
use super::metrics::ClientMetrics;
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::Service;

/// A connector that counts `http_client_connections_opened_total` and
/// marks each connection for `http_client_connections_reused_total`
/// (hyper-util's client hands the mark to every response on it).
/// Build one with [`ClientMetrics::connector`].
#[derive(Debug, Clone)]
pub struct TrackedConnector<C> {
    inner: C,
    metrics: ClientMetrics,
}

impl ClientMetrics {
    /// Wraps `connector` so this client's connections are counted.
    pub fn connector<C>(&self, connector: C) -> TrackedConnector<C> {
        TrackedConnector {
            inner: connector,
            metrics: self.clone(),
        }
    }
}

impl<C> Service<Uri> for TrackedConnector<C>
where
    C: Service<Uri>,
    C::Future: Unpin,
{
    type Response = TrackedConnection<C::Response>;
    type Error = C::Error;
    type Future = ConnectFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        ConnectFuture {
            inner: self.inner.call(uri),
            metrics: self.metrics.clone(),
        }
    }
}

/// The future of [`TrackedConnector`]: the connection, counted and marked.
#[derive(Debug)]
pub struct ConnectFuture<F> {
    inner: F,
    metrics: ClientMetrics,
}

impl<F, T, E> Future for ConnectFuture<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<TrackedConnection<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let io = ready!(Pin::new(&mut self.inner).poll(cx))?;
        self.metrics.shared.opened.inc();
        Poll::Ready(Ok(TrackedConnection {
            io,
            mark: ConnectionMark::default(),
        }))
    }
}

/// A connection [`TrackedConnector`] opened: the inner IO and its mark.
#[derive(Debug)]
pub struct TrackedConnection<T> {
    io: T,
    mark: ConnectionMark,
}

impl<T: Connection> Connection for TrackedConnection<T> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.mark.clone())
    }
}

impl<T: Read + Unpin> Read for TrackedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for TrackedConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
