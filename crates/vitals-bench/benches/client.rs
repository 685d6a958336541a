//! The outbound client layer's cost per request
//! (`vitals_server::client::ClientMetricsLayer`), against the same client
//! without it, in one run:
//!
//! - `client_layer/{bare,instrumented}`: an in-process inner service that
//!   answers at once (`200`, a 16-byte body), called and its body read to
//!   the end. The difference is what the layer adds to every call: the
//!   caller and `traceparent` headers, the host label, time to first byte,
//!   the duration, status and in-flight records (no event subscriber, no
//!   push).
//! - `client_loopback/{bare,instrumented}`: hyper-util's client against a
//!   real axum server on 127.0.0.1, one keep-alive connection, the same
//!   request both ways (the network and both HTTP stacks dwarf the layer;
//!   a check that nothing else changes).
//!
//! Run: `cargo bench -p vitals-bench --bench client`

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Polls a future that is ready at once (the inner service answers
/// without waiting), so no runtime is in the measurement.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the bench's inner service answers at once"),
    }
}

/// Reads a body that is ready at once to its end; its length.
fn drain<B: http_body::Body + Unpin>(mut body: B) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0;
    while let Poll::Ready(Some(Ok(frame))) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        if let Some(d) = frame.data_ref() {
            n += bytes::Buf::remaining(d);
        }
    }
    n
}

fn inner() -> impl Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"id\":7,\"ok\":1}",
        ))))
    })
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("http://users.internal:8080/users/7")
        .body(Empty::new())
        .expect("a valid request")
}

fn in_process(c: &mut Criterion) {
    let metrics = vitals_server::ServerMetrics::builder()
        .registry(vitals::Registry::new())
        .without_process_metrics()
        .without_runtime_metrics()
        .build()
        .expect("valid names");
    let client = metrics
        .client("users")
        .expect("a valid name")
        .caller("checkout")
        .expect("a valid name");
    let mut bare = inner();
    let mut instrumented = client.layer().layer(inner());
    let mut group = c.benchmark_group("client_layer");
    group.bench_function("bare", |b| {
        b.iter(|| {
            let res = ready(bare.call(request())).expect("answered");
            black_box(drain(res.into_body()))
        })
    });
    group.bench_function("instrumented", |b| {
        b.iter(|| {
            let res = ready(instrumented.call(request())).expect("answered");
            black_box(drain(res.into_body()))
        })
    });
    group.finish();
    // The layer recorded every call it made.
    assert!(
        metrics
            .registry()
            .snapshot()
            .family("http_client_requests")
            .is_some()
    );
}

fn loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = axum::Router::new().route(
            "/users/{id}",
            axum::routing::get(|| async { "{\"id\":7,\"ok\":1}" }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let metrics = vitals_server::ServerMetrics::builder()
        .registry(vitals::Registry::new())
        .without_process_metrics()
        .without_runtime_metrics()
        .build()
        .expect("valid names");
    let client_metrics = metrics.client("users").expect("a valid name");
    let hyper_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Empty<Bytes>>();
    let instrumented = client_metrics.layer().layer(hyper_client.clone());
    let url = format!("http://{addr}/users/7");
    let req = || {
        Request::get(&url)
            .body(Empty::new())
            .expect("a valid request")
    };
    let mut group = c.benchmark_group("client_loopback");
    group.bench_function("bare", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let res = hyper_client.request(req()).await.expect("answered");
                black_box(
                    res.into_body()
                        .collect()
                        .await
                        .expect("read")
                        .to_bytes()
                        .len(),
                )
            })
        })
    });
    group.bench_function("instrumented", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let res = instrumented.clone().oneshot(req()).await.expect("answered");
                black_box(
                    res.into_body()
                        .collect()
                        .await
                        .expect("read")
                        .to_bytes()
                        .len(),
                )
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = in_process, loopback
}
criterion_main!(benches);
