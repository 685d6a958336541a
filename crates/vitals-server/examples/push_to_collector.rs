//! An instrumented server that pushes its request aggregates to a collector.
//!
//! ```text
//! cargo run -p vitals-server --example push_to_collector -- \
//!     --listen 127.0.0.1:3000 --collector http://127.0.0.1:7070 \
//!     --key INGEST_KEY --service checkout [--interval-ms 10000] \
//!     [--ca-cert collector-ca.pem]
//! ```
//!
//! `--collector https://…` works too (feature `push-tls`, on by default);
//! `--ca-cert` adds a private CA (PEM) to the trusted roots.
//!
//! - `GET /users/{id}` JSON, `GET /slow?ms=N` (at most 60 000), `GET /fail` (500)
//! - `GET /checkout`: calls this server's `/users/1` through a hyper-util
//!   client wrapped in `CallerLayer`, so the collector sees the call as
//!   coming from `--service`
//! - `GET /metrics`, `GET /debug/metrics`; push counters are
//!   `vitals_push_batches_total{result}`, `vitals_push_dropped_total{reason}`,
//!   `vitals_push_retries_total`, `vitals_push_failures_total{reason}`
//! - the app's own `checkouts_total{result}` counter rides along with each
//!   batch as a custom metric (`PushConfig::push_metrics`): see it with
//!   `GET /v1/services/{service}/custom` on the collector
//!
//! Ctrl-C stops serving, then the last interval is pushed (5 s at most).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use vitals_server::{
    CallerLayer, ConnectionInfo, PushConfig, ServerMetrics, TrackedListener, push::CallerService,
};

const MAX_SLOW_MS: u64 = 60_000;

type Outgoing = CallerService<Client<HttpConnector, Empty<bytes::Bytes>>>;

#[derive(Clone)]
struct AppState {
    client: Outgoing,
    own_url: String,
    checkouts: vitals::CounterVec,
}

async fn checkout(State(state): State<AppState>) -> (StatusCode, String) {
    let request = http::Request::get(format!("{}/users/1", state.own_url))
        .body(Empty::new())
        .map_err(|e| e.to_string());
    let mut client = state.client.clone();
    let answer = match request {
        Ok(r) => match client.ready().await {
            Ok(c) => c.call(r).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    let result = if answer.is_ok() { "ok" } else { "failed" };
    state.checkouts.get(&[result]).inc();
    match answer {
        Ok(res) => {
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            (
                StatusCode::OK,
                format!("users/1 answered {status}: {body}\n"),
            )
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("call failed: {e}\n")),
    }
}

fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u64>| async move { format!("{{\"id\":{id}}}\n") }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let ms = q.get("ms").copied().unwrap_or(100).min(MAX_SLOW_MS);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("slept {ms} ms\n")
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n") }),
        )
        .route("/checkout", get(checkout))
        .with_state(state)
}

struct Args {
    listen: String,
    collector: String,
    key: String,
    service: String,
    interval_ms: u64,
    ca_cert: Option<String>,
}

const USAGE: &str = "usage: push_to_collector [--listen ADDR] [--collector URL] [--key KEY] \
[--service NAME] [--interval-ms N] [--ca-cert PEM_FILE]
  defaults: --listen 127.0.0.1:3000 --collector http://127.0.0.1:7070 --key dev-key \
--service demo --interval-ms 10000";

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        listen: "127.0.0.1:3000".into(),
        collector: "http://127.0.0.1:7070".into(),
        key: "dev-key".into(),
        service: "demo".into(),
        interval_ms: 10_000,
        ca_cert: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(None);
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value; try --help"))?;
        match flag.as_str() {
            "--listen" => a.listen = value,
            "--collector" => a.collector = value,
            "--key" => a.key = value,
            "--service" => a.service = value,
            "--ca-cert" => a.ca_cert = Some(value),
            "--interval-ms" => {
                a.interval_ms = value
                    .parse()
                    .map_err(|_| format!("--interval-ms wants milliseconds, got {value:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(Some(a))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences (`?` in main would print their Debug form).
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push_to_collector: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let push = PushConfig::new(&args.collector, &args.key)?
        .service(&args.service)
        .interval(Duration::from_millis(args.interval_ms))
        .push_metrics(["checkouts_total"]);
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
    let app = metrics.instrument(app(state));
    println!(
        "listening on http://{addr}, pushing to {} every {} ms as {:?}",
        args.collector, args.interval_ms, args.service
    );
    let signal = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(metrics.shutdown_signal(signal))
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
