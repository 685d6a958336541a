//! Storage: one [`Store`] trait, with SQLite ([`SqliteStore`]) as the
//! embedded default. Every back end passes the same suite
//! (`testing::run_store_suite`, feature `testing`).
//!
//! The trait is the seam between the collector's logic and a database:
//! ingest merges minute buckets, the rollup job recomputes coarser buckets
//! from finer ones ([`crate::rollup`]), queries read buckets and samples.
//! Sketch merging happens in Rust, so a back end only needs to store rows.
//!
//! - `contract.rs`: the [`Store`] trait and its contract, [`BoxFuture`].
//! - `error.rs`: [`StoreError`] (with the driver's error as its source),
//!   [`StoreResult`].
//! - `open.rs`: opening a store by URL ([`open`], [`open_with_hot_tier`]),
//!   and [`redact_password`] for every URL a log line or error shows.
//! - `fresh.rs`: reads at a coarse resolution that put finer data in
//!   place of periods not rolled up yet, so every window is fresh.
//! - `sqlite/`, `postgres/`: the back ends; `hot_tier/`: Redis in front of
//!   either. Each is split into schema, rows, writes, reads and custom
//!   metrics.

mod contract;
mod error;
pub mod fresh;
mod hot_tier;
mod open;
mod postgres;
mod sqlite;

pub use contract::{BoxFuture, Store, sort_journey};
pub use error::{StoreError, StoreResult};
pub use hot_tier::{FlushReport, HOT_BATCH_PREFIX, HotTier, HotTierConfig};
pub use open::{open, open_with_cache, open_with_hot_tier, redact_password};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
