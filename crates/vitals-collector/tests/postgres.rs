//! The PostgreSQL back end against the real server at `VITALS_TEST_POSTGRES`
//! (`scripts/test` sets `postgres://postgres@127.0.0.1:5432/test`). Each
//! test works in a fresh, randomly named schema, dropped at the end. In CI
//! (`CI=true`) a missing variable or server fails; elsewhere the tests say
//! loudly that they skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod external;

use external::TestSchema;
use std::sync::Arc;
use vitals_collector::model::{
    Bucket, BucketQuery, IngestOutcome, IngestWrite, Resolution, SeriesSelect,
};
use vitals_collector::store::{PostgresStore, Store};
use vitals_collector::testing::{self, key, minute_bucket};

const DAY: i64 = 86_400_000;

#[tokio::test]
async fn postgres_passes_the_store_suite() {
    let Some(schema) = TestSchema::create("suite").await else {
        return;
    };
    let store = schema.open().await.expect("open");
    testing::run_store_suite(Arc::new(store)).await;
    schema.drop().await;
}

#[tokio::test]
async fn store_open_dispatches_postgres_urls() {
    let Some(schema) = TestSchema::create("open").await else {
        return;
    };
    let store = vitals_collector::store::open(&schema.url())
        .await
        .expect("open by URL");
    assert!(store.services("t".into()).await.expect("query").is_empty());
    drop(store);
    let err = vitals_collector::store::open("postgres://postgres@127.0.0.1:1/none")
        .await
        .err()
        .expect("port 1 refuses")
        .to_string();
    assert!(err.contains("PostgreSQL"), "{err}");
    let err = vitals_collector::store::open("postgres://u:secret@127.0.0.1:5432/x?bogus=1")
        .await
        .err()
        .expect("unknown option")
        .to_string();
    assert!(
        err.contains("not a PostgreSQL connection URL") && !err.contains("secret"),
        "{err}"
    );
    schema.drop().await;
}

