//! Connection tracking: a listener wrapper for `axum::serve` and an IO
//! wrapper for any accept loop, counting connections, bytes and idle time.

use super::head_timeout::HeadDeadline;
use super::protocol_errors::WriteSniffer;
use crate::server_metrics::ServerMetrics;
use crate::servers::ServerSide;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use vitals::Event;

/// High bit of [`ConnectionState::state`]: the connection has closed.
const CLOSED: usize = 1 << (usize::BITS - 1);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// What the server knows about one connection, shared between its IO and
/// the requests it carries (through [`ConnectionInfo`]).
#[derive(Debug)]
pub struct ConnectionState {
    id: u64,
    peer: Option<SocketAddr>,
    opened: Instant,
    /// Requests in flight, plus the [`CLOSED`] bit. One word, so a request
    /// ending and the connection closing can race without skewing the idle
    /// gauge.
    state: AtomicUsize,
    /// The metrics this connection reports to, so handlers can find them
    /// through [`ConnectionInfo`] without a per-request extension.
    metrics: ServerMetrics,
    /// Responses with status 400, 414 or 431 that the application sent, so
    /// the IO can tell hyper's own protocol-error answers from them.
    app_error_heads: AtomicU32,
    /// Set once the connection has been counted as failed, so an accept
    /// loop and the IO wrapper never count it twice.
    failed: AtomicBool,
    /// Set when the connection was closed for sending no head in time, so
    /// the error hyper then returns is not counted as a failure too.
    timed_out: AtomicBool,
}

impl ConnectionState {
    /// Process-unique connection id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// How long the connection has been open.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// The metrics this connection records into.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.metrics
    }

    /// A request started on this connection.
    pub(crate) fn request_started(&self, side: &ServerSide) {
        let prev = self.state.fetch_add(1, AcqRel);
        if prev == 0 {
            side.connections_idle.dec();
        }
    }

    /// The application answered a request on this connection with `status`.
    /// Rare statuses only: hyper answers malformed HTTP/1 requests with the
    /// same ones by itself.
    #[inline]
    pub(crate) fn answered(&self, status: http::StatusCode) {
        if matches!(status.as_u16(), 400 | 414 | 431) {
            self.app_error_heads.fetch_add(1, Relaxed);
        }
    }

    /// Whether the connection was closed for sending no head in time.
    pub(super) fn timed_out(&self) -> bool {
        self.timed_out.load(Acquire)
    }

    /// Marks the connection closed for sending no head in time; true the
    /// first time only (the IO and hyper may both see it).
    pub(super) fn mark_timed_out(&self) -> bool {
        !self.timed_out.swap(true, AcqRel)
    }

    /// Marks the connection failed; true the first time only.
    fn mark_failed(&self) -> bool {
        !self.failed.swap(true, AcqRel)
    }

    /// A request on this connection finished.
    pub(crate) fn request_finished(&self, side: &ServerSide) {
        let prev = self.state.fetch_sub(1, AcqRel);
        if prev == 1 {
            side.connections_idle.inc();
        }
    }
}

/// Request extension giving the layer the connection a request arrived on.
///
/// `axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>())`
/// with a [`TrackedListener`] puts it there; with a hand-written accept loop,
/// insert `ConnectInfo(ConnectionInfo(io.state()))` into each request yourself.
/// Without it, requests are still measured but idle connections and peers
/// closing mid-request are not.
#[derive(Debug, Clone)]
pub struct ConnectionInfo(pub Arc<ConnectionState>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TrackedListener>>
    for ConnectionInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TrackedListener>) -> Self {
        ConnectionInfo(stream.io().state().clone())
    }
}

/// An IO stream that counts its bytes and reports its life to the metrics.
///
/// Wrap every accepted stream in one when you write your own accept loop
/// (for instance with `hyper_util::server::conn::auto::Builder`); a
/// [`TrackedListener`] does it for `axum::serve`.
#[derive(Debug)]
pub struct TrackedIo<T> {
    io: T,
    state: Arc<ConnectionState>,
    metrics: ServerMetrics,
    /// This connection's own byte counts: only its task touches them, so
    /// they are plain integers (the server-wide totals are atomics).
    sent: u64,
    received: u64,
    /// Watches what the server writes for hyper's protocol-error answers.
    sniffer: WriteSniffer,
    /// Until the first request head arrives: when it must have.
    head: Option<HeadDeadline>,
}

/// Counts `connection` as failed unless it was counted already (by the
/// accept loop or the IO wrapper, whichever saw it first).
pub(super) fn connection_failed_once(
    metrics: &ServerMetrics,
    connection: &ConnectionState,
    reason: impl FnOnce() -> String,
) {
    if connection.mark_failed() {
        metrics.connection_failed(&reason());
    }
}

