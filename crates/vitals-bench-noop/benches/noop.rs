//! `vitals::Counter::inc` in the no-op build against an empty loop body.
//! Run alone: `cargo bench -p vitals-bench-noop` (see the crate docs).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn noop(c: &mut Criterion) {
    eprintln!("vitals::ENABLED = {}", vitals::ENABLED);
    let mut g = c.benchmark_group("noop_counter_inc");

    g.bench_function("empty loop body (baseline)", |b| b.iter(|| black_box(())));

    let registry = vitals::Registry::new();
    let counter = registry
        .counter(("requests_total", "Requests"))
        .expect("valid name");
    g.bench_function("vitals Counter::inc (no-op build)", |b| {
        b.iter(|| black_box(&counter).inc())
    });

    let local = counter.local();
    g.bench_function("vitals LocalCounter::inc (no-op build)", |b| {
        b.iter(|| black_box(&local).inc())
    });

    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(40);
    targets = noop
}
criterion_main!(benches);