#[tokio::test]
async fn concurrent_starts_migrate_once() {
    let Some(schema) = TestSchema::create("migrate").await else {
        return;
    };
    let (a, b, c) = tokio::join!(schema.open(), schema.open(), schema.open());
    let (a, _b, _c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    let latest = PostgresStore::SCHEMA_VERSION;
    assert_eq!(a.schema_version().await.expect("version"), latest);
    let rows = schema
        .query_i64("SELECT count(*) FROM schema_migrations")
        .await;
    assert_eq!(
        rows, latest,
        "one row per migration after three concurrent starts"
    );
    // Reopening runs nothing again.
    let again = schema.open().await.expect("reopen");
    assert_eq!(again.schema_version().await.expect("version"), latest);
    assert_eq!(
        schema
            .query_i64("SELECT count(*) FROM schema_migrations")
            .await,
        latest
    );
    // A database migrated by a newer collector is refused with a clear error.
    schema
        .execute("INSERT INTO schema_migrations (version) VALUES (99)")
        .await;
    let err = schema.open().await.expect_err("too new").to_string();
    assert!(err.contains("newer than this collector supports"), "{err}");
    schema.drop().await;
}

fn write(tenant: &str, id: &str, at: i64, buckets: Vec<Bucket>) -> IngestWrite {
    IngestWrite {
        tenant: tenant.into(),
        service: "api".into(),
        batch_id: Some(id.into()),
        received_ms: at,
        buckets,
        samples: vec![],
        custom: vec![],
    }
}

async fn minute_total(store: &dyn Store, tenant: &str) -> u64 {
    store
        .read_buckets(BucketQuery {
            tenant: tenant.into(),
            service: None,
            resolution: Resolution::Minute,
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            series: SeriesSelect::All,
        })
        .await
        .expect("read")
        .iter()
        .map(|b| b.stats.count)
        .sum()
}

#[tokio::test]
async fn partitions_by_day_created_on_demand_and_dropped_whole() {
    let Some(schema) = TestSchema::create("parts").await else {
        return;
    };
    let store = schema.open().await.expect("open");
    // Days ahead exist from the start.
    let today = vitals_collector::now_ms().div_euclid(DAY);
    let days = store.partition_days("buckets_1m").await.expect("days");
    for d in today..=today + 2 {
        assert!(days.contains(&d), "day {d} created ahead: {days:?}");
    }
    let k = key("api", "/", "");
    // Three days in 1995 (late data), one write each, and one before 1970.
    let base = 788_918_400_000; // 1995-01-01T00:00Z
    for (i, t) in [base, base + DAY + 5, base + 2 * DAY + 7, -DAY / 2]
        .into_iter()
        .enumerate()
    {
        let out = store
            .ingest(write(
                "t",
                &format!("b{i}"),
                t,
                vec![minute_bucket("t", &k, t, &[1.0, 2.0], 0)],
            ))
            .await
            .expect("ingest");
        assert_eq!(out, IngestOutcome::Stored);
    }
    let days = store.partition_days("buckets_1m").await.expect("days");
    let d0 = base / DAY;
    for d in [d0, d0 + 1, d0 + 2, -1] {
        assert!(days.contains(&d), "partition for day {d}: {days:?}");
    }
    assert_eq!(minute_total(&store, "t").await, 8);
    // Retention drops the whole partitions that end by the cutoff (the
    // pre-1970 one and the first two 1995 days) and nothing else.
    let removed = store
        .drop_buckets_before(Resolution::Minute, base + 2 * DAY + 1)
        .await
        .expect("drop");
    assert_eq!(removed, 3, "rows of the dropped partitions");
    let days = store.partition_days("buckets_1m").await.expect("days");
    assert!(!days.contains(&d0) && !days.contains(&(d0 + 1)) && !days.contains(&-1));
    assert!(
        days.contains(&(d0 + 2)),
        "the partition holding the cutoff stays"
    );
    assert_eq!(
        schema
            .query_i64(&format!(
                "SELECT count(*) FROM pg_class WHERE relname = 'buckets_1m_d{d0}'"
            ))
            .await,
        0,
        "the partition table itself is gone (dropped, not emptied)"
    );
    assert_eq!(minute_total(&store, "t").await, 2);
    // Late data for a dropped day re-creates its partition.
    store
        .ingest(write(
            "t",
            "late",
            base,
            vec![minute_bucket("t", &k, base, &[3.0], 0)],
        ))
        .await
        .expect("late ingest");
    assert_eq!(minute_total(&store, "t").await, 3);
    // Another collector dropped a partition this store thinks exists: the
    // write re-creates it instead of failing.
    schema
        .execute(&format!("DROP TABLE buckets_1m_d{d0}"))
        .await;
    store
        .ingest(write(
            "t",
            "after-drop",
            base,
            vec![minute_bucket("t", &k, base, &[4.0], 0)],
        ))
        .await
        .expect("ingest after a foreign drop");
    assert_eq!(minute_total(&store, "t").await, 3);
    schema.drop().await;
}

#[tokio::test]
async fn concurrent_writers_merge_and_dedup_exactly() {
    let Some(schema) = TestSchema::create("race").await else {
        return;
    };
    // Two stores (two collectors) on one database, many writers each.
    let a: Arc<dyn Store> = Arc::new(schema.open().await.expect("a"));
    let b: Arc<dyn Store> = Arc::new(schema.open().await.expect("b"));
    let t = 1_000_000_000_000;
    let keys = [
        key("api", "/a", ""),
        key("api", "/b", ""),
        key("api", "/c", "web"),
    ];
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            // Each write touches every key, in a different order, so writers
            // contend on the same rows (and would deadlock without ordering).
            let mut buckets: Vec<Bucket> = keys
                .iter()
                .map(|k| minute_bucket("race", k, t, &[i as f64 + 1.0], 0))
                .collect();
            buckets.rotate_left(i as usize % 3);
            // Every batch id is sent twice, to both stores.
            let w = write("race", &format!("id{}", i / 2), t, buckets);
            store.ingest(w).await.expect("ingest")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.expect("task") == IngestOutcome::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 20, "each of the 20 batch ids stored once");
    let got = a
        .read_buckets(BucketQuery {
            tenant: "race".into(),
            service: None,
            resolution: Resolution::Minute,
            start_ms: 0,
            end_ms: i64::MAX,
            series: SeriesSelect::All,
        })
        .await
        .expect("read");
    assert_eq!(got.len(), 3);
    for bucket in &got {
        assert_eq!(bucket.stats.count, 20, "{:?}", bucket.key);
        assert_eq!(bucket.stats.duration_ms.count(), 20);
    }
    schema.drop().await;
}

#[tokio::test]
async fn hostile_names_round_trip_exactly() {
    let Some(schema) = TestSchema::create("hostile").await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(schema.open().await.expect("open"));
    external::hostile_round_trip(&*store, 1_000_000_000_000 + 7 * 60_000).await;
    schema.drop().await;
}

