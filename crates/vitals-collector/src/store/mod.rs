//! Storage: one [`Store`] trait, with SQLite ([`SqliteStore`]) as the
//! embedded default. Every back end passes the same suite
//! (`testing::run_store_suite`, feature `testing`).
//!
//! The trait is the seam between the collector's logic and a database:
//! ingest merges minute buckets, the rollup job recomputes coarser buckets
//! from finer ones ([`crate::rollup`]), queries read buckets and samples.
//! Sketch merging happens in Rust, so a back end only needs to store rows.

mod hot_tier;
mod hot_tier_metrics;
mod postgres;
mod sqlite;

pub use hot_tier::{FlushReport, HOT_BATCH_PREFIX, HotTier, HotTierConfig};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::model::{
    Bucket, BucketQuery, CustomPoint, CustomQuery, DirtyPeriod, IngestOutcome, IngestWrite,
    KeyRecord, Resolution, RouteSum, Sample, SeriesSelect, ServiceRecord, UnixMs, sum_routes,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future: what [`Store`] methods return, so the trait
/// can be used as `Arc<dyn Store>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be understood.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
    /// The schema in the database is newer than this build understands.
    #[error(
        "database schema version {found} is newer than this collector supports ({supported}); upgrade the collector"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A key with this hash exists already.
    #[error("a key with this hash exists already")]
    DuplicateKey,
    /// The blocking task running the operation failed (panicked or was cancelled).
    #[error("storage task failed: {0}")]
    Task(String),
}

/// Convenience alias for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where the collector keeps its data. Implementations must be safe to
/// share between tasks and must never block the async runtime (run
/// blocking drivers on `spawn_blocking` or a dedicated thread).
///
/// Contract, checked by `testing::run_store_suite`:
/// - [`Store::ingest`] is atomic and durable when it returns `Ok`: either
///   every bucket, sample and the batch id are stored, or none is. A batch
///   id already stored for the same tenant and service returns
///   [`IngestOutcome::Duplicate`] and writes nothing. Each written minute
///   bucket is *merged* (counts added, sketches merged) into any stored one
///   with the same key, and marks its five-minute period dirty.
/// - Custom points of an ingest are part of it (stored atomically with it,
///   skipped with a duplicate). Each is merged into any stored point with
///   the same key ([`crate::model::CustomStats::merge`]: the later value
///   is `last`, min and max widen) and marks its five-minute period dirty
///   like a bucket does.
/// - [`Store::write_rollup`] *replaces* the target period's buckets,
///   marks the next coarser period dirty, and clears the dirty mark only if
///   its generation is unchanged. [`Store::write_custom_rollup`] replaces
///   the period's custom points and touches no mark: the rollup job calls
///   it first, so a failure in between leaves the period dirty and the
///   next pass redoes both.
/// - [`Store::drop_buckets_before`] drops custom points of that resolution
///   with the buckets (one retention per resolution).
/// - Reads never return another tenant's data.
pub trait Store: Send + Sync + 'static {
    /// Durably stores one ingest write (see the trait docs).
    fn ingest(&self, write: IngestWrite) -> BoxFuture<'_, StoreResult<IngestOutcome>>;

    /// Buckets matching `query`, in no particular order.
    fn read_buckets(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<Bucket>>>;

    /// Custom points matching `query`, in no particular order.
    fn read_custom(&self, query: CustomQuery) -> BoxFuture<'_, StoreResult<Vec<CustomPoint>>>;

    /// Replaces the custom points of `period` (its tenant, resolution and
    /// start) with `points`; dirty marks are left alone (see the trait docs).
    fn write_custom_rollup(
        &self,
        period: DirtyPeriod,
        points: Vec<CustomPoint>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// The route series matching `query` (its `series` is ignored) added
    /// up per (method, route), in no particular order; equal to
    /// [`crate::model::sum_routes`] of those buckets. Back ends may sum
    /// stored sketches without decoding them into [`vitals::Sketch`]s.
    fn route_sums(&self, query: BucketQuery) -> BoxFuture<'_, StoreResult<Vec<RouteSum>>> {
        Box::pin(async move {
            let buckets = self
                .read_buckets(BucketQuery {
                    series: SeriesSelect::Routes,
                    ..query
                })
                .await?;
            Ok(sum_routes(&buckets))
        })
    }

    /// Up to `limit` periods at `resolution` (five-minute or hour) marked
    /// dirty whose start is before `before_ms`, oldest first.
    fn dirty_periods(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<DirtyPeriod>>>;

    /// Replaces the buckets of `period` with `buckets` (all of the period's
    /// tenant, resolution and start), marks the next coarser period dirty,
    /// and clears `period`'s mark if its generation is unchanged.
    fn write_rollup(
        &self,
        period: DirtyPeriod,
        buckets: Vec<Bucket>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Deletes buckets and custom points at `resolution` that start before
    /// `before_ms`; returns how many were removed (back ends that drop whole partitions
    /// may return an estimate).
    fn drop_buckets_before(
        &self,
        resolution: Resolution,
        before_ms: UnixMs,
    ) -> BoxFuture<'_, StoreResult<u64>>;

    /// Deletes samples older than `before_ms`; returns how many were removed.
    fn drop_samples_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>>;

    /// Forgets batch ids received before `before_ms` (a retry after that
    /// would count again, so keep them at least as long as ingest accepts
    /// a batch's timestamps); returns how many were removed.
    fn drop_batch_ids_before(&self, before_ms: UnixMs) -> BoxFuture<'_, StoreResult<u64>>;

    /// The tenant's services with the time data last arrived for each.
    fn services(&self, tenant: String) -> BoxFuture<'_, StoreResult<Vec<ServiceRecord>>>;

    /// The newest `limit` samples of one service, newest first.
    fn recent_samples(
        &self,
        tenant: String,
        service: String,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Sample>>>;

    /// Stores a new key. A key whose hash exists already is
    /// [`StoreError::DuplicateKey`].
    fn create_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// The key with this hash, if any.
    fn key_by_hash(&self, hash: String) -> BoxFuture<'_, StoreResult<Option<KeyRecord>>>;

    /// Adds the back end's own metrics (if it has any) to the collector's
    /// registry, served at `GET /metrics`; called once per collector built
    /// over this store. The default has none. The Redis hot tier reports
    /// its flushing here.
    fn register_metrics(&self, registry: &vitals::Registry) {
        let _ = registry;
    }
}

/// Opens the store a URL names: `sqlite://PATH`, `sqlite::memory:`,
/// `postgres://…` (or `postgresql://…`).
/// Migrations run before this returns.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url == "sqlite::memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory().await?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: url.into(),
                reason: "no file path after sqlite://".into(),
            });
        }
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(url).await?));
    }
    Err(StoreError::InvalidUrl {
        url: url.into(),
        reason: "expected sqlite://PATH, sqlite::memory: or postgres://…".to_string(),
    })
}

