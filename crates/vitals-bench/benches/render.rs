//! Rendering 10k and 100k counter series (one family, two labels, every
//! value set) into Prometheus text, or the closest text format a library
//! offers (prometheus-client writes only OpenMetrics text).

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use measured::lasso::ThreadedRodeo;
use measured::metric::MetricFamilyEncoding;
use std::hint::black_box;
use std::time::Duration;
use vitals_bench::labels::{FmRender, PcRender};
use vitals_bench::{RENDER_LABELS, render_labels};

/// measured: the two render labels, interned on demand.
#[derive(measured::LabelGroup)]
#[label(set = MRenderSet)]
struct MRender<'a> {
    #[label(dynamic_with = ThreadedRodeo, default)]
    shard: &'a str,
    #[label(dynamic_with = ThreadedRodeo, default)]
    key: &'a str,
}

/// Prints the size of one rendering, so the outputs can be compared.
fn report(library: &str, n: usize, out: &[u8]) {
    let lines = out.iter().filter(|&&b| b == b'\n').count();
    eprintln!(
        "render {n}: {library:<18} {lines:>7} lines {:>9} bytes",
        out.len()
    );
    assert!(
        lines >= n,
        "{library} rendered {lines} lines for {n} series"
    );
}

fn bench_size(g: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    let labels = render_labels(n);
    let id = |lib: &str| format!("{lib}/{n}");

    // vitals
    {
        let registry = vitals::Registry::new();
        let fam = registry
            .counter_vec(
                vitals::Options::new("render_total", "Rendered series").cardinality_limit(200_000),
                &RENDER_LABELS,
            )
            .expect("valid family");
        for (i, l) in labels.iter().enumerate() {
            fam.get(l).add(i as u64);
        }
        assert_eq!(fam.len(), n);
        report("vitals", n, &registry.render(vitals::Format::Prometheus));
        g.bench_function(id("vitals"), |b| {
            b.iter(|| black_box(registry.render(vitals::Format::Prometheus)))
        });
    }

    // metrics + metrics-exporter-prometheus
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for (i, [shard, key]) in labels.iter().enumerate() {
                metrics::counter!("render_total", "shard" => shard.clone(), "key" => key.clone())
                    .absolute(i as u64);
            }
        });
        report("metrics", n, handle.render().as_bytes());
        g.bench_function(id("metrics"), |b| b.iter(|| black_box(handle.render())));
    }

    // prometheus
    {
        let registry = prometheus::Registry::new();
        let fam = prometheus::IntCounterVec::new(
            prometheus::Opts::new("render_total", "Rendered series"),
            &RENDER_LABELS,
        )
        .expect("valid family");
        registry
            .register(Box::new(fam.clone()))
            .expect("registered once");
        for (i, l) in labels.iter().enumerate() {
            fam.with_label_values(l).inc_by(i as u64);
        }
        let render = || {
            use prometheus::Encoder;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .expect("encodes");
            out
        };
        report("prometheus", n, &render());
        g.bench_function(id("prometheus"), |b| b.iter(|| black_box(render())));
    }

    // prometheus-client
    {
        let mut registry = prometheus_client::registry::Registry::default();
        let fam = prometheus_client::metrics::family::Family::<
            PcRender,
            prometheus_client::metrics::counter::Counter,
        >::default();
        registry.register("render", "Rendered series", fam.clone());
        for (i, [shard, key]) in labels.iter().enumerate() {
            fam.get_or_create(&PcRender {
                shard: shard.clone(),
                key: key.clone(),
            })
            .inc_by(i as u64);
        }
        let render = || {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
            out
        };
        report("prometheus-client", n, render().as_bytes());
        g.bench_function(id("prometheus-client"), |b| b.iter(|| black_box(render())));
    }

    // measured
    {
        let fam = measured::CounterVec::with_label_set(MRenderSet::default());
        for (i, [shard, key]) in labels.iter().enumerate() {
            fam.inc_by(MRender { shard, key }, i as u64);
        }
        let render = || {
            let mut enc = measured::text::BufferedTextEncoder::new();
            fam.collect_family_into(
                measured::metric::name::MetricName::from_str("render_total"),
                &mut enc,
            )
            .expect("encodes");
            enc.finish()
        };
        report("measured", n, &render());
        g.bench_function(id("measured"), |b| b.iter(|| black_box(render())));
    }

    // fastmetrics
    {
        let mut registry = fastmetrics::registry::Registry::default();
        let fam = fastmetrics::metrics::family::Family::<
            FmRender,
            fastmetrics::metrics::counter::Counter,
        >::default();
        // fastmetrics' Prometheus 0.0.4 profile writes the name as given.
        registry
            .register("render_total", "Rendered series", fam.clone())
            .expect("registered once");
        for (i, [shard, key]) in labels.iter().enumerate() {
            let k = FmRender {
                shard: shard.clone(),
                key: key.clone(),
            };
            fam.with_or_new(&k, |c| c.inc_by(i as u64));
        }
        let render = || {
            let mut out = String::new();
            fastmetrics::format::text::encode(
                &mut out,
                &registry,
                fastmetrics::format::text::TextProfile::PrometheusV0_0_4,
            )
            .expect("encodes");
            out
        };
        report("fastmetrics", n, render().as_bytes());
        g.bench_function(id("fastmetrics"), |b| b.iter(|| black_box(render())));
    }
}

fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_10k");
    bench_size(&mut g, 10_000);
    g.finish();

    let mut g = c.benchmark_group("render_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    bench_size(&mut g, 100_000);
    g.finish();
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = render
}
criterion_main!(benches);
