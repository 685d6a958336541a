//! The push client end to end: a real instrumented server on 127.0.0.1:0,
//! real HTTP clients, and a small real axum collector that records every
//! batch it receives and answers what each test asks for.
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
use vitals_test_support::wait_until_async;

mod common;
use common::value;

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

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn exact_counts_per_method_route_status_class_and_caller() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c).await;
    let checkout: &[(&str, &[u8])] = &[("x-vitals-caller", b"checkout")];
    for i in 0..5 {
        assert_eq!(s.get(&format!("/users/{i}?debug=1"), &[]).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(s.get("/users/7", checkout).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(s.get("/fail", checkout).await, 500);
    }
    for _ in 0..4 {
        assert_eq!(s.get("/no/such/page", &[]).await, 404);
    }
    assert_eq!(
        s.get("/users/9", &[("traceparent", TRACEPARENT.as_bytes())])
            .await,
        200
    );
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));

    let got = collector.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.authorization, "Bearer test-key");
    assert!(r.gzip, "a batch with 15 samples is over 1 KiB: gzip");
    let b = &r.batch;
    assert_eq!(
        (b.service.as_str(), b.instance.as_str()),
        ("checkout", "checkout-1")
    );
    assert_eq!(b.batch_id.len(), 32);
    assert!(b.batch_id.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(b.apdex_t_ms, 500.0);
    assert_eq!(b.routes.len(), 4, "{:#?}", b.routes);

    let users = find(b, "GET", "/users/{id}", 2, None);
    assert_eq!((users.count, users.errors), (6, 0));
    assert_eq!(users.duration_ms.count(), 6);
    let users_checkout = find(b, "GET", "/users/{id}", 2, Some("checkout"));
    assert_eq!((users_checkout.count, users_checkout.errors), (3, 0));
    let fail = find(b, "GET", "/fail", 5, Some("checkout"));
    assert_eq!((fail.count, fail.errors), (2, 2));
    let unmatched = find(b, "GET", "unmatched", 4, None);
    assert_eq!((unmatched.count, unmatched.errors), (4, 0));

    // Fewer requests than the reservoir: every one is sampled.
    assert_eq!(b.requests.len(), 15);
    assert!(b.requests.iter().all(|r| !r.path.contains('?')));
    let traced: Vec<_> = b.requests.iter().filter(|r| r.trace_id.is_some()).collect();
    assert_eq!(traced.len(), 1);
    assert_eq!(traced[0].path, "/users/9");
    assert_eq!(traced[0].route, "/users/{id}");
    assert_eq!(
        traced[0].trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let failed = b.requests.iter().filter(|r| r.status == 500).count();
    assert_eq!(failed, 2);
    assert!(
        b.requests
            .iter()
            .filter(|r| r.route == "/fail")
            .all(|r| r.caller.as_deref() == Some("checkout"))
    );

    // The next interval holds only what came after.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    s.flush().await;
    let got = collector.received();
    assert_eq!(got.len(), 2);
    let next = &got[1].batch;
    assert_ne!(next.batch_id, b.batch_id);
    assert_eq!(next.routes.len(), 1);
    assert_eq!(find(next, "GET", "/users/{id}", 2, None).count, 1);
    assert!(next.start_unix_ms >= b.start_unix_ms + b.interval_ms);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 2);
}

