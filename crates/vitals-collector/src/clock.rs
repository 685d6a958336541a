//! The collector's one clock: the wall clock in milliseconds since the
//! Unix epoch. Ingest stamps batches with it, the query API ends its
//! windows at it, the background jobs and the hot tier's flusher run at
//! it, and PostgreSQL creates the day partitions ahead of it. One place,
//! so a reader (or a test) knows where "now" comes from.

use crate::model::UnixMs;

/// Current time in ms since the Unix epoch (0 before the epoch, saturated
/// far in the future).
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
