//! The push loop: one background task owns the queue of pending batches
//! (nothing else touches it, so it needs no lock), closes an interval on
//! every tick and delivers batches oldest first.

use super::aggregate::{Aggregator, now_unix_ms};
use super::config::PushConfig;
use super::custom::{self, CustomDrops};
use super::delivery::{Connector, Delivery, Failure, encode, retry_wait, send};
use super::limits::MAX_INTERVAL;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use vitals::wire::IngestBatch;
use vitals::{Counter, Gauge, Registry};

/// Handle to a running push loop; see [`crate::push`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PushClient {
    commands: mpsc::Sender<Command>,
}

/// What a [`PushClient::flush`] achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Batches the collector accepted during the flush.
    pub delivered: u64,
    /// Batches the collector refused (4xx other than 429) during the flush.
    pub rejected: u64,
    /// Batches still queued when the time ran out (dropped and counted
    /// when the flush also stopped the loop).
    pub pending: u64,
}

#[derive(Debug)]
enum Command {
    Flush {
        timeout: Duration,
        stop: bool,
        reply: oneshot::Sender<FlushReport>,
    },
}

impl PushClient {
    /// Closes the current interval now and tries, for up to `timeout`, to
    /// deliver every queued batch; the loop keeps running afterwards.
    /// `None` if the loop has already stopped.
    pub async fn flush(&self, timeout: Duration) -> Option<FlushReport> {
        self.command(timeout, false).await
    }

    /// Like [`flush`](Self::flush), then stops the loop: batches still
    /// queued are dropped and counted
    /// (`vitals_push_dropped_total{reason="shutdown"}`). Call it once the
    /// server has stopped serving, so the last interval is complete.
    pub async fn shutdown(&self, timeout: Duration) -> Option<FlushReport> {
        self.command(timeout, true).await
    }

    async fn command(&self, timeout: Duration, stop: bool) -> Option<FlushReport> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Flush {
                timeout,
                stop,
                reply,
            })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Starts the loop on the current tokio runtime, or on a thread of its
    /// own when there is none.
    pub(crate) fn start(
        config: &PushConfig,
        aggregator: Arc<Aggregator>,
        registry: &Registry,
    ) -> Result<PushClient, vitals::Error> {
        let counters = PushCounters::new(registry)?;
        let custom_drops = CustomDrops::new(registry)?;
        let (commands, rx) = mpsc::channel(4);
        let mut push_loop = PushLoop::new(config.clone(), aggregator, counters, rx);
        push_loop.custom = Some((registry.clone(), custom_drops));
        // Always on a thread of its own with a current-thread runtime, even
        // inside a runtime: its interval timer then lives in that runtime's
        // timer wheel, not in the application's, whose workers would
        // otherwise check the wheel on every park (once per request on a
        // keep-alive connection).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(runtime) = runtime {
            let spawned = std::thread::Builder::new()
                .name("vitals-push".into())
                .spawn(move || runtime.block_on(push_loop.run()));
            // Without the thread the channel is closed: flush answers None.
            drop(spawned);
        }
        Ok(PushClient { commands })
    }
}

/// The push loop's own metrics, in the server's registry.
struct PushCounters {
    sent: Counter,
    rejected: Counter,
    retries: Counter,
    dropped_queue_full: Counter,
    dropped_retries_exhausted: Counter,
    dropped_shutdown: Counter,
    queued: Gauge,
    /// Failed attempts, indexed by [`Failure`].
    failures: [Counter; Failure::ALL.len()],
}

impl PushCounters {
    fn new(r: &Registry) -> Result<Self, vitals::Error> {
        let batches = r.counter_vec(
            (
                "vitals_push_batches_total",
                "Batches sent to the collector, by result: sent (2xx) or rejected (4xx, not retried)",
            ),
            &["result"],
        )?;
        let dropped = r.counter_vec(
            (
                "vitals_push_dropped_total",
                "Batches dropped undelivered: queue_full, retries_exhausted or shutdown",
            ),
            &["reason"],
        )?;
        let failures = r.counter_vec(
            (
                "vitals_push_failures_total",
                "Failed delivery attempts, by reason: connect, tls, timeout, server_error, throttled or protocol",
            ),
            &["reason"],
        )?;
        Ok(PushCounters {
            failures: Failure::ALL.map(|f| failures.get(&[f.label()]).clone()),
            sent: batches.get(&["sent"]).clone(),
            rejected: batches.get(&["rejected"]).clone(),
            retries: r.counter((
                "vitals_push_retries_total",
                "Batch deliveries retried after a connection error, timeout, 5xx or 429",
            ))?,
            dropped_queue_full: dropped.get(&["queue_full"]).clone(),
            dropped_retries_exhausted: dropped.get(&["retries_exhausted"]).clone(),
            dropped_shutdown: dropped.get(&["shutdown"]).clone(),
            queued: r.gauge((
                "vitals_push_queue_batches",
                "Batches waiting to be delivered",
            ))?,
        })
    }
}

/// A batch ready to send: encoded once, so every retry sends the same
/// bytes and the same batch id.
struct Pending {
    body: Bytes,
    gzip: bool,
    attempts: u32,
}

struct PushLoop {
    config: PushConfig,
    aggregator: Arc<Aggregator>,
    counters: PushCounters,
    commands: mpsc::Receiver<Command>,
    client: Client<Connector, Full<Bytes>>,
    queue: VecDeque<Pending>,
    interval_start_ms: u64,
    /// Earliest time the front batch may be sent (backoff, `Retry-After`).
    next_attempt: tokio::time::Instant,
    /// The registry custom metrics are read from, and their drop counters.
    custom: Option<(Registry, CustomDrops)>,
}

