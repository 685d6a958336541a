//! Hot data and its flush: answered from Redis until flushed, flushed
//! exactly once (also across a crash between flush steps), batch ids
//! expiring after the dedup window, and reads (recent samples, routes or
//! totals) that merge hot and stored data without duplicates.

use crate::external;
use crate::{assert_same, config, expected, memory, read, recent_buckets, tier, total, write};
use vitals_collector::model::{
    Bucket, BucketQuery, IngestOutcome, Resolution, Sample, SeriesSelect,
};
use vitals_collector::now_ms;
use vitals_collector::store::{HotTierConfig, Store};

#[tokio::test]
async fn hot_data_is_answered_from_redis_and_flushed_exactly_once() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_flush");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    let mut parts = Vec::new();
    for i in 0..6u64 {
        let buckets = recent_buckets("t", now, 5, i);
        let w = write("t", Some(&format!("b{i}")), now, buckets.clone());
        assert_eq!(
            hot.ingest(w.clone()).await.expect("ingest"),
            IngestOutcome::Stored
        );
        assert_eq!(
            hot.ingest(w).await.expect("retry"),
            IngestOutcome::Duplicate
        );
        parts.extend(buckets);
    }
    let (from, to) = (now - 3_600_000, now + 60_000);
    let want = expected("t", &parts, Resolution::Minute);
    assert_same(
        &read(&hot, "t", Resolution::Minute, from, to).await,
        &want,
        "from Redis",
    );
    assert!(
        read(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty(),
        "nothing reaches the store before its minute is complete"
    );
    // Five-minute and hour reads over hot minutes merge them exactly.
    for res in [Resolution::FiveMinutes, Resolution::Hour] {
        let lo = res.floor(from);
        assert_same(
            &read(&hot, "t", res, lo, to).await,
            &expected("t", &parts, res),
            &format!("{res} from hot minutes"),
        );
    }
    // Flush as if every minute had ended: the store gets exactly the data,
    // the hot tier still answers the same (no double counting).
    let report = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert!(
        report.sealed >= 4 && report.flushed == report.sealed,
        "{report:?}"
    );
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "in the store",
    );
    assert_same(
        &read(&hot, "t", Resolution::Minute, from, to).await,
        &want,
        "after flush",
    );
    let again = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert_eq!(again.flushed, 0, "nothing left to flush: {again:?}");
    // Rollups read through the hot tier and write into the store.
    vitals_collector::rollup::rollup_pass(&hot)
        .await
        .expect("rollup");
    assert_eq!(
        total(
            &read(
                &hot,
                "t",
                Resolution::FiveMinutes,
                Resolution::FiveMinutes.floor(from),
                to
            )
            .await
        ),
        total(&parts)
    );
    // Services and recent samples come from both tiers.
    let services = hot.services("t".into()).await.expect("services");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].last_seen_ms, now);
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn a_crash_between_flush_steps_loses_and_doubles_nothing() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_crash");
    let store = memory().await;
    let now = now_ms();
    let later = now + 3 * 60_000;
    let (from, to) = (now - 3_600_000, now + 60_000);
    let cfg = config(&prefix);
    let orphan_age = cfg.orphan_after_ms;

    // 1. Sealed, then the collector died before writing the store.
    let first = tier(&url, store.clone(), cfg.clone()).await;
    let p1 = recent_buckets("t", now, 6, 1);
    first
        .ingest(write("t", Some("one"), now, p1.clone()))
        .await
        .expect("ingest");
    let ids = first.seal_due_then_crash(later).await.expect("seal");
    assert!(!ids.is_empty());
    drop(first);
    assert!(
        read(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty()
    );
    // A new collector reads the data (Redis still has it) …
    let second = tier(&url, store.clone(), cfg.clone()).await;
    let want = expected("t", &p1, Resolution::Minute);
    assert_same(
        &read(&second, "t", Resolution::Minute, from, to).await,
        &want,
        "sealed, unflushed",
    );
    // … and takes over the orphaned snapshots once they are old enough.
    let early = second.flush_due(later).await.expect("flush");
    assert_eq!(
        early.flushed, 0,
        "a fresh seal belongs to its collector a while"
    );
    let report = second.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(report.flushed, ids.len(), "{report:?}");
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "taken over",
    );

    // 2. Written to the store, then the collector died before cleaning up.
    let p2 = recent_buckets("t", now, 6, 2);
    second
        .ingest(write("t", Some("two"), now, p2.clone()))
        .await
        .expect("ingest");
    let ids = second.seal_due_then_crash(later).await.expect("seal");
    for id in &ids {
        second.flush_then_crash(id).await.expect("write");
    }
    drop(second);
    let all: Vec<Bucket> = p1.iter().chain(&p2).cloned().collect();
    let want = expected("t", &all, Resolution::Minute);
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "written once",
    );
    let third = tier(&url, store.clone(), cfg).await;
    let report = third.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(report.flushed, ids.len(), "the retry runs: {report:?}");
    assert_same(
        &read(&*store, "t", Resolution::Minute, from, to).await,
        &want,
        "the retried write was a duplicate in the store",
    );
    assert_same(
        &read(&third, "t", Resolution::Minute, from, to).await,
        &want,
        "hot view",
    );
    let idle = third.flush_due(later + orphan_age).await.expect("flush");
    assert_eq!(idle, Default::default(), "nothing left behind");
    third.clear().await.expect("clear");
}

