//! [`ServerMetrics`]: the handles every concern records into, and the
//! methods that need nothing but them (reading, connections, lifespan and
//! workers, push). The handles are registered by
//! [`ServerMetricsBuilder`](crate::ServerMetricsBuilder), under the names of
//! the contract in docs/ARCHITECTURE.md ("Server metrics").
//!
//! The methods that hand out a concern's type (`builder`, `new`, `layer`,
//! `endpoints`, `instrument`, `tasks`) are in `entry_points.rs`, above the
//! concerns that take a `&ServerMetrics`; its header says why
//! `impl ServerMetrics` is in two files.

use crate::client::ClientMetrics;
use crate::client::families::ClientFamilies;
use crate::endpoints::auth::Credentials;
use crate::endpoints::history::History;
use crate::push::{Aggregator, FlushReport, PushClient};
use crate::record::lifespan::Lifespan;
use crate::record::task_families::TaskFamilies;
use crate::servers::ServerSide;
use crate::settings::{ConnectionOptions, DebugOptions};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitals::{CounterVec, Event, EventBus, GaugeVec, HistogramVec, Registry};

/// Every handle the server instrumentation records into.
///
/// Cheap to clone (one `Arc`). Build it once with [`ServerMetrics::builder`]
/// and hand clones to the listener, the layer, the WebSocket and SSE
/// wrappers and the endpoints.
#[derive(Clone)]
pub struct ServerMetrics {
    pub(crate) inner: Arc<Handles>,
    /// Which declared server this handle records into (its connections
    /// and requests); 0, the only one, when none was declared.
    pub(crate) server: usize,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics")
            .field("namespace", &self.inner.namespace)
            .field("server", &self.server)
            .finish()
    }
}

/// The registered handles (crate-internal field access keeps call sites
/// short). Grouped as the exposition lists them.
pub(crate) struct Handles {
    pub(crate) registry: Registry,
    pub(crate) namespace: String,
    pub(crate) started: Instant,
    // Connections, bytes, HTTP/2 streams and requests in flight, one set
    // per declared server (record/connection.rs, record/in_flight.rs).
    pub(crate) servers: Vec<ServerSide>,
    // Workers and lifespan (record/lifespan.rs).
    pub(crate) lifespan: Lifespan,
    // HTTP (record/in_flight.rs).
    pub(crate) requests: CounterVec,
    /// The endpoints' own requests, unless `endpoints_as_application`.
    pub(crate) endpoint_requests: CounterVec,
    pub(crate) endpoints_as_application: bool,
    pub(crate) duration: HistogramVec,
    pub(crate) first_byte: HistogramVec,
    pub(crate) request_errors: CounterVec,
    pub(crate) requests_abandoned: CounterVec,
    // WebSocket (record/websocket.rs).
    pub(crate) ws_connections: CounterVec,
    pub(crate) ws_active: GaugeVec,
    pub(crate) ws_messages_received: CounterVec,
    pub(crate) ws_messages_sent: CounterVec,
    pub(crate) ws_bytes_received: CounterVec,
    pub(crate) ws_bytes_sent: CounterVec,
    pub(crate) ws_duration: HistogramVec,
    pub(crate) ws_close_codes: CounterVec,
    // SSE (record/sse.rs; the bytes in record/layer.rs).
    pub(crate) sse_connections: CounterVec,
    pub(crate) sse_active: GaugeVec,
    pub(crate) sse_events: CounterVec,
    pub(crate) sse_bytes: CounterVec,
    pub(crate) sse_duration: HistogramVec,
    // Task queues (record/tasks.rs).
    pub(crate) tasks: TaskFamilies,
    // Outbound HTTP clients (client/).
    pub(crate) clients: Arc<ClientFamilies>,
    /// The caller header the clients set by default: the push service.
    pub(crate) client_caller: Option<http::HeaderValue>,
    // Push to a collector (None unless configured: the layer checks it once
    // per request, one predictable branch).
    pub(crate) push: Option<Arc<Aggregator>>,
    pub(crate) push_client: Option<PushClient>,
    // The endpoints.
    pub(crate) debug: DebugOptions,
    pub(crate) connection: ConnectionOptions,
    pub(crate) credentials: Credentials,
    pub(crate) history: History,
}

