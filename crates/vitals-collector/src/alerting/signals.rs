//! A rule's value at an evaluation: read from the store exactly as the
//! query API reads it (the same [`Window`], the per-service total series
//! for a whole service, the route sums of `/routes` for one route, the
//! same [`Figures`] and [`query::health`]), so an alert and the page that
//! shows it never disagree. One round reads each (tenant, window) and
//! (service, window) once, however many rules share them.

use crate::config::{CollectorConfig, Rule, Signal};
use crate::custom_metrics;
use crate::model::{
    BucketQuery, BucketStats, CustomKind, CustomQuery, SeriesSelect, StatsSum, UnixMs,
};
use crate::query::{self, Figures, Health, Window};
use crate::rollup::Retention;
use crate::store::{Store, StoreResult};
use std::collections::HashMap;

/// A rule's reading: its value, and whether its condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The signal's value; `None` when there is nothing to compute it from
    /// (a percentile without requests), which never meets a threshold.
    pub value: Option<f64>,
    /// Whether the condition holds.
    pub met: bool,
    /// For the health signal: the service's health and why.
    pub health: Option<(Health, Vec<String>)>,
}

/// The window the query API would use for a span of `window_ms`.
pub fn window_of(window_ms: i64, now: UnixMs, retention: &Retention) -> Option<Window> {
    Window::parse(&format!("{}s", window_ms / 1000), now, retention).ok()
}

/// What one round has read for one tenant.
pub struct TenantReader<'a> {
    store: &'a dyn Store,
    config: &'a CollectorConfig,
    retention: &'a Retention,
    tenant: &'a str,
    now: UnixMs,
    last_seen: HashMap<String, UnixMs>,
    totals: HashMap<i64, HashMap<String, BucketStats>>,
    routes: HashMap<(String, i64), Vec<crate::model::RouteSum>>,
    custom: HashMap<(String, i64), Vec<custom_metrics::CustomSummary>>,
}

