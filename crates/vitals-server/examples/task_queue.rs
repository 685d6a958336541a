//! A small in-process job queue with worker tasks, instrumented with
//! `TaskTracker`, served with the endpoints so `/debug/metrics` (its
//! `tasks` section), `/debug/events?types=task` and `/metrics` show it.
//!
//! ```text
//! cargo run -p vitals-server --example task_queue -- --listen 127.0.0.1:3000
//! curl -s localhost:3000/debug/metrics | jq .tasks
//! curl -N 'localhost:3000/debug/events?types=task'
//! ```
//!
//! A producer enqueues about 20 jobs a second on two queues; three workers
//! run them (10–200 ms each): most complete, some fail, some are retried
//! (up to 3 attempts). `POST /enqueue?queue=emails&n=50` adds a burst
//! (at most 1000). Runs until Ctrl-C.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use vitals_server::{ConnectionInfo, ServerMetrics, TaskQueue, TrackedListener};

const WORKERS: usize = 3;
/// Jobs waiting at most; a full queue refuses new ones (the producer and
/// `/enqueue` say so) instead of growing without bound.
const QUEUE_CAPACITY: usize = 10_000;
const MAX_BURST: u32 = 1000;
const MAX_ATTEMPTS: u32 = 3;

/// One unit of work.
struct Job {
    id: u64,
    attempt: u32,
    queue: TaskQueue,
}

/// A cheap deterministic "random" number per job (no RNG dependency).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[derive(Clone)]
struct Queues {
    tx: mpsc::Sender<Job>,
    emails: TaskQueue,
    thumbnails: TaskQueue,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Queues {
    /// Puts a new job on `queue`; false if the queue is full.
    fn enqueue(&self, queue: &TaskQueue) -> bool {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let job = Job {
            id,
            attempt: 1,
            queue: queue.clone(),
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                queue.enqueued();
                true
            }
            Err(_) => false,
        }
    }
}

async fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>, tx: mpsc::Sender<Job>) {
    loop {
        let Some(mut job) = rx.lock().await.recv().await else {
            return;
        };
        let task = job.queue.start();
        let roll = mix(job.id * 31 + u64::from(job.attempt));
        tokio::time::sleep(Duration::from_millis(10 + roll % 190)).await;
        match roll % 10 {
            0 => task.fail(),
            1 | 2 if job.attempt < MAX_ATTEMPTS => match tx.try_reserve() {
                Ok(slot) => {
                    task.retry();
                    job.attempt += 1;
                    slot.send(job);
                }
                // No room to put it back: the job fails instead.
                Err(_) => task.fail(),
            },
            _ => task.complete(),
        }
    }
}

#[derive(Deserialize)]
struct Burst {
    queue: Option<String>,
    n: Option<u32>,
}

async fn enqueue(State(q): State<Queues>, Query(b): Query<Burst>) -> (StatusCode, String) {
    let queue = match b.queue.as_deref() {
        None | Some("emails") => &q.emails,
        Some("thumbnails") => &q.thumbnails,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown queue {other:?}: emails or thumbnails\n"),
            );
        }
    };
    let n = b.n.unwrap_or(10);
    if n > MAX_BURST {
        return (
            StatusCode::BAD_REQUEST,
            format!("n is {n}; at most {MAX_BURST}\n"),
        );
    }
    let accepted = (0..n).filter(|_| q.enqueue(queue)).count();
    (
        StatusCode::ACCEPTED,
        format!("enqueued {accepted} of {n}\n"),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:3000".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(a) => listen = a,
                None => {
                    return Err(std::io::Error::other(
                        "--listen needs an address, e.g. 127.0.0.1:3000",
                    ));
                }
            },
            "--help" | "-h" => {
                println!("usage: task_queue [--listen ADDR]   (default 127.0.0.1:3000)");
                return Ok(());
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unknown argument {other:?}; try --help"
                )));
            }
        }
    }
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let tasks = metrics.tasks();
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let queues = Queues {
        tx: tx.clone(),
        emails: tasks.queue("emails"),
        thumbnails: tasks.queue("thumbnails"),
        next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
    };
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..WORKERS {
        tokio::spawn(worker(rx.clone(), tx.clone()));
    }
    let producer = queues.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            let queue = if n % 3 == 0 {
                &producer.thumbnails
            } else {
                &producer.emails
            };
            if !producer.enqueue(queue) {
                eprintln!("queue full: job dropped");
            }
        }
    });

    let app = Router::new()
        .route("/enqueue", post(enqueue))
        .with_state(queues);
    let app = metrics.instrument(app);
    let listener = TrackedListener::bind(&listen, &metrics).await?;
    eprintln!(
        "task queue demo on http://{} (Ctrl-C stops it)",
        axum::serve::Listener::local_addr(&listener)?
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
    Ok(())
}
