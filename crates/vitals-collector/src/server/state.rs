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
use crate::model::{KeyRecord, Role, UnixMs};
use crate::rollup::{self, Retention};
use crate::store::{self, Store, StoreError};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use vitals::{Counter, CounterVec, Registry};

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
    pub(super) alerting: Alerting,
    pub(super) live: Arc<LiveHub>,
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
                alerting,
                live,
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
        rollup::rollup_pass(&*self.inner.store).await?;
        rollup::apply_retention(&*self.inner.store, &self.inner.retention, now).await?;
        // Alert history is kept as long as the hour rollups.
        self.inner
            .store
            .drop_alert_history_before(now.saturating_sub(self.inner.retention.hour_ms))
            .await?;
        Ok(())
    }

    /// Starts the rollup and retention job: a pass every
    /// `rollup_interval_secs`. Failures are counted and retried next time.
    pub fn spawn_jobs(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
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
        if err.is_rejection() {
            self.inner.registry.count_rejected(err.reason);
        } else {
            self.inner.failures.get(&[err.reason]).inc();
        }
        err.into_response()
    }

    pub(super) async fn authorize(
        &self,
        headers: &HeaderMap,
        role: Role,
    ) -> Result<KeyRecord, ApiError> {
        let unauthorized =
            |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg.to_string());
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthorized("missing Authorization header; send `Authorization: Bearer <key>`")
        })?;
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
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
