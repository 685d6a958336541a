//! WebSocket metrics: wrap the upgraded socket with `RouteMetrics::websocket`
//! and its sessions, messages, bytes and close codes are counted per route.
//!
//! Run: `cargo run -p vitals-server --example websocket -- --listen 127.0.0.1:3000`
//!
//! Then talk to `ws://127.0.0.1:3000/echo` with any WebSocket client
//! (`websocat ws://127.0.0.1:3000/echo`, type a few lines, Ctrl-D) and
//! look at `curl -s 127.0.0.1:3000/metrics | grep '^websocket_'`: sessions
//! opened and active, messages and bytes each way, session duration and
//! close codes, all with `route="/echo"`. <http://127.0.0.1:3000/debug/>
//! shows them live.

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use clap::Parser;
use vitals_server::{RouteMetrics, ServerMetrics, TrackedListener, TrackedRouter};

/// A WebSocket echo server with metrics.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
}

/// `RouteMetrics` is an extractor: the route template and the metrics of
/// this request, from the layer.
async fn echo(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        // Use it as the socket itself; it counts what passes through.
        let mut socket = tracked.websocket(socket);
        while let Some(Ok(msg)) = socket.recv().await {
            // Echo the data; axum answers pings and the close itself.
            let data = matches!(msg, Message::Text(_) | Message::Binary(_));
            if data && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let app = metrics.instrument(Router::new().route("/echo", get(echo)));
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("WebSocket echo on ws://{addr}/echo, metrics on http://{addr}/metrics");
    axum::serve(listener, TrackedRouter::new(app)).await
}
