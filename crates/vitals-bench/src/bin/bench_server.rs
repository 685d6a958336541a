//! The server side of the HTTP overhead benchmark (`wrk.sh` beside
//! `Cargo.toml` drives it with wrk).
//!
//! Serves `GET /users/{id}` (a small JSON body) in one of three modes:
//!
//! - `plain`: uninstrumented, `axum::serve` on a tokio `TcpListener`;
//! - `vitals`: fully instrumented by vitals-server (the HTTP layer,
//!   `/metrics` and `/debug/*` through `ServerMetrics::instrument`, a
//!   `TrackedListener` served through `TrackedRouter`, which hands each
//!   request its connection);
//! - `axum-prometheus`: the `axum-prometheus` crate's layer and its
//!   `/metrics` route, as its README shows;
//! - `vitals-push`: `vitals` with the push client on: every request is also
//!   aggregated per (method, route, status class, caller) and sampled, and
//!   a batch is pushed every second (ten times the default rate;
//!   `PUSH_INTERVAL_MS` overrides it) to a sink in the same process that
//!   answers 200;
//! - `noop-layer`: `plain` plus `Router::layer` with tower's identity layer:
//!   the floor any per-route axum middleware pays (axum boxes the layered
//!   service again, clones it per request and boxes its future), recording
//!   nothing.
//!
//! ```text
//! cargo run --release -p vitals-bench --bin bench_server -- \
//!     --mode vitals --listen 127.0.0.1:3000 --workers 1
//! ```
//!
//! Once listening it prints `listening on http://ADDR` on stdout (so
//! `--listen 127.0.0.1:0` picks a free port the caller can read).

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde::Serialize;
use std::io::Write;
use std::str::FromStr;

/// The response body of `GET /users/{id}`.
#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

async fn user(Path(id): Path<u64>) -> axum::Json<User> {
    axum::Json(User {
        id,
        name: format!("user {id}"),
    })
}

/// The application every mode serves.
fn app() -> Router {
    Router::new().route("/users/{id}", get(user))
}

/// Which instrumentation the server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Vitals,
    AxumPrometheus,
    NoopLayer,
    /// The layer and endpoints only: a plain listener, no connection
    /// tracking, to split the cost of the layer from the listener's.
    VitalsLayer,
    /// `Vitals` plus the push client, pushing every second to a local sink.
    VitalsPush,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Mode::Plain),
            "vitals" => Ok(Mode::Vitals),
            "axum-prometheus" => Ok(Mode::AxumPrometheus),
            "noop-layer" => Ok(Mode::NoopLayer),
            "vitals-layer" => Ok(Mode::VitalsLayer),
            "vitals-push" => Ok(Mode::VitalsPush),
            other => Err(format!(
                "unknown mode {other:?}: expected plain, vitals, vitals-layer, vitals-push, axum-prometheus or noop-layer"
            )),
        }
    }
}

/// Command-line options.
#[derive(Debug)]
struct Args {
    listen: String,
    mode: Mode,
    workers: usize,
}

const USAGE: &str = "usage: bench_server [--listen ADDR] \
                     [--mode plain|vitals|vitals-layer|vitals-push|axum-prometheus|noop-layer] [--workers N]   \
                     (defaults: 127.0.0.1:3000, plain, 1)";

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: "127.0.0.1:3000".to_owned(),
        mode: Mode::Plain,
        workers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => args.listen = value("--listen")?,
            "--mode" => args.mode = value("--mode")?.parse()?,
            "--workers" => {
                args.workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?;
                if args.workers == 0 {
                    return Err("--workers must be at least 1".to_owned());
                }
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(Some(args))
}

/// Prints the bound address on stdout, for the script to read.
fn announce(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}

async fn serve(args: Args) -> std::io::Result<()> {
    match args.mode {
        Mode::Plain => {
            let listener = tokio::net::TcpListener::bind(&args.listen).await?;
            announce(listener.local_addr()?)?;
            axum::serve(listener, app()).await
        }
        Mode::Vitals => {
            let metrics = vitals_metrics(None)?;
            let router = metrics.instrument(app());
            let listener = vitals_server::TrackedListener::bind(&args.listen, &metrics).await?;
            announce(axum::serve::Listener::local_addr(&listener)?)?;
            axum::serve(listener, vitals_server::TrackedRouter::new(router)).await
        }
        Mode::AxumPrometheus => {
            let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
            let router = app()
                .route("/metrics", get(|| async move { handle.render() }))
                .layer(layer);
            let listener = tokio::net::TcpListener::bind(&args.listen).await?;
            announce(listener.local_addr()?)?;
            axum::serve(listener, router).await
        }
        Mode::VitalsPush => {
            // The sink: accepts every batch, reads and drops its body.
            let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let sink_url = format!("http://{}", sink.local_addr()?);
            let sink_app = Router::new().route(
                vitals::wire::INGEST_PATH,
                axum::routing::post(|_body: axum::body::Bytes| async { "ok" }),
            );
            tokio::spawn(async move { axum::serve(sink, sink_app).await });
            let push = vitals_server::PushConfig::new(&sink_url, "bench")
                .map_err(std::io::Error::other)?
                .service("bench")
                .interval(std::time::Duration::from_millis(push_interval_ms()));
            let metrics = vitals_metrics(Some(push))?;
            let router = metrics.instrument(app());
            let listener = vitals_server::TrackedListener::bind(&args.listen, &metrics).await?;
            announce(axum::serve::Listener::local_addr(&listener)?)?;
            axum::serve(listener, vitals_server::TrackedRouter::new(router)).await
        }
        Mode::VitalsLayer => {
            let metrics = vitals_metrics(None)?;
            let router = metrics.instrument(app());
            let listener = tokio::net::TcpListener::bind(&args.listen).await?;
            announce(listener.local_addr()?)?;
            axum::serve(listener, router).await
        }
        Mode::NoopLayer => {
            let router = app().layer(tower::layer::util::Identity::new());
            let listener = tokio::net::TcpListener::bind(&args.listen).await?;
            announce(listener.local_addr()?)?;
            axum::serve(listener, router).await
        }
    }
}

/// The vitals modes' metrics: `/debug/history` sampled every
/// `HISTORY_INTERVAL_MS` (default 1000, the library's default), with `push`
/// if given.
fn vitals_metrics(
    push: Option<vitals_server::PushConfig>,
) -> std::io::Result<vitals_server::ServerMetrics> {
    let every = std::env::var("HISTORY_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut builder = vitals_server::ServerMetrics::builder()
        .registry(vitals::Registry::new())
        .history(
            std::time::Duration::from_millis(every),
            vitals_server::DEFAULT_HISTORY_CAPACITY,
        );
    if let Some(push) = push {
        builder = builder.push(push);
    }
    builder.build().map_err(std::io::Error::other)
}

/// Push interval of `vitals-push`: `PUSH_INTERVAL_MS` from the environment,
/// default 1000 (ten times the default push rate).
fn push_interval_ms() -> u64 {
    std::env::var("PUSH_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn main() -> std::io::Result<()> {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => return Err(std::io::Error::other(format!("{e}\n{USAGE}"))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()?;
    eprintln!(
        "bench_server: mode {:?}, {} tokio worker thread(s)",
        args.mode, args.workers
    );
    runtime.block_on(serve(args))
}
