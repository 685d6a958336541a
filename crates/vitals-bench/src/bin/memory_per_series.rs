//! Heap bytes held per labelled series, counters and histograms, at 10k and
//! 100k series, for vitals and the peer crates.
//!
//! A counting global allocator wraps the system one. For each library and
//! size this creates one family with one label, then `N` series with
//! distinct values, records once into each (a counter: one increment; a
//! histogram: one value, 50 ms), and reports the bytes still allocated
//! afterwards per series (allocated minus freed: what the series keep, the
//! family's tables included; transient buffers do not count). Label values
//! are made before counting starts; a library that needs an owned key gets
//! it built inside the counted region, since it keeps that allocation.
//!
//! Histograms get the same 14 classic bounds everywhere (vitals' defaults).
//! vitals' histogram also keeps a sketch for quantiles whose memory grows
//! with the powers of two its values span, so it is measured twice: one
//! value per series, and five values from 1 ms to 1 s (ten octaves, a
//! realistic latency spread).
//!
//! Run: `cargo run --release -p vitals-bench --bin memory_per_series`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use vitals_bench::BUCKETS;
use vitals_bench::labels::{Fm1, PcOwned1};

/// The system allocator, counting what passes through it.
struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// only atomics on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes retained per series by `create`, which makes `n` series.
fn per_series(n: usize, create: impl FnOnce()) -> f64 {
    let a0 = ALLOCATED.load(Relaxed);
    let f0 = FREED.load(Relaxed);
    create();
    let retained = (ALLOCATED.load(Relaxed) - a0) as f64 - (FREED.load(Relaxed) - f0) as f64;
    retained / n as f64
}

/// One latency: 50 ms.
const VALUE: f64 = 0.05;
/// Five latencies over ten octaves.
const SPREAD: [f64; 5] = [0.001, 0.008, 0.05, 0.25, 1.0];

fn counters(values: &[String]) -> Vec<(&'static str, f64)> {
    let n = values.len();
    let mut rows = Vec::new();

    let registry = vitals::Registry::new();
    let fam = registry
        .counter_vec(
            vitals::Options::new("series_total", "Series").cardinality_limit(n + 1),
            &["value"],
        )
        .expect("valid family");
    rows.push((
        "vitals",
        per_series(n, || {
            for v in values {
                fam.get(&[v.as_str()]).inc();
            }
        }),
    ));
    assert_eq!(fam.len(), n);
    drop((fam, registry));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    rows.push((
        "metrics",
        per_series(n, || {
            metrics::with_local_recorder(&recorder, || {
                for v in values {
                    metrics::counter!("series_total", "value" => v.clone()).increment(1);
                }
            })
        }),
    ));
    drop(recorder);

    let fam =
        prometheus::IntCounterVec::new(prometheus::Opts::new("series_total", "Series"), &["value"])
            .expect("valid family");
    rows.push((
        "prometheus",
        per_series(n, || {
            for v in values {
                fam.with_label_values(&[v.as_str()]).inc();
            }
        }),
    ));
    drop(fam);

    let fam = prometheus_client::metrics::family::Family::<
        PcOwned1,
        prometheus_client::metrics::counter::Counter,
    >::default();
    rows.push((
        "prometheus-client",
        per_series(n, || {
            for v in values {
                fam.get_or_create(&PcOwned1 { method: v.clone() }).inc();
            }
        }),
    ));
    drop(fam);

    let fam = fastmetrics::metrics::family::Family::<
        Fm1<String>,
        fastmetrics::metrics::counter::Counter,
    >::default();
    rows.push((
        "fastmetrics",
        per_series(n, || {
            for v in values {
                fam.with_or_new(&Fm1 { method: v.clone() }, |c| c.inc());
            }
        }),
    ));
    drop(fam);
    rows
}

fn histograms(values: &[String]) -> Vec<(&'static str, f64)> {
    let n = values.len();
    let mut rows = Vec::new();

    for (name, spread) in [
        ("vitals (1 value)", &[VALUE][..]),
        ("vitals (5 values, 1 ms to 1 s)", &SPREAD[..]),
    ] {
        let registry = vitals::Registry::new();
        let fam = registry
            .histogram_vec(
                vitals::Options::new("latency_seconds", "Latency")
                    .buckets(BUCKETS)
                    .cardinality_limit(n + 1),
                &["value"],
            )
            .expect("valid family");
        rows.push((
            name,
            per_series(n, || {
                for v in values {
                    let h = fam.get(&[v.as_str()]);
                    for &x in spread {
                        h.record(x);
                    }
                }
            }),
        ));
        drop((fam, registry));
    }

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .expect("valid buckets")
        .build_recorder();
    let handle = recorder.handle();
    rows.push((
        "metrics",
        per_series(n, || {
            metrics::with_local_recorder(&recorder, || {
                for v in values {
                    metrics::histogram!("latency_seconds", "value" => v.clone()).record(VALUE);
                }
            });
            // Folds the recorded values into the buckets, as a scrape does.
            handle.run_upkeep();
        }),
    ));
    drop((handle, recorder));

    let fam = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("latency_seconds", "Latency").buckets(BUCKETS.to_vec()),
        &["value"],
    )
    .expect("valid family");
    rows.push((
        "prometheus",
        per_series(n, || {
            for v in values {
                fam.with_label_values(&[v.as_str()]).observe(VALUE);
            }
        }),
    ));
    drop(fam);

    type PcHistogram = prometheus_client::metrics::histogram::Histogram;
    let fam = prometheus_client::metrics::family::Family::<PcOwned1, PcHistogram, _>::new_with_constructor(
        || PcHistogram::new(BUCKETS.iter().copied()),
    );
    rows.push((
        "prometheus-client",
        per_series(n, || {
            for v in values {
                fam.get_or_create(&PcOwned1 { method: v.clone() })
                    .observe(VALUE);
            }
        }),
    ));
    drop(fam);

    let fam =
        fastmetrics::metrics::family::Family::<
            Fm1<String>,
            fastmetrics::metrics::histogram::Histogram,
        >::new(|| fastmetrics::metrics::histogram::Histogram::new(BUCKETS.iter().copied()));
    rows.push((
        "fastmetrics",
        per_series(n, || {
            for v in values {
                fam.with_or_new(&Fm1 { method: v.clone() }, |h| h.observe(VALUE));
            }
        }),
    ));
    drop(fam);
    rows
}

fn main() {
    let sizes = [10_000, 100_000];
    let mut table: Vec<(String, &'static str, Vec<f64>)> = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let values: Vec<String> = (0..n).map(|i| format!("value_{i}")).collect();
        for (kind, rows) in [
            ("counter", counters(&values)),
            ("histogram", histograms(&values)),
        ] {
            for (lib, bytes) in rows {
                match table.iter_mut().find(|(k, l, _)| k == kind && *l == lib) {
                    Some(row) => row.2.push(bytes),
                    None => {
                        assert_eq!(i, 0, "every library is measured at every size");
                        table.push((kind.to_owned(), lib, vec![bytes]));
                    }
                }
            }
        }
        black_box(&values);
    }
    println!("Heap bytes retained per labelled series (one label, distinct values).\n");
    println!("| series | library | bytes / series at 10k | bytes / series at 100k |");
    println!("|---|---|---:|---:|");
    for (kind, lib, bytes) in &table {
        println!("| {kind} | {lib} | {:.1} | {:.1} |", bytes[0], bytes[1]);
    }
}
