//! Instruments a simulated request handler and prints the exposition.
//!
//! ```text
//! cargo run -p vitals --example quickstart               # Prometheus text
//! cargo run -p vitals --example quickstart -- openmetrics
//! cargo run -p vitals --example quickstart -- json
//! ```

use std::time::Duration;
use vitals::{Event, Format, Options, Unit};

fn main() -> Result<(), vitals::Error> {
    let registry = vitals::global();

    // Register once, at start-up: names and labels are validated here.
    let requests = registry.counter_vec(
        ("http_server_requests_total", "HTTP requests served"),
        &["method", "route", "status"],
    )?;
    let duration = registry.histogram_vec(
        Options::new(
            "http_server_request_duration",
            "Time until the response body completed",
        )
        .unit(Unit::Seconds),
        &["method", "route"],
    )?;
    let active = registry.gauge(("http_server_active_requests", "Requests in flight"))?;
    let bytes = registry.counter(
        Options::new("server_bytes_sent_total", "Bytes written to clients").unit(Unit::Bytes),
    )?;
    let cache_ratio =
        registry.float_gauge(("cache_hit_ratio", "Share of lookups served from cache"))?;

    // Anyone can watch what happens, without slowing it down.
    let (_subscription, events) = registry.events().subscribe_channel("quickstart", 1024);

    // A deterministic stand-in for real traffic.
    let routes = [
        ("GET", "/users/{id}"),
        ("POST", "/orders"),
        ("GET", "/health"),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..10_000u64 {
        let (method, route) = routes[(next() % 3) as usize];
        active.inc();
        // Log-normal-ish latency: mostly milliseconds, a long tail.
        let ms = 2.0 * (1.0 + (next() % 1000) as f64 / 50.0).powf(1.6);
        let status = if next() % 50 == 0 { "500" } else { "200" };
        // Resolve the handle once per request; recording is one atomic add.
        requests.get(&[method, route, status]).inc();
        duration
            .get(&[method, route])
            .record_duration(Duration::from_secs_f64(ms / 1000.0));
        bytes.add(200 + next() % 2000);
        active.dec();
        if i % 1000 == 0 {
            registry.events().emit_with(|| Event::RequestCompleted {
                method: method.into(),
                route: route.into(),
                status: status.parse().unwrap_or(0),
                duration_secs: ms / 1000.0,
            });
        }
    }
    cache_ratio.set(0.93);

    // The hottest loops can batch: plain stores, folded in on drop.
    let hits = registry.counter(("cache_lookups_total", "Cache lookups"))?;
    {
        let local = hits.local();
        for _ in 0..1_000_000 {
            local.inc();
        }
    }

    let p99 = duration
        .get(&["GET", "/users/{id}"])
        .sketch()
        .quantile(0.99);
    eprintln!(
        "# {} events observed; p99 of GET /users/{{id}}: {:.1} ms",
        events.try_iter().count(),
        p99.unwrap_or(0.0) * 1000.0
    );

    let out = match std::env::args().nth(1).as_deref() {
        Some("openmetrics") => registry.render(Format::OpenMetrics),
        Some("json") => {
            let mut out = Vec::new();
            vitals::encode::encode_json(registry, &mut out);
            out
        }
        _ => registry.render(Format::Prometheus),
    };
    use std::io::Write;
    let _ = std::io::stdout().write_all(&out);
    Ok(())
}
