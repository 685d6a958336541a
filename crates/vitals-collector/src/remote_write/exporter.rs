//! One receiver's exporter: a pass turns every minute that closed (ended
//! at least `delay` ago) into remote-write requests, in minute order, and
//! queues them on disk; the sender drains the queue oldest first. The
//! export cursor and the running totals ([`Cumulative`]) are saved in
//! `state.json` beside the queue after each minute, so a restart goes on
//! where it stopped: a minute is queued once, or, after a crash between
//! queueing and saving, queued again with the very same values (a
//! receiver takes an identical sample twice as one).

use super::metrics::RemoteMetrics;
use super::proto::WriteRequest;
use super::queue::{Queue, write_atomically};
use super::sender::{Outcome, Sender};
use super::series::{Cumulative, Shape, minute_series};
use crate::config::{CollectorConfig, RemoteWriteTarget};
use crate::model::{BucketQuery, CustomQuery, Resolution, SeriesSelect, UnixMs};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most series in one request (receivers cap request sizes; Mimir's
/// default is far above this).
pub const MAX_SERIES_PER_REQUEST: usize = 2000;
/// Most minutes one pass exports, so a long outage catches up in steps.
const MAX_MINUTES_PER_PASS: usize = 60;
/// The state file in the queue folder.
const STATE_FILE: &str = "state.json";

/// Why an export pass stopped (it resumes at the same minute next time).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the minute from the store failed.
    #[error("remote write: reading the store failed: {0}")]
    Store(#[from] StoreError),
    /// The queue or state file could not be written.
    #[error("remote write: the queue in {dir} failed: {source}")]
    Queue {
        /// The queue folder.
        dir: String,
        /// The file system's error.
        source: std::io::Error,
    },
}

/// What the exporter saves after each minute.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// Start of the next minute to export; `None` before the first pass.
    cursor_ms: Option<UnixMs>,
    /// Running totals after the minutes before the cursor.
    totals: Cumulative,
}

/// What one [`Exporter::send_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Requests the receiver accepted.
    pub sent: u64,
    /// Requests refused for good (dropped, counted).
    pub dropped: u64,
    /// Set when the oldest request must wait: the failure's reason and
    /// the receiver's `Retry-After`.
    pub retry: Option<(&'static str, Option<Duration>)>,
}

