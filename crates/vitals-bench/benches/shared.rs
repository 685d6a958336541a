//! Metrics shared by prefork workers (the core's `shared` storage, on in
//! this crate through vitals-server's default `prefork` feature):
//!
//! - scrape: rendering 16 workers' slots of 10 000 counter series each
//!   (merged into 10 000) against one process's registry of 160 000
//!   series; the goal is at most 2x.
//! - increment: `inc()` on a counter whose cell is in a worker's slot
//!   against a plain counter; the goal is at most 1.2x.
//!
//! The 16 workers are 16 registries of one process attached to 16 slots:
//! the bytes read are the same as from 16 processes' mappings.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vitals::{Format, Options, Registry, SharedRegion};

const WORKERS: usize = 16;
const PER_WORKER: usize = 10_000;

fn series(r: &Registry, n: usize) -> vitals::CounterVec {
    let c = r
        .counter_vec(
            Options::new("requests_total", "Requests").cardinality_limit(n + 1),
            &["route"],
        )
        .expect("valid family");
    for i in 0..n {
        c.get(&[format!("/route/{i}")]).add(i as u64 + 1);
    }
    c
}

fn scrape(c: &mut Criterion) {
    let mut g = c.benchmark_group("shared_scrape");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let single = Registry::new();
    let _keep = series(&single, WORKERS * PER_WORKER);
    g.bench_function("single_process_160k", |b| {
        b.iter(|| black_box(single.render(Format::Prometheus)))
    });
    let dir = std::env::temp_dir().join(format!("vitals-bench-shared-{}", std::process::id()));
    let region = SharedRegion::create(&dir, WORKERS, 16 << 20).expect("run directory");
    let workers: Vec<Registry> = (0..WORKERS)
        .map(|w| region.registry(w).expect("slot"))
        .collect();
    let _families: Vec<_> = workers.iter().map(|r| series(r, PER_WORKER)).collect();
    let out = workers[0].render(Format::Prometheus);
    assert!(String::from_utf8_lossy(&out).contains("requests_total{route=\"/route/9\"} 160\n"));
    g.bench_function("16_workers_x_10k", |b| {
        b.iter(|| black_box(workers[3].render(Format::Prometheus)))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn increment(c: &mut Criterion) {
    let mut g = c.benchmark_group("shared_increment");
    let plain = vitals::Counter::new();
    g.bench_function("single_process", |b| b.iter(|| black_box(&plain).inc()));
    let dir = std::env::temp_dir().join(format!("vitals-bench-inc-{}", std::process::id()));
    let region = SharedRegion::create(&dir, 2, 0).expect("run directory");
    let registry = region.registry(0).expect("slot");
    let shared = registry.counter(("hits_total", "Hits")).expect("valid");
    g.bench_function("worker_slot", |b| b.iter(|| black_box(&shared).inc()));
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = increment, scrape
}
criterion_main!(benches);
