//! [`StatsdExporter`]: a thread of its own that reads the registry every
//! interval and sends the lines of `lines.rs` over UDP. Recording never
//! waits on it: the hot path only touches its atomics, the exporter reads
//! them like a scrape does. The socket is non-blocking, so a full send
//! buffer drops a datagram (counted) instead of stalling the loop; a send
//! error is counted and never stops the exporter.

use super::config::StatsdConfig;
use super::lines::{LineWriter, Previous, pack};
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;
use vitals::{Counter, CounterVec, Registry};

/// The exporter's own series, in the registry it reads.
struct Own {
    datagrams: Counter,
    errors: CounterVec,
}

/// State shared by the handle and the thread.
struct Shared {
    config: StatsdConfig,
    registry: Registry,
    socket: UdpSocket,
    target: std::net::SocketAddr,
    own: Own,
    previous: Mutex<Previous>,
    /// `true` once shutdown was asked; the condvar wakes the thread.
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Sends a registry's metrics to a StatsD or DogStatsD server every
/// interval. Counts itself in `vitals_statsd_datagrams_total` and
/// `vitals_statsd_errors_total{reason}` (`send`: the socket refused a
/// datagram; `line_too_long`: a line longer than the datagram limit).
///
/// ```no_run
/// use vitals_server::statsd::{StatsdConfig, StatsdExporter};
/// let registry = vitals::Registry::new();
/// let exporter = StatsdExporter::start(&registry, StatsdConfig::new("127.0.0.1:8125").prefix("app"))
///     .expect("valid address");
/// // … serve …
/// exporter.shutdown(); // one last send, then the thread ends
/// ```
pub struct StatsdExporter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StatsdExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdExporter")
            .field("target", &self.shared.target)
            .finish()
    }
}

/// What one send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsdReport {
    /// Datagrams the socket took.
    pub sent: usize,
    /// Datagrams the socket refused.
    pub failed: usize,
    /// Lines longer than the datagram limit, left out.
    pub too_long: usize,
}

impl StatsdExporter {
    /// Resolves the target, opens a UDP socket and starts the thread.
    /// Fails only when the target does not resolve or no socket opens.
    pub fn start(registry: &Registry, config: StatsdConfig) -> std::io::Result<Self> {
        let target = config.target.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::other(format!("{} resolves to nothing", config.target))
        })?;
        let bind = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let errors = registry
            .counter_vec(
                (
                    "vitals_statsd_errors_total",
                    "StatsD datagrams or lines not sent, by reason",
                ),
                &["reason"],
            )
            .map_err(std::io::Error::other)?;
        let datagrams = registry
            .counter(("vitals_statsd_datagrams_total", "StatsD datagrams sent"))
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            config,
            registry: registry.clone(),
            socket,
            target,
            own: Own { datagrams, errors },
            previous: Mutex::new(Previous::default()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("vitals-statsd".into())
            .spawn(move || run(&thread_shared))?;
        Ok(StatsdExporter {
            shared,
            thread: Some(thread),
        })
    }

    /// Reads the registry and sends now (the thread also does it every
    /// interval).
    pub fn flush(&self) -> StatsdReport {
        send_once(&self.shared)
    }

    /// Stops the thread after one last send.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StatsdExporter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let every = shared.config.interval;
    let mut next = Instant::now() + every;
    loop {
        let mut stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            stop = shared
                .wake
                .wait_timeout(stop, next - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let stopping = *stop;
        drop(stop);
        send_once(shared);
        if stopping {
            return;
        }
        next += every;
        let now = Instant::now();
        if next < now {
            // Fell behind (a suspended machine): skip, do not burst.
            next = now + every;
        }
    }
}

/// One read and send. Reads under the `previous` lock so two sends never
/// report the same delta twice.
fn send_once(shared: &Shared) -> StatsdReport {
    let mut previous = shared
        .previous
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let c = &shared.config;
    let mut writer = LineWriter::new(&c.prefix, c.histograms, c.tags, &mut previous);
    shared.registry.visit(&mut writer);
    let units = writer.finish();
    let (payloads, too_long) = pack(&units, c.max_datagram);
    let mut report = StatsdReport {
        too_long,
        ..StatsdReport::default()
    };
    for p in &payloads {
        match shared.socket.send_to(p, shared.target) {
            Ok(_) => report.sent += 1,
            Err(_) => report.failed += 1,
        }
    }
    let own = &shared.own;
    own.datagrams.add(report.sent as u64);
    if report.failed > 0 {
        own.errors.get(&["send"]).add(report.failed as u64);
    }
    if too_long > 0 {
        own.errors.get(&["line_too_long"]).add(too_long as u64);
    }
    report
}