impl PushLoop {
    fn new(
        config: PushConfig,
        aggregator: Arc<Aggregator>,
        counters: PushCounters,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.request_timeout));
        connector.set_nodelay(true);
        #[cfg(feature = "push-tls")]
        let connector = {
            connector.enforce_http(false);
            config.tls.connector(connector)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        PushLoop {
            config,
            aggregator,
            counters,
            commands,
            client,
            queue: VecDeque::new(),
            interval_start_ms: now_unix_ms(),
            next_attempt: tokio::time::Instant::now(),
            custom: None,
        }
    }

    async fn run(mut self) {
        let period = self.config.interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let waiting = !self.queue.is_empty();
            tokio::select! {
                _ = ticker.tick() => self.close_interval(),
                _ = tokio::time::sleep_until(self.next_attempt), if waiting => {
                    self.deliver_front().await;
                }
                command = self.commands.recv() => match command {
                    Some(Command::Flush { timeout, stop, reply }) => {
                        let report = self.flush(timeout).await;
                        let report = if stop {
                            let left = self.queue.len() as u64;
                            self.counters.dropped_shutdown.add(left);
                            self.queue.clear();
                            self.counters.queued.set(0);
                            FlushReport { pending: left, ..report }
                        } else {
                            report
                        };
                        let _ = reply.send(report);
                        if stop {
                            return;
                        }
                    }
                    // Every `ServerMetrics` clone is gone: nothing can record.
                    None => {
                        self.close_interval();
                        let _ = self.flush(self.config.request_timeout).await;
                        return;
                    }
                },
            }
        }
    }

    /// Turns the interval's aggregates into a queued batch.
    fn close_interval(&mut self) {
        let (routes, requests) = self.aggregator.take();
        let now = now_unix_ms();
        let start = std::mem::replace(&mut self.interval_start_ms, now);
        let batch = IngestBatch {
            batch_id: format!("{:032x}", rand::random::<u128>()),
            service: self.config.service.clone(),
            instance: self.config.instance.clone(),
            start_unix_ms: start,
            // The collector wants 1 ms to 1 h; two closes in the same
            // millisecond (a flush right after a tick) make 0.
            interval_ms: now
                .saturating_sub(start)
                .clamp(1, MAX_INTERVAL.as_millis() as u64),
            apdex_t_ms: self.aggregator.apdex_t_ms(),
            routes,
            requests,
            custom: match &self.custom {
                Some((registry, drops)) => custom::collect(registry, &self.config.custom, drops),
                None => Vec::new(),
            },
            clients: self.aggregator.clients.take(),
        };
        let Ok(json) = serde_json::to_vec(&batch) else {
            return;
        };
        let (body, gzip) = encode(json);
        if self.queue.len() >= self.config.queue_capacity {
            self.queue.pop_front();
            self.counters.dropped_queue_full.inc();
        }
        self.queue.push_back(Pending {
            body,
            gzip,
            attempts: 0,
        });
        self.counters.queued.set(self.queue.len() as i64);
    }

    /// Sends the oldest batch once and sets when the next attempt may be.
    async fn deliver_front(&mut self) {
        let wait = self.attempt_front().await;
        self.next_attempt = tokio::time::Instant::now() + wait.unwrap_or_default();
    }

    /// Sends the oldest batch once; returns how long to wait before the
    /// next attempt when it must be retried.
    async fn attempt_front(&mut self) -> Option<Duration> {
        let pending = self.queue.front_mut()?;
        pending.attempts += 1;
        let attempts = pending.attempts;
        let (body, gzip) = (pending.body.clone(), pending.gzip);
        let request = self.request(body, gzip);
        let outcome = match request {
            Some(r) => send(&self.client, r, self.config.request_timeout).await,
            None => Delivery::Rejected,
        };
        let wait = match outcome {
            Delivery::Sent => {
                self.counters.sent.inc();
                self.queue.pop_front();
                None
            }
            Delivery::Rejected => {
                self.counters.rejected.inc();
                self.queue.pop_front();
                None
            }
            Delivery::Retry(failure, _) if attempts >= self.config.max_attempts => {
                self.counters.failures[failure as usize].inc();
                self.counters.dropped_retries_exhausted.inc();
                self.queue.pop_front();
                None
            }
            Delivery::Retry(failure, after) => {
                self.counters.failures[failure as usize].inc();
                self.counters.retries.inc();
                Some(retry_wait(&self.config, attempts, after))
            }
        };
        self.counters.queued.set(self.queue.len() as i64);
        wait
    }

    fn request(&self, body: Bytes, gzip: bool) -> Option<Request<Full<Bytes>>> {
        let mut b = Request::post(self.config.ingest_uri.clone())
            .header(header::AUTHORIZATION, self.config.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("vitals-push/", env!("CARGO_PKG_VERSION")),
            );
        if gzip {
            b = b.header(header::CONTENT_ENCODING, "gzip");
        }
        b.body(Full::new(body)).ok()
    }

    /// Delivers queued batches until the queue is empty or `timeout` passed.
    async fn flush(&mut self, timeout: Duration) -> FlushReport {
        self.close_interval();
        let deadline = Instant::now() + timeout;
        let (sent0, rejected0) = (self.counters.sent.get(), self.counters.rejected.get());
        while !self.queue.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            if self.next_attempt > tokio::time::Instant::now() {
                tokio::time::sleep_until(self.next_attempt.min(deadline)).await;
                continue;
            }
            if tokio::time::timeout_at(deadline, self.deliver_front())
                .await
                .is_err()
            {
                break;
            }
        }
        FlushReport {
            delivered: self.counters.sent.get() - sent0,
            rejected: self.counters.rejected.get() - rejected0,
            pending: self.queue.len() as u64,
        }
    }
}
