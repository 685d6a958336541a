//! The store contract for rollups and retention (part of
//! [`run_store_suite`](super::run_store_suite)): a rollup equals the merge
//! of its parts, a stale rollup leaves its period dirty, and retention
//! drops what is older than each resolution keeps.

use super::fixtures::{
    BASE_MS, assert_stats_eq, key, minute_bucket, read, roll_up_until_clean, sample, unique, write,
};
use crate::model::{
    Bucket, BucketStats, IngestOutcome, Resolution, SeriesKey, UnixMs, merge_by_key,
};
use crate::rollup;
use crate::store::Store;

pub(super) async fn rollups_equal_merge_of_parts(store: &dyn Store) {
    let tenant = unique("tenant");
    // An hour-aligned start in 2001.
    let hour = Resolution::Hour.floor(BASE_MS) + 3_600_000;
    let keys = [
        key("api", "/a", ""),
        key("api", "/b", "web"),
        key("db", "/q", "api"),
    ];
    let mut parts = Vec::new();
    let mut n = 0u64;
    // Minutes spread over several five-minute periods of one hour.
    for minute in [0i64, 1, 4, 5, 9, 30, 59] {
        for (i, k) in keys.iter().enumerate() {
            let t = hour + minute * 60_000 + 1_000;
            let durations: Vec<f64> = (0..(minute as usize % 5 + 1 + i))
                .map(|j| (j as f64 + 1.0) * 7.5 + minute as f64)
                .collect();
            let b = minute_bucket(&tenant, k, t, &durations, (minute % 2) as u64);
            n += 1;
            store
                .ingest(write(
                    &tenant,
                    &k.service,
                    Some(&format!("r{n}")),
                    t,
                    vec![b.clone()],
                    vec![],
                ))
                .await
                .expect("ingest");
            parts.push(b);
        }
    }
    let dirty = store
        .dirty_periods(Resolution::FiveMinutes, i64::MAX, 100_000)
        .await
        .expect("dirty");
    let mine: Vec<_> = dirty
        .iter()
        .filter(|p| p.tenant == tenant)
        .map(|p| p.start_ms)
        .collect();
    assert_eq!(
        mine,
        vec![hour, hour + 300_000, hour + 1_800_000, hour + 3_300_000],
        "dirty five-minute periods, oldest first"
    );
    let ended = store
        .dirty_periods(Resolution::FiveMinutes, hour + 300_000, 100_000)
        .await
        .expect("dirty");
    assert!(
        ended
            .iter()
            .filter(|p| p.tenant == tenant)
            .all(|p| p.start_ms < hour + 300_000),
        "before_ms filters"
    );

    // Run passes until this tenant has nothing dirty (other data may share the store).
    roll_up_until_clean(store, &tenant).await;
    for res in [Resolution::FiveMinutes, Resolution::Hour] {
        let got = read(store, &tenant, None, res, hour, hour + 3_600_000).await;
        let mut want: Vec<(UnixMs, SeriesKey, BucketStats)> = Vec::new();
        let mut by_period: std::collections::BTreeMap<UnixMs, Vec<Bucket>> = Default::default();
        for p in &parts {
            by_period
                .entry(res.floor(p.start_ms))
                .or_default()
                .push(p.clone());
        }
        for (start, bs) in by_period {
            for (k, s) in merge_by_key(bs) {
                want.push((start, k, s));
            }
        }
        let mut got: Vec<(UnixMs, SeriesKey, BucketStats)> = got
            .into_iter()
            .map(|b| {
                assert_eq!(b.resolution, res);
                (b.start_ms, b.key, b.stats)
            })
            .collect();
        got.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
        want.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
        assert_eq!(
            got.len(),
            want.len(),
            "{res}: one bucket per period and series"
        );
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0, &g.1), (w.0, &w.1), "{res}: same periods and series");
            assert_stats_eq(&g.2, &w.2, &format!("{res} bucket {:?} at {}", g.1, g.0));
        }
    }
    let hour_total: u64 = read(
        store,
        &tenant,
        None,
        Resolution::Hour,
        hour,
        hour + 3_600_000,
    )
    .await
    .iter()
    .map(|b| b.stats.count)
    .sum();
    assert_eq!(hour_total, parts.iter().map(|p| p.stats.count).sum::<u64>());

    // Late data for a rolled-up period is picked up by the next pass.
    let late = minute_bucket(&tenant, &keys[0], hour + 2 * 60_000, &[1000.0], 1);
    store
        .ingest(write(
            &tenant,
            "api",
            Some("late"),
            hour,
            vec![late],
            vec![],
        ))
        .await
        .expect("late");
    for _ in 0..3 {
        rollup::rollup_pass(store).await.expect("rollup pass");
    }
    let hour_total_after: u64 = read(
        store,
        &tenant,
        None,
        Resolution::Hour,
        hour,
        hour + 3_600_000,
    )
    .await
    .iter()
    .map(|b| b.stats.count)
    .sum();
    assert_eq!(
        hour_total_after,
        hour_total + 1,
        "late data reaches the hour bucket"
    );
}

