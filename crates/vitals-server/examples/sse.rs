//! Server-Sent Events metrics: wrap the event stream with
//! `RouteMetrics::sse` and its streams, events and length are counted per
//! route (the bytes on the wire by the layer).
//!
//! Run: `cargo run -p vitals-server --example sse -- --listen 127.0.0.1:3000`
//!
//! Then `curl -N 127.0.0.1:3000/ticks` (one event a second until you stop
//! it) and, meanwhile, `curl -s 127.0.0.1:3000/metrics | grep '^sse_'`:
//! streams opened and active, events and bytes sent, stream duration, all
//! with `route="/ticks"`. <http://127.0.0.1:3000/debug/> shows them live.

use axum::Router;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use clap::Parser;
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;
use vitals_server::{RouteMetrics, ServerMetrics, TrackedListener, TrackedRouter};

/// An SSE ticker with metrics.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
}

/// `RouteMetrics` is an extractor: the route template and the metrics of
/// this request, from the layer.
async fn ticks(tracked: RouteMetrics) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = futures_util::stream::unfold(0u64, |i| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let event = Event::default().id(i.to_string()).data(format!("tick {i}"));
        Some((Ok(event), i + 1))
    });
    // The wrapped stream is the response body's stream, counted as it goes.
    Sse::new(tracked.sse(Box::pin(ticks))).keep_alive(KeepAlive::default())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let app = metrics.instrument(Router::new().route("/ticks", get(ticks)));
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("SSE on http://{addr}/ticks, metrics on http://{addr}/metrics");
    axum::serve(listener, TrackedRouter::new(app)).await
}
