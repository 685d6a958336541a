//! What the suite's checks are built from: fresh names, buckets, keys,
//! writes and samples, reads, rollups until clean, and comparisons that
//! say which rule broke.

use crate::model::{
    Bucket, BucketQuery, BucketStats, IngestWrite, Resolution, Sample, SeriesKey, SeriesSelect,
    UnixMs,
};
use crate::rollup;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use vitals::Sketch;

/// 2001-09-09T01:46:40Z: far from "now", so retention runs elsewhere never
/// see the suite's data and the suite's retention checks touch nothing else.
pub const BASE_MS: UnixMs = 1_000_000_000_000;

pub(super) fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        crate::clock::now_ms(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minute bucket of `n` requests with the given durations (ms) and errors.
pub fn minute_bucket(
    tenant: &str,
    key: &SeriesKey,
    start_ms: UnixMs,
    durations: &[f64],
    errors: u64,
) -> Bucket {
    let mut sketch = Sketch::new();
    for &d in durations {
        sketch.record(d);
    }
    Bucket {
        tenant: tenant.into(),
        resolution: Resolution::Minute,
        start_ms: Resolution::Minute.floor(start_ms),
        key: key.clone(),
        stats: BucketStats {
            count: durations.len() as u64,
            errors,
            satisfied: durations.iter().filter(|&&d| d <= 500.0).count() as u64,
            tolerating: durations
                .iter()
                .filter(|&&d| d > 500.0 && d <= 2000.0)
                .count() as u64,
            duration_ms: sketch,
            last_seen_ms: start_ms,
        },
    }
}

/// A series key of `service` for `GET route` with status class 2.
pub fn key(service: &str, route: &str, caller: &str) -> SeriesKey {
    SeriesKey {
        service: service.into(),
        method: "GET".into(),
        route: route.into(),
        status_class: 2,
        caller: caller.into(),
    }
}

pub(super) fn write(
    tenant: &str,
    service: &str,
    batch_id: Option<&str>,
    at: UnixMs,
    buckets: Vec<Bucket>,
    samples: Vec<Sample>,
) -> IngestWrite {
    IngestWrite {
        tenant: tenant.into(),
        service: service.into(),
        batch_id: batch_id.map(str::to_string),
        received_ms: at,
        buckets,
        samples,
        custom: vec![],
    }
}

pub(super) fn sample(ts: UnixMs, route: &str) -> Sample {
    Sample {
        timestamp_ms: ts,
        instance: "i-1".into(),
        method: "GET".into(),
        path: format!("{route}/x"),
        route: route.into(),
        status: 200,
        duration_ms: 12.5,
        caller: Some("web".into()),
        trace_id: None,
    }
}

pub(super) async fn read(
    store: &dyn Store,
    tenant: &str,
    service: Option<&str>,
    res: Resolution,
    start: UnixMs,
    end: UnixMs,
) -> Vec<Bucket> {
    store
        .read_buckets(BucketQuery {
            tenant: tenant.into(),
            service: service.map(str::to_string),
            resolution: res,
            start_ms: start,
            end_ms: end,
            series: SeriesSelect::All,
        })
        .await
        .expect("read_buckets")
}

/// Asserts two bucket statistics are equal: counts and sketch buckets
/// exactly, the float sum up to rounding (merge order may differ).
pub fn assert_stats_eq(got: &BucketStats, want: &BucketStats, what: &str) {
    assert_eq!(
        (
            got.count,
            got.errors,
            got.satisfied,
            got.tolerating,
            got.last_seen_ms
        ),
        (
            want.count,
            want.errors,
            want.satisfied,
            want.tolerating,
            want.last_seen_ms
        ),
        "{what}: counts"
    );
    assert_eq!(
        got.duration_ms.buckets().collect::<Vec<_>>(),
        want.duration_ms.buckets().collect::<Vec<_>>(),
        "{what}: sketch buckets"
    );
    assert_eq!(
        got.duration_ms.zero_count(),
        want.duration_ms.zero_count(),
        "{what}: zero count"
    );
    let (g, w) = (got.duration_ms.sum(), want.duration_ms.sum());
    assert!(
        (g - w).abs() <= 1e-9 * w.abs().max(1.0),
        "{what}: sum {g} vs {w}"
    );
}

/// Runs rollup passes until `tenant` has no dirty five-minute or hour
/// period left (other tenants may share the store); panics if some are
/// still dirty after 100 passes.
pub(super) async fn roll_up_until_clean(store: &dyn Store, tenant: &str) {
    let mut left = Vec::new();
    for _ in 0..100 {
        rollup::rollup_pass(store).await.expect("rollup pass");
        left.clear();
        for res in [Resolution::FiveMinutes, Resolution::Hour] {
            left.extend(
                store
                    .dirty_periods(res, i64::MAX, 100_000)
                    .await
                    .expect("dirty")
                    .into_iter()
                    .filter(|p| p.tenant == tenant),
            );
        }
        if left.is_empty() {
            return;
        }
    }
    panic!("{tenant}: periods still dirty after 100 rollup passes: {left:?}");
}

/// Sorted `(start, key)` and stats of `buckets`, for comparisons.
fn by_key(buckets: Vec<Bucket>) -> Vec<((UnixMs, SeriesKey), BucketStats)> {
    let mut v: Vec<_> = buckets
        .into_iter()
        .map(|b| ((b.start_ms, b.key), b.stats))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub(super) fn assert_same_buckets(got: Vec<Bucket>, want: Vec<Bucket>, what: &str) {
    let (got, want) = (by_key(got), by_key(want));
    assert_eq!(
        got.iter().map(|g| &g.0).collect::<Vec<_>>(),
        want.iter().map(|w| &w.0).collect::<Vec<_>>(),
        "{what}: series"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_stats_eq(&g.1, &w.1, &format!("{what}: {:?}", g.0));
    }
}
