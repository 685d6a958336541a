//! Connection and request metrics with your own accept loop instead of
//! `axum::serve`: wrap each accepted stream in `TrackedIo` and serve it
//! with `TrackedIo::serve` (hyper-util, HTTP/1.1 and HTTP/2), which gives
//! each request its `ConnectionInfo` and counts protocol errors.
//!
//! Run: `cargo run -p vitals-server --example hyper_accept_loop -- --listen 127.0.0.1:3000`
//!
//! Then `curl 127.0.0.1:3000/`, send a malformed request
//! (`printf 'NOT HTTP\r\n\r\n' | nc 127.0.0.1 3000`: hyper answers 400)
//! and look at `curl -s 127.0.0.1:3000/metrics | grep '^server_connections'`:
//! connections opened, active, idle, and failed (the malformed one).
//! `curl -N '127.0.0.1:3000/debug/events?types=connection'` shows each
//! connection open and close, and the failure with its reason.

use axum::Router;
use axum::routing::get;
use clap::Parser;
use vitals_server::{ServerMetrics, TrackedIo};

/// A hand-written hyper-util accept loop with metrics.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let app = metrics.instrument(Router::new().route("/", get(|| async { "hello\n" })));
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Your own failures count too (a TLS handshake, say).
                metrics.connection_failed(&format!("accept: {e}"));
                continue;
            }
        };
        // Counts the connection and its bytes until it closes.
        let io = TrackedIo::new(stream, Some(peer), &metrics);
        tokio::spawn(io.serve(app.clone()));
    }
}
