//! The collector itself: what it holds (configuration, store, key cache,
//! route limiter, its own metrics), how it is opened, and what its
//! handlers share (answering an error, checking a key). The router over it
//! is in `mod.rs`; the handlers import this file, never `mod.rs`.

use super::live_hub::LiveHub;
use crate::alerting::{AlertMetrics, Alerting};
use crate::auth::{self, KeyCache, MAX_KEY_LEN};
use crate::clock::now_ms;
use crate::config::CollectorConfig;
use crate::error::ApiError;
use crate::ingest::RouteLimiter;
use crate::ingest::otlp::Streams;
use crate::model::{KeyRecord, Role, UnixMs};
use crate::remote_write::{Exporter, RemoteMetrics};
use crate::rollup::{self, Retention};
use crate::store::{self, Store, StoreError};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use vitals::{Counter, CounterVec, FloatGauge, Histogram, HistogramVec, Registry};

/// OTLP export requests one collector handles at once; past it the
/// answer is `429 Too Many Requests` with `Retry-After`, which OTLP
/// exporters honour.
pub const MAX_OTLP_IN_FLIGHT: usize = 64;

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A metric of the collector's own registry could not be registered.
    #[error("metrics registry: {0}")]
    Metrics(#[from] vitals::Error),
    /// Listening or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

pub(super) struct Inner {
    pub(super) config: CollectorConfig,
    pub(super) retention: Retention,
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: KeyCache,
    pub(super) routes: RouteLimiter,
    pub(super) registry: Registry,
    pub(super) batches: CounterVec,
    pub(super) ingested: CounterVec,
    pub(super) overflowed: Counter,
    pub(super) apdex_estimated: Counter,
    pub(super) failures: CounterVec,
    /// One exporter per `[[remote_write]]` receiver.
    pub(super) remote: Vec<Arc<Exporter>>,
    /// OTLP data points by outcome (accepted, rejected).
    pub(super) otlp_points: CounterVec,
    /// Time to answer an ingest body, by endpoint.
    pub(super) ingest_seconds: HistogramVec,
    /// Time the store took to keep one write.
    pub(super) store_write_seconds: Histogram,
    /// The rollup job's own figures.
    pub(super) rollup: RollupMetrics,
    /// Cumulative OTLP streams' last readings.
    pub(super) streams: Streams,
    /// OTLP requests being handled; past its permits the answer is 429.
    pub(super) otlp_in_flight: tokio::sync::Semaphore,
    /// Alert rules, states and notifications.
    pub(super) alerting: Alerting,
    pub(super) live: Arc<LiveHub>,
}

/// The rollup job's figures on the collector's own `/metrics`.
pub(super) struct RollupMetrics {
    /// How long each pass (rollup and retention) took.
    pass_seconds: Histogram,
    /// Periods recomputed.
    periods: Counter,
    /// When the last pass succeeded (Unix seconds).
    last_success: FloatGauge,
    /// How far behind the acknowledged data the rollups may be.
    lag_seconds: FloatGauge,
}

impl RollupMetrics {
    fn register(registry: &Registry) -> Result<Self, vitals::Error> {
        Ok(RollupMetrics {
            pass_seconds: registry.histogram((
                "vitals_collector_rollup_pass_duration_seconds",
                "Time one rollup and retention pass took",
            ))?,
            periods: registry.counter((
                "vitals_collector_rollup_periods_total",
                "Dirty periods recomputed by the rollup passes",
            ))?,
            last_success: registry.float_gauge((
                "vitals_collector_rollup_last_success_timestamp_seconds",
                "When the last rollup pass succeeded, in Unix seconds (0 before the first)",
            ))?,
            lag_seconds: registry.float_gauge((
                "vitals_collector_rollup_lag_seconds",
                "How far the 5-minute and hour rollups may trail the acknowledged data: the last pass's length after a success, the time since the last success after a failure",
            ))?,
        })
    }
}

/// A collector: configuration, store and state shared by its HTTP
/// handlers and background jobs. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use vitals_collector::{Collector, CollectorConfig, Role};
///
/// let config = CollectorConfig { store: "sqlite::memory:".into(), ..Default::default() };
/// let collector = Collector::open(config).await?;
/// let key = collector.create_key("acme", Role::Ingest).await?;
/// println!("ingest key: {key}");
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
/// collector.serve(listener, std::future::pending()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Collector {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Validates `config` and opens its store (running migrations), behind
    /// the Redis hot tier when `config.cache` names one.
    pub async fn open(config: CollectorConfig) -> Result<Self, CollectorError> {
        config.validate().map_err(CollectorError::Config)?;
        let hot = config.hot_tier.resolve().map_err(CollectorError::Config)?;
        let store = store::open_with_hot_tier(&config.store, config.cache.as_deref(), hot).await?;
        Self::with_store(config, store)
    }

    /// A collector over an already open store (any back end).
    pub fn with_store(
        config: CollectorConfig,
        store: Arc<dyn Store>,
    ) -> Result<Self, CollectorError> {
        let retention = config.retention.resolve().map_err(CollectorError::Config)?;
        let alerting_settings = config.alerting_settings().map_err(CollectorError::Config)?;
        let registry = Registry::new();
        store.register_metrics(&registry);
        let batches = registry.counter_vec(
            (
                "vitals_collector_batches_total",
                "Ingest bodies answered, by endpoint and outcome (stored, duplicate, rejected, failed)",
            ),
            &["endpoint", "outcome"],
        )?;
        let ingested = registry.counter_vec(
            (
                "vitals_collector_requests_ingested_total",
                "Requests counted by stored batches, by endpoint",
            ),
            &["endpoint"],
        )?;
        let overflowed = registry.counter((
            "vitals_collector_route_overflow_total",
            "Aggregates or records folded into route=\"__overflow__\" because their service reached its route limit",
        ))?;
        let apdex_estimated = registry.counter((
            "vitals_collector_apdex_estimated_total",
            "Pushed aggregates whose Apdex counts were re-read from their duration sketch because the sender's apdex_t_ms differed from the service's",
        ))?;
        let failures = registry.counter_vec(
            (
                "vitals_collector_failures_total",
                "Collector-side failures (store errors, background jobs), by reason",
            ),
            &["reason"],
        )?;
        let mut remote = Vec::new();
        if !config.remote_write.is_empty() {
            let metrics = RemoteMetrics::register(&registry)?;
            for (i, r) in config.remote_write.iter().enumerate() {
                let target = r.resolve(i).map_err(CollectorError::Config)?;
                let exporter =
                    Exporter::open(target, store.clone(), config.clone(), metrics.clone())
                        .map_err(CollectorError::Config)?;
                remote.push(Arc::new(exporter));
            }
        }
        let alerting = Alerting::new(
            &config,
            alerting_settings,
            retention,
            store.clone(),
            AlertMetrics::register(&registry)?,
        );
        let live = Arc::new(LiveHub::new(
            &registry,
            config.limits.max_live_clients,
            config.limits.live_buffer,
        )?);
        let otlp_points = registry.counter_vec(
            (
                "vitals_collector_otlp_data_points_total",
                "OTLP data points received on /v1/metrics, by outcome (accepted, rejected)",
            ),
            &["outcome"],
        )?;
        let ingest_seconds = registry.histogram_vec(
            (
                "vitals_collector_ingest_duration_seconds",
                "Time from an ingest body's arrival to its answer (any outcome), by endpoint (ingest, requests, otlp)",
            ),
            &["endpoint"],
        )?;
        let store_write_seconds = registry.histogram((
            "vitals_collector_store_write_duration_seconds",
            "Time the store took to keep one ingest write durably",
        ))?;
        let rollup = RollupMetrics::register(&registry)?;
        Ok(Collector {
            inner: Arc::new(Inner {
                config,
                retention,
                store,
                keys: KeyCache::default(),
                routes: RouteLimiter::default(),
                registry,
                batches,
                ingested,
                overflowed,
                apdex_estimated,
                failures,
                remote,
                alerting,
                live,
                otlp_points,
                ingest_seconds,
                store_write_seconds,
                rollup,
                streams: Streams::new(now_ms()),
                otlp_in_flight: tokio::sync::Semaphore::new(MAX_OTLP_IN_FLIGHT),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &CollectorConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The collector's own metrics (served at `GET /metrics`).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The remote-write exporters, one per `[[remote_write]]` receiver, in
    /// configuration order; [`Collector::spawn_jobs`] runs them (tests may
    /// drive [`Exporter::export_due`] and [`Exporter::send_pending`]).
    pub fn remote_writers(&self) -> &[Arc<Exporter>] {
        &self.inner.remote
    }

    /// The alerting engine (rules, states, notifications).
    pub fn alerting(&self) -> &Alerting {
        &self.inner.alerting
    }

    /// Creates an API key for `tenant` and returns the secret (shown once).
    pub async fn create_key(&self, tenant: &str, role: Role) -> Result<String, StoreError> {
        auth::create_key(&*self.inner.store, tenant, role, now_ms()).await
    }

    /// One rollup pass (every dirty period) followed by retention at
    /// `now`. The background job calls this; tests may too.
    pub async fn run_jobs_once(&self, now: UnixMs) -> Result<(), StoreError> {
        let m = &self.inner.rollup;
        let timer = m.pass_seconds.start_timer();
        let result = async {
            let periods = rollup::rollup_pass(&*self.inner.store).await?;
            rollup::apply_retention(&*self.inner.store, &self.inner.retention, now).await?;
            // Alert history is kept as long as the hour rollups.
            self.inner
                .store
                .drop_alert_history_before(now.saturating_sub(self.inner.retention.hour_ms))
                .await?;
            Ok::<_, StoreError>(periods)
        }
        .await;
        let took = timer.stop();
        let now_secs = now as f64 / 1000.0;
        match result {
            Ok(periods) => {
                m.periods.add(periods as u64);
                // Dirty periods of data acknowledged before the pass began
                // are rolled up now: the lag is the pass's own length.
                m.lag_seconds.set(took);
                m.last_success.set(now_secs);
                Ok(())
            }
            Err(e) => {
                let last = m.last_success.get();
                if last > 0.0 {
                    m.lag_seconds.set((now_secs - last).max(0.0) + took);
                }
                Err(e)
            }
        }
    }

    /// Starts the rollup and retention job: a pass every
    /// `rollup_interval_secs`. Failures are counted and retried next time.
    /// The remote-write exporters run beside it, and stop with it.
    pub fn spawn_jobs(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            // Aborted with this task: each handle aborts its task on drop.
            let _remote: Vec<AbortOnDrop> = this
                .inner
                .remote
                .iter()
                .flat_map(|e| e.clone().spawn())
                .map(AbortOnDrop)
                .collect();
            let mut tick =
                tokio::time::interval(Duration::from_secs(this.inner.config.rollup_interval_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.run_jobs_once(now_ms()).await {
                    this.inner.failures.get(&["background_job"]).inc();
                    eprintln!(
                        "vitals collector: rollup/retention pass failed, retrying next interval: {e}"
                    );
                }
            }
        })
    }

    /// Counts and renders an error answer.
    pub(super) fn fail(&self, err: ApiError) -> Response {
        self.count_error(&err);
        err.into_response()
    }

    /// Counts an error answer: a refusal by its reason, a failure as one.
    pub(super) fn count_error(&self, err: &ApiError) {
        if err.is_rejection() {
            self.inner.registry.count_rejected(err.reason);
        } else {
            self.inner.failures.get(&[err.reason]).inc();
        }
    }

    pub(super) async fn authorize(
        &self,
        headers: &HeaderMap,
        role: Role,
    ) -> Result<KeyRecord, ApiError> {
        let unauthorized =
            |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg.to_string());
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or_else(|| {
            unauthorized("missing Authorization header; send `Authorization: Bearer <key>`")
        })?;
        if values.next().is_some() {
            // Which one a proxy or this server would read is anyone's
            // guess: refuse rather than pick.
            return Err(unauthorized(
                "several Authorization headers; send exactly one `Authorization: Bearer <key>`",
            ));
        }
        let key = value
            .to_str()
            .ok()
            .and_then(auth::bearer_token)
            .filter(|k| k.len() <= MAX_KEY_LEN)
            .ok_or_else(|| {
                unauthorized("malformed Authorization header; send `Authorization: Bearer <key>`")
            })?;
        let rec = self
            .inner
            .keys
            .lookup(&*self.inner.store, key)
            .await
            .map_err(ApiError::store_unavailable)?
            .ok_or_else(|| {
                unauthorized("unknown API key; create one with `vitals collector keys create`")
            })?;
        if !rec.role.allows(role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this key has role {}; {} needs a key with role {role}",
                    rec.role,
                    match role {
                        Role::Ingest => "ingest",
                        Role::Read => "reading",
                        Role::Admin => "writing alert rules",
                    }
                ),
            ));
        }
        Ok(rec)
    }
}

/// Aborts a background task when dropped, so jobs started by
/// [`Collector::spawn_jobs`] end with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