pub(super) async fn stale_rollup_keeps_period_dirty(store: &dyn Store) {
    let tenant = unique("tenant");
    let t = Resolution::Hour.floor(BASE_MS) + 7_200_000;
    let k = key("api", "/", "");
    store
        .ingest(write(
            &tenant,
            "api",
            Some("1"),
            t,
            vec![minute_bucket(&tenant, &k, t, &[1.0], 0)],
            vec![],
        ))
        .await
        .expect("ingest");
    let taken = store
        .dirty_periods(Resolution::FiveMinutes, i64::MAX, 100_000)
        .await
        .expect("dirty")
        .into_iter()
        .find(|p| p.tenant == tenant)
        .expect("period is dirty");
    // A write lands between reading the dirty mark and writing the rollup.
    store
        .ingest(write(
            &tenant,
            "api",
            Some("2"),
            t,
            vec![minute_bucket(&tenant, &k, t, &[2.0], 0)],
            vec![],
        ))
        .await
        .expect("ingest");
    rollup::rollup_period(store, taken.clone())
        .await
        .expect("rollup");
    let again = store
        .dirty_periods(Resolution::FiveMinutes, i64::MAX, 100_000)
        .await
        .expect("dirty");
    let still = again
        .iter()
        .find(|p| p.tenant == tenant)
        .expect("a racing write keeps the period dirty");
    assert_ne!(still.generation, taken.generation);
    rollup::rollup_period(store, still.clone())
        .await
        .expect("rollup");
    let again = store
        .dirty_periods(Resolution::FiveMinutes, i64::MAX, 100_000)
        .await
        .expect("dirty");
    assert!(
        !again.iter().any(|p| p.tenant == tenant),
        "an up-to-date rollup clears the mark"
    );
    let five = read(store, &tenant, None, Resolution::FiveMinutes, 0, i64::MAX).await;
    assert_eq!(five.len(), 1);
    assert_eq!(five[0].stats.count, 2);
    let hours = store
        .dirty_periods(Resolution::Hour, i64::MAX, 100_000)
        .await
        .expect("dirty");
    assert!(
        hours
            .iter()
            .any(|p| p.tenant == tenant && p.start_ms == Resolution::Hour.floor(t)),
        "rolling up five minutes marks the hour"
    );
}

pub(super) async fn retention_drops_old_data(store: &dyn Store) {
    let tenant = unique("tenant");
    let k = key("api", "/", "");
    // Far in the past (1990), so no other data of the suite or of real use is touched.
    let old = 631_152_000_000;
    let newer = old + 10 * 86_400_000;
    for (i, t) in [old, newer].into_iter().enumerate() {
        let id = format!("ret{i}");
        store
            .ingest(write(
                &tenant,
                "api",
                Some(&id),
                t,
                vec![minute_bucket(&tenant, &k, t, &[1.0], 0)],
                vec![sample(t, "/")],
            ))
            .await
            .expect("ingest");
    }
    let cutoff = old + 86_400_000;
    assert!(
        store
            .drop_buckets_before(Resolution::Minute, cutoff)
            .await
            .expect("drop")
            >= 1
    );
    assert!(
        store
            .drop_samples_before(cutoff)
            .await
            .expect("drop samples")
            >= 1
    );
    assert!(store.drop_batch_ids_before(cutoff).await.expect("drop ids") >= 1);
    let left = read(store, &tenant, None, Resolution::Minute, 0, i64::MAX).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].start_ms,
        Resolution::Minute.floor(newer),
        "only data before the cutoff is dropped"
    );
    let samples = store
        .recent_samples(tenant.clone(), "api".into(), 10)
        .await
        .expect("samples");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].timestamp_ms, newer);
    // A forgotten batch id counts again; a remembered one does not.
    let again = write(&tenant, "api", Some("ret0"), old, vec![], vec![]);
    assert_eq!(
        store.ingest(again).await.expect("ingest"),
        IngestOutcome::Stored
    );
    let again = write(&tenant, "api", Some("ret1"), newer, vec![], vec![]);
    assert_eq!(
        store.ingest(again).await.expect("ingest"),
        IngestOutcome::Duplicate
    );
}
