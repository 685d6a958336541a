//! Metrics shared between worker processes (feature `shared`): several
//! registries attached to slots of one region, as forked workers would
//! be, read as the whole server and one worker at a time; a worker that
//! dies keeps its counters and histograms and loses its gauges; a slot
//! taken over after thousands of restarts does not grow.

#![cfg(feature = "shared")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use vitals::{Format, GaugeMode, Options, Registry, SharedRegion, Unit};

fn run_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("shared-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn text(r: &Registry) -> String {
    String::from_utf8(r.render(Format::Prometheus)).unwrap()
}

/// Registers the same families in every worker, as one binary does.
struct Worker {
    registry: Registry,
    requests: vitals::CounterVec,
    sharded: vitals::ShardedCounter,
    active: vitals::Gauge,
    peak: vitals::Gauge,
    started: vitals::FloatGauge,
    per: vitals::Gauge,
    latency: vitals::HistogramVec,
}

fn worker(region: &SharedRegion, slot: usize) -> Worker {
    let r = region.registry(slot).unwrap();
    Worker {
        requests: r.counter_vec(("requests_total", "h"), &["route"]).unwrap(),
        sharded: r.sharded_counter(("hits_total", "h")).unwrap(),
        active: r.gauge(("active", "h")).unwrap(),
        peak: r
            .gauge(Options::new("peak", "h").gauge_mode(GaugeMode::Max))
            .unwrap(),
        started: r
            .float_gauge(Options::new("started", "h").gauge_mode(GaugeMode::Latest))
            .unwrap(),
        per: r
            .gauge(Options::new("queue", "h").gauge_mode(GaugeMode::PerWorker))
            .unwrap(),
        latency: r
            .histogram_vec(
                Options::new("latency", "h")
                    .unit(Unit::Seconds)
                    .buckets(&[0.01, 0.1, 1.0]),
                &["route"],
            )
            .unwrap(),
        registry: r,
    }
}

