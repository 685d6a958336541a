//! Task-queue metrics for a job system: worker tasks take jobs from two
//! queues, and a `TaskQueue` handle per queue records each job's steps
//! (enqueued, started, completed, failed, retried) and run time.
//!
//! Run: `cargo run -p vitals-server --example task_queue -- --listen 127.0.0.1:3000 --workers 3 --rate 20`
//!
//! A producer enqueues `--rate` jobs a second (two on `emails` for one on
//! `thumbnails`); each run takes 10–200 ms, one in ten fails, two in ten
//! are retried (3 attempts at most). Then look at:
//! - `curl -s 127.0.0.1:3000/debug/metrics | jq .tasks`: per queue, the
//!   counts, rates, in flight and duration percentiles
//! - `curl -N '127.0.0.1:3000/debug/events?types=task'`: each step, live
//! - `curl -s 127.0.0.1:3000/metrics | grep '^task_'`: `task_*{queue}`
//! - `curl -X POST '127.0.0.1:3000/enqueue?queue=thumbnails&n=500'`: a burst
//!   (at most 1000) to watch the queue drain on <http://127.0.0.1:3000/debug/>

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use vitals_server::{ServerMetrics, TaskQueue, TrackedListener, TrackedRouter};

/// Jobs waiting at most: a full queue refuses new ones instead of growing.
const CAPACITY: usize = 10_000;
const MAX_BURST: u32 = 1000;
const MAX_ATTEMPTS: u32 = 3;

/// A small in-process job queue with metrics.
#[derive(Parser)]
struct Args {
    /// Address to serve `/metrics`, `/debug/…` and `POST /enqueue` on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Worker tasks running the jobs.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Jobs the producer enqueues per second (0: only `/enqueue`).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    rate: u32,
}

/// The queues; a job in the channel is the queue it was put on.
#[derive(Clone)]
struct Queues {
    jobs: mpsc::Sender<TaskQueue>,
    emails: TaskQueue,
    thumbnails: TaskQueue,
}

impl Queues {
    /// Puts a job on `queue`; false when the channel is full.
    fn enqueue(&self, queue: &TaskQueue) -> bool {
        let accepted = self.jobs.try_send(queue.clone()).is_ok();
        if accepted {
            queue.enqueued();
        }
        accepted
    }
}

async fn worker(jobs: Arc<Mutex<mpsc::Receiver<TaskQueue>>>) {
    loop {
        // `let … else` drops the lock before the job runs (`while let` would not).
        let Some(queue) = jobs.lock().await.recv().await else {
            return;
        };
        let mut attempt = 1;
        loop {
            let task = queue.start(); // a guard: dropped without an end, it counts as failed
            tokio::time::sleep(Duration::from_millis(rand::random_range(10..200))).await;
            match rand::random_range(0..10) {
                0 => break task.fail(),
                1 | 2 if attempt < MAX_ATTEMPTS => {
                    task.retry(); // the next attempt is a new `start`
                    attempt += 1;
                }
                _ => break task.complete(),
            }
        }
    }
}

async fn producer(queues: Queues, rate: u32) {
    if rate == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    for n in 1u64.. {
        tick.tick().await;
        let queue = if n % 3 == 0 {
            &queues.thumbnails
        } else {
            &queues.emails
        };
        if !queues.enqueue(queue) {
            eprintln!("queue full: job dropped");
        }
    }
}

#[derive(Deserialize)]
struct Burst {
    queue: Option<String>,
    n: Option<u32>,
}

/// `POST /enqueue?queue=emails&n=50`: a burst of jobs.
async fn enqueue(State(q): State<Queues>, Query(b): Query<Burst>) -> (StatusCode, String) {
    let queue = match b.queue.as_deref() {
        None | Some("emails") => &q.emails,
        Some("thumbnails") => &q.thumbnails,
        Some(other) => {
            let msg = format!("unknown queue {other:?}: emails or thumbnails\n");
            return (StatusCode::BAD_REQUEST, msg);
        }
    };
    let n = b.n.unwrap_or(10).min(MAX_BURST);
    let accepted = (0..n).filter(|_| q.enqueue(queue)).count();
    (
        StatusCode::ACCEPTED,
        format!("enqueued {accepted} of {n}\n"),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let metrics = ServerMetrics::new().map_err(std::io::Error::other)?;
    let (tx, rx) = mpsc::channel(CAPACITY);
    let queues = Queues {
        jobs: tx,
        emails: metrics.tasks().queue("emails"),
        thumbnails: metrics.tasks().queue("thumbnails"),
    };
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..args.workers {
        tokio::spawn(worker(rx.clone()));
    }
    tokio::spawn(producer(queues.clone(), args.rate));

    let app = Router::new()
        .route("/enqueue", post(enqueue))
        .with_state(queues);
    let app = metrics.instrument(app);
    let listener = TrackedListener::bind(&args.listen, &metrics).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    eprintln!("task queue demo on http://{addr} (Ctrl-C stops it)");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, TrackedRouter::new(app))
        .with_graceful_shutdown(metrics.shutdown_signal(ctrl_c))
        .await?;
    metrics.shutdown_finished();
    Ok(())
}
