//! Connection and request metrics with a hand-written accept loop instead
//! of `axum::serve`: wrap each stream in `TrackedIo` and serve it with
//! `TrackedIo::serve` (hyper-util), which gives each request its
//! `ConnectionInfo` and counts protocol errors.
//!
//! ```text
//! cargo run -p vitals-server --example hyper_accept_loop -- 127.0.0.1:3000
//! ```

use axum::routing::get;
use vitals_server::{ServerMetrics, TrackedIo};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let app = metrics.instrument(axum::Router::new().route("/", get(|| async { "hello\n" })));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                metrics.connection_failed(&format!("accept: {e}"));
                continue;
            }
        };
        // Counts the connection and its bytes; `serve` runs hyper-util's
        // HTTP/1.1 + HTTP/2 connection, gives each request its
        // `ConnectionInfo` and counts protocol errors.
        let io = TrackedIo::new(stream, Some(peer), &metrics);
        tokio::spawn(io.serve(app.clone()));
    }
}
