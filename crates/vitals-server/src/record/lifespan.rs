//! Start-up and shut-down timing, uptime, and worker accounting.

use crate::ServerMetrics;
use std::future::Future;
use std::sync::PoisonError;
use std::time::Instant;
use vitals::{Event, LifespanPhase};

impl ServerMetrics {
    /// Records that start-up (binding, loading config, warming caches)
    /// finished: `server_lifespan_startup_seconds` becomes the time since
    /// `began`, and a lifespan event is emitted.
    pub fn startup_finished(&self, began: Instant) {
        let secs = began.elapsed().as_secs_f64();
        self.inner.startup_seconds.set(secs);
        self.events().emit_with(|| Event::Lifespan {
            phase: LifespanPhase::Startup,
            duration_secs: secs,
        });
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
    /// [`shutdown_signal`](Self::shutdown_signal)).
    pub fn shutdown_started(&self) {
        self.inner
            .shutdown_began
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        // The lock is released: a callback may read the lifespan state.
        self.events().emit_with(|| Event::Lifespan {
            phase: LifespanPhase::ShutdownStarted,
            duration_secs: 0.0,
        });
    }

    /// Records that shut-down finished: `server_lifespan_shutdown_seconds`
    /// becomes the time since it started (0 if it never started).
    pub fn shutdown_finished(&self) {
        let began = *self
            .inner
            .shutdown_began
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let secs = began.map_or(0.0, |b| b.elapsed().as_secs_f64());
        self.inner.shutdown_seconds.set(secs);
        self.events().emit_with(|| Event::Lifespan {
            phase: LifespanPhase::Shutdown,
            duration_secs: secs,
        });
    }

    /// A worker (process or thread) started: counts a spawn and one more
    /// active worker. Fed by the prefork supervisor.
    pub fn worker_spawned(&self, worker: u32, pid: Option<u32>) {
        self.inner.worker_spawns.inc();
        self.inner.workers_active.inc();
        self.events()
            .emit_with(|| Event::WorkerSpawned { worker, pid });
    }

    /// A worker exited.
    pub fn worker_exited(&self, worker: u32, pid: Option<u32>, code: Option<i32>) {
        self.inner.workers_active.dec();
        self.events()
            .emit_with(|| Event::WorkerExited { worker, pid, code });
    }
}

#[cfg(test)]
mod tests {
    use crate::ServerMetrics;
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