/// The exporter of one `[[remote_write]]` receiver.
pub struct Exporter {
    target: RemoteWriteTarget,
    store: Arc<dyn Store>,
    config: CollectorConfig,
    sender: Sender,
    metrics: RemoteMetrics,
    state: tokio::sync::Mutex<Saved>,
    queue: Arc<Mutex<Queue>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("name", &self.target.config.name)
            .field("queue_dir", &self.target.queue_dir)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Opens the receiver's queue and state (creating its folder).
    pub fn open(
        target: RemoteWriteTarget,
        store: Arc<dyn Store>,
        config: CollectorConfig,
        metrics: RemoteMetrics,
    ) -> Result<Exporter, String> {
        let dir = target.queue_dir.display().to_string();
        let queue = Queue::open(&target.queue_dir, target.config.max_queue_bytes).map_err(|e| {
            format!(
                "remote_write {:?}: queue folder {dir}: {e}",
                target.config.name
            )
        })?;
        let saved = match std::fs::read(target.queue_dir.join(STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "remote_write {:?}: {dir}/{STATE_FILE} is damaged ({e}); move it away to start the export afresh (counters then restart from zero, which rate() takes as a reset)",
                    target.config.name
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(format!("remote_write {:?}: {dir}/{STATE_FILE}: {e}", target.config.name)),
        };
        let sender = Sender::new(&target)?;
        Ok(Exporter {
            target,
            store,
            config,
            sender,
            metrics,
            state: tokio::sync::Mutex::new(saved),
            queue: Arc::new(Mutex::new(queue)),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The receiver's name (the `remote` label).
    pub fn name(&self) -> &str {
        &self.target.config.name
    }

    /// Start of the next minute to export, once a pass has run.
    pub async fn cursor_ms(&self) -> Option<UnixMs> {
        self.state.lock().await.cursor_ms
    }

    fn queue_error(&self, source: std::io::Error) -> ExportError {
        self.metrics.failures.get(&[self.name(), "queue"]).inc();
        ExportError::Queue {
            dir: self.target.queue_dir.display().to_string(),
            source,
        }
    }

    /// Runs `f` on the queue off the async threads.
    async fn with_queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Queue) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut q)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// Queues every minute that closed by `now` (ended `delay` ago), up
    /// to an hour of minutes per call; returns how many minutes. On the
    /// first pass ever, export starts `backfill` before `now`.
    pub async fn export_due(&self, now: UnixMs) -> Result<u64, ExportError> {
        let mut st = self.state.lock().await;
        let until = Resolution::Minute.floor(now - self.target.delay_ms);
        let mut cursor = st
            .cursor_ms
            .unwrap_or_else(|| Resolution::Minute.floor(now - self.target.backfill_ms));
        let mut minutes = 0;
        while cursor < until && minutes < MAX_MINUTES_PER_PASS {
            if let Err(e) = self.export_minute(&mut st, cursor).await {
                // The totals may have moved for part of the minute: go
                // back to what was saved, and redo the minute next time.
                *st = self.reload().unwrap_or_default();
                return Err(e);
            }
            cursor += 60_000;
            st.cursor_ms = Some(cursor);
            let json = serde_json::to_vec(&*st).unwrap_or_default();
            let path = self.target.queue_dir.join(STATE_FILE);
            tokio::task::spawn_blocking(move || write_atomically(&path, &json))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
                .map_err(|e| self.queue_error(e))?;
            minutes += 1;
        }
        if st.cursor_ms.is_none() {
            st.cursor_ms = Some(cursor);
        }
        let lag = (now - st.cursor_ms.unwrap_or(now)).max(0) / 1000;
        self.metrics.lag_seconds.get(&[self.name()]).set(lag);
        drop(st);
        self.update_depth().await;
        if minutes > 0 {
            self.wake.notify_one();
        }
        Ok(minutes as u64)
    }

    fn reload(&self) -> Option<Saved> {
        let bytes = std::fs::read(self.target.queue_dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn export_minute(&self, st: &mut Saved, start: UnixMs) -> Result<(), ExportError> {
        let shape = Shape {
            config: &self.config,
            buckets: &self.target.config.buckets,
            native: self.target.config.native_histograms,
            tenant_label: self.target.config.tenant_header.is_none(),
        };
        // Read every tenant first, so a failed read changes nothing.
        let mut read = Vec::new();
        for tenant in &self.target.config.tenants {
            let buckets = self
                .store
                .read_buckets(BucketQuery {
                    tenant: tenant.clone(),
                    service: None,
                    resolution: Resolution::Minute,
                    start_ms: start,
                    end_ms: start + 60_000,
                    series: SeriesSelect::All,
                })
                .await?;
            let custom = self
                .store
                .read_custom(CustomQuery {
                    tenant: tenant.clone(),
                    service: None,
                    name: None,
                    resolution: Resolution::Minute,
                    start_ms: start,
                    end_ms: start + 60_000,
                })
                .await?;
            read.push((tenant, buckets, custom));
        }
        for (tenant, buckets, custom) in read {
            let series = minute_series(&mut st.totals, tenant, start, &buckets, &custom, &shape);
            let header = match &self.target.config.tenant_header {
                Some(_) => self
                    .target
                    .config
                    .tenant_id
                    .clone()
                    .unwrap_or(tenant.clone()),
                None => String::new(),
            };
            for chunk in series.chunks(MAX_SERIES_PER_REQUEST) {
                let request = WriteRequest {
                    timeseries: chunk.to_vec(),
                };
                let samples = request.sample_count();
                let body = request.to_body();
                let header = header.clone();
                let evicted = self
                    .with_queue(move |q| q.push(&header, samples, &body))
                    .await
                    .map_err(|e| self.queue_error(e))?;
                if evicted.samples > 0 {
                    self.metrics
                        .dropped
                        .get(&[self.name(), "queue_full"])
                        .add(evicted.samples);
                }
            }
        }
        Ok(())
    }

    async fn update_depth(&self) {
        if let Ok((bytes, requests)) = self.with_queue(|q| q.depth()).await {
            let name = self.name();
            self.metrics
                .queue_bytes
                .get(&[name])
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            self.metrics
                .queue_requests
                .get(&[name])
                .set(i64::try_from(requests).unwrap_or(i64::MAX));
        }
    }

    /// Sends queued requests, oldest first, until the queue is empty or
    /// one must wait (5xx, 429, network: it stays first in the queue).
    pub async fn send_pending(&self) -> SendReport {
        let mut report = SendReport::default();
        loop {
            let next = match self.with_queue(|q| q.oldest()).await {
                Ok(Some(q)) => q,
                Ok(None) => break,
                Err(e) => {
                    self.metrics.dropped.get(&[self.name(), "damaged"]).inc();
                    eprintln!(
                        "vitals collector: remote write {}: dropped a damaged queue file: {e}",
                        self.name()
                    );
                    continue;
                }
            };
            let outcome = self.sender.send(&next.tenant, next.body.clone()).await;
            match outcome {
                Outcome::Sent => {
                    self.metrics.sent.get(&[self.name()]).add(next.samples);
                    report.sent += 1;
                }
                Outcome::Drop { detail } => {
                    self.metrics.failures.get(&[self.name(), "http_4xx"]).inc();
                    self.metrics
                        .dropped
                        .get(&[self.name(), "http_4xx"])
                        .add(next.samples);
                    eprintln!(
                        "vitals collector: remote write {}: the receiver refused a request of {} samples for good, dropped: {detail}",
                        self.name(),
                        next.samples
                    );
                    report.dropped += 1;
                }
                Outcome::Retry {
                    reason,
                    detail,
                    after,
                } => {
                    self.metrics.failures.get(&[self.name(), reason]).inc();
                    eprintln!(
                        "vitals collector: remote write {}: will retry: {detail}",
                        self.name()
                    );
                    report.retry = Some((reason, after));
                    break;
                }
            }
            let removed = next.clone();
            if let Err(e) = self.with_queue(move |q| q.remove(&removed)).await {
                self.queue_error(e);
                break;
            }
        }
        self.update_depth().await;
        report
    }

    /// Starts the export pass (every 10 s) and the sender (woken by each
    /// pass; on a retryable failure it waits, doubling from 250 ms up to
    /// 30 s, or what `Retry-After` asks).
    pub fn spawn(self: Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let exporter = self.clone();
        let export = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Catch up an hour per call until nothing is due.
                loop {
                    match exporter.export_due(crate::now_ms()).await {
                        Ok(60..) => continue,
                        Ok(_) => break,
                        Err(e) => {
                            if matches!(e, ExportError::Store(_)) {
                                exporter
                                    .metrics
                                    .failures
                                    .get(&[exporter.name(), "store"])
                                    .inc();
                            }
                            eprintln!("vitals collector: {e}; retrying in 10 s");
                            break;
                        }
                    }
                }
            }
        });
        let sender = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let report = self.send_pending().await;
                match report.retry {
                    Some((_, after)) => {
                        tokio::time::sleep(after.unwrap_or(backoff).max(backoff)).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                    None => {
                        backoff = Duration::from_millis(250);
                        let _ = tokio::time::timeout(Duration::from_secs(5), self.wake.notified())
                            .await;
                    }
                }
            }
        });
        vec![export, sender]
    }
}