#[tokio::test]
async fn apdex_counts_and_percentiles_from_the_pushed_sketch() {
    let collector = Collector::start().await;
    // T = 80 ms: satisfied ≤ 80, tolerating ≤ 320, frustrated above; the
    // sleeps keep wide margins from both bounds.
    let s = Arc::new(start(&collector.url(), |c| c.apdex_t(Duration::from_millis(80))).await);
    // 20 fast, 10 of about 150 ms, 5 over 400 ms, sent concurrently.
    let mut plan = vec![0u64; 20];
    plan.extend([150; 10]);
    plan.extend([400; 5]);
    let tasks: Vec<_> = plan
        .iter()
        .map(|&ms| {
            let s = s.clone();
            tokio::spawn(async move { s.get(&format!("/sleep?ms={ms}"), &[]).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    s.flush().await;
    let got = collector.received();
    let b = &got[0].batch;
    assert_eq!(b.apdex_t_ms, 80.0);
    let sleep = find(b, "GET", "/sleep", 2, None);
    assert_eq!(sleep.count, 35);
    assert_eq!((sleep.satisfied, sleep.tolerating), (20, 10));

    // Exact durations: every request is in the sample (35 < 100).
    let mut exact: Vec<f64> = b.requests.iter().map(|r| r.duration_ms).collect();
    assert_eq!(exact.len(), 35);
    exact.sort_by(f64::total_cmp);
    for q in [0.5, 0.75, 0.9, 0.95, 0.99, 1.0] {
        let rank = ((q * exact.len() as f64).ceil() as usize).max(1) - 1;
        let want = exact[rank];
        let got = sleep.duration_ms.quantile(q).unwrap();
        assert!(
            (got - want).abs() / want <= 0.01,
            "p{q}: sketch {got} ms vs exact {want} ms"
        );
    }
    let sum: f64 = exact.iter().sum();
    assert!((sleep.duration_ms.sum() - sum).abs() < 1e-6 * sum);
}

#[tokio::test]
async fn hostile_callers_and_traceparents_are_folded_and_counted() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c.max_callers(2)).await;
    let long_path = format!("/users/1/{}", "a".repeat(1000));
    let cases: &[(&str, &[u8])] = &[
        ("x-vitals-caller", b"billing"),
        ("x-vitals-caller", b"search"),
        ("x-vitals-caller", b"third"),       // over the limit
        ("x-vitals-caller", b"fourth"),      // over the limit
        ("x-vitals-caller", b"has space"),   // bad charset
        ("x-vitals-caller", b"caf\xc3\xa9"), // not ASCII
        ("x-vitals-caller", b"\x80\xff"),
        ("x-vitals-caller", &[b'x'; 65]), // too long
        (
            "traceparent",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ),
        ("traceparent", b"garbage"),
    ];
    for (k, v) in cases {
        assert_eq!(s.get("/users/1", &[(k, v)]).await, 200);
    }
    let huge = vec![b'y'; 8000];
    assert_eq!(s.get("/users/1", &[("x-vitals-caller", &huge)]).await, 200);
    assert_eq!(s.get(&long_path, &[]).await, 404);
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    let count = |caller: Option<&str>| find(&b, "GET", "/users/{id}", 2, caller).count;
    assert_eq!(count(Some("billing")), 1);
    assert_eq!(count(Some("search")), 1);
    assert_eq!(count(Some("_overflow")), 2);
    assert_eq!(count(Some("invalid")), 5);
    assert_eq!(count(None), 2);
    assert!(b.routes.iter().all(|r| {
        r.caller
            .as_deref()
            .is_none_or(|c| ["billing", "search", "_overflow", "invalid"].contains(&c))
    }));
    assert!(b.requests.iter().all(|r| r.trace_id.is_none()));
    let sampled_long = b.requests.iter().find(|r| r.status == 404).unwrap();
    assert_eq!(
        sampled_long.path.len(),
        vitals_server::push::MAX_SAMPLED_PATH_LEN
    );
    assert!(long_path.starts_with(&sampled_long.path));
    let rejected = |reason| s.counter("vitals_push_rejected", &[("reason", reason)]);
    assert_eq!(rejected("caller_invalid"), 5);
    assert_eq!(rejected("caller_overflow"), 2);
    assert_eq!(rejected("traceparent_invalid"), 2);
}

#[tokio::test]
async fn a_retried_batch_keeps_its_id() {
    let collector = Collector::start().await;
    collector.answer(&[(503, None), (429, Some("0")), (500, None)]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));
    let got = collector.received();
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [503, 429, 500, 200]);
    assert!(
        got.iter().all(|r| r.batch == got[0].batch),
        "same bytes, same id"
    );
    assert_eq!(s.counter("vitals_push_retries", &[]), 3);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let collector = Collector::start().await;
    collector.answer(&[(429, Some("1"))]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    // Within 0.5 s only the refused attempt happened: the retry waits 1 s.
    let report = s
        .metrics
        .push_client()
        .unwrap()
        .flush(Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.pending), (0, 1));
    assert_eq!(collector.received().len(), 1);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (2, 0));
    let got = collector.received();
    assert_eq!(got[0].batch.batch_id, got[1].batch.batch_id);
}

#[tokio::test]
async fn a_refused_batch_is_not_retried() {
    let collector = Collector::start().await;
    collector.answer(&[(400, None)]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!(
        (report.delivered, report.rejected, report.pending),
        (0, 1, 0)
    );
    assert_eq!(collector.received().len(), 1);
    assert_eq!(
        s.counter("vitals_push_batches", &[("result", "rejected")]),
        1
    );
    assert_eq!(s.counter("vitals_push_retries", &[]), 0);
    // The refused interval is gone; the next one is delivered.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!(report.delivered, 1);
    let got = collector.received();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].batch.batch_id, got[1].batch.batch_id);
    assert_eq!(find(&got[1].batch, "GET", "/users/{id}", 2, None).count, 1);
}

