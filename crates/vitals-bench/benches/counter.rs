//! Increment on a pre-resolved, unlabelled counter handle, every library in
//! one group; then the batch (single-thread) handles.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn counter_inc(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_inc");

    let registry = vitals::Registry::new();
    let counter = registry
        .counter(("requests_total", "Requests"))
        .expect("valid name");
    g.bench_function("vitals", |b| b.iter(|| black_box(&counter).inc()));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let counter = metrics::with_local_recorder(&recorder, || metrics::counter!("requests_total"));
    g.bench_function("metrics", |b| b.iter(|| black_box(&counter).increment(1)));

    let counter = prometheus::IntCounter::new("requests_total", "Requests").expect("valid name");
    g.bench_function("prometheus", |b| b.iter(|| black_box(&counter).inc()));

    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    g.bench_function("prometheus-client", |b| {
        b.iter(|| black_box(&counter).inc())
    });

    let counter = measured::Counter::new();
    g.bench_function("measured", |b| b.iter(|| black_box(&counter).inc()));

    let counter = fastmetrics::metrics::counter::Counter::<u64>::default();
    g.bench_function("fastmetrics", |b| b.iter(|| black_box(&counter).inc()));

    g.finish();
}

fn counter_batch_inc(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_batch_inc");

    // The harness' own per-iteration cost, for reading the sub-ns figures.
    g.bench_function("empty loop (harness floor)", |b| b.iter(|| black_box(())));

    let registry = vitals::Registry::new();
    let counter = registry
        .counter(("requests_total", "Requests"))
        .expect("valid name");
    let local = counter.local();
    g.bench_function("vitals LocalCounter", |b| {
        b.iter(|| black_box(&local).inc())
    });
    drop(local);

    let counter = prometheus::IntCounter::new("requests_total", "Requests").expect("valid name");
    let local = counter.local();
    g.bench_function("prometheus LocalIntCounter", |b| {
        b.iter(|| black_box(&local).inc())
    });
    local.flush();

    g.finish();
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = counter_inc, counter_batch_inc
}
criterion_main!(benches);
