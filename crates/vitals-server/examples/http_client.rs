//! An instrumented outbound HTTP client: `GET /call?path=/x` calls
//! `{target}/x` through hyper-util's client wrapped in the client layer,
//! and answers with the callee's status. The calls show in
//! `http_client_*{client="target"}` at `/metrics`, in
//! `/debug/metrics?client=target`, and in the dashboard's Clients panel;
//! connect errors, timeouts (`--timeout-ms`, default 5000) and TLS errors
//! are counted by kind.
//!
//! Run: `cargo run -p vitals-server --example http_client -- --listen 127.0.0.1:3002 --target http://127.0.0.1:3000`
//!
//! With the demo server on port 3000: `curl '127.0.0.1:3002/call?path=/users/7'`,
//! `curl '127.0.0.1:3002/call?path=/fail'`, then `curl 127.0.0.1:3002/metrics`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::time::Duration;
use tower::ServiceExt;
use vitals_server::client::{ClientMetricsService, TrackedConnector};
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};

/// Longest `path` accepted.
const MAX_PATH: usize = 2048;

/// A server whose `/call` route calls another server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3002")]
    listen: String,
    /// Base URL the calls go to (`http://host:port`).
    #[arg(long)]
    target: String,
    /// Fail a call whose response headers take longer (milliseconds).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

type Instrumented = ClientMetricsService<Client<TrackedConnector<HttpConnector>, Empty<Bytes>>>;

#[derive(Clone)]
struct App {
    client: Instrumented,
    target: String,
}

#[derive(Deserialize)]
struct Call {
    path: Option<String>,
}

/// Calls `{target}{path}`; answers the callee's status, or 502 (with the
/// error) when the call failed, 400 for a path that is not one.
async fn call(State(app): State<App>, Query(q): Query<Call>) -> (StatusCode, String) {
    let path = q.path.unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.len() > MAX_PATH {
        return (
            StatusCode::BAD_REQUEST,
            format!("path must start with '/' and be at most {MAX_PATH} bytes\n"),
        );
    }
    let Ok(req) = http::Request::get(format!("{}{path}", app.target)).body(Empty::new()) else {
        return (
            StatusCode::BAD_REQUEST,
            "path is not a valid URI path\n".to_owned(),
        );
    };
    match app.client.oneshot(req).await {
        Ok(res) => {
            let status = res.status();
            // Read the body to its end: the call is recorded then.
            let body = res.into_body().collect().await.map(|b| b.to_bytes());
            let text = body.map_or_else(
                |e| format!("body failed: {e}\n"),
                |b| String::from_utf8_lossy(&b).into_owned(),
            );
            (status, text)
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("call failed: {e}\n")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let target: http::Uri = args.target.parse()?;
    if target.scheme_str() != Some("http") || target.authority().is_none() {
        return Err(format!("--target {} must be http://host:port", args.target).into());
    }
    let metrics = ServerMetrics::new()?;
    let client_metrics = metrics
        .client("target")?
        .caller("http-client-example")?
        .timeout(Duration::from_millis(args.timeout_ms));
    let connector = client_metrics.connector(HttpConnector::new());
    let client = tower::ServiceBuilder::new()
        .layer(client_metrics.layer())
        .service(Client::builder(TokioExecutor::new()).build(connector));
    let app = App {
        client,
        target: args.target.trim_end_matches('/').to_owned(),
    };
    let routes = axum::Router::new()
        .route("/call", get(call))
        .with_state(app);
    let app = metrics.instrument(routes);
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    eprintln!(
        "http client example on http://{}, calling {}",
        axum::serve::Listener::local_addr(&listener)?,
        args.target
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .await?;
    Ok(())
}
