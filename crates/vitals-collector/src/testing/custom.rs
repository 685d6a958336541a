//! The store contract's custom metric checks (part of
//! [`run_store_suite`](super::run_store_suite)): merging, tenancy and
//! dedup, rollups equal to the merge of their parts, retention.

use super::fixtures::{BASE_MS, roll_up_until_clean, unique, write};
use crate::model::{
    CustomKey, CustomKind, CustomPoint, CustomQuery, CustomStats, IngestOutcome, IngestWrite,
    Resolution, UnixMs,
};
use crate::rollup;
use crate::store::Store;

/// A custom point of `service` (instance `instance`) taken at `at`.
#[allow(clippy::too_many_arguments)]
pub fn custom_point(
    tenant: &str,
    service: &str,
    name: &str,
    labels: &[(&str, &str)],
    instance: &str,
    kind: CustomKind,
    value: f64,
    at: UnixMs,
) -> CustomPoint {
    let labels: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CustomPoint {
        tenant: tenant.into(),
        resolution: Resolution::Minute,
        start_ms: Resolution::Minute.floor(at),
        key: CustomKey {
            service: service.into(),
            name: name.into(),
            labels: crate::model::canonical_labels(&labels),
            instance: instance.into(),
        },
        stats: CustomStats::of(kind, value, at),
    }
}

fn custom_write(
    tenant: &str,
    service: &str,
    batch_id: &str,
    at: UnixMs,
    custom: Vec<CustomPoint>,
) -> IngestWrite {
    IngestWrite {
        custom,
        ..write(tenant, service, Some(batch_id), at, vec![], vec![])
    }
}

async fn read_custom(
    store: &dyn Store,
    tenant: &str,
    service: Option<&str>,
    name: Option<&str>,
    res: Resolution,
    start: UnixMs,
    end: UnixMs,
) -> Vec<CustomPoint> {
    let mut got = store
        .read_custom(CustomQuery {
            tenant: tenant.into(),
            service: service.map(str::to_string),
            name: name.map(str::to_string),
            resolution: res,
            start_ms: start,
            end_ms: end,
        })
        .await
        .expect("read_custom");
    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
    got
}

