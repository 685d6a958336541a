//! The back-end-independent [`Store`] test suite (feature `testing`).
//!
//! Every back end calls [`run_store_suite`] from its tests with a real,
//! migrated store. The suite uses fresh tenant names and timestamps in
//! 2001, so it can share a database with other data and other runs.
//!
//! ```no_run
//! # async fn demo() {
//! let store = vitals_collector::store::open("sqlite::memory:").await.unwrap();
//! vitals_collector::testing::run_store_suite(store).await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod custom;

pub use custom::custom_point;

use crate::model::merge_by_key;
use crate::model::{
    Bucket, BucketQuery, BucketStats, IngestOutcome, IngestWrite, KeyRecord, Resolution, Role,
    Sample, SeriesKey, SeriesSelect, UnixMs, sum_routes, totals_of, with_totals,
};
use crate::rollup;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vitals::Sketch;

/// 2001-09-09T01:46:40Z: far from "now", so retention runs elsewhere never
/// see the suite's data and the suite's retention checks touch nothing else.
pub const BASE_MS: UnixMs = 1_000_000_000_000;

fn unique(prefix: &str) -> String {
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

fn write(
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

fn sample(ts: UnixMs, route: &str) -> Sample {
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

async fn read(
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
/// period left (other tenants may share the store), at most 100 passes.
pub(crate) async fn roll_up_until_clean(store: &dyn Store, tenant: &str) {
    for _ in 0..100 {
        rollup::rollup_pass(store).await.expect("rollup pass");
        let mut left = false;
        for res in [Resolution::FiveMinutes, Resolution::Hour] {
            left |= store
                .dirty_periods(res, i64::MAX, 100_000)
                .await
                .expect("dirty")
                .iter()
                .any(|p| p.tenant == tenant);
        }
        if !left {
            return;
        }
    }
}

/// Runs every check of the store contract against `store`; panics with a
/// message naming the broken rule.
pub async fn run_store_suite(store: Arc<dyn Store>) {
    keys(&*store).await;
    ingest_merges_and_isolates_tenants(&*store).await;
    duplicate_batches_count_once(&*store).await;
    concurrent_ingests_count_each_batch_once(store.clone()).await;
    samples_and_services(&*store).await;
    rollups_equal_merge_of_parts(&*store).await;
    stale_rollup_keeps_period_dirty(&*store).await;
    retention_drops_old_data(&*store).await;
    custom::points_merge_and_isolate_tenants(&*store).await;
    custom::rollups_equal_merge_of_parts(&*store).await;
    custom::retention_drops_old_points(&*store).await;
    series_selection_reads_routes_or_totals(&*store).await;
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

fn assert_same_buckets(got: Vec<Bucket>, want: Vec<Bucket>, what: &str) {
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

/// `BucketQuery::series` picks route series, per-service totals or both,
/// with and without a service, at minute and rolled-up resolutions; and
/// `Store::route_sums` equals summing the route buckets.
async fn series_selection_reads_routes_or_totals(store: &dyn Store) {
    let tenant = unique("tenant");
    let hour = Resolution::Hour.floor(BASE_MS) + 7_200_000;
    let mut routes = Vec::new();
    let mut n = 0u64;
    for minute in [0i64, 1, 7] {
        for (service, route, class, caller) in [
            ("api", "/a", 2u8, ""),
            ("api", "/a", 5, "web"),
            ("api", "/b", 2, "web"),
            ("api", "/b", 2, ""),
            ("db", "/q", 2, "api"),
            ("db", "/q", 4, "api"),
        ] {
            let mut k = key(service, route, caller);
            k.status_class = class;
            let t = hour + minute * 60_000;
            let durations: Vec<f64> = (0..(minute as usize + class as usize))
                .map(|j| j as f64 * 3.5 + 0.25)
                .collect();
            routes.push(minute_bucket(
                &tenant,
                &k,
                t,
                &durations,
                u64::from(class == 5),
            ));
        }
    }
    // Two writes per service and minute, so stored totals are merged too.
    for half in [0, 1] {
        for service in ["api", "db"] {
            let part: Vec<Bucket> = routes
                .iter()
                .enumerate()
                .filter(|(i, b)| i % 2 == half && b.key.service == service)
                .map(|(_, b)| b.clone())
                .collect();
            n += 1;
            store
                .ingest(write(
                    &tenant,
                    service,
                    Some(&format!("s{n}")),
                    hour,
                    with_totals(part),
                    vec![],
                ))
                .await
                .expect("ingest");
        }
    }
    let totals = totals_of(&routes);
    assert_eq!(
        totals.len(),
        5 * 3,
        "five (service, class, caller) groups per minute"
    );
    assert!(totals.iter().all(|t| t.key.is_total()));
    let end = hour + 3_600_000;
    let q = |service: Option<&str>, res: Resolution, series: SeriesSelect| BucketQuery {
        tenant: tenant.clone(),
        service: service.map(str::to_string),
        resolution: res,
        start_ms: hour,
        end_ms: end,
        series,
    };
    let only = |v: &[Bucket], service: Option<&str>| -> Vec<Bucket> {
        v.iter()
            .filter(|b| service.is_none_or(|s| b.key.service == s))
            .cloned()
            .collect()
    };
    for service in [None, Some("api"), Some("db")] {
        let got = |series| store.read_buckets(q(service, Resolution::Minute, series));
        let r = got(SeriesSelect::Routes).await.expect("read routes");
        assert_same_buckets(r, only(&routes, service), "minute routes");
        let t = got(SeriesSelect::Totals).await.expect("read totals");
        assert_same_buckets(t, only(&totals, service), "minute totals");
        let a = got(SeriesSelect::All).await.expect("read all");
        let mut both = only(&routes, service);
        both.extend(only(&totals, service));
        assert_same_buckets(a, both, "minute routes and totals");
        let mut sums = store
            .route_sums(q(service, Resolution::Minute, SeriesSelect::Totals))
            .await
            .expect("route sums");
        sums.sort_by(|a, b| (&a.method, &a.route).cmp(&(&b.method, &b.route)));
        let want = sum_routes(&only(&routes, service));
        assert_eq!(sums.len(), want.len(), "route sums: routes");
        for (g, w) in sums.iter().zip(&want) {
            assert_eq!((&g.method, &g.route), (&w.method, &w.route));
            assert_stats_eq(&g.stats, &w.stats, "route sums");
        }
    }

    // Rollups carry totals like any series: a five-minute total is the
    // merge of its minutes' totals and of its routes.
    roll_up_until_clean(store, &tenant).await;
    for res in [Resolution::FiveMinutes, Resolution::Hour] {
        let periods: &[UnixMs] = match res {
            Resolution::Hour => &[hour],
            _ => &[hour, hour + 300_000],
        };
        let mut want_routes = Vec::new();
        let mut want_totals = Vec::new();
        for &period in periods {
            // What the period holds: the merge of its minutes, per series.
            let coarse = |v: &[Bucket]| -> Vec<Bucket> {
                merge_by_key(
                    v.iter()
                        .filter(|b| res.floor(b.start_ms) == period)
                        .cloned(),
                )
                .into_iter()
                .map(|(key, stats)| Bucket {
                    tenant: tenant.clone(),
                    resolution: res,
                    start_ms: period,
                    key,
                    stats,
                })
                .collect()
            };
            let r = coarse(&routes);
            let t = coarse(&totals);
            // Rolled-up totals equal the totals of the rolled-up routes.
            assert_same_buckets(t.clone(), totals_of(&r), "totals of rolled-up routes");
            want_routes.extend(r);
            want_totals.extend(t);
        }
        let r = store
            .read_buckets(q(None, res, SeriesSelect::Routes))
            .await
            .expect("read routes");
        assert_same_buckets(r, want_routes, &format!("{res} routes"));
        let t = store
            .read_buckets(q(None, res, SeriesSelect::Totals))
            .await
            .expect("read totals");
        assert_same_buckets(t, want_totals, &format!("{res} totals"));
    }
}

async fn keys(store: &dyn Store) {
    let hash = unique("hash");
    let rec = KeyRecord {
        hash: hash.clone(),
        tenant: unique("tenant"),
        role: Role::Read,
        created_ms: BASE_MS,
    };
    store.create_key(rec.clone()).await.expect("create_key");
    assert_eq!(
        store.key_by_hash(hash.clone()).await.expect("lookup"),
        Some(rec.clone())
    );
    assert!(
        matches!(store.create_key(rec).await, Err(StoreError::DuplicateKey)),
        "a second key with the same hash must be DuplicateKey"
    );
    assert_eq!(
        store.key_by_hash(unique("nope")).await.expect("lookup"),
        None
    );
}

async fn ingest_merges_and_isolates_tenants(store: &dyn Store) {
    let (a, b) = (unique("tenant-a"), unique("tenant-b"));
    let k = key("api", "/users/{id}", "");
    let t = BASE_MS + 60_000;
    let first = [1.0, 2.0, 3.0, 700.0];
    let second = [4.0, 5.0, 3000.0];
    let out = store
        .ingest(write(
            &a,
            "api",
            Some("b1"),
            t,
            vec![minute_bucket(&a, &k, t, &first, 1)],
            vec![],
        ))
        .await
        .expect("ingest 1");
    assert_eq!(out, IngestOutcome::Stored);
    store
        .ingest(write(
            &a,
            "api",
            Some("b2"),
            t + 5,
            vec![minute_bucket(&a, &k, t + 5, &second, 2)],
            vec![],
        ))
        .await
        .expect("ingest 2");
    // Same key in another tenant, and another service in tenant a.
    store
        .ingest(write(
            &b,
            "api",
            Some("b1"),
            t,
            vec![minute_bucket(&b, &k, t, &[99.0], 0)],
            vec![],
        ))
        .await
        .expect("ingest other tenant");
    let other = key("billing", "/pay", "api");
    store
        .ingest(write(
            &a,
            "billing",
            None,
            t,
            vec![minute_bucket(&a, &other, t, &[8.0], 0)],
            vec![],
        ))
        .await
        .expect("ingest other service");

    let got = read(
        store,
        &a,
        Some("api"),
        Resolution::Minute,
        t - 60_000,
        t + 60_000,
    )
    .await;
    assert_eq!(
        got.len(),
        1,
        "two writes of one key merge into one bucket: {got:?}"
    );
    let stats = &got[0].stats;
    assert_eq!(got[0].tenant, a);
    assert_eq!(got[0].key, k);
    assert_eq!(got[0].start_ms, Resolution::Minute.floor(t));
    assert_eq!(
        (stats.count, stats.errors, stats.satisfied, stats.tolerating),
        (7, 3, 5, 1)
    );
    let mut all = Sketch::new();
    for d in first.iter().chain(&second) {
        all.record(*d);
    }
    let want = BucketStats {
        duration_ms: all,
        ..stats.clone()
    };
    assert_stats_eq(stats, &want, "sketches merge exactly");
    assert_eq!(stats.last_seen_ms, t + 5);

    let both = read(store, &a, None, Resolution::Minute, t - 60_000, t + 60_000).await;
    assert_eq!(
        both.len(),
        2,
        "no service filter reads every service of the tenant"
    );
    let theirs = read(store, &b, None, Resolution::Minute, t - 60_000, t + 60_000).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].stats.count, 1, "tenant b sees only its own data");
    // The window is [start, end).
    let start = Resolution::Minute.floor(t);
    assert!(
        read(
            store,
            &a,
            Some("api"),
            Resolution::Minute,
            start + 1,
            start + 120_000
        )
        .await
        .is_empty()
    );
    assert!(
        read(
            store,
            &a,
            Some("api"),
            Resolution::Minute,
            start - 60_000,
            start
        )
        .await
        .is_empty()
    );
    assert!(
        read(store, &a, Some("api"), Resolution::FiveMinutes, 0, i64::MAX)
            .await
            .is_empty()
    );
}

async fn duplicate_batches_count_once(store: &dyn Store) {
    let tenant = unique("tenant");
    let k = key("api", "/", "");
    let t = BASE_MS + 120_000;
    let w = write(
        &tenant,
        "api",
        Some("same-id"),
        t,
        vec![minute_bucket(&tenant, &k, t, &[1.0, 2.0], 0)],
        vec![sample(t, "/")],
    );
    assert_eq!(
        store.ingest(w.clone()).await.expect("first"),
        IngestOutcome::Stored
    );
    assert_eq!(
        store.ingest(w.clone()).await.expect("retry"),
        IngestOutcome::Duplicate
    );
    let got = read(store, &tenant, Some("api"), Resolution::Minute, 0, i64::MAX).await;
    assert_eq!(
        got[0].stats.count, 2,
        "a retried batch is never counted twice"
    );
    let samples = store
        .recent_samples(tenant.clone(), "api".into(), 10)
        .await
        .expect("samples");
    assert_eq!(samples.len(), 1, "a duplicate writes no samples either");
    // The same id from another service, or without an id, is new data.
    let mut other = w.clone();
    other.service = "web".into();
    other.buckets[0].key.service = "web".into();
    assert_eq!(
        store.ingest(other).await.expect("other service"),
        IngestOutcome::Stored
    );
    let mut no_id = w;
    no_id.batch_id = None;
    assert_eq!(
        store.ingest(no_id.clone()).await.expect("no id"),
        IngestOutcome::Stored
    );
    assert_eq!(
        store.ingest(no_id).await.expect("no id again"),
        IngestOutcome::Stored
    );
    let got = read(store, &tenant, Some("api"), Resolution::Minute, 0, i64::MAX).await;
    assert_eq!(got[0].stats.count, 6);
}

async fn concurrent_ingests_count_each_batch_once(store: Arc<dyn Store>) {
    let tenant = unique("tenant");
    let k = key("api", "/c", "");
    let t = BASE_MS + 240_000;
    // 64 writers at once, every batch id sent twice: each id counts once.
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        let tenant = tenant.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let w = write(
                &tenant,
                "api",
                Some(&format!("c{}", i / 2)),
                t,
                vec![minute_bucket(&tenant, &k, t, &[i as f64 + 1.0], 0)],
                vec![],
            );
            store.ingest(w).await.expect("concurrent ingest")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.expect("task") == IngestOutcome::Stored {
            stored += 1;
        }
    }
    assert_eq!(
        stored, 32,
        "each of 32 ids is stored once, its twin is a duplicate"
    );
    let got = read(
        store.as_ref(),
        &tenant,
        Some("api"),
        Resolution::Minute,
        0,
        i64::MAX,
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].stats.count, 32,
        "concurrent writes merge, none lost or doubled"
    );
}

async fn samples_and_services(store: &dyn Store) {
    let tenant = unique("tenant");
    let t = BASE_MS + 180_000;
    let samples: Vec<Sample> = (0..5).map(|i| sample(t + i, &format!("/r{i}"))).collect();
    store
        .ingest(write(
            &tenant,
            "api",
            Some("s1"),
            t + 10,
            vec![],
            samples.clone(),
        ))
        .await
        .expect("ingest samples");
    store
        .ingest(write(&tenant, "web", Some("s1"), t + 3, vec![], vec![]))
        .await
        .expect("ingest web");
    store
        .ingest(write(&tenant, "api", Some("s2"), t + 1, vec![], vec![]))
        .await
        .expect("ingest older receipt");
    let recent = store
        .recent_samples(tenant.clone(), "api".into(), 3)
        .await
        .expect("recent");
    let want: Vec<Sample> = samples.iter().rev().take(3).cloned().collect();
    assert_eq!(recent, want, "newest first, at most limit");
    assert!(
        store
            .recent_samples(unique("x"), "api".into(), 3)
            .await
            .expect("recent")
            .is_empty()
    );
    let services = store.services(tenant.clone()).await.expect("services");
    let names: Vec<(&str, UnixMs)> = services
        .iter()
        .map(|s| (s.service.as_str(), s.last_seen_ms))
        .collect();
    assert_eq!(
        names,
        vec![("api", t + 10), ("web", t + 3)],
        "last seen is the latest receipt"
    );
    assert!(
        store
            .services(unique("x"))
            .await
            .expect("services")
            .is_empty()
    );

    // A large batch of samples (written in multi-row statements of
    // several sizes) comes back whole and in order: one timestamp, so the
    // order is the insertion order alone.
    let many: Vec<Sample> = (0..105)
        .map(|i| Sample {
            caller: (i % 3 != 0).then(|| format!("c{i}")),
            trace_id: (i % 4 == 0).then(|| format!("{i:032x}")),
            status: 200 + i as u16,
            duration_ms: i as f64 / 4.0,
            ..sample(t + 20, &format!("/m{i}"))
        })
        .collect();
    store
        .ingest(write(
            &tenant,
            "many",
            Some("m1"),
            t + 20,
            vec![],
            many.clone(),
        ))
        .await
        .expect("ingest many samples");
    let recent = store
        .recent_samples(tenant.clone(), "many".into(), 200)
        .await
        .expect("recent");
    let want: Vec<Sample> = many.iter().rev().cloned().collect();
    assert_eq!(recent, want, "every sample, newest first");
}

async fn rollups_equal_merge_of_parts(store: &dyn Store) {
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

async fn stale_rollup_keeps_period_dirty(store: &dyn Store) {
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

async fn retention_drops_old_data(store: &dyn Store) {
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
