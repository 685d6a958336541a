//! Start-up and shut-down timing and worker accounting: the
//! `server_lifespan_*` and `server_worker*` families and the lifespan and
//! worker events. [`ServerMetrics`](crate::server_metrics::ServerMetrics)
//! exposes them as `startup_finished`, `shutdown_signal`,
//! `shutdown_started`, `shutdown_finished`, `worker_spawned` and
//! `worker_exited` (tested there, in `server_metrics.rs`). A plain state
//! type: it knows nothing of the metrics that hold it.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;
use vitals::{
    Event, EventBus, FloatGauge, Gauge, GaugeMode, LifespanPhase, Options, Registry, Unit,
};

/// The lifespan and worker handles, registered with the server metrics.
pub(crate) struct Lifespan {
    pub(crate) startup_seconds: FloatGauge,
    pub(crate) shutdown_seconds: FloatGauge,
    /// When shut-down started (set once).
    shutdown_began: Mutex<Option<Instant>>,
    pub(crate) workers_active: Gauge,
    pub(crate) worker_spawns: vitals::Counter,
}

impl Lifespan {
    /// Registers the families; `opts` applies the namespace and the limit.
    pub(crate) fn register(
        r: &Registry,
        opts: &dyn Fn(&str, &str) -> Options,
    ) -> Result<Self, vitals::Error> {
        let secs = |n: &str, help: &str| opts(n, help).unit(Unit::Seconds);
        // Registered in this order, which is the order of the exposition.
        Ok(Lifespan {
            workers_active: r.gauge(opts("server_workers_active", "Worker processes running"))?,
            worker_spawns: r.counter(opts(
                "server_worker_spawns_total",
                "Worker processes started",
            ))?,
            // With prefork workers the supervisor's timing (which spans the
            // workers') is the one shown: the largest of the live processes.
            startup_seconds: r.float_gauge(
                secs(
                    "server_lifespan_startup_seconds",
                    "Time the start-up phase took",
                )
                .gauge_mode(GaugeMode::Max),
            )?,
            shutdown_seconds: r.float_gauge(
                secs(
                    "server_lifespan_shutdown_seconds",
                    "Time the shut-down phase took",
                )
                .gauge_mode(GaugeMode::Max),
            )?,
            shutdown_began: Mutex::new(None),
        })
    }

    /// Start-up finished: its gauge becomes the time since `began`.
    pub(crate) fn startup_finished(&self, events: &EventBus, began: Instant) {
        let secs = began.elapsed().as_secs_f64();
        self.startup_seconds.set(secs);
        events.emit_with(|| Event::Lifespan {
            phase: LifespanPhase::Startup,
            duration_secs: secs,
        });
    }

    /// Starts the shut-down clock (once; later calls keep the first time).
    pub(crate) fn shutdown_started(&self, events: &EventBus) {
        self.shutdown_began
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        // The lock is released: a callback may read the lifespan state.
        events.emit_with(|| Event::Lifespan {
            phase: LifespanPhase::ShutdownStarted,
            duration_secs: 0.0,
        });
    }

    /// Shut-down finished: its gauge becomes the time since it started (0
    /// if it never started).
    pub(crate) fn shutdown_finished(&self, events: &EventBus) {
        let began = *self
            .shutdown_began
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let secs = began.map_or(0.0, |b| b.elapsed().as_secs_f64());
        self.shutdown_seconds.set(secs);
        events.emit_with(|| Event::Lifespan {
            phase: LifespanPhase::Shutdown,
            duration_secs: secs,
        });
    }

    /// A worker started: one spawn and one more active worker.
    pub(crate) fn worker_spawned(&self, events: &EventBus, worker: u32, pid: Option<u32>) {
        self.worker_spawns.inc();
        self.workers_active.inc();
        events.emit_with(|| Event::WorkerSpawned { worker, pid });
    }

    /// A worker exited: one active worker fewer.
    pub(crate) fn worker_exited(
        &self,
        events: &EventBus,
        worker: u32,
        pid: Option<u32>,
        code: Option<i32>,
    ) {
        self.workers_active.dec();
        events.emit_with(|| Event::WorkerExited { worker, pid, code });
    }
}