impl ServerMetrics {
    // --- Reading ---

    /// The registry the metrics live in.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The registry's event bus.
    pub fn events(&self) -> &EventBus {
        self.inner.registry.events()
    }

    /// The namespace prefix ("" for none).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Seconds since these metrics were built (the server's uptime).
    pub fn uptime_seconds(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    // --- Servers ---

    /// This handle's server: its connections, bytes, streams and requests
    /// in flight.
    #[inline]
    pub(crate) fn side(&self) -> &ServerSide {
        &self.inner.servers[self.server]
    }

    /// The metrics of one declared server, by its index or its name
    /// (`None` for a server that was not declared): give it to that
    /// server's [`TrackedListener`](crate::TrackedListener) or
    /// [`TrackedIo`](crate::TrackedIo), and its connections and the
    /// requests they carry land in its `server` series. Everything else
    /// (the registry, the endpoints, the clients) is shared.
    ///
    /// ```
    /// let metrics = vitals_server::ServerMetrics::builder()
    ///     .registry(vitals::Registry::new())
    ///     .server("public")
    ///     .server("admin")
    ///     .build()
    ///     .expect("valid names");
    /// let admin = metrics.server("admin").expect("declared");
    /// assert_eq!(admin.server_index(), 1);
    /// assert_eq!(metrics.server("1").map(|m| m.server_index()), Some(1));
    /// assert!(metrics.server("internal").is_none());
    /// ```
    pub fn server(&self, name_or_index: &str) -> Option<ServerMetrics> {
        crate::servers::find(&self.inner.servers, name_or_index).map(|server| ServerMetrics {
            inner: self.inner.clone(),
            server,
        })
    }

    /// The index of the server this handle records into (0 unless it came
    /// from [`server`](Self::server)).
    pub fn server_index(&self) -> usize {
        self.server
    }

    /// The declared servers, in order: (index, name). One unnamed server
    /// when none was declared.
    pub fn servers(&self) -> Vec<(usize, Option<&str>)> {
        self.inner
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.name.as_deref()))
            .collect()
    }

    // --- Outbound clients ---

    /// Declares the outbound HTTP client `name` (or finds it: the same
    /// name gives the same series and index) and returns what its calls
    /// record into; see [`crate::client`]. The name follows the
    /// caller-name rules ([`valid_caller`](crate::push::valid_caller)).
    ///
    /// ```
    /// let metrics = vitals_server::ServerMetrics::builder()
    ///     .registry(vitals::Registry::new())
    ///     .build()
    ///     .expect("valid names");
    /// let billing = metrics.client("billing").expect("a valid name");
    /// assert_eq!((billing.name(), billing.index()), ("billing", 0));
    /// assert!(metrics.client("no spaces").is_err());
    /// ```
    pub fn client(&self, name: &str) -> Result<ClientMetrics, crate::PushError> {
        if !crate::push::valid_caller(name.as_bytes()) {
            return Err(crate::PushError::InvalidCaller {
                caller: name.to_owned(),
            });
        }
        Ok(ClientMetrics::declare(
            &self.inner.clients,
            &self.inner.registry,
            name,
            self.inner.push.clone(),
            self.inner.client_caller.clone(),
        ))
    }

    // --- Connections ---

    /// Counts a connection that failed after it was accepted: a TLS
    /// handshake or HTTP protocol error reported by your accept loop (for
    /// instance the `Err` of hyper's `serve_connection`).
    pub fn connection_failed(&self, reason: &str) {
        self.side().connections_failed.inc();
        self.events().emit_with(|| Event::ConnectionFailed {
            reason: reason.to_owned(),
        });
    }

    // --- Lifespan and workers ---

    /// Records that start-up (binding, loading config, warming caches)
    /// finished: `server_lifespan_startup_seconds` becomes the time since
    /// `began`, and a lifespan event is emitted.
    pub fn startup_finished(&self, began: Instant) {
        self.inner.lifespan.startup_finished(self.events(), began);
    }

    /// Wraps a shutdown signal for `with_graceful_shutdown`: when `signal`
    /// completes the shut-down clock starts. Call
    /// [`shutdown_finished`](Self::shutdown_finished) once `serve` returns.
    ///
    /// ```no_run
    /// # async fn run(metrics: vitals_server::ServerMetrics, listener: vitals_server::TrackedListener, app: axum::Router) -> std::io::Result<()> {
    /// let signal = async { let _ = tokio::signal::ctrl_c().await; };
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(metrics.shutdown_signal(signal))
    ///     .await?;
    /// metrics.shutdown_finished();
    /// # Ok(()) }
    /// ```
    pub fn shutdown_signal<F>(&self, signal: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let metrics = self.clone();
        async move {
            signal.await;
            metrics.shutdown_started();
        }
    }

    /// Starts the shut-down clock (done for you by
    /// [`shutdown_signal`](Self::shutdown_signal)); open `/debug/events`
    /// streams end after the events they hold.
    pub fn shutdown_started(&self) {
        self.inner.lifespan.shutdown_started(self.events());
    }

    /// Records that shut-down finished: `server_lifespan_shutdown_seconds`
    /// becomes the time since it started (0 if it never started).
    pub fn shutdown_finished(&self) {
        self.inner.lifespan.shutdown_finished(self.events());
    }

    /// A worker (process or thread) started: counts a spawn and one more
    /// active worker. Fed by the prefork supervisor.
    pub fn worker_spawned(&self, worker: u32, pid: Option<u32>) {
        self.inner
            .lifespan
            .worker_spawned(self.events(), worker, pid);
    }

    /// A worker exited.
    pub fn worker_exited(&self, worker: u32, pid: Option<u32>, code: Option<i32>) {
        self.inner
            .lifespan
            .worker_exited(self.events(), worker, pid, code);
    }

    // --- Push ---

    /// The push client, when
    /// [`ServerMetricsBuilder::push`](crate::ServerMetricsBuilder::push)
    /// configured one.
    pub fn push_client(&self) -> Option<&PushClient> {
        self.inner.push_client.as_ref()
    }

    /// Delivers the last interval and stops the push loop (see
    /// [`PushClient::shutdown`]); call it after `serve` returns, next to
    /// [`shutdown_finished`](Self::shutdown_finished). `None` without push.
    pub async fn finish_push(&self, timeout: Duration) -> Option<FlushReport> {
        self.push_client()?.shutdown(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::ServerMetrics;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn lifespan_phases_are_timed() {
        let registry = vitals::Registry::new();
        let m = ServerMetrics::builder()
            .registry(registry.clone())
            .build()
            .unwrap();
        let (_sub, events) = m.events().subscribe_channel("test", 16);
        let began = Instant::now() - Duration::from_millis(250);
        m.startup_finished(began);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = m.shutdown_signal(async move {
            let _ = rx.await;
        });
        let waiter = tokio::spawn(signal);
        let _ = tx.send(());
        waiter.await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        m.shutdown_finished();
        m.worker_spawned(1, Some(42));
        m.worker_spawned(2, Some(43));
        m.worker_exited(1, Some(42), Some(0));
        let snap = registry.snapshot();
        let float = |name: &str| match &snap.family(name).unwrap().series[0].value {
            vitals::snapshot::Value::Float { value } => *value,
            other => panic!("{other:?}"),
        };
        assert!(float("server_lifespan_startup_seconds") >= 0.25);
        let shutdown = float("server_lifespan_shutdown_seconds");
        assert!((0.03..5.0).contains(&shutdown), "{shutdown}");
        let int = |name: &str| match &snap.family(name).unwrap().series[0].value {
            vitals::snapshot::Value::Unsigned { value } => *value as i64,
            vitals::snapshot::Value::Signed { value } => *value,
            other => panic!("{other:?}"),
        };
        assert_eq!(int("server_worker_spawns"), 2);
        assert_eq!(int("server_workers_active"), 1);
        let kinds: Vec<&str> = events.try_iter().map(|e| e.event.type_name()).collect();
        assert_eq!(
            kinds,
            [
                "lifespan",
                "lifespan",
                "lifespan",
                "worker_spawned",
                "worker_spawned",
                "worker_exited"
            ]
        );
    }
}
