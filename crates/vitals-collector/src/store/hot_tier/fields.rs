//! Hash fields back into the model: `[{minute}␟]{series json}␟{stat}`
//! fields (as [`Ops::add_stats`](super::script::Ops::add_stats) writes
//! them) decoded into minute buckets.

use crate::model::{Bucket, BucketStats, Resolution, SeriesKey, UnixMs};
use crate::store::{StoreError, StoreResult};
use std::collections::BTreeMap;

/// Field-name separator inside hashes (JSON never holds it raw).
pub(super) const SEP: char = '\u{1f}';

/// Statistics of one series as hash-field increments.
#[derive(Default)]
struct Acc {
    count: u64,
    errors: u64,
    satisfied: u64,
    tolerating: u64,
    zero: u64,
    sum: f64,
    last_seen: i64,
    buckets: BTreeMap<i32, u64>,
}

impl Acc {
    fn set(&mut self, stat: &str, value: &str) -> StoreResult<()> {
        let int = || -> StoreResult<u64> {
            let v: i64 = value
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("hot tier field {stat}={value:?}")))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        match stat {
            "c" => self.count = int()?,
            "e" => self.errors = int()?,
            "s" => self.satisfied = int()?,
            "t" => self.tolerating = int()?,
            "z" => self.zero = int()?,
            "S" => {
                self.sum = value
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("hot tier sum {value:?}")))?
            }
            "l" => {
                self.last_seen = value
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("hot tier last seen {value:?}")))?
            }
            other => {
                let idx: i32 = other
                    .strip_prefix('b')
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("hot tier stat {other:?}")))?;
                self.buckets.insert(idx, int()?);
            }
        }
        Ok(())
    }

    fn into_stats(self) -> StoreResult<BucketStats> {
        // Like the stores' codec, the count of rejected values is not kept.
        let sketch =
            vitals::Sketch::from_buckets(self.zero, self.sum, self.buckets).ok_or_else(|| {
                StoreError::Corrupt("hot tier sketch: bucket index out of range".into())
            })?;
        Ok(BucketStats {
            count: self.count,
            errors: self.errors,
            satisfied: self.satisfied,
            tolerating: self.tolerating,
            duration_ms: sketch,
            last_seen_ms: self.last_seen,
        })
    }
}

/// Decodes hash fields `[{minute}␟]{series json}␟{stat}` into buckets.
pub(super) fn decode_buckets(
    tenant: &str,
    fields: impl IntoIterator<Item = (String, String)>,
    minute: Option<UnixMs>,
    service: Option<&str>,
) -> StoreResult<Vec<Bucket>> {
    let mut accs: BTreeMap<(UnixMs, String), Acc> = BTreeMap::new();
    for (field, value) in fields {
        if field.starts_with('!') {
            continue;
        }
        let corrupt = || StoreError::Corrupt(format!("hot tier field {field:?}"));
        let (rest, stat) = field.rsplit_once(SEP).ok_or_else(corrupt)?;
        let (start, series) = match minute {
            Some(m) => (m, rest),
            None => {
                let (m, series) = rest.split_once(SEP).ok_or_else(corrupt)?;
                (m.parse().map_err(|_| corrupt())?, series)
            }
        };
        accs.entry((start, series.to_string()))
            .or_default()
            .set(stat, &value)?;
    }
    let mut out = Vec::with_capacity(accs.len());
    for ((start, series), acc) in accs {
        let key: SeriesKey = serde_json::from_str(&series)
            .map_err(|e| StoreError::Corrupt(format!("hot tier series {series:?}: {e}")))?;
        if service.is_some_and(|s| s != key.service) {
            continue;
        }
        out.push(Bucket {
            tenant: tenant.to_string(),
            resolution: Resolution::Minute,
            start_ms: start,
            key,
            stats: acc.into_stats()?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::script::Ops;
    use super::*;

    #[test]
    fn fields_decode_into_buckets() {
        let key = SeriesKey {
            service: "api".into(),
            method: "GET".into(),
            route: "/\u{1f}?".into(),
            status_class: 2,
            caller: String::new(),
        };
        let series = serde_json::to_string(&key).expect("json");
        assert!(!series.contains(SEP), "JSON escapes the separator");
        let mut sketch = vitals::Sketch::new();
        sketch.record(3.0);
        sketch.record(3.0);
        sketch.record(0.0);
        let stats = BucketStats {
            count: 3,
            errors: 1,
            satisfied: 3,
            tolerating: 0,
            duration_ms: sketch,
            last_seen_ms: 42,
        };
        let mut ops = Ops::default();
        ops.add_stats(1, &format!("60000{SEP}{series}{SEP}"), &stats);
        let fields: Vec<(String, String)> = ops
            .args
            .chunks(4)
            .map(|c| (c[2].clone(), c[3].clone()))
            .collect();
        let got = decode_buckets("t", fields, None, None).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].start_ms, 60_000);
        assert_eq!(got[0].key, key);
        assert_eq!(got[0].stats, stats);
        assert!(
            decode_buckets("t", vec![("junk".into(), "1".into())], None, None).is_err(),
            "a malformed field is a clear error"
        );
    }
}
