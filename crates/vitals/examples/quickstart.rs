//! The core library in one program: register a counter family, a histogram
//! family and a gauge, record a simulated load, read a quantile, print the
//! exposition.
//!
//! Run: `cargo run -p vitals --example quickstart` (Prometheus text; add
//! `-- openmetrics` or `-- json` for the other formats)
//!
//! On stdout: `http_server_requests_total{method,route,status}`, the
//! `http_server_request_duration_seconds` buckets with `_sum` and `_count`,
//! `http_server_active_requests` and `cache_lookups_total` (one million
//! increments through a batch handle). On stderr: the p99 of
//! `GET /users/{id}`, read straight from the histogram's sketch.

use clap::{Parser, ValueEnum};
use std::time::Duration;
use vitals::{Format, Options, Unit};

/// Records a simulated load and prints it in one exposition format.
#[derive(Parser)]
struct Args {
    /// Exposition format to print.
    #[arg(value_enum, default_value_t = Output::Prometheus)]
    format: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Prometheus,
    #[value(name = "openmetrics")]
    OpenMetrics,
    Json,
}

fn main() -> Result<(), vitals::Error> {
    let args = Args::parse();
    let registry = vitals::global();

    // Register once, at start-up: names and labels are checked here.
    let requests = registry.counter_vec(
        ("http_server_requests_total", "HTTP requests served"),
        &["method", "route", "status"],
    )?;
    let duration = registry.histogram_vec(
        Options::new(
            "http_server_request_duration",
            "Time until the response completed",
        )
        .unit(Unit::Seconds),
        &["method", "route"],
    )?;
    let active = registry.gauge(("http_server_active_requests", "Requests in flight"))?;

    // A deterministic stand-in for real traffic.
    let routes = [
        ("GET", "/users/{id}"),
        ("POST", "/orders"),
        ("GET", "/health"),
    ];
    for i in 0..10_000u64 {
        let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let (method, route) = routes[(r % 3) as usize];
        active.inc();
        // Mostly milliseconds, with a long tail.
        let ms = 2.0 * (1.0 + ((r >> 8) % 1000) as f64 / 50.0).powf(1.6);
        let status = if (r >> 20) % 50 == 0 { "500" } else { "200" };
        // A label lookup takes no lock; recording is one atomic add.
        requests.get(&[method, route, status]).inc();
        duration
            .get(&[method, route])
            .record_duration(Duration::from_secs_f64(ms / 1000.0));
        active.dec();
    }

    // The hottest loops can batch: plain stores, folded in on drop.
    let lookups = registry.counter(("cache_lookups_total", "Cache lookups"))?;
    {
        let local = lookups.local();
        for _ in 0..1_000_000 {
            local.inc();
        }
    }

    let p99 = duration
        .get(&["GET", "/users/{id}"])
        .sketch()
        .quantile(0.99);
    eprintln!(
        "# p99 of GET /users/{{id}}: {:.1} ms",
        p99.unwrap_or(0.0) * 1000.0
    );

    let out = match args.format {
        Output::Prometheus => registry.render(Format::Prometheus),
        Output::OpenMetrics => registry.render(Format::OpenMetrics),
        Output::Json => {
            let mut out = Vec::new();
            vitals::encode::encode_json(registry, &mut out);
            out
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().write_all(&out);
    Ok(())
}
