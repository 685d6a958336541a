//! Starting one demo service: its own registry, push to the collector, a
//! tracked listener, graceful shutdown.

use anyhow::{Context, Result, anyhow};
use axum::Router;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use vitals::Registry;
use vitals_server::{PushConfig, ServerMetrics, TrackedListener, TrackedRouter};

/// A running demo service.
pub(super) struct DemoService {
    pub(super) name: &'static str,
    pub(super) addr: SocketAddr,
    pub(super) metrics: ServerMetrics,
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) stop: tokio::sync::oneshot::Sender<()>,
}

/// Where a service listens and where it pushes.
pub(super) struct ServiceSetup<'a> {
    pub(super) name: &'static str,
    pub(super) listen: &'a str,
    pub(super) collector: &'a str,
    pub(super) key: &'a str,
    pub(super) interval: Duration,
}

/// Starts a service serving `app(metrics)`; `app` gets the service's
/// metrics to make task queues from.
pub(super) async fn start_service(
    s: ServiceSetup<'_>,
    app: impl FnOnce(&ServerMetrics) -> Result<Router>,
) -> Result<DemoService> {
    let began = Instant::now();
    let name = s.name;
    let push = PushConfig::new(s.collector, s.key)
        .map_err(|e| anyhow!("push configuration: {e}"))?
        .service(name)
        .instance(format!("{name}-1"))
        .interval(s.interval);
    let metrics = ServerMetrics::builder()
        .registry(Registry::new())
        .push(push)
        .build()
        .map_err(|e| anyhow!("metrics for {name}: {e}"))?;
    let listener = TrackedListener::bind(s.listen, &metrics)
        .await
        .map_err(|e| {
            crate::errors::cannot_listen(
                e,
                s.listen,
                &format!("the {name} service"),
                "--service-listen",
                "VITALS_DEMO_SERVICE_LISTEN",
            )
        })?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    let app = metrics.instrument(app(&metrics)?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = metrics.shutdown_signal(async {
        let _ = stopped.await;
    });
    metrics.startup_finished(began);
    let task = tokio::spawn(async move {
        // TrackedRouter hands each request its connection without the
        // `ConnectInfo` extension (about 800 instructions a request less).
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
pub(super) fn next_port(addr: &str) -> Result<String> {
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
