//! Ingest: a pushed body in, one atomic [`IngestWrite`](crate::model::IngestWrite) of minute buckets,
//! samples and custom points out, for the store to keep.
//!
//! Everything from the network is checked against [`Limits`]: sizes,
//! names, counts, durations, statuses, timestamps. The first problem
//! refuses the whole batch with a clear [`ApiError`], so a sender never
//! half-succeeds. Routes beyond a service's limit are folded into
//! [`OVERFLOW_ROUTE`](crate::model::OVERFLOW_ROUTE).
//!
//! The steps, in the order `accept` runs them (the server authorizes
//! the key and caps the raw body first, and stores the result after):
//!
//! 1. `body.rs`: decode the body: gunzip it within the limit on the
//!    decompressed size, parse the JSON ([`inflate_body`], [`parse_body`]).
//! 2. `validate.rs`: check the service name, before anything else about
//!    the batch ([`check_service`]).
//! 3. `limits.rs`: admit the service: count it against the tenant's
//!    service limit and learn its known routes and custom series from the
//!    store ([`RouteLimiter::admit_service`]).
//! 4. `prepare.rs` (aggregated batches) or `records.rs` (per-request
//!    records): validate every item, only then ask the route and custom
//!    series limiters, and build the write: minute buckets with their
//!    per-service totals ([`crate::model::with_totals`]), samples, custom
//!    points ([`prepare_batch`], [`prepare_records`]).
//!
//! 5. `limits.rs` again, with a store that shares limits between
//!    collectors: the routes this collector has not seen admitted are
//!    admitted by the store, and the refused ones folded into the
//!    overflow route ([`RouteLimiter::confirm_routes`]).
//!
//! The write then goes to [`Store::ingest`], atomically.
//!
//! OTLP/HTTP metrics (`POST /v1/metrics`) take the same steps in
//! [`otlp`]: decode (protobuf or JSON), check and admit each resource's
//! `service.name`, then one write per service.

mod body;
mod limits;
pub mod otlp;
mod prepare;
mod records;
mod validate;

pub use body::{decode_body, inflate_body, is_gzip, parse_body};
pub use limits::RouteLimiter;
pub use prepare::{Prepared, prepare_batch};
pub use records::prepare_records;
pub use validate::check_service;

use crate::config::{CollectorConfig, Limits};
use crate::error::ApiError;
use crate::model::UnixMs;
use crate::store::Store;
use vitals::wire::{IngestBatch, RequestBatchRef};

/// Who sent a batch, when it arrived, and what it is checked and counted
/// against: what every step of [`accept`] reads.
pub(crate) struct Intake<'a> {
    /// The sender's tenant (from its API key).
    pub tenant: &'a str,
    /// When the batch arrived (ms since the epoch).
    pub now: UnixMs,
    /// Limits and per-service policies.
    pub config: &'a CollectorConfig,
    /// How far back a timestamp may lie, ms before `now`.
    pub oldest_ms: i64,
    /// The store the limiters learn from on a service's first batch.
    pub store: &'a dyn Store,
    /// The limits that hold across batches.
    pub routes: &'a RouteLimiter,
}

/// The two kinds of ingest body: aggregated batches and per-request
/// records.
pub(crate) trait BatchKind {
    /// The endpoint's label in `vitals_collector_batches_total`.
    const ENDPOINT: &'static str;
    /// The decoded body, which may borrow from the body's bytes.
    type Batch<'a>: serde::Deserialize<'a> + Send;
    /// The service the batch is about.
    fn service<'b>(batch: &'b Self::Batch<'_>) -> &'b str;
    /// Step 4: validates the batch and builds its write.
    fn prepare(batch: Self::Batch<'_>, at: &Intake<'_>) -> Result<Prepared, ApiError>;
}

/// `POST /v1/ingest`: aggregated batches.
pub(crate) struct Aggregates;

impl BatchKind for Aggregates {
    const ENDPOINT: &'static str = "ingest";
    type Batch<'a> = IngestBatch;
    fn service(batch: &IngestBatch) -> &str {
        &batch.service
    }
    fn prepare(batch: IngestBatch, at: &Intake<'_>) -> Result<Prepared, ApiError> {
        prepare_batch(at.tenant, batch, at.now, at.config, at.oldest_ms, at.routes)
    }
}

/// `POST /v1/requests`: per-request records, read in place.
pub(crate) struct Records;

impl BatchKind for Records {
    const ENDPOINT: &'static str = "requests";
    type Batch<'a> = RequestBatchRef<'a>;
    fn service<'b>(batch: &'b RequestBatchRef<'_>) -> &'b str {
        &batch.service
    }
    fn prepare(batch: RequestBatchRef<'_>, at: &Intake<'_>) -> Result<Prepared, ApiError> {
        prepare_records(at.tenant, batch, at.now, at.config, at.oldest_ms, at.routes)
    }
}

/// Steps 1 to 4 (see the module docs): a body's bytes (gzip when `gzip`)
/// into the write the store takes, or the first reason to refuse it.
pub(crate) async fn accept<K: BatchKind>(
    bytes: &[u8],
    gzip: bool,
    at: &Intake<'_>,
) -> Result<Prepared, ApiError> {
    let limits: &Limits = &at.config.limits;
    let json = inflate_body(bytes, gzip, limits.max_decompressed_bytes)?;
    let batch: K::Batch<'_> = parse_body(&json)?;
    check_service(K::service(&batch), limits)?;
    at.routes
        .admit_service(at.store, at.tenant, K::service(&batch), at.now, limits)
        .await?;
    let mut prepared = K::prepare(batch, at)?;
    prepared.overflowed += at
        .routes
        .confirm_routes(at.store, at.tenant, &mut prepared.write, limits)
        .await?;
    Ok(prepared)
}
