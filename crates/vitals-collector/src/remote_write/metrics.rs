//! The exporter's own series in the collector's `/metrics`, labelled by
//! receiver (`remote`, the `[[remote_write]]` name).

use vitals::{CounterVec, GaugeVec, Registry};

/// The remote-write families, shared by every receiver.
#[derive(Clone)]
pub struct RemoteMetrics {
    /// Bytes queued on disk.
    pub queue_bytes: GaugeVec,
    /// Requests queued on disk.
    pub queue_requests: GaugeVec,
    /// Seconds the export cursor is behind the wall clock.
    pub lag_seconds: GaugeVec,
    /// Samples the receiver accepted.
    pub sent: CounterVec,
    /// Samples given up, by reason.
    pub dropped: CounterVec,
    /// Failed attempts, by reason.
    pub failures: CounterVec,
}

impl RemoteMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, vitals::Error> {
        Ok(RemoteMetrics {
            queue_bytes: registry.gauge_vec(
                (
                    "vitals_collector_remote_write_queue_bytes",
                    "Bytes of remote-write requests queued on disk, by receiver",
                ),
                &["remote"],
            )?,
            queue_requests: registry.gauge_vec(
                (
                    "vitals_collector_remote_write_queue_requests",
                    "Remote-write requests queued on disk, by receiver",
                ),
                &["remote"],
            )?,
            lag_seconds: registry.gauge_vec(
                (
                    "vitals_collector_remote_write_lag_seconds",
                    "Seconds between now and the end of the last minute exported to the queue, by receiver",
                ),
                &["remote"],
            )?,
            sent: registry.counter_vec(
                (
                    "vitals_collector_remote_write_sent_samples_total",
                    "Samples a remote-write receiver accepted",
                ),
                &["remote"],
            )?,
            dropped: registry.counter_vec(
                (
                    "vitals_collector_remote_write_dropped_samples_total",
                    "Samples given up, by receiver and reason (http_4xx: refused for good; queue_full: evicted by the queue bound; damaged: unreadable queue file)",
                ),
                &["remote", "reason"],
            )?,
            failures: registry.counter_vec(
                (
                    "vitals_collector_remote_write_failures_total",
                    "Failed remote-write attempts, by receiver and reason (http_5xx, http_429 and network are retried; http_4xx is not; queue and store errors)",
                ),
                &["remote", "reason"],
            )?,
        })
    }
}