/// Opens the store `store_url` names and, with a `cache_url`
/// (`redis://…`), puts the shared Redis hot tier in front of it (default
/// [`HotTierConfig`], background flusher running). A `prefix=P` query
/// parameter of the cache URL sets the key prefix (default `vitals:`), so
/// several deployments can share one Redis.
pub async fn open_with_cache(
    store_url: &str,
    cache_url: Option<&str>,
) -> StoreResult<Arc<dyn Store>> {
    open_with_hot_tier(store_url, cache_url, HotTierConfig::default()).await
}

/// Like [`open_with_cache`] with the hot tier configured by `hot` (its
/// prefix is replaced by the cache URL's `prefix=`, when given); `hot` is
/// unused without a cache.
pub async fn open_with_hot_tier(
    store_url: &str,
    cache_url: Option<&str>,
    hot: HotTierConfig,
) -> StoreResult<Arc<dyn Store>> {
    let Some(url) = cache_url else {
        return open(store_url).await;
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StoreError::InvalidUrl {
            url: url.into(),
            reason: "the cache must be a redis:// URL".into(),
        });
    }
    let (url, prefix) = split_prefix(url);
    let mut config = hot;
    if let Some(p) = prefix {
        config.prefix = p;
    }
    let store = open(store_url).await?;
    Ok(Arc::new(HotTier::open(&url, store, config).await?))
}

/// Takes a `prefix=` query parameter out of a Redis URL.
fn split_prefix(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut prefix = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("prefix=") {
            Some(p) => {
                prefix = Some(p.to_string());
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, prefix)
}

/// `url` with any password replaced by `***`, for logs and error messages:
/// store and cache URLs (`postgres://user:secret@host/db`,
/// `redis://:secret@host`) may carry credentials.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        use super::redact_password as redact;
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact("sqlite://vitals.db"), "sqlite://vitals.db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    use super::split_prefix;

    #[test]
    fn cache_urls_carry_a_key_prefix() {
        assert_eq!(
            split_prefix("redis://h:6379/0?prefix=a:&protocol=resp3"),
            ("redis://h:6379/0?protocol=resp3".into(), Some("a:".into()))
        );
        assert_eq!(
            split_prefix("redis://h/?prefix=p"),
            ("redis://h/".into(), Some("p".into()))
        );
        assert_eq!(split_prefix("redis://h"), ("redis://h".into(), None));
    }
}
