//! What one service's accepted points add up to while a request is
//! converted: minute buckets, custom values, counts, and the stream
//! readings to keep once the write is stored.

use super::streams::Last;
use crate::model::{BucketStats, CustomKey, CustomStats, SeriesKey, UnixMs};
use std::collections::{BTreeMap, HashMap};

/// What a service's points add up to before the write is built.
#[derive(Default)]
pub(crate) struct Building {
    pub buckets: BTreeMap<(UnixMs, SeriesKey), BucketStats>,
    pub custom: BTreeMap<(UnixMs, CustomKey), CustomStats>,
    pub requests: u64,
    pub overflowed: u64,
    pub updates: HashMap<String, Last>,
}
