//! Recording one value on a pre-resolved histogram handle. Every library gets
//! the same classic bucket bounds (vitals' defaults, 14 bounds) and cycles
//! through the same 1024 log-uniform latencies between 100 µs and 2 s.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use vitals_bench::{BUCKETS, LATENCY_COUNT, latencies};

/// Number of classic bounds, for measured's const-generic histogram.
const N: usize = 14;

fn histogram_record(c: &mut Criterion) {
    let values = latencies();
    let next = {
        let values = values.clone();
        move |i: &mut usize| {
            let v = values[*i & (LATENCY_COUNT - 1)];
            *i = i.wrapping_add(1);
            black_box(v)
        }
    };
    let mut g = c.benchmark_group("histogram_record");

    let registry = vitals::Registry::new();
    let h = registry
        .histogram(vitals::Options::new("latency_seconds", "Latency").buckets(BUCKETS))
        .expect("valid histogram");
    g.bench_function("vitals", |b| {
        let mut i = 0;
        b.iter(|| black_box(&h).record(next(&mut i)))
    });

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .expect("valid buckets")
        .build_recorder();
    let handle = recorder.handle();
    let h = metrics::with_local_recorder(&recorder, || metrics::histogram!("latency_seconds"));
    g.bench_function("metrics", |b| {
        let mut i = 0;
        // The exporter appends every value to a lock-free list that upkeep
        // drains; drain between samples, outside the timed loop, so memory
        // stays bounded.
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(&h).record(next(&mut i));
            }
            let elapsed = start.elapsed();
            handle.run_upkeep();
            elapsed
        })
    });

    let h = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("latency_seconds", "Latency").buckets(BUCKETS.to_vec()),
    )
    .expect("valid histogram");
    g.bench_function("prometheus", |b| {
        let mut i = 0;
        b.iter(|| black_box(&h).observe(next(&mut i)))
    });

    let h = prometheus_client::metrics::histogram::Histogram::new(BUCKETS.iter().copied());
    g.bench_function("prometheus-client", |b| {
        let mut i = 0;
        b.iter(|| black_box(&h).observe(next(&mut i)))
    });

    let bounds: [f64; N] = BUCKETS.try_into().expect("14 bounds");
    let h = measured::Histogram::<N>::with_metadata(
        measured::metric::histogram::Thresholds::with_buckets(bounds),
    );
    g.bench_function("measured", |b| {
        let mut i = 0;
        b.iter(|| black_box(&h).observe(next(&mut i)))
    });

    let h = fastmetrics::metrics::histogram::Histogram::new(BUCKETS.iter().copied());
    g.bench_function("fastmetrics", |b| {
        let mut i = 0;
        b.iter(|| black_box(&h).observe(next(&mut i)))
    });

    g.finish();
    black_box(values);
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = histogram_record
}
criterion_main!(benches);
