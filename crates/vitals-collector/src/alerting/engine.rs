//! The alerting engine: the rules in force (the configuration's, those
//! written over the API, and the built-in health rule of every service),
//! one evaluation round ([`Alerting::evaluate`]) that steps every alert's
//! state machine and stores the changed states with their history in one
//! write, and one notification pass ([`Alerting::notify`]) that delivers
//! what is due and stores what each receiver was told. Both take the time
//! as an argument, so a test drives them with its own clock; the
//! background job ([`Alerting::spawn`]) passes the wall clock.

use super::delivery::{Outcome, Sender};
use super::due::{ReceiverKind, Timing, due};
use super::labels::{alert_labels, render};
use super::metrics::AlertMetrics;
use super::payload::{OutAlert, postable, webhook_message};
use super::signals::TenantReader;
use super::state::{AlertState, Sent, Tracked};
use crate::clock::now_ms;
use crate::config::alert_rule::BUILTIN_HEALTH_RULE;
use crate::config::{AlertingSettings, CollectorConfig, Rule, RuleSource, RuleSpec};
use crate::model::{AlertEvent, StoredAlert, UnixMs};
use crate::query::Health;
use crate::rollup::Retention;
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An alert's identity: tenant, rule name, service.
pub type AlertKey = (String, String, String);

/// Concurrent deliveries of one notification pass.
const MAX_CONCURRENT_DELIVERIES: usize = 16;

/// An alert in memory: its state and the JSON last stored for it.
#[derive(Debug, Clone, Default)]
struct Entry {
    tracked: Tracked,
    saved: Option<String>,
}

#[derive(Debug, Default)]
struct Book {
    loaded: bool,
    alerts: HashMap<AlertKey, Entry>,
}

/// How one receiver has fared, for the alerts page.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReceiverStatus {
    /// Its name (`alertmanager` for the Alertmanager receiver).
    pub name: String,
    /// `webhook` or `alertmanager`.
    pub kind: &'static str,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications that failed after every attempt.
    pub failed: u64,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_ms: Option<UnixMs>,
    /// When the last delivery passed.
    pub last_delivered_ms: Option<UnixMs>,
}

/// One rule with its alert's state, as `GET /v1/alert-rules` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleView {
    /// The rule.
    pub rule: Rule,
    /// Its alert's state (`None` before its first round).
    pub tracked: Option<Tracked>,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Rules evaluated.
    pub rules: usize,
    /// State changes stored.
    pub changes: usize,
}

struct Inner {
    settings: AlertingSettings,
    config: CollectorConfig,
    retention: Retention,
    store: Arc<dyn Store>,
    sender: Sender,
    metrics: AlertMetrics,
    book: tokio::sync::Mutex<Book>,
    notifying: tokio::sync::Mutex<()>,
    receivers: Mutex<BTreeMap<String, ReceiverStatus>>,
}

/// The alerting engine of one collector (cheap to clone).
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").finish_non_exhaustive()
    }
}

/// A due notification: which receiver, which alert, what to say.
struct Job {
    receiver: String,
    key: AlertKey,
    alert: OutAlert,
}

impl Alerting {
    /// The engine over `store`, with `config`'s `[alerting]` section
    /// (checked by the caller) and its series in `metrics`.
    pub fn new(
        config: &CollectorConfig,
        settings: AlertingSettings,
        retention: Retention,
        store: Arc<dyn Store>,
        metrics: AlertMetrics,
    ) -> Alerting {
        let sender = Sender::new(
            Duration::from_millis(settings.timeout_ms.max(1) as u64),
            settings.retry_attempts,
            Duration::from_millis(settings.retry_backoff_ms.max(1) as u64),
        );
        let mut receivers = BTreeMap::new();
        for w in &settings.webhooks {
            receivers.insert(
                w.name.clone(),
                ReceiverStatus {
                    name: w.name.clone(),
                    kind: "webhook",
                    ..ReceiverStatus::default()
                },
            );
        }
        if settings.alertmanager.is_some() {
            receivers.insert(
                "alertmanager".into(),
                ReceiverStatus {
                    name: "alertmanager".into(),
                    kind: "alertmanager",
                    ..ReceiverStatus::default()
                },
            );
        }
        Alerting {
            inner: Arc::new(Inner {
                settings,
                config: config.clone(),
                retention,
                store,
                sender,
                metrics,
                book: tokio::sync::Mutex::new(Book::default()),
                notifying: tokio::sync::Mutex::new(()),
                receivers: Mutex::new(receivers),
            }),
        }
    }

