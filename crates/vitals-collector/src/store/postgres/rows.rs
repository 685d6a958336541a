//! How rows map to the model: a series' stable id, counts as `bigint`,
//! sketches as [`crate::codec`] blobs, the bucket tables by resolution;
//! buckets keyed and merged by `(start, series)` in lock order, and as
//! column arrays for `UNNEST`.

use crate::model::{Bucket, BucketStats, Resolution, SeriesKey, UnixMs, merge_keyed};
use crate::store::{StoreError, StoreResult};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub(super) fn bucket_table(r: Resolution) -> &'static str {
    match r {
        Resolution::Minute => "buckets_1m",
        Resolution::FiveMinutes => "buckets_5m",
        Resolution::Hour => "buckets_1h",
    }
}

/// A stable id of a series' labels: SHA-256 over the length-prefixed fields.
pub(super) fn series_id(k: &SeriesKey) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [
        k.service.as_bytes(),
        k.method.as_bytes(),
        k.route.as_bytes(),
        &[k.status_class],
        k.caller.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

pub(super) fn u64_to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn sql_to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Sketches are stored in the collector's compact binary form ([`crate::codec`]).
pub(super) fn encode_sketch(s: &vitals::Sketch) -> Vec<u8> {
    crate::codec::encode_sketch(s)
}

pub(super) fn decode_sketch(b: &[u8]) -> StoreResult<vitals::Sketch> {
    crate::codec::decode_sketch(b).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
}

/// One bucket row to write, keyed by `(start_ms, series_id)`.
#[derive(Clone)]
pub(super) struct Row {
    pub(super) key: SeriesKey,
    pub(super) stats: BucketStats,
}

pub(super) type Rows = BTreeMap<(UnixMs, Vec<u8>), Row>;

/// Buckets keyed and merged by `(start, series)`: one row per key, in
/// the order rows are locked (so concurrent writers never deadlock on
/// each other's rows in opposite orders).
pub(super) fn rows_of<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Rows {
    merge_keyed(
        buckets.into_iter().map(|b| {
            let row = Row {
                key: b.key.clone(),
                stats: b.stats.clone(),
            };
            ((b.start_ms, series_id(&b.key)), row)
        }),
        |have, more| have.stats.merge(&more.stats),
    )
}

/// Column arrays of `rows`, for `UNNEST`.
pub(super) struct Columns {
    pub(super) start: Vec<i64>,
    pub(super) id: Vec<Vec<u8>>,
    pub(super) service: Vec<String>,
    pub(super) method: Vec<String>,
    pub(super) route: Vec<String>,
    pub(super) status_class: Vec<i16>,
    pub(super) caller: Vec<String>,
    pub(super) count: Vec<i64>,
    pub(super) errors: Vec<i64>,
    pub(super) satisfied: Vec<i64>,
    pub(super) tolerating: Vec<i64>,
    pub(super) sketch: Vec<Vec<u8>>,
    pub(super) last_seen: Vec<i64>,
}

impl Columns {
    pub(super) fn of<'a>(
        rows: impl IntoIterator<Item = (&'a (UnixMs, Vec<u8>), &'a Row)>,
    ) -> StoreResult<Self> {
        let mut c = Columns {
            start: vec![],
            id: vec![],
            service: vec![],
            method: vec![],
            route: vec![],
            status_class: vec![],
            caller: vec![],
            count: vec![],
            errors: vec![],
            satisfied: vec![],
            tolerating: vec![],
            sketch: vec![],
            last_seen: vec![],
        };
        for ((start, id), r) in rows {
            c.start.push(*start);
            c.id.push(id.clone());
            c.service.push(r.key.service.clone());
            c.method.push(r.key.method.clone());
            c.route.push(r.key.route.clone());
            c.status_class.push(i16::from(r.key.status_class));
            c.caller.push(r.key.caller.clone());
            c.count.push(u64_to_sql(r.stats.count));
            c.errors.push(u64_to_sql(r.stats.errors));
            c.satisfied.push(u64_to_sql(r.stats.satisfied));
            c.tolerating.push(u64_to_sql(r.stats.tolerating));
            c.sketch.push(encode_sketch(&r.stats.duration_ms));
            c.last_seen.push(r.stats.last_seen_ms);
        }
        Ok(c)
    }
}

pub(super) fn bucket_from_row(
    r: &tokio_postgres::Row,
    tenant: &str,
    res: Resolution,
) -> StoreResult<Bucket> {
    let status: i16 = r.get(4);
    Ok(Bucket {
        tenant: tenant.to_string(),
        resolution: res,
        start_ms: r.get(0),
        key: SeriesKey {
            service: r.get(1),
            method: r.get(2),
            route: r.get(3),
            status_class: u8::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("status class {status}")))?,
            caller: r.get(5),
        },
        stats: BucketStats {
            count: sql_to_u64(r.get(6)),
            errors: sql_to_u64(r.get(7)),
            satisfied: sql_to_u64(r.get(8)),
            tolerating: sql_to_u64(r.get(9)),
            duration_ms: decode_sketch(r.get(10))?,
            last_seen_ms: r.get(11),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_ids_separate_fields() {
        let k = |s: &str, r: &str| SeriesKey {
            service: s.into(),
            method: "GET".into(),
            route: r.into(),
            status_class: 2,
            caller: String::new(),
        };
        assert_ne!(series_id(&k("ab", "c")), series_id(&k("a", "bc")));
        assert_eq!(series_id(&k("a", "b")), series_id(&k("a", "b")));
    }
}
