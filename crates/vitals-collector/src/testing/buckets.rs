//! The store contract for buckets (part of
//! [`run_store_suite`](super::run_store_suite)): ingest merges and keeps
//! tenants apart, a batch id counts once (also when sent concurrently),
//! and reads select route series, per-service totals or both.

use super::fixtures::{
    BASE_MS, assert_same_buckets, assert_stats_eq, key, minute_bucket, read, roll_up_until_clean,
    sample, unique, write,
};
use crate::model::{
    Bucket, BucketQuery, BucketStats, IngestOutcome, Resolution, SeriesSelect, UnixMs,
    merge_by_key, sum_routes, totals_of, with_totals,
};
use crate::store::Store;
use std::sync::Arc;
use vitals::Sketch;

pub(super) async fn ingest_merges_and_isolates_tenants(store: &dyn Store) {
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

pub(super) async fn duplicate_batches_count_once(store: &dyn Store) {
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

pub(super) async fn concurrent_ingests_count_each_batch_once(store: Arc<dyn Store>) {
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

/// `BucketQuery::series` picks route series, per-service totals or both,
/// with and without a service, at minute and rolled-up resolutions; and
/// `Store::route_sums` equals summing the route buckets.
pub(super) async fn series_selection_reads_routes_or_totals(store: &dyn Store) {
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
