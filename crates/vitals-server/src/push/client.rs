//! The push loop: one background task owns the queue of pending batches
//! (nothing else touches it, so it needs no lock), closes an interval on
//! every tick and delivers batches oldest first.

use super::aggregate::{Aggregator, now_unix_ms};
use super::{GZIP_MIN_BYTES, MAX_RETRY_AFTER, PushConfig};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use vitals::wire::IngestBatch;
use vitals::{Counter, Gauge, Registry};

/// Most bytes read from a collector's answer (then discarded).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The connector: `http://` only, or both schemes with `push-tls`.
#[cfg(feature = "push-tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "push-tls"))]
type Connector = HttpConnector;

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
        let custom_drops = super::custom::CustomDrops::new(registry)?;
        let (commands, rx) = mpsc::channel(4);
        let mut push_loop = PushLoop::new(config.clone(), aggregator, counters, rx);
        push_loop.custom = Some((registry.clone(), custom_drops));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(push_loop.run());
            }
            Err(_) => {
                // No runtime to join: a current-thread one on its own thread.
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
            }
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

/// Why one delivery attempt failed (the `reason` of
/// `vitals_push_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No TCP connection (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake failed, e.g. a certificate not trusted.
    Tls,
    /// No complete answer within the request timeout.
    Timeout,
    /// The collector answered 5xx.
    ServerError,
    /// The collector answered 429 or 408.
    Throttled,
    /// The connection broke mid-exchange or the answer was not HTTP.
    Protocol,
}

impl Failure {
    const ALL: [Failure; 6] = [
        Failure::Connect,
        Failure::Tls,
        Failure::Timeout,
        Failure::ServerError,
        Failure::Throttled,
        Failure::Protocol,
    ];

    fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Timeout => "timeout",
            Failure::ServerError => "server_error",
            Failure::Throttled => "throttled",
            Failure::Protocol => "protocol",
        }
    }

    /// Classifies a request the client could not complete.
    fn of(err: &hyper_util::client::legacy::Error) -> Failure {
        #[cfg(feature = "push-tls")]
        if super::tls::is_tls_error(err) {
            return Failure::Tls;
        }
        if err.is_connect() {
            Failure::Connect
        } else {
            Failure::Protocol
        }
    }
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

enum Delivery {
    Sent,
    Rejected,
    /// Failed; may be retried, after the given wait if the collector said.
    Retry(Failure, Option<Duration>),
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
    custom: Option<(Registry, super::custom::CustomDrops)>,
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
                .clamp(1, super::MAX_INTERVAL.as_millis() as u64),
            apdex_t_ms: self.aggregator.apdex_t_ms(),
            routes,
            requests,
            custom: match &self.custom {
                Some((registry, drops)) => {
                    super::custom::collect(registry, &self.config.custom, drops)
                }
                None => Vec::new(),
            },
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

/// How long to wait before sending a batch again after its `attempts`-th
/// failed attempt: the collector's `Retry-After` when it gave one (already
/// capped at [`MAX_RETRY_AFTER`]), else [`full_jitter`] backoff.
fn retry_wait(config: &PushConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| {
        let cap = backoff_cap(config.backoff_base, config.backoff_max, attempts);
        full_jitter(cap, rand::random_range(0.0..=1.0))
    })
}

/// The longest wait after the `attempts`-th failed attempt:
/// `min(max, base · 2^(attempts-1))`, so `base` after the first failure,
/// doubling with each further one up to `max` (0 attempts counts as 1).
fn backoff_cap(base: Duration, max: Duration, attempts: u32) -> Duration {
    // 2^30 × even 1 ms is past any sensible `max`; stops overflow.
    let doublings = attempts.saturating_sub(1).min(30) as i32;
    let cap = (base.as_secs_f64() * 2f64.powi(doublings)).min(max.as_secs_f64());
    Duration::from_secs_f64(cap)
}

/// "Full jitter" (AWS architecture blog): the wait is `cap × unit` for a
/// uniform random `unit` in `[0, 1]`, so retries of many clients that
/// failed together spread over the whole window instead of arriving at
/// once. `unit` outside `[0, 1]` is clamped.
fn full_jitter(cap: Duration, unit: f64) -> Duration {
    cap.mul_f64(unit.clamp(0.0, 1.0))
}

