//! Credentials on the metrics endpoints: `/metrics` and every `/debug/*`
//! route need a bearer token (or a user and password); the application's
//! own routes stay open.
//!
//! Run: `cargo run -p vitals-server --example endpoints_auth -- --listen 127.0.0.1:3000 --token change-me --user admin --password change-me`
//!
//! Then:
//! - `curl -i 127.0.0.1:3000/metrics`: 401 with `WWW-Authenticate`
//! - `curl -H 'Authorization: Bearer change-me' 127.0.0.1:3000/metrics`: the metrics
//! - `curl -u admin:change-me 127.0.0.1:3000/debug/metrics`: basic auth, which
//!   a browser asks for on <http://127.0.0.1:3000/debug/>
//! - `curl 127.0.0.1:3000/`: open to all
//!
//! Refusals are counted in
//! `vitals_rejected_total{reason="debug_auth_missing"|"debug_auth_invalid"}`.

use axum::Router;
use axum::routing::get;
use clap::Parser;
use vitals_server::{ServerMetrics, TrackedListener, TrackedRouter};

/// A server whose metrics endpoints need credentials.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Bearer token the endpoints accept.
    #[arg(long, env = "VITALS_DEBUG_TOKEN", hide_env_values = true)]
    token: String,
    /// User name for basic auth (with `--password`).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Password for basic auth.
    #[arg(
        long,
        env = "VITALS_DEBUG_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    password: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut builder = ServerMetrics::builder().auth_bearer(args.token);
    if let (Some(user), Some(password)) = (args.user, args.password) {
        builder = builder.auth_basic(user, password);
    }
    let metrics = builder.build().map_err(std::io::Error::other)?;
    let app = metrics.instrument(Router::new().route("/", get(|| async { "hello\n" })));
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("listening on http://{addr}; /metrics and /debug/* need credentials");
    axum::serve(listener, TrackedRouter::new(app)).await
}
