//! `vitals demo`: the whole system on one machine in one command.
//!
//! Starts a collector on the embedded store, two instrumented services
//! (`frontend`, whose `/checkout` calls `users` with the caller header set,
//! and `users`) that push to it, and a load generator; then prints what the
//! collector answers, every few seconds, until Ctrl-C, SIGTERM or `--duration`.

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceExt};
use vitals::Registry;
use vitals_collector::{Collector, CollectorConfig, Role};
use vitals_server::push::CallerService;
use vitals_server::{CallerLayer, PushConfig, ServerMetrics, TrackedListener, TrackedRouter};

/// Settings of `vitals demo`.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// Collector address.
    pub listen: String,
    /// Address of the `frontend` service (`users` takes the next free port).
    pub service_listen: String,
    /// Store URL.
    pub store: String,
    /// Stop after this long; run until Ctrl-C when `None`.
    pub duration: Option<Duration>,
    /// Requests per second the load generator sends.
    pub rate: u32,
    /// How often the services push.
    pub push_interval: Duration,
}

type HttpClient = Client<HttpConnector, Empty<bytes::Bytes>>;

/// A running demo service.
struct DemoService {
    name: &'static str,
    addr: SocketAddr,
    metrics: ServerMetrics,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct FrontendState {
    users: CallerService<HttpClient>,
    users_url: String,
}

fn users_app() -> Router {
    Router::new()
        .route("/", get(|| async { "users service\n" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move {
                axum::Json(serde_json::json!({ "id": id, "name": format!("user {id}") }))
            }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let ms = q.get("ms").copied().unwrap_or(100).min(5_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("slept {ms} ms\n")
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n") }),
        )
}

async fn checkout(State(state): State<FrontendState>, Path(id): Path<u32>) -> (StatusCode, String) {
    let Ok(request) = http::Request::get(format!("{}/users/{id}", state.users_url))
        .body(Empty::<bytes::Bytes>::new())
    else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "bad request\n".into());
    };
    let mut client = state.users.clone();
    let answer = match client.ready().await {
        Ok(c) => c.call(request).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(res) if res.status().is_success() => {
            let _ = res.into_body().collect().await;
            (StatusCode::OK, format!("checked out for user {id}\n"))
        }
        Ok(res) => (
            StatusCode::BAD_GATEWAY,
            format!("users answered {}\n", res.status()),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("users unreachable: {e}\n")),
    }
}

fn frontend_app(state: FrontendState) -> Router {
    Router::new()
        .route("/", get(|| async { "frontend service\n" }))
        .route("/checkout/{id}", get(checkout))
        .with_state(state)
}

async fn start_service(
    name: &'static str,
    listen: &str,
    collector: &str,
    key: &str,
    interval: Duration,
    app: impl FnOnce(SocketAddr) -> Result<Router>,
) -> Result<DemoService> {
    let began = Instant::now();
    let push = PushConfig::new(collector, key)
        .map_err(|e| anyhow!("push configuration: {e}"))?
        .service(name)
        .instance(format!("{name}-1"))
        .interval(interval);
    let metrics = ServerMetrics::builder()
        .registry(Registry::new())
        .push(push)
        .build()
        .map_err(|e| anyhow!("metrics for {name}: {e}"))?;
    let listener = TrackedListener::bind(listen, &metrics)
        .await
        .with_context(|| format!("cannot listen on {listen} for the {name} service"))?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    let app = metrics.instrument(app(addr)?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = metrics.shutdown_signal(async {
        let _ = stopped.await;
    });
    metrics.startup_finished(began);
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, TrackedRouter::new(app)).with_graceful_shutdown(signal);
        if let Err(e) = serve.await {
            eprintln!("vitals demo: the {name} service stopped: {e}");
        }
    });
    Ok(DemoService {
        name,
        addr,
        metrics,
        task,
        stop,
    })
}

/// The port after `addr`'s, or 0 (any free port) when `addr` asks for any.
fn next_port(addr: &str) -> Result<String> {
    let parsed: SocketAddr = addr
        .parse()
        .with_context(|| format!("--service-listen wants IP:PORT, got {addr:?}"))?;
    let port = match parsed.port() {
        0 => 0,
        p => p
            .checked_add(1)
            .context("--service-listen port is the last one")?,
    };
    Ok(SocketAddr::new(parsed.ip(), port).to_string())
}

/// Sends one GET; returns the status, or 0 if the request failed.
async fn get_status(client: &HttpClient, url: &str) -> u16 {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return 0;
    };
    match client.get(uri).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = res.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

/// Sends a mix of requests to both services at about `rate` per second.
async fn generate_load(frontend: SocketAddr, users: SocketAddr, rate: u32) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        // A fixed mix: mostly fast, some slow, a few failures and 404s.
        let url = match n % 20 {
            0 => format!("http://{users}/fail"),
            1 => format!("http://{users}/slow?ms={}", 50 + (n * 37) % 400),
            2 => format!("http://{frontend}/no-such-page"),
            3..=9 => format!("http://{frontend}/checkout/{}", n % 50),
            10 => format!("http://{frontend}/"),
            _ => format!("http://{users}/users/{}", n % 100),
        };
        let client = client.clone();
        tokio::spawn(async move {
            get_status(&client, &url).await;
        });
    }
}