/// The JSON body, gzip-compressed when at least [`GZIP_MIN_BYTES`].
fn encode(json: Vec<u8>) -> (Bytes, bool) {
    if json.len() < GZIP_MIN_BYTES {
        return (json.into(), false);
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    match gz.write_all(&json).and_then(|()| gz.finish()) {
        Ok(compressed) => (compressed.into(), true),
        Err(_) => (json.into(), false),
    }
}

async fn send(
    client: &Client<Connector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Delivery {
    let exchange = async {
        let response = client.request(request).await.map_err(|e| Failure::of(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(parse_retry_after);
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok::<_, Failure>((status, retry_after))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, _))) if status.is_success() => Delivery::Sent,
        Ok(Ok((status, after))) if status.is_server_error() => {
            Delivery::Retry(Failure::ServerError, after)
        }
        Ok(Ok((status, after)))
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT =>
        {
            Delivery::Retry(Failure::Throttled, after)
        }
        // Other 4xx (and 1xx/3xx, which a collector never sends): retrying
        // the same bytes cannot succeed.
        Ok(Ok(_)) => Delivery::Rejected,
        Ok(Err(failure)) => Delivery::Retry(failure, None),
        Err(_) => Delivery::Retry(Failure::Timeout, None),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, capped at
/// [`MAX_RETRY_AFTER`]; `None` when unreadable.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = if let Ok(secs) = text.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(text).ok()?;
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let v = |s: &str| parse_retry_after(&HeaderValue::from_str(s).unwrap());
        assert_eq!(v("3"), Some(Duration::from_secs(3)));
        assert_eq!(v("999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(v("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(v("-1"), None);
        assert_eq!(v("soon"), None);
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_cap_doubles_per_attempt_up_to_the_maximum() {
        let caps: Vec<Duration> = (1..=10)
            .map(|n| backoff_cap(MS(250), MS(30_000), n))
            .collect();
        assert_eq!(
            caps,
            [
                250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000
            ]
            .map(MS)
        );
        assert_eq!(backoff_cap(MS(250), MS(30_000), 0), MS(250));
        // Far past the doubling limit: the maximum, no overflow or panic.
        assert_eq!(backoff_cap(MS(250), MS(30_000), u32::MAX), MS(30_000));
        assert_eq!(backoff_cap(MS(1), MS(3_600_000), 200), MS(3_600_000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_cap() {
        let cap = MS(8000);
        assert_eq!(full_jitter(cap, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(cap, 1.0), cap);
        assert_eq!(full_jitter(cap, 0.25), MS(2000));
        assert_eq!(full_jitter(cap, -3.0), Duration::ZERO);
        assert_eq!(full_jitter(cap, 7.0), cap);
    }

    /// Many real draws stay inside `[0, cap]` for every attempt, differ
    /// from each other, and fill both halves of the window: a constant or
    /// "equal jitter" (`cap/2 + …`) backoff fails this.
    #[test]
    fn retry_waits_are_random_within_the_cap() {
        let config = PushConfig::new("http://127.0.0.1:1", "k")
            .unwrap()
            .backoff(MS(100), MS(1600));
        for attempts in 1..=8 {
            let cap = backoff_cap(MS(100), MS(1600), attempts);
            let waits: Vec<Duration> = (0..200)
                .map(|_| retry_wait(&config, attempts, None))
                .collect();
            assert!(waits.iter().all(|w| *w <= cap), "{attempts}: {waits:?}");
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(distinct.len() > 150, "{attempts}: {distinct:?}");
            let low = waits.iter().filter(|w| **w < cap / 2).count();
            // 200 fair coin flips: outside 40..=160 has odds below 1e-15.
            assert!(
                (40..=160).contains(&low),
                "{attempts}: {low} of 200 below cap/2"
            );
        }
        // The mean grows with the cap (about cap/2).
        let mean = |attempts| {
            (0..400)
                .map(|_| retry_wait(&config, attempts, None).as_secs_f64())
                .sum::<f64>()
                / 400.0
        };
        let (first, fifth) = (mean(1), mean(5));
        assert!(first < 0.1 && fifth > 0.5, "means {first} s, {fifth} s");
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let config = PushConfig::new("http://127.0.0.1:1", "k")
            .unwrap()
            .backoff(MS(100), MS(200));
        for attempts in [1, 5, 50] {
            for after in [
                Duration::ZERO,
                MS(150),
                Duration::from_secs(120),
                MAX_RETRY_AFTER,
            ] {
                assert_eq!(retry_wait(&config, attempts, Some(after)), after);
            }
        }
    }

    #[test]
    fn large_bodies_are_gzipped() {
        let (small, gz) = encode(b"{}".to_vec());
        assert!(!gz);
        assert_eq!(&small[..], b"{}");
        let json = format!("[{}]", vec!["1"; 2000].join(","));
        let (body, gz) = encode(json.clone().into_bytes());
        assert!(gz && body.len() < json.len());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
            .unwrap();
        assert_eq!(out, json);
    }
}
