//! A request as it ended, which both the aggregates ([`super::aggregate`])
//! and the request sample ([`super::sample`]) record.

use super::limits::MAX_DURATION_MS;

/// How a request ended, as the layer saw it.
pub(crate) struct Ended<'a> {
    pub(crate) method: &'static str,
    pub(crate) route: &'a str,
    pub(crate) status: u16,
    /// 5xx or a failed handler or body.
    pub(crate) error: bool,
    pub(crate) elapsed_secs: f64,
    /// False for WebSocket upgrades and event streams, which stay out of
    /// durations and Apdex, as they do in the latency histograms.
    pub(crate) timed: bool,
}

/// Seconds to milliseconds, at most [`MAX_DURATION_MS`].
#[inline]
pub(crate) fn duration_ms(secs: f64) -> f64 {
    (secs * 1000.0).min(MAX_DURATION_MS)
}
