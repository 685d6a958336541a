//! Run: `cargo run -p vitals-server --example statsd -- --listen 127.0.0.1:3000 --statsd 127.0.0.1:8125`
//!
//! The demo server (`demo_server.rs`'s routes, `/metrics` and `/debug/*`)
//! that also sends its metrics to a StatsD or DogStatsD server every
//! `--interval-ms` (default 10 000): counters as deltas, gauges, request
//! durations as timers (`--histograms ms`, the default), DogStatsD
//! histograms (`h`) or distributions (`d`), labels as DogStatsD tags.
//! Watch what arrives with `nc -ul 8125`, or a StatsD server's admin port.

#[path = "demo_server.rs"]
#[allow(dead_code)] // its `main` and flags are the demo's, not this example's
mod demo_server;

use clap::Parser;
use std::time::Duration;
use vitals_server::statsd::{HistogramType, StatsdConfig, StatsdExporter};
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};

/// The demo server, with a StatsD exporter.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The StatsD server (`host:port`, UDP).
    #[arg(long, default_value = "127.0.0.1:8125")]
    statsd: String,
    /// Milliseconds between two sends.
    #[arg(long, default_value_t = 10_000)]
    interval_ms: u64,
    /// Prefix of every metric name (`myapp.` …).
    #[arg(long, default_value = "")]
    prefix: String,
    /// How histograms are sent: `ms` (timer), `h` or `d`.
    #[arg(long, default_value = "ms")]
    histograms: String,
    /// Largest datagram in bytes.
    #[arg(long, default_value_t = vitals_server::statsd::DEFAULT_MAX_DATAGRAM)]
    max_datagram: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let histograms = match args.histograms.as_str() {
        "ms" => HistogramType::Timer,
        "h" => HistogramType::Histogram,
        "d" => HistogramType::Distribution,
        other => {
            return Err(std::io::Error::other(format!(
                "--histograms {other:?}: use ms, h or d"
            )));
        }
    };
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let exporter = StatsdExporter::start(
        metrics.registry(),
        StatsdConfig::new(&args.statsd)
            .prefix(args.prefix)
            .interval(Duration::from_millis(args.interval_ms))
            .histograms(histograms)
            .max_datagram(args.max_datagram),
    )?;
    let app = metrics.instrument(demo_server::routes());
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!(
        "demo server on http://{addr}, sending to StatsD at {}",
        args.statsd
    );
    let signal = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(signal)
    .await?;
    // One last send of what the final requests recorded.
    exporter.shutdown();
    Ok(())
}
