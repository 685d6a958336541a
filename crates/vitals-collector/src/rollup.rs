//! Rollups and retention, independent of the back end.
//!
//! Ingest merges into minute buckets and marks the enclosing five-minute
//! period dirty. A rollup pass recomputes every dirty five-minute period
//! from its minute buckets (replacing, so re-running is harmless and late
//! data is picked up), which marks the enclosing hour dirty; then the same
//! for hours from five-minute buckets. A coarse bucket is therefore always
//! exactly the merge of its parts: counts added, sketches merged
//! ([`crate::model::roll_up`]).

use crate::model::{
    BucketQuery, CustomQuery, DirtyPeriod, Resolution, SeriesSelect, UnixMs, roll_up,
    roll_up_custom,
};
use crate::store::{Store, StoreResult};

/// The merges a rollup is made of, defined with the model they merge
/// (kept here too: this is where tests and benches have found them).
pub use crate::model::{merge_by_key, merge_custom_by_key};

/// Periods taken per resolution and pass, so one pass is bounded.
pub const PERIODS_PER_PASS: usize = 1000;

/// How long each resolution is kept, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Minute buckets (default 2 days).
    pub minute_ms: i64,
    /// Five-minute buckets (default 14 days).
    pub five_minutes_ms: i64,
    /// Hour buckets (default 400 days).
    pub hour_ms: i64,
    /// Sampled requests (default 2 days).
    pub samples_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            minute_ms: 2 * DAY_MS,
            five_minutes_ms: 14 * DAY_MS,
            hour_ms: 400 * DAY_MS,
            samples_ms: 2 * DAY_MS,
        }
    }
}

impl Retention {
    /// How long buckets at `resolution` are kept.
    pub fn of(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Minute => self.minute_ms,
            Resolution::FiveMinutes => self.five_minutes_ms,
            Resolution::Hour => self.hour_ms,
        }
    }
}

/// Recomputes one dirty period from the finer resolution below it:
/// custom points first, then buckets (whose write clears the mark).
pub async fn rollup_period(store: &dyn Store, period: DirtyPeriod) -> StoreResult<()> {
    let Some(source) = period.resolution.source() else {
        return Ok(());
    };
    let custom_parts = store
        .read_custom(CustomQuery {
            tenant: period.tenant.clone(),
            service: None,
            name: None,
            resolution: source,
            start_ms: period.start_ms,
            end_ms: period.start_ms + period.resolution.millis(),
        })
        .await?;
    // Most periods hold no custom metrics: skip the write (a transaction,
    // one more disk sync on SQLite) when there is nothing to roll up. A
    // period once rolled up keeps its parts for as long as it can be marked
    // dirty again (ingest refuses data older than the finer retention), so
    // an empty read never has stale coarse points to clear.
    if !custom_parts.is_empty() {
        let custom = roll_up_custom(&period.tenant, period.resolution, custom_parts);
        store.write_custom_rollup(period.clone(), custom).await?;
    }
    let parts = store
        .read_buckets(BucketQuery {
            tenant: period.tenant.clone(),
            service: None,
            resolution: source,
            start_ms: period.start_ms,
            end_ms: period.start_ms + period.resolution.millis(),
            // Route and total series alike: a coarse total is the merge of
            // its fine totals, with no special case.
            series: SeriesSelect::All,
        })
        .await?;
    // Every part starts inside the period, so this is one bucket a series.
    let buckets = roll_up(&period.tenant, period.resolution, parts);
    store.write_rollup(period, buckets).await
}

/// One rollup pass: every dirty five-minute period, then every dirty hour.
/// Returns how many periods were recomputed.
pub async fn rollup_pass(store: &dyn Store) -> StoreResult<usize> {
    let mut done = 0;
    for target in [Resolution::FiveMinutes, Resolution::Hour] {
        for period in store
            .dirty_periods(target, UnixMs::MAX, PERIODS_PER_PASS)
            .await?
        {
            rollup_period(store, period).await?;
            done += 1;
        }
    }
    Ok(done)
}

/// Drops what is older than the retention of each resolution (and old
/// samples and batch ids). Returns rows removed.
pub async fn apply_retention(
    store: &dyn Store,
    retention: &Retention,
    now_ms: UnixMs,
) -> StoreResult<u64> {
    let mut removed = 0;
    for r in Resolution::ALL {
        removed += store
            .drop_buckets_before(r, now_ms.saturating_sub(retention.of(r)))
            .await?;
    }
    removed += store
        .drop_samples_before(now_ms.saturating_sub(retention.samples_ms))
        .await?;
    // Ingest refuses data older than the minute retention, so batch ids
    // need to be remembered exactly that long.
    removed += store
        .drop_batch_ids_before(now_ms.saturating_sub(retention.minute_ms))
        .await?;
    Ok(removed)
}
