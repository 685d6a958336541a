//! The `task_*{queue}` families: registered by the builder, held in
//! [`ServerMetrics`](crate::ServerMetrics), recorded into by the
//! [`TaskTracker`](crate::TaskTracker) of `tasks.rs` and read by
//! `/debug/metrics`. A plain state type: it knows nothing of the metrics
//! that hold it.

use vitals::{CounterVec, GaugeVec, HistogramVec, Options, Registry};

/// Task durations: milliseconds to an hour.
const TASK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The `task_*` families, registered with the server metrics.
pub(crate) struct TaskFamilies {
    pub(crate) enqueued: CounterVec,
    pub(crate) started: CounterVec,
    pub(crate) completed: CounterVec,
    pub(crate) failed: CounterVec,
    pub(crate) retried: CounterVec,
    pub(crate) in_flight: GaugeVec,
    pub(crate) duration: HistogramVec,
}

impl TaskFamilies {
    /// Registers the families; `opts` applies the namespace and the limit.
    pub(crate) fn register(
        r: &Registry,
        opts: &dyn Fn(&str, &str) -> Options,
    ) -> Result<Self, vitals::Error> {
        let q = &["queue"];
        Ok(TaskFamilies {
            enqueued: r.counter_vec(opts("task_enqueued_total", "Tasks put on a queue"), q)?,
            started: r.counter_vec(opts("task_started_total", "Tasks a worker picked up"), q)?,
            completed: r.counter_vec(
                opts("task_completed_total", "Tasks finished successfully"),
                q,
            )?,
            failed: r.counter_vec(
                opts(
                    "task_failed_total",
                    "Tasks that failed (errors, panics and abandoned runs)",
                ),
                q,
            )?,
            retried: r.counter_vec(
                opts(
                    "task_retried_total",
                    "Task runs put back for another attempt",
                ),
                q,
            )?,
            in_flight: r.gauge_vec(opts("task_in_flight", "Tasks running now"), q)?,
            duration: r.histogram_vec(
                opts(
                    "task_duration_seconds",
                    "Run time of completed and failed tasks",
                )
                .unit(vitals::Unit::Seconds)
                .buckets(TASK_BUCKETS),
                q,
            )?,
        })
    }
}
