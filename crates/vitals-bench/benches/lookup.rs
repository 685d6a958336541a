//! Labelled lookup plus increment, every iteration: one and three labels,
//! with `&'static str` values and with values borrowed from 64 precomputed
//! owned strings (cycled), as they would arrive from requests.
//!
//! Each library is used the way its documentation shows. prometheus-client
//! and fastmetrics key their families by an owned struct, so with dynamic
//! values the idiomatic call builds (allocates) that key each time; their
//! "prebuilt keys" variants look up keys built ahead of time instead.

use criterion::{Criterion, criterion_group, criterion_main};
use measured::lasso::ThreadedRodeo;
use std::hint::black_box;
use vitals_bench::labels::{Fm1, Fm3, PcOwned1, PcOwned3, PcStatic1, PcStatic3};
use vitals_bench::{COMBOS, LABELS_1, LABELS_3, STATIC_1, STATIC_3, combos_1, combos_3};

/// measured: one label interned on demand.
#[derive(measured::LabelGroup)]
#[label(set = M1Set)]
struct M1<'a> {
    #[label(dynamic_with = ThreadedRodeo, default)]
    method: &'a str,
}

/// measured: three labels interned on demand.
#[derive(measured::LabelGroup)]
#[label(set = M3Set)]
struct M3<'a> {
    #[label(dynamic_with = ThreadedRodeo, default)]
    method: &'a str,
    #[label(dynamic_with = ThreadedRodeo, default)]
    status: &'a str,
    #[label(dynamic_with = ThreadedRodeo, default)]
    route: &'a str,
}

const MASK: usize = COMBOS - 1;

fn vitals_family(name: &str, labels: &[&str]) -> vitals::CounterVec {
    vitals::Registry::new()
        .counter_vec((name, "Lookups"), labels)
        .expect("valid family")
}

fn prometheus_family(name: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(prometheus::Opts::new(name, "Lookups"), labels)
        .expect("valid family")
}

fn lookup_1_static(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_1_label_static");

    let fam = vitals_family("lookup_total", &LABELS_1);
    g.bench_function("vitals", |b| b.iter(|| fam.get(black_box(&STATIC_1)).inc()));

    g.bench_function("metrics", |b| {
        b.iter(|| metrics::counter!("lookup_s1_total", "method" => "GET").increment(1))
    });

    let fam = prometheus_family("lookup_total", &LABELS_1);
    g.bench_function("prometheus", |b| {
        b.iter(|| fam.with_label_values(black_box(&STATIC_1)).inc())
    });

    let fam = prometheus_client::metrics::family::Family::<
        PcStatic1,
        prometheus_client::metrics::counter::Counter,
    >::default();
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            fam.get_or_create(&PcStatic1 {
                method: black_box(STATIC_1[0]),
            })
            .inc()
        })
    });

    let fam = measured::CounterVec::with_label_set(M1Set::default());
    g.bench_function("measured", |b| {
        b.iter(|| {
            fam.inc(M1 {
                method: black_box(STATIC_1[0]),
            })
        })
    });

    let fam = fastmetrics::metrics::family::Family::<
        Fm1<&'static str>,
        fastmetrics::metrics::counter::Counter,
    >::default();
    g.bench_function("fastmetrics", |b| {
        b.iter(|| {
            fam.with_or_new(
                &Fm1 {
                    method: black_box(STATIC_1[0]),
                },
                |m| m.inc(),
            )
        })
    });

    g.finish();
}

fn lookup_3_static(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_3_labels_static");
    let [method, status, route] = STATIC_3;

    let fam = vitals_family("lookup_total", &LABELS_3);
    g.bench_function("vitals", |b| b.iter(|| fam.get(black_box(&STATIC_3)).inc()));

    g.bench_function("metrics", |b| {
        b.iter(|| {
            metrics::counter!(
                "lookup_s3_total",
                "method" => "GET",
                "status" => "200",
                "route" => "/api/v1/users"
            )
            .increment(1)
        })
    });

    let fam = prometheus_family("lookup_total", &LABELS_3);
    g.bench_function("prometheus", |b| {
        b.iter(|| fam.with_label_values(black_box(&STATIC_3)).inc())
    });

    let fam = prometheus_client::metrics::family::Family::<
        PcStatic3,
        prometheus_client::metrics::counter::Counter,
    >::default();
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            fam.get_or_create(&PcStatic3 {
                method: black_box(method),
                status: black_box(status),
                route: black_box(route),
            })
            .inc()
        })
    });

    let fam = measured::CounterVec::with_label_set(M3Set::default());
    g.bench_function("measured", |b| {
        b.iter(|| {
            fam.inc(M3 {
                method: black_box(method),
                status: black_box(status),
                route: black_box(route),
            })
        })
    });

    let fam = fastmetrics::metrics::family::Family::<
        Fm3<&'static str>,
        fastmetrics::metrics::counter::Counter,
    >::default();
    g.bench_function("fastmetrics", |b| {
        b.iter(|| {
            fam.with_or_new(
                &Fm3 {
                    method: black_box(method),
                    status: black_box(status),
                    route: black_box(route),
                },
                |m| m.inc(),
            )
        })
    });

    g.finish();
}