#[tokio::test]
async fn batch_ids_expire_after_the_dedup_window() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_dedup");
    let cfg = HotTierConfig {
        dedup_ms: Some(60_000),
        ..config(&prefix)
    };
    let hot = tier(&url, memory().await, cfg).await;
    let now = now_ms();
    let w = write("t", Some("x"), now, recent_buckets("t", now, 1, 0));
    assert_eq!(
        hot.ingest(w.clone()).await.expect("1"),
        IngestOutcome::Stored
    );
    hot.flush_due(now + 30_000).await.expect("flush");
    assert_eq!(
        hot.ingest(w.clone()).await.expect("2"),
        IngestOutcome::Duplicate
    );
    hot.flush_due(now + 61_000).await.expect("flush");
    assert_eq!(
        hot.ingest(w).await.expect("3"),
        IngestOutcome::Stored,
        "remembered for the dedup window only"
    );
    hot.clear().await.expect("clear");
}

fn sample(ts: i64, n: usize) -> Sample {
    Sample {
        timestamp_ms: ts,
        instance: "i-1".into(),
        method: "GET".into(),
        path: format!("/users/{n}"),
        route: "/users/{id}".into(),
        status: 200,
        duration_ms: n as f64,
        caller: None,
        trace_id: None,
    }
}

#[tokio::test]
async fn recent_samples_merge_hot_and_stored_without_duplicates() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_samples");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    // Old samples (late data, straight to the store) and recent ones.
    let old: Vec<Sample> = (0..5)
        .map(|i| sample(now - 3_600_000 + i, i as usize))
        .collect();
    let new: Vec<Sample> = (0..5)
        .map(|i| sample(now - 60_000 + i, 10 + i as usize))
        .collect();
    let mut w = write("t", Some("old"), now - 3_600_000, vec![]);
    w.samples = old.clone();
    hot.ingest(w).await.expect("old");
    let mut w = write("t", Some("new"), now, vec![]);
    w.samples = new.clone();
    hot.ingest(w).await.expect("new");
    let want: Vec<Sample> = new.iter().rev().chain(old.iter().rev()).cloned().collect();
    for flushed in [false, true] {
        if flushed {
            hot.flush_due(now + 3 * 60_000).await.expect("flush");
            assert_eq!(
                store
                    .recent_samples("t".into(), "api".into(), 100)
                    .await
                    .expect("store")
                    .len(),
                10,
                "the store got every sample once"
            );
        }
        for limit in [3, 5, 7, 10, 50] {
            let got = hot
                .recent_samples("t".into(), "api".into(), limit)
                .await
                .expect("recent");
            let n = limit.min(10);
            assert_eq!(got, want[..n].to_vec(), "limit {limit}, flushed {flushed}");
        }
    }
    hot.clear().await.expect("clear");
}

#[tokio::test]
async fn hot_reads_select_routes_or_totals_before_and_after_flushing() {
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_totals");
    let store = memory().await;
    let hot = tier(&url, store.clone(), config(&prefix)).await;
    let now = now_ms();
    let mut parts = Vec::new();
    for i in 0..5u64 {
        // As ingest writes them: route series plus their totals.
        let buckets = vitals_collector::with_totals(recent_buckets("t", now, 6, i));
        hot.ingest(write("t", Some(&format!("b{i}")), now, buckets.clone()))
            .await
            .expect("ingest");
        parts.extend(buckets);
    }
    assert!(parts.iter().any(|b| b.key.is_total()));
    let (from, to) = (now - 3_600_000, now + 60_000);
    let check = |what: &'static str| {
        let (hot, parts) = (&hot, &parts);
        async move {
            for res in Resolution::ALL {
                for series in [
                    SeriesSelect::Routes,
                    SeriesSelect::Totals,
                    SeriesSelect::All,
                ] {
                    let mut got = hot
                        .read_buckets(BucketQuery {
                            tenant: "t".into(),
                            service: Some("api".into()),
                            resolution: res,
                            start_ms: res.floor(from),
                            end_ms: to,
                            series,
                        })
                        .await
                        .expect("read");
                    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
                    let mine: Vec<Bucket> = parts
                        .iter()
                        .filter(|b| series.includes(&b.key))
                        .cloned()
                        .collect();
                    assert_same(
                        &got,
                        &expected("t", &mine, res),
                        &format!("{what}: {res} {series:?}"),
                    );
                }
            }
        }
    };
    check("from Redis").await;
    let report = hot.flush_due(now + 3 * 60_000).await.expect("flush");
    assert!(report.flushed > 0, "{report:?}");
    check("after the flush").await;
    // The store got totals and routes as ordinary series.
    let stored = read(&*store, "t", Resolution::Minute, from, to).await;
    assert_same(
        &stored,
        &expected("t", &parts, Resolution::Minute),
        "flushed to the store",
    );
    hot.clear().await.expect("clear");
}
