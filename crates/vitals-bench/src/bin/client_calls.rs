//! N outbound calls through the client layer (`instrumented`) or the same
//! inner service without it (`bare`), in process: the inner service
//! answers at once, and each answer's body is read to its end. For
//! instruction counts under callgrind (`benches/client.rs` has the
//! criterion timings of the same loop):
//!
//! Run: `cargo build --release -p vitals-bench --bin client_calls && valgrind --tool=callgrind target/release/client_calls instrumented 50000`
//!
//! Two runs per mode with different N give the instructions per call as
//! the difference over the difference in N (start-up cancels out).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the inner service answers at once"),
    }
}

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

fn run<S>(mut service: S, n: u64)
where
    S: Service<Request<Empty<Bytes>>>,
    S::Response: IntoBody,
    S::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let req = Request::get("http://users.internal:8080/users/7")
            .body(Empty::new())
            .expect("a valid request");
        let res = ready(service.call(req)).expect("answered");
        black_box(res.drain());
    }
}

/// A response whose body can be drained.
trait IntoBody {
    fn drain(self) -> usize;
}

impl<B: http_body::Body + Unpin> IntoBody for Response<B> {
    fn drain(self) -> usize {
        drain(self.into_body())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"id\":7,\"ok\":1}",
        ))))
    });
    match mode.as_str() {
        "bare" => run(inner, n),
        "instrumented" => {
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
            run(client.layer().layer(inner), n);
        }
        other => {
            eprintln!("usage: client_calls bare|instrumented [N] (not {other:?})");
            std::process::exit(2);
        }
    }
}
