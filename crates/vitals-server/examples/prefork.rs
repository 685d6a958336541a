//! Run: `cargo run -p vitals-server --example prefork -- --listen 127.0.0.1:3000 --workers 4`
//!
//! The demo server (`demo_server.rs`'s routes: `/`, `/users/{id}`,
//! `/slow?ms=N`, `/fail`, `/ws`, `/sse`, and `/metrics`, `/debug/*`) as N
//! worker processes on one port. Whichever worker answers, `/metrics`,
//! `/debug/metrics`, `/debug/history` and the dashboard show the whole
//! server; `/debug/metrics?worker=2` shows worker 2 alone. Kill a worker
//! (`kill -9 PID`, the pids are printed) and watch it come back with no
//! count lost; Ctrl-C (or SIGTERM to the supervisor) stops them all
//! gracefully. `--run-dir` says where the shared metrics live (default
//! `vitals-prefork-PORT` in the temporary directory).

#[path = "demo_server.rs"]
#[allow(dead_code)] // its `main` and flags are the demo's, not this example's
mod demo_server;

use clap::Parser;
use std::path::PathBuf;
use vitals_server::prefork::Prefork;
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};

/// The demo server as prefork workers.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Worker processes.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Run directory of the shared metrics.
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

/// The same metrics in the supervisor and every worker.
fn metrics(registry: vitals::Registry) -> Result<ServerMetrics, vitals::Error> {
    ServerMetrics::builder().registry(registry).build()
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut prefork = Prefork::new(&args.listen, args.workers);
    if let Some(dir) = args.run_dir {
        prefork = prefork.run_dir(dir);
    }
    eprintln!(
        "prefork supervisor pid {} on http://{} with {} workers",
        std::process::id(),
        args.listen,
        args.workers
    );
    prefork.run(metrics, |worker| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let metrics = metrics(worker.registry()).map_err(std::io::Error::other)?;
            let app = metrics.instrument(demo_server::routes());
            let listener = tokio::net::TcpListener::from_std(worker.listener()?)?;
            let listener = TrackedListener::new(listener, &metrics);
            // One write, so the lines of workers starting together never
            // interleave on a shared pipe.
            let line = format!(
                "worker {} pid {} ready\n",
                worker.index(),
                std::process::id()
            );
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes())?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnectionInfo>(),
            )
            .with_graceful_shutdown(metrics.shutdown_signal(worker.shutdown_signal()))
            .await?;
            metrics.shutdown_finished();
            Ok(())
        })
    })
}
