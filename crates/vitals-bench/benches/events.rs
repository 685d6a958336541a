//! Event emission on the bus (`EventBus::emit_with`) with 0, 1 and 4
//! subscribers: sync callbacks, bounded std channels and bounded tokio
//! channels (the `subscribe_sink` path `/debug/events` uses), each drained
//! by a consumer thread; plus the drop path (a full queue) and tokio's
//! broadcast channel as a reference point.
//!
//! The event is a `RequestCompleted` as the HTTP layer builds it (two
//! short strings), so the figures include building it when someone listens.
//!
//! `event_to_sse_client` measures the live path end to end on loopback:
//! from `emit` to a client of `/debug/events` (a plain TCP reader) having
//! read the whole SSE frame.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use vitals::{Event, EventBus, Subscription};

fn request_event() -> Event {
    Event::RequestCompleted {
        method: "GET".to_owned(),
        route: "/users/{id}".to_owned(),
        status: 200,
        duration_secs: 0.0012,
    }
}

/// Queue size per subscriber, as `/debug/events` defaults to.
const CAPACITY: usize = 1024;

/// Subscribers that stay alive for one benchmark, and their drain threads.
struct Subscribers {
    _subs: Vec<Subscription>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        self._subs.clear(); // closes the channels, ending the drains
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Callback,
    StdChannel,
    TokioSink,
}

fn subscribe(bus: &EventBus, kind: Kind, n: usize) -> Subscribers {
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    let mut threads = Vec::new();
    for i in 0..n {
        let name = format!("bench_{i}");
        match kind {
            Kind::Callback => {
                let seen = AtomicU64::new(0);
                subs.push(bus.subscribe(name, move |e| {
                    seen.fetch_add(e.id & 1, Relaxed);
                }));
            }
            Kind::StdChannel => {
                let (sub, rx) = bus.subscribe_channel(name, CAPACITY);
                subs.push(sub);
                threads.push(std::thread::spawn(move || {
                    while let Ok(e) = rx.recv() {
                        black_box(e);
                    }
                }));
            }
            Kind::TokioSink => {
                let (tx, mut rx) = tokio::sync::mpsc::channel(CAPACITY);
                subs.push(bus.subscribe_sink(name, move |e| tx.try_send(e.clone()).is_ok()));
                threads.push(std::thread::spawn(move || {
                    while let Some(e) = rx.blocking_recv() {
                        black_box(e);
                    }
                }));
            }
        }
    }
    Subscribers {
        _subs: subs,
        stop,
        threads,
    }
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_emit");

    let bus = EventBus::new();
    g.bench_function("0 subscribers", |b| {
        b.iter(|| black_box(&bus).emit_with(request_event))
    });

    for (label, kind) in [
        ("callback", Kind::Callback),
        ("std channel", Kind::StdChannel),
        ("tokio sink", Kind::TokioSink),
    ] {
        for n in [1usize, 4] {
            let bus = EventBus::new();
            let subs = subscribe(&bus, kind, n);
            g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| black_box(&bus).emit_with(request_event))
            });
            drop(subs);
        }
    }

    // The drop path: one subscriber whose queue is always full.
    let bus = EventBus::new();
    let (_sub, _rx) = bus.subscribe_channel("full", 1);
    bus.emit(request_event());
    g.bench_function("std channel full (dropped)", |b| {
        b.iter(|| black_box(&bus).emit_with(request_event))
    });

    // Reference: tokio's broadcast channel, build + send, drained.
    for n in [1usize, 4] {
        let (tx, _) = tokio::sync::broadcast::channel::<Arc<Event>>(CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let mut rx = tx.subscribe();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Relaxed) {
                        match rx.try_recv() {
                            Ok(e) => {
                                black_box(e);
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                                std::thread::yield_now()
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Closed) => break,
                            Err(_) => {}
                        }
                    }
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("tokio broadcast", n), &n, |b, _| {
            b.iter(|| {
                let _ = black_box(&tx).send(Arc::new(request_event()));
            })
        });
        stop.store(true, Relaxed);
        drop(tx);
        for t in threads {
            let _ = t.join();
        }
    }

    g.finish();
}

/// Emit one event, wait until an SSE client on loopback has read it.
fn event_to_sse_client(c: &mut Criterion) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let registry = vitals::Registry::new();
    let (bus, mut client) = runtime.block_on(async {
        let metrics = vitals_server::ServerMetrics::builder()
            .registry(registry.clone())
            .without_process_metrics()
            // No heartbeat during the run: every frame read is an event.
            .events_heartbeat(std::time::Duration::from_secs(3600))
            .build()
            .expect("valid names");
        let app = metrics.instrument(axum::Router::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind on loopback");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut client = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect on loopback");
        let _ = client.set_nodelay(true);
        client
            .write_all(b"GET /debug/events?types=custom HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .expect("send the request");
        // Read the response headers.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            client.read_exact(&mut byte).await.expect("headers");
            head.push(byte[0]);
        }
        (metrics.events().clone(), client)
    });
    let mut g = c.benchmark_group("event_to_sse_client");
    g.bench_function("emit to frame read (loopback)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut buf = vec![0u8; 64 * 1024];
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    bus.emit(Event::Custom {
                        name: "tick".into(),
                        fields: Default::default(),
                    });
                    // A frame ends with a blank line (chunked: "\n\n\r\n").
                    let mut seen = Vec::new();
                    loop {
                        let n = client.read(&mut buf).await.expect("read the stream");
                        assert!(n > 0, "stream closed");
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(2).any(|w| w == b"\n\n") {
                            break;
                        }
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = emit, event_to_sse_client
}
criterion_main!(benches);
