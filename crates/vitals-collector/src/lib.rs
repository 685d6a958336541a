//! # vitals-collector
//!
//! The place where many services' request metrics meet: ingest of pushed
//! batches and per-request records, storage behind one [`Store`] trait
//! (SQLite embedded by default), rollups from 1-minute to 5-minute and
//! 1-hour buckets, and the query API.

pub mod model;
pub mod rollup;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use model::{
    Bucket, BucketQuery, BucketStats, DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord,
    Resolution, Role, Sample, SeriesKey, ServiceRecord, UnixMs,
};
pub use store::{BoxFuture, SqliteStore, Store, StoreError, StoreResult};