#[test]
fn every_worker_reads_the_whole_server() {
    let dir = run_dir("whole");
    let region = SharedRegion::create(&dir, 3, 0).unwrap();
    let a = worker(&region, 0);
    let b = worker(&region, 1);
    a.requests.get(&["/a"]).add(3);
    b.requests.get(&["/a"]).add(4);
    b.requests.get(&["/b"]).inc(); // only worker 1 has this series
    a.sharded.add(10);
    b.sharded.add(5);
    a.active.set(2);
    b.active.set(5);
    a.peak.set(9);
    b.peak.set(4);
    a.started.set(1.5);
    b.started.set(2.5); // b attached last
    a.per.set(7);
    b.per.set(8);
    for v in [0.005, 0.05, 0.5] {
        a.latency.get(&["/a"]).record(v);
    }
    b.latency.get(&["/a"]).record(0.05);
    b.latency.get(&["/a"]).record(5.0);

    for r in [&a.registry, &b.registry] {
        let t = text(r);
        assert!(t.contains("requests_total{route=\"/a\"} 7\n"), "{t}");
        assert!(t.contains("requests_total{route=\"/b\"} 1\n"), "{t}");
        assert!(t.contains("hits_total 15\n"), "{t}");
        assert!(t.contains("active 7\n"), "{t}");
        assert!(t.contains("peak 9\n"), "{t}");
        assert!(t.contains("started 2.5\n"), "{t}");
        assert!(t.contains("queue{worker=\"0\"} 7\n"), "{t}");
        assert!(t.contains("queue{worker=\"1\"} 8\n"), "{t}");
        assert!(
            t.contains("latency_seconds_bucket{route=\"/a\",le=\"0.01\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("latency_seconds_bucket{route=\"/a\",le=\"1.0\"} 4\n"),
            "{t}"
        );
        assert!(t.contains("latency_seconds_count{route=\"/a\"} 5\n"), "{t}");
    }
    // The merged sketch, through a snapshot.
    let snap = a.registry.snapshot();
    let fam = snap.family("latency_seconds").unwrap();
    match &fam.series[0].value {
        vitals::snapshot::Value::Histogram(h) => {
            assert_eq!(h.sketch.count(), 5);
            let p100 = h.sketch.quantile(1.0).unwrap();
            assert!((p100 - 5.0).abs() < 0.05, "{p100}");
        }
        other => panic!("{other:?}"),
    }
    // One worker at a time.
    let mut one = vitals::snapshot::SnapshotVisitor::new();
    a.registry.visit_worker(1, &mut one);
    let one = one.finish();
    let requests = one.family("requests").unwrap();
    let values: Vec<String> = requests
        .series
        .iter()
        .map(|s| format!("{:?}", s.value))
        .collect();
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(values[0].contains('4'), "{values:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dead_worker_keeps_its_counts_and_loses_its_gauges() {
    let dir = run_dir("dead");
    let region = SharedRegion::create(&dir, 2, 0).unwrap();
    let a = worker(&region, 0);
    let b = worker(&region, 1);
    a.requests.get(&["/a"]).add(3);
    b.requests.get(&["/a"]).add(4);
    b.latency.get(&["/a"]).record(0.05);
    a.active.set(1);
    b.active.set(10);
    b.per.set(3);
    region.mark_dead(1);
    assert!(!region.slot_state(1).unwrap().live);
    let t = text(&a.registry);
    assert!(t.contains("requests_total{route=\"/a\"} 7\n"), "{t}");
    assert!(t.contains("latency_seconds_count{route=\"/a\"} 1\n"), "{t}");
    assert!(t.contains("active 1\n"), "{t}");
    assert!(!t.contains("worker=\"1\""), "{t}");
    // A new worker in slot 1 goes on from the counts; its gauges start at 0.
    drop(b);
    let b2 = worker(&region, 1);
    assert_eq!(b2.requests.get(&["/a"]).get(), 4);
    assert_eq!(b2.active.get(), 0);
    b2.requests.get(&["/a"]).inc();
    b2.latency.get(&["/a"]).record(0.05);
    let t = text(&a.registry);
    assert!(t.contains("requests_total{route=\"/a\"} 8\n"), "{t}");
    assert!(t.contains("latency_seconds_count{route=\"/a\"} 2\n"), "{t}");
    assert!(t.contains("active 1\n"), "{t}");
    assert_eq!(region.slot_state(1).unwrap().attaches, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thousands_of_restarts_leave_the_run_directory_as_it_was() {
    let dir = run_dir("churn");
    let region = SharedRegion::create(&dir, 2, 0).unwrap();
    let a = worker(&region, 0);
    let sizes = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = sizes();
    assert_eq!(before.len(), 2);
    for i in 0..1000 {
        let w = worker(&region, 1);
        w.requests.get(&["/a"]).inc();
        w.latency.get(&["/a"]).record(0.05 + i as f64 * 1e-3);
        region.mark_dead(1);
    }
    assert_eq!(sizes(), before);
    let t = text(&a.registry);
    assert!(t.contains("requests_total{route=\"/a\"} 1000\n"), "{t}");
    assert!(
        t.contains("latency_seconds_count{route=\"/a\"} 1000\n"),
        "{t}"
    );
    assert_eq!(region.slot_state(1).unwrap().attaches, 1000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fresh_region_starts_clean_and_open_maps_it_again() {
    let dir = run_dir("clean");
    {
        let region = SharedRegion::create(&dir, 2, 0).unwrap();
        worker(&region, 0).requests.get(&["/a"]).add(5);
        let again = SharedRegion::open(&dir).unwrap();
        assert_eq!(again.slots(), 2);
        let reader = worker(&again, 1);
        assert!(text(&reader.registry).contains("requests_total{route=\"/a\"} 5\n"));
    }
    let region = SharedRegion::create(&dir, 2, 0).unwrap();
    let w = worker(&region, 0);
    assert!(!text(&w.registry).contains("route=\"/a\"} 5"));
    std::fs::write(dir.join("slot-000.vitals"), b"garbage").unwrap();
    assert!(SharedRegion::open(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