impl<'a> TenantReader<'a> {
    /// A reader for `tenant` at `now`; reads the tenant's services once.
    pub async fn new(
        store: &'a dyn Store,
        config: &'a CollectorConfig,
        retention: &'a Retention,
        tenant: &'a str,
        now: UnixMs,
    ) -> StoreResult<TenantReader<'a>> {
        let last_seen = store
            .services(tenant.to_owned())
            .await?
            .into_iter()
            .map(|s| (s.service, s.last_seen_ms))
            .collect();
        Ok(TenantReader {
            store,
            config,
            retention,
            tenant,
            now,
            last_seen,
            totals: HashMap::new(),
            routes: HashMap::new(),
            custom: HashMap::new(),
        })
    }

    /// The tenant's services, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self.last_seen.keys().cloned().collect();
        v.sort();
        v
    }

    async fn service_total(&mut self, service: &str, w: &Window) -> StoreResult<BucketStats> {
        if !self.totals.contains_key(&w.window_ms) {
            let buckets = self
                .store
                .read_buckets(BucketQuery {
                    tenant: self.tenant.to_owned(),
                    service: None,
                    resolution: w.resolution,
                    start_ms: w.from_ms,
                    end_ms: w.to_ms + 1,
                    series: SeriesSelect::Totals,
                })
                .await?;
            let mut by: HashMap<String, StatsSum> = HashMap::new();
            for b in &buckets {
                by.entry(b.key.service.clone()).or_default().add(&b.stats);
            }
            let done = by.into_iter().map(|(k, v)| (k, v.finish())).collect();
            self.totals.insert(w.window_ms, done);
        }
        Ok(self
            .totals
            .get(&w.window_ms)
            .and_then(|m| m.get(service))
            .cloned()
            .unwrap_or_default())
    }

    async fn route_total(
        &mut self,
        service: &str,
        route: Option<&str>,
        method: Option<&str>,
        w: &Window,
    ) -> StoreResult<BucketStats> {
        let key = (service.to_owned(), w.window_ms);
        if !self.routes.contains_key(&key) {
            let sums = if self.last_seen.contains_key(service) {
                self.store
                    .route_sums(BucketQuery {
                        tenant: self.tenant.to_owned(),
                        service: Some(service.to_owned()),
                        resolution: w.resolution,
                        start_ms: w.from_ms,
                        end_ms: w.to_ms + 1,
                        series: SeriesSelect::Routes,
                    })
                    .await?
            } else {
                Vec::new()
            };
            self.routes.insert(key.clone(), sums);
        }
        let mut sum = StatsSum::default();
        for s in self.routes.get(&key).into_iter().flatten() {
            if route.is_none_or(|r| r == s.route) && method.is_none_or(|m| m == s.method) {
                sum.add(&s.stats);
            }
        }
        Ok(sum.finish())
    }

    async fn custom_value(
        &mut self,
        service: &str,
        name: &str,
        w: &Window,
    ) -> StoreResult<Option<f64>> {
        let key = (service.to_owned(), w.window_ms);
        if !self.custom.contains_key(&key) {
            let list = if self.last_seen.contains_key(service) {
                let points = self
                    .store
                    .read_custom(CustomQuery {
                        tenant: self.tenant.to_owned(),
                        service: Some(service.to_owned()),
                        name: None,
                        resolution: w.resolution,
                        start_ms: w.from_ms,
                        end_ms: w.to_ms + 1,
                    })
                    .await?;
                custom_metrics::summaries(&points, w.span_secs())
            } else {
                Vec::new()
            };
            self.custom.insert(key.clone(), list);
        }
        let mut found = None;
        for s in self.custom.get(&key).into_iter().flatten() {
            if s.name == name {
                let v = match s.kind {
                    CustomKind::Counter => s.rate_per_sec.unwrap_or(0.0),
                    CustomKind::Gauge => s.value,
                };
                found = Some(found.unwrap_or(0.0) + v);
            }
        }
        Ok(found)
    }

    /// The reading of `rule` (a rule of this tenant). `window_ms` is the
    /// rule's window (the health rule's comes from the configuration).
    pub async fn read(&mut self, rule: &Rule) -> StoreResult<Reading> {
        let Some(w) = window_of(rule.window_ms, self.now, self.retention) else {
            return Ok(Reading {
                value: None,
                met: false,
                health: None,
            });
        };
        let stats = if rule.route.is_some() || rule.method.is_some() {
            self.route_total(
                &rule.service,
                rule.route.as_deref(),
                rule.method.as_deref(),
                &w,
            )
            .await?
        } else if matches!(rule.signal, Signal::Custom(_)) {
            BucketStats::default()
        } else {
            self.service_total(&rule.service, &w).await?
        };
        let f = Figures::of(&stats, w.span_secs());
        let mut health = None;
        let value = match &rule.signal {
            Signal::ErrorRate => (f.requests > 0).then_some(f.error_rate),
            Signal::P95 => f.p95_ms,
            Signal::P99 => f.p99_ms,
            Signal::Rate => Some(f.rate_per_sec),
            Signal::Apdex => f.apdex,
            Signal::NoData => Some(f.requests as f64),
            Signal::Health => {
                let policy = self.config.policy(&rule.service);
                let seen = self.last_seen.get(&rule.service).copied();
                let (h, reasons) = query::health(&f, seen, &policy, self.now);
                let v = match h {
                    Health::Healthy => 0.0,
                    Health::Degraded => 1.0,
                    Health::Down => 2.0,
                };
                health = Some((h, reasons));
                Some(v)
            }
            Signal::Custom(name) => {
                let name = name.clone();
                self.custom_value(&rule.service, &name, &w).await?
            }
        };
        let met = match rule.signal {
            Signal::NoData => f.requests == 0,
            _ => value.is_some_and(|v| rule.op.holds(v, rule.threshold)),
        };
        Ok(Reading { value, met, health })
    }
}
