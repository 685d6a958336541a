//! Two servers in one process, one registry: the demo routes on a public
//! port, and an admin port with only `/metrics` and `/debug/*`. Each
//! server's connections and requests land in its own `server` series
//! (`server="public"`, `server="admin"`); either port's `/metrics` shows
//! the whole process, and `/debug/metrics?server=public` (or `?server=0`)
//! one server.
//!
//! Run: `cargo run -p vitals-server --example two_servers -- --listen 127.0.0.1:3000 --admin-listen 127.0.0.1:3001`
//!
//! Then `curl 127.0.0.1:3000/users/7`, `curl 127.0.0.1:3001/metrics`, and
//! open <http://127.0.0.1:3001/debug/> (the dashboard switches between the
//! servers).

#[path = "demo_server.rs"]
#[allow(dead_code)] // its `main` and flags are the demo's own
mod demo_server;

use clap::Parser;
use vitals_server::{ConnectionInfo, ServerMetrics, TrackedListener};

/// The demo routes on one port, the endpoints on another.
#[derive(Parser)]
struct Args {
    /// Address of the public server (the demo routes, and the endpoints).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Address of the admin server (`/metrics` and `/debug/*` only).
    #[arg(long, default_value = "127.0.0.1:3001")]
    admin_listen: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::builder()
        .server("public")
        .server("admin")
        .build()
        .map_err(std::io::Error::other)?;
    let public = metrics.server("public").expect("declared above");
    let admin = metrics.server("admin").expect("declared above");
    let public_app = metrics.instrument(demo_server::routes());
    let admin_app = metrics.instrument(axum::Router::new());
    let public_listener = TrackedListener::bind(&args.listen, &public).await?;
    let admin_listener = TrackedListener::bind(&args.admin_listen, &admin).await?;
    eprintln!(
        "public server on http://{}, admin server on http://{}",
        axum::serve::Listener::local_addr(&public_listener)?,
        axum::serve::Listener::local_addr(&admin_listener)?,
    );
    let public = axum::serve(
        public_listener,
        public_app.into_make_service_with_connect_info::<ConnectionInfo>(),
    );
    let admin = axum::serve(
        admin_listener,
        admin_app.into_make_service_with_connect_info::<ConnectionInfo>(),
    );
    tokio::try_join!(async { public.await }, async { admin.await },)?;
    Ok(())
}