impl<T> TrackedIo<T> {
    /// Starts tracking a freshly accepted connection.
    ///
    /// Until it sends its first request head the connection has the
    /// builder's [`header_read_timeout`](crate::ServerMetricsBuilder::header_read_timeout)
    /// (30 s by default): past it, reads fail with `TimedOut` (hyper then
    /// closes the connection) and it is counted in
    /// `server_connections_timed_out_total`. Anything the server writes
    /// ends the wait too, so a TLS layer above this wrapper is given the
    /// time for its handshake.
    pub fn new(io: T, peer: Option<SocketAddr>, metrics: &ServerMetrics) -> Self {
        let opened = Instant::now();
        let state = Arc::new(ConnectionState {
            id: NEXT_CONNECTION.fetch_add(1, Relaxed),
            peer,
            opened,
            state: AtomicUsize::new(0),
            metrics: metrics.clone(),
            app_error_heads: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        });
        let m = metrics.side();
        m.connections_total.inc();
        m.connections_active.inc();
        m.connections_idle.inc();
        metrics.events().emit_with(|| Event::ConnectionOpened {
            conn_id: state.id,
            peer: peer.map(|p| p.to_string()),
        });
        TrackedIo {
            io,
            state,
            metrics: metrics.clone(),
            sent: 0,
            received: 0,
            sniffer: WriteSniffer::default(),
            head: metrics
                .inner
                .connection
                .header_read_timeout
                .map(|timeout| HeadDeadline::new(opened, timeout)),
        }
    }

    /// The connection's shared state (for [`ConnectionInfo`]).
    pub fn state(&self) -> &Arc<ConnectionState> {
        &self.state
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The metrics this connection records into.
    pub(super) fn metrics(&self) -> &ServerMetrics {
        &self.metrics
    }

    fn count_sent(&mut self, n: usize) {
        self.metrics.side().bytes_sent.add(n as u64);
        self.sent += n as u64;
        // The server answered (or a TLS layer above shook hands): the
        // client is not stalling the first head.
        if self.head.is_some() {
            self.head = None;
        }
    }
}

impl<T> Drop for TrackedIo<T> {
    fn drop(&mut self) {
        let app_error_heads = self.state.app_error_heads.load(Relaxed);
        if let Some(error) = self.sniffer.error(app_error_heads) {
            connection_failed_once(&self.metrics, &self.state, || error.reason());
        }
        let m = self.metrics.side();
        m.connections_active.dec();
        let prev = self.state.state.fetch_or(CLOSED, AcqRel);
        if prev & !CLOSED == 0 {
            m.connections_idle.dec();
        } else {
            m.connections_peer_closed.inc();
        }
        let s = &self.state;
        let (sent, received) = (self.sent, self.received);
        self.metrics.events().emit_with(|| Event::ConnectionClosed {
            conn_id: s.id,
            duration_secs: s.opened.elapsed().as_secs_f64(),
            bytes_sent: sent,
            bytes_received: received,
        });
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.metrics.side().bytes_received.add(n);
            self.received += n;
        }
        if let Some(head) = &mut self.head {
            if n > 0 && head.saw(&buf.filled()[before..]) {
                self.head = None;
            } else if head.poll_expired(cx).is_ready() {
                self.head = None;
                if self.state.mark_timed_out() {
                    self.metrics.side().connections_timed_out.inc();
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request head within the header read timeout",
                )));
            }
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.count_sent(n);
            self.sniffer.wrote(&buf[..n.min(buf.len())]);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.count_sent(n);
            self.sniffer.wrote_vectored(bufs, n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A TCP listener for `axum::serve` that tracks every connection.
///
/// `axum::serve` discards hyper's connection errors, so protocol errors are
/// read off the wire instead: hyper's own `400`/`414`/`431` answer to a
/// malformed HTTP/1 request (not the application's) and an HTTP/2 `GOAWAY`
/// with an error code count in `server_connections_failed_total`.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};
/// let metrics = ServerMetrics::new().expect("metric names are valid");
/// let app = axum::Router::new().layer(metrics.layer());
/// let listener = TrackedListener::bind("127.0.0.1:3000", &metrics).await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>()).await
/// # }
/// ```
#[derive(Debug)]
pub struct TrackedListener {
    listener: tokio::net::TcpListener,
    metrics: ServerMetrics,
}

impl TrackedListener {
    /// Wraps a bound listener.
    pub fn new(listener: tokio::net::TcpListener, metrics: &ServerMetrics) -> Self {
        TrackedListener {
            listener,
            metrics: metrics.clone(),
        }
    }

    /// Binds `addr` (the first of its addresses that binds) with the
    /// builder's [`listen_backlog`](crate::ServerMetricsBuilder::listen_backlog)
    /// (1024 by default, instead of the runtime's 128, so a burst of
    /// connects is not left to SYN retries) and wraps the listener.
    pub async fn bind(
        addr: impl tokio::net::ToSocketAddrs,
        metrics: &ServerMetrics,
    ) -> io::Result<Self> {
        let backlog = metrics.inner.connection.listen_backlog;
        let mut last = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match listen(addr, backlog) {
                Ok(listener) => return Ok(Self::new(listener, metrics)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedIo<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    // Latency matters more than batching for request/response.
                    let _ = stream.set_nodelay(true);
                    return (TrackedIo::new(stream, Some(addr), &self.metrics), addr);
                }
                Err(e) => {
                    self.metrics.side().connections_failed.inc();
                    self.metrics.events().emit_with(|| Event::ConnectionFailed {
                        reason: format!("accept: {e}"),
                    });
                    // Out of file descriptors and similar: back off as
                    // axum's own listener does, instead of spinning.
                    if !is_connection_error(&e) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A listening socket on `addr` with `backlog`, set up as
/// `TcpListener::bind` sets it up (`SO_REUSEADDR` on Unix).
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Errors that concern one connection only; others (EMFILE) affect all.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