    /// The checked `[alerting]` section.
    pub fn settings(&self) -> &AlertingSettings {
        &self.inner.settings
    }

    /// The rules of `tenant`: the configuration's, then those written over
    /// the API (a stored spec that no longer checks is left out).
    pub async fn rules_of(&self, tenant: Option<&str>) -> Result<Vec<Rule>, StoreError> {
        let mut out: Vec<Rule> = self
            .inner
            .settings
            .rules
            .iter()
            .filter(|r| tenant.is_none_or(|t| t == r.tenant))
            .cloned()
            .collect();
        let limits = self.inner.config.name_limits();
        for stored in self
            .inner
            .store
            .alert_rules(tenant.map(str::to_owned))
            .await?
        {
            let Ok(spec) = serde_json::from_str::<RuleSpec>(&stored.spec) else {
                continue;
            };
            if let Ok(rule) = spec.check(&stored.tenant, RuleSource::Api, limits) {
                out.push(rule);
            }
        }
        Ok(out)
    }

    /// The built-in health rule of `service`.
    fn health_rule(&self, tenant: &str, service: &str) -> Option<Rule> {
        let spec = RuleSpec {
            tenant: None,
            name: BUILTIN_HEALTH_RULE.into(),
            service: service.into(),
            route: None,
            method: None,
            signal: "health".into(),
            op: None,
            threshold: None,
            window: format!("{}s", self.inner.settings.health_window_ms / 1000),
            for_: "0s".into(),
            keep_firing_for: "0s".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        };
        spec.check(tenant, RuleSource::Builtin, self.inner.config.name_limits())
            .ok()
    }

    async fn load(&self, book: &mut Book) -> Result<(), StoreError> {
        if book.loaded {
            return Ok(());
        }
        for s in self.inner.store.alert_states().await? {
            // A state this build cannot read starts over as inactive.
            let tracked: Tracked = serde_json::from_str(&s.state).unwrap_or_default();
            book.alerts.insert(
                (s.tenant, s.rule, s.service),
                Entry {
                    tracked,
                    saved: Some(s.state),
                },
            );
        }
        book.loaded = true;
        Ok(())
    }

    /// One evaluation round at `now`: every rule's reading, every alert's
    /// step, and the changed states with their history stored in one
    /// write. Alerts of rules that no longer exist are dropped.
    pub async fn evaluate(&self, now: UnixMs) -> Result<RoundReport, StoreError> {
        let started = Instant::now();
        let result = self.evaluate_inner(now).await;
        let m = &self.inner.metrics;
        m.rounds
            .get(&[if result.is_ok() { "ok" } else { "failed" }])
            .inc();
        m.round_seconds.set(started.elapsed().as_secs_f64());
        result
    }

