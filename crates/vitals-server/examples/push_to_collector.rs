//! Push to a collector: the layer aggregates each interval's requests and
//! a background task sends them, with the app's own counter riding along,
//! to a collector; an outgoing call is tagged with this service as caller.
//!
//! Run: `cargo run -p vitals-server --example push_to_collector -- --listen 127.0.0.1:3000 --collector http://127.0.0.1:7070 --key $INGEST --service checkout --interval-ms 2000`
//!
//! with a collector running, started first (it prints the keys as `INGEST=…`
//! and `READ=…`): `cargo run -p vitals-collector --example embedded_collector -- --listen 127.0.0.1:7070`.
//! `--collector https://…` works too (default feature `push-tls`), and
//! `--ca-cert ca.pem` trusts a private CA.
//!
//! Send traffic (`curl 127.0.0.1:3000/checkout`, `curl 127.0.0.1:3000/fail`,
//! `curl '127.0.0.1:3000/slow?ms=800'`), wait an interval, then ask the
//! collector, with `-H "Authorization: Bearer $READ"`:
//! `127.0.0.1:7070/v1/services/checkout/stats?window=15m` (rates, errors,
//! Apdex, percentiles), `…/routes`, `…/recent` (sampled requests),
//! `…/custom` (`checkouts_total{result}`) and `/v1/connections` (the
//! `/checkout` call to `/users/1`: caller and callee `checkout`). This
//! server's `curl 127.0.0.1:3000/metrics | grep vitals_push` counts batches.
//! Ctrl-C stops serving, then the last interval is pushed (5 s at most).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use vitals_server::push::CallerService;
use vitals_server::{CallerLayer, PushConfig, ServerMetrics, TrackedListener, TrackedRouter};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// An instrumented server pushing its request aggregates to a collector.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The collector's base URL, `http://` or `https://`.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    collector: String,
    /// An ingest key of the collector.
    #[arg(
        long,
        env = "VITALS_INGEST_KEY",
        hide_env_values = true,
        default_value = "dev-key"
    )]
    key: String,
    /// The service name the batches (and outgoing calls) carry.
    #[arg(long, default_value = "demo")]
    service: String,
    /// Push interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    interval_ms: u64,
    /// A PEM file of a private CA to trust for an `https://` collector.
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
}

#[derive(Clone)]
struct AppState {
    /// An HTTP client whose requests carry this service as the caller.
    client: CallerService<Client<HttpConnector, Empty<bytes::Bytes>>>,
    own_url: String,
    checkouts: vitals::CounterVec,
}

/// `GET /checkout`: calls `/users/1` on this server, counts the outcome.
async fn checkout(State(state): State<AppState>) -> (StatusCode, String) {
    let answer = get_user(&state).await;
    let result = if answer.is_ok() { "ok" } else { "failed" };
    state.checkouts.get(&[result]).inc();
    match answer {
        Ok(body) => (StatusCode::OK, format!("users/1 answered {body}\n")),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("call failed: {e}\n")),
    }
}

async fn user(Path(id): Path<u64>) -> String {
    format!("{{\"id\":{id}}}\n")
}

/// `GET /slow?ms=N`: slow requests lower the Apdex score.
async fn slow(Query(q): Query<HashMap<String, u64>>) -> String {
    let ms = q.get("ms").copied().unwrap_or(100).min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn get_user(state: &AppState) -> Result<String, Error> {
    let request = http::Request::get(format!("{}/users/1", state.own_url)).body(Empty::new())?;
    let body = state.client.clone().oneshot(request).await?.into_body();
    Ok(String::from_utf8_lossy(&body.collect().await?.to_bytes()).into_owned())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences (`?` out of main would print their Debug form).
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push_to_collector: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let push = PushConfig::new(&args.collector, &args.key)?
        .service(&args.service)
        .interval(Duration::from_millis(args.interval_ms))
        .push_metrics(["checkouts_total"]); // the app's own families to send along
    let push = match &args.ca_cert {
        None => push,
        #[cfg(feature = "push-tls")]
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read --ca-cert {path:?}: {e}"))?;
            push.root_certificate_pem(&pem)?
        }
        #[cfg(not(feature = "push-tls"))]
        Some(_) => return Err("--ca-cert needs the push-tls feature".into()),
    };
    let metrics = ServerMetrics::builder().push(push).build()?;
    let checkouts = metrics
        .registry()
        .counter_vec(("checkouts_total", "Checkouts, by result"), &["result"])?;

    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    let state = AppState {
        client: CallerLayer::new(&args.service)?
            .layer(Client::builder(TokioExecutor::new()).build_http()),
        own_url: format!("http://{addr}"),
        checkouts,
    };
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed\n") }),
        )
        .route("/checkout", get(checkout))
        .with_state(state);
    let app = metrics.instrument(app);
    println!(
        "listening on http://{addr}, pushing to {} every {} ms as {:?}",
        args.collector, args.interval_ms, args.service
    );

    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, TrackedRouter::new(app))
        .with_graceful_shutdown(metrics.shutdown_signal(ctrl_c))
        .await?;
    metrics.shutdown_finished();
    if let Some(report) = metrics.finish_push(Duration::from_secs(5)).await {
        println!(
            "last push: {} delivered, {} refused, {} left undelivered",
            report.delivered, report.rejected, report.pending
        );
    }
    Ok(())
}
