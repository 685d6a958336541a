//! Connection and request metrics with a hand-written hyper-util accept
//! loop instead of `axum::serve`: wrap each stream in `TrackedIo`, give each
//! request its `ConnectionInfo`, and report protocol errors.
//!
//! ```text
//! cargo run -p vitals-server --example hyper_accept_loop -- 127.0.0.1:3000
//! ```

use axum::extract::ConnectInfo;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tower::ServiceExt;
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedIo};

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
        let io = TrackedIo::new(stream, Some(peer), &metrics);
        let info = ConnectionInfo(io.state().clone());
        let app = app.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(info.clone()));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .await
            {
                metrics.connection_failed(&format!("http: {e}"));
            }
        });
    }
}