#[tokio::test]
async fn a_database_from_before_totals_gets_them_on_reopen() {
    let Some(schema) = TestSchema::create("totals").await else {
        return;
    };
    // The schema before total series, as a collector of that time left it.
    let store = PostgresStore::open_before_totals(&schema.url())
        .await
        .expect("open");
    assert!(store.schema_version().await.expect("version") < PostgresStore::SCHEMA_VERSION);
    let tenant = "old";
    let base = Resolution::Hour.floor(testing::BASE_MS);
    let mut routes: Vec<Bucket> = Vec::new();
    // Route rows only, as a collector before total series wrote them, at
    // every resolution.
    for (res, start) in [
        (Resolution::Minute, base + 60_000),
        (Resolution::Minute, base + 120_000),
        (Resolution::FiveMinutes, base),
        (Resolution::Hour, base),
        (Resolution::Hour, base + 2 * DAY),
    ] {
        let mut period = Vec::new();
        for (route, class, caller, n) in [
            ("/a", 2u8, "", 4usize),
            ("/a", 5, "web", 3),
            ("/b", 2, "", 6),
            ("/b", 2, "web", 2),
        ] {
            let mut k = key("api", route, caller);
            k.status_class = class;
            let durations: Vec<f64> = (0..n).map(|i| i as f64 * 11.0 + 0.5).collect();
            let mut b = minute_bucket(tenant, &k, start, &durations, u64::from(class == 5));
            b.resolution = res;
            b.start_ms = start;
            period.push(b);
        }
        routes.extend(period.clone());
        if res == Resolution::Minute {
            let id = format!("m{start}");
            store
                .ingest(write(tenant, &id, start, period))
                .await
                .expect("ingest");
        } else {
            let p = vitals_collector::DirtyPeriod {
                resolution: res,
                tenant: tenant.into(),
                start_ms: start,
                generation: 0,
            };
            store.write_rollup(p, period).await.expect("rollup");
        }
    }
    drop(store);
    let store = schema.open().await.expect("reopen");
    assert_eq!(
        store.schema_version().await.expect("version"),
        PostgresStore::SCHEMA_VERSION
    );
    for res in Resolution::ALL {
        let mut got = store
            .read_buckets(BucketQuery {
                tenant: tenant.into(),
                service: Some("api".into()),
                resolution: res,
                start_ms: i64::MIN,
                end_ms: i64::MAX,
                series: SeriesSelect::Totals,
            })
            .await
            .expect("read totals");
        got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
        let mine: Vec<Bucket> = routes
            .iter()
            .filter(|b| b.resolution == res)
            .cloned()
            .collect();
        let want = vitals_collector::totals_of(&mine);
        assert_eq!(got.len(), want.len(), "{res}: total series");
        assert!(!want.is_empty());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.start_ms, &g.key), (w.start_ms, &w.key), "{res}");
            testing::assert_stats_eq(&g.stats, &w.stats, &format!("{res} {:?}", g.key));
        }
    }
    schema.drop().await;
}

#[tokio::test]
async fn reading_totals_uses_the_partial_indexes() {
    let Some(schema) = TestSchema::create("plan").await else {
        return;
    };
    let store = schema.open().await.expect("open");
    let base = Resolution::Hour.floor(testing::BASE_MS);
    // A day of hour buckets, 20 services × 50 routes, with their totals.
    for h in 0..24 {
        let start = base + h * 3_600_000;
        let mut period = Vec::new();
        for s in 0..20 {
            for r in 0..50 {
                let mut b = minute_bucket(
                    "plan",
                    &key(&format!("svc-{s}"), &format!("/r/{r}"), ""),
                    start,
                    &[1.0, 2.0],
                    0,
                );
                b.resolution = Resolution::Hour;
                b.start_ms = start;
                period.push(b);
            }
        }
        let p = vitals_collector::DirtyPeriod {
            resolution: Resolution::Hour,
            tenant: "plan".into(),
            start_ms: start,
            generation: 0,
        };
        store
            .write_rollup(p, vitals_collector::with_totals(period))
            .await
            .expect("rollup");
    }
    schema.execute("ANALYZE buckets_1h").await;
    let end = base + 24 * 3_600_000;
    for (what, filter) in [
        ("every service", String::new()),
        ("one service", " AND service = 'svc-3'".to_string()),
    ] {
        let plan = schema
            .query_strings(&format!(
                "EXPLAIN SELECT * FROM buckets_1h WHERE tenant = 'plan'{filter}
                   AND start_ms >= {base} AND start_ms < {end} AND method = ''"
            ))
            .await
            .join("\n");
        let used: Vec<&str> = plan
            .lines()
            .filter_map(|l| {
                l.split_once(" using ")
                    .or_else(|| l.split_once("Index Scan on "))
                    .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""))
            })
            .collect();
        assert!(
            !used.is_empty() && !plan.contains("Seq Scan"),
            "{what}:\n{plan}"
        );
        for index in used {
            let def = schema
                .query_strings(&format!(
                    "SELECT indexdef FROM pg_indexes
                       WHERE schemaname = '{}' AND indexname = '{index}'",
                    schema.name
                ))
                .await
                .join("");
            assert!(
                def.contains("WHERE (method = ''::text)"),
                "{what}: {index} is {def}\n{plan}"
            );
        }
    }
    schema.drop().await;
}
