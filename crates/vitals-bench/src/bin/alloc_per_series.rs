//! Heap allocations and bytes per new labelled series, for every library.
//!
//! A counting global allocator wraps the system one. For each library this
//! creates one family with one label, then `N` new series with distinct
//! values (each incremented once), and reports per series: the number of
//! allocations, the bytes allocated, and the bytes still held afterwards
//! (allocated minus freed, so transient buffers and table regrowth leftovers
//! do not count). Label values are made before counting starts; a library
//! that needs an owned key gets it built inside the counted region, since it
//! keeps that allocation.
//!
//! Run: `cargo run --release -p vitals-bench --bin alloc_per_series`

use measured::lasso::ThreadedRodeo;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use vitals_bench::labels::{Fm1, PcOwned1};

/// Number of series each library creates.
const N: usize = 10_000;

/// The system allocator, counting what passes through it.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// only atomics on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
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
        ALLOCS.fetch_add(1, Relaxed);
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts of one measured region.
struct Usage {
    allocs: u64,
    allocated: u64,
    retained: i64,
}

fn snapshot() -> (u64, u64, u64) {
    (
        ALLOCS.load(Relaxed),
        ALLOCATED.load(Relaxed),
        FREED.load(Relaxed),
    )
}

/// Runs `create` (which makes the `N` series) and returns what it allocated.
fn measure(create: impl FnOnce()) -> Usage {
    let (a0, b0, f0) = snapshot();
    create();
    let (a1, b1, f1) = snapshot();
    Usage {
        allocs: a1 - a0,
        allocated: b1 - b0,
        retained: (b1 - b0) as i64 - (f1 - f0) as i64,
    }
}

/// measured: one label interned on demand.
#[derive(measured::LabelGroup)]
#[label(set = MSet)]
struct MLabel<'a> {
    #[label(dynamic_with = ThreadedRodeo, default)]
    value: &'a str,
}

fn main() {
    let values: Vec<String> = (0..N).map(|i| format!("value_{i}")).collect();
    let mut rows: Vec<(&str, Usage)> = Vec::new();

    // Each family is made before counting starts and dropped after, so only
    // the per-series cost is counted.
    let registry = vitals::Registry::new();
    let fam = registry
        .counter_vec(
            vitals::Options::new("series_total", "Series").cardinality_limit(N + 1),
            &["value"],
        )
        .expect("valid family");
    rows.push((
        "vitals",
        measure(|| {
            for v in &values {
                fam.get(&[v.as_str()]).inc();
            }
        }),
    ));
    assert_eq!(fam.len(), N);
    drop((fam, registry));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    rows.push((
        "metrics",
        measure(|| {
            metrics::with_local_recorder(&recorder, || {
                for v in &values {
                    metrics::counter!("series_total", "value" => v.clone()).increment(1);
                }
            })
        }),
    ));
    assert!(handle.render().lines().count() > N);
    drop((handle, recorder));

    let fam =
        prometheus::IntCounterVec::new(prometheus::Opts::new("series_total", "Series"), &["value"])
            .expect("valid family");
    rows.push((
        "prometheus",
        measure(|| {
            for v in &values {
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
        measure(|| {
            for v in &values {
                fam.get_or_create(&PcOwned1 { method: v.clone() }).inc();
            }
        }),
    ));
    drop(fam);

    let fam = measured::CounterVec::with_label_set(MSet::default());
    rows.push((
        "measured",
        measure(|| {
            for v in &values {
                fam.inc(MLabel { value: v });
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
        measure(|| {
            for v in &values {
                fam.with_or_new(&Fm1 { method: v.clone() }, |c| c.inc());
            }
        }),
    ));
    drop(fam);

    black_box(&values);
    println!("New labelled series: {N} per library, one label, distinct values.\n");
    println!(
        "| library | allocations / series | bytes allocated / series | bytes retained / series |"
    );
    println!("|---|---:|---:|---:|");
    for (name, u) in &rows {
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} |",
            u.allocs as f64 / N as f64,
            u.allocated as f64 / N as f64,
            u.retained as f64 / N as f64,
        );
    }
}