#[tokio::test]
async fn collector_down_keeps_a_bounded_queue_and_requests_unaffected() {
    // A port nobody listens on: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = start(&url, |c| {
        c.queue_capacity(3)
            .backoff(Duration::from_secs(60), Duration::from_secs(60))
    })
    .await;
    for _ in 0..5 {
        assert_eq!(s.get("/users/1", &[]).await, 200);
        let report = s
            .metrics
            .push_client()
            .unwrap()
            .flush(Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(report.delivered, 0);
        assert!(report.pending <= 3);
    }
    assert_eq!(s.counter("vitals_push_queue_batches", &[]), 3);
    assert_eq!(
        s.counter("vitals_push_dropped", &[("reason", "queue_full")]),
        2
    );
    // Requests are still served and counted as usual.
    assert_eq!(s.get("/users/2", &[]).await, 200);
    assert_eq!(
        s.counter(
            "http_server_requests",
            &[
                ("method", "GET"),
                ("route", "/users/{id}"),
                ("status", "200")
            ]
        ),
        6
    );
    let report = s
        .metrics
        .finish_push(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(report.pending, 3);
    assert_eq!(
        s.counter("vitals_push_dropped", &[("reason", "shutdown")]),
        3
    );
    assert!(
        s.metrics
            .push_client()
            .unwrap()
            .flush(Duration::ZERO)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn intervals_are_pushed_on_their_own_and_flushed_on_shutdown() {
    let collector = Collector::start().await;
    let mut s = start(&collector.url(), |c| c.interval(Duration::from_millis(200))).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    // The loop pushes by itself (empty intervals too).
    let got = wait_until_async(
        "two intervals pushed by the loop",
        Duration::from_secs(10),
        async || match collector.received() {
            got if got.len() >= 2 => Ok(got),
            got => Err(format!("{got:?}")),
        },
    )
    .await;
    let total: u64 = got
        .iter()
        .flat_map(|r| &r.batch.routes)
        .map(|r| r.count)
        .sum();
    assert_eq!(total, 1);
    for r in &got {
        assert!(r.batch.interval_ms < 5000);
    }

    // Requests of the last, unfinished interval reach the collector on
    // shutdown.
    let before = got.len();
    for _ in 0..3 {
        assert_eq!(s.get("/fail", &[]).await, 500);
    }
    s.shutdown.take().unwrap().send(()).unwrap();
    (&mut s.serving).await.unwrap();
    s.metrics.shutdown_finished();
    let report = s.metrics.finish_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.pending, 0);
    let got = collector.received();
    let fails: u64 = got[before..]
        .iter()
        .flat_map(|r| &r.batch.routes)
        .filter(|r| r.route == "/fail")
        .map(|r| r.errors)
        .sum();
    assert_eq!(fails, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_the_interval_swap_are_counted_once() {
    let collector = Collector::start().await;
    let s = Arc::new(start(&collector.url(), |c| c).await);
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let path = if (t + i) % 5 == 0 {
                        "/fail"
                    } else {
                        "/users/3"
                    };
                    s.get(path, &[]).await;
                }
            })
        })
        .collect();
    // Close intervals while the requests run.
    let flusher = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                s.flush().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for t in senders {
        t.await.unwrap();
    }
    flusher.await.unwrap();
    s.flush().await;
    let got = collector.received();
    let routes: Vec<&RouteAggregate> = got.iter().flat_map(|r| &r.batch.routes).collect();
    let sum = |route: &str, f: fn(&RouteAggregate) -> u64| -> u64 {
        routes
            .iter()
            .filter(|r| r.route == route)
            .map(|r| f(r))
            .sum()
    };
    assert_eq!(sum("/users/{id}", |r| r.count), 160);
    assert_eq!(sum("/fail", |r| r.count), 40);
    assert_eq!(sum("/fail", |r| r.errors), 40);
    assert_eq!(sum("/users/{id}", |r| r.duration_ms.count()), 160);
    assert_eq!(sum("/users/{id}", |r| r.satisfied + r.tolerating), 160);
    assert!(routes.iter().all(|r| r.errors <= r.count && r.count > 0));
    let mut ids: Vec<&str> = got.iter().map(|r| r.batch.batch_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "every batch has its own id");
}

