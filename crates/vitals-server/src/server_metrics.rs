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

use crate::endpoints::auth::Credentials;
use crate::endpoints::history::History;
use crate::push::{Aggregator, FlushReport, PushClient};
use crate::record::lifespan::Lifespan;
use crate::record::task_families::TaskFamilies;
use crate::settings::{ConnectionOptions, DebugOptions};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitals::{Counter, CounterVec, Event, EventBus, Gauge, GaugeVec, HistogramVec, Registry};

/// Every handle the server instrumentation records into.
///
/// Cheap to clone (one `Arc`). Build it once with [`ServerMetrics::builder`]
/// and hand clones to the listener, the layer, the WebSocket and SSE
/// wrappers and the endpoints.
#[derive(Clone)]
pub struct ServerMetrics {
    pub(crate) inner: Arc<Handles>,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

/// The registered handles (crate-internal field access keeps call sites
/// short). Grouped as the exposition lists them.
pub(crate) struct Handles {
    pub(crate) registry: Registry,
    pub(crate) namespace: String,
    pub(crate) started: Instant,
    // Connections (record/connection.rs).
    pub(crate) connections_total: Counter,
    pub(crate) connections_active: Gauge,
    pub(crate) connections_failed: Counter,
    pub(crate) connections_idle: Gauge,
    pub(crate) connections_peer_closed: Counter,
    pub(crate) connections_timed_out: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) bytes_received: Counter,
    // HTTP/2 (record/in_flight.rs).
    pub(crate) streams_total: Counter,
    pub(crate) streams_active: Gauge,
    // Workers and lifespan (record/lifespan.rs).
    pub(crate) lifespan: Lifespan,
    // HTTP (record/in_flight.rs).
    pub(crate) requests: CounterVec,
    /// The endpoints' own requests, unless `endpoints_as_application`.
    pub(crate) endpoint_requests: CounterVec,
    pub(crate) endpoints_as_application: bool,
    pub(crate) duration: HistogramVec,
    pub(crate) first_byte: HistogramVec,
    pub(crate) active_requests: Gauge,
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

    // --- Connections ---

    /// Counts a connection that failed after it was accepted: a TLS
    /// handshake or HTTP protocol error reported by your accept loop (for
    /// instance the `Err` of hyper's `serve_connection`).
    pub fn connection_failed(&self, reason: &str) {
        self.inner.connections_failed.inc();
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
