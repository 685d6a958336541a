//! # vitals-collector
//!
//! The place where many services' request metrics meet: ingest of pushed
//! batches (`POST /v1/ingest`) and per-request records (`POST /v1/requests`),
//! storage behind one [`Store`] trait (SQLite embedded by default), rollups
//! from 1-minute to 5-minute and 1-hour buckets, and the query API
//! (`/v1/services`, `/v1/services/{service}/stats|routes|timeseries|recent`,
//! `/v1/connections`), with the collector's own `/metrics`.
//!
//! Start with [`Collector`]; the `vitals collector` command wraps it.

pub mod auth;
mod clock;
pub mod codec;
pub mod config;
pub mod custom_metrics;
pub mod error;
pub mod ingest;
pub mod model;
pub mod query;
pub mod rollup;
mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::now_ms;
pub use config::{
    CollectorConfig, ConfigError, HotTierSettings, Limits, RetentionConfig, ServicePolicy,
};
pub use error::ApiError;
pub use model::{
    Bucket, BucketQuery, BucketStats, DirtyPeriod, IngestOutcome, IngestWrite, KeyRecord,
    Resolution, Role, RouteSum, Sample, SeriesKey, SeriesSelect, ServiceRecord, UnixMs, totals_of,
    with_totals,
};
pub use query::Health;
pub use server::{Collector, CollectorError, MAX_QUERY_LEN, MAX_RECENT};
pub use store::{BoxFuture, SqliteStore, Store, StoreError, StoreResult};
