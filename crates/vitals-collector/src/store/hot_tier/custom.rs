//! Custom metric points in the hot tier: their hash fields (in a delta or
//! snapshot, prefixed [`CUSTOM_FIELD`]; in the per-minute custom view,
//! bare), the script operations that merge them, and the reads that split
//! at the hot boundary like buckets do.

use super::Inner;
use super::fields::SEP;
use super::rerr;
use super::script::Ops;
use crate::model::{
    CustomKey, CustomKind, CustomPoint, CustomQuery, CustomStats, Resolution, UnixMs,
    roll_up_custom,
};
use crate::store::{StoreError, StoreResult};
use std::collections::BTreeMap;

/// Custom point fields in a delta or snapshot start with this (a `!`
/// field is skipped by [`decode_buckets`](super::fields::decode_buckets)).
pub(super) const CUSTOM_FIELD: &str = "!c\u{1f}";

/// Decodes custom fields `[{minute}␟]{key json}␟{stat}` into points.
pub(super) fn decode_custom(
    tenant: &str,
    fields: impl IntoIterator<Item = (String, String)>,
    minute: Option<UnixMs>,
    q: Option<&CustomQuery>,
) -> StoreResult<Vec<CustomPoint>> {
    #[derive(Default)]
    struct Parts {
        kind: Option<CustomKind>,
        last: Option<f64>,
        last_ms: Option<i64>,
        min: Option<f64>,
        max: Option<f64>,
    }
    let mut parts: BTreeMap<(UnixMs, String), Parts> = BTreeMap::new();
    for (field, value) in fields {
        let rest = match minute {
            Some(_) => field.as_str(),
            None => match field.strip_prefix(CUSTOM_FIELD) {
                Some(r) => r,
                None => continue,
            },
        };
        let corrupt = || StoreError::Corrupt(format!("hot tier custom field {field:?}"));
        let (rest, stat) = rest.rsplit_once(SEP).ok_or_else(corrupt)?;
        let (start, series) = match minute {
            Some(m) => (m, rest),
            None => {
                let (m, series) = rest.split_once(SEP).ok_or_else(corrupt)?;
                (m.parse().map_err(|_| corrupt())?, series)
            }
        };
        let p = parts.entry((start, series.to_string())).or_default();
        let num = || value.parse::<f64>().map_err(|_| corrupt());
        match stat {
            "t" => p.last_ms = Some(value.parse().map_err(|_| corrupt())?),
            "v" => p.last = Some(num()?),
            "n" => p.min = Some(num()?),
            "x" => p.max = Some(num()?),
            "k" => {
                p.kind = Some(match value.as_str() {
                    "c" => CustomKind::Counter,
                    "g" => CustomKind::Gauge,
                    _ => return Err(corrupt()),
                })
            }
            _ => return Err(corrupt()),
        }
    }
    let mut out = Vec::with_capacity(parts.len());
    for ((start, series), p) in parts {
        let key: CustomKey = serde_json::from_str(&series)
            .map_err(|e| StoreError::Corrupt(format!("hot tier custom series {series:?}: {e}")))?;
        let (Some(kind), Some(last), Some(last_ms), Some(min), Some(max)) =
            (p.kind, p.last, p.last_ms, p.min, p.max)
        else {
            return Err(StoreError::Corrupt(format!(
                "hot tier custom series {series:?} lacks a field"
            )));
        };
        let point = CustomPoint {
            tenant: tenant.to_string(),
            resolution: Resolution::Minute,
            start_ms: start,
            key,
            stats: CustomStats {
                kind,
                last,
                last_ms,
                min,
                max,
            },
        };
        if q.is_none_or(|q| q.matches(&point)) {
            out.push(point);
        }
    }
    Ok(out)
}

