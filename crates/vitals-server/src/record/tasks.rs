//! Task-queue metrics for job systems: `task_*{queue}` and `Task` events.
//!
//! A [`TaskTracker`] hands out one [`TaskQueue`] per queue name (label
//! handles resolved once, so recording is one atomic per step). Running a
//! job goes through a [`RunningTask`] guard, which records exactly one end:
//! completed, failed, or retried; a guard dropped without one (a panic, a
//! cancelled future, an early `return`) counts as **failed**, so in-flight
//! never leaks. The families it records into are in `task_families.rs`.

use crate::server_metrics::ServerMetrics;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use vitals::{Counter, Event, Gauge, Histogram, TaskState};

/// Task-queue metrics for a job system, from [`ServerMetrics::tasks`].
///
/// ```
/// # async fn run() -> Result<(), vitals::Error> {
/// let metrics = vitals_server::ServerMetrics::builder()
///     .registry(vitals::Registry::new())
///     .build()?;
/// let emails = metrics.tasks().queue("emails");
/// emails.enqueued();
/// let task = emails.start();          // started, in flight
/// // ... send the email ...
/// task.complete();                    // completed, duration recorded
/// let sent: Result<(), &str> = emails.run(async { Ok(()) }).await; // the same in one call
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TaskTracker {
    metrics: ServerMetrics,
}

impl TaskTracker {
    /// The tracker of `metrics` (see [`ServerMetrics::tasks`]).
    pub(crate) fn new(metrics: &ServerMetrics) -> Self {
        TaskTracker {
            metrics: metrics.clone(),
        }
    }

    /// The handles for one queue. Resolve it once and keep it: each call
    /// looks the label up (queue names are a small, fixed set; past the
    /// cardinality limit they share the overflow series).
    pub fn queue(&self, name: &str) -> TaskQueue {
        let t = &self.metrics.inner.tasks;
        let q = [name];
        TaskQueue {
            inner: Arc::new(QueueHandles {
                name: name.to_owned(),
                metrics: self.metrics.clone(),
                enqueued: t.enqueued.get(&q).clone(),
                started: t.started.get(&q).clone(),
                completed: t.completed.get(&q).clone(),
                failed: t.failed.get(&q).clone(),
                retried: t.retried.get(&q).clone(),
                in_flight: t.in_flight.get(&q).clone(),
                duration: t.duration.get(&q).clone(),
            }),
        }
    }
}

struct QueueHandles {
    name: String,
    metrics: ServerMetrics,
    enqueued: Counter,
    started: Counter,
    completed: Counter,
    failed: Counter,
    retried: Counter,
    in_flight: Gauge,
    duration: Histogram,
}

/// One queue's metric handles; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TaskQueue {
    inner: Arc<QueueHandles>,
}

impl std::fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue")
            .field("queue", &self.inner.name)
            .finish()
    }
}

impl TaskQueue {
    /// The queue's name (its `queue` label).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn emit(&self, state: TaskState, duration_secs: Option<f64>) {
        let name = &self.inner.name;
        self.inner.metrics.events().emit_with(|| Event::Task {
            queue: name.clone(),
            state,
            duration_secs,
        });
    }

    /// A task was put on the queue (`task_enqueued_total`). Retries are
    /// counted by [`RunningTask::retry`], not here.
    pub fn enqueued(&self) {
        self.inner.enqueued.inc();
        self.emit(TaskState::Enqueued, None);
    }

    /// A worker picked a task up: counts it started and in flight, and
    /// returns the guard that records how it ends.
    pub fn start(&self) -> RunningTask {
        self.inner.started.inc();
        self.inner.in_flight.inc();
        self.emit(TaskState::Started, None);
        RunningTask {
            queue: self.clone(),
            began: Instant::now(),
            ended: false,
        }
    }

    /// Runs `job` as one task: started now, completed on `Ok`, failed on
    /// `Err` (or if the future is dropped before it finishes).
    pub async fn run<F, T, E>(&self, job: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let task = self.start();
        let result = job.await;
        match &result {
            Ok(_) => task.complete(),
            Err(_) => task.fail(),
        }
        result
    }
}

/// A task being run. Call exactly one of [`complete`](Self::complete),
/// [`fail`](Self::fail) or [`retry`](Self::retry); dropping it without one
/// counts the task as failed (a panic or a cancelled job is a failure).
#[must_use = "dropping a RunningTask at once counts the task as failed"]
pub struct RunningTask {
    queue: TaskQueue,
    began: Instant,
    ended: bool,
}