fn lookup_1_dynamic(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_1_label_dynamic");
    let combos = combos_1();

    let fam = vitals_family("lookup_total", &LABELS_1);
    g.bench_function("vitals", |b| {
        let mut i = 0;
        b.iter(|| {
            let v = &combos[i & MASK];
            i += 1;
            fam.get(black_box(v)).inc()
        })
    });

    g.bench_function("metrics", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m] = &combos[i & MASK];
            i += 1;
            metrics::counter!("lookup_d1_total", "method" => black_box(m).clone()).increment(1)
        })
    });

    let fam = prometheus_family("lookup_total", &LABELS_1);
    g.bench_function("prometheus", |b| {
        let mut i = 0;
        b.iter(|| {
            let v = &combos[i & MASK];
            i += 1;
            fam.with_label_values(black_box(v)).inc()
        })
    });

    let fam = prometheus_client::metrics::family::Family::<
        PcOwned1,
        prometheus_client::metrics::counter::Counter,
    >::default();
    g.bench_function("prometheus-client", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m] = black_box(&combos[i & MASK]);
            i += 1;
            fam.get_or_create(&PcOwned1 { method: m.clone() }).inc()
        })
    });
    let keys: Vec<PcOwned1> = combos
        .iter()
        .map(|[m]| PcOwned1 { method: m.clone() })
        .collect();
    g.bench_function("prometheus-client (prebuilt keys)", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &keys[i & MASK];
            i += 1;
            fam.get_or_create(black_box(k)).inc()
        })
    });

    let fam = measured::CounterVec::with_label_set(M1Set::default());
    g.bench_function("measured", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m] = black_box(&combos[i & MASK]);
            i += 1;
            fam.inc(M1 { method: m })
        })
    });

    let fam = fastmetrics::metrics::family::Family::<
        Fm1<String>,
        fastmetrics::metrics::counter::Counter,
    >::default();
    g.bench_function("fastmetrics", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m] = black_box(&combos[i & MASK]);
            i += 1;
            fam.with_or_new(&Fm1 { method: m.clone() }, |c| c.inc())
        })
    });
    let keys: Vec<Fm1<String>> = combos.iter().map(|[m]| Fm1 { method: m.clone() }).collect();
    g.bench_function("fastmetrics (prebuilt keys)", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &keys[i & MASK];
            i += 1;
            fam.with_or_new(black_box(k), |c| c.inc())
        })
    });

    g.finish();
}

fn lookup_3_dynamic(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_3_labels_dynamic");
    let combos = combos_3();

    let fam = vitals_family("lookup_total", &LABELS_3);
    g.bench_function("vitals", |b| {
        let mut i = 0;
        b.iter(|| {
            let v = &combos[i & MASK];
            i += 1;
            fam.get(black_box(v)).inc()
        })
    });

    g.bench_function("metrics", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m, s, r] = black_box(&combos[i & MASK]);
            i += 1;
            metrics::counter!(
                "lookup_d3_total",
                "method" => m.clone(),
                "status" => s.clone(),
                "route" => r.clone()
            )
            .increment(1)
        })
    });

    let fam = prometheus_family("lookup_total", &LABELS_3);
    g.bench_function("prometheus", |b| {
        let mut i = 0;
        b.iter(|| {
            let v = &combos[i & MASK];
            i += 1;
            fam.with_label_values(black_box(v)).inc()
        })
    });

    let fam = prometheus_client::metrics::family::Family::<
        PcOwned3,
        prometheus_client::metrics::counter::Counter,
    >::default();
    g.bench_function("prometheus-client", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m, s, r] = black_box(&combos[i & MASK]);
            i += 1;
            fam.get_or_create(&PcOwned3 {
                method: m.clone(),
                status: s.clone(),
                route: r.clone(),
            })
            .inc()
        })
    });
    let keys: Vec<PcOwned3> = combos
        .iter()
        .map(|[m, s, r]| PcOwned3 {
            method: m.clone(),
            status: s.clone(),
            route: r.clone(),
        })
        .collect();
    g.bench_function("prometheus-client (prebuilt keys)", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &keys[i & MASK];
            i += 1;
            fam.get_or_create(black_box(k)).inc()
        })
    });

    let fam = measured::CounterVec::with_label_set(M3Set::default());
    g.bench_function("measured", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m, s, r] = black_box(&combos[i & MASK]);
            i += 1;
            fam.inc(M3 {
                method: m,
                status: s,
                route: r,
            })
        })
    });

    let fam = fastmetrics::metrics::family::Family::<
        Fm3<String>,
        fastmetrics::metrics::counter::Counter,
    >::default();
    g.bench_function("fastmetrics", |b| {
        let mut i = 0;
        b.iter(|| {
            let [m, s, r] = black_box(&combos[i & MASK]);
            i += 1;
            fam.with_or_new(
                &Fm3 {
                    method: m.clone(),
                    status: s.clone(),
                    route: r.clone(),
                },
                |c| c.inc(),
            )
        })
    });
    let keys: Vec<Fm3<String>> = combos
        .iter()
        .map(|[m, s, r]| Fm3 {
            method: m.clone(),
            status: s.clone(),
            route: r.clone(),
        })
        .collect();
    g.bench_function("fastmetrics (prebuilt keys)", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &keys[i & MASK];
            i += 1;
            fam.with_or_new(black_box(k), |c| c.inc())
        })
    });

    g.finish();
}

fn install_metrics_recorder() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("first and only recorder");
}

fn all(c: &mut Criterion) {
    install_metrics_recorder();
    lookup_1_static(c);
    lookup_1_dynamic(c);
    lookup_3_static(c);
    lookup_3_dynamic(c);
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = all
}
criterion_main!(benches);
