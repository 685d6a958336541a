//! The public API compiles and behaves the same way in both builds: run
//! with and without `--no-default-features`. In the no-op build the types
//! must be zero-sized and record nothing.

use vitals::{Counter, Event, Format, Gauge, Histogram, Options, Registry, Unit};

/// An instrumented library function, written once against the API.
fn handle_request(registry: &Registry, route: &str) -> u64 {
    let requests = registry
        .counter_vec(("app_requests_total", "Requests"), &["route"])
        .expect("valid name");
    let latency = registry
        .histogram_vec(
            Options::new("app_latency", "Latency").unit(Unit::Seconds),
            &["route"],
        )
        .expect("valid name");
    let active = registry
        .gauge(("app_active", "In flight"))
        .expect("valid name");
    let ratio = registry
        .float_gauge(("app_ratio", "A ratio"))
        .expect("valid name");
    active.inc();
    let timer = latency.get(&[route]).start_timer();
    requests.get(&[route]).inc();
    let local = requests.get(&[route]).local();
    local.add(2);
    drop(local);
    ratio.set(0.5);
    timer.stop();
    active.dec();
    registry.events().emit_with(|| Event::WorkerSpawned {
        worker: 0,
        pid: None,
    });
    requests.get(&[route]).get()
}

#[test]
fn instrumented_code_compiles_and_runs() {
    let registry = Registry::new();
    let n = handle_request(&registry, "/users/{id}");
    let text = String::from_utf8(registry.render(Format::OpenMetrics)).expect("utf-8");
    assert!(text.ends_with("# EOF\n"));
    if vitals::ENABLED {
        assert_eq!(n, 3);
        assert!(
            text.contains("app_requests_total{route=\"/users/{id}\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT app_latency_seconds seconds"),
            "{text}"
        );
    } else {
        assert_eq!(n, 0);
        assert_eq!(text, "# EOF\n");
        assert!(registry.snapshot().families.is_empty());
    }
}

#[test]
fn sizes_match_the_build() {
    let sizes = [
        std::mem::size_of::<Counter>(),
        std::mem::size_of::<vitals::ShardedCounter>(),
        std::mem::size_of::<Gauge>(),
        std::mem::size_of::<Histogram>(),
        std::mem::size_of::<vitals::CounterVec>(),
        std::mem::size_of::<vitals::LocalCounter>(),
        std::mem::size_of::<Registry>(),
        std::mem::size_of::<vitals::EventBus>(),
    ];
    if vitals::ENABLED {
        assert!(sizes.iter().all(|&s| s > 0), "{sizes:?}");
    } else {
        assert_eq!(sizes, [0; 8], "no-op types must be zero-sized");
    }
}
