//! Alert evaluation on SQLite: one round of 1,000 rules over 20 services ×
//! 50 routes (half of the rules scoped to one route, half to a whole
//! service; signals error_rate, p95_ms, p99_ms, rate, apdex and no_data;
//! windows 5m, 15m and 1h), plus the built-in health rule of each service.
//! An hour of minute buckets (100 requests per route and minute, as ingest
//! writes them), rolled up to 5-minute buckets by the rollup job. Each
//! round runs 15 s after the previous one, so firing alerts are stored
//! again as a live collector's are. Goal: a round well under the 15 s
//! schedule (≤ 1 s). Run:
//! `cargo bench -p vitals-collector --bench alerting`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use vitals::Sketch;
use vitals_collector::config::RuleSpec;
use vitals_collector::{
    Bucket, BucketStats, Collector, CollectorConfig, IngestWrite, Resolution, SeriesKey, now_ms,
    with_totals,
};

const SERVICES: usize = 20;
const ROUTES: usize = 50;
const RULES: usize = 1000;

fn sketch(seed: &mut u64, n: usize) -> Sketch {
    let mut sk = Sketch::new();
    for _ in 0..n {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (*seed >> 11) as f64 / (1u64 << 53) as f64;
        sk.record((0.5f64.ln() + u * (5000.0f64 / 0.5).ln()).exp());
    }
    sk
}

fn rules() -> Vec<RuleSpec> {
    let signals = [
        ("error_rate", Some(">"), Some(0.005)),
        ("p95_ms", Some(">"), Some(3000.0)),
        ("p99_ms", Some(">"), Some(10_000.0)),
        ("rate", Some("<"), Some(1.0)),
        ("apdex", Some("<"), Some(0.9)),
        ("no_data", None, None),
    ];
    let windows = ["5m", "15m", "1h"];
    (0..RULES)
        .map(|i| {
            let (signal, op, threshold) = signals[i % signals.len()];
            let route = (i % 2 == 0).then(|| format!("/route/{}", (i / 2) % ROUTES));
            RuleSpec {
                tenant: Some("bench".into()),
                name: format!("rule-{i}"),
                service: format!("svc-{}", i % SERVICES),
                method: route.as_ref().map(|_| "GET".to_string()),
                route,
                signal: signal.into(),
                op: op.map(str::to_string),
                threshold,
                window: windows[(i / 7) % windows.len()].into(),
                for_: "1m".into(),
                keep_firing_for: "0s".into(),
                labels: BTreeMap::from([("team".to_string(), "bench".to_string())]),
                annotations: BTreeMap::from([(
                    "summary".to_string(),
                    "value {{ $value }} on {{ $labels.service }}".to_string(),
                )]),
            }
        })
        .collect()
}

fn alerting(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerting.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = CollectorConfig {
        store: format!("sqlite://{}", db.display()),
        ..Default::default()
    };
    config.alerting.rules = rules();
    let (collector, now) = rt.block_on(async {
        let collector = Collector::open(config).await.unwrap();
        let store = collector.store().clone();
        let now = now_ms();
        let mut seed = 7u64;
        for m in 0..61 {
            let t = Resolution::Minute.floor(now) - m * 60_000;
            for s in 0..SERVICES {
                let buckets: Vec<Bucket> = (0..ROUTES)
                    .map(|r| Bucket {
                        tenant: "bench".into(),
                        resolution: Resolution::Minute,
                        start_ms: t,
                        key: SeriesKey {
                            service: format!("svc-{s}"),
                            method: "GET".into(),
                            route: format!("/route/{r}"),
                            status_class: 2,
                            caller: String::new(),
                        },
                        stats: BucketStats {
                            count: 100,
                            errors: 1,
                            satisfied: 80,
                            tolerating: 10,
                            duration_ms: sketch(&mut seed, 100),
                            last_seen_ms: now,
                        },
                    })
                    .collect();
                let w = IngestWrite {
                    tenant: "bench".into(),
                    service: format!("svc-{s}"),
                    batch_id: None,
                    received_ms: now,
                    buckets: with_totals(buckets),
                    samples: vec![],
                    custom: vec![],
                };
                store.ingest(w).await.unwrap();
            }
        }
        // Minute buckets → 5-minute buckets, which the 1h window reads.
        collector.run_jobs_once(now).await.unwrap();
        (collector, now)
    });
    let a = collector.alerting().clone();
    let round = AtomicI64::new(0);
    let at = || now + round.fetch_add(1, Ordering::Relaxed) * 15_000;
    // The first round also stores every alert's first state.
    let started = Instant::now();
    let report = rt.block_on(a.evaluate(at())).unwrap();
    println!(
        "first round: {} rules, {} changes, {:?}",
        report.rules,
        report.changes,
        started.elapsed()
    );
    let mut group = c.benchmark_group("alerting");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("round_1000_rules_20x50_sqlite", |b| {
        b.iter(|| rt.block_on(a.evaluate(at())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, alerting);
criterion_main!(benches);
