//! Custom points in the hot tier: shared between collectors and flushed
//! exactly once.

use crate::external;
use crate::{config, memory, tier, write};
use std::sync::Arc;
use vitals_collector::model::{IngestOutcome, IngestWrite, Resolution};
use vitals_collector::now_ms;
use vitals_collector::store::Store;

async fn read_custom_points(
    store: &dyn Store,
    tenant: &str,
    res: Resolution,
    from: i64,
    to: i64,
) -> Vec<vitals_collector::model::CustomPoint> {
    let mut got = store
        .read_custom(vitals_collector::model::CustomQuery {
            tenant: tenant.into(),
            service: None,
            name: None,
            resolution: res,
            start_ms: from,
            end_ms: to,
        })
        .await
        .expect("read custom");
    got.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
    got
}

#[tokio::test]
async fn custom_points_are_shared_hot_and_flushed_exactly_once() {
    use vitals_collector::model::{CustomKind, CustomPoint, CustomStats};
    use vitals_collector::testing::custom_point;
    let Some(url) = external::redis_url().await else {
        return;
    };
    let prefix = external::random_name("vitals_test_custom");
    let store = memory().await;
    let a = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let b = Arc::new(tier(&url, store.clone(), config(&prefix)).await);
    let now = now_ms();
    let m = Resolution::Minute.floor(now) - 2 * 60_000;
    // Values of one gauge and one counter, pushed alternately through both
    // collectors, some out of time order (late, cold points go through the
    // store suite run over the hot tier).
    let pushes: Vec<(i64, CustomKind, f64)> = vec![
        (m + 10_000, CustomKind::Gauge, 5.0),
        (m + 50_000, CustomKind::Gauge, -3.5),
        (m + 30_000, CustomKind::Gauge, 12.25),
        (m + 60_000 + 5_000, CustomKind::Gauge, 0.1),
        (m + 10_000, CustomKind::Counter, 1e15),
        (m + 40_000, CustomKind::Counter, 1e15 + 7.0),
    ];
    let mut parts: Vec<CustomPoint> = Vec::new();
    for (i, (at, kind, value)) in pushes.into_iter().enumerate() {
        let name = if kind == CustomKind::Gauge {
            "g"
        } else {
            "c_total"
        };
        let p = custom_point(
            "t",
            "api",
            name,
            &[("k", "v \u{1f}\"")],
            "i-1",
            kind,
            value,
            at,
        );
        let w = IngestWrite {
            custom: vec![p.clone()],
            ..write("t", Some(&format!("c{i}")), now, vec![])
        };
        let tier = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            tier.ingest(w.clone()).await.expect("ingest"),
            IngestOutcome::Stored
        );
        // The retry reaches the other collector: a duplicate.
        let other = if i % 2 == 0 { &b } else { &a };
        assert_eq!(
            other.ingest(w).await.expect("retry"),
            IngestOutcome::Duplicate
        );
        parts.push(p);
    }
    let want = |res: Resolution| -> Vec<(i64, String, CustomStats)> {
        let mut by: std::collections::BTreeMap<(i64, String), CustomStats> = Default::default();
        for p in &parts {
            by.entry((res.floor(p.start_ms), p.key.name.clone()))
                .and_modify(|s| s.merge(&p.stats))
                .or_insert(p.stats);
        }
        by.into_iter().map(|((t, n), s)| (t, n, s)).collect()
    };
    let got = |points: Vec<CustomPoint>| -> Vec<(i64, String, CustomStats)> {
        points
            .into_iter()
            .map(|p| (p.start_ms, p.key.name, p.stats))
            .collect()
    };
    let (from, to) = (now - 3_600_000, now + 60_000);
    let minute = want(Resolution::Minute);
    assert_eq!(minute.len(), 3);
    let g0 = minute
        .iter()
        .find(|(t, n, _)| *t == m && n == "g")
        .expect("g");
    assert_eq!(
        g0.2,
        CustomStats {
            kind: CustomKind::Gauge,
            last: -3.5,
            last_ms: m + 50_000,
            min: -3.5,
            max: 12.25
        }
    );
    for tier in [&a, &b] {
        assert_eq!(
            got(read_custom_points(&**tier, "t", Resolution::Minute, from, to).await),
            minute,
            "both collectors answer the same from Redis"
        );
        for res in [Resolution::FiveMinutes, Resolution::Hour] {
            assert_eq!(
                got(read_custom_points(&**tier, "t", res, res.floor(from), to).await),
                want(res),
                "{res} merged from hot minutes"
            );
        }
    }
    assert!(
        read_custom_points(&*store, "t", Resolution::Minute, from, to)
            .await
            .is_empty(),
        "nothing in the store before its minute is flushed"
    );
    let later = now + 3 * 60_000;
    let (ra, rb) = tokio::join!(a.flush_due(later), b.flush_due(later));
    assert!(ra.expect("flush a").sealed + rb.expect("flush b").sealed >= 2);
    assert_eq!(
        got(read_custom_points(&*store, "t", Resolution::Minute, from, to).await),
        minute,
        "the store holds every point exactly once"
    );
    assert_eq!(
        got(read_custom_points(&*a, "t", Resolution::Minute, from, to).await),
        minute,
        "after the flush"
    );
    // Rollups through the hot tier write exact five-minute points.
    vitals_collector::rollup::rollup_pass(&*a)
        .await
        .expect("rollup");
    assert_eq!(
        got(read_custom_points(
            &*store,
            "t",
            Resolution::FiveMinutes,
            Resolution::FiveMinutes.floor(from),
            to
        )
        .await),
        want(Resolution::FiveMinutes),
        "five-minute rollup in the store"
    );
    a.clear().await.expect("clear");
}
