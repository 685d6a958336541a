//! Callbacks on the event bus: every instrumentation point emits a typed
//! event once it has recorded its metrics; subscribe to act on them (a log
//! line, an alert, a sample) without touching the request path.
//!
//! Run: `cargo run -p vitals-server --example callbacks -- --listen 127.0.0.1:3000 --slow-ms 200`
//!
//! Then `curl 127.0.0.1:3000/`, `curl 127.0.0.1:3000/slow` (300 ms) and
//! `curl 127.0.0.1:3000/fail`: the server prints a line for each request
//! slower than `--slow-ms` or failed (a callback), and one for each
//! connection closed (a task reading a bounded channel). A subscriber that
//! falls behind loses events, counted in
//! `vitals_events_dropped_total{subscriber}` on `/metrics` (from the first
//! loss on); the server never waits for it.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use std::time::Duration;
use vitals::Event;
use vitals_server::{ServerMetrics, TrackedListener, TrackedRouter};

/// A server that logs its slow and failed requests from the event bus.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Requests slower than this many milliseconds are logged.
    #[arg(long, default_value_t = 200)]
    slow_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;

    // A callback runs on the emitting thread: keep it cheap, never block.
    let slow = args.slow_ms as f64 / 1000.0;
    let _slow_log = metrics.events().subscribe("slow_log", move |record| {
        if let Event::RequestCompleted {
            route,
            status,
            duration_secs: secs,
            ..
        } = &record.event
        {
            if *secs >= slow || *status >= 500 {
                eprintln!("{route}: {status} in {:.0} ms", secs * 1000.0);
            }
        }
    });

    // For async work, a sink feeds a bounded channel (`false`: dropped).
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let _closed_log = metrics
        .events()
        .subscribe_sink("closed_log", move |record| {
            tx.try_send(record.clone()).is_ok()
        });
    tokio::spawn(async move {
        while let Some(record) = rx.recv().await {
            if let Event::ConnectionClosed {
                conn_id,
                bytes_sent,
                ..
            } = &record.event
            {
                eprintln!("connection {conn_id} closed, {bytes_sent} bytes sent");
            }
        }
    });

    let slow_handler = || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "slept 300 ms\n"
    };
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/slow", get(slow_handler))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let app = metrics.instrument(app);
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("listening on http://{addr}");
    axum::serve(listener, TrackedRouter::new(app)).await
}
