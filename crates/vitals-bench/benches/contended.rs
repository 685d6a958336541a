//! Two threads incrementing one shared series at once.
//!
//! Each sample spawns two threads that wait on a barrier, then each does
//! `iters` increments; the time is taken from the barrier release to the
//! last thread finishing. So the reported time per iteration is the wall
//! time for one increment on each of the two threads (aggregate throughput
//! is two increments per reported interval).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const THREADS: usize = 2;

/// Runs `work(iters)` on `THREADS` threads started together and returns the
/// wall time from the start signal until all are done. `work` gets its thread
/// index and the number of increments to do.
fn run_threads(iters: u64, work: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    work(iters);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("worker thread");
        }
        start.elapsed()
    })
}

fn contended_inc(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_inc_2_threads");

    let registry = vitals::Registry::new();
    let counter = registry
        .counter(("requests_total", "Requests"))
        .expect("valid name");
    g.bench_function("vitals Counter", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).inc();
                }
            })
        })
    });

    let sharded = registry
        .sharded_counter(("sharded_requests_total", "Requests"))
        .expect("valid name");
    g.bench_function("vitals Counter (sharded)", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&sharded).inc();
                }
            })
        })
    });

    g.bench_function("vitals LocalCounter per thread", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                let local = counter.local();
                for _ in 0..n {
                    black_box(&local).inc();
                }
            })
        })
    });

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let counter = metrics::with_local_recorder(&recorder, || metrics::counter!("requests_total"));
    g.bench_function("metrics", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).increment(1);
                }
            })
        })
    });

    let counter = prometheus::IntCounter::new("requests_total", "Requests").expect("valid name");
    g.bench_function("prometheus", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).inc();
                }
            })
        })
    });
    g.bench_function("prometheus LocalIntCounter per thread", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                let local = counter.local();
                for _ in 0..n {
                    black_box(&local).inc();
                }
                local.flush();
            })
        })
    });

    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    g.bench_function("prometheus-client", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).inc();
                }
            })
        })
    });

    let counter = measured::Counter::new();
    g.bench_function("measured", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).inc();
                }
            })
        })
    });

    let counter = fastmetrics::metrics::counter::Counter::<u64>::default();
    g.bench_function("fastmetrics", |b| {
        b.iter_custom(|iters| {
            run_threads(iters, |n| {
                for _ in 0..n {
                    black_box(&counter).inc();
                }
            })
        })
    });

    g.finish();
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = contended_inc
}
criterion_main!(benches);
