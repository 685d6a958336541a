//! How rows map to the model: counts as SQLite integers, sketches as
//! [`crate::codec`] blobs (older databases hold JSON text, still read),
//! one bucket's statistics read from a row; and the driver's errors as
//! [`StoreError`]s.

use crate::model::BucketStats;
use crate::store::{StoreError, StoreResult};

/// A driver error as a store error (with its SQLite result code).
pub(super) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::sqlite(e)
}

pub(super) fn u64_to_sql(v: u64) -> i64 {
    // Counts are validated far below i64::MAX at ingest; saturate anyway.
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn sql_to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn encode_sketch(s: &vitals::Sketch) -> Vec<u8> {
    crate::codec::encode_sketch(s)
}

/// Sketches are stored as compact blobs; text is the JSON form older
/// databases hold, still read.
pub(super) fn decode_sketch(v: rusqlite::types::ValueRef<'_>) -> StoreResult<vitals::Sketch> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Blob(b) => {
            crate::codec::decode_sketch(b).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
        }
        ValueRef::Text(t) => {
            serde_json::from_slice(t).map_err(|e| StoreError::Corrupt(format!("sketch: {e}")))
        }
        _ => Err(StoreError::Corrupt("sketch: neither blob nor text".into())),
    }
}

pub(super) fn stats_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<BucketStats> {
    let duration_ms = decode_sketch(row.get_ref(at + 4)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(at + 4, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(BucketStats {
        count: sql_to_u64(row.get(at)?),
        errors: sql_to_u64(row.get(at + 1)?),
        satisfied: sql_to_u64(row.get(at + 2)?),
        tolerating: sql_to_u64(row.get(at + 3)?),
        duration_ms,
        last_seen_ms: row.get(at + 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::ValueRef;

    #[test]
    fn sketches_read_as_blob_or_legacy_json_and_refuse_garbage() {
        let mut s = vitals::Sketch::new();
        s.record(12.5);
        s.record(0.0);
        let blob = encode_sketch(&s);
        assert_eq!(decode_sketch(ValueRef::Blob(&blob)).ok(), Some(s.clone()));
        let json = serde_json::to_vec(&s).unwrap_or_default();
        assert_eq!(decode_sketch(ValueRef::Text(&json)).ok(), Some(s));
        assert!(decode_sketch(ValueRef::Blob(b"\x07junk")).is_err());
        assert!(decode_sketch(ValueRef::Text(b"{nope")).is_err());
        assert!(decode_sketch(ValueRef::Integer(3)).is_err());
    }
}