#[tokio::test]
async fn the_sample_is_bounded_per_interval() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c.sample_size(10)).await;
    for i in 0..40 {
        assert_eq!(s.get(&format!("/users/{i}"), &[]).await, 200);
    }
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    assert_eq!(find(&b, "GET", "/users/{id}", 2, None).count, 40);
    assert_eq!(b.requests.len(), 10);
    let mut paths: Vec<&str> = b.requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 10, "ten distinct requests");
    // The reservoir starts afresh each interval.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    s.flush().await;
    assert_eq!(collector.received()[1].batch.requests.len(), 1);
}

#[tokio::test]
async fn caller_layer_names_the_calling_service() {
    use tower::{Layer, Service, ServiceExt};
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c).await;
    let mut client = vitals_server::CallerLayer::new("frontend")
        .unwrap()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>());
    for _ in 0..3 {
        let req = http::Request::get(format!("http://{}/users/5", s.addr))
            .body(Empty::new())
            .unwrap();
        let res = client.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    assert_eq!(b.routes.len(), 1);
    assert_eq!(find(&b, "GET", "/users/{id}", 2, Some("frontend")).count, 3);
    assert!(
        b.requests
            .iter()
            .all(|r| r.caller.as_deref() == Some("frontend"))
    );
}

#[tokio::test]
async fn huge_and_stalled_answers_are_bounded() {
    let collector = Collector::start().await;
    // 8 MB answers: read up to the client's limit, then given up on.
    *collector.state.answer_bytes.lock().unwrap() = 8 << 20;
    // The first answer comes after 3 s, past the 300 ms request timeout.
    *collector.state.stall.lock().unwrap() = (1, Duration::from_secs(3));
    let s = start(&collector.url(), |c| {
        c.request_timeout(Duration::from_millis(300))
    })
    .await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));
    let got = collector.received();
    assert_eq!(got.len(), 2, "the stalled attempt, then the retry");
    assert_eq!(got[0].batch.batch_id, got[1].batch.batch_id);
    assert_eq!(s.counter("vitals_push_retries", &[]), 1);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 1);
    // Still working with the huge answers.
    assert_eq!(s.get("/users/2", &[]).await, 200);
    assert_eq!(s.flush().await.delivered, 1);
}

#[tokio::test]
async fn chosen_registry_metrics_ride_along_as_custom_metrics() {
    use vitals::wire::CustomKind;
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| {
        c.push_metrics(["orders_total"])
            .push_metrics_prefix("app_")
            .max_custom(3)
    })
    .await;
    let orders = s
        .registry
        .counter_vec(("orders_total", "Orders"), &["shop"])
        .unwrap();
    orders.get(&["eu"]).add(3);
    let depth = s.registry.gauge(("app_queue_depth", "Depth")).unwrap();
    depth.set(9);
    let hidden = s.registry.counter(("hidden_total", "Not pushed")).unwrap();
    hidden.inc();
    assert_eq!(s.flush().await.delivered, 1);
    orders.get(&["eu"]).add(2);
    orders.get(&["us"]).inc();
    depth.set(4);
    // A fourth series goes past max_custom(3).
    orders.get(&["jp"]).inc();
    assert_eq!(s.flush().await.delivered, 1);
    let got = collector.received();
    assert_eq!(got.len(), 2);
    let find = |b: &IngestBatch, name: &str, labels: &[(&str, &str)]| {
        b.custom
            .iter()
            .find(|m| {
                m.name == name
                    && m.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>()
                        == labels
            })
            .map(|m| (m.kind, m.value))
    };
    let first = &got[0].batch;
    assert_eq!(first.custom.len(), 2, "{:?}", first.custom);
    assert_eq!(
        find(first, "orders_total", &[("shop", "eu")]),
        Some((CustomKind::Counter, 3.0))
    );
    assert_eq!(
        find(first, "app_queue_depth", &[]),
        Some((CustomKind::Gauge, 9.0))
    );
    let second = &got[1].batch;
    assert_eq!(second.custom.len(), 3, "capped: {:?}", second.custom);
    assert_eq!(
        find(second, "orders_total", &[("shop", "eu")]),
        Some((CustomKind::Counter, 5.0)),
        "counters are cumulative"
    );
    assert!(second.custom.iter().all(|m| m.name != "hidden_total"));
    assert_eq!(
        s.counter("vitals_push_custom_dropped", &[("reason", "batch_limit")]),
        1
    );
}
