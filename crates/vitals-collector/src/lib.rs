//! # vitals-collector
//!
//! The place where many services' request metrics meet: ingest of pushed
//! batches (`POST /v1/ingest`) and per-request records (`POST /v1/requests`),
//! storage behind one [`Store`] trait (SQLite embedded by default), rollups
//! from 1-minute to 5-minute and 1-hour buckets, and the query API
//! (`/v1/services`, `/v1/services/{service}/stats|routes|timeseries|recent`,
//! `/v1/connections`, `/v1/traces/{trace_id}`, the `/v1/live` event
//! stream), with the collector's own `/metrics`. Every window includes
//! every acknowledged batch at once ([`store::fresh`]).
//!
//! Start with [`Collector`]; the `vitals collector` command wraps it. The
//! wire format and the collector API it serves are the contract in
//! `docs/ARCHITECTURE.md` ("Wire format", "Collector API").
//!
//! ## Where things live
//!
//! A batch's `service`, from ingest to a query:
//!
//! 1. `server/batches.rs`: `POST /v1/ingest` and `/v1/requests` take the
//!    tenant from the API key ([`auth`]) and cap the raw body. The router
//!    is `server/mod.rs`; the [`Collector`] it routes to, with the state
//!    every handler shares, is `server/state.rs`.
//! 2. [`ingest`]: [`ingest/mod.rs`](ingest) runs the steps in order:
//!    decode the body, check the service name, admit the service against
//!    the tenant's limit ([`ingest::RouteLimiter`]), then build one
//!    [`IngestWrite`] whose minute [`Bucket`]s carry the service in their
//!    [`SeriesKey`], plus a per-service total series ([`with_totals`]).
//! 3. [`store`]: [`Store::ingest`] keeps the write atomically and records
//!    the service's last-seen time: `store/sqlite/write.rs`,
//!    `store/postgres/write.rs`, or `store/hot_tier/write.rs` (Redis in
//!    front of either).
//! 4. [`rollup`]: the background job recomputes dirty 5-minute and hour
//!    periods as the merge of their parts ([`model::roll_up`]), and
//!    applies retention.
//! 5. `server/queries.rs`: `GET /v1/services/{service}/…` finds the
//!    service ([`Store::services`]), reads its buckets
//!    ([`Store::read_buckets`] with a [`BucketQuery`]) at the resolution
//!    the window needs ([`query::Window`]), and answers with figures and
//!    health from [`query`].
//!
//! The rest:
//! - Data and merges: [`model`] (series keys, buckets, custom points,
//!   writes, keys; every merge in `model/merge.rs`), [`codec`] (sketches
//!   as stored bytes).
//! - Back ends: [`store`] (the [`Store`] trait in `store/contract.rs`,
//!   [`StoreError`], opening by URL) with one folder each, split into
//!   schema, rows, writes, reads and custom metrics: `store/sqlite/`,
//!   `store/postgres/`, `store/hot_tier/` (with its own metrics). Every
//!   back end passes [`testing`]'s suite (feature `testing`).
//! - Custom metrics: pushed in batches, stored like buckets
//!   ([`model::CustomPoint`]), answered by [`custom_metrics`].
//! - Export: [`remote_write`] sends the aggregates and custom metrics to
//!   Prometheus-compatible stores (remote-write 1.0), queued on disk.
//! - Alerting: [`alerting`] (rules, states, notifications, history;
//!   the API in `server/alerts.rs`).
//! - Settings: [`config`] (the TOML file and its `VITALS_*` variables;
//!   [`ConfigError`] in `config/error.rs`).
//! - Errors: [`ApiError`] (what the API answers), [`StoreError`].
//! - Web UI: `ui/` serves the page at `/` and its files (embedded from
//!   the crate's `ui/` folder) at `/ui/{*file}`; the page reads the API
//!   above with a read key.
//! - Time: `clock.rs`, the one place the wall clock is read ([`now_ms`]).
//!
//! Imports go one way: `server` → `ingest`, `query`, `rollup`, `store`,
//! `config` → `model`; the merges live in `model`, so no store reaches back
//! into `rollup`.

pub mod alerting;
pub mod auth;
mod clock;
pub mod codec;
pub mod config;
pub mod custom_metrics;
pub mod error;
pub mod ingest;
pub mod model;
pub mod query;
pub mod remote_write;
pub mod rollup;
mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod ui;

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
pub use server::{
    Collector, CollectorError, KEEPALIVE, LiveBatch, MAX_JOURNEY, MAX_OTLP_IN_FLIGHT,
    MAX_QUERY_LEN, MAX_RECENT, MAX_ROUTES_LIMIT, is_trace_id,
};
pub use store::{BoxFuture, SqliteStore, Store, StoreError, StoreResult};