impl std::fmt::Debug for RunningTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTask")
            .field("queue", &self.queue.inner.name)
            .field("elapsed", &self.began.elapsed())
            .finish()
    }
}

impl RunningTask {
    /// How long the task has been running.
    pub fn elapsed(&self) -> std::time::Duration {
        self.began.elapsed()
    }

    /// The task finished successfully.
    pub fn complete(mut self) {
        self.end(TaskState::Completed);
    }

    /// The task failed.
    pub fn fail(mut self) {
        self.end(TaskState::Failed);
    }

    /// This run failed and the task goes back on the queue: counted in
    /// `task_retried_total` (not failed), out of flight, its run time not
    /// recorded in `task_duration_seconds`. The next attempt is a new
    /// [`TaskQueue::start`].
    pub fn retry(mut self) {
        self.end(TaskState::Retried);
    }

    fn end(&mut self, state: TaskState) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let q = &self.queue.inner;
        let secs = self.began.elapsed().as_secs_f64();
        q.in_flight.dec();
        let duration = match state {
            TaskState::Completed => {
                q.completed.inc();
                q.duration.record(secs);
                Some(secs)
            }
            TaskState::Retried => {
                q.retried.inc();
                None
            }
            _ => {
                q.failed.inc();
                q.duration.record(secs);
                Some(secs)
            }
        };
        self.queue.emit(state, duration);
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        // Abandoned (panic, cancellation, forgotten): a failure.
        self.end(TaskState::Failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals::{CounterVec, Registry};

    #[test]
    fn every_path_ends_the_task_once() {
        let registry = Registry::new();
        let m = ServerMetrics::builder()
            .registry(registry.clone())
            .namespace("jobs")
            .build()
            .unwrap();
        let (_sub, events) = m.events().subscribe_channel("t", 64);
        let q = m.tasks().queue("mail");
        for _ in 0..4 {
            q.enqueued();
        }
        q.start().complete();
        q.start().fail();
        q.start().retry();
        drop(q.start()); // abandoned: failed
        let running = q.start();
        let t = &m.inner.tasks;
        let get = |f: &CounterVec| f.get(&["mail"]).get();
        assert_eq!(get(&t.enqueued), 4);
        assert_eq!(get(&t.started), 5);
        assert_eq!(get(&t.completed), 1);
        assert_eq!(get(&t.failed), 2);
        assert_eq!(get(&t.retried), 1);
        assert_eq!(t.in_flight.get(&["mail"]).get(), 1);
        assert_eq!(t.duration.get(&["mail"]).sketch().count(), 3);
        running.complete();
        assert_eq!(t.in_flight.get(&["mail"]).get(), 0);
        let states: Vec<TaskState> = events
            .try_iter()
            .map(|e| match &e.event {
                Event::Task { state, queue, .. } => {
                    assert_eq!(queue, "mail");
                    *state
                }
                other => panic!("{other:?}"),
            })
            .collect();
        use TaskState::*;
        assert_eq!(
            states,
            [
                Enqueued, Enqueued, Enqueued, Enqueued, Started, Completed, Started, Failed,
                Started, Retried, Started, Failed, Started, Completed
            ]
        );
        let text = String::from_utf8(registry.render(vitals::Format::Prometheus)).unwrap();
        assert!(
            text.contains("jobs_task_enqueued_total{queue=\"mail\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("jobs_task_in_flight{queue=\"mail\"} 0\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn run_records_ok_err_and_cancellation() {
        let m = ServerMetrics::builder()
            .registry(Registry::new())
            .build()
            .unwrap();
        let q = m.tasks().queue("q");
        assert_eq!(q.run(async { Ok::<_, ()>(1) }).await, Ok(1));
        assert_eq!(q.run(async { Err::<(), _>("no") }).await, Err("no"));
        // A job cancelled mid-run (its future dropped) counts as failed.
        let pending = q.run(std::future::pending::<Result<(), ()>>());
        let _ = tokio::time::timeout(std::time::Duration::from_millis(5), pending).await;
        let t = &m.inner.tasks;
        assert_eq!(t.completed.get(&["q"]).get(), 1);
        assert_eq!(t.failed.get(&["q"]).get(), 2);
        assert_eq!(t.in_flight.get(&["q"]).get(), 0);
    }
}
