//! The plain data the collector stores and reads, and how it merges.
//! Back ends persist these; the ingest, rollup and query layers build and
//! read them.
//!
//! - `period`: time ([`UnixMs`]), the bucket [`Resolution`]s and
//!   the [`DirtyPeriod`]s rollups recompute.
//! - `bucket`: request series ([`SeriesKey`]), their statistics
//!   ([`BucketStats`]) per [`Bucket`], and [`BucketQuery`].
//! - `custom`: custom metric series ([`CustomKey`], [`CustomStats`],
//!   [`CustomPoint`], [`CustomQuery`]).
//! - `write`: what one ingest stores ([`IngestWrite`], [`Sample`]) and
//!   what became of it ([`IngestOutcome`]); [`ServiceRecord`].
//! - `keys`: API keys ([`KeyRecord`], [`Role`]).
//! - `admission`: bounded sets every collector on one store shares
//!   ([`MemberSet`], [`Admission`]): services per tenant, routes per service.
//! - `alert`: alerting as stored ([`StoredRule`], [`StoredAlert`],
//!   [`AlertEvent`], [`AlertHistoryQuery`]).
//! - `merge`: every merge of the above: totals ([`totals_of`]), fast sums
//!   ([`StatsSum`]), route sums ([`sum_routes`]), merges by key and
//!   roll-ups into coarser periods ([`roll_up`], [`roll_up_custom`]).

mod admission;
mod alert;
mod bucket;
mod custom;
mod keys;
mod merge;
mod period;
mod write;

pub use admission::{Admission, MemberKind, MemberSet};
pub use alert::{AlertEvent, AlertHistoryQuery, StoredAlert, StoredRule};
pub use bucket::{
    Bucket, BucketQuery, BucketStats, CLIENT_METHOD, OVERFLOW_ROUTE, RouteSum, SeriesKey,
    SeriesSelect,
};
pub use custom::{CustomKey, CustomKind, CustomPoint, CustomQuery, CustomStats, canonical_labels};
pub use keys::{KeyRecord, Role};
pub use merge::{
    StatsSum, merge_by_key, merge_custom_by_key, merge_keyed, roll_up, roll_up_custom, sum_routes,
    totals_of, with_totals,
};
pub use period::{DirtyPeriod, Resolution, UnixMs};
pub use write::{IngestOutcome, IngestWrite, Sample, ServiceRecord, TraceSample};
