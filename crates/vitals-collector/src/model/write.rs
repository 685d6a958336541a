//! What ingest hands the store: one atomic [`IngestWrite`] (minute
//! buckets, custom points, sampled requests) and what became of it, and
//! the service records it leaves behind.

use super::bucket::Bucket;
use super::custom::CustomPoint;
use super::period::UnixMs;
use serde::{Deserialize, Serialize};

/// One sampled request, kept for the "recent requests" view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the request started, ms since the epoch.
    pub timestamp_ms: UnixMs,
    /// Service instance that served it (may be empty).
    pub instance: String,
    /// HTTP method.
    pub method: String,
    /// Raw path (may be empty).
    pub path: String,
    /// Route template.
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Calling service, if known.
    pub caller: Option<String>,
    /// W3C trace id, if known.
    pub trace_id: Option<String>,
}

/// A sampled request with the service that served it: one step of a
/// request journey (`GET /v1/traces/{trace_id}`), serialized as the
/// service plus the fields of a [`Sample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSample {
    /// The service that served the request.
    pub service: String,
    /// The sampled request.
    #[serde(flatten)]
    pub sample: Sample,
}

/// Everything one accepted ingest request writes, atomically: the
/// per-minute aggregates, the sampled requests, and the batch id that makes
/// a retry a no-op.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestWrite {
    /// Whose data this is.
    pub tenant: String,
    /// The service the batch is about.
    pub service: String,
    /// The batch id; `None` when the sender gave none (no dedup then).
    pub batch_id: Option<String>,
    /// When the collector received the batch (ms since the epoch).
    pub received_ms: UnixMs,
    /// Minute buckets to merge into what is stored (resolution is always
    /// [`Resolution::Minute`](super::Resolution::Minute), tenant always `tenant`).
    pub buckets: Vec<Bucket>,
    /// Sampled requests, all of `service`.
    pub samples: Vec<Sample>,
    /// Custom metric points to merge into what is stored (resolution
    /// always [`Resolution::Minute`](super::Resolution::Minute), tenant `tenant`, service `service`).
    pub custom: Vec<CustomPoint>,
}

/// What happened to an ingest write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored durably.
    Stored,
    /// The batch id was seen before for this tenant and service: nothing written.
    Duplicate,
}

/// A service as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Service name.
    pub service: String,
    /// When data for it last arrived (ms since the epoch).
    pub last_seen_ms: UnixMs,
}
