//! Event emission on the bus (`EventBus::emit_with`) with 0, 1 and 4
//! subscribers: sync callbacks, bounded std channels and bounded tokio
//! channels (the `subscribe_sink` path `/debug/events` uses), each drained
//! by a consumer thread; plus the drop path (a full queue) and tokio's
//! broadcast channel as a reference point.
//!
//! The event is a `RequestCompleted` as the HTTP layer builds it (two
//! short strings), so the figures include building it when someone listens.

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

criterion_group! {
    name = benches;
    config = vitals_bench::config();
    targets = emit
}
criterion_main!(benches);
