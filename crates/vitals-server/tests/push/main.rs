//! The push client end to end: a real instrumented server on 127.0.0.1:0,
//! real HTTP clients, and a small real axum collector that records every
//! batch it receives and answers what each test asks for.
//!
//! - `batches`: what a pushed batch carries: exact counts per method,
//!   route, status class and caller, Apdex counts and percentiles from the
//!   sketch, folded hostile callers, a bounded sample, chosen registry
//!   metrics.
//! - `delivery`: how batches travel: retries keep the batch id and honour
//!   Retry-After, refusals are not retried, a collector that is down
//!   leaves a bounded queue, intervals are pushed on their own and flushed
//!   on shutdown, huge or stalled answers are bounded.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vitals::Registry;
use vitals::wire::{IngestBatch, RouteAggregate};
use vitals_server::{ConnectionInfo, PushConfig, ServerMetrics, TrackedListener};

#[path = "../common/mod.rs"]
mod common;
use common::value;

mod batches;
mod delivery;

/// One POST the fake collector received.
#[derive(Debug, Clone)]
struct Received {
    batch: IngestBatch,
    gzip: bool,
    authorization: String,
    answered: u16,
}

#[derive(Default)]
struct CollectorState {
    received: Mutex<Vec<Received>>,
    /// Answers to give, in order (status, Retry-After); then 200.
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    /// Bytes of body every answer carries.
    answer_bytes: Mutex<usize>,
    /// How long the first `stalls` answers wait before being sent.
    stall: Mutex<(u32, Duration)>,
}

struct Collector {
    addr: SocketAddr,
    state: Arc<CollectorState>,
}

impl Collector {
    async fn start() -> Collector {
        let state = Arc::new(CollectorState::default());
        let app = Router::new()
            .route("/v1/ingest", post(ingest))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn answer(&self, answers: &[(u16, Option<&'static str>)]) {
        self.state.script.lock().unwrap().extend(answers);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

async fn ingest(
    State(state): State<Arc<CollectorState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let json = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let batch: IngestBatch = serde_json::from_slice(&json).unwrap();
    let (status, retry_after) = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, None));
    state.received.lock().unwrap().push(Received {
        batch,
        gzip,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        answered: status,
    });
    let mut out = HeaderMap::new();
    if let Some(r) = retry_after {
        out.insert("retry-after", HeaderValue::from_static(r));
    }
    // Recorded on arrival, so a stalled attempt the client gives up on is seen.
    let stall = {
        let mut s = state.stall.lock().unwrap();
        if s.0 > 0 {
            s.0 -= 1;
            Some(s.1)
        } else {
            None
        }
    };
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let body = vec![b'x'; *state.answer_bytes.lock().unwrap()];
    (StatusCode::from_u16(status).unwrap(), out, body)
}

fn app() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("{{\"id\":{id}}}") }),
        )
        .route(
            "/sleep",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(0))).await;
                "slept"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
}

struct Server {
    addr: SocketAddr,
    registry: Registry,
    metrics: ServerMetrics,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn get(&self, path: &str, headers: &[(&str, &[u8])]) -> u16 {
        let mut req = http::Request::get(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        let res = client
            .request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        res.into_body().collect().await.unwrap();
        status
    }

    async fn flush(&self) -> vitals_server::FlushReport {
        self.metrics
            .push_client()
            .unwrap()
            .flush(Duration::from_secs(5))
            .await
            .unwrap()
    }

    fn counter(&self, family: &str, labels: &[(&str, &str)]) -> i128 {
        value(&self.registry.snapshot(), family, labels).unwrap_or(0)
    }
}

/// A server pushing to `collector` with an interval long enough that only
/// explicit flushes close intervals, unless `config` says otherwise.
async fn start(collector: &str, config: impl FnOnce(PushConfig) -> PushConfig) -> Server {
    let registry = Registry::new();
    let push = config(
        PushConfig::new(collector, "test-key")
            .unwrap()
            .service("checkout")
            .instance("checkout-1")
            .interval(Duration::from_secs(3600))
            .backoff(Duration::from_millis(1), Duration::from_millis(20)),
    );
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .push(push)
        .build()
        .unwrap();
    let listener = TrackedListener::bind("127.0.0.1:0", &metrics)
        .await
        .unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = metrics.instrument(app());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = metrics.shutdown_signal(async move {
        let _ = rx.await;
    });
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnectionInfo>(),
        )
        .with_graceful_shutdown(signal)
        .await
        .unwrap();
    });
    Server {
        addr,
        registry,
        metrics,
        shutdown: Some(tx),
        serving,
    }
}

fn find<'a>(
    batch: &'a IngestBatch,
    method: &str,
    route: &str,
    class: u8,
    caller: Option<&str>,
) -> &'a RouteAggregate {
    batch
        .routes
        .iter()
        .find(|r| {
            r.method == method
                && r.route == route
                && r.status_class == class
                && r.caller.as_deref() == caller
        })
        .unwrap_or_else(|| panic!("no {method} {route} {class} {caller:?} in {batch:#?}"))
}
