//! `vitals demo`: the whole system on one machine in one command.
//!
//! Starts a collector on the embedded store, two instrumented services
//! (`frontend`, whose `/checkout` calls `users` with the caller header and
//! the trace carried on, and `users`, with a task queue) that push to it,
//! and a load that exercises every panel: HTTP/1 and HTTP/2 requests with
//! a realistic latency mix and some 4xx and 5xx, WebSocket chat sessions,
//! Server-Sent Events subscribers, queued jobs with retries and failures.
//! Then it prints what the collector answers, every few seconds, until
//! Ctrl-C, SIGTERM or `--duration`.
//!
//! - `apps.rs`: the services' routes.
//! - `service.rs`: starting one service.
//! - `load.rs`: the load.
//! - `report.rs`: the table and status lines it prints.

mod apps;
mod load;
mod report;
mod service;

use anyhow::{Context, Result, anyhow};
use apps::{FrontendState, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use service::{ServiceSetup, next_port, start_service};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::Layer;
use vitals_collector::{Collector, CollectorConfig, Role};
use vitals_server::CallerLayer;

/// Jobs the `emails` queue holds before `/users/{id}/welcome` answers 503.
const EMAIL_QUEUE: usize = 1_000;
/// Workers running the `emails` queue.
const EMAIL_WORKERS: usize = 2;

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
    // The demo's keys from an earlier run on this store go: starting the
    // demo again never piles keys up (`vitals collector keys list`).
    let old_keys = vitals_collector::auth::list_keys(&**collector.store(), Some("demo")).await?;
    for old in &old_keys {
        collector.store().revoke_keys(old.hash.clone()).await?;
    }
    let ingest_key = collector.create_key("demo", Role::Ingest).await?;
    let read_key = collector.create_key("demo", Role::Read).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            crate::errors::cannot_listen(
                e,
                &args.listen,
                "the collector",
                "--listen",
                "VITALS_DEMO_LISTEN",
            )
        })?;
    let collector_addr = listener.local_addr()?;
    let (stop_collector, collector_stopped) = tokio::sync::oneshot::channel::<()>();
    let collector_task = tokio::spawn(collector.serve(listener, async {
        let _ = collector_stopped.await;
    }));
    let collector_url = format!("http://{collector_addr}");

    let (email_jobs, email_rx) = tokio::sync::mpsc::channel::<()>(EMAIL_QUEUE);
    let email_rx = Arc::new(tokio::sync::Mutex::new(email_rx));
    let users = start_service(
        ServiceSetup {
            name: "users",
            listen: &next_port(&args.service_listen)?,
            collector: &collector_url,
            key: &ingest_key,
            interval: args.push_interval,
        },
        |metrics| {
            let emails = metrics.tasks().queue("emails");
            for _ in 0..EMAIL_WORKERS {
                tokio::spawn(apps::email_worker(email_rx.clone(), emails.clone()));
            }
            Ok(apps::users_app(email_jobs, emails))
        },
    )
    .await?;
    let users_url = format!("http://{}", users.addr);
    let frontend = start_service(
        ServiceSetup {
            name: "frontend",
            listen: &args.service_listen,
            collector: &collector_url,
            key: &ingest_key,
            interval: args.push_interval,
        },
        |_| {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            let users = CallerLayer::new("frontend")
                .map_err(|e| anyhow!("caller header: {e}"))?
                .layer(client);
            Ok(apps::frontend_app(FrontendState { users, users_url }))
        },
    )
    .await?;

    println!("vitals demo: a collector and two services that push to it");
    println!(
        "  collector   {collector_url}/  (the web UI: sign in with the read key below; store {})",
        vitals_collector::store::redact_password(&args.store)
    );
    println!("  api         {collector_url}/v1/services  (with the read key)");
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
        "  load        about {} requests/s over HTTP/1 and HTTP/2, {} WebSocket chats, {} SSE \
         subscribers, an email queue; services push every {} ms",
        args.rate,
        load::CHAT_SESSIONS,
        load::SSE_SUBSCRIBERS,
        args.push_interval.as_millis()
    );

    let load = load::start(frontend.addr, users.addr, args.rate);
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
            _ = report.tick() => match report::services(&client, collector_addr, &read_key).await {
                Ok(json) => println!(
                    "\n[{:>4.0} s] collector /v1/services (last minute)\n{}",
                    started.elapsed().as_secs_f64(),
                    report::table(&json, started.elapsed())
                ),
                Err(e) => eprintln!("vitals demo: query failed: {e}"),
            },
        }
    }

    // Stop the load, drain the services, deliver their last interval.
    drop(load);
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
    let json = report::services(&client, collector_addr, &read_key).await?;
    println!(
        "\nfinal: collector /v1/services (last minute)\n{}",
        report::table(&json, started.elapsed())
    );
    let _ = stop_collector.send(());
    collector_task
        .await
        .context("collector task")?
        .map_err(|e| anyhow!("collector: {e}"))?;
    Ok(())
}
