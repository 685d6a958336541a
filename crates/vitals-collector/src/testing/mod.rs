//! The back-end-independent [`Store`] test suite (feature `testing`).
//!
//! Every back end calls [`run_store_suite`] from its tests with a real,
//! migrated store. The suite uses fresh tenant names and timestamps in
//! 2001, so it can share a database with other data and other runs.
//!
//! ```no_run
//! # async fn demo() {
//! let store = vitals_collector::store::open("sqlite::memory:").await.unwrap();
//! vitals_collector::testing::run_store_suite(store).await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]
//!
//! - `fixtures.rs`: builders, reads and comparisons the checks share (the
//!   public ones are re-exported here for back ends' own tests).
//! - `buckets.rs`: ingest, batch ids, series selection.
//! - `records.rs`: keys, samples, services.
//! - `rollups.rs`: rollups and retention.
//! - `custom.rs`: the same for custom metric points.

mod buckets;
mod custom;
mod fixtures;
mod records;
mod rollups;

pub use custom::custom_point;
pub use fixtures::{BASE_MS, assert_stats_eq, key, minute_bucket};

use crate::store::Store;
use std::sync::Arc;

/// Runs every check of the store contract against `store`; panics with a
/// message naming the broken rule.
pub async fn run_store_suite(store: Arc<dyn Store>) {
    records::keys(&*store).await;
    buckets::ingest_merges_and_isolates_tenants(&*store).await;
    buckets::duplicate_batches_count_once(&*store).await;
    buckets::concurrent_ingests_count_each_batch_once(store.clone()).await;
    records::samples_and_services(&*store).await;
    rollups::rollups_equal_merge_of_parts(&*store).await;
    rollups::stale_rollup_keeps_period_dirty(&*store).await;
    rollups::retention_drops_old_data(&*store).await;
    custom::points_merge_and_isolate_tenants(&*store).await;
    custom::rollups_equal_merge_of_parts(&*store).await;
    custom::retention_drops_old_points(&*store).await;
    buckets::series_selection_reads_routes_or_totals(&*store).await;
}