    async fn evaluate_inner(&self, now: UnixMs) -> Result<RoundReport, StoreError> {
        let rules = self.rules_of(None).await?;
        let mut by_tenant: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
        for r in rules {
            by_tenant.entry(r.tenant.clone()).or_default().push(r);
        }
        if self.inner.settings.health_rule {
            for t in self.inner.store.tenants().await? {
                by_tenant.entry(t).or_default();
            }
        }
        let mut book = self.inner.book.lock().await;
        self.load(&mut book).await?;
        let mut seen: BTreeSet<AlertKey> = BTreeSet::new();
        let mut events = Vec::new();
        let mut report = RoundReport::default();
        let s = &self.inner;
        for (tenant, mut rules) in by_tenant {
            let mut reader =
                TenantReader::new(&*s.store, &s.config, &s.retention, &tenant, now).await?;
            if s.settings.health_rule {
                rules.extend(
                    reader
                        .services()
                        .iter()
                        .filter_map(|svc| self.health_rule(&tenant, svc)),
                );
            }
            for rule in &rules {
                let reading = reader.read(rule).await?;
                let key = (tenant.clone(), rule.name.clone(), rule.service.clone());
                let entry = book.alerts.entry(key.clone()).or_default();
                let t = &mut entry.tracked;
                let changes = t.step(now, reading.met, rule.for_ms, rule.keep_firing_for_ms);
                t.value = reading.value;
                if t.state == AlertState::Firing || !changes.is_empty() {
                    t.labels = alert_labels(rule);
                    let mut annotations: BTreeMap<String, String> = rule
                        .annotations
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                render(v, reading.value, rule.threshold, &t.labels),
                            )
                        })
                        .collect();
                    if let Some((health, reasons)) = &reading.health
                        && t.state == AlertState::Firing
                    {
                        let word = match health {
                            Health::Healthy => "healthy",
                            Health::Degraded => "degraded",
                            Health::Down => "down",
                        };
                        annotations
                            .entry("summary".into())
                            .or_insert_with(|| format!("service {} is {word}", rule.service));
                        annotations
                            .entry("description".into())
                            .or_insert_with(|| reasons.join("; "));
                        annotations.insert("health".into(), word.into());
                    }
                    t.annotations = annotations;
                }
                for c in changes {
                    s.metrics.transitions.get(&[c.to.as_str()]).inc();
                    events.push(AlertEvent {
                        tenant: tenant.clone(),
                        rule: rule.name.clone(),
                        service: rule.service.clone(),
                        at_ms: now,
                        from: c.from.as_str().into(),
                        to: c.to.as_str().into(),
                        value: reading.value.filter(|v| v.is_finite()),
                        labels: serde_json::to_string(&alert_labels(rule))
                            .unwrap_or_else(|_| "{}".into()),
                    });
                }
                seen.insert(key);
                report.rules += 1;
            }
        }
        let removed: Vec<AlertKey> = book
            .alerts
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let mut gone = Vec::new();
        for k in removed {
            if let Some(e) = book.alerts.remove(&k)
                && e.saved.is_some()
            {
                gone.push(k);
            }
        }
        report.changes = events.len();
        self.persist(&mut book, gone, events).await?;
        let mut counts: HashMap<AlertState, i64> = HashMap::new();
        for e in book.alerts.values() {
            *counts.entry(e.tracked.state).or_default() += 1;
        }
        for st in [
            AlertState::Inactive,
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ] {
            s.metrics
                .alerts
                .get(&[st.as_str()])
                .set(counts.get(&st).copied().unwrap_or(0));
        }
        Ok(report)
    }

    /// Stores every alert whose JSON changed, `gone` removals and `events`.
    async fn persist(
        &self,
        book: &mut Book,
        gone: Vec<AlertKey>,
        events: Vec<AlertEvent>,
    ) -> Result<(), StoreError> {
        let mut states = Vec::new();
        let mut fresh = Vec::new();
        for (k, e) in &book.alerts {
            let json = serde_json::to_string(&e.tracked)
                .map_err(|err| StoreError::Invalid(format!("alert state: {err}")))?;
            if e.saved.as_deref() != Some(json.as_str()) {
                states.push(StoredAlert {
                    tenant: k.0.clone(),
                    rule: k.1.clone(),
                    service: k.2.clone(),
                    state: json.clone(),
                });
                fresh.push((k.clone(), json));
            }
        }
        if states.is_empty() && gone.is_empty() && events.is_empty() {
            return Ok(());
        }
        self.inner.store.save_alerts(states, gone, events).await?;
        for (k, json) in fresh {
            if let Some(e) = book.alerts.get_mut(&k) {
                e.saved = Some(json);
            }
        }
        Ok(())
    }

    fn timing(&self) -> Timing {
        let s = &self.inner.settings;
        Timing {
            group_wait_ms: s.group_wait_ms,
            group_interval_ms: s.group_interval_ms,
            repeat_interval_ms: s.repeat_interval_ms,
            resend_interval_ms: s.resend_interval_ms,
        }
    }

    fn out_alert(&self, key: &AlertKey, t: &Tracked, state: AlertState) -> OutAlert {
        OutAlert {
            state,
            labels: t.labels.clone(),
            annotations: t.annotations.clone(),
            starts_ms: t.starts_ms.unwrap_or(t.since_ms),
            ends_ms: t.ends_ms,
            generator_url: format!(
                "{}/#alerts?rule={}&service={}",
                self.inner.settings.external_url,
                urlencode(&key.1),
                urlencode(&key.2)
            ),
        }
    }

    /// One notification pass at `now`: delivers every due notification
    /// (webhooks one message per group, Alertmanager one post of all its
    /// alerts), then stores what each receiver was told. One pass at a
    /// time; returns how many notifications were delivered.
    pub async fn notify(&self, now: UnixMs) -> Result<usize, StoreError> {
        let _one_at_a_time = self.inner.notifying.lock().await;
        let s = &self.inner.settings;
        let timing = self.timing();
        let mut jobs: Vec<(ReceiverKind, Job)> = Vec::new();
        {
            let mut book = self.inner.book.lock().await;
            self.load(&mut book).await?;
            let mut keys: Vec<&AlertKey> = book.alerts.keys().collect();
            keys.sort();
            let receivers = s
                .webhooks
                .iter()
                .map(|w| (ReceiverKind::Webhook, w.name.as_str()))
                .chain(
                    s.alertmanager
                        .iter()
                        .map(|_| (ReceiverKind::Alertmanager, "alertmanager")),
                );
            for (kind, name) in receivers {
                for key in &keys {
                    let t = &book.alerts[*key].tracked;
                    if let Some(state) = due(t, t.sent.get(name), kind, &timing, now) {
                        jobs.push((
                            kind,
                            Job {
                                receiver: name.to_owned(),
                                key: (*key).clone(),
                                alert: self.out_alert(key, t, state),
                            },
                        ));
                    }
                }
            }
        }
        if jobs.is_empty() {
            return Ok(0);
        }
        let delivered = self.deliver(jobs, now).await;
        let count = delivered.len();
        let mut book = self.inner.book.lock().await;
        for (receiver, key, alert) in delivered {
            if let Some(e) = book.alerts.get_mut(&key) {
                e.tracked.sent.insert(
                    receiver,
                    Sent {
                        state: alert.state,
                        at_ms: now,
                        starts_ms: alert.starts_ms,
                    },
                );
            }
        }
        self.persist(&mut book, Vec::new(), Vec::new()).await?;
        Ok(count)
    }

    /// Sends `jobs`; returns the delivered ones.
    async fn deliver(
        &self,
        jobs: Vec<(ReceiverKind, Job)>,
        now: UnixMs,
    ) -> Vec<(String, AlertKey, OutAlert)> {
        let s = &self.inner.settings;
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELIVERIES));
        let mut set = tokio::task::JoinSet::new();
        let mut to_alertmanager: Vec<Job> = Vec::new();
        for (kind, job) in jobs {
            if kind == ReceiverKind::Alertmanager {
                to_alertmanager.push(job);
                continue;
            }
            let Some(w) = s.webhooks.iter().find(|w| w.name == job.receiver) else {
                continue;
            };
            let message = webhook_message(
                &w.name,
                &s.external_url,
                std::slice::from_ref(&job.alert),
                w.max_alerts,
            );
            let body = serde_json::to_vec(&message).unwrap_or_default();
            let (url, sender, limit) = (w.url.clone(), self.inner.sender.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let outcome = sender.post_json(&url, body).await;
                (outcome, vec![job])
            });
        }
        if let (Some(am), false) = (&s.alertmanager, to_alertmanager.is_empty()) {
            let alerts: Vec<_> = to_alertmanager
                .iter()
                .map(|j| postable(&j.alert, now, s.resend_interval_ms))
                .collect();
            let body = serde_json::to_vec(&alerts).unwrap_or_default();
            let url = format!("{}/api/v2/alerts", am.url.trim_end_matches('/'));
            let sender = self.inner.sender.clone();
            set.spawn(async move {
                let outcome = sender.post_json(&url, body).await;
                (outcome, to_alertmanager)
            });
        }
        let mut delivered = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((outcome, jobs)) = joined else {
                continue;
            };
            let Some(receiver) = jobs.first().map(|j| j.receiver.clone()) else {
                continue;
            };
            self.record(&receiver, &outcome, now);
            if matches!(outcome, Outcome::Delivered { .. }) {
                delivered.extend(jobs.into_iter().map(|j| (j.receiver, j.key, j.alert)));
            }
        }
        delivered
    }

    /// Counts one delivery's outcome for `receiver`.
    fn record(&self, receiver: &str, outcome: &Outcome, now: UnixMs) {
        let m = &self.inner.metrics;
        let failed_attempts = match outcome {
            Outcome::Delivered { attempts } => attempts - 1,
            Outcome::Failed { attempts, .. } => *attempts,
        };
        m.delivery_failures
            .get(&[receiver])
            .add(u64::from(failed_attempts));
        let mut all = self
            .inner
            .receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let status = all.entry(receiver.to_owned()).or_default();
        match outcome {
            Outcome::Delivered { .. } => {
                m.notifications.get(&[receiver, "delivered"]).inc();
                status.delivered += 1;
                status.last_delivered_ms = Some(now);
            }
            Outcome::Failed { error, .. } => {
                m.notifications.get(&[receiver, "failed"]).inc();
                status.failed += 1;
                status.last_error = Some(error.clone());
                status.last_error_ms = Some(now);
                eprintln!("vitals collector: alert notification to {receiver} failed: {error}");
            }
        }
    }

    /// Each receiver's delivery counts and last error.
    pub fn receivers(&self) -> Vec<ReceiverStatus> {
        self.inner
            .receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// `tenant`'s rules with their alerts' states: its rules, then the
    /// built-in health rule of each service that has an alert state.
    pub async fn view(&self, tenant: &str) -> Result<Vec<RuleView>, StoreError> {
        let rules = self.rules_of(Some(tenant)).await?;
        let mut book = self.inner.book.lock().await;
        self.load(&mut book).await?;
        let mut out: Vec<RuleView> = rules
            .into_iter()
            .map(|rule| {
                let key = (rule.tenant.clone(), rule.name.clone(), rule.service.clone());
                let tracked = book.alerts.get(&key).map(|e| e.tracked.clone());
                RuleView { rule, tracked }
            })
            .collect();
        let mut health: Vec<(&AlertKey, &Entry)> = book
            .alerts
            .iter()
            .filter(|(k, _)| k.0 == tenant && k.1 == BUILTIN_HEALTH_RULE)
            .collect();
        health.sort_by(|a, b| a.0.cmp(b.0));
        for (k, e) in health {
            if let Some(rule) = self.health_rule(tenant, &k.2) {
                out.push(RuleView {
                    rule,
                    tracked: Some(e.tracked.clone()),
                });
            }
        }
        Ok(out)
    }

    /// One round and one notification pass at `now` (what the background
    /// job runs every `interval`; tests call it with their own clock).
    pub async fn run_once(&self, now: UnixMs) -> Result<(RoundReport, usize), StoreError> {
        let report = self.evaluate(now).await?;
        let sent = self.notify(now).await?;
        Ok((report, sent))
    }

    /// Starts the background job: a round every `interval` at the wall
    /// clock, each followed by a notification pass in its own task (a slow
    /// receiver never delays evaluation; a pass still running is not
    /// started twice). Failures are logged and retried next round.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(this.inner.settings.interval_ms.max(1) as u64);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.evaluate(now_ms()).await {
                    eprintln!(
                        "vitals collector: alert evaluation failed, retrying next round: {e}"
                    );
                    continue;
                }
                if this.inner.notifying.try_lock().is_ok() {
                    let notifier = this.clone();
                    tokio::spawn(async move {
                        if let Err(e) = notifier.notify(now_ms()).await {
                            eprintln!("vitals collector: alert notification pass failed: {e}");
                        }
                    });
                }
            }
        })
    }
}

/// Percent-encodes what a URL's query must not hold raw.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
