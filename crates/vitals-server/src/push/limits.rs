//! The bounds of what the push client sends, most of them the collector's
//! own limits (a batch past one is refused whole).

use std::time::Duration;

/// Longest caller name accepted, in bytes.
pub const MAX_CALLER_LEN: usize = 64;
/// Longest sampled path kept, in bytes (longer ones are cut at a character
/// boundary).
pub const MAX_SAMPLED_PATH_LEN: usize = 256;
/// Bodies at least this large are sent gzip-compressed.
pub const GZIP_MIN_BYTES: usize = 1024;
/// Longest wait a `Retry-After` answer can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest service or instance name kept, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest route template pushed, in bytes (longer ones are cut at a
/// character boundary); the collector refuses batches with longer ones.
pub const MAX_ROUTE_LEN: usize = 256;
/// Longest duration pushed, in milliseconds (one hour): longer requests are
/// recorded as this long, since the collector refuses batches holding longer
/// ones. WebSocket sessions and SSE streams are not timed at all.
pub const MAX_DURATION_MS: f64 = 3_600_000.0;
/// Longest push interval (one hour), as the collector accepts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