/// Asks the collector for its services overview with the read key.
async fn overview(client: &HttpClient, collector: SocketAddr, key: &str) -> Result<String> {
    let request = http::Request::get(format!("http://{collector}/v1/services?window=1m"))
        .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Empty::new())?;
    let res = client.request(request).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(anyhow!(
            "collector answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let mut out = String::new();
    out.push_str("  service      requests   req/s   errors   p95 ms   apdex   health\n");
    for s in json["services"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<10} {:>10} {:>7.1} {:>7.1}% {:>8} {:>7} {}\n",
            s["service"].as_str().unwrap_or("?"),
            s["requests"].as_u64().unwrap_or(0),
            s["rate_per_sec"].as_f64().unwrap_or(0.0),
            s["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            s["p95_ms"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
            s["apdex"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            s["health"].as_str().unwrap_or("?"),
        ));
    }
    Ok(out)
}

/// Runs the demo until `shutdown` completes or the configured duration ends.
pub async fn run(args: DemoArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let config = CollectorConfig {
        listen: args.listen.clone(),
        store: args.store.clone(),
        rollup_interval_secs: 5,
        ..CollectorConfig::default()
    };
    let collector = Collector::open(config).await.with_context(|| {
        format!(
            "cannot open the store {}",
            vitals_collector::store::redact_password(&args.store)
        )
    })?;
    let ingest_key = collector.create_key("demo", Role::Ingest).await?;
    let read_key = collector.create_key("demo", Role::Read).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the collector", args.listen))?;
    let collector_addr = listener.local_addr()?;
    let (stop_collector, collector_stopped) = tokio::sync::oneshot::channel::<()>();
    let collector_task = tokio::spawn(collector.serve(listener, async {
        let _ = collector_stopped.await;
    }));
    let collector_url = format!("http://{collector_addr}");

    let users = start_service(
        "users",
        &next_port(&args.service_listen)?,
        &collector_url,
        &ingest_key,
        args.push_interval,
        |_| Ok(users_app()),
    )
    .await?;
    let users_url = format!("http://{}", users.addr);
    let frontend = start_service(
        "frontend",
        &args.service_listen,
        &collector_url,
        &ingest_key,
        args.push_interval,
        |_| {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            let users = CallerLayer::new("frontend")
                .map_err(|e| anyhow!("caller header: {e}"))?
                .layer(client);
            Ok(frontend_app(FrontendState { users, users_url }))
        },
    )
    .await?;

    println!("vitals demo: a collector and two services that push to it");
    println!(
        "  collector   {collector_url}  (store {})",
        vitals_collector::store::redact_password(&args.store)
    );
    for s in [&frontend, &users] {
        println!(
            "  {:<10}  http://{}/  dashboard http://{}/debug/  metrics http://{}/metrics",
            s.name, s.addr, s.addr, s.addr
        );
    }
    println!("  read key    {read_key}");
    println!(
        "  try         curl -H 'Authorization: Bearer {read_key}' {collector_url}/v1/services/users/routes"
    );
    println!(
        "  load        about {} requests/s; services push every {} ms",
        args.rate,
        args.push_interval.as_millis()
    );

    let load = tokio::spawn(generate_load(frontend.addr, users.addr, args.rate));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    tokio::pin!(shutdown);
    loop {
        let remaining = args
            .duration
            .map(|d| d.saturating_sub(started.elapsed()))
            .unwrap_or(Duration::MAX);
        if remaining.is_zero() {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(remaining) => break,
            _ = report.tick() => match overview(&client, collector_addr, &read_key).await {
                Ok(table) => println!("\n[{:>4.0} s] collector /v1/services (last minute)\n{table}", started.elapsed().as_secs_f64()),
                Err(e) => eprintln!("vitals demo: query failed: {e}"),
            },
        }
    }

    // Stop the load, drain the services, deliver their last interval.
    load.abort();
    for s in [frontend, users] {
        let _ = s.stop.send(());
        let _ = s.task.await;
        s.metrics.shutdown_finished();
        match s.metrics.finish_push(Duration::from_secs(5)).await {
            Some(r) => println!(
                "{}: last push {} delivered, {} refused, {} undelivered",
                s.name, r.delivered, r.rejected, r.pending
            ),
            None => println!("{}: push was not running", s.name),
        }
    }
    let table = overview(&client, collector_addr, &read_key).await?;
    println!("\nfinal: collector /v1/services (last minute)\n{table}");
    let _ = stop_collector.send(());
    collector_task
        .await
        .context("collector task")?
        .map_err(|e| anyhow!("collector: {e}"))?;
    Ok(())
}
