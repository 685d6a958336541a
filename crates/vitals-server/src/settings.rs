//! The settings [`ServerMetricsBuilder`](crate::ServerMetricsBuilder) fills,
//! and every default it fills them with. The builder is the one reader of a
//! `DEFAULT_*`; the modules that use a setting read it from the built
//! [`DebugOptions`] (or the ring the builder sized), never a default of
//! their own.

use std::time::Duration;

/// Default interval of the `: heartbeat` comment on `/debug/events`.
pub const DEFAULT_EVENTS_HEARTBEAT: Duration = Duration::from_secs(15);
/// Default cap on concurrent `/debug/events` clients.
pub const DEFAULT_EVENTS_MAX_CLIENTS: usize = 16;
/// Default per-client buffer of `/debug/events`, in events.
pub const DEFAULT_EVENTS_BUFFER: usize = 1024;
/// Default time between two `/debug/history` points.
pub const DEFAULT_HISTORY_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of `/debug/history` points kept (15 minutes at one per
/// second).
pub const DEFAULT_HISTORY_CAPACITY: usize = 900;
/// Window for rates and percentiles in `/debug/metrics`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Default time a new connection has to send its first request head (or
/// the HTTP/2 preface) before it is closed and counted in
/// `server_connections_timed_out_total`: a client that opens a connection
/// and sends nothing, or part of a head (slowloris), holds it no longer.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default listen backlog of [`TrackedListener::bind`](crate::TrackedListener::bind):
/// connections the kernel completes before the server accepts them. The
/// runtime's own default (128) makes a burst of connects wait for SYN
/// retries, a second or more. Linux caps it at `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// Settings of the listener and connections, fixed at build time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionOptions {
    /// Time a connection has to send a request head (`None`: forever).
    pub(crate) header_read_timeout: Option<Duration>,
    /// Listen backlog of `TrackedListener::bind`.
    pub(crate) listen_backlog: u32,
}

/// Settings of the endpoints, fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct DebugOptions {
    /// Interval of the `: heartbeat` comment on `/debug/events`.
    pub(crate) events_heartbeat: Duration,
    /// Most concurrent `/debug/events` clients.
    pub(crate) events_max_clients: usize,
    /// Events buffered per `/debug/events` client (at least 1).
    pub(crate) events_buffer: usize,
    /// The window of rates and percentiles in `/debug/metrics`.
    pub(crate) window: Duration,
}