impl Ops {
    /// Merges one custom point's values into hash `key`, fields prefixed
    /// `prefix`: the latest value by time (`t`, `v`, `k`), min `n`, max `x`.
    pub(super) fn add_custom(&mut self, key: usize, prefix: &str, s: &CustomStats) {
        let kind = match s.kind {
            CustomKind::Counter => "c",
            CustomKind::Gauge => "g",
        };
        // `{:e}` round-trips exactly and Lua's tonumber reads it.
        self.op(
            "L",
            key,
            prefix,
            format!("{} {:e} {kind}", s.last_ms, s.last),
        );
        self.op("n", key, format!("{prefix}n"), format!("{:e}", s.min));
        self.op("m", key, format!("{prefix}x"), format!("{:e}", s.max));
    }
}

impl Inner {
    /// Custom minute points in `[from, to)`, all at or after the boundary,
    /// from Redis.
    async fn read_hot_custom(
        &self,
        q: &CustomQuery,
        from: UnixMs,
        to: UnixMs,
    ) -> StoreResult<Vec<CustomPoint>> {
        let minutes = self.hot_minutes(&q.tenant, from, to).await?;
        if minutes.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for m in &minutes {
            pipe.cmd("HGETALL")
                .arg(self.keys.custom_view(&q.tenant, *m));
        }
        let views: Vec<Vec<(String, String)>> = pipe.query_async(&mut conn).await.map_err(rerr)?;
        let filter = CustomQuery {
            resolution: Resolution::Minute,
            start_ms: from,
            end_ms: to,
            ..q.clone()
        };
        let mut out = Vec::new();
        for (m, fields) in minutes.into_iter().zip(views) {
            out.extend(decode_custom(&q.tenant, fields, Some(m), Some(&filter))?);
        }
        Ok(out)
    }

    /// [`Store::read_custom`](crate::store::Store::read_custom), split at
    /// the boundary like buckets ([`Inner::split_read`]).
    pub(super) async fn read_custom(&self, q: CustomQuery) -> StoreResult<Vec<CustomPoint>> {
        let tenant = q.tenant.clone();
        self.split_read(
            q,
            |q| self.store.read_custom(q),
            |q, from, to| async move { self.read_hot_custom(&q, from, to).await },
            |res, minutes| roll_up_custom(&tenant, res, minutes),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_fields_decode_into_points_and_refuse_garbage() {
        let key = CustomKey {
            service: "api".into(),
            name: "queue_depth".into(),
            labels: r#"{"k":"v\u001f"}"#.into(),
            instance: "i-1".into(),
        };
        let series = serde_json::to_string(&key).expect("json");
        assert!(!series.contains(SEP), "JSON escapes the separator");
        let prefix = format!("{CUSTOM_FIELD}60000{SEP}{series}{SEP}");
        // As the script leaves them: `{:e}` numbers, the kind as one letter.
        let fields: Vec<(String, String)> = [
            ("!t", "tenant"),
            ("t", "61234"),
            ("v", "1.5e0"),
            ("k", "g"),
            ("n", "-2e0"),
            ("x", "3.25e2"),
        ]
        .iter()
        .map(|(f, v)| {
            let f = if f.starts_with('!') {
                f.to_string()
            } else {
                format!("{prefix}{f}")
            };
            (f, v.to_string())
        })
        .collect();
        let got = decode_custom("t", fields.clone(), None, None).expect("decode");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].start_ms, &got[0].key), (60_000, &key));
        assert_eq!(
            got[0].stats,
            CustomStats {
                kind: CustomKind::Gauge,
                last: 1.5,
                last_ms: 61_234,
                min: -2.0,
                max: 325.0
            }
        );
        let missing: Vec<_> = fields
            .into_iter()
            .filter(|(f, _)| !f.ends_with('x'))
            .collect();
        assert!(
            decode_custom("t", missing, None, None).is_err(),
            "a lost field is an error"
        );
        let bad = vec![(format!("{prefix}k"), "z".to_string())];
        assert!(decode_custom("t", bad, None, None).is_err());
    }
}