pub(super) async fn points_merge_and_isolate_tenants(store: &dyn Store) {
    let (a, b) = (unique("tenant-a"), unique("tenant-b"));
    let t0 = Resolution::Hour.floor(BASE_MS) + 2 * 3_600_000;
    let g = |v: f64, at: UnixMs| {
        custom_point(
            &a,
            "api",
            "queue_depth",
            &[("q", "x")],
            "i-1",
            CustomKind::Gauge,
            v,
            at,
        )
    };
    let c = |v: f64, at: UnixMs| {
        custom_point(
            &a,
            "api",
            "orders_total",
            &[],
            "i-1",
            CustomKind::Counter,
            v,
            at,
        )
    };
    let out = store
        .ingest(custom_write(
            &a,
            "api",
            "c1",
            t0 + 10_000,
            vec![g(5.0, t0 + 10_000), c(100.0, t0 + 10_000)],
        ))
        .await
        .expect("ingest c1");
    assert_eq!(out, IngestOutcome::Stored);
    store
        .ingest(custom_write(
            &a,
            "api",
            "c2",
            t0 + 40_000,
            vec![g(9.0, t0 + 40_000)],
        ))
        .await
        .expect("ingest c2");
    // Late: an earlier value arrives last; it widens min but is not `last`.
    store
        .ingest(custom_write(
            &a,
            "api",
            "c3",
            t0 + 50_000,
            vec![g(2.0, t0 + 20_000)],
        ))
        .await
        .expect("ingest c3");
    // A retried batch id writes nothing, custom points included.
    let dup = store
        .ingest(custom_write(
            &a,
            "api",
            "c2",
            t0 + 41_000,
            vec![g(1000.0, t0 + 45_000)],
        ))
        .await
        .expect("ingest dup");
    assert_eq!(dup, IngestOutcome::Duplicate);
    // The same series in another tenant, another service in tenant a.
    store
        .ingest(custom_write(
            &b,
            "api",
            "c1",
            t0 + 10_000,
            vec![custom_point(
                &b,
                "api",
                "queue_depth",
                &[("q", "x")],
                "i-1",
                CustomKind::Gauge,
                -7.0,
                t0 + 10_000,
            )],
        ))
        .await
        .expect("ingest b");
    store
        .ingest(custom_write(
            &a,
            "billing",
            "c1",
            t0 + 10_000,
            vec![custom_point(
                &a,
                "billing",
                "queue_depth",
                &[("q", "x")],
                "i-1",
                CustomKind::Gauge,
                3.0,
                t0 + 10_000,
            )],
        ))
        .await
        .expect("ingest billing");

    let got = read_custom(
        store,
        &a,
        Some("api"),
        Some("queue_depth"),
        Resolution::Minute,
        t0,
        t0 + 60_000,
    )
    .await;
    assert_eq!(got.len(), 1, "one gauge point in the minute: {got:?}");
    assert_eq!(got[0].start_ms, t0);
    assert_eq!(got[0].key.labels, r#"{"q":"x"}"#);
    assert_eq!(
        got[0].stats,
        CustomStats {
            kind: CustomKind::Gauge,
            last: 9.0,
            last_ms: t0 + 40_000,
            min: 2.0,
            max: 9.0
        },
        "later value is last, min and max over every value"
    );
    let all_api = read_custom(
        store,
        &a,
        Some("api"),
        None,
        Resolution::Minute,
        t0,
        t0 + 60_000,
    )
    .await;
    assert_eq!(all_api.len(), 2);
    let counter = all_api
        .iter()
        .find(|p| p.key.name == "orders_total")
        .expect("counter");
    assert_eq!(
        counter.stats,
        CustomStats::of(CustomKind::Counter, 100.0, t0 + 10_000)
    );
    let all = read_custom(store, &a, None, None, Resolution::Minute, t0, t0 + 60_000).await;
    assert_eq!(all.len(), 3, "every service of the tenant");
    assert!(all.iter().all(|p| p.tenant == a));
    let other = read_custom(store, &b, None, None, Resolution::Minute, t0, t0 + 60_000).await;
    assert_eq!(other.len(), 1, "tenant b sees only its own");
    assert_eq!(other[0].stats.last, -7.0);
    assert!(
        read_custom(
            store,
            &a,
            None,
            None,
            Resolution::Minute,
            t0 + 60_000,
            t0 + 120_000
        )
        .await
        .is_empty(),
        "end is exclusive, start inclusive"
    );
    // Custom points alone mark their five-minute period dirty.
    let dirty = store
        .dirty_periods(Resolution::FiveMinutes, i64::MAX, 100_000)
        .await
        .expect("dirty");
    assert!(
        dirty.iter().any(|p| p.tenant == a && p.start_ms == t0),
        "a batch with only custom points marks its period dirty"
    );
}

pub(super) async fn rollups_equal_merge_of_parts(store: &dyn Store) {
    let tenant = unique("tenant");
    let hour = Resolution::Hour.floor(BASE_MS) + 4 * 3_600_000;
    let mut parts = Vec::new();
    let mut n = 0;
    for minute in [0i64, 1, 4, 5, 9, 30, 59] {
        for instance in ["i-1", "i-2"] {
            for (name, kind) in [
                ("jobs_total", CustomKind::Counter),
                ("temp", CustomKind::Gauge),
            ] {
                n += 1;
                let at = hour + minute * 60_000 + 7_000;
                // Values go up and down, with a reset at minute 30.
                let value = if minute == 30 {
                    1.0
                } else {
                    (minute * 10 + n % 3) as f64 - 20.0
                };
                let p = custom_point(
                    &tenant,
                    "api",
                    name,
                    &[("k", instance)],
                    instance,
                    kind,
                    value,
                    at,
                );
                store
                    .ingest(custom_write(
                        &tenant,
                        "api",
                        &format!("cr{n}"),
                        at,
                        vec![p.clone()],
                    ))
                    .await
                    .expect("ingest");
                parts.push(p);
            }
        }
    }
    roll_up_until_clean(store, &tenant).await;
    for res in [Resolution::FiveMinutes, Resolution::Hour] {
        let got = read_custom(store, &tenant, None, None, res, hour, hour + 3_600_000).await;
        let mut want: std::collections::BTreeMap<(UnixMs, CustomKey), CustomStats> =
            std::collections::BTreeMap::new();
        for p in &parts {
            want.entry((res.floor(p.start_ms), p.key.clone()))
                .and_modify(|s| s.merge(&p.stats))
                .or_insert(p.stats);
        }
        let got: std::collections::BTreeMap<(UnixMs, CustomKey), CustomStats> = got
            .into_iter()
            .map(|p| {
                assert_eq!(p.resolution, res);
                ((p.start_ms, p.key), p.stats)
            })
            .collect();
        assert_eq!(
            got, want,
            "{res} custom points are the merge of their minutes"
        );
    }
    // A rollup replaces: re-running it changes nothing.
    let before = read_custom(
        store,
        &tenant,
        None,
        None,
        Resolution::Hour,
        hour,
        hour + 3_600_000,
    )
    .await;
    let period = crate::model::DirtyPeriod {
        resolution: Resolution::Hour,
        tenant: tenant.clone(),
        start_ms: hour,
        generation: -1,
    };
    rollup::rollup_period(store, period)
        .await
        .expect("rollup again");
    let after = read_custom(
        store,
        &tenant,
        None,
        None,
        Resolution::Hour,
        hour,
        hour + 3_600_000,
    )
    .await;
    assert_eq!(before, after, "rolling up twice is harmless");
}

pub(super) async fn retention_drops_old_points(store: &dyn Store) {
    let tenant = unique("tenant");
    // 1989, apart from the bucket retention check's days.
    let old = 600_000_000_000;
    let newer = old + 10 * 86_400_000;
    for (i, t) in [old, newer].into_iter().enumerate() {
        let p = custom_point(&tenant, "api", "g", &[], "", CustomKind::Gauge, i as f64, t);
        store
            .ingest(custom_write(
                &tenant,
                "api",
                &format!("cret{i}"),
                t,
                vec![p],
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
            >= 1,
        "custom points count as removed"
    );
    let left = read_custom(store, &tenant, None, None, Resolution::Minute, 0, i64::MAX).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].start_ms,
        Resolution::Minute.floor(newer),
        "only points before the cutoff go"
    );
}
